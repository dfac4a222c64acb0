package runpod

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/dstackgo/dstack/internal/backends"
)

// The conformance suite covers 200/401/500; these are the GraphQL-level answers.
func TestGraphQLAnswers(t *testing.T) {
	for _, c := range []struct {
		name, body string
		creds      bool // want a CredentialsError (else a plain error, or nil when ok)
		ok         bool
	}{
		{"auth error at 200", `{"errors":[{"message":"Unauthorized request, please check your API key"}]}`, true, false},
		{"other error", `{"errors":[{"message":"Cannot query field \"myself\""}]}`, false, false},
		{"no user", `{"data":{"myself":null}}`, true, false},
		{"ok", `{"data":{"myself":{"id":"u1"}}}`, false, true},
		{"not graphql", `<html>hi</html>`, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = w.Write([]byte(c.body))
			}))
			defer srv.Close()
			t.Setenv(backends.EnvAPIURL(typ), srv.URL)
			err := check(context.Background(), backends.Config{Type: typ, Values: map[string]any{
				"creds": map[string]any{"type": "api_key", "api_key": "k"}}})
			var ce *backends.CredentialsError
			switch {
			case c.ok && err != nil, !c.ok && err == nil:
				t.Fatalf("check = %v", err)
			case c.creds != errors.As(err, &ce):
				t.Fatalf("check = %v (%T), want CredentialsError: %v", err, err, c.creds)
			}
		})
	}
}
