package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestPrintTable(t *testing.T) {
	var b bytes.Buffer
	if err := printTable(&b, []string{"A", "LONGER"}, [][]string{{"x\ty", "1"}, {"long value", "multi\nline"}}); err != nil {
		t.Fatal(err)
	}
	want := "A            LONGER\nx y          1\nlong value   multi line\n"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

func TestPrintJSON(t *testing.T) {
	var b bytes.Buffer
	if err := printJSON(&b, map[string]any{"url": "http://a/?x=1&y=<2>"}); err != nil {
		t.Fatal(err)
	}
	if b.String() != "{\n  \"url\": \"http://a/?x=1&y=<2>\"\n}\n" {
		t.Errorf("got %q", b.String())
	}
}

func TestConfirm(t *testing.T) {
	tests := []struct {
		name     string
		yes, no  bool
		stdin    string
		want     bool
		wantErr  bool
		prompts  int
		leftover string
	}{
		{name: "yes flag", yes: true, want: true},
		{name: "no flag", no: true, want: false},
		{name: "y", stdin: "y\n", want: true, prompts: 1},
		{name: "YES with spaces", stdin: "  YES \n", want: true, prompts: 1},
		{name: "n", stdin: "n\nrest", want: false, prompts: 1, leftover: "rest"},
		{name: "retry", stdin: "what\n\nno\n", want: false, prompts: 3},
		{name: "answer without newline", stdin: "y", want: true, prompts: 1},
		{name: "eof", stdin: "", wantErr: true, prompts: 1},
		{name: "eof after junk", stdin: "hmm\n", wantErr: true, prompts: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := &cobra.Command{}
			in := strings.NewReader(tt.stdin)
			var errb bytes.Buffer
			cmd.SetIn(in)
			cmd.SetErr(&errb)
			got, err := confirm(cmd, "Proceed?", tt.yes, tt.no)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v", err)
			}
			if got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if n := strings.Count(errb.String(), "Proceed? [y/n]: "); n != tt.prompts {
				t.Errorf("%d prompts, want %d: %q", n, tt.prompts, errb.String())
			}
			rest := make([]byte, 16)
			n, _ := in.Read(rest)
			if string(rest[:n]) != tt.leftover {
				t.Errorf("left on stdin %q, want %q", rest[:n], tt.leftover)
			}
		})
	}
}
