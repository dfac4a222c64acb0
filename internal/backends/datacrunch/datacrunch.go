// Package datacrunch is the DataCrunch (Verda) backend.
//
// The credential check follows the DataCrunch public API v1 reference ("Authentication"): the OAuth2 client-credentials grant, POST {base}/oauth2/token with the JSON body
// {"grant_type": "client_credentials", "client_id", "client_secret"}. A token accepts the credentials;
// 401/403, or 400 with code unauthorized_request / invalid_client (the API's answer to an unknown client
// or a wrong secret), refuses them. The base URL is https://api.datacrunch.io/v1, or
// DSTACK_DATACRUNCH_API_URL (everything up to and including /v1).
//
// Machines and live capacity follow the same document with a small typed client (compute.go); the
// Verda SDK is not used.
package datacrunch

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/schema"
)

const (
	typ        = "datacrunch"
	defaultURL = "https://api.datacrunch.io/v1"
)

func init() {
	backends.Register(&backends.Driver{
		Type:          typ,
		Title:         "DataCrunch",
		DefaultAPIURL: defaultURL,
		Fields: []schema.Field{
			backends.Regions("DataCrunch locations, e.g. [FIN-01]; default: all"),
			backends.Creds(schema.Variant{Name: "api_key", Fields: []schema.Field{
				backends.Secret("client_id", "the REST API client id"),
				backends.Secret("client_secret", "the REST API client secret"),
			}}),
		},
		Check:      check,
		NewCompute: newCompute,
		NewOffers:  newOffers,
	})
}

var fields = [][]string{{"creds", "client_id"}, {"creds", "client_secret"}}

func check(ctx context.Context, cfg backends.Config) error {
	id, secret := cfg.String("creds", "client_id"), cfg.String("creds", "client_secret")
	req, err := json.Marshal(map[string]string{
		"grant_type":    "client_credentials",
		"client_id":     id,
		"client_secret": secret,
	})
	if err != nil {
		return err
	}
	res, err := backends.Probe{
		Provider:    "DataCrunch",
		Method:      http.MethodPost,
		URL:         backends.APIURL(typ, defaultURL) + "/oauth2/token",
		Body:        req,
		ContentType: "application/json",
		Secrets:     []string{id, secret},
	}.Do(ctx)
	if err != nil {
		return err
	}
	var body struct {
		AccessToken string `json:"access_token"`
		Code        string `json:"code"`
		Error       string `json:"error"`
		Message     string `json:"message"`
	}
	jsonErr := res.JSON(&body)
	switch {
	case res.OK():
		if jsonErr != nil || body.AccessToken == "" {
			return res.Unexpected("the answer has no access token; is DSTACK_DATACRUNCH_API_URL right?")
		}
		return nil
	case res.Status == http.StatusUnauthorized || res.Status == http.StatusForbidden:
		return res.Refuse(fields...)
	case res.Status == http.StatusBadRequest && refusal(body.Code, body.Error, body.Message):
		return res.Refuse(fields...)
	default:
		return res.Unexpected("")
	}
}

// refusal tells a 400 about the client credentials from one about the request.
func refusal(code, oauthErr, msg string) bool {
	switch code {
	case "unauthorized_request", "invalid_client", "invalid_grant", "unauthorized_client":
		return true
	}
	switch oauthErr {
	case "invalid_client", "invalid_grant", "unauthorized_client":
		return true
	}
	m := strings.ToLower(msg)
	return strings.Contains(m, "client") && (strings.Contains(m, "invalid") || strings.Contains(m, "unknown") || strings.Contains(m, "wrong"))
}
