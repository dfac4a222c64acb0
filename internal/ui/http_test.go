package ui_test

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

const awsYAML = "type: aws\nregions: [us-east-1]\ncreds:\n  type: access_key\n  access_key: AKIAUITESTKEY\n  secret_key: ui-test-secret-value\n"

func TestUnknownAPIPathsStayJSON404(t *testing.T) {
	s := newSite(t)
	for _, p := range []string{"/api", "/api/", "/api/nope", "/api/projects/main/nope"} {
		res, err := http.Get(s.ts.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		var body strings.Builder
		_, _ = fmt.Fprint(&body, res.Header.Get("Content-Type"))
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound || !strings.Contains(body.String(), "application/json") {
			t.Errorf("GET %s: %d %s; want the API's JSON 404", p, res.StatusCode, body.String())
		}
	}
	if code, out := s.api("admin", "/api/nope", nil); code != http.StatusNotFound || fmt.Sprint(out) != "map[detail:Not Found]" {
		t.Errorf("POST /api/nope: %d %v", code, out)
	}
}

func TestSignIn(t *testing.T) {
	s := newSite(t)
	anon := s.browser("")
	p := anon.get("/projects")
	if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/login?next=") {
		t.Fatalf("anonymous /projects: %d %q", p.Status, p.Location)
	}
	p = anon.get("/login")
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `name="token"`) {
		t.Fatalf("login page: %d", p.Status)
	}
	if csp := p.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP: %q", csp)
	}
	p = anon.post("/login", url.Values{"token": {"not-a-token"}})
	if p.Status != http.StatusForbidden || !strings.Contains(p.Body, "does not accept this token") {
		t.Fatalf("bad token: %d\n%s", p.Status, p.Body)
	}
	p = anon.post("/login", url.Values{"token": {adminToken}, "next": {"/users"}})
	if p.Status != http.StatusSeeOther || p.Location != "/users" {
		t.Fatalf("good token: %d %q", p.Status, p.Location)
	}
	p = anon.get("/users")
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "padmin") || !strings.Contains(p.Body, "Signed in as admin") {
		t.Fatalf("users after sign-in: %d", p.Status)
	}
	// An off-site next is ignored.
	p = s.browser("").post("/login", url.Values{"token": {adminToken}, "next": {"//evil.example/"}})
	if p.Location != "/projects" {
		t.Errorf("next=//evil: %q", p.Location)
	}
	p = anon.post("/logout", nil)
	if p.Status != http.StatusSeeOther || anon.get("/projects").Status != http.StatusSeeOther {
		t.Fatalf("after sign-out the pages ask to sign in again")
	}
}

