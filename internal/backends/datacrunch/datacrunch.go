// Package datacrunch is the DataCrunch (Verda) backend.
package datacrunch

import (
	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/schema"
)

func init() {
	backends.Register(&backends.Driver{
		Type:          "datacrunch",
		Title:         "DataCrunch",
		DefaultAPIURL: "https://api.datacrunch.io/v1",
		Fields: []schema.Field{
			backends.Regions("DataCrunch locations, e.g. [FIN-01]; default: all"),
			backends.Creds(schema.Variant{Name: "api_key", Fields: []schema.Field{
				backends.Secret("client_id", "the REST API client id"),
				backends.Secret("client_secret", "the REST API client secret"),
			}}),
		},
	})
}
