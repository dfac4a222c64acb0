// Package config reads the server's config.yml: projects and their backends, encryption keys and default
// permissions, in the format dstack documents, plus ${VAR} interpolation. Every problem in the file is
// reported at once as FILE:LINE:COL: path: message.
package config

import (
	"encoding/base64"
	"fmt"
	"os"
	"strings"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/schema"
)

// Server is a loaded config.yml.
type Server struct {
	Projects           []Project
	EncryptionKeys     []EncryptionKey
	HasEncryption      bool // an `encryption` section was given (possibly with no keys)
	DefaultPermissions DefaultPermissions
	Plugins            []string
}

// Project is one `projects[]` entry.
type Project struct {
	Name     string
	Backends []backends.Config
}

// EncryptionKey is one `encryption.keys[]` entry: type aes (Name, Secret) or identity.
type EncryptionKey struct{ Type, Name, Secret string }

// DefaultPermissions are the server-wide permission switches; both default to true.
type DefaultPermissions struct {
	AllowNonAdminsCreateProjects  bool
	AllowNonAdminsManageSSHFleets bool
}

// Options control how a file is read.
type Options struct {
	// Env resolves ${VAR}; nil means os.LookupEnv.
	Env func(string) (string, bool)
	// Getenv reads server settings such as DSTACK_DEFAULT_CREDS_DISABLED; nil means os.Getenv.
	Getenv func(string) string
}

// ProjectName is the accepted form of a project name.
var ProjectName = backends.Pattern(`^[a-zA-Z0-9-_]{1,50}$`)

// Load reads and checks the file at path.
func Load(path string, opts Options) (*Server, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, opts)
}

// Parse checks data read from name. The error, if any, is a *schema.Error listing every issue.
func Parse(name string, data []byte, opts Options) (*Server, error) {
	doc, issues := schema.ParseYAML(name, data)
	if issues != nil {
		return nil, schema.AsError(name, issues)
	}
	ctx := &schema.Context{ReadFiles: true, Env: opts.Env, Getenv: opts.Getenv}
	if ctx.Env == nil {
		ctx.Env = os.LookupEnv
	}
	if ctx.Getenv == nil {
		ctx.Getenv = os.Getenv
	}
	out, issues := schema.Validate(doc.Value, Schema(), ctx)
	if len(issues) > 0 {
		doc.Locate(issues)
		return nil, schema.AsError(name, issues)
	}
	return build(out), nil
}

// Schema is the shape of config.yml.
func Schema() schema.Field {
	backendList := backends.Schema()
	backendList.Name, backendList.Kind, backendList.Help = "backends", schema.ObjectList, "a list of backends, each with `type`"
	return schema.Field{Kind: schema.Object, Help: "a mapping with `projects`", Fields: []schema.Field{
		{Name: "projects", Kind: schema.ObjectList, Required: true, Help: "a list of projects, each with `name` and `backends`",
			Hint: misplacedBackendKey,
			Fields: []schema.Field{
				{Name: "name", Kind: schema.String, Required: true, Pattern: ProjectName,
					Help: "a project name of letters, digits, - and _ (at most 50)"},
				backendList,
			},
			Rules: []schema.Rule{oneBackendPerType}},
		{Name: "encryption", Kind: schema.Object, Help: "`keys`: the keys that encrypt secrets at rest", Fields: []schema.Field{
			{Name: "keys", Kind: schema.ObjectList, Tag: "type", Help: "a list of keys; the first encrypts, all decrypt",
				Variants: []schema.Variant{
					{Name: "aes", Fields: []schema.Field{
						{Name: "name", Kind: schema.String, Required: true, Pattern: backends.Pattern(`^[a-zA-Z0-9]+$`),
							Help: "a key name of letters and digits"},
						{Name: "secret", Kind: schema.String, Required: true, Secret: true, Check: aesSecret,
							Help: "base64 of 32 random bytes: head -c 32 /dev/urandom | base64"},
					}},
					{Name: "identity"},
				}},
		}},
		{Name: "default_permissions", Kind: schema.Object, Fields: []schema.Field{
			backends.Bool("allow_non_admins_create_projects", "let users who are not global admins create projects (default true)"),
			backends.Bool("allow_non_admins_manage_ssh_fleets", "let project members who are not admins manage SSH fleets (default true)"),
		}},
		{Name: "plugins", Kind: schema.StringList, Help: "plugin names (accepted; plugins are not supported by this server)"},
	}, Rules: []schema.Rule{uniqueProjects}}
}

