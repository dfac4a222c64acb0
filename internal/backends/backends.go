// Package backends is the one place where provider backends register, like rclone's fs registry: each
// provider is a package under internal/backends/<type> that declares its config.yml schema as data, its
// rules between fields, and its credential check, and registers them from init. Package
// internal/backends/all imports every provider.
package backends

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/dstackgo/dstack/internal/offers"
	"github.com/dstackgo/dstack/internal/schema"
)

// Driver describes one backend type.
type Driver struct {
	// Type is the `type:` value in config.yml, e.g. "aws".
	Type string
	// Title is the provider's name for people, e.g. "Amazon Web Services".
	Title string
	// Fields are the keys of the backend's entry besides `type`. Secret fields (creds, kubeconfig)
	// are split off, encrypted at rest and shown only to project admins.
	Fields []schema.Field
	// Rules check relations between fields (mutually exclusive keys and the like).
	Rules []schema.Rule
	// DefaultAPIURL is the provider endpoint; DSTACK_<TYPE>_API_URL overrides it (see APIURL).
	DefaultAPIURL string
	// Check makes one cheap real call with the credentials. Nil means this build has no check for the
	// type yet, and the backend is stored as unchecked.
	Check func(ctx context.Context, cfg Config) error
	// NewCompute returns the backend's machine operations for a config; nil means this build cannot
	// provision machines on the type yet.
	NewCompute func(cfg Config) (Compute, error)
	// NewOffers returns the backend's live offer source (the provider's own query, or the catalog
	// enriched with live capacity), to use in place of the catalog source, wrapped in
	// offers.Cached; nil means the catalog alone.
	NewOffers func(cfg Config, tables offers.Tables) offers.Source
}

// Config is a validated backend entry: Values holds every key, including `type` and the secret ones.
type Config struct {
	Type   string
	Values map[string]any
}

// String returns a string value by key path.
func (c Config) String(path ...string) string {
	v, _ := lookup(c.Values, path).(string)
	return v
}

// Strings returns a list of strings by key path, e.g. the regions; items that are not strings are
// left out.
func (c Config) Strings(path ...string) []string {
	var out []string
	switch list := lookup(c.Values, path).(type) {
	case []any:
		for _, v := range list {
			if s, ok := v.(string); ok {
				out = append(out, s)
			}
		}
	case []string:
		out = list
	}
	return out
}

func lookup(m map[string]any, path []string) any {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

// CredentialsError is a credential check's refusal: Msg says what the provider answered and Fields
// names the config keys to fix, each a path like ["creds", "api_key"].
type CredentialsError struct {
	Msg    string
	Fields [][]string
}

func (e *CredentialsError) Error() string {
	if e.Msg == "" {
		return "Invalid credentials"
	}
	return "Invalid credentials: " + e.Msg
}

var (
	mu      sync.RWMutex
	drivers = map[string]*Driver{}
)

// Register adds a driver; a second driver of one type is a programming error.
func Register(d *Driver) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := drivers[d.Type]; dup {
		panic("backends: duplicate type " + d.Type)
	}
	drivers[d.Type] = d
}

// Lookup returns the driver of a type.
func Lookup(typ string) (*Driver, bool) {
	mu.RLock()
	defer mu.RUnlock()
	d, ok := drivers[typ]
	return d, ok
}

// Types lists the registered types in order.
func Types() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(drivers))
	for t := range drivers {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Schema is the union of all registered backends, tagged by `type`: the shape of one item of a
// project's `backends` list and of a backend YAML sent to the API.
func Schema() schema.Field {
	f := schema.Field{Kind: schema.Union, Tag: "type", Help: "a backend: `type` and its fields"}
	for _, t := range Types() {
		d, _ := Lookup(t)
		f.Variants = append(f.Variants, schema.Variant{Name: t, Fields: d.Fields, Rules: d.Rules})
	}
	return f
}

// Validate checks one backend entry (a decoded YAML mapping) and returns the normalised config.
func Validate(v any, ctx *schema.Context) (Config, []schema.Issue) {
	out, issues := schema.Validate(v, Schema(), ctx)
	t, _ := out["type"].(string)
	return Config{Type: t, Values: out}, issues
}

// Split separates a config into its stored part and its secret part, by the drivers' Secret fields.
func Split(c Config) (public, secret map[string]any) {
	public, secret = map[string]any{}, map[string]any{}
	d, ok := Lookup(c.Type)
	isSecret := map[string]bool{}
	if ok {
		for _, f := range d.Fields {
			isSecret[f.Name] = f.Secret
		}
	}
	for k, v := range c.Values {
		if isSecret[k] {
			secret[k] = v
		} else {
			public[k] = v
		}
	}
	return public, secret
}

// Join is the inverse of Split.
func Join(typ string, public, secret map[string]any) Config {
	v := make(map[string]any, len(public)+len(secret)+1)
	for k, x := range public {
		v[k] = x
	}
	for k, x := range secret {
		v[k] = x
	}
	v["type"] = typ
	return Config{Type: typ, Values: v}
}

// APIURL returns the endpoint a backend should call: DSTACK_<TYPE>_API_URL when set (tests point it at
// fakes; users at proxies or private endpoints), else def.
func APIURL(typ, def string) string {
	if u := os.Getenv(EnvAPIURL(typ)); u != "" {
		return strings.TrimRight(u, "/")
	}
	return def
}

// EnvAPIURL names the variable that overrides a backend's endpoint.
func EnvAPIURL(typ string) string {
	return fmt.Sprintf("DSTACK_%s_API_URL", strings.ToUpper(typ))
}
