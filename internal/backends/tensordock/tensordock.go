// Package tensordock is the TensorDock backend.
package tensordock

import (
	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/schema"
)

func init() {
	backends.Register(&backends.Driver{
		Type:          "tensordock",
		Title:         "TensorDock",
		DefaultAPIURL: "https://marketplace.tensordock.com/api/v0",
		Fields: []schema.Field{
			backends.Regions("accepted for compatibility; TensorDock offers are not filtered by region"),
			backends.Creds(schema.Variant{Name: "api_key", Fields: []schema.Field{
				backends.Secret("api_key", "the authorization key"),
				backends.Secret("api_token", "the authorization token"),
			}}),
		},
	})
}
