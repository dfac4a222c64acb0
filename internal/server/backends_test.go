package server

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dstackgo/dstack/internal/backends/fake"
	"github.com/dstackgo/dstack/internal/config"
	"github.com/dstackgo/dstack/internal/schema"
	"github.com/dstackgo/dstack/internal/testutil"
)

func TestBackendYAMLRoundTrip(t *testing.T) {
	e := newEnv(t)
	key := fake.Use(t, "runpod").Good.String("creds", "api_key")
	yml := "type: runpod\ncommunity_cloud: false\nregions: [CA-MTL-3]\ncreds:\n  type: api_key\n  api_key: " + key + "\n"
	if out := e.must("padmin", "/api/project/main/backends/create_yaml", map[string]any{"config_yaml": yml}); out != nil {
		t.Fatalf("create_yaml returns null, got %v", out)
	}
	got := e.must("padmin", "/api/project/main/backends/runpod/get_yaml", nil).(map[string]any)
	if got["name"] != "runpod" {
		t.Fatalf("name: %v", got["name"])
	}
	text := got["config_yaml"].(string)
	for _, want := range []string{"type: runpod", "community_cloud: false", "api_key: " + key, "CA-MTL-3"} {
		if !strings.Contains(text, want) {
			t.Fatalf("get_yaml lacks %q:\n%s", want, text)
		}
	}
	// What get_yaml gives back is accepted by update_yaml unchanged.
	e.must("padmin", "/api/project/main/backends/update_yaml", map[string]any{"config_yaml": text})
	info := e.must("padmin", "/api/project/main/backends/runpod/config_info", nil).(map[string]any)
	if info["creds"].(map[string]any)["api_key"] != key || info["community_cloud"] != false {
		t.Fatalf("config_info: %v", info)
	}
	// Project members see the backend without its creds, with its check state.
	p := e.must("member", "/api/projects/main/get", nil).(map[string]any)
	bs := p["backends"].([]any)
	if len(bs) != 1 {
		t.Fatalf("backends: %v", bs)
	}
	b := bs[0].(map[string]any)
	if strings.Contains(fmt.Sprint(p), key) {
		t.Fatalf("a member sees the secret: %v", b)
	}
	if b["name"] != "runpod" || b["status"] != "valid" || b["config"].(map[string]any)["creds"] != nil {
		t.Fatalf("backend info: %v", b)
	}
	// A second create of the same type is resource_exists.
	code, out := e.call("padmin", "/api/project/main/backends/create_yaml", map[string]any{"config_yaml": yml})
	if code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(out), "resource_exists") {
		t.Fatalf("duplicate: %d %v", code, out)
	}
	e.must("padmin", "/api/project/main/backends/delete", map[string]any{"backends_names": []string{"runpod"}})
	code, out = e.call("padmin", "/api/project/main/backends/runpod/get_yaml", nil)
	if code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(out), "resource_not_exists") {
		t.Fatalf("after delete: %d %v", code, out)
	}
}

func TestBackendYAMLErrors(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		yaml, want string
	}{
		{"type: [lambda\n", "Error parsing YAML"},
		{"type: nosuchbackend\n", `unknown type \"nosuchbackend\"`},
		{"type: lambda\ncreds:\n  type: api_key\n  api_key: k\nfoo: bar\n", `config_yaml:5:1: foo: unknown key \"foo\"`},
		{"type: lambda\n", "config_yaml:1:1: creds: required"},
		{"type: gcp\ncreds:\n  type: service_account\n", "either `filename` or `data` must be specified"},
	}
	for _, c := range cases {
		code, out := e.call("padmin", "/api/project/main/backends/create_yaml", map[string]any{"config_yaml": c.yaml})
		body := fmt.Sprintf("%q", fmt.Sprint(out))
		if code != http.StatusBadRequest || !strings.Contains(body, c.want) || !strings.Contains(body, "code:error") {
			t.Errorf("%q: %d %s; want 400 with %s", c.yaml, code, body, c.want)
		}
	}
	code, out := e.call("padmin", "/api/project/main/backends/create_yaml", map[string]any{"config_yaml": "type: lambda\n", "foo": "bar"})
	if code != http.StatusUnprocessableEntity || !strings.Contains(fmt.Sprint(out), "extra_forbidden") {
		t.Errorf("unknown body key: %d %v", code, out)
	}
}

// TestFileReferencesThroughAPI: a global admin may name server files (the UI snippets of the seed do);
// a project admin may not, so that project admins cannot read the server's disk.
func TestFileReferencesThroughAPI(t *testing.T) {
	e := newEnv(t)
	neb := fake.UseNebius(t)
	key := filepath.Join(t.TempDir(), "key.pem")
	os.WriteFile(key, []byte(neb.Good.String("creds", "private_key_content")), 0o600)
	yml := fmt.Sprintf("type: nebius\ncreds:\n  type: service_account\n  service_account_id: %s\n  public_key_id: %s\n  private_key_file: %s\n",
		fake.NebiusServiceAccountID, fake.NebiusPublicKeyID, key)
	code, out := e.call("padmin", "/api/project/main/backends/create_yaml", map[string]any{"config_yaml": yml})
	if code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(out), "does not read files") {
		t.Fatalf("project admin naming a server file: %d %v", code, out)
	}
	e.must("admin", "/api/project/main/backends/create_yaml", map[string]any{"config_yaml": yml})
	info := e.must("admin", "/api/project/main/backends/nebius/config_info", nil).(map[string]any)
	if !strings.Contains(info["creds"].(map[string]any)["private_key_content"].(string), "BEGIN PRIVATE KEY") {
		t.Fatalf("file not read: %v", info)
	}
}

