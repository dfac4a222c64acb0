package vultr

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
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
		msg    string
	}{
		{"acl", 403, `{"error":"Unauthorized IP address: 203.0.113.7","status":403}`, true, false, "Unauthorized IP address: 203.0.113.7"},
		{"401 no body", 401, ``, true, false, "Unauthorized"},
		{"404", 404, `{"error":"Not found","status":404}`, false, false, "HTTP 404 Not Found: Not found"},
		{"429", 429, `{"error":"Rate limit exceeded","status":429}`, false, false, "429"},
		{"ok", 200, `{"ssh_keys":[],"meta":{"total":0,"links":{"next":"","prev":""}}}`, false, true, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var path string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				path = r.URL.Path
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(c.status)
				_, _ = w.Write([]byte(c.body))
			}))
			defer srv.Close()
			// A path in DSTACK_VULTR_API_URL is ignored: the SDK resolves /v2/... against the root.
			t.Setenv(backends.EnvAPIURL(typ), srv.URL+"/ignored")
			err := check(context.Background(), backends.Config{Type: typ, Values: map[string]any{
				"creds": map[string]any{"type": "api_key", "api_key": "k"}}})
			if path != "/v2/ssh-keys" {
				t.Errorf("path %s", path)
			}
			var ce *backends.CredentialsError
			switch {
			case c.ok && err != nil, !c.ok && err == nil:
				t.Fatalf("check = %v", err)
			case c.creds != errors.As(err, &ce):
				t.Fatalf("check = %v (%T), want CredentialsError: %v", err, err, c.creds)
			case err != nil && !strings.Contains(err.Error(), c.msg):
				t.Errorf("check = %q, want it to contain %q", err, c.msg)
			}
		})
	}
}
