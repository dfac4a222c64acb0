// Package cudo is the CUDO Compute backend.
//
// The credential check follows the CUDO Compute REST API v1 reference (the "get the current user"
// operation, GET /v1/auth): the API key goes as a bearer token, 401 and 403 (gRPC
// gateway errors such as {"code":16,"message":"unauthenticated"}) refuse it. The check does not look at
// project_id: it is one call, and a wrong project shows when the backend is used. The base URL is
// https://rest.compute.cudo.org/v1, or DSTACK_CUDO_API_URL (everything up to and including /v1).
//
// VMs and live offers follow the same document; see compute.go.
package cudo

import (
	"context"
	"net/http"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/schema"
)

const (
	typ        = "cudo"
	defaultURL = "https://rest.compute.cudo.org/v1"
)

func init() {
	backends.Register(&backends.Driver{
		Type:          typ,
		Title:         "CUDO Compute",
		DefaultAPIURL: defaultURL,
		Fields: []schema.Field{
			backends.Str("project_id", true, "the CUDO project id"),
			backends.Regions("CUDO data centers, e.g. [no-luster-1]; default: all"),
			backends.Creds(backends.APIKey("a CUDO API key")),
		},
		Check:      check,
		NewCompute: newCompute,
		NewOffers:  newOffers,
	})
}

func check(ctx context.Context, cfg backends.Config) error {
	key := cfg.String("creds", "api_key")
	res, err := backends.Probe{
		Provider: "CUDO Compute",
		Method:   http.MethodGet,
		URL:      backends.APIURL(typ, defaultURL) + "/auth",
		Header:   http.Header{"Authorization": {"Bearer " + key}},
		Secrets:  []string{key},
	}.Do(ctx)
	if err != nil {
		return err
	}
	if err := res.Expect([]string{"creds", "api_key"}); err != nil {
		return err
	}
	var v map[string]any
	if res.JSON(&v) != nil {
		return res.Unexpected("the answer is not JSON; is DSTACK_CUDO_API_URL right?")
	}
	return nil
}
