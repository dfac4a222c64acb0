package ui

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
)

func projectPath(name string) string { return "/api/projects/" + url.PathEscape(name) }
func backendPath(name string) string { return "/api/project/" + url.PathEscape(name) + "/backends" }
func projectURL(name, sub string) string {
	return "/projects/" + url.PathEscape(name) + sub
}

// Projects

type projectRow struct {
	projectJSON
	Backends int
	Members  int
	Known    bool // whether the API let us read the project's details
}

type projectsData struct {
	Projects []projectRow
	NewName  string
	Public   bool
}

func (c *ctx) projectsPage() { c.renderProjects(nil, projectsData{}) }

func (c *ctx) renderProjects(formErr *APIError, d projectsData) {
	var list []projectJSON
	v := c.view("Projects", "projects", nil)
	v.Crumbs = []crumb{{Label: "Projects"}}
	if e := c.call("/api/projects/list", map[string]any{}, &list); e != nil {
		v.Err = e
		c.render(0, "error", v)
		return
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ProjectName < list[j].ProjectName })
	for _, p := range list {
		row := projectRow{projectJSON: p}
		var full projectJSON
		if c.call(projectPath(p.ProjectName)+"/get", nil, &full) == nil {
			row.Backends, row.Members, row.Known = len(full.Backends), len(full.Members), true
		}
		d.Projects = append(d.Projects, row)
	}
	v.D = d
	v.Err = formErr
	c.render(0, "projects", v)
}

func (c *ctx) createProject() {
	name := strings.TrimSpace(c.r.PostFormValue("project_name"))
	public := c.r.PostFormValue("is_public") == "on"
	if e := c.call("/api/projects/create", map[string]any{"project_name": name, "is_public": public}, nil); e != nil {
		c.renderProjects(e, projectsData{NewName: name, Public: public})
		return
	}
	c.redirect(projectURL(name, "/settings"), "Project "+name+" created. Add a backend to run workloads in it.")
}

func (c *ctx) deleteProject() {
	name := c.r.PathValue("project")
	if e := c.call("/api/projects/delete", map[string]any{"projects_names": []string{name}}, nil); e != nil {
		c.fail("Delete project "+name, "projects", e, crumb{"Projects", "/projects"}, crumb{name, projectURL(name, "/settings")})
		return
	}
	c.redirect("/projects", "Project "+name+" deleted.")
}

// loadProject gets a project through the API or renders the API's refusal.
func (c *ctx) loadProject() (*projectJSON, bool) {
	name := c.r.PathValue("project")
	var p projectJSON
	if e := c.call(projectPath(name)+"/get", nil, &p); e != nil {
		c.fail(name, "projects", e, crumb{"Projects", "/projects"}, crumb{Label: name})
		return nil, false
	}
	return &p, true
}

func (c *ctx) projectView(p *projectJSON, tab, title string) *view {
	v := c.view(title+" · "+p.ProjectName, "projects", nil)
	v.Project, v.Tab = p.ProjectName, tab
	v.Crumbs = []crumb{{"Projects", "/projects"}, {p.ProjectName, projectURL(p.ProjectName, "/runs")}, {Label: title}}
	return v
}

// Project settings: backends

type settingsData struct {
	P *projectJSON
	// CanAdmin only decides whether edit buttons are offered; the API decides what happens.
	CanAdmin bool
	Role     string
	Types    []typeCard
}

func (c *ctx) settingsPage() {
	p, ok := c.loadProject()
	if !ok {
		return
	}
	role := p.myRole(c.me)
	v := c.projectView(p, "settings", "Settings")
	v.D = settingsData{P: p, Role: role, CanAdmin: c.me.IsAdmin() || role == "admin"}
	c.render(0, "settings", v)
}

// Members

type membersData struct {
	P         *projectJSON
	Role      string
	CanManage bool
	Users     []string // usernames to offer when adding (global admins only can list them)
	AddUser   string
	AddRole   string
}

var projectRoles = []string{"admin", "manager", "user"}

func (c *ctx) membersPage() { c.renderMembers(nil, "", "user") }

func (c *ctx) renderMembers(formErr *APIError, addUser, addRole string) {
	p, ok := c.loadProject()
	if !ok {
		return
	}
	role := p.myRole(c.me)
	d := membersData{P: p, Role: role, CanManage: c.me.IsAdmin() || role == "admin" || role == "manager",
		AddUser: addUser, AddRole: addRole}
	var users []userJSON
	if c.call("/api/users/list", map[string]any{}, &users) == nil && len(users) > 1 {
		in := map[string]bool{}
		for _, m := range p.Members {
			in[m.User.Username] = true
		}
		for _, u := range users {
			if !in[u.Username] {
				d.Users = append(d.Users, u.Username)
			}
		}
		sort.Strings(d.Users)
	}
	v := c.projectView(p, "members", "Members")
	v.D = d
	v.Err = formErr
	c.render(0, "members", v)
}

// setMembers saves the roles of all members at once (set_members), as the table's form sends them.
func (c *ctx) setMembers() {
	name := c.r.PathValue("project")
	if err := c.r.ParseForm(); err != nil {
		c.fail("Members", "projects", &APIError{Status: http.StatusBadRequest, Items: []ErrorItem{{Msg: err.Error()}}})
		return
	}
	var members []map[string]string
	for _, u := range c.r.PostForm["member"] {
		members = append(members, map[string]string{"username": u, "project_role": c.r.PostFormValue("role:" + u)})
	}
	if members == nil {
		members = []map[string]string{}
	}
	if e := c.call(projectPath(name)+"/set_members", map[string]any{"members": members}, nil); e != nil {
		c.renderMembers(e, "", "user")
		return
	}
	c.redirect(projectURL(name, "/members"), "Member roles saved.")
}

