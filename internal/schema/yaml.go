package schema

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// Document is a parsed YAML source that can place issues at their line and column.
type Document struct {
	Name  string
	Value any
	file  *ast.File
}

var syntaxPos = regexp.MustCompile(`^\[(\d+):(\d+)\]\s*`)

// ParseYAML parses data. A syntax error comes back as a single issue with its position.
func ParseYAML(name string, data []byte) (*Document, []Issue) {
	f, err := parser.ParseBytes(data, 0)
	if err == nil {
		// yaml.Unmarshal reads the first document only; a second one would be dropped without a word.
		for i, doc := range f.Docs {
			if i > 0 && doc.Body != nil {
				is := Issue{Msg: "invalid YAML: expected a single document, but a `---` line starts another one"}
				if doc.Start != nil && doc.Start.Position != nil {
					is.Line, is.Col = doc.Start.Position.Line, doc.Start.Position.Column
				} else if p := pos(doc.Body); p != nil {
					is.Line, is.Col = p.Line, p.Column
				}
				return nil, []Issue{is}
			}
		}
		var v any
		if err = yaml.Unmarshal(data, &v); err == nil {
			return &Document{Name: name, Value: v, file: f}, nil
		}
	}
	msg := strings.TrimSpace(yaml.FormatError(err, false, false))
	is := Issue{Msg: "invalid YAML: " + firstLine(msg)}
	if m := syntaxPos.FindStringSubmatch(msg); m != nil {
		is.Line, _ = strconv.Atoi(m[1])
		is.Col, _ = strconv.Atoi(m[2])
		is.Msg = "invalid YAML: " + firstLine(msg[len(m[0]):])
	}
	return nil, []Issue{is}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return strings.TrimSpace(s[:i])
	}
	return s
}

// Locate sets Line and Col of each issue to the deepest node of its path found in the source, and sorts
// the issues by position.
func (d *Document) Locate(issues []Issue) {
	for i := range issues {
		if len(d.file.Docs) == 0 {
			continue
		}
		if tok := find(d.file.Docs[0].Body, issues[i].Path); tok != nil {
			issues[i].Line, issues[i].Col = tok.Line, tok.Column
		}
	}
	sort.SliceStable(issues, func(a, b int) bool {
		if issues[a].Line != issues[b].Line {
			return issues[a].Line < issues[b].Line
		}
		return issues[a].Col < issues[b].Col
	})
}

type position struct{ Line, Column int }

// find walks path through the AST; for a key it returns the key's position, so that "unknown key" and
// "wrong value" point at the line a person reads first.
func find(n ast.Node, path []string) *position {
	var last *position
	if n != nil {
		last = pos(n)
	}
	for _, seg := range path {
		n = Unwrap(n)
		if n == nil {
			return last
		}
		switch t := n.(type) {
		case *ast.MappingNode:
			next := ast.Node(nil)
			for _, mv := range t.Values {
				if KeyString(mv.Key) == seg {
					last, next = pos(mv.Key), mv.Value
				}
			}
			if next == nil {
				return last
			}
			n = next
		case *ast.MappingValueNode:
			if KeyString(t.Key) != seg {
				return last
			}
			last, n = pos(t.Key), t.Value
		case *ast.SequenceNode:
			i, err := strconv.Atoi(strings.Trim(seg, "[]"))
			if err != nil || !strings.HasPrefix(seg, "[") || i >= len(t.Values) {
				return last
			}
			n = t.Values[i]
			last = pos(n)
		default:
			return last
		}
	}
	return last
}

// Unwrap returns the node that anchors, tags and documents wrap.
func Unwrap(n ast.Node) ast.Node {
	for {
		switch t := n.(type) {
		case *ast.AnchorNode:
			n = t.Value
		case *ast.TagNode:
			n = t.Value
		case *ast.DocumentNode:
			n = t.Body
		default:
			return n
		}
	}
}

// KeyString is the text of a mapping key.
func KeyString(k ast.MapKeyNode) string {
	if k == nil {
		return ""
	}
	if s, ok := k.(*ast.StringNode); ok {
		return s.Value
	}
	return k.GetToken().Value
}

func pos(n ast.Node) *position {
	if n == nil {
		return nil
	}
	// A block mapping's own token is the ':' after its first key; a person looks for the key.
	switch t := n.(type) {
	case *ast.MappingNode:
		if !t.IsFlowStyle && len(t.Values) > 0 {
			return pos(t.Values[0])
		}
	case *ast.MappingValueNode:
		if t.Key != nil {
			return pos(t.Key)
		}
	}
	tok := n.GetToken()
	if tok == nil || tok.Position == nil {
		return nil
	}
	return &position{tok.Position.Line, tok.Position.Column}
}

// Format renders an issue as NAME:LINE:COL: path: message.
func (d *Document) Format(is Issue) string { return FormatIssue(d.Name, is) }

// FormatIssue renders an issue as NAME:LINE:COL: path: message (position left out when unknown).
func FormatIssue(name string, is Issue) string {
	prefix := name
	if is.Line > 0 {
		prefix = fmt.Sprintf("%s:%d:%d", name, is.Line, is.Col)
	}
	if prefix == "" {
		return is.String()
	}
	return prefix + ": " + is.String()
}

// Error is a set of issues in one source, reported together.
type Error struct {
	Name   string
	Issues []Issue
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Issues))
	for i, is := range e.Issues {
		lines[i] = FormatIssue(e.Name, is)
	}
	return strings.Join(lines, "\n")
}

// AsError returns the issues as an *Error, or nil when there are none.
func AsError(name string, issues []Issue) error {
	if len(issues) == 0 {
		return nil
	}
	return &Error{Name: name, Issues: issues}
}

// IsError reports whether err carries schema issues.
func IsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
