package ui_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dstackgo/dstack/internal/backends"
	_ "github.com/dstackgo/dstack/internal/backends/all"
	"github.com/dstackgo/dstack/internal/backends/fake"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/secrets"
	"github.com/dstackgo/dstack/internal/server"
	"github.com/dstackgo/dstack/internal/store"
	"github.com/dstackgo/dstack/internal/ui"
)

const adminToken = "11111111-1111-4111-8111-111111111111"

// site is a real server (API and UI, as `dstack server` serves them) on a fresh SQLite database, with
// one user per role in project main: padmin (project admin), manager, member (project user) and
// outsider (no role), besides the global admin.
type site struct {
	t      *testing.T
	srv    *server.Server
	st     *store.Store
	ts     *httptest.Server
	tokens map[string]string
	// dir is the server directory: job logs are kept under it.
	dir string
}

func newSite(t *testing.T) *site {
	t.Helper()
	dir := t.TempDir()
	key, err := secrets.LoadOrCreateDefaultKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := secrets.NewKeyring([]secrets.Key{key})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "sqlite.db"), kr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// AWS backends are checked against the cloud simulator, which takes any well-formed key.
	if fake.Has("aws") {
		sim := fake.StartWith(t, "aws", fake.Options{Auth: fake.Lenient})
		t.Setenv(backends.EnvAPIURL("aws"), sim.URL)
	}
	// OCI backends, the tests' example of a backend with default credentials, are checked against
	// the simulation.
	useOCIWorld(t)
	s := &site{t: t, srv: server.New(st, nil), st: st, tokens: map[string]string{"admin": adminToken}, dir: dir}
	s.srv.ConfigureWork(server.WorkOptions{Dir: dir})
	if _, err := s.srv.Bootstrap(ctx, adminToken); err != nil {
		t.Fatal(err)
	}
	main, err := st.GetProject(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	members, _ := st.ListMembers(ctx, main.ID)
	for _, name := range []string{"padmin", "manager", "member", "outsider"} {
		u, err := server.NewUser(name, models.GlobalRoleUser, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		s.tokens[name] = u.Token
		role := map[string]string{"padmin": models.ProjectRoleAdmin, "manager": models.ProjectRoleManager, "member": models.ProjectRoleUser}[name]
		if role != "" {
			members = append(members, models.Member{ProjectID: main.ID, UserID: u.ID, Role: role})
		}
	}
	if err := st.SetMembers(ctx, main.ID, members); err != nil {
		t.Fatal(err)
	}
	s.ts = httptest.NewServer(s.srv.Handler())
	t.Cleanup(s.ts.Close)
	t.Cleanup(s.srv.WaitChecks)
	return s
}

// api calls the REST API directly as role and returns the status and decoded body.
func (s *site) api(role, path string, body any) (int, any) {
	s.t.Helper()
	data, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, s.ts.URL+path, bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+s.tokens[role])
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out any
	if json.Unmarshal(raw, &out) != nil {
		out = string(raw)
	}
	return res.StatusCode, out
}

func (s *site) mustAPI(role, path string, body any) any {
	s.t.Helper()
	code, out := s.api(role, path, body)
	if code != http.StatusOK {
		s.t.Fatalf("%s as %s: %d %v", path, role, code, out)
	}
	return out
}

// browser is an HTTP client that signs in as a browser does: with the UI's cookie. It does not follow
// redirects, so tests see them.
type browser struct {
	s *site
	c *http.Client
}

func (s *site) browser(role string) *browser {
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(s.ts.URL)
	if role != "" {
		jar.SetCookies(u, []*http.Cookie{{Name: ui.CookieName, Value: s.tokens[role], Path: "/"}})
	}
	return &browser{s: s, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

type page struct {
	Status   int
	Body     string
	Location string
	Header   http.Header
}

func (b *browser) do(req *http.Request) page {
	b.s.t.Helper()
	res, err := b.c.Do(req)
	if err != nil {
		b.s.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return page{Status: res.StatusCode, Body: string(raw), Location: res.Header.Get("Location"), Header: res.Header}
}

func (b *browser) get(path string) page {
	req, _ := http.NewRequest(http.MethodGet, b.s.ts.URL+path, nil)
	return b.do(req)
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// post submits a form the way the UI's own form does: it takes the CSRF token from a page the UI
// rendered for this user (from, or /account).
func (b *browser) post(path string, form url.Values) page {
	b.s.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if form.Get("csrf") == "" {
		if m := csrfRe.FindStringSubmatch(b.get("/account").Body); m != nil {
			form.Set("csrf", m[1])
		}
	}
	req, _ := http.NewRequest(http.MethodPost, b.s.ts.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.s.ts.URL)
	return b.do(req)
}
