// Package lambda is the Lambda Cloud backend.
//
// The credential check follows the Lambda Cloud API v1 reference (the "List available instance types"
// operation): GET {base}/instance-types with the API key as a bearer
// token. 401 and 403 (error codes such as global/invalid-api-key) refuse the key. The base URL is
// https://cloud.lambdalabs.com/api/v1, or DSTACK_LAMBDA_API_URL (everything up to and including /api/v1).
//
// Compute (compute.go) and live capacity follow the same document (Lambda Cloud API v1.5): launch,
// get and terminate instances, SSH keys, and the instance types' regions_with_capacity_available.
package lambda

import (
	"context"
	"net/http"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/schema"
)

const (
	typ        = "lambda"
	defaultURL = "https://cloud.lambdalabs.com/api/v1"
)

func init() {
	backends.Register(&backends.Driver{
		Type:          typ,
		Title:         "Lambda",
		DefaultAPIURL: defaultURL,
		Fields: []schema.Field{
			backends.Regions("Lambda regions, e.g. [us-east-1]; default: all"),
			backends.Creds(backends.APIKey("a Lambda Cloud API key")),
		},
		Check:      check,
		NewCompute: newCompute,
		NewOffers:  newOffers,
	})
}

func check(ctx context.Context, cfg backends.Config) error {
	key := cfg.String("creds", "api_key")
	res, err := backends.Probe{
		Provider: "Lambda",
		Method:   http.MethodGet,
		URL:      backends.APIURL(typ, defaultURL) + "/instance-types",
		Header:   http.Header{"Authorization": {"Bearer " + key}},
		Secrets:  []string{key},
	}.Do(ctx)
	if err != nil {
		return err
	}
	if err := res.Expect([]string{"creds", "api_key"}); err != nil {
		return err
	}
	var body struct {
		Data map[string]any `json:"data"`
	}
	if res.JSON(&body) != nil || body.Data == nil {
		return res.Unexpected("the answer is not a list of instance types; is DSTACK_LAMBDA_API_URL right?")
	}
	return nil
}