func (c *ctx) addMember() {
	name := c.r.PathValue("project")
	user := strings.TrimSpace(c.r.PostFormValue("username"))
	role := c.r.PostFormValue("project_role")
	if user == "" {
		c.renderMembers(&APIError{Status: http.StatusBadRequest, Items: []ErrorItem{{Path: "username", Msg: "Enter a username or email."}}}, user, role)
		return
	}
	body := map[string]any{"members": []map[string]string{{"username": user, "project_role": role}}}
	if e := c.call(projectPath(name)+"/add_members", body, nil); e != nil {
		c.renderMembers(e, user, role)
		return
	}
	c.redirect(projectURL(name, "/members"), user+" is now a member ("+role+").")
}

func (c *ctx) removeMember() {
	name := c.r.PathValue("project")
	user := c.r.PostFormValue("username")
	if e := c.call(projectPath(name)+"/remove_members", map[string]any{"usernames": []string{user}}, nil); e != nil {
		c.renderMembers(e, "", "user")
		return
	}
	c.redirect(projectURL(name, "/members"), user+" was removed from the project.")
}

// Users

type usersData struct {
	Users    []userJSON
	NewName  string
	NewRole  string
	NewEmail string
	// Token is a token just issued, shown once.
	TokenUser, Token string
}

func (c *ctx) usersPage() { c.renderUsers(nil, usersData{NewRole: "user"}) }

func (c *ctx) renderUsers(formErr *APIError, d usersData) {
	v := c.view("Users", "users", nil)
	v.Crumbs = []crumb{{Label: "Users"}}
	if e := c.call("/api/users/list", map[string]any{"ascending": true}, &d.Users); e != nil {
		v.Err = e
		c.render(0, "error", v)
		return
	}
	v.D = d
	v.Err = formErr
	c.render(0, "users", v)
}

func (c *ctx) createUser() {
	d := usersData{NewName: strings.TrimSpace(c.r.PostFormValue("username")), NewRole: c.r.PostFormValue("global_role"),
		NewEmail: strings.TrimSpace(c.r.PostFormValue("email"))}
	body := map[string]any{"username": d.NewName, "global_role": d.NewRole}
	if d.NewEmail != "" {
		body["email"] = d.NewEmail
	}
	if e := c.call("/api/users/create", body, nil); e != nil {
		c.renderUsers(e, d)
		return
	}
	// Show the new user's token once, so the admin can hand it over.
	var got userJSON
	if e := c.call("/api/users/get_user", map[string]any{"username": d.NewName}, &got); e == nil && got.Creds != nil {
		c.renderUsers(nil, usersData{NewRole: "user", TokenUser: got.Username, Token: got.Creds.Token})
		return
	}
	c.redirect("/users", "User "+d.NewName+" created.")
}

func (c *ctx) setUserRole() {
	name := c.r.PathValue("name")
	var cur userJSON
	if e := c.call("/api/users/get_user", map[string]any{"username": name}, &cur); e != nil {
		c.renderUsers(e, usersData{NewRole: "user"})
		return
	}
	body := map[string]any{"username": name, "global_role": c.r.PostFormValue("global_role"), "email": cur.Email, "active": cur.Active}
	if e := c.call("/api/users/update", body, nil); e != nil {
		c.renderUsers(e, usersData{NewRole: "user"})
		return
	}
	c.redirect("/users", "Role of "+name+" set to "+c.r.PostFormValue("global_role")+".")
}

func (c *ctx) refreshUserToken() {
	name := c.r.PathValue("name")
	var got userJSON
	if e := c.call("/api/users/refresh_token", map[string]any{"username": name}, &got); e != nil {
		c.renderUsers(e, usersData{NewRole: "user"})
		return
	}
	if strings.EqualFold(name, c.me.Username) && got.Creds != nil {
		c.setSession(got.Creds.Token)
	}
	d := usersData{NewRole: "user", TokenUser: got.Username}
	if got.Creds != nil {
		d.Token = got.Creds.Token
	}
	c.renderUsers(nil, d)
}

func (c *ctx) deleteUser() {
	name := c.r.PathValue("name")
	if e := c.call("/api/users/delete", map[string]any{"users": []string{name}}, nil); e != nil {
		c.renderUsers(e, usersData{NewRole: "user"})
		return
	}
	c.redirect("/users", "User "+name+" deleted.")
}

// setSession replaces the session's token (after the user refreshed their own).
func (c *ctx) setSession(token string) {
	c.token = token
	http.SetCookie(c.w, &http.Cookie{Name: CookieName, Value: token, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: c.r.TLS != nil, MaxAge: 30 * 24 * 3600})
}

// Account

type accountData struct {
	User     userJSON
	Token    string
	NewToken bool
}

func (c *ctx) accountPage() {
	var me userJSON
	v := c.view("Account", "account", nil)
	v.Crumbs = []crumb{{Label: "Account"}}
	if e := c.call("/api/users/get_my_user", nil, &me); e != nil {
		v.Err = e
		c.render(0, "error", v)
		return
	}
	d := accountData{User: me}
	if me.Creds != nil {
		d.Token = me.Creds.Token
	}
	v.D = d
	c.render(0, "account", v)
}

func (c *ctx) refreshMyToken() {
	var got userJSON
	if e := c.call("/api/users/refresh_token", map[string]any{"username": c.me.Username}, &got); e != nil {
		c.fail("Account", "account", e, crumb{Label: "Account"})
		return
	}
	d := accountData{User: got, NewToken: true}
	if got.Creds != nil {
		d.Token = got.Creds.Token
		c.setSession(d.Token)
	}
	v := c.view("Account", "account", d)
	v.CSRF = csrfToken(c.token)
	v.Crumbs = []crumb{{Label: "Account"}}
	c.render(0, "account", v)
}
