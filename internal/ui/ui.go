// Package ui is dstack's web console: server-rendered pages (Go html/template, embedded CSS and a little
// JavaScript) for signing in, projects and their members, project settings with backends, users, and
// in each project its runs (with a run's jobs, history and live logs), offers, fleets and instances.
//
// The UI is a client of the REST API and nothing more. Every page is rendered by calling the API handler
// in-process with the signed-in user's token (the dstack_token cookie) as the Bearer token, exactly as
// the CLI or a browser fetch would: the UI never reads the store and never decides who may do what.
// When the API refuses (403, 400, 422), the page shows the API's answer in words with the API's status.
// Hiding a button a user cannot use is only a courtesy; posting the form anyway reaches the API, which
// refuses it.
package ui

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// CookieName holds the signed-in user's API token.
const CookieName = "dstack_token"

const flashCookie = "dstack_flash"

// UI serves the web console.
type UI struct {
	api       http.Handler
	pages     map[string]*template.Template
	static    http.Handler
	staticVer string
}

// New returns the web console over the API handler api, which it calls in-process for everything.
// Mount it at "/" for every path that is not the API's.
func New(api http.Handler) http.Handler {
	u := &UI{api: api, pages: map[string]*template.Template{}}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err)
	}
	u.staticVer = assetsVersion()
	u.static = http.StripPrefix("/static/", http.FileServer(http.FS(sub)))
	u.parseTemplates()
	return u.routes()
}

func assetsVersion() string {
	h := sha256.New()
	_ = fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := staticFS.ReadFile(p)
			h.Write(b)
		}
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}

var funcs = template.FuncMap{
	"date": func(s string) string {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return s
		}
		return t.UTC().Format("2 Jan 2006 15:04")
	},
	"deref": func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	},
	"lines": func(s string) []int { return lineNumbers(s) },
	"has": func(list []int, n int) bool {
		for _, x := range list {
			if x == n {
				return true
			}
		}
		return false
	},
	"pathEsc":      url.PathEscape,
	"eq2":          func(a, b any) bool { return fmt.Sprint(a) == fmt.Sprint(b) },
	"ago":          ago,
	"duration":     duration,
	"price":        price,
	"statusClass":  statusClass,
	"reason":       reason,
	"failedReason": failedReason,
	"backendName":  backendName,
	"inc":          func(i int) int { return i + 1 },
	"sentence":     sentence,
	"stamp": func(s string) string {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return s
		}
		return t.UTC().Format("2 Jan 2006 15:04:05") + " UTC"
	},
}

func lineNumbers(s string) []int {
	n := strings.Count(s, "\n") + 1
	if strings.HasSuffix(s, "\n") {
		n--
	}
	if n < 1 {
		n = 1
	}
	out := make([]int, n)
	for i := range out {
		out[i] = i + 1
	}
	return out
}

func (u *UI) parseTemplates() {
	base := template.Must(template.New("base").Funcs(funcs).ParseFS(templateFS, "templates/base.html", "templates/parts.html"))
	entries, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	for _, e := range entries {
		name := strings.TrimSuffix(strings.TrimPrefix(e, "templates/"), ".html")
		if name == "base" || name == "parts" {
			continue
		}
		t := template.Must(base.Clone())
		u.pages[name] = template.Must(t.ParseFS(templateFS, e))
	}
}

// view is what every page template gets.
type view struct {
	Title     string
	Nav       string // the active section: projects, users, account
	Me        *userJSON
	CSRF      string
	Flash     string
	Err       *APIError
	Crumbs    []crumb
	Project   string // the project in view, for its tabs
	Tab       string
	StaticVer string
	D         any
}

type crumb struct{ Label, Href string }

// ctx is one request to the UI: the incoming request, the signed-in user's token and user.
type ctx struct {
	u     *UI
	w     http.ResponseWriter
	r     *http.Request
	token string
	me    *userJSON
}

