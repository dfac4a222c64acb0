package backends

import (
	"fmt"
	"regexp"

	"github.com/dstackgo/dstack/internal/schema"
)

// Shared field declarations, so every provider spells the common keys the same way.

// Regions is the optional `regions` list.
func Regions(help string) schema.Field {
	return schema.Field{Name: "regions", Kind: schema.StringList, Help: help}
}

// Creds declares the secret `creds` union with the given variants.
func Creds(variants ...schema.Variant) schema.Field {
	return schema.Field{Name: "creds", Kind: schema.Union, Required: true, Secret: true,
		Help: "the credentials: `type` and its keys", Variants: variants}
}

// APIKey is the common `{type: api_key, api_key}` credentials variant.
func APIKey(help string) schema.Variant {
	return schema.Variant{Name: "api_key", Fields: []schema.Field{
		{Name: "api_key", Kind: schema.String, Required: true, Secret: true, Help: help},
	}}
}

// DefaultCreds is `{type: default}`, refused when the server sets DSTACK_DEFAULT_CREDS_DISABLED.
func DefaultCreds(extra ...schema.Field) schema.Variant {
	return schema.Variant{Name: "default", Fields: extra, Rules: []schema.Rule{
		func(_ map[string]any, ctx *schema.Context) []schema.Issue {
			if ctx.Getenv != nil && ctx.Getenv("DSTACK_DEFAULT_CREDS_DISABLED") != "" {
				return []schema.Issue{schema.At("default credentials are disabled on this server (DSTACK_DEFAULT_CREDS_DISABLED is set); give explicit credentials", "type")}
			}
			return nil
		},
	}}
}

// Tags is the optional `tags` map, limited as the clouds limit it.
func Tags(help string) schema.Field {
	return schema.Field{Name: "tags", Kind: schema.StringMap, Help: help, Check: func(v any) string {
		if m, _ := v.(map[string]any); len(m) > 25 {
			return fmt.Sprintf("at most 25 tags are allowed, got %d", len(m))
		}
		return ""
	}}
}

// Bool is an optional true/false key.
func Bool(name, help string) schema.Field {
	return schema.Field{Name: name, Kind: schema.Bool, Help: help}
}

// Str is a string key.
func Str(name string, required bool, help string) schema.Field {
	return schema.Field{Name: name, Kind: schema.String, Required: required, Help: help}
}

// Secret is a required secret string key.
func Secret(name, help string) schema.Field {
	return schema.Field{Name: name, Kind: schema.String, Required: true, Secret: true, Help: help}
}

// Pattern compiles a regexp for a field.
func Pattern(re string) *regexp.Regexp { return regexp.MustCompile(re) }

// Exclusive is a rule refusing two keys set together.
func Exclusive(a, b string) schema.Rule {
	return func(obj map[string]any, _ *schema.Context) []schema.Issue {
		if obj[a] != nil && obj[b] != nil {
			return []schema.Issue{schema.At(fmt.Sprintf("only one of `%s` and `%s` can be specified; remove one", a, b), b)}
		}
		return nil
	}
}
