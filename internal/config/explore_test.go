package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/dstackgo/dstack/internal/backends/all"
	"github.com/dstackgo/dstack/internal/config"
	"github.com/dstackgo/dstack/internal/testutil"
)

func TestExplore(t *testing.T) {
	sh := testutil.SharedDir(t)
	md, _ := os.ReadFile(filepath.Join(sh, "seed", "backends.md"))
	for _, b := range testutil.YAMLBlocks(string(md)) {
		first := strings.SplitN(b.Text, "\n", 2)[0]
		_, err := config.Parse("b", []byte(b.Text), config.Options{Env: func(string) (string, bool) { return "", false }, Getenv: func(string) string { return "" }})
		t.Logf("line %d %q: %v", b.Line, first, err)
	}
}
