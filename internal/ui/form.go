package ui

import (
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/schema"
)

// A backend form is generated from the backend's schema (backends.Lookup(t).Fields): one input per
// scalar field, a fieldset per object of scalars, and a choice of variant for unions such as creds.
// Fields too rich for a form (lists of objects, nested objects) are left to the YAML editor.

// FormField is one input, or a group of them.
type FormField struct {
	Path     string // the API's path, e.g. creds.api_key
	Name     string // the input's name
	ID       string
	Key      string // the YAML key
	Label    string
	Help     string
	Kind     string // text, secret, int, bool, list, enum, enumlist, map, group, union
	Required bool
	Enum     []string
	Value    string
	Checked  map[string]bool // enumlist
	Error    string
	Children []*FormField   // group
	Variants []*FormVariant // union
	Tag      string         // union
}

// FormVariant is one alternative of a union field.
type FormVariant struct {
	Name    string
	ID      string
	Checked bool
	Fields  []*FormField
}

// BackendForm is the form of one backend type.
type BackendForm struct {
	Type    string
	Title   string
	Fields  []*FormField
	Skipped []string // keys only the YAML editor sets
}

var idUnsafe = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// NewBackendForm builds the form of typ with the values posted in vals (nil for a blank form).
func NewBackendForm(typ string, vals url.Values) *BackendForm {
	d, ok := backends.Lookup(typ)
	if !ok {
		return nil
	}
	bf := &BackendForm{Type: typ, Title: d.Title}
	for _, f := range d.Fields {
		if ff := newFormField(f, "f.", "", vals); ff != nil {
			bf.Fields = append(bf.Fields, ff)
		} else {
			bf.Skipped = append(bf.Skipped, f.Name)
		}
	}
	return bf
}

func humanize(key string) string {
	words := strings.Split(key, "_")
	for i, w := range words {
		switch w {
		case "id", "api", "url", "vpc", "iam", "os", "ip", "ips", "pem":
			if w == "ips" {
				words[i] = "IPs"
			} else {
				words[i] = strings.ToUpper(w)
			}
		default:
			if i == 0 && w != "" {
				words[i] = strings.ToUpper(w[:1]) + w[1:]
			}
		}
	}
	return strings.Join(words, " ")
}

func scalarOnly(fields []schema.Field) bool {
	for _, f := range fields {
		if f.Kind == schema.Object || f.Kind == schema.ObjectList || f.Kind == schema.Union {
			return false
		}
	}
	return true
}

// newFormField returns nil for a field the form does not offer.
func newFormField(f schema.Field, namePrefix, pathPrefix string, vals url.Values) *FormField {
	name := namePrefix + f.Name
	ff := &FormField{Path: pathPrefix + f.Name, Name: name, ID: "f-" + idUnsafe.ReplaceAllString(strings.TrimPrefix(name, "f."), "-"),
		Key: f.Name, Label: humanize(f.Name), Help: f.Help, Required: f.Required, Enum: f.Enum, Value: vals.Get(name)}
	switch f.Kind {
	case schema.String:
		switch {
		case f.Secret:
			ff.Kind = "secret"
		case len(f.Enum) > 0:
			ff.Kind = "enum"
		default:
			ff.Kind = "text"
		}
	case schema.Int:
		ff.Kind = "int"
	case schema.Bool:
		ff.Kind = "bool"
	case schema.StringList:
		if len(f.Enum) > 0 {
			ff.Kind = "enumlist"
			ff.Checked = map[string]bool{}
			for _, v := range vals[name] {
				ff.Checked[v] = true
			}
		} else {
			ff.Kind = "list"
		}
	case schema.StringMap:
		ff.Kind = "map"
	case schema.Object:
		if !scalarOnly(f.Fields) {
			return nil
		}
		ff.Kind = "group"
		for _, sub := range f.Fields {
			if c := newFormField(sub, name+".", ff.Path+".", vals); c != nil {
				ff.Children = append(ff.Children, c)
			}
		}
	case schema.Union:
		ff.Kind = "union"
		ff.Tag = f.Tag
		if ff.Tag == "" {
			ff.Tag = "type"
		}
		ff.Name = name + "." + ff.Tag
		ff.Value = vals.Get(ff.Name)
		if ff.Value == "" && len(f.Variants) > 0 {
			ff.Value = f.Variants[0].Name
		}
		for _, v := range f.Variants {
			if !scalarOnly(v.Fields) {
				continue
			}
			fv := &FormVariant{Name: v.Name, ID: ff.ID + "-" + idUnsafe.ReplaceAllString(v.Name, "-"), Checked: v.Name == ff.Value}
			for _, sub := range v.Fields {
				if c := newFormField(sub, name+"{"+v.Name+"}.", ff.Path+".", vals); c != nil {
					fv.Fields = append(fv.Fields, c)
				}
			}
			ff.Variants = append(ff.Variants, fv)
		}
	default:
		return nil
	}
	return ff
}

