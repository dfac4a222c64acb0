// Package cudo is the CUDO Compute backend.
package cudo

import (
	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/schema"
)

func init() {
	backends.Register(&backends.Driver{
		Type:          "cudo",
		Title:         "CUDO Compute",
		DefaultAPIURL: "https://rest.compute.cudo.org/v1",
		Fields: []schema.Field{
			backends.Str("project_id", true, "the CUDO project id"),
			backends.Regions("CUDO data centers, e.g. [no-luster-1]; default: all"),
			backends.Creds(backends.APIKey("a CUDO API key")),
		},
	})
}
