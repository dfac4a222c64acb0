// Package testutil finds the project's shared reference material for tests.
package testutil

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// SharedDir returns the shared/ folder that sits beside the repository (DSTACK_SHARED_DIR overrides),
// or skips the test when this checkout has none.
func SharedDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("DSTACK_SHARED_DIR"); d != "" {
		return d
	}
	dir, _ := os.Getwd()
	for {
		cand := filepath.Join(dir, "shared")
		if st, err := os.Stat(filepath.Join(cand, "seed")); err == nil && st.IsDir() {
			return cand
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("no shared/ reference folder beside this checkout; set DSTACK_SHARED_DIR")
		}
		dir = parent
	}
}

// YAMLBlock is a fenced ```yaml block of a Markdown document, dedented, with the line it starts on.
type YAMLBlock struct {
	Line int
	Text string
}

var fence = regexp.MustCompile("^(\\s*)```(\\w*)\\s*$")

// YAMLBlocks returns the ```yaml blocks of a Markdown text.
func YAMLBlocks(md string) []YAMLBlock {
	var out []YAMLBlock
	lines := strings.Split(md, "\n")
	for i := 0; i < len(lines); i++ {
		m := fence.FindStringSubmatch(lines[i])
		if m == nil || m[2] != "yaml" {
			continue
		}
		indent, start := len(m[1]), i+1
		var body []string
		for i++; i < len(lines) && !fence.MatchString(lines[i]); i++ {
			l := lines[i]
			if len(l) >= indent && strings.TrimSpace(l[:indent]) == "" {
				l = l[indent:]
			}
			body = append(body, l)
		}
		out = append(out, YAMLBlock{Line: start + 1, Text: strings.Join(body, "\n") + "\n"})
	}
	return out
}