func TestFormsNeedTheirCSRFToken(t *testing.T) {
	s := newSite(t)
	b := s.browser("admin")
	p := b.post("/projects", url.Values{"project_name": {"refused-by-csrf"}, "csrf": {"0000"}})
	if p.Status != http.StatusForbidden {
		t.Fatalf("wrong csrf: %d", p.Status)
	}
	// A page from another site cannot post, even with a token it somehow had.
	req, _ := http.NewRequest(http.MethodPost, s.ts.URL+"/projects", strings.NewReader("project_name=refused-cross-site"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	if p := b.do(req); p.Status != http.StatusForbidden {
		t.Fatalf("cross-site post: %d", p.Status)
	}
	list := s.mustAPI("admin", "/api/projects/list", map[string]any{})
	// (distinctive names: short ones like "x1" also occur in random keys and ids)
	if strings.Contains(fmt.Sprint(list), "refused-by-csrf") || strings.Contains(fmt.Sprint(list), "refused-cross-site") {
		t.Fatalf("a refused form created a project: %v", list)
	}
	if p := b.post("/projects", url.Values{"project_name": {"x3"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("create project: %d %s", p.Status, p.Body)
	}
}

// TestAccessControlIsTheServers signs in as a project user and as a project manager and makes the
// requests the UI's own pages make to read credentials and change backends. The API refuses each (403),
// the UI answers with that status and says so in words, and nothing changes.
func TestAccessControlIsTheServers(t *testing.T) {
	s := newSite(t)
	s.mustAPI("padmin", "/api/project/main/backends/create_yaml", map[string]any{"config_yaml": awsYAML})
	for _, role := range []string{"member", "manager"} {
		t.Run(role, func(t *testing.T) {
			b := s.browser(role)
			settings := b.get("/projects/main/settings")
			if settings.Status != http.StatusOK || !strings.Contains(settings.Body, `data-backend="aws"`) {
				t.Fatalf("settings: %d", settings.Status)
			}
			if strings.Contains(settings.Body, "ui-test-secret-value") || strings.Contains(settings.Body, "AKIAUITESTKEY") {
				t.Fatal("the settings page shows credentials to a " + role)
			}
			checks := []struct {
				name string
				p    page
			}{
				{"view masked config (get_yaml)", b.get("/projects/main/backends/aws")},
				{"show credentials (get_yaml)", b.get("/projects/main/backends/aws?show=creds")},
				{"add backend by YAML (create_yaml)", b.post("/projects/main/backends/new", url.Values{"mode": {"yaml"}, "type": {"oci"},
					"config_yaml": {"type: oci\ncreds:\n  type: default\n"}})},
				{"add backend by form (create)", b.post("/projects/main/backends/new", url.Values{"mode": {"form"}, "type": {"oci"},
					"f.creds.type": {"default"}})},
				{"edit backend (update_yaml)", b.post("/projects/main/backends/aws", url.Values{"config_yaml": {strings.NewReplacer("ui-test-secret-value", "other", "AKIAUITESTKEY", "AKIAOTHER").Replace(awsYAML)}})},
				{"edit backend keeping hidden creds (get_yaml + update_yaml)", b.post("/projects/main/backends/aws",
					url.Values{"config_yaml": {strings.ReplaceAll(strings.ReplaceAll(awsYAML, "AKIAUITESTKEY", "••••••••"), "ui-test-secret-value", "••••••••")}})},
				{"delete backend", b.post("/projects/main/backends/aws/delete", nil)},
			}
			for _, c := range checks {
				body := html.UnescapeString(c.p.Body)
				if c.p.Status != http.StatusForbidden {
					t.Errorf("%s: status %d, want the API's 403", c.name, c.p.Status)
				}
				if !strings.Contains(body, "The server refused this request (403 Forbidden)") || !strings.Contains(body, "Access denied") {
					t.Errorf("%s: the page does not say the server refused it:\n%s", c.name, body)
				}
				if strings.Contains(body, "ui-test-secret-value") || strings.Contains(body, "AKIAUITESTKEY") {
					t.Errorf("%s: the page shows credentials", c.name)
				}
			}
		})
	}
	// Nothing changed.
	p := s.mustAPI("admin", "/api/projects/main/get", nil).(map[string]any)
	if bs := p["backends"].([]any); len(bs) != 1 {
		t.Fatalf("backends changed: %v", bs)
	}
	info := s.mustAPI("admin", "/api/project/main/backends/aws/config_info", nil).(map[string]any)
	if info["creds"].(map[string]any)["secret_key"] != "ui-test-secret-value" {
		t.Fatalf("creds changed: %v", info)
	}
	// Managers may change members, but not admins: the API says so and the page shows it.
	b := s.browser("manager")
	res := b.post("/projects/main/members/add", url.Values{"username": {"outsider"}, "project_role": {"admin"}})
	if res.Status != http.StatusBadRequest || !strings.Contains(res.Body, "Only project admins can grant the admin role") {
		t.Fatalf("manager grants admin: %d", res.Status)
	}
	if res := s.browser("member").post("/projects/main/members/add", url.Values{"username": {"outsider"}, "project_role": {"user"}}); res.Status != http.StatusForbidden {
		t.Fatalf("project user adds a member: %d", res.Status)
	}
	if res := b.post("/projects/main/members/add", url.Values{"username": {"outsider"}, "project_role": {"user"}}); res.Status != http.StatusSeeOther {
		t.Fatalf("manager adds a user: %d %s", res.Status, res.Body)
	}
	// Non-admins cannot manage users through the UI either.
	for _, path := range []string{"/users", "/users/member/role", "/users/member/token", "/users/member/delete"} {
		form := url.Values{"username": {"newbie"}, "global_role": {"admin"}}
		if r := s.browser("padmin").post(path, form); r.Status != http.StatusForbidden {
			t.Errorf("POST %s as a non-admin: %d", path, r.Status)
		}
	}
	// Everyone may refresh their own token; the browser keeps working with the new one.
	pb := s.browser("padmin")
	if r := pb.post("/account/token", nil); r.Status != http.StatusOK || !strings.Contains(r.Body, "A new token was issued") {
		t.Fatalf("refresh own token: %d", r.Status)
	}
	if r := pb.get("/account"); r.Status != http.StatusOK {
		t.Fatalf("after refreshing the token: %d %s", r.Status, r.Location)
	}
	if code, _ := s.api("padmin", "/api/users/get_my_user", nil); code != http.StatusForbidden {
		t.Fatalf("the old token still works: %d", code)
	}
}

// TestProjectAdminSeesCredsOnlyWhenAsked: the edit page hides secrets until "Show credentials", and a
// save that leaves them hidden keeps the stored values.
func TestProjectAdminSeesCredsOnlyWhenAsked(t *testing.T) {
	s := newSite(t)
	s.mustAPI("padmin", "/api/project/main/backends/create_yaml", map[string]any{"config_yaml": awsYAML})
	b := s.browser("padmin")
	masked := b.get("/projects/main/backends/aws")
	if masked.Status != http.StatusOK || strings.Contains(masked.Body, "ui-test-secret-value") || !strings.Contains(masked.Body, "••••••••") {
		t.Fatalf("masked edit page: %d\n%s", masked.Status, masked.Body)
	}
	shown := b.get("/projects/main/backends/aws?show=creds")
	if !strings.Contains(shown.Body, "ui-test-secret-value") || !strings.Contains(shown.Body, "AKIAUITESTKEY") {
		t.Fatalf("show creds: %d", shown.Status)
	}
	// Save the masked text with a change elsewhere.
	text := strings.ReplaceAll(strings.ReplaceAll(awsYAML, "AKIAUITESTKEY", "••••••••"), "ui-test-secret-value", "••••••••")
	text = strings.Replace(text, "[us-east-1]", "[us-west-2]", 1)
	if r := b.post("/projects/main/backends/aws", url.Values{"config_yaml": {text}}); r.Status != http.StatusSeeOther {
		t.Fatalf("save: %d\n%s", r.Status, r.Body)
	}
	info := s.mustAPI("admin", "/api/project/main/backends/aws/config_info", nil).(map[string]any)
	if info["creds"].(map[string]any)["secret_key"] != "ui-test-secret-value" || fmt.Sprint(info["regions"]) != "[us-west-2]" {
		t.Fatalf("after save: %v", info)
	}
}

func TestYAMLErrorsAtTheirLines(t *testing.T) {
	s := newSite(t)
	b := s.browser("padmin")
	bad := "type: oci\nregions: [eu-frankfurt-1]\ncreds:\n  type: default\nfoo: bar\n"
	r := b.post("/projects/main/backends/new", url.Values{"mode": {"yaml"}, "type": {"oci"}, "config_yaml": {bad}})
	body := html.UnescapeString(r.Body)
	if r.Status != http.StatusBadRequest || !strings.Contains(body, "Line 5, column 1") || !strings.Contains(body, `unknown key "foo"`) {
		t.Fatalf("unknown key: %d\n%s", r.Status, body)
	}
	if !strings.Contains(r.Body, `data-error-lines="5"`) || !strings.Contains(r.Body, `<span class="err" data-line="5">5</span>`) {
		t.Fatalf("line 5 is not marked:\n%s", r.Body)
	}
	// A syntax error: the server says only "Error parsing YAML"; the page still points at the line.
	r = b.post("/projects/main/backends/new", url.Values{"mode": {"yaml"}, "type": {"oci"}, "config_yaml": {"type: oci\ncreds:\n  type: [default\n"}})
	if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "Error parsing YAML") || !strings.Contains(r.Body, `class="issue-where" data-line="`) {
		t.Fatalf("syntax error: %d\n%s", r.Status, r.Body)
	}
	r = b.post("/projects/main/backends/new", url.Values{"mode": {"yaml"}, "type": {"oci"}, "config_yaml": {"type: oci\ncreds:\n  type: default\n"}})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("fixed: %d\n%s", r.Status, r.Body)
	}
	settings := b.get("/projects/main/settings")
	if !strings.Contains(settings.Body, `data-backend="oci"`) || !strings.Contains(settings.Body, "badge-ok\">valid") {
		t.Fatalf("oci is not listed as valid:\n%s", settings.Body)
	}
}

func TestBackendFormForEveryType(t *testing.T) {
	s := newSite(t)
	b := s.browser("padmin")
	types := s.mustAPI("padmin", "/api/backends/list_types", nil).([]any)
	if len(types) < 13 {
		t.Fatalf("types: %v", types)
	}
	for _, typ := range types {
		for _, mode := range []string{"yaml", "form"} {
			p := b.get(fmt.Sprintf("/projects/main/backends/new?type=%s&mode=%s", typ, mode))
			if p.Status != http.StatusOK {
				t.Errorf("%s %s: %d\n%s", typ, mode, p.Status, p.Body)
			}
		}
	}
	// The form posts the API's JSON: a missing required key comes back at its field.
	r := b.post("/projects/main/backends/new", url.Values{"mode": {"form"}, "type": {"aws"}, "f.creds.type": {"access_key"},
		"f.creds{access_key}.access_key": {"AKIAFORM"}})
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(r.Body, `id="f-creds-access_key-secret_key-error"`) {
		t.Fatalf("form error: %d\n%s", r.Status, r.Body)
	}
	r = b.post("/projects/main/backends/new", url.Values{"mode": {"form"}, "type": {"aws"}, "f.creds.type": {"access_key"},
		"f.creds{access_key}.access_key": {"AKIAFORM"}, "f.creds{access_key}.secret_key": {"form-secret"}, "f.regions": {"us-east-1, eu-west-1"},
		"f.public_ips": {"false"}, "f.tags": {"team: ml\nenv=dev"}})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("form create: %d\n%s", r.Status, r.Body)
	}
	info := s.mustAPI("admin", "/api/project/main/backends/aws/config_info", nil).(map[string]any)
	if fmt.Sprint(info["regions"]) != "[us-east-1 eu-west-1]" || info["public_ips"] != false ||
		fmt.Sprint(info["tags"]) != "map[env:dev team:ml]" || info["creds"].(map[string]any)["secret_key"] != "form-secret" {
		t.Fatalf("stored: %v", info)
	}
}

func TestMembersAndUsersPages(t *testing.T) {
	s := newSite(t)
	b := s.browser("admin")
	// Change roles through the table's form: member becomes manager.
	form := url.Values{}
	for name, role := range map[string]string{"admin": "admin", "padmin": "admin", "manager": "manager", "member": "manager"} {
		form.Add("member", name)
		form.Set("role:"+name, role)
	}
	if r := b.post("/projects/main/members", form); r.Status != http.StatusSeeOther {
		t.Fatalf("set roles: %d %s", r.Status, r.Body)
	}
	if r := b.post("/projects/main/members/remove", url.Values{"username": {"manager"}}); r.Status != http.StatusSeeOther {
		t.Fatalf("remove: %d", r.Status)
	}
	p := b.get("/projects/main/members")
	if !strings.Contains(p.Body, `data-member="member"`) || strings.Contains(p.Body, `data-member="manager"`) {
		t.Fatalf("members page:\n%s", p.Body)
	}
	// Users: create (the token is shown once), change role, refresh token.
	r := b.post("/users", url.Values{"username": {"carol"}, "global_role": {"user"}, "email": {"carol@example.com"}})
	if r.Status != http.StatusOK || !strings.Contains(r.Body, "Token for carol") {
		t.Fatalf("create user: %d\n%s", r.Status, r.Body)
	}
	if r := b.post("/users/carol/role", url.Values{"global_role": {"admin"}}); r.Status != http.StatusSeeOther {
		t.Fatalf("role: %d", r.Status)
	}
	u := s.mustAPI("admin", "/api/users/get_user", map[string]any{"username": "carol"}).(map[string]any)
	if u["global_role"] != "admin" || u["email"] != "carol@example.com" {
		t.Fatalf("carol: %v", u)
	}
	old := u["creds"].(map[string]any)["token"].(string)
	r = b.post("/users/carol/token", nil)
	if r.Status != http.StatusOK || strings.Contains(r.Body, old) || !strings.Contains(r.Body, "Token for carol") {
		t.Fatalf("refresh: %d", r.Status)
	}
	// Bad input comes back in words.
	r = b.post("/users", url.Values{"username": {"bad name!"}, "global_role": {"user"}})
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(r.Body, "String should match pattern") {
		t.Fatalf("bad username: %d\n%s", r.Status, r.Body)
	}
}
