package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dstackgo/dstack/internal/cliconfig"
	"github.com/spf13/cobra"
)

// fakeServer answers POST /api/projects/{name}/get like the server does, for the projects it holds.
type fakeServer struct {
	*httptest.Server
	token    string
	backends map[string][]map[string]any // project name → backends
	calls    []string
}

func newFakeServer(t *testing.T, token string, backends map[string][]map[string]any) *fakeServer {
	t.Helper()
	fs := &fakeServer{token: token, backends: backends}
	fs.Server = httptest.NewServer(http.HandlerFunc(fs.serve))
	t.Cleanup(fs.Close)
	return fs
}

func (fs *fakeServer) serve(w http.ResponseWriter, r *http.Request) {
	fs.calls = append(fs.calls, r.Method+" "+r.URL.Path)
	w.Header().Set("Content-Type", "application/json")
	reply := func(status int, body string) {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
	if r.Header.Get("X-API-VERSION") != "0.21.2" {
		reply(400, `{"detail":[{"msg":"missing X-API-VERSION in the fake","code":"error"}]}`)
		return
	}
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "Bearer ") || auth == "Bearer " {
		reply(401, `{"detail":"Not authenticated"}`)
		return
	}
	if strings.TrimPrefix(auth, "Bearer ") != fs.token {
		reply(403, `{"detail":{"msg":"Invalid token","code":null}}`)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, "/api/projects/")
	if !ok || !strings.HasSuffix(name, "/get") || r.Method != http.MethodPost {
		reply(404, `{"detail":"Not Found"}`)
		return
	}
	name = strings.TrimSuffix(name, "/get")
	bs, ok := fs.backends[name]
	if !ok {
		reply(404, `{"detail":{"msg":"Not found","code":null}}`)
		return
	}
	if bs == nil {
		bs = []map[string]any{}
	}
	user := map[string]any{"id": "5e0c3c52-7a51-4d1c-9c43-0d8f1a2b3c4d", "username": "carol", "global_role": "admin",
		"email": nil, "active": true, "created_at": "2026-02-03T04:05:06.000007Z"}
	proj := map[string]any{"project_id": "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d", "project_name": name, "owner": user,
		"created_at": "2026-02-03T04:05:07.000008Z", "backends": bs, "is_public": false, "templates_repo": nil,
		"members": []any{map[string]any{"user": user, "project_role": "admin",
			"permissions": map[string]any{"can_manage_ssh_fleets": true, "can_manage_secrets": true}}}}
	_ = json.NewEncoder(w).Encode(proj)
}

