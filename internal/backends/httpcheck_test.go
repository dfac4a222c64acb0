package backends

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestProviderMessage(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{`{"error":{"code":"global/invalid-api-key","message":"API key was invalid."}}`, "API key was invalid."},
		{`{"error":"Invalid API token.","status":401}`, "Invalid API token."},
		{`{"success":false,"error":"invalid_user_key","msg":"Invalid user key"}`, "Invalid user key"},
		{`{"code":16,"message":"unauthenticated","details":[]}`, "unauthenticated"},
		{`{"error":"invalid_client","error_description":"Client authentication failed"}`, "Client authentication failed"},
		{`{"detail":"Not authenticated"}`, "Not authenticated"},
		{`{"errors":[{"message":"a"},{"message":"b"}]}`, "a; b"},
		{`{"code":"unauthorized_request"}`, "unauthorized_request"},
		{"  plain\n text  ", "plain text"},
		{"<html><body>502</body></html>", ""},
		{`{"data":{}}`, ""},
		{``, ""},
		{`{"message":"key sk-123 is bad"}`, "key *** is bad"},
	} {
		if got := ProviderMessage([]byte(c.body), "sk-123"); got != c.want {
			t.Errorf("ProviderMessage(%s) = %q, want %q", c.body, got, c.want)
		}
	}
	long := ProviderMessage([]byte(`{"message":"` + strings.Repeat("x", 1000) + `"}`))
	if n := len([]rune(long)); n != maxMessage+1 {
		t.Errorf("long message kept %d runes, want %d", n, maxMessage+1)
	}
}

func TestShowURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://api.runpod.io/graphql?api_key=sk":           "https://api.runpod.io/graphql",
		"https://user:pw@console.vast.ai/api/v0/instances#x": "https://console.vast.ai/api/v0/instances",
		"::not a url?api_key=sk":                             "::not a url",
	} {
		if got := ShowURL(in); got != want {
			t.Errorf("ShowURL(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestProbe(t *testing.T) {
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"message":"bad key sk/+1"}`))
	}))
	defer srv.Close()
	p := Probe{Provider: "P", URL: srv.URL + "/x?a=1", Query: map[string][]string{"api_key": {"sk/+1"}}, Secrets: []string{"sk/+1"}}
	res, err := p.Do(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ua := got.Header.Get("User-Agent"); ua != UserAgent {
		t.Errorf("User-Agent %q", ua)
	}
	if q := got.URL.Query(); q.Get("a") != "1" || q.Get("api_key") != "sk/+1" {
		t.Errorf("query %v", q)
	}
	err = res.Expect([]string{"creds", "api_key"})
	var ce *CredentialsError
	if !errors.As(err, &ce) || ce.Msg != "bad key ***" {
		t.Errorf("Expect = %#v", err)
	}

	// A transport error shows the URL without its query, so without the key.
	srv.Close()
	_, err = p.Do(context.Background())
	var pe *ProviderError
	if !errors.As(err, &pe) || pe.Status != 0 {
		t.Fatalf("Do against a closed server = %v", err)
	}
	if s := err.Error(); strings.Contains(s, "sk") || strings.Contains(s, "api_key") || !strings.Contains(s, srv.URL+"/x") {
		t.Errorf("error %q", s)
	}
}

func TestProbeBoundedRead(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("x", MaxProbeBody+100)))
	}))
	defer srv.Close()
	res, err := Probe{Provider: "P", URL: srv.URL}.Do(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Body) != MaxProbeBody {
		t.Errorf("read %d bytes, want %d", len(res.Body), MaxProbeBody)
	}
}
