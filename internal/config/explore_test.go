package config_test

import (
	"testing"

	_ "github.com/dstackgo/dstack/internal/backends/all"
	"github.com/dstackgo/dstack/internal/config"
)

func TestExplore(t *testing.T) {
	for _, s := range []string{
		"", "# just a comment\n", "- a\n- b\n", "projects: [\n", "projects:\n  - name: a\n    name: b\n",
		"projects:\n- name: main\n  backends:\n  - type: aws\n    creds: {type: default}\n    tags: {? [a]: b}\n",
		"projects:\n- name: main\n  backends:\n  - type: aws\n    creds: {type: default}\n    regions: !foo bar\n",
		"projects:\n- name: main\n  backends:\n  - type: aws\n    creds: {type: default}\n    os_images: {cpu: {name: x, user: u, owner: 123456789012345678901234567890}}\n",
		"base: &b {type: default}\nprojects:\n- name: main\n  backends:\n  - type: aws\n    creds: *b\n",
		"projects:\n- name: main\n  backends:\n  - type: aws\n    creds: {type: default}\n  - <<: {type: gcp}\n    creds: {type: bogus}\n",
		"projects:\n- name: main\n  backends:\n  - {type: aws, creds: {type: default}, foo: 1}\n",
		"projects:\n  - name: main\n    backends:\n      - type: aws\n        creds:\n          type: default\n",
		"projects:\n  - backends: []\n",
		"? [a]\n: b\nprojects: []\n",
		"1: b\nprojects: []\n",
		"projects: []\n---\nprojects: 1\n",
		"projects: []\nfoo: \"\\xZZ\"\n",
		"projects: [{name: a\n",
	} {
		_, err := config.Parse("f.yml", []byte(s), config.Options{Env: func(string) (string, bool) { return "", false }, Getenv: func(string) string { return "" }})
		t.Logf("%q:\n%v", s, err)
	}
}