// Values turns the posted form into a backend config for the API, with "type" set.
func (bf *BackendForm) Values() map[string]any {
	out := map[string]any{"type": bf.Type}
	for _, f := range bf.Fields {
		if v, ok := f.value(); ok {
			out[f.Key] = v
		}
	}
	return out
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' }) {
		if p := strings.TrimSpace(part); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (f *FormField) value() (any, bool) {
	v := strings.TrimSpace(f.Value)
	switch f.Kind {
	case "text", "enum":
		return v, v != ""
	case "secret":
		// Secrets are sent as typed (keys may end in newlines).
		return f.Value, f.Value != ""
	case "int":
		if v == "" {
			return nil, false
		}
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n, true
		}
		return v, true // the API says what is wrong with it
	case "bool":
		switch v {
		case "true":
			return true, true
		case "false":
			return false, true
		}
		return nil, false
	case "list":
		l := splitList(f.Value)
		return l, len(l) > 0
	case "enumlist":
		var l []string
		for _, e := range f.Enum {
			if f.Checked[e] {
				l = append(l, e)
			}
		}
		return l, len(l) > 0
	case "map":
		m := map[string]string{}
		for _, line := range strings.Split(f.Value, "\n") {
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			k, val, ok := strings.Cut(line, ":")
			if !ok {
				k, val, _ = strings.Cut(line, "=")
			}
			m[strings.TrimSpace(k)] = strings.TrimSpace(val)
		}
		return m, len(m) > 0
	case "group":
		m := map[string]any{}
		for _, c := range f.Children {
			if x, ok := c.value(); ok {
				m[c.Key] = x
			}
		}
		return m, len(m) > 0
	case "union":
		for _, vr := range f.Variants {
			if vr.Name != f.Value {
				continue
			}
			m := map[string]any{f.Tag: vr.Name}
			for _, c := range vr.Fields {
				if x, ok := c.value(); ok {
					m[c.Key] = x
				}
			}
			return m, true
		}
		return nil, false
	}
	return nil, false
}

// PlaceErrors puts each API error item on the field it names, and returns the ones that name no field.
func (bf *BackendForm) PlaceErrors(e *APIError) []ErrorItem {
	var rest []ErrorItem
	for _, it := range e.Items {
		if it.Path == "" || !placeError(bf.Fields, it) {
			rest = append(rest, it)
		}
	}
	return rest
}

func placeError(fields []*FormField, it ErrorItem) bool {
	for _, f := range fields {
		if f.Path == it.Path || (f.Kind == "union" && it.Path == f.Path+"."+f.Tag) {
			if f.Error != "" {
				f.Error += "; "
			}
			f.Error += it.Msg
			return true
		}
		if strings.HasPrefix(it.Path, f.Path+".") || strings.HasPrefix(it.Path, f.Path+"[") {
			if placeError(f.Children, it) {
				return true
			}
			for _, v := range f.Variants {
				if v.Checked && placeError(v.Fields, it) {
					return true
				}
			}
			if f.Error != "" {
				f.Error += "; "
			}
			f.Error += strings.TrimPrefix(it.Path, f.Path+".") + ": " + it.Msg
			return true
		}
	}
	return false
}
