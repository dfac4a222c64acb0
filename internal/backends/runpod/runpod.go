// Package runpod is the RunPod backend.
//
// The credential check follows the RunPod GraphQL API spec (the `myself` query, as runpodctl and the
// Python SDK use it): POST {base}?api_key=<key> with {"query": "query { myself { id } }"}. HTTP 401 and 403, or
// GraphQL errors about authentication, refuse the key. The base URL is https://api.runpod.io/graphql,
// or DSTACK_RUNPOD_API_URL (the full GraphQL endpoint, including /graphql).
//
// Pods (compute.go) follow the same GraphQL spec; offers come from the catalog.
package runpod

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/schema"
)

const (
	typ        = "runpod"
	defaultURL = "https://api.runpod.io/graphql"
	query      = `{"query":"query { myself { id } }"}`
)

func init() {
	backends.Register(&backends.Driver{
		Type:          typ,
		Title:         "RunPod",
		DefaultAPIURL: defaultURL,
		Fields: []schema.Field{
			backends.Regions("Secure Cloud datacenter ids (CA-MTL-3) or Community Cloud country codes (CA)"),
			backends.Bool("community_cloud", "also use Community Cloud offers (default true)"),
			backends.Creds(backends.APIKey("a RunPod API key with read & write access")),
		},
		Check:      check,
		NewCompute: newCompute,
	})
}

var field = []string{"creds", "api_key"}

// authError matches GraphQL error messages that are about the key.
var authError = regexp.MustCompile(`(?i)unauthori[sz]ed|unauthenticated|authenticat|api[ _-]?key|forbidden|permission`)

func check(ctx context.Context, cfg backends.Config) error {
	key := cfg.String("creds", "api_key")
	res, err := backends.Probe{
		Provider:    "RunPod",
		Method:      http.MethodPost,
		URL:         backends.APIURL(typ, defaultURL),
		Query:       url.Values{"api_key": {key}},
		Body:        []byte(query),
		ContentType: "application/json",
		Secrets:     []string{key},
	}.Do(ctx)
	if err != nil {
		return err
	}
	if res.Status == http.StatusUnauthorized || res.Status == http.StatusForbidden {
		return res.Refuse(field)
	}
	var body struct {
		Data *struct {
			Myself *struct {
				ID string `json:"id"`
			} `json:"myself"`
		} `json:"data"`
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	if res.JSON(&body) != nil {
		return res.Unexpected("the answer is not a GraphQL response; is DSTACK_RUNPOD_API_URL right?")
	}
	if len(body.Errors) > 0 {
		var msgs []string
		for _, e := range body.Errors {
			msgs = append(msgs, e.Message)
		}
		if authError.MatchString(strings.Join(msgs, "\n")) {
			return res.Refuse(field)
		}
		return res.Unexpected("")
	}
	if !res.OK() {
		return res.Unexpected("")
	}
	if body.Data == nil || body.Data.Myself == nil || body.Data.Myself.ID == "" {
		return &backends.CredentialsError{Msg: "RunPod did not say whose API key this is", Fields: [][]string{field}}
	}
	return nil
}
