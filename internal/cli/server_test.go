package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dstackgo/dstack/internal/backends/fake"
)

// runRoot runs the whole command tree and returns the combined output and the exit code.
func runRoot(t *testing.T, args ...string) (string, int) {
	t.Helper()
	root := NewRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	var ee exitError
	switch {
	case errors.As(err, &ee):
		return out.String(), ee.code
	case err != nil:
		return out.String() + err.Error(), 1
	}
	return out.String(), 0
}

func writeFile(t *testing.T, text string) string {
	p := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidateOffline(t *testing.T) {
	p := writeFile(t, "projects:\n  - name: main\n    backends:\n      - type: vastai\n        creds: {type: api_key, api_key: x}\n  - name: empty\n")
	out, code := runRoot(t, "server", "validate", "--config", p, "--offline")
	if code != 0 || !strings.Contains(out, "main") || !strings.Contains(out, "vastai") || !strings.Contains(out, "empty") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	bad := writeFile(t, "projects:\n  - name: main\n    backends:\n      - type: vastai\n        creds: {type: api_key}\n        zone: x\n")
	out, code = runRoot(t, "server", "validate", "--config", bad, "--offline")
	for _, want := range []string{bad + ":5:9: projects[0].backends[0].creds.api_key: required", bad + ":6:9: projects[0].backends[0].zone: unknown key", "2 problem(s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if code != 1 {
		t.Fatalf("exit %d for an invalid file", code)
	}
}

func TestValidateChecksCredentials(t *testing.T) {
	lambda := fake.Use(t, "lambda")
	tmpl := "projects:\n  - name: main\n    backends:\n      - type: lambda\n        creds: {type: api_key, api_key: %s}\n"
	out, code := runRoot(t, "server", "validate", "--config", writeFile(t, fmt.Sprintf(tmpl, lambda.Good.String("creds", "api_key"))))
	if code != 0 || !strings.Contains(out, "valid") {
		t.Fatalf("good key: exit %d\n%s", code, out)
	}
	out, code = runRoot(t, "server", "validate", "--config", writeFile(t, fmt.Sprintf(tmpl, lambda.Bad.String("creds", "api_key"))))
	if code != 1 || !strings.Contains(out, "invalid") || !strings.Contains(out, "Invalid credentials") {
		t.Fatalf("bad key: exit %d\n%s", code, out)
	}
}
