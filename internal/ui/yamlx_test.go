package ui

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/dstackgo/dstack/internal/backends"
	_ "github.com/dstackgo/dstack/internal/backends/all"
	"github.com/dstackgo/dstack/internal/schema"
)

func TestYAMLIssuesFromServerMessages(t *testing.T) {
	e := parseAPIError(http.StatusBadRequest, []byte(`{"detail":[{"msg":"2 validation error(s) in the backend config:\nconfig_yaml:1:1: creds: required\nconfig_yaml:5:3: creds.api_key: must be a string","code":"error"}]}`))
	got := YAMLIssues(e, "")
	want := []YAMLIssue{{Line: 1, Col: 1, Path: "creds", Msg: "required"}, {Line: 5, Col: 3, Path: "creds.api_key", Msg: "must be a string"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if fmt.Sprint(ErrorLines(got)) != "[1 5]" {
		t.Fatalf("lines: %v", ErrorLines(got))
	}
	// Invalid credentials name fields, not lines: the page finds them in the text.
	text := "type: lambda\ncreds:\n  type: api_key\n  api_key: nope\n"
	e = parseAPIError(http.StatusBadRequest, []byte(`{"detail":[{"msg":"Invalid credentials: the key was refused","code":"invalid_credentials","fields":["creds","api_key"]}]}`))
	got = YAMLIssues(e, text)
	if len(got) != 1 || got[0].Line != 4 || got[0].Path != "creds.api_key" {
		t.Fatalf("credentials: %v", got)
	}
	// Syntax errors come without a position from the server.
	e = parseAPIError(http.StatusBadRequest, []byte(`{"detail":[{"msg":"Error parsing YAML","code":"error"}]}`))
	got = YAMLIssues(e, "type: oci\ncreds:\n  type: [default\n")
	if len(got) != 1 || got[0].Line == 0 || !strings.HasPrefix(got[0].Msg, "Error parsing YAML: ") {
		t.Fatalf("syntax: %v", got)
	}
}

func TestParseAPIErrorShapes(t *testing.T) {
	cases := map[string]string{
		`{"detail":"Not authenticated"}`:                                     "Not authenticated",
		`{"detail":{"msg":"Access denied","code":null}}`:                     "Access denied",
		`{"detail":[{"type":"missing","loc":["body","users",0],"msg":"x"}]}`: "users[0]: x",
		`Internal Server Error`:                                              "Internal Server Error",
	}
	for body, want := range cases {
		if got := parseAPIError(400, []byte(body)).Error(); got != want {
			t.Errorf("%s: %q, want %q", body, got, want)
		}
	}
}

func TestMaskAndUnmask(t *testing.T) {
	cfg := map[string]any{"type": "oci", "regions": []any{"eu-frankfurt-1"}, "creds": map[string]any{
		"type": "client", "user": "ocid1.user", "tenancy": "ocid1.tenancy", "fingerprint": "aa:bb", "region": "eu-frankfurt-1",
		"key_content": "-----BEGIN KEY-----\nabc\n-----END KEY-----\n", "pass_phrase": "pp"}}
	masked, n := MaskSecrets("oci", cfg)
	if n != 2 {
		t.Fatalf("hid %d values: %v", n, masked)
	}
	text := DumpYAML(masked)
	if strings.Contains(text, "abc") || strings.Contains(text, "pp\n") || !strings.Contains(text, "ocid1.user") {
		t.Fatalf("masked text:\n%s", text)
	}
	if !strings.HasPrefix(text, "type: oci\n") {
		t.Fatalf("type is not first:\n%s", text)
	}
	out, issues := UnmaskYAML(text, cfg)
	if issues != nil {
		t.Fatal(issues)
	}
	doc, is := schema.ParseYAML("x", []byte(out))
	if is != nil {
		t.Fatalf("%v\n%s", is, out)
	}
	if fmt.Sprint(doc.Value) != fmt.Sprint(cfg) {
		t.Fatalf("round trip:\n%v\n%v", doc.Value, cfg)
	}
	if strings.Count(out, "\n") != strings.Count(text, "\n") {
		t.Fatalf("lines moved:\n%s", out)
	}
	// Flow style, quotes, two masks on a line; a mask where nothing is stored is an issue at its line.
	stored := map[string]any{"creds": map[string]any{"type": "access_key", "access_key": "AK", "secret_key": `s"k`}}
	out, issues = UnmaskYAML("type: aws\ncreds: {type: access_key, access_key: \"••••••••\", secret_key: ••••••••}\nother: '••••••••'\n", stored)
	if !strings.Contains(out, `access_key: "AK", secret_key: "s\"k"}`) || len(issues) != 1 || issues[0].Line != 3 || issues[0].Path != "other" {
		t.Fatalf("flow:\n%s\n%v", out, issues)
	}
	// Kubernetes: the kubeconfig's data is secret, its filename is not.
	masked, n = MaskSecrets("kubernetes", map[string]any{"type": "kubernetes", "kubeconfig": map[string]any{"filename": "~/.kube/config", "data": "apiVersion: v1"}})
	if n != 1 || masked["kubeconfig"].(map[string]any)["filename"] != "~/.kube/config" {
		t.Fatalf("kubernetes: %v", masked)
	}
}

// Every backend type gets a starting YAML that parses, and a form whose blank submission is a config
// of its type.
func TestTemplatesAndFormsForEveryType(t *testing.T) {
	for _, typ := range backends.Types() {
		text := TemplateYAML(typ)
		doc, is := schema.ParseYAML("x", []byte(text))
		if is != nil {
			t.Errorf("%s template does not parse: %v\n%s", typ, is, text)
			continue
		}
		if m, _ := doc.Value.(map[string]any); m["type"] != typ {
			t.Errorf("%s template: %v", typ, doc.Value)
		}
		f := NewBackendForm(typ, nil)
		if f == nil || len(f.Fields) == 0 {
			t.Errorf("%s: no form", typ)
			continue
		}
		if f.Values()["type"] != typ {
			t.Errorf("%s form values: %v", typ, f.Values())
		}
	}
}

func TestSplitPath(t *testing.T) {
	if got := fmt.Sprint(splitPath("projects[0].backends[2].creds.api_key")); got != "[projects [0] backends [2] creds api_key]" {
		t.Fatal(got)
	}
}
