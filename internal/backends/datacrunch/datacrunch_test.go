package datacrunch

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/dstackgo/dstack/internal/backends"
)

func TestAnswers(t *testing.T) {
	for _, c := range []struct {
		name   string
		status int
		body   string
		creds  bool
		ok     bool
	}{
		{"400 unauthorized_request", 400, `{"code":"unauthorized_request","message":"Invalid client"}`, true, false},
		{"400 oauth invalid_client", 400, `{"error":"invalid_client"}`, true, false},
		{"400 other", 400, `{"code":"invalid_request","message":"grant_type is required"}`, false, false},
		{"403", 403, `{"code":"forbidden","message":"no"}`, true, false},
		{"429", 429, `{"code":"too_many_requests","message":"slow down"}`, false, false},
		{"200 without token", 200, `{}`, false, false},
		{"200", 200, `{"access_token":"t"}`, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(c.status)
				_, _ = w.Write([]byte(c.body))
			}))
			defer srv.Close()
			t.Setenv(backends.EnvAPIURL(typ), srv.URL)
			err := check(context.Background(), backends.Config{Type: typ, Values: map[string]any{
				"creds": map[string]any{"type": "api_key", "client_id": "i", "client_secret": "s"}}})
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
