// Package runpod is the RunPod backend.
package runpod

import (
	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/schema"
)

func init() {
	backends.Register(&backends.Driver{
		Type:          "runpod",
		Title:         "RunPod",
		DefaultAPIURL: "https://api.runpod.io/graphql",
		Fields: []schema.Field{
			backends.Regions("Secure Cloud datacenter ids (CA-MTL-3) or Community Cloud country codes (CA)"),
			backends.Bool("community_cloud", "also use Community Cloud offers (default true)"),
			backends.Creds(backends.APIKey("a RunPod API key with read & write access")),
		},
	})
}