// TestSeedNebiusSnippets: the two `type: nebius` snippets that the seed document gives for the UI are
// accepted by create_yaml.
func TestSeedNebiusSnippets(t *testing.T) {
	md, err := os.ReadFile(filepath.Join(testutil.SharedDir(t), "seed", "backends.md"))
	if err != nil {
		t.Fatal(err)
	}
	// The credential check runs against the Nebius fake, which learns the snippets' account and key
	// ids and projects; the snippets' PEM text (shortened with [...] in the document) is replaced by a
	// real key of that account.
	neb := fake.UseNebius(t)
	pem := neb.Good.String("creds", "private_key_content")
	home := t.TempDir()
	t.Setenv("HOME", home)
	os.MkdirAll(filepath.Join(home, "path", "to"), 0o700)
	os.WriteFile(filepath.Join(home, "path", "to", "key.pem"), []byte(pem), 0o600)
	found := 0
	for _, b := range testutil.YAMLBlocks(string(md)) {
		if !strings.HasPrefix(b.Text, "type: nebius") {
			continue
		}
		found++
		cfg, issues := schema.ParseYAML("snippet", []byte(b.Text))
		if issues != nil {
			t.Fatal(issues)
		}
		creds := cfg.Value.(map[string]any)["creds"].(map[string]any)
		neb.AddKey(creds["service_account_id"].(string), creds["public_key_id"].(string), neb.GoodPublicKey())
		var projects []fake.NebiusProject
		for i, p := range listOf(cfg.Value.(map[string]any)["projects"]) {
			projects = append(projects, fake.NebiusProject{ID: p, Name: "team", Region: []string{"eu-north1", "eu-west1"}[i%2]})
		}
		if projects != nil {
			neb.SetProjects(projects...)
		}
		text := b.Text
		if i := strings.Index(text, "    -----BEGIN"); i >= 0 {
			end := strings.Index(text, "-----END PRIVATE KEY-----") + len("-----END PRIVATE KEY-----\n")
			text = text[:i] + "    " + strings.ReplaceAll(strings.TrimSpace(pem), "\n", "\n    ") + "\n" + text[end:]
		}
		e := newEnv(t)
		e.must("admin", "/api/project/main/backends/create_yaml", map[string]any{"config_yaml": text})
		if p := e.must("admin", "/api/projects/main/get", nil).(map[string]any); !strings.Contains(fmt.Sprint(p["backends"]), "status:valid") {
			t.Fatalf("snippet at line %d: %v", b.Line, p["backends"])
		}
	}
	if found != 2 {
		t.Fatalf("found %d nebius UI snippets, want 2", found)
	}
}

func listOf(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

func TestCreateBackendJSON(t *testing.T) {
	e := newEnv(t)
	cudo := fake.Use(t, "cudo")
	bad := map[string]any{"type": "cudo", "project_id": "p1", "creds": cudo.Bad.Values["creds"]}
	code, body := e.call("padmin", "/api/project/main/backends/create", bad)
	if code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(body), "code:invalid_credentials fields:[creds api_key]") {
		t.Fatalf("refused credentials: %d %v", code, body)
	}
	key := cudo.Good.String("creds", "api_key")
	cfg := map[string]any{"type": "cudo", "project_id": "p1", "creds": map[string]any{"type": "api_key", "api_key": key}}
	out := e.must("padmin", "/api/project/main/backends/create", cfg).(map[string]any)
	if out["project_id"] != "p1" || out["creds"].(map[string]any)["api_key"] != key {
		t.Fatalf("create returns the config: %v", out)
	}
	code, body = e.call("padmin", "/api/project/main/backends/update", map[string]any{"type": "cudo", "creds": map[string]any{"type": "api_key", "api_key": "x"}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(fmt.Sprint(body), "project_id") {
		t.Fatalf("update without project_id: %d %v", code, body)
	}
	code, body = e.call("padmin", "/api/project/main/backends/update", map[string]any{"type": "vultr", "creds": map[string]any{"type": "api_key", "api_key": "x"}})
	if code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(body), "resource_not_exists") {
		t.Fatalf("update of a missing backend: %d %v", code, body)
	}
}

// TestConfigStoresInvalidCredentials: a backend of config.yml whose credentials the provider refuses is
// kept and shown as invalid with the provider's reason; the good one is valid.
func TestConfigStoresInvalidCredentials(t *testing.T) {
	e := newEnv(t)
	bad := fake.Use(t, "lambda").Bad.String("creds", "api_key")
	good := fake.Use(t, "vastai").Good.String("creds", "api_key")
	yml := fmt.Sprintf(`projects:
  - name: main
    backends:
      - type: lambda
        creds: {type: api_key, api_key: %s}
      - type: vastai
        creds: {type: api_key, api_key: %s}
`, bad, good)
	cfg, err := config.Parse("config.yml", []byte(yml), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	admin, _ := e.st.GetUserByName(context.Background(), "admin")
	if err := e.srv.ApplyConfig(context.Background(), cfg, admin); err != nil {
		t.Fatal(err)
	}
	e.srv.WaitChecks()
	p := e.must("member", "/api/projects/main/get", nil).(map[string]any)
	states := map[string]string{}
	for _, b := range p["backends"].([]any) {
		bm := b.(map[string]any)
		states[bm["name"].(string)] = bm["status"].(string) + ": " + bm["status_message"].(string)
	}
	if !strings.HasPrefix(states["lambda"], "invalid: Invalid credentials") || states["vastai"] != "valid: " {
		t.Fatalf("states: %v", states)
	}
	if strings.Contains(fmt.Sprint(states), bad) {
		t.Fatal("the refused key is echoed in the status")
	}
}
