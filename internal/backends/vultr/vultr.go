// Package vultr is the Vultr backend.
//
// The credential check follows the Vultr API v2 (https://www.vultr.com/api/, "List SSH Keys") through
// the official SDK, github.com/vultr/govultr/v3: GET /v2/ssh-keys with the personal access token as a
// bearer token, set by a plain http.Client transport (no oauth2). 401 and 403 ({"error": "Invalid API
// token.", "status": 401}, or an address outside the key's access control list) refuse the key. The
// SDK's retries are off, so a 5xx or a network error fails the check at once, as "cannot be reached".
//
// DSTACK_VULTR_API_URL follows the SDK's base URL convention: it is the server root, e.g.
// http://127.0.0.1:8080 (default https://api.vultr.com); the SDK adds /v2/... itself, and a path in
// the variable is ignored.
//
// Machines (cloud GPU and bare metal) and live offers go through the same SDK; see compute.go.
package vultr

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/vultr/govultr/v3"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/schema"
)

const (
	typ        = "vultr"
	defaultURL = "https://api.vultr.com"
	provider   = "Vultr"
)

func init() {
	backends.Register(&backends.Driver{
		Type:          typ,
		Title:         provider,
		DefaultAPIURL: defaultURL,
		Fields: []schema.Field{
			backends.Regions("Vultr regions, e.g. [ewr]; default: all"),
			backends.Creds(backends.APIKey("a Vultr personal access token")),
		},
		Check:      check,
		NewCompute: newCompute,
		NewOffers:  newOffers,
	})
}

var field = []string{"creds", "api_key"}

func check(ctx context.Context, cfg backends.Config) error {
	key := cfg.String("creds", "api_key")
	secrets := []string{key}
	client, tr, err := newSDK(key)
	if err != nil {
		return err
	}
	shown := backends.ShowURL(client.BaseURL.String())
	if u, err := client.BaseURL.Parse("/v2/ssh-keys"); err == nil {
		shown = backends.ShowURL(u.String())
	}
	ctx, cancel := backends.WithDefaultDeadline(ctx)
	defer cancel()

	_, _, _, err = client.SSHKey.List(ctx, &govultr.ListOptions{PerPage: 1})
	status, body := tr.result()
	msg := backends.ProviderMessage(body, secrets...)
	switch {
	case status == 0:
		cause := err
		if ctx.Err() != nil {
			cause = ctx.Err()
		}
		if cause == nil {
			return nil // cannot happen: the SDK answered without a request
		}
		return &backends.ProviderError{Provider: provider, URL: shown, Err: backends.Redact(cause, secrets)}
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		if msg == "" {
			msg = fmt.Sprintf("Vultr answered HTTP %d %s", status, http.StatusText(status))
		}
		return &backends.CredentialsError{Msg: msg, Fields: [][]string{field}}
	case status >= 300 || err != nil:
		if msg == "" && err != nil {
			msg = backends.RedactString(err.Error(), secrets)
		}
		return &backends.ProviderError{Provider: provider, URL: shown, Status: status, Msg: msg}
	}
	return nil
}

// newSDK is a govultr client for key at DSTACK_VULTR_API_URL, without retries; its transport keeps
// the last answer.
func newSDK(key string) (*govultr.Client, *transport, error) {
	tr := &transport{key: key, base: backends.ProbeTransport}
	client := govultr.NewClient(&http.Client{Transport: tr})
	client.SetUserAgent(backends.UserAgent)
	client.SetRetryLimit(0)
	base := backends.APIURL(typ, defaultURL)
	if err := client.SetBaseURL(base); err != nil {
		return nil, nil, &backends.ProviderError{Provider: provider, URL: backends.ShowURL(base), Err: backends.Redact(err, []string{key})}
	}
	return client, tr, nil
}

// transport signs requests with the token and keeps the status (and, for errors, the body) of the last
// answer: the SDK's errors carry neither.
type transport struct {
	key  string
	base http.RoundTripper

	mu     sync.Mutex
	status int
	body   []byte
}

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+t.key)
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	var body []byte
	if resp.StatusCode >= 300 {
		body, err = io.ReadAll(io.LimitReader(resp.Body, backends.MaxProbeBody))
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
	}
	t.mu.Lock()
	t.status, t.body = resp.StatusCode, body
	t.mu.Unlock()
	return resp, nil
}

func (t *transport) result() (int, []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.status, t.body
}
