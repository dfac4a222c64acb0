// Package fake runs small in-process stand-ins for the providers' APIs, one per backend type that has
// a credential check, for tests. Each fake speaks the wire protocol of that check's one real call: the
// method and path, where the credentials travel (bearer header, query string, form or JSON body), and
// the provider's own JSON shapes for answers and errors. It accepts one known-good credential (Good) and
// refuses any other the way the provider does; Fail and Hang make it answer 500 or never answer.
//
// Typical use:
//
//	srv := fake.Start(t, "lambda")
//	t.Setenv(backends.EnvAPIURL("lambda"), srv.URL) // or fake.Use(t, "lambda"), which does both
//	err := driver.Check(ctx, srv.Good)                // nil
//	err = driver.Check(ctx, srv.Bad)                  // *backends.CredentialsError
//
// Requests that do not match the provider's call (wrong method, path, content type, missing
// credentials) are answered with an error, as the provider would, and are listed by Misses.
package fake

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dstackgo/dstack/internal/backends"
)

// Server is one running fake.
type Server struct {
	// Type is the backend type.
	Type string
	// URL is the value for DSTACK_<TYPE>_API_URL: the fake's root plus the path prefix of the
	// provider's base URL (e.g. /api/v1 for Lambda).
	URL string
	// Good is a complete backend config (type, creds and required keys) that the fake accepts.
	Good backends.Config
	// Bad is the same config with every secret replaced by one the fake refuses.
	Bad backends.Config
	// Secrets lists every secret value of Good and Bad, for tests that check they never leak.
	Secrets []string

	p      *provider
	srv    *httptest.Server
	mode   atomic.Int32
	hits   atomic.Int64
	stop   chan struct{}
	mu     sync.Mutex
	misses []string
}

const (
	modeOK int32 = iota
	modeFail
	modeHang
)

// provider describes one fake: where the call lands and how to answer it.
type provider struct {
	// prefix is the path of the provider's default base URL, e.g. /api/v1; URL ends with it.
	prefix string
	// method and path (full, including prefix) of the one call.
	method, path string
	// good and bad return the backend entry (without type) with accepted and refused secrets.
	good, bad map[string]any
	// serve answers a request that has the right method and path. It returns "" when the request is
	// well formed (whatever the credentials), else what was wrong with it, recorded as a miss.
	serve func(w http.ResponseWriter, r *http.Request) string
	// failBody is the provider's body for an internal error.
	failBody string
}

var providers = map[string]*provider{}

func register(typ string, p *provider) { providers[typ] = p }

// Types lists the backend types that have a fake.
func Types() []string {
	out := make([]string, 0, len(providers))
	for t := range providers {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Has reports whether typ has a fake.
func Has(typ string) bool { _, ok := providers[typ]; return ok }

// Start starts the fake of typ; it stops when the test ends. It does not set DSTACK_<TYPE>_API_URL
// (see Use).
func Start(t testing.TB, typ string) *Server {
	t.Helper()
	p, ok := providers[typ]
	if !ok {
		t.Fatalf("fake: no fake for backend type %q (have %v)", typ, Types())
	}
	s := &Server{Type: typ, p: p, stop: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(s.handle))
	// Cleanups run last-in first-out: release hung handlers, then close the server.
	t.Cleanup(s.srv.Close)
	t.Cleanup(func() { close(s.stop) })
	s.URL = s.srv.URL + p.prefix
	s.Good = config(typ, p.good)
	s.Bad = config(typ, p.bad)
	s.Secrets = append(secrets(p.good), secrets(p.bad)...)
	return s
}

// Use starts the fake of typ and points DSTACK_<TYPE>_API_URL at it for the rest of the test.
func Use(t testing.TB, typ string) *Server {
	t.Helper()
	s := Start(t, typ)
	t.Setenv(backends.EnvAPIURL(typ), s.URL)
	return s
}

// OK makes the fake answer normally again.
func (s *Server) OK() { s.mode.Store(modeOK) }

// Fail makes the fake answer every request with HTTP 500 and the provider's error body.
func (s *Server) Fail() { s.mode.Store(modeFail) }

// Hang makes the fake never answer: requests wait until the client gives up or the test ends.
func (s *Server) Hang() { s.mode.Store(modeHang) }

// Hits counts the requests that reached the provider's call (right method and path), in any mode.
func (s *Server) Hits() int64 { return s.hits.Load() }

// Misses lists the requests the real provider would not have taken as the check's call.
func (s *Server) Misses() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.misses...)
}

func (s *Server) miss(format string, args ...any) {
	s.mu.Lock()
	s.misses = append(s.misses, fmt.Sprintf(format, args...))
	s.mu.Unlock()
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != s.p.path {
		s.miss("%s %s: not the %s call (%s %s)", r.Method, r.URL.Path, s.Type, s.p.method, s.p.path)
		http.NotFound(w, r)
		return
	}
	if r.Method != s.p.method {
		s.miss("%s %s: wrong method, want %s", r.Method, r.URL.Path, s.p.method)
		w.Header().Set("Allow", s.p.method)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s.hits.Add(1)
	switch s.mode.Load() {
	case modeFail:
		writeJSON(w, http.StatusInternalServerError, s.p.failBody)
		return
	case modeHang:
		_, _ = io.Copy(io.Discard, r.Body) // lets the server notice when the client gives up
		select {
		case <-r.Context().Done():
		case <-s.stop:
		}
		return
	}
	if ua := r.Header.Get("User-Agent"); !strings.HasPrefix(ua, backends.UserAgent) {
		s.miss("%s %s: User-Agent %q, want %s", r.Method, r.URL.Path, ua, backends.UserAgent)
	}
	if why := s.p.serve(w, r); why != "" {
		s.miss("%s %s: %s", r.Method, r.URL.Path, why)
	}
}

// writeJSON answers with a JSON body given as text (or as a value to encode).
func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	switch b := body.(type) {
	case string:
		_, _ = w.Write([]byte(b))
	default:
		_ = json.NewEncoder(w).Encode(b)
	}
}

// bearer returns the token of an `Authorization: Bearer` header, or "".
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func config(typ string, entry map[string]any) backends.Config {
	v := deepCopy(entry)
	v["type"] = typ
	return backends.Config{Type: typ, Values: v}
}

func deepCopy(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if mm, ok := v.(map[string]any); ok {
			v = deepCopy(mm)
		}
		out[k] = v
	}
	return out
}

// secrets collects the values under creds except its type.
func secrets(entry map[string]any) []string {
	creds, _ := entry["creds"].(map[string]any)
	var out []string
	for k, v := range creds {
		if s, ok := v.(string); ok && k != "type" {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

func apiKeyCreds(key string) map[string]any {
	return map[string]any{"type": "api_key", "api_key": key}
}
