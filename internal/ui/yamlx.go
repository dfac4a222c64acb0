package ui

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/schema"
)

// Mask stands for a secret value the page does not show. Sent back unchanged, it keeps the stored value.
const Mask = "••••••••"

// YAMLIssue is one problem in a YAML document, at a line when known.
type YAMLIssue struct {
	Line, Col int
	Path      string
	Msg       string
}

// Where is the issue's place in words.
func (i YAMLIssue) Where() string {
	switch {
	case i.Line > 0 && i.Col > 0:
		return fmt.Sprintf("Line %d, column %d", i.Line, i.Col)
	case i.Line > 0:
		return fmt.Sprintf("Line %d", i.Line)
	}
	return ""
}

// issueLine is how the server reports a located issue: config_yaml:LINE:COL: path: message.
var issueLine = regexp.MustCompile(`^config_yaml(?::(\d+):(\d+))?: (.*)$`)

// pathPrefix splits "creds.api_key: required" into the path and the message.
var pathPrefix = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_\-]*(?:(?:\.[A-Za-z0-9_\-]+)|(?:\[\d+\]))*): (.+)$`)

// YAMLIssues turns the API's answer to create_yaml/update_yaml into issues at lines of text, the YAML
// that was sent: located issues come from the server's message; invalid-credential fields and syntax
// errors (which the server reports without a position) are placed by finding them in text.
func YAMLIssues(e *APIError, text string) []YAMLIssue {
	var out []YAMLIssue
	for _, it := range e.Items {
		if it.Path != "" {
			is := YAMLIssue{Path: it.Path, Msg: it.Msg}
			is.Line, is.Col = locate(text, splitPath(it.Path))
			out = append(out, is)
			continue
		}
		var found []YAMLIssue
		for _, line := range strings.Split(it.Msg, "\n") {
			m := issueLine.FindStringSubmatch(strings.TrimSpace(line))
			if m == nil {
				continue
			}
			is := YAMLIssue{Msg: m[3]}
			is.Line, _ = strconv.Atoi(m[1])
			is.Col, _ = strconv.Atoi(m[2])
			if pm := pathPrefix.FindStringSubmatch(m[3]); pm != nil {
				is.Path, is.Msg = pm[1], pm[2]
			}
			found = append(found, is)
		}
		if len(found) > 0 {
			out = append(out, found...)
			continue
		}
		if strings.HasPrefix(it.Msg, "Error parsing YAML") {
			if _, issues := schema.ParseYAML("config_yaml", []byte(text)); len(issues) > 0 {
				out = append(out, YAMLIssue{Line: issues[0].Line, Col: issues[0].Col,
					Msg: it.Msg + ": " + strings.TrimPrefix(issues[0].Msg, "invalid YAML: ")})
				continue
			}
		}
		out = append(out, YAMLIssue{Msg: it.Msg})
	}
	sort.SliceStable(out, func(a, b int) bool {
		if (out[a].Line == 0) != (out[b].Line == 0) {
			return out[a].Line != 0
		}
		return out[a].Line < out[b].Line
	})
	return out
}

// ErrorLines lists the lines that have issues.
func ErrorLines(issues []YAMLIssue) []int {
	var out []int
	seen := map[int]bool{}
	for _, is := range issues {
		if is.Line > 0 && !seen[is.Line] {
			seen[is.Line] = true
			out = append(out, is.Line)
		}
	}
	sort.Ints(out)
	return out
}

// splitPath turns creds.api_key or regions[0] into path segments as schema uses them.
func splitPath(p string) []string {
	var out []string
	for _, part := range strings.Split(p, ".") {
		for part != "" {
			i := strings.IndexByte(part, '[')
			if i < 0 {
				out = append(out, part)
				break
			}
			if i > 0 {
				out = append(out, part[:i])
			}
			j := strings.IndexByte(part[i:], ']')
			if j < 0 {
				out = append(out, part[i:])
				break
			}
			out = append(out, part[i:i+j+1])
			part = part[i+j+1:]
		}
	}
	return out
}

// locate finds the line and column of a path in a YAML text (0, 0 when the text does not parse).
func locate(text string, path []string) (int, int) {
	doc, issues := schema.ParseYAML("config_yaml", []byte(text))
	if issues != nil || doc == nil {
		return 0, 0
	}
	is := []schema.Issue{{Path: path}}
	doc.Locate(is)
	return is[0].Line, is[0].Col
}

// MaskSecrets returns a copy of a backend config with every secret value replaced by Mask, and how
// many values it hid. What is secret comes from the backend's schema; an unknown key inside a secret
// field is hidden too.
func MaskSecrets(typ string, cfg map[string]any) (map[string]any, int) {
	d, ok := backends.Lookup(typ)
	var fields []schema.Field
	if ok {
		fields = d.Fields
	}
	n := 0
	out := maskObject(fields, cfg, false, &n)
	return out, n
}

func maskObject(fields []schema.Field, v map[string]any, under bool, n *int) map[string]any {
	out := make(map[string]any, len(v))
	for k, x := range v {
		var f *schema.Field
		for i := range fields {
			if fields[i].Name == k {
				f = &fields[i]
			}
		}
		out[k] = maskValue(f, x, under, n)
	}
	return out
}

// maskValue masks v, the value of field f (nil when the schema does not know the key); under says
// whether a key the schema does not know is secret here.
func maskValue(f *schema.Field, v any, under bool, n *int) any {
	inner := under || (f != nil && f.Secret)
	switch t := v.(type) {
	case map[string]any:
		switch {
		case f != nil && f.Kind == schema.Union:
			tag := f.Tag
			if tag == "" {
				tag = "type"
			}
			fields := []schema.Field{{Name: tag, Kind: schema.String}}
			for _, vr := range f.Variants {
				if vr.Name == t[tag] {
					fields = append(fields, vr.Fields...)
				}
			}
			return maskObject(fields, t, inner, n)
		case f != nil && f.Kind == schema.Object:
			return maskObject(f.Fields, t, inner, n)
		}
		return maskObject(nil, t, inner, n)
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = maskValue(nil, x, inner, n)
		}
		return out
	case string:
		secret := under
		if f != nil {
			secret = f.Secret
		}
		if secret && t != "" {
			*n++
			return Mask
		}
	}
	return v
}

// DumpYAML renders a config the way the API's get_yaml does: `type` first, then keys in order, at every
// level.
func DumpYAML(v map[string]any) string {
	out, err := yaml.Marshal(ordered(v))
	if err != nil {
		return ""
	}
	return strings.TrimLeft(string(out), "\n")
}

func ordered(v any) any {
	switch t := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			if k != "type" {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		ms := yaml.MapSlice{}
		if x, ok := t["type"]; ok {
			ms = append(ms, yaml.MapItem{Key: "type", Value: ordered(x)})
		}
		for _, k := range keys {
			ms = append(ms, yaml.MapItem{Key: k, Value: ordered(t[k])})
		}
		return ms
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = ordered(x)
		}
		return out
	}
	return v
}

// UnmaskYAML puts the stored secrets back where text still has Mask, so that an edit that leaves a
// hidden value alone keeps it. It changes only the masked scalars, on their own lines, so line numbers
// of later errors match the text the user sees. A Mask at a path with no stored value is an issue.
func UnmaskYAML(text string, stored map[string]any) (string, []YAMLIssue) {
	if !strings.Contains(text, Mask) {
		return text, nil
	}
	f, err := parser.ParseBytes([]byte(text), 0)
	if err != nil || len(f.Docs) == 0 {
		return text, nil // the API reports the syntax error
	}
	type hit struct {
		line, col int
		path      []string
	}
	var hits []hit
	var walk func(n ast.Node, path []string)
	walk = func(n ast.Node, path []string) {
		n = schema.Unwrap(n)
		switch t := n.(type) {
		case *ast.MappingNode:
			for _, mv := range t.Values {
				walk(mv, path)
			}
		case *ast.MappingValueNode:
			walk(t.Value, append(append([]string(nil), path...), schema.KeyString(t.Key)))
		case *ast.SequenceNode:
			for i, x := range t.Values {
				walk(x, append(append([]string(nil), path...), fmt.Sprintf("[%d]", i)))
			}
		case *ast.StringNode:
			if t.Value == Mask && t.Token != nil && t.Token.Position != nil {
				hits = append(hits, hit{t.Token.Position.Line, t.Token.Position.Column, path})
			}
		}
	}
	walk(f.Docs[0].Body, nil)
	sort.SliceStable(hits, func(a, b int) bool {
		if hits[a].line != hits[b].line {
			return hits[a].line < hits[b].line
		}
		return hits[a].col < hits[b].col
	})
	lines := strings.Split(text, "\n")
	var issues []YAMLIssue
	byLine := map[int][]hit{}
	for _, h := range hits {
		byLine[h.line] = append(byLine[h.line], h)
	}
	for ln, hs := range byLine {
		if ln < 1 || ln > len(lines) {
			continue
		}
		line := lines[ln-1]
		var b strings.Builder
		rest := line
		for _, h := range hs {
			val, ok := lookupPath(stored, h.path)
			s, isStr := val.(string)
			i := strings.Index(rest, Mask)
			if i < 0 {
				break
			}
			if !ok || !isStr {
				issues = append(issues, YAMLIssue{Line: h.line, Col: h.col, Path: schema.PathString(h.path),
					Msg: "this value is hidden and nothing is stored at this key; type the value, or choose Show credentials to edit the stored ones"})
				b.WriteString(rest[:i+len(Mask)])
				rest = rest[i+len(Mask):]
				continue
			}
			start, end := i, i+len(Mask)
			if start > 0 && end < len(rest) && (rest[start-1] == '"' || rest[start-1] == '\'') && rest[end] == rest[start-1] {
				start--
				end++
			}
			b.WriteString(rest[:start])
			b.WriteString(strconv.Quote(s))
			rest = rest[end:]
		}
		b.WriteString(rest)
		lines[ln-1] = b.String()
	}
	sort.SliceStable(issues, func(a, b int) bool { return issues[a].Line < issues[b].Line })
	return strings.Join(lines, "\n"), issues
}

func lookupPath(v any, path []string) (any, bool) {
	cur := v
	for _, seg := range path {
		if strings.HasPrefix(seg, "[") {
			i, err := strconv.Atoi(strings.Trim(seg, "[]"))
			list, ok := cur.([]any)
			if err != nil || !ok || i < 0 || i >= len(list) {
				return nil, false
			}
			cur = list[i]
			continue
		}
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		cur, ok = m[seg]
		if !ok {
			return nil, false
		}
	}
	return cur, true
}

// parseYAMLMap reads a YAML mapping (the API's get_yaml text) into plain maps.
func parseYAMLMap(text string) (map[string]any, error) {
	var v map[string]any
	if err := yaml.Unmarshal([]byte(text), &v); err != nil {
		return nil, err
	}
	return v, nil
}

// TemplateYAML is a starting document for a new backend of type typ: its required keys with empty
// values and its optional keys as comments, each with its help, from the backend's schema.
func TemplateYAML(typ string) string {
	d, ok := backends.Lookup(typ)
	if !ok {
		return "type: " + typ + "\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "type: %s\n", typ)
	writeFields(&b, d.Fields, "", false)
	return b.String()
}

// writeFields writes fields at indent; inside a commented-out parent every line is a comment.
func writeFields(b *strings.Builder, fields []schema.Field, indent string, commented bool) {
	for _, f := range fields {
		c := commented || !f.Required
		prefix := indent
		if c {
			prefix = "# " + indent
		}
		help := ""
		if f.Help != "" {
			help = "  # " + oneLine(f.Help)
		}
		switch f.Kind {
		case schema.Union:
			if len(f.Variants) == 0 {
				continue
			}
			tag := f.Tag
			if tag == "" {
				tag = "type"
			}
			names := make([]string, len(f.Variants))
			for i, v := range f.Variants {
				names[i] = v.Name
			}
			fmt.Fprintf(b, "%s%s:%s\n", prefix, f.Name, help)
			fmt.Fprintf(b, "%s  %s: %s  # one of: %s\n", prefix, tag, f.Variants[0].Name, strings.Join(names, ", "))
			writeFields(b, f.Variants[0].Fields, indent+"  ", c)
		case schema.Object:
			fmt.Fprintf(b, "%s%s:%s\n", prefix, f.Name, help)
			writeFields(b, f.Fields, indent+"  ", c)
		default:
			fmt.Fprintf(b, "%s%s: %s%s\n", prefix, f.Name, sampleValue(f), help)
		}
	}
}

func sampleValue(f schema.Field) string {
	switch f.Kind {
	case schema.Bool:
		return "true"
	case schema.Int:
		return "0"
	case schema.StringList:
		if len(f.Enum) > 0 {
			return "[" + f.Enum[0] + "]"
		}
		return "[]"
	case schema.StringMap:
		return "{}"
	case schema.ObjectList:
		return "[]"
	}
	if len(f.Enum) > 0 {
		return f.Enum[0]
	}
	return `""`
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