// runCLI runs the CLI's project and backend commands in-process with stdin, returning stdout and stderr.
func runCLI(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	root := &cobra.Command{Use: "dstack", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(newProjectCmd(), newBackendCmd())
	var out, errb bytes.Buffer
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errb)
	err := root.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

func loadCfg(t *testing.T) *cliconfig.Config {
	t.Helper()
	c, err := cliconfig.Load()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeCfg(t *testing.T, projects ...cliconfig.Project) {
	t.Helper()
	c := loadCfg(t)
	c.Projects = projects
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
}

func TestProjectAdd(t *testing.T) {
	const tok = "tok-good"
	type want struct {
		err      string // substring; "" = success
		out      string // substring of stdout
		projects []cliconfig.Project
	}
	tests := []struct {
		name     string
		existing []cliconfig.Project
		args     []string // after "project add"; URL is replaced by the fake server's URL
		stdin    string
		want     want
	}{
		{
			name: "first project becomes default",
			args: []string{"--name", "alpha", "--url", "URL", "--token", tok},
			want: want{out: "Project alpha added (default)", projects: []cliconfig.Project{{Name: "alpha", URL: "URL", Token: tok, Default: true}}},
		},
		{
			name:     "second project is not default",
			existing: []cliconfig.Project{{Name: "alpha", URL: "URL", Token: tok, Default: true}},
			args:     []string{"--name", "beta", "--url", "URL/", "--token", tok},
			want: want{out: "Project beta added;", projects: []cliconfig.Project{
				{Name: "alpha", URL: "URL", Token: tok, Default: true}, {Name: "beta", URL: "URL", Token: tok}}},
		},
		{
			name:     "--default",
			existing: []cliconfig.Project{{Name: "alpha", URL: "URL", Token: tok, Default: true}},
			args:     []string{"--name", "beta", "--url", "URL", "--token", tok, "--default"},
			want: want{out: "Project beta added (default)", projects: []cliconfig.Project{
				{Name: "alpha", URL: "URL", Token: tok}, {Name: "beta", URL: "URL", Token: tok, Default: true}}},
		},
		{
			name:     "same entry is a no-op",
			existing: []cliconfig.Project{{Name: "alpha", URL: "URL", Token: tok, Default: true}},
			args:     []string{"--name", "alpha", "--url", "URL", "--token", tok},
			want:     want{out: "already configured", projects: []cliconfig.Project{{Name: "alpha", URL: "URL", Token: tok, Default: true}}},
		},
		{
			name:     "same entry with --default sets default",
			existing: []cliconfig.Project{{Name: "alpha", URL: "URL", Token: tok, Default: true}, {Name: "beta", URL: "URL", Token: tok}},
			args:     []string{"--name", "beta", "--url", "URL", "--token", tok, "--default"},
			want: want{out: "Project beta updated (default)", projects: []cliconfig.Project{
				{Name: "alpha", URL: "URL", Token: tok}, {Name: "beta", URL: "URL", Token: tok, Default: true}}},
		},
		{
			name:     "changed token with -y overwrites and keeps default",
			existing: []cliconfig.Project{{Name: "alpha", URL: "http://old.test", Token: "old", Default: true}},
			args:     []string{"--name", "alpha", "--url", "URL", "--token", tok, "-y"},
			want:     want{out: "Project alpha updated (default)", projects: []cliconfig.Project{{Name: "alpha", URL: "URL", Token: tok, Default: true}}},
		},
		{
			name:     "changed token with -n refuses",
			existing: []cliconfig.Project{{Name: "alpha", URL: "http://old.test", Token: "old", Default: true}},
			args:     []string{"--name", "alpha", "--url", "URL", "--token", tok, "-n"},
			want:     want{out: "left unchanged", projects: []cliconfig.Project{{Name: "alpha", URL: "http://old.test", Token: "old", Default: true}}},
		},
		{
			name:     "changed token, user answers yes",
			existing: []cliconfig.Project{{Name: "alpha", URL: "http://old.test", Token: "old", Default: true}},
			args:     []string{"--name", "alpha", "--url", "URL", "--token", tok},
			stdin:    "maybe\nyes\n",
			want:     want{out: "Project alpha updated", projects: []cliconfig.Project{{Name: "alpha", URL: "URL", Token: tok, Default: true}}},
		},
		{
			name:     "changed token, user answers no",
			existing: []cliconfig.Project{{Name: "alpha", URL: "http://old.test", Token: "old", Default: true}},
			args:     []string{"--name", "alpha", "--url", "URL", "--token", tok},
			stdin:    "n\n",
			want:     want{out: "left unchanged", projects: []cliconfig.Project{{Name: "alpha", URL: "http://old.test", Token: "old", Default: true}}},
		},
		{
			name:     "changed token, no answer on stdin",
			existing: []cliconfig.Project{{Name: "alpha", URL: "http://old.test", Token: "old", Default: true}},
			args:     []string{"--name", "alpha", "--url", "URL", "--token", tok},
			want:     want{err: "pass -y", projects: []cliconfig.Project{{Name: "alpha", URL: "http://old.test", Token: "old", Default: true}}},
		},
		{
			name: "wrong token",
			args: []string{"--name", "alpha", "--url", "URL", "--token", "bad"},
			want: want{err: "cannot add project alpha: access denied: invalid token"},
		},
		{
			name: "unknown project",
			args: []string{"--name", "nope", "--url", "URL", "--token", tok},
			want: want{err: "cannot add project nope: project not found: nope"},
		},
		{
			name: "missing flag",
			args: []string{"--name", "alpha", "--url", "URL"},
			want: want{err: `required flag(s) "token" not set`},
		},
		{
			name: "-y and -n together",
			args: []string{"--name", "alpha", "--url", "URL", "--token", tok, "-y", "-n"},
			want: want{err: "none of the others can be"},
		},
		{
			name: "bad url",
			args: []string{"--name", "alpha", "--url", "localhost:3000", "--token", tok},
			want: want{err: "must start with http://"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			t.Setenv("HOME", home)
			srv := newFakeServer(t, tok, map[string][]map[string]any{"alpha": nil, "beta": nil})
			fix := func(s string) string { return strings.ReplaceAll(s, "URL", srv.URL) }
			var existing []cliconfig.Project
			for _, p := range tt.existing {
				p.URL = fix(p.URL)
				existing = append(existing, p)
			}
			if existing != nil {
				writeCfg(t, existing...)
			}
			args := []string{"project", "add"}
			for _, a := range tt.args {
				args = append(args, fix(a))
			}
			out, _, err := runCLI(t, tt.stdin, args...)
			if tt.want.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.want.err)
				}
			} else if err != nil {
				t.Fatalf("err = %v", err)
			}
			if !strings.Contains(out, tt.want.out) {
				t.Errorf("stdout = %q, want it to contain %q", out, tt.want.out)
			}
			got := loadCfg(t).Projects
			if len(got) != len(tt.want.projects) {
				t.Fatalf("projects = %+v, want %+v", got, tt.want.projects)
			}
			for i, p := range tt.want.projects {
				p.URL = fix(p.URL)
				if got[i] != p {
					t.Errorf("project %d = %+v, want %+v", i, got[i], p)
				}
			}
		})
	}
}

