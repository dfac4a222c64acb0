// Package vastai is the Vast.ai backend.
//
// The credential check follows the Vast.ai REST API v0 reference ("show instances",
// GET /api/v0/instances): the key goes in the api_key query parameter, as the vastai CLI sends it, and
// as a bearer token too. 401 and 403 refuse it, and so does an answer of {"success": false, ...}. The base URL is https://console.vast.ai/api/v0, or
// DSTACK_VASTAI_API_URL (everything up to and including /api/v0).
//
// Offers (the marketplace search) and containers follow the same API; see compute.go.
package vastai

import (
	"context"
	"net/http"
	"net/url"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/schema"
)

const (
	typ        = "vastai"
	defaultURL = "https://console.vast.ai/api/v0"
)

func init() {
	backends.Register(&backends.Driver{
		Type:          typ,
		Title:         "Vast.ai",
		DefaultAPIURL: defaultURL,
		Fields: []schema.Field{
			backends.Regions("accepted for compatibility; Vast.ai offers are not filtered by region"),
			backends.Creds(backends.APIKey("a Vast.ai API key")),
		},
		Check:      check,
		NewCompute: newCompute,
		NewOffers:  newOffers,
	})
}

func check(ctx context.Context, cfg backends.Config) error {
	key := cfg.String("creds", "api_key")
	res, err := backends.Probe{
		Provider: "Vast.ai",
		Method:   http.MethodGet,
		URL:      backends.APIURL(typ, defaultURL) + "/instances",
		Query:    url.Values{"owner": {"me"}, "api_key": {key}},
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
		Success   *bool `json:"success"`
		Instances []any `json:"instances"`
	}
	if res.JSON(&body) != nil {
		return res.Unexpected("the answer is not a list of instances; is DSTACK_VASTAI_API_URL right?")
	}
	if body.Success != nil && !*body.Success {
		// Older API front ends answer 200 with {"success": false, "error": ..., "msg": ...}.
		return res.Refuse([]string{"creds", "api_key"})
	}
	return nil
}
