// Package vastai is the Vast.ai backend.
package vastai

import (
	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/schema"
)

func init() {
	backends.Register(&backends.Driver{
		Type:          "vastai",
		Title:         "Vast.ai",
		DefaultAPIURL: "https://console.vast.ai/api/v0",
		Fields: []schema.Field{
			backends.Regions("accepted for compatibility; Vast.ai offers are not filtered by region"),
			backends.Creds(backends.APIKey("a Vast.ai API key")),
		},
	})
}