func aesSecret(v any) string {
	s, _ := v.(string)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "the secret is not valid base64; expected base64 of 32 random bytes (head -c 32 /dev/urandom | base64)"
	}
	if len(b) != 32 {
		return fmt.Sprintf("the secret decodes to %d bytes; AES-256 needs exactly 32 (head -c 32 /dev/urandom | base64)", len(b))
	}
	return ""
}

// misplacedBackendKey explains a backend key written at the project level, a common indentation slip.
func misplacedBackendKey(key string) string {
	var owners []string
	for _, t := range backends.Types() {
		d, _ := backends.Lookup(t)
		for _, f := range d.Fields {
			if f.Name == key {
				owners = append(owners, t)
			}
		}
	}
	if len(owners) == 0 {
		return ""
	}
	which := strings.Join(owners, ", ")
	if len(owners) > 3 {
		which = "most types"
	}
	return fmt.Sprintf("projects have only `name` and `backends`; `%s` is a backend key (%s): indent it under the backend's entry in `backends`, next to its `type`",
		key, which)
}

func oneBackendPerType(obj map[string]any, _ *schema.Context) []schema.Issue {
	seen := map[string]int{}
	var issues []schema.Issue
	list, _ := obj["backends"].([]any)
	for i, b := range list {
		m, _ := b.(map[string]any)
		t, _ := m["type"].(string)
		if t == "" {
			continue
		}
		if first, dup := seen[t]; dup {
			issues = append(issues, schema.At(fmt.Sprintf("a project can have one backend of each type; `%s` is already configured at backends[%d]", t, first),
				"backends", fmt.Sprintf("[%d]", i), "type"))
			continue
		}
		seen[t] = i
	}
	return issues
}

func uniqueProjects(obj map[string]any, _ *schema.Context) []schema.Issue {
	seen := map[string]int{}
	var issues []schema.Issue
	list, _ := obj["projects"].([]any)
	for i, p := range list {
		m, _ := p.(map[string]any)
		n, _ := m["name"].(string)
		if n == "" {
			continue
		}
		if first, dup := seen[strings.ToLower(n)]; dup {
			issues = append(issues, schema.At(fmt.Sprintf("project %q is already listed at projects[%d]; names are case-insensitive", n, first),
				"projects", fmt.Sprintf("[%d]", i), "name"))
			continue
		}
		seen[strings.ToLower(n)] = i
	}
	return issues
}

func build(out map[string]any) *Server {
	s := &Server{DefaultPermissions: DefaultPermissions{true, true}}
	for _, p := range list(out["projects"]) {
		pm := p.(map[string]any)
		proj := Project{Name: pm["name"].(string)}
		for _, b := range list(pm["backends"]) {
			bm := b.(map[string]any)
			proj.Backends = append(proj.Backends, backends.Config{Type: bm["type"].(string), Values: bm})
		}
		s.Projects = append(s.Projects, proj)
	}
	if enc, ok := out["encryption"].(map[string]any); ok {
		s.HasEncryption = true
		for _, k := range list(enc["keys"]) {
			km := k.(map[string]any)
			name, _ := km["name"].(string)
			secret, _ := km["secret"].(string)
			s.EncryptionKeys = append(s.EncryptionKeys, EncryptionKey{Type: km["type"].(string), Name: name, Secret: secret})
		}
	}
	if dp, ok := out["default_permissions"].(map[string]any); ok {
		if v, ok := dp["allow_non_admins_create_projects"].(bool); ok {
			s.DefaultPermissions.AllowNonAdminsCreateProjects = v
		}
		if v, ok := dp["allow_non_admins_manage_ssh_fleets"].(bool); ok {
			s.DefaultPermissions.AllowNonAdminsManageSSHFleets = v
		}
	}
	for _, p := range list(out["plugins"]) {
		s.Plugins = append(s.Plugins, p.(string))
	}
	return s
}

func list(v any) []any { l, _ := v.([]any); return l }