func (c *ctx) view(title, nav string, d any) *view {
	v := &view{Title: title, Nav: nav, Me: c.me, CSRF: csrfToken(c.token), StaticVer: c.u.staticVer, D: d}
	if f, err := c.r.Cookie(flashCookie); err == nil {
		if msg, err := url.QueryUnescape(f.Value); err == nil {
			v.Flash = msg
		}
		http.SetCookie(c.w, &http.Cookie{Name: flashCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	return v
}

// render writes a page with status (0 means 200, or the API error's status when v.Err is set).
func (c *ctx) render(status int, page string, v *view) {
	t, ok := c.u.pages[page]
	if !ok {
		http.Error(c.w, "no template "+page, http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "base", v); err != nil {
		http.Error(c.w, "template: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if status == 0 {
		status = http.StatusOK
		if v.Err != nil && v.Err.Status >= 400 {
			status = v.Err.Status
		}
	}
	c.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	c.w.Header().Set("Cache-Control", "no-store")
	c.w.WriteHeader(status)
	_, _ = c.w.Write(buf.Bytes())
}

// fail renders the error page for an API refusal that leaves nothing else to show.
func (c *ctx) fail(title, nav string, e *APIError, crumbs ...crumb) {
	v := c.view(title, nav, nil)
	v.Err = e
	v.Crumbs = crumbs
	c.render(0, "error", v)
}

// redirect answers a POST with 303 to path, leaving msg for the next page.
func (c *ctx) redirect(path, msg string) {
	if msg != "" {
		http.SetCookie(c.w, &http.Cookie{Name: flashCookie, Value: url.QueryEscape(msg), Path: "/", MaxAge: 60,
			HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	http.Redirect(c.w, c.r, path, http.StatusSeeOther)
}

// csrfToken binds forms to the session: a page from another site cannot know it without the token.
func csrfToken(token string) string {
	if token == "" {
		return ""
	}
	sum := sha256.Sum256([]byte("dstack-ui-csrf:" + token))
	return hex.EncodeToString(sum[:16])
}

// APIError is an API refusal, put in words.
type APIError struct {
	Status int
	// Code is dstack's error code (error, resource_exists, invalid_credentials, ...), if any.
	Code string
	// Items are the API's messages, each with the field path it names, if any.
	Items []ErrorItem
}

// ErrorItem is one message of an API error.
type ErrorItem struct {
	Path string // e.g. creds.api_key
	Msg  string
}

func (e *APIError) Error() string {
	var parts []string
	for _, it := range e.Items {
		if it.Path != "" {
			parts = append(parts, it.Path+": "+it.Msg)
		} else {
			parts = append(parts, it.Msg)
		}
	}
	return strings.Join(parts, "; ")
}

// Heading is a one-line summary for the top of an error box.
func (e *APIError) Heading() string {
	switch {
	case e.Status == http.StatusForbidden:
		return "The server refused this request (403 Forbidden)"
	case e.Status == http.StatusUnauthorized:
		return "You are not signed in (401)"
	case e.Status == http.StatusNotFound:
		return "Not found (404)"
	case e.Code == "invalid_credentials":
		return "The provider refused the credentials"
	case e.Status == http.StatusUnprocessableEntity:
		return "The server rejected some fields (422)"
	case e.Status >= 500:
		return fmt.Sprintf("The server failed (%d)", e.Status)
	}
	return fmt.Sprintf("The server refused this request (%d)", e.Status)
}

// Hint explains what a refusal usually means; it is advice, not a rule the UI applies.
func (e *APIError) Hint() string {
	if e.Status == http.StatusForbidden {
		for _, it := range e.Items {
			if strings.Contains(it.Msg, "Invalid token") {
				return "Your token is no longer valid. Sign out and sign in again with a current token."
			}
		}
		return "Your role does not allow this action. Project backends and their credentials are for project admins; members are managed by project admins and managers; users are managed by global admins."
	}
	return ""
}

// parseAPIError reads the error bodies of the API: {"detail": "text"}, {"detail": {"msg": ...}},
// {"detail": [{"msg", "code", "fields"}]} and FastAPI's 422 items with loc.
func parseAPIError(status int, body []byte) *APIError {
	e := &APIError{Status: status}
	var env struct {
		Detail json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(body, &env) != nil || len(env.Detail) == 0 {
		text := strings.TrimSpace(string(body))
		if text == "" {
			text = http.StatusText(status)
		}
		e.Items = []ErrorItem{{Msg: text}}
		return e
	}
	var s string
	if json.Unmarshal(env.Detail, &s) == nil {
		e.Items = []ErrorItem{{Msg: s}}
		return e
	}
	type item struct {
		Msg    string   `json:"msg"`
		Code   *string  `json:"code"`
		Fields []string `json:"fields"`
		Loc    []any    `json:"loc"`
	}
	var one item
	if json.Unmarshal(env.Detail, &one) == nil && one.Msg != "" {
		e.Items = []ErrorItem{{Msg: one.Msg}}
		if one.Code != nil {
			e.Code = *one.Code
		}
		return e
	}
	var many []item
	if json.Unmarshal(env.Detail, &many) != nil {
		e.Items = []ErrorItem{{Msg: string(env.Detail)}}
		return e
	}
	for _, it := range many {
		if it.Code != nil && e.Code == "" {
			e.Code = *it.Code
		}
		switch {
		case len(it.Fields) > 0:
			e.Items = append(e.Items, ErrorItem{Path: strings.Join(it.Fields, "."), Msg: it.Msg})
		case len(it.Loc) > 0:
			e.Items = append(e.Items, ErrorItem{Path: locPath(it.Loc), Msg: it.Msg})
		default:
			e.Items = append(e.Items, ErrorItem{Msg: it.Msg})
		}
	}
	if len(e.Items) == 0 {
		e.Items = []ErrorItem{{Msg: http.StatusText(status)}}
	}
	return e
}

// locPath renders FastAPI's loc (["body", "creds", "api_key"]) as creds.api_key.
func locPath(loc []any) string {
	var b strings.Builder
	for i, p := range loc {
		if i == 0 && p == "body" {
			continue
		}
		switch v := p.(type) {
		case float64:
			fmt.Fprintf(&b, "[%d]", int(v))
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, v)
		}
	}
	return b.String()
}

// bufferedResponse captures the API's answer to an in-process call.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header         { return b.header }
func (b *bufferedResponse) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

// call POSTs body as JSON to the API path with the user's token and decodes a 200 answer into out.
// Any other answer is returned as an *APIError.
func (c *ctx) call(path string, body, out any) *APIError {
	return c.u.callAPI(c.r.Context(), c.token, path, body, out)
}

func (u *UI) callAPI(cx context.Context, token, path string, body, out any) *APIError {
	var rdr io.Reader = http.NoBody
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return &APIError{Status: http.StatusInternalServerError, Items: []ErrorItem{{Msg: err.Error()}}}
		}
		rdr = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(cx, http.MethodPost, path, rdr)
	if err != nil {
		return &APIError{Status: http.StatusInternalServerError, Items: []ErrorItem{{Msg: err.Error()}}}
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res := &bufferedResponse{header: http.Header{}}
	u.api.ServeHTTP(res, req)
	if res.status == 0 {
		res.status = http.StatusOK
	}
	if res.status != http.StatusOK {
		return parseAPIError(res.status, res.body.Bytes())
	}
	if out != nil && res.body.Len() > 0 {
		if err := json.Unmarshal(res.body.Bytes(), out); err != nil {
			return &APIError{Status: http.StatusBadGateway, Items: []ErrorItem{{Msg: "unexpected API answer: " + err.Error()}}}
		}
	}
	return nil
}

// JSON shapes of the API, as far as the pages use them.

type userJSON struct {
	ID          string  `json:"id"`
	Username    string  `json:"username"`
	CreatedAt   string  `json:"created_at"`
	GlobalRole  string  `json:"global_role"`
	Email       *string `json:"email"`
	Active      bool    `json:"active"`
	Permissions struct {
		CanCreateProjects bool `json:"can_create_projects"`
	} `json:"permissions"`
	Creds *struct {
		Token string `json:"token"`
	} `json:"creds,omitempty"`
}

func (u *userJSON) IsAdmin() bool { return u != nil && u.GlobalRole == "admin" }

type projectJSON struct {
	ProjectID   string        `json:"project_id"`
	ProjectName string        `json:"project_name"`
	Owner       userJSON      `json:"owner"`
	CreatedAt   string        `json:"created_at"`
	Backends    []backendJSON `json:"backends"`
	Members     []memberJSON  `json:"members"`
	IsPublic    bool          `json:"is_public"`
}

type backendJSON struct {
	Name          string         `json:"name"`
	Config        map[string]any `json:"config"`
	Status        string         `json:"status"`
	StatusMessage string         `json:"status_message"`
}

// Regions lists the configured regions, or "" when the default applies.
func (b backendJSON) Regions() string {
	rs, _ := b.Config["regions"].([]any)
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprint(r))
	}
	return strings.Join(out, ", ")
}

// Settings lists the other non-secret settings as key=value.
func (b backendJSON) Settings() []string {
	var out []string
	for k, v := range b.Config {
		if k == "type" || k == "regions" || k == "creds" {
			continue
		}
		data, _ := json.Marshal(v)
		out = append(out, k+"="+strings.Trim(string(data), `"`))
	}
	sort.Strings(out)
	return out
}

type memberJSON struct {
	User        userJSON `json:"user"`
	ProjectRole string   `json:"project_role"`
}

// myRole is the signed-in user's role in a project per the API's member list ("" if not a member).
func (p *projectJSON) myRole(me *userJSON) string {
	if me == nil {
		return ""
	}
	for _, m := range p.Members {
		if m.User.Username == me.Username {
			return m.ProjectRole
		}
	}
	return ""
}
