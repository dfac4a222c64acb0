package ui

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/dstackgo/dstack/internal/backends"
)

// typeCard is one backend type on the "add a backend" page.
type typeCard struct {
	Type, Title string
	HasCheck    bool
	Configured  bool
}

// editorData is the YAML editor's state.
type editorData struct {
	Text     string
	Issues   []YAMLIssue
	ErrLines []int
}

type backendPageData struct {
	P          *projectJSON
	CanAdmin   bool
	Types      []typeCard
	Type       string
	Title      string
	Mode       string // yaml or form
	Editor     editorData
	Form       *BackendForm
	FormErrors []ErrorItem
	// Editing an existing backend:
	Backend  *backendJSON
	Masked   bool
	Hidden   int
	Revealed bool
}

func (c *ctx) backendData(p *projectJSON) *backendPageData {
	role := p.myRole(c.me)
	return &backendPageData{P: p, CanAdmin: c.me.IsAdmin() || role == "admin"}
}

func (c *ctx) newBackendPage() {
	p, ok := c.loadProject()
	if !ok {
		return
	}
	d := c.backendData(p)
	d.Type = c.r.URL.Query().Get("type")
	d.Mode = c.r.URL.Query().Get("mode")
	if d.Mode != "form" {
		d.Mode = "yaml"
	}
	v := c.projectView(p, "settings", "Add a backend")
	v.Crumbs = []crumb{{"Projects", "/projects"}, {p.ProjectName, projectURL(p.ProjectName, "/runs")},
		{"Settings", projectURL(p.ProjectName, "/settings")}, {Label: "Add a backend"}}
	if d.Type == "" {
		var types []string
		if e := c.call("/api/backends/list_types", nil, &types); e != nil {
			v.Err = e
			c.render(0, "error", v)
			return
		}
		configured := map[string]bool{}
		for _, b := range p.Backends {
			configured[b.Name] = true
		}
		for _, t := range types {
			card := typeCard{Type: t, Title: t, Configured: configured[t]}
			if drv, ok := backends.Lookup(t); ok {
				card.Title, card.HasCheck = drv.Title, drv.Check != nil
			}
			d.Types = append(d.Types, card)
		}
		v.D = d
		c.render(0, "backend_types", v)
		return
	}
	drv, ok := backends.Lookup(d.Type)
	if !ok {
		c.fail("Add a backend", "projects", &APIError{Status: http.StatusNotFound, Items: []ErrorItem{{
			Msg: "There is no backend type " + d.Type + "."}}}, v.Crumbs...)
		return
	}
	d.Title = drv.Title
	d.Editor.Text = TemplateYAML(d.Type)
	d.Form = NewBackendForm(d.Type, nil)
	v.D = d
	v.Title = "Add " + d.Title + " · " + p.ProjectName
	c.render(0, "backend_new", v)
}

func (c *ctx) createBackend() {
	p, ok := c.loadProject()
	if !ok {
		return
	}
	d := c.backendData(p)
	d.Type = c.r.PostFormValue("type")
	d.Mode = c.r.PostFormValue("mode")
	if drv, ok := backends.Lookup(d.Type); ok {
		d.Title = drv.Title
	} else {
		d.Title = d.Type
	}
	v := c.projectView(p, "settings", "Add a backend")
	v.Title = "Add " + d.Title + " · " + p.ProjectName
	var e *APIError
	if d.Mode == "form" {
		d.Form = NewBackendForm(d.Type, c.r.PostForm)
		if d.Form == nil {
			c.fail("Add a backend", "projects", &APIError{Status: http.StatusNotFound, Items: []ErrorItem{{Msg: "There is no backend type " + d.Type + "."}}})
			return
		}
		d.Editor.Text = TemplateYAML(d.Type)
		if e = c.call(backendPath(p.ProjectName)+"/create", d.Form.Values(), nil); e != nil {
			d.FormErrors = d.Form.PlaceErrors(e)
		}
	} else {
		d.Mode = "yaml"
		d.Editor.Text = normalizeNewlines(c.r.PostFormValue("config_yaml"))
		d.Form = NewBackendForm(d.Type, nil)
		if e = c.call(backendPath(p.ProjectName)+"/create_yaml", map[string]any{"config_yaml": d.Editor.Text}, nil); e != nil {
			d.Editor.Issues = YAMLIssues(e, d.Editor.Text)
			d.Editor.ErrLines = ErrorLines(d.Editor.Issues)
			if t := typeOf(d.Editor.Text); t != "" {
				d.Type = t
			}
		}
	}
	if e != nil {
		v.Err = e
		v.D = d
		c.render(0, "backend_new", v)
		return
	}
	typ := d.Type
	if d.Mode == "yaml" {
		typ = typeOf(d.Editor.Text)
	}
	c.redirect(projectURL(p.ProjectName, "/settings"), "Backend "+typ+" added"+c.statusNote(p.ProjectName, typ)+".")
}

