// Package tensordock is the TensorDock backend.
//
// The credential check follows the TensorDock Marketplace API v0 documentation ("Test authorization"): POST
// {base}/auth/test with the form fields api_key and api_token; {"success": true} accepts them,
// {"success": false} or 401/403 refuses them. The base URL is https://marketplace.tensordock.com/api/v0,
// or DSTACK_TENSORDOCK_API_URL (everything up to and including /api/v0).
//
// VMs and live offers follow the same document; see compute.go.
package tensordock

import (
	"context"
	"net/http"
	"net/url"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/schema"
)

const (
	typ        = "tensordock"
	defaultURL = "https://marketplace.tensordock.com/api/v0"
)

func init() {
	backends.Register(&backends.Driver{
		Type:          typ,
		Title:         "TensorDock",
		DefaultAPIURL: defaultURL,
		Fields: []schema.Field{
			backends.Regions("accepted for compatibility; TensorDock offers are not filtered by region"),
			backends.Creds(schema.Variant{Name: "api_key", Fields: []schema.Field{
				backends.Secret("api_key", "the authorization key"),
				backends.Secret("api_token", "the authorization token"),
			}}),
		},
		Check:      check,
		NewCompute: newCompute,
		NewOffers:  newOffers,
	})
}

var fields = [][]string{{"creds", "api_key"}, {"creds", "api_token"}}

func check(ctx context.Context, cfg backends.Config) error {
	key, token := cfg.String("creds", "api_key"), cfg.String("creds", "api_token")
	res, err := backends.Probe{
		Provider:    "TensorDock",
		Method:      http.MethodPost,
		URL:         backends.APIURL(typ, defaultURL) + "/auth/test",
		Body:        []byte(url.Values{"api_key": {key}, "api_token": {token}}.Encode()),
		ContentType: "application/x-www-form-urlencoded",
		Secrets:     []string{key, token},
	}.Do(ctx)
	if err != nil {
		return err
	}
	if res.Status == http.StatusUnauthorized || res.Status == http.StatusForbidden {
		return res.Refuse(fields...)
	}
	if !res.OK() {
		return res.Unexpected("")
	}
	var body struct {
		Success *bool `json:"success"`
	}
	if res.JSON(&body) != nil || body.Success == nil {
		return res.Unexpected("the answer has no `success`; is DSTACK_TENSORDOCK_API_URL right?")
	}
	if !*body.Success {
		return res.Refuse(fields...)
	}
	return nil
}
