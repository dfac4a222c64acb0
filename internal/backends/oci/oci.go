// Package oci is the Oracle Cloud Infrastructure backend.
package oci

import (
	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/schema"
)

// Regions are the OCI regions dstack supports.
var Regions = []string{"eu-frankfurt-1", "eu-milan-1", "me-dubai-1", "uk-london-1", "us-ashburn-1",
	"us-chicago-1", "us-phoenix-1"}

func init() {
	backends.Register(&backends.Driver{
		Type:  "oci",
		Title: "Oracle Cloud Infrastructure",
		Fields: []schema.Field{
			{Name: "regions", Kind: schema.StringList, Enum: Regions, Help: "OCI regions; default: subscribed regions dstack supports"},
			backends.Str("compartment_id", false, "an existing compartment OCID; default: dstack creates one"),
			backends.Creds(
				schema.Variant{Name: "client", Fields: []schema.Field{
					backends.Str("user", true, "the user OCID"),
					backends.Str("tenancy", true, "the tenancy OCID"),
					backends.Str("key_file", false, "the path of the API signing key (read by the server when used)"),
					{Name: "key_content", Kind: schema.String, Secret: true, Help: "the PEM contents of the API signing key"},
					{Name: "pass_phrase", Kind: schema.String, Secret: true, Help: "the key's pass phrase"},
					backends.Str("fingerprint", true, "the API key fingerprint, e.g. 77:32:77:..."),
					backends.Str("region", true, "the home region, e.g. eu-frankfurt-1"),
				}, Rules: []schema.Rule{exactlyOneKey}},
				backends.DefaultCreds(
					backends.Str("file", false, "the OCI config file (default ~/.oci/config)"),
					backends.Str("profile", false, "the profile in that file (default DEFAULT)"),
				),
			),
		},
	})
}

func exactlyOneKey(obj map[string]any, _ *schema.Context) []schema.Issue {
	_, file := obj["key_file"]
	_, content := obj["key_content"]
	switch {
	case file && content:
		return []schema.Issue{schema.At("only one of `key_file` and `key_content` can be specified", "key_content")}
	case !file && !content:
		return []schema.Issue{schema.At("one of `key_file` (a path) or `key_content` (the PEM text) must be specified", "key_file")}
	}
	return nil
}