// statusNote says how the server's credential check went, per the project as the API shows it.
func (c *ctx) statusNote(project, typ string) string {
	var p projectJSON
	if c.call(projectPath(project)+"/get", nil, &p) != nil {
		return ""
	}
	for _, b := range p.Backends {
		if b.Name == typ {
			switch b.Status {
			case "valid":
				return "; its credentials are valid"
			case "unchecked":
				return "; its credentials were stored unchecked"
			case "invalid":
				return "; its credentials are invalid: " + b.StatusMessage
			}
		}
	}
	return ""
}

func typeOf(text string) string {
	m, err := parseYAMLMap(text)
	if err != nil {
		return ""
	}
	t, _ := m["type"].(string)
	return t
}

func normalizeNewlines(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }

func (c *ctx) editBackendPage() {
	p, ok := c.loadProject()
	if !ok {
		return
	}
	typ := c.r.PathValue("type")
	d := c.backendData(p)
	d.Type, d.Title, d.Mode = typ, typ, "yaml"
	if drv, ok := backends.Lookup(typ); ok {
		d.Title = drv.Title
	}
	for i := range p.Backends {
		if p.Backends[i].Name == typ {
			d.Backend = &p.Backends[i]
		}
	}
	v := c.projectView(p, "settings", "Backend "+typ)
	// The stored YAML, creds included, is the API's to give or refuse (project admins only).
	var got struct {
		ConfigYAML string `json:"config_yaml"`
	}
	if e := c.call(backendPath(p.ProjectName)+"/"+url.PathEscape(typ)+"/get_yaml", nil, &got); e != nil {
		v.Err = e
		v.D = d
		c.render(0, "backend_edit", v)
		return
	}
	d.Editor.Text = got.ConfigYAML
	d.Revealed = c.r.URL.Query().Get("show") == "creds"
	if m, err := parseYAMLMap(got.ConfigYAML); err == nil {
		masked, n := MaskSecrets(typ, m)
		d.Hidden = n
		if !d.Revealed && n > 0 {
			d.Editor.Text = DumpYAML(masked)
			d.Masked = true
		}
	}
	v.D = d
	c.render(0, "backend_edit", v)
}

func (c *ctx) updateBackend() {
	p, ok := c.loadProject()
	if !ok {
		return
	}
	typ := c.r.PathValue("type")
	d := c.backendData(p)
	d.Type, d.Title, d.Mode = typ, typ, "yaml"
	if drv, ok := backends.Lookup(typ); ok {
		d.Title = drv.Title
	}
	for i := range p.Backends {
		if p.Backends[i].Name == typ {
			d.Backend = &p.Backends[i]
		}
	}
	text := normalizeNewlines(c.r.PostFormValue("config_yaml"))
	d.Editor.Text = text
	d.Masked = strings.Contains(text, Mask)
	d.Revealed = c.r.PostFormValue("revealed") == "1"
	v := c.projectView(p, "settings", "Backend "+typ)
	showErr := func(e *APIError, issues []YAMLIssue) {
		d.Editor.Issues = issues
		d.Editor.ErrLines = ErrorLines(issues)
		v.Err = e
		v.D = d
		c.render(0, "backend_edit", v)
	}
	send := text
	if d.Masked {
		// Hidden values stay as stored: fetch them (as this user; the API decides) and put them back.
		var got struct {
			ConfigYAML string `json:"config_yaml"`
		}
		if e := c.call(backendPath(p.ProjectName)+"/"+url.PathEscape(typ)+"/get_yaml", nil, &got); e != nil {
			showErr(e, nil)
			return
		}
		stored, err := parseYAMLMap(got.ConfigYAML)
		if err != nil {
			showErr(&APIError{Status: http.StatusBadGateway, Items: []ErrorItem{{Msg: "cannot read the stored config: " + err.Error()}}}, nil)
			return
		}
		var issues []YAMLIssue
		if send, issues = UnmaskYAML(text, stored); len(issues) > 0 {
			showErr(&APIError{Status: http.StatusBadRequest, Items: []ErrorItem{{Msg: "Some hidden values have nowhere to come from."}}}, issues)
			return
		}
	}
	if e := c.call(backendPath(p.ProjectName)+"/update_yaml", map[string]any{"config_yaml": send}, nil); e != nil {
		showErr(e, YAMLIssues(e, send))
		return
	}
	c.redirect(projectURL(p.ProjectName, "/settings"), "Backend "+typ+" updated"+c.statusNote(p.ProjectName, typ)+".")
}

func (c *ctx) deleteBackend() {
	p, ok := c.loadProject()
	if !ok {
		return
	}
	typ := c.r.PathValue("type")
	if e := c.call(backendPath(p.ProjectName)+"/delete", map[string]any{"backends_names": []string{typ}}, nil); e != nil {
		role := p.myRole(c.me)
		v := c.projectView(p, "settings", "Settings")
		v.D = settingsData{P: p, Role: role, CanAdmin: c.me.IsAdmin() || role == "admin"}
		v.Err = e
		c.render(0, "settings", v)
		return
	}
	c.redirect(projectURL(p.ProjectName, "/settings"), "Backend "+typ+" deleted.")
}
