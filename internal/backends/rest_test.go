package backends

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestRESTClient(t *testing.T) {
	var got *http.Request
	var gotBody string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
		switch r.URL.Path {
		case "/ok":
			_, _ = w.Write([]byte(`{"n":1}`))
		case "/refused":
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"code":"bad-key","message":"key sk-1 is bad"}}`))
		case "/hang":
			<-r.Context().Done()
		}
	}))
	defer srv.Close()
	c := &RESTClient{
		Provider: "Test",
		Base:     srv.URL,
		Auth: func(r *http.Request) {
			q := r.URL.Query()
			q.Set("key", "sk-1")
			r.URL.RawQuery = q.Encode()
		},
		Secrets: []string{"sk-1"},
	}
	ctx := context.Background()

	var out struct{ N int }
	if err := c.Do(ctx, http.MethodPost, "/ok?x=1", map[string]int{"a": 1}, &out); err != nil || out.N != 1 {
		t.Fatalf("Do = %v, out %+v", err, out)
	}
	if got.URL.RawQuery != "key=sk-1&x=1" || got.Header.Get("User-Agent") != UserAgent ||
		got.Header.Get("Content-Type") != "application/json" || gotBody != `{"a":1}` {
		t.Errorf("request %s %v body %q", got.URL, got.Header, gotBody)
	}
	if _, err := c.Call(ctx, http.MethodGet, "/ok", nil); err != nil || got.Header.Get("Content-Type") != "" {
		t.Errorf("Call without a body = %v, Content-Type %q", err, got.Header.Get("Content-Type"))
	}

	// Without a Check, anything but 2xx is an *APIError; the secret stays out of it.
	err := c.Do(ctx, http.MethodGet, "/refused", nil, nil)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized || err.Error() != "Test API: HTTP 401: key *** is bad" {
		t.Errorf("Do(/refused) = %v", err)
	}
	c.Check = func(a *Answer) error {
		if a.OK() {
			return nil
		}
		return a.APIError("bad-key", "own sk-1")
	}
	if err := c.Do(ctx, http.MethodGet, "/refused", nil, nil); err == nil || err.Error() != "Test API: HTTP 401 bad-key: own ***" {
		t.Errorf("Do(/refused) with a Check = %v", err)
	}

	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	err = c.Do(tctx, http.MethodGet, "/hang", nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "Test API GET "+srv.URL+"/hang: ") || strings.Contains(err.Error(), "sk-1") {
		t.Errorf("Do(/hang) = %v", err)
	}
}
