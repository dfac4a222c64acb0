package ui

import (
	"net/http"
	"net/url"
	"strings"
)

func (u *UI) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("v") == u.staticVer {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "no-cache")
		}
		u.static.ServeHTTP(w, r)
	}))
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/static/favicon.svg", http.StatusMovedPermanently)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/projects", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /login", u.loginPage)
	mux.HandleFunc("POST /login", u.login)
	mux.HandleFunc("POST /logout", u.logout)

	page := func(pattern string, h func(*ctx)) { mux.Handle(pattern, u.signedIn(h)) }
	page("GET /projects", (*ctx).projectsPage)
	page("POST /projects", (*ctx).createProject)
	page("GET /projects/{project}", func(c *ctx) {
		http.Redirect(c.w, c.r, "/projects/"+url.PathEscape(c.r.PathValue("project"))+"/runs", http.StatusSeeOther)
	})
	page("GET /projects/{project}/runs", (*ctx).runsPage)
	page("GET /projects/{project}/runs/{run}", (*ctx).runPage)
	page("GET /projects/{project}/runs/{run}/logs", (*ctx).runLogs)
	page("POST /projects/{project}/runs/{run}/stop", (*ctx).stopRun)
	page("GET /projects/{project}/offers", (*ctx).offersPage)
	page("GET /projects/{project}/fleets", (*ctx).fleetsPage)
	page("POST /projects/{project}/fleets/{fleet}/delete", (*ctx).deleteFleet)
	page("GET /projects/{project}/instances", (*ctx).instancesPage)
	page("GET /projects/{project}/settings", (*ctx).settingsPage)
	page("POST /projects/{project}/delete", (*ctx).deleteProject)
	page("GET /projects/{project}/members", (*ctx).membersPage)
	page("POST /projects/{project}/members", (*ctx).setMembers)
	page("POST /projects/{project}/members/add", (*ctx).addMember)
	page("POST /projects/{project}/members/remove", (*ctx).removeMember)
	page("GET /projects/{project}/backends/new", (*ctx).newBackendPage)
	page("POST /projects/{project}/backends/new", (*ctx).createBackend)
	page("GET /projects/{project}/backends/{type}", (*ctx).editBackendPage)
	page("POST /projects/{project}/backends/{type}", (*ctx).updateBackend)
	page("POST /projects/{project}/backends/{type}/delete", (*ctx).deleteBackend)
	page("GET /users", (*ctx).usersPage)
	page("POST /users", (*ctx).createUser)
	page("POST /users/{name}/role", (*ctx).setUserRole)
	page("POST /users/{name}/token", (*ctx).refreshUserToken)
	page("POST /users/{name}/delete", (*ctx).deleteUser)
	page("GET /account", (*ctx).accountPage)
	page("POST /account/token", (*ctx).refreshMyToken)
	mux.Handle("/", u.signedIn(func(c *ctx) {
		c.fail("Not found", "", &APIError{Status: http.StatusNotFound, Items: []ErrorItem{{Msg: "There is no page at " + c.r.URL.Path + "."}}})
	}))
	return securityHeaders(mux)
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// signedIn runs h for a signed-in user: the token comes from the cookie and the API says whose it is.
// POSTs must carry the form's CSRF token and, when the browser sends one, a same-site Origin.
func (u *UI) signedIn(h func(*ctx)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &ctx{u: u, w: w, r: r}
		ck, err := r.Cookie(CookieName)
		if err != nil || ck.Value == "" {
			u.toLogin(w, r, "")
			return
		}
		c.token = ck.Value
		var me userJSON
		if e := c.call("/api/users/get_my_user", nil, &me); e != nil {
			if e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden {
				clearSession(w)
				u.toLogin(w, r, "Your session has ended: the token is no longer valid. Sign in again.")
				return
			}
			c.fail("Error", "", e)
			return
		}
		me.Creds = nil
		c.me = &me
		if r.Method == http.MethodPost {
			if !sameOrigin(r) || r.PostFormValue("csrf") != csrfToken(c.token) {
				c.fail("Error", "", &APIError{Status: http.StatusForbidden, Items: []ErrorItem{{
					Msg: "This form came from another page or an old session. Reload the page and try again."}}})
				return
			}
		}
		h(c)
	})
}

func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		return r.Header.Get("Sec-Fetch-Site") != "cross-site"
	}
	ou, err := url.Parse(o)
	return err == nil && strings.EqualFold(ou.Host, r.Host)
}

func (u *UI) toLogin(w http.ResponseWriter, r *http.Request, msg string) {
	q := url.Values{}
	if r.Method == http.MethodGet && r.URL.Path != "/" {
		q.Set("next", r.URL.RequestURI())
	}
	if msg != "" {
		http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: url.QueryEscape(msg), Path: "/", MaxAge: 60, HttpOnly: true,
			SameSite: http.SameSiteLaxMode})
	}
	target := "/login"
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

func clearSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// safeNext keeps a post-login redirect on this site.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/projects"
	}
	return next
}

type loginData struct {
	Next  string
	Token string
}

func (u *UI) loginPage(w http.ResponseWriter, r *http.Request) {
	c := &ctx{u: u, w: w, r: r}
	if ck, err := r.Cookie(CookieName); err == nil && ck.Value != "" {
		if e := c.u.callAPI(r.Context(), ck.Value, "/api/users/get_my_user", nil, nil); e == nil {
			http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
			return
		}
	}
	c.render(0, "login", c.view("Sign in", "", loginData{Next: r.URL.Query().Get("next")}))
}

func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	c := &ctx{u: u, w: w, r: r}
	token := strings.TrimSpace(r.PostFormValue("token"))
	next := r.PostFormValue("next")
	v := c.view("Sign in", "", loginData{Next: next})
	if !sameOrigin(r) {
		v.Err = &APIError{Status: http.StatusForbidden, Items: []ErrorItem{{Msg: "Sign in from this site's own page."}}}
		c.render(0, "login", v)
		return
	}
	if token == "" {
		v.Err = &APIError{Status: http.StatusBadRequest, Items: []ErrorItem{{Path: "token", Msg: "Enter your token."}}}
		c.render(0, "login", v)
		return
	}
	var me userJSON
	if e := u.callAPI(r.Context(), token, "/api/users/get_my_user", nil, &me); e != nil {
		if e.Status == http.StatusForbidden || e.Status == http.StatusUnauthorized {
			e = &APIError{Status: e.Status, Items: []ErrorItem{{Path: "token",
				Msg: "The server does not accept this token (" + e.Error() + "). Check it and try again."}}}
		}
		v.Err = e
		c.render(0, "login", v)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: token, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: r.TLS != nil, MaxAge: 30 * 24 * 3600})
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: url.QueryEscape("Signed in as " + me.Username + "."), Path: "/",
		MaxAge: 60, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, safeNext(next), http.StatusSeeOther)
}

func (u *UI) logout(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "cross-site sign-out refused", http.StatusForbidden)
		return
	}
	clearSession(w)
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: url.QueryEscape("Signed out."), Path: "/", MaxAge: 60,
		HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
