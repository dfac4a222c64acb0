package cliconfig

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func setHome(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	return home
}

func TestPath(t *testing.T) {
	home := setHome(t)
	if got, want := Path(), filepath.Join(home, ".dstack", "config.yml"); got != want {
		t.Fatalf("Path() = %q, want %q", got, want)
	}
}

func TestLoadMissingIsEmpty(t *testing.T) {
	setHome(t)
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Projects) != 0 {
		t.Fatalf("projects = %v", c.Projects)
	}
	if _, ok := c.Default(); ok {
		t.Fatal("Default() on empty config returned a project")
	}
}

func TestRoundTripAndMode(t *testing.T) {
	home := setHome(t)
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	c.Upsert(Project{Name: "main", URL: "http://127.0.0.1:3000", Token: "tok-1"}, false)
	c.Upsert(Project{Name: "other", URL: "http://example.test", Token: "tok-2"}, false)
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	c2, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	want := []Project{
		{Name: "main", URL: "http://127.0.0.1:3000", Token: "tok-1", Default: true},
		{Name: "other", URL: "http://example.test", Token: "tok-2"},
	}
	if len(c2.Projects) != len(want) {
		t.Fatalf("projects = %+v", c2.Projects)
	}
	for i := range want {
		if c2.Projects[i] != want[i] {
			t.Errorf("project %d = %+v, want %+v", i, c2.Projects[i], want[i])
		}
	}
	if runtime.GOOS != "windows" {
		st, err := os.Stat(filepath.Join(home, ".dstack", "config.yml"))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("file mode = %v, want 0600", st.Mode().Perm())
		}
		dst, err := os.Stat(filepath.Join(home, ".dstack"))
		if err != nil {
			t.Fatal(err)
		}
		if dst.Mode().Perm() != 0o700 {
			t.Errorf("dir mode = %v, want 0700", dst.Mode().Perm())
		}
	}
}

