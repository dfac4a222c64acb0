// Package nebius is the Nebius AI Cloud backend.
package nebius

import (
	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/schema"
)

func init() {
	backends.Register(&backends.Driver{
		Type:          "nebius",
		Title:         "Nebius AI Cloud",
		DefaultAPIURL: "api.eu.nebius.cloud:443",
		Fields: []schema.Field{
			{Name: "projects", Kind: schema.StringList, Help: "Nebius project ids, at most one per region"},
			backends.Regions("Nebius regions, e.g. [eu-north1]; default: all regions of the tenancy"),
			{Name: "fabrics", Kind: schema.StringList, Help: "InfiniBand fabrics for clusters; default: all"},
			backends.Creds(schema.Variant{Name: "service_account",
				FileRef: &schema.FileRef{From: "private_key_file", To: "private_key_content"},
				Fields: []schema.Field{
					backends.Str("service_account_id", true, "e.g. serviceaccount-e00dhnv9ftgb3cqmej"),
					backends.Str("public_key_id", true, "e.g. publickey-e00ngaex668htswqy4"),
					backends.Str("private_key_file", false, "the path of the authorized key's PEM file"),
					{Name: "private_key_content", Kind: schema.String, Secret: true, Help: "the PEM contents of the private key"},
				}}),
		},
	})
}
