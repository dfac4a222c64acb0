// Package vultr is the Vultr backend.
package vultr

import (
	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/schema"
)

func init() {
	backends.Register(&backends.Driver{
		Type:          "vultr",
		Title:         "Vultr",
		DefaultAPIURL: "https://api.vultr.com/v2",
		Fields: []schema.Field{
			backends.Regions("Vultr regions, e.g. [ewr]; default: all"),
			backends.Creds(backends.APIKey("a Vultr personal access token")),
		},
	})
}
