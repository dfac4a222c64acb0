package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/config"
	"github.com/dstackgo/dstack/internal/schema"
	"github.com/dstackgo/dstack/internal/testutil"
)

// seedFiles are the files the seed's examples name, relative to HOME, with the contents this test gives
// them.
var seedFiles = map[string]string{
	".dstack/server/gcp-024ed630eab5.json": `{"type": "service_account", "project_id": "gcp-project-id"}` + "\n",
	"path/to/key.pem":                      "-----BEGIN PRIVATE KEY-----\nseed-test-key\n-----END PRIVATE KEY-----\n",
	".kube/config":                         "apiVersion: v1\nkind: Config\nclusters: []\n",
}

// seedHome makes a HOME holding seedFiles.
func seedHome(t *testing.T) {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	for name, content := range seedFiles {
		p := filepath.Join(home, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func seedBlocks(t *testing.T) []testutil.YAMLBlock {
	t.Helper()
	md, err := os.ReadFile(filepath.Join(testutil.SharedDir(t), "seed", "backends.md"))
	if err != nil {
		t.Fatal(err)
	}
	return testutil.YAMLBlocks(string(md))
}

var (
	topProjects = regexp.MustCompile(`(?m)^projects:`)
	topType     = regexp.MustCompile(`(?m)^type:`)
	typeLine    = regexp.MustCompile(`(?m)^\s*-\s+type:\s*(\S+)`)
)

// lineOf returns the 1-based line of the block's first line matching re, and that line's indentation.
func lineOf(text string, re *regexp.Regexp) (line, indent int) {
	for i, l := range strings.Split(text, "\n") {
		if re.MatchString(l) {
			return i + 1, len(l) - len(strings.TrimLeft(l, " "))
		}
	}
	return 0, 0
}

// TestSeedExamples loads every whole config.yml example of the seed document. The two Azure network
// examples leave out tenant_id and subscription_id (which the format requires), and one of them also
// indents regions and vpc_ids at the project level: those are refused, each problem named at its line.
func TestSeedExamples(t *testing.T) {
	seedHome(t)
	var loaded, refused, misplaced int
	filesSeen := map[string]bool{}
	for _, b := range seedBlocks(t) {
		// A whole config.yml has `projects:` at the top; a backend snippet has `type:` there (the Nebius
		// "Projects" snippet has both: it is a backend whose `projects` lists Nebius projects).
		if !topProjects.MatchString(b.Text) || topType.MatchString(b.Text) {
			continue
		}
		name := fmt.Sprintf("backends.md@%d", b.Line)
		s, err := config.Parse(name, []byte(b.Text), opts(nil))

		if strings.Contains(b.Text, "type: azure") && strings.Contains(b.Text, "vpc_ids:") && !strings.Contains(b.Text, "tenant_id") {
			refused++
			if err == nil {
				t.Errorf("%s: the Azure example without tenant_id and subscription_id was accepted", name)
				continue
			}
			se, ok := schema.IsError(err)
			if !ok {
				t.Fatalf("%s: %T %v", name, err, err)
			}
			backendLine, backendIndent := lineOf(b.Text, regexp.MustCompile(`^\s*- type: azure`))
			wants := []want{
				{backendLine, backendIndent + 3, "projects[0].backends[0].tenant_id", "required field (the Azure tenant id"},
				{backendLine, backendIndent + 3, "projects[0].backends[0].subscription_id", "required field (the Azure subscription id"},
			}
			// Are regions and vpc_ids at the project's level (beside `backends:`) rather than the backend's?
			_, backendsIndent := lineOf(b.Text, regexp.MustCompile(`^\s*backends:`))
			if l, ind := lineOf(b.Text, regexp.MustCompile(`^\s*vpc_ids:`)); ind == backendsIndent {
				misplaced++
				rl, rind := lineOf(b.Text, regexp.MustCompile(`^\s*regions:`))
				wants = append(wants,
					want{rl, rind + 1, "projects[0].regions", "`regions` is a backend key (most types): indent it under the backend's entry in `backends`, next to its `type`"},
					want{l, ind + 1, "projects[0].vpc_ids", "`vpc_ids` is a backend key (aws, azure): indent it under the backend's entry in `backends`, next to its `type`"})
			}
			checkIssues(t, se.Issues, wants)
			for _, is := range se.Issues {
				t.Logf("refused as expected (seed line %d): %s", b.Line+is.Line-1, schema.FormatIssue(name, is))
			}
			continue
		}

		if err != nil {
			t.Errorf("seed example at line %d is refused:\n%v\n%s", b.Line, err, b.Text)
			continue
		}
		loaded++
		// The example's one backend is what was loaded, with the files it names read in.
		m := typeLine.FindStringSubmatch(b.Text)
		if len(s.Projects) != 1 || s.Projects[0].Name != "main" || len(s.Projects[0].Backends) != 1 || m == nil || s.Projects[0].Backends[0].Type != m[1] {
			t.Errorf("seed example at line %d loaded as %+v", b.Line, s)
			continue
		}
		be := s.Projects[0].Backends[0]
		for file, path := range map[string][]string{
			"~/.dstack/server/gcp-024ed630eab5.json": {"creds", "data"},
			"~/path/to/key.pem":                      {"creds", "private_key_content"},
			"~/.kube/config":                         {"kubeconfig", "data"},
		} {
			if !strings.Contains(b.Text, file) {
				continue
			}
			filesSeen[file] = true
			if got, want := be.String(path...), seedFiles[strings.TrimPrefix(file, "~/")]; got != want {
				t.Errorf("seed example at line %d: %s = %q, want the contents of %s", b.Line, strings.Join(path, "."), got, file)
			}
		}
	}
	t.Logf("%d whole config.yml examples loaded, %d refused as expected", loaded, refused)
	if loaded+refused < 20 {
		t.Errorf("found only %d whole config.yml examples in the seed (want at least 20)", loaded+refused)
	}
	if refused != 2 || misplaced != 1 {
		t.Errorf("found %d Azure examples without tenant_id (%d with misplaced keys); want 2 (1)", refused, misplaced)
	}
	if len(filesSeen) != 3 {
		t.Errorf("file references seen: %v; want all three", filesSeen)
	}
}

// TestSeedUISnippets: the two Nebius backend snippets meant for the UI are valid backend entries.
func TestSeedUISnippets(t *testing.T) {
	seedHome(t)
	n := 0
	for _, b := range seedBlocks(t) {
		if !strings.HasPrefix(b.Text, "type: nebius") {
			continue
		}
		n++
		doc, issues := schema.ParseYAML("snippet", []byte(b.Text))
		if issues != nil {
			t.Fatalf("snippet at line %d: %v", b.Line, issues)
		}
		cfg, issues := backends.Validate(doc.Value, &schema.Context{ReadFiles: true})
		if len(issues) > 0 {
			doc.Locate(issues)
			t.Errorf("snippet at line %d: %v", b.Line, schema.AsError("snippet", issues))
			continue
		}
		if cfg.Type != "nebius" {
			t.Errorf("snippet at line %d: type %q", b.Line, cfg.Type)
		}
		key := cfg.String("creds", "private_key_content")
		if strings.Contains(b.Text, "private_key_file") {
			if key != seedFiles["path/to/key.pem"] {
				t.Errorf("snippet at line %d: private_key_content %q, want the file's contents", b.Line, key)
			}
		} else if !strings.HasPrefix(key, "-----BEGIN PRIVATE KEY-----\n") || !strings.HasSuffix(key, "-----END PRIVATE KEY-----\n") {
			t.Errorf("snippet at line %d: private_key_content %q", b.Line, key)
		}
		if strings.Contains(b.Text, "projects:") {
			if p, _ := cfg.Values["projects"].([]any); len(p) != 2 {
				t.Errorf("snippet at line %d: projects %#v", b.Line, cfg.Values["projects"])
			}
		}
	}
	if n != 2 {
		t.Errorf("found %d `type: nebius` snippets, want 2", n)
	}
}