func TestProjectAddServerDown(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	_, _, err = runCLI(t, "", "project", "add", "--name", "a", "--url", url, "--token", "t")
	if err == nil || !strings.Contains(err.Error(), "cannot reach the dstack server at "+url) ||
		!strings.Contains(err.Error(), "is `dstack server` running?") {
		t.Fatalf("err = %v", err)
	}
	if _, statErr := os.Stat(filepath.Join(os.Getenv("HOME"), ".dstack", "config.yml")); statErr == nil {
		t.Error("config written although the server was unreachable")
	}
}

func TestProjectList(t *testing.T) {
	t.Setenv("HOME", t.TempDir())

	out, _, err := runCLI(t, "", "project", "list")
	if err != nil || !strings.Contains(out, "No projects configured") {
		t.Fatalf("empty list: %q, %v", out, err)
	}
	out, _, err = runCLI(t, "", "project", "list", "--json")
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Fatalf("empty json: %q, %v", out, err)
	}

	writeCfg(t,
		cliconfig.Project{Name: "main", URL: "http://127.0.0.1:3000", Token: "secret-1"},
		cliconfig.Project{Name: "research-team", URL: "https://dstack.example.test", Token: "secret-2", Default: true})
	out, _, err = runCLI(t, "", "project", "list")
	if err != nil {
		t.Fatal(err)
	}
	want := "" +
		"PROJECT         URL                           DEFAULT\n" +
		"main            http://127.0.0.1:3000         \n" +
		"research-team   https://dstack.example.test   ✓\n"
	if out != want {
		t.Errorf("table:\n%s\nwant:\n%s", out, want)
	}
	out, _, err = runCLI(t, "", "project", "list", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "secret") {
		t.Errorf("--json leaks a token: %s", out)
	}
	var items []map[string]any
	if err := json.Unmarshal([]byte(out), &items); err != nil {
		t.Fatal(err)
	}
	wantItems := []map[string]any{
		{"name": "main", "url": "http://127.0.0.1:3000", "default": false},
		{"name": "research-team", "url": "https://dstack.example.test", "default": true},
	}
	if fmt.Sprint(items) != fmt.Sprint(wantItems) {
		t.Errorf("json = %v, want %v", items, wantItems)
	}
}

func TestProjectSetDefault(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	writeCfg(t,
		cliconfig.Project{Name: "a", URL: "http://a", Token: "t", Default: true},
		cliconfig.Project{Name: "b", URL: "http://b", Token: "t"})
	out, _, err := runCLI(t, "", "project", "set-default", "b")
	if err != nil || !strings.Contains(out, "Default project is now b") {
		t.Fatalf("%q, %v", out, err)
	}
	if d, _ := loadCfg(t).Default(); d == nil || d.Name != "b" {
		t.Errorf("default = %+v", d)
	}
	_, _, err = runCLI(t, "", "project", "set-default", "zz")
	if err == nil || !strings.Contains(err.Error(), "project zz is not configured") {
		t.Errorf("err = %v", err)
	}
	_, _, err = runCLI(t, "", "project", "set-default")
	if err == nil {
		t.Error("set-default without a name succeeded")
	}
}

func TestProjectDelete(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		stdin     string
		wantErr   string
		wantOut   string
		wantNames string
	}{
		{"-y", []string{"b", "-y"}, "", "", "Project b deleted", "a"},
		{"--name as in dstack", []string{"--name", "b", "--yes"}, "", "", "Project b deleted", "a"},
		{"answer yes", []string{"b"}, "y\n", "", "Project b deleted", "a"},
		{"answer no", []string{"b"}, "no\n", "", "Project b left", "a,b"},
		{"no answer", []string{"b"}, "", "pass -y", "", "a,b"},
		{"unknown", []string{"zz", "-y"}, "", "project zz is not configured", "", "a,b"},
		{"no name", []string{"-y"}, "", "name the project to delete", "", "a,b"},
		{"two names", []string{"a", "--name", "b"}, "", "project named twice", "", "a,b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("HOME", t.TempDir())
			writeCfg(t,
				cliconfig.Project{Name: "a", URL: "http://a", Token: "t", Default: true},
				cliconfig.Project{Name: "b", URL: "http://b", Token: "t"})
			out, errOut, err := runCLI(t, tt.stdin, append([]string{"project", "delete"}, tt.args...)...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("err = %v", err)
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("stdout = %q, want %q", out, tt.wantOut)
			}
			if tt.stdin != "" && !strings.Contains(errOut, "Delete project b from ") {
				t.Errorf("stderr = %q, want the question", errOut)
			}
			var names []string
			for _, p := range loadCfg(t).Projects {
				names = append(names, p.Name)
			}
			if strings.Join(names, ",") != tt.wantNames {
				t.Errorf("projects = %v, want %s", names, tt.wantNames)
			}
		})
	}
}
