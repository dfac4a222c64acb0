// Package lambda is the Lambda Cloud backend.
package lambda

import (
	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/schema"
)

func init() {
	backends.Register(&backends.Driver{
		Type:          "lambda",
		Title:         "Lambda",
		DefaultAPIURL: "https://cloud.lambdalabs.com/api/v1",
		Fields: []schema.Field{
			backends.Regions("Lambda regions, e.g. [us-east-1]; default: all"),
			backends.Creds(backends.APIKey("a Lambda Cloud API key")),
		},
	})
}