func TestSaveTightensExistingMode(t *testing.T) {
	home := setHome(t)
	dir := filepath.Join(home, ".dstack")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(path, []byte("projects: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	c.Upsert(Project{Name: "p", URL: "http://x", Token: "t"}, false)
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm() != 0o600 {
		t.Errorf("file mode = %v, want 0600", st.Mode().Perm())
	}
}

func TestPreservesReposAndUnknownKeys(t *testing.T) {
	home := setHome(t)
	dir := filepath.Join(home, ".dstack")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	in := `projects:
- default: true
  name: main
  token: tok-1
  url: http://127.0.0.1:3000
repos:
- path: /home/someone/src/app
  repo_id: 3f2a9c
  repo_type: remote
  local_repo: {zeta: 1, alpha: "0123"}
future_key:
  nested: [1, 2, 3]
`
	path := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(path, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := c.Default(); !ok || p.Name != "main" || p.Token != "tok-1" {
		t.Fatalf("Default() = %+v, %v", p, ok)
	}
	c.Upsert(Project{Name: "second", URL: "http://second.test", Token: "tok-2"}, true)
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := string(data)
	for _, s := range []string{"repos:", "path: /home/someone/src/app", "repo_id: 3f2a9c", "repo_type: remote",
		"future_key:", "nested:", `"0123"`} {
		if !strings.Contains(out, s) {
			t.Errorf("saved file lacks %q:\n%s", s, out)
		}
	}
	// Order of top-level keys and of nested maps is kept.
	if !(strings.Index(out, "projects:") < strings.Index(out, "repos:") && strings.Index(out, "repos:") < strings.Index(out, "future_key:")) {
		t.Errorf("top-level order changed:\n%s", out)
	}
	if strings.Index(out, "zeta") > strings.Index(out, "alpha") {
		t.Errorf("nested order changed:\n%s", out)
	}
	c2, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := c2.Default(); !ok || p.Name != "second" {
		t.Fatalf("Default() after save = %+v", p)
	}
	if p, _ := c2.Get("main"); p == nil || p.Default {
		t.Fatalf("main = %+v, want present and not default", p)
	}
}

func TestNoProjectsKeyAddsOne(t *testing.T) {
	home := setHome(t)
	dir := filepath.Join(home, ".dstack")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(path, []byte("repos: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	c.Upsert(Project{Name: "main", URL: "http://x", Token: "t"}, false)
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	c2, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(c2.Projects) != 1 || !c2.Projects[0].Default {
		t.Fatalf("projects = %+v", c2.Projects)
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), "repos: []") {
		t.Errorf("repos lost:\n%s", data)
	}
}

func TestLoadInvalidYAML(t *testing.T) {
	home := setHome(t)
	dir := filepath.Join(home, ".dstack")
	_ = os.MkdirAll(dir, 0o700)
	_ = os.WriteFile(filepath.Join(dir, "config.yml"), []byte("projects: [\n"), 0o600)
	if _, err := Load(); err == nil {
		t.Fatal("want a parse error")
	}
}

func TestDefaultHandling(t *testing.T) {
	type step struct {
		op   string // upsert, upsert-default, set-default, delete
		name string
	}
	p := func(n string) Project { return Project{Name: n, URL: "http://" + n, Token: "t-" + n} }
	tests := []struct {
		name        string
		steps       []step
		wantDefault string // "" = none
		wantNames   []string
		wantErr     bool
	}{
		{"first becomes default", []step{{"upsert", "a"}}, "a", []string{"a"}, false},
		{"second does not", []step{{"upsert", "a"}, {"upsert", "b"}}, "a", []string{"a", "b"}, false},
		{"explicit default", []step{{"upsert", "a"}, {"upsert-default", "b"}}, "b", []string{"a", "b"}, false},
		{"replace keeps default and position", []step{{"upsert", "a"}, {"upsert", "b"}, {"upsert", "a"}}, "a", []string{"a", "b"}, false},
		{"set-default", []step{{"upsert", "a"}, {"upsert", "b"}, {"set-default", "b"}}, "b", []string{"a", "b"}, false},
		{"set-default unknown", []step{{"upsert", "a"}, {"set-default", "zz"}}, "a", []string{"a"}, true},
		{"delete non-default", []step{{"upsert", "a"}, {"upsert", "b"}, {"delete", "b"}}, "a", []string{"a"}, false},
		{"delete default, one left", []step{{"upsert", "a"}, {"upsert", "b"}, {"delete", "a"}}, "b", []string{"b"}, false},
		{"delete default, two left", []step{{"upsert", "a"}, {"upsert", "b"}, {"upsert", "c"}, {"delete", "a"}}, "", []string{"b", "c"}, false},
		{"add after default deleted", []step{{"upsert", "a"}, {"upsert", "b"}, {"upsert", "c"}, {"delete", "a"}, {"upsert", "d"}}, "d", []string{"b", "c", "d"}, false},
		{"delete unknown", []step{{"upsert", "a"}, {"delete", "zz"}}, "a", []string{"a"}, true},
		{"delete last", []step{{"upsert", "a"}, {"delete", "a"}}, "", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Config{}
			var err error
			for _, s := range tt.steps {
				switch s.op {
				case "upsert":
					c.Upsert(p(s.name), false)
				case "upsert-default":
					c.Upsert(p(s.name), true)
				case "set-default":
					err = c.SetDefault(s.name)
				case "delete":
					err = c.Delete(s.name)
				}
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrNotFound) {
				t.Errorf("err = %v, want ErrNotFound", err)
			}
			d, ok := c.Default()
			got := ""
			if ok {
				got = d.Name
			}
			if got != tt.wantDefault {
				t.Errorf("default = %q, want %q", got, tt.wantDefault)
			}
			var names []string
			marked := 0
			for _, q := range c.Projects {
				names = append(names, q.Name)
				if q.Default {
					marked++
				}
			}
			if strings.Join(names, ",") != strings.Join(tt.wantNames, ",") {
				t.Errorf("names = %v, want %v", names, tt.wantNames)
			}
			if marked > 1 {
				t.Errorf("%d projects marked default", marked)
			}
		})
	}
}
