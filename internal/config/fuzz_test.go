package config_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/dstackgo/dstack/internal/config"
	"github.com/dstackgo/dstack/internal/schema"
)

var fuzzSeeds = []string{
	// valid
	"projects: []\n",
	`projects:
- name: main
  backends:
  - type: aws
    creds: {type: access_key, access_key: "${SET}", secret_key: $${SET}}
    os_images: {nvidia: {name: n, owner: 123456789012, user: u}}
    tags: {a: "1", b: 2}
  - type: kubernetes
    kubeconfig: {filename: ~/kubeconfig}
    networking: {ssh_host: h, ssh_port: 32000}
encryption:
  keys: [{type: aes, name: k1, secret: cR2r1JmkPyL6edBQeHKz6ZBjCfS2oWk87Gc2G3wHVoA=}, {type: identity}]
default_permissions: {allow_non_admins_create_projects: false}
plugins: [a]
`,
	// anchors, aliases and merge keys
	`projects:
- name: a
  backends:
  - &lambda
    type: lambda
    creds: &creds {type: api_key, api_key: k}
- name: b
  backends:
  - *lambda
  - <<: *lambda
    type: vultr
    creds: *creds
`,
	"projects: &p [*p]\n",
	"a: &a [*a, *a]\nprojects: []\n",
	// flow style and tags
	`{projects: [{name: main, backends: [{type: runpod, community_cloud: !!bool "true", creds: {type: api_key, api_key: !!str 12}}]}]}`,
	"projects: !!seq []\nplugins: !custom [x]\n",
	"projects: !!map {}\n",
	"!!binary aGVsbG8=\n",
	// deep nesting
	strings.Repeat("[", 200) + strings.Repeat("]", 200) + "\n",
	"projects:\n" + strings.Repeat("- ", 100) + "x\n",
	"projects:\n- name: main\n  backends:\n  - type: aws\n    creds: {type: default}\n    os_images: {cpu: {name: {a: {b: {c: [1, [2, [3]]]}}}}}\n",
	// non-string keys
	"1: a\ntrue: b\nnull: c\n3.5: d\nprojects: []\n",
	"? [a, b]\n: c\nprojects: []\n",
	"? {a: b}\n: c\n",
	"projects:\n- {name: main, 7: x, backends: [{type: lambda, [k]: v}]}\n",
	// huge and odd numbers
	"projects:\n- name: main\n  backends:\n  - type: kubernetes\n    kubeconfig: {data: x}\n    networking: {ssh_port: 99999999999999999999999999999}\n",
	"projects:\n- name: main\n  backends:\n  - type: kubernetes\n    kubeconfig: {data: x}\n    networking: {ssh_port: -9223372036854775808}\n",
	"projects:\n- name: main\n  backends:\n  - type: kubernetes\n    kubeconfig: {data: x}\n    networking: {ssh_port: 0x7fff}\n",
	"projects:\n- name: main\n  backends:\n  - type: kubernetes\n    kubeconfig: {data: x}\n    networking: {ssh_port: .inf}\n",
	"projects:\n- name: main\n  backends:\n  - type: aws\n    creds: {type: default}\n    os_images: {cpu: {name: n, user: u, owner: 1e400}}\n",
	"projects:\n- name: main\n  backends:\n  - type: aws\n    creds: {type: default}\n    tags: {a: .nan, b: 18446744073709551616}\n",
	// invalid
	"",
	"- a\n",
	"projects: [\n",
	"projects: []\n---\nprojects: []\n",
	"projects:\n- name: main\n  name: again\n",
	"projects:\n- name: ${UNSET}\n  backends: [{type: gcp, creds: {type: service_account, filename: ~/nope.json}}]\n",
	"projects:\n- name: main\n  backends:\n  - type: nebius\n    creds: {type: service_account, service_account_id: s, public_key_id: p, private_key_file: /dev/null}\n",
	"\t\x00\xff",
}

// FuzzParse: Parse never panics; it either returns a config that survives a round trip through YAML, or a
// *schema.Error whose every issue says something.
func FuzzParse(f *testing.F) {
	home := f.TempDir()
	f.Setenv("HOME", home)
	if err := os.WriteFile(filepath.Join(home, "kubeconfig"), []byte("apiVersion: v1\n"), 0o600); err != nil {
		f.Fatal(err)
	}
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	o := opts(nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := config.Parse("fuzz.yml", data, o)
		if err != nil {
			se, ok := schema.IsError(err)
			if !ok {
				t.Fatalf("error %T is not a *schema.Error: %v", err, err)
			}
			if len(se.Issues) == 0 {
				t.Fatal("a *schema.Error without issues")
			}
			for _, is := range se.Issues {
				if strings.TrimSpace(is.Msg) == "" {
					t.Fatalf("an issue without a message: %+v", is)
				}
				if is.Line < 0 || is.Col < 0 {
					t.Fatalf("negative position: %+v", is)
				}
			}
			return
		}
		if s == nil {
			t.Fatal("nil config without an error")
		}
		if _, err := json.Marshal(s); err != nil {
			t.Fatalf("the config does not marshal to JSON: %v", err)
		}
		out, err := yaml.Marshal(document(s))
		if err != nil {
			t.Fatalf("the config does not marshal to YAML: %v", err)
		}
		s2, err := config.Parse("again.yml", out, o)
		if err != nil {
			t.Fatalf("the re-marshalled config is refused: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(s, s2) {
			t.Fatalf("round trip changed the config:\n%#v\n%#v\n%s", s, s2, out)
		}
	})
}

// document turns a loaded config back into config.yml's shape, with $ escaped so that interpolation
// gives back the loaded values.
func document(s *config.Server) map[string]any {
	projects := []any{}
	for _, p := range s.Projects {
		var bs []any
		for _, b := range p.Backends {
			bs = append(bs, escapeDollars(b.Values))
		}
		projects = append(projects, map[string]any{"name": escapeDollars(p.Name), "backends": bs})
	}
	doc := map[string]any{"projects": projects, "default_permissions": map[string]any{
		"allow_non_admins_create_projects":   s.DefaultPermissions.AllowNonAdminsCreateProjects,
		"allow_non_admins_manage_ssh_fleets": s.DefaultPermissions.AllowNonAdminsManageSSHFleets,
	}}
	if s.HasEncryption {
		keys := []any{}
		for _, k := range s.EncryptionKeys {
			km := map[string]any{"type": k.Type}
			if k.Type == "aes" {
				km["name"], km["secret"] = escapeDollars(k.Name), escapeDollars(k.Secret)
			}
			keys = append(keys, km)
		}
		doc["encryption"] = map[string]any{"keys": keys}
	}
	if s.Plugins != nil {
		doc["plugins"] = escapeDollars(s.Plugins)
	}
	return doc
}

func escapeDollars(v any) any {
	switch t := v.(type) {
	case string:
		return strings.ReplaceAll(t, "$", "$$")
	case []string:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = escapeDollars(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = escapeDollars(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = escapeDollars(e)
		}
		return out
	}
	return v
}
