package schema_test

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/dstackgo/dstack/internal/schema"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func TestInterpolate(t *testing.T) {
	e := env(map[string]string{"A": "alpha", "B": "", "A_1": "x"})
	cases := []struct {
		in, want string
		missing  []string
	}{
		{"plain", "plain", nil},
		{"${A}", "alpha", nil},
		{"pre-${A}-post", "pre-alpha-post", nil},
		{"${A}${A_1}", "alphax", nil},
		{"${B}", "", nil},
		{"$${A}", "${A}", nil},
		{"$$${A}", "$alpha", nil},
		{"$$$${A}", "$${A}", nil},
		{"$A", "$A", nil},
		{"$", "$", nil},
		{"a$$b", "a$b", nil},
		{"${A", "${A", nil},
		{"${1A}", "${1A}", nil},
		{"${ A }", "${ A }", nil},
		{"${MISSING}", "", []string{"MISSING"}},
		{"${X}:${A}:${Y}", ":alpha:", []string{"X", "Y"}},
		{"${X}${X}", "", []string{"X", "X"}},
	}
	for _, c := range cases {
		got, missing := schema.Interpolate(c.in, e)
		if got != c.want || !reflect.DeepEqual(missing, c.missing) {
			t.Errorf("Interpolate(%q) = %q, %q; want %q, %q", c.in, got, missing, c.want, c.missing)
		}
	}
}

func TestExpandHome(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	for in, want := range map[string]string{
		"~":                home,
		"~/":               home,
		"~/.kube/config":   filepath.Join(home, ".kube/config"),
		"~user/key.pem":    "~user/key.pem",
		"/etc/~/x":         "/etc/~/x",
		"relative/~/x":     "relative/~/x",
		"":                 "",
		"/abs/path.json":   "/abs/path.json",
		"~/a/../b/key.pem": filepath.Join(home, "b/key.pem"),
	} {
		if got := schema.ExpandHome(in); got != want {
			t.Errorf("ExpandHome(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPathString(t *testing.T) {
	for want, p := range map[string][]string{
		"":                                      nil,
		"a":                                     {"a"},
		"[0]":                                   {"[0]"},
		"[0].a[1][2].b":                         {"[0]", "a", "[1]", "[2]", "b"},
		"projects[0].backends[2].creds.api_key": {"projects", "[0]", "backends", "[2]", "creds", "api_key"},
	} {
		if got := schema.PathString(p); got != want {
			t.Errorf("PathString(%q) = %q, want %q", p, got, want)
		}
	}
}

// check validates a YAML text against root and returns the located issues as "LINE:COL path: msg".
func check(t *testing.T, root schema.Field, ctx *schema.Context, src string) (map[string]any, []string) {
	t.Helper()
	doc, issues := schema.ParseYAML("t.yml", []byte(src))
	if issues != nil {
		t.Fatalf("ParseYAML: %v", issues)
	}
	out, issues := schema.Validate(doc.Value, root, ctx)
	doc.Locate(issues)
	var got []string
	for _, is := range issues {
		got = append(got, fmt.Sprintf("%d:%d %s: %s", is.Line, is.Col, schema.PathString(is.Path), is.Msg))
	}
	return out, got
}

func expectIssues(t *testing.T, got []string, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d issues, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
		return
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("issue %d:\n got %s\nwant %s…", i, got[i], want[i])
		}
	}
}

var creds = schema.Field{Name: "creds", Kind: schema.Union, Required: true, Help: "the credentials", Variants: []schema.Variant{
	{Name: "api_key", Fields: []schema.Field{{Name: "api_key", Kind: schema.String, Required: true}}},
	{Name: "default"},
}}

func obj(fields ...schema.Field) schema.Field {
	return schema.Field{Kind: schema.Object, Fields: fields}
}

func TestUnion(t *testing.T) {
	root := obj(creds)
	cases := []struct {
		src  string
		want []string
	}{
		{"creds: {type: api_key, api_key: k}\n", nil},
		{"creds: {type: default}\n", nil},
		{"creds: key\n", []string{"1:1 creds: expected a mapping with `type` (the credentials), got the string \"key\""}},
		{"creds: [type, default]\n", []string{"1:1 creds: expected a mapping with `type` (the credentials), got a list"}},
		{"creds:\n  api_key: k\n", []string{"1:1 creds.type: required field is missing; expected one of: api_key, default"}},
		{"creds:\n  type: 3\n", []string{"2:3 creds.type: expected one of: api_key, default; got the number 3"}},
		{"creds:\n  type: {a: b}\n", []string{"2:3 creds.type: expected one of: api_key, default; got a mapping"}},
		{"creds:\n  type: ~\n", []string{"2:3 creds.type: expected one of: api_key, default; got nothing (null)"}},
		{"creds:\n  type: token\n  token: t\n", []string{`2:3 creds.type: unknown type "token"; expected one of: api_key, default`}},
		{"creds:\n  type: default\n  api_key: k\n", []string{`3:3 creds.api_key: unknown key "api_key"; expected one of: type`}},
		{"creds:\n  type: api_key\n", []string{"1:1 creds.api_key: required field is missing"}},
		{"{}\n", []string{"1:1 creds: required field (the credentials) is missing"}},
	}
	for _, c := range cases {
		_, got := check(t, root, nil, c.src)
		expectIssues(t, got, c.want...)
	}

	// Another tag key, and a union at the root.
	kind := schema.Field{Kind: schema.Union, Tag: "kind", Variants: []schema.Variant{{Name: "x", Fields: []schema.Field{{Name: "n", Kind: schema.Int}}}}}
	out, got := check(t, kind, nil, "kind: x\nn: 3\n")
	expectIssues(t, got)
	if !reflect.DeepEqual(out, map[string]any{"kind": "x", "n": int64(3)}) {
		t.Errorf("out = %#v", out)
	}
	_, got = check(t, kind, nil, "type: x\n")
	expectIssues(t, got, "1:1 kind: required field is missing; expected one of: x")
}

func TestFileRef(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	if err := os.WriteFile(filepath.Join(dir, "sa.json"), []byte(`{"k": 1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	onObject := obj(schema.Field{Name: "kubeconfig", Kind: schema.Object, Required: true,
		FileRef: &schema.FileRef{From: "filename", To: "data"},
		Fields: []schema.Field{
			{Name: "filename", Kind: schema.String},
			{Name: "data", Kind: schema.String, Required: true},
		}})
	onVariant := obj(schema.Field{Name: "creds", Kind: schema.Union, Variants: []schema.Variant{{Name: "file",
		FileRef: &schema.FileRef{From: "path", To: "content"},
		Fields:  []schema.Field{{Name: "path", Kind: schema.String}, {Name: "content", Kind: schema.String}}}}})

	read := &schema.Context{ReadFiles: true}
	noRead := &schema.Context{}

	out, got := check(t, onObject, read, "kubeconfig:\n  filename: ~/sa.json\n")
	expectIssues(t, got)
	if want := map[string]any{"kubeconfig": map[string]any{"filename": "~/sa.json", "data": `{"k": 1}`}}; !reflect.DeepEqual(out, want) {
		t.Errorf("out = %#v, want %#v", out, want)
	}
	out, got = check(t, onVariant, read, "creds: {type: file, path: "+filepath.Join(dir, "sa.json")+"}\n")
	expectIssues(t, got)
	if c, _ := out["creds"].(map[string]any); c["content"] != `{"k": 1}` {
		t.Errorf("out = %#v", out)
	}

	// Without ReadFiles, a file name is refused and the caller is told to send the contents.
	_, got = check(t, onObject, noRead, "kubeconfig:\n  filename: ~/sa.json\n")
	expectIssues(t, got, "2:3 kubeconfig.filename: the server does not read files named in requests; send the file's contents in `data` instead")
	_, got = check(t, onVariant, noRead, "creds:\n  type: file\n  path: /etc/passwd\n")
	expectIssues(t, got, "3:3 creds.path: the server does not read files named in requests; send the file's contents in `content` instead")
	// ... while the contents themselves are fine, and win over a file name either way.
	for _, ctx := range []*schema.Context{read, noRead} {
		out, got = check(t, onObject, ctx, "kubeconfig: {filename: ~/nope, data: inline}\n")
		expectIssues(t, got)
		if k, _ := out["kubeconfig"].(map[string]any); k["data"] != "inline" {
			t.Errorf("out = %#v", out)
		}
	}

	_, got = check(t, onObject, read, "kubeconfig: {}\n")
	expectIssues(t, got, "1:1 kubeconfig: either `filename` or `data` must be specified")
	_, got = check(t, onObject, read, "kubeconfig: {filename: \"\", data: \"\"}\n")
	expectIssues(t, got, "1:1 kubeconfig: either `filename` or `data` must be specified")
	_, got = check(t, onObject, read, "kubeconfig:\n  filename: ~/absent.yml\n")
	expectIssues(t, got, "2:3 kubeconfig.filename: cannot read ~/absent.yml: no such file or directory; fix the path or give the contents in `data`")
	_, got = check(t, onObject, read, "kubeconfig:\n  filename: "+dir+"\n")
	expectIssues(t, got, "2:3 kubeconfig.filename: cannot read "+dir+": not a regular file")
	if _, err := os.Stat("/dev/zero"); err == nil {
		_, got = check(t, onObject, read, "kubeconfig:\n  filename: /dev/zero\n")
		expectIssues(t, got, "2:3 kubeconfig.filename: cannot read /dev/zero: not a regular file")
	}
	// The name is interpolated before it is read.
	out, got = check(t, onObject, &schema.Context{ReadFiles: true, Env: env(map[string]string{"D": dir})}, "kubeconfig: {filename: \"${D}/sa.json\"}\n")
	expectIssues(t, got)
	if k, _ := out["kubeconfig"].(map[string]any); k["data"] != `{"k": 1}` {
		t.Errorf("out = %#v", out)
	}
}

func TestIntOK(t *testing.T) {
	owner := schema.Field{Kind: schema.String, IntOK: true, Pattern: regexp.MustCompile(`^(\d{12}|self)$`), Help: "an account id"}
	plain := schema.Field{Kind: schema.String}
	for _, c := range []struct {
		f    schema.Field
		v    any
		want any
		msg  string
	}{
		{owner, 123456789012, "123456789012", ""},
		{owner, int64(123456789012), "123456789012", ""},
		{owner, uint64(123456789012), "123456789012", ""},
		{owner, float64(123456789012), "123456789012", ""}, // as JSON decodes it
		{owner, "self", "self", ""},
		{owner, 12345, nil, `"12345" is not valid; expected an account id`},
		{owner, 1.5, nil, "expected a string (an account id), got the number 1.5"},
		{owner, true, nil, "expected a string (an account id), got true"},
		{owner, uint64(1 << 63), nil, "expected a string (an account id), got the number 9223372036854775808"},
		{plain, 7, nil, "expected a string, got the number 7"},
		{plain, "7", "7", ""},
	} {
		out, issues := schema.Validate(map[string]any{"v": c.v}, obj(func() schema.Field { f := c.f; f.Name = "v"; return f }()), nil)
		var msg string
		if len(issues) > 0 {
			msg = issues[0].Msg
		}
		if len(issues) > 1 || msg != c.msg || (c.want != nil && out["v"] != c.want) || (c.want == nil && out["v"] != nil) {
			t.Errorf("%#v (IntOK %v): out %#v issues %v; want %#v %q", c.v, c.f.IntOK, out["v"], issues, c.want, c.msg)
		}
	}
}

func TestEnumAndPattern(t *testing.T) {
	root := obj(
		schema.Field{Name: "region", Kind: schema.String, Enum: []string{"eu", "us"}},
		schema.Field{Name: "regions", Kind: schema.StringList, Enum: []string{"eu", "us"}},
		schema.Field{Name: "name", Kind: schema.String, Pattern: regexp.MustCompile(`^[a-z]+$`), Help: "lower-case letters"},
		schema.Field{Name: "id", Kind: schema.String, Pattern: regexp.MustCompile(`^\d+$`)},
		schema.Field{Name: "ids", Kind: schema.StringMap},
	)
	out, got := check(t, root, nil, "region: eu\nregions: [us, eu]\nname: abc\nid: \"42\"\nids: {a: 1, b: x}\n")
	expectIssues(t, got)
	want := map[string]any{"region": "eu", "regions": []any{"us", "eu"}, "name": "abc", "id": "42", "ids": map[string]any{"a": "1", "b": "x"}}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("out = %#v", out)
	}
	_, got = check(t, root, nil, `region: EU
regions:
- us
- asia
- 5
name: Abc
id: x1
ids: {a: [1], b: {c: d}}
`)
	expectIssues(t, got,
		`1:1 region: unknown value "EU"; expected one of: eu, us`,
		`4:3 regions[1]: unknown value "asia"; expected one of: eu, us`,
		`5:3 regions[2]: expected a string, got the number 5`,
		`6:1 name: "Abc" is not valid; expected lower-case letters`,
		`7:1 id: "x1" is not valid; expected a value matching ^\d+$`,
		`8:7 ids.a: expected a string, got a list`,
		`8:15 ids.b: expected a string, got a mapping`,
	)
}

func TestKinds(t *testing.T) {
	port := schema.Field{Name: "port", Kind: schema.Int, Check: func(v any) string {
		if v.(int64) > 65535 {
			return "too big"
		}
		return ""
	}}
	root := obj(port, schema.Field{Name: "on", Kind: schema.Bool, Help: "yes or no"},
		schema.Field{Name: "items", Kind: schema.ObjectList, Fields: []schema.Field{{Name: "n", Kind: schema.String, Required: true}}},
		schema.Field{Name: "opt", Kind: schema.String})
	out, got := check(t, root, nil, "port: 22\non: false\nitems: [{n: a}, {n: b}]\nopt: ~\n")
	expectIssues(t, got)
	want := map[string]any{"port": int64(22), "on": false, "items": []any{map[string]any{"n": "a"}, map[string]any{"n": "b"}}}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("out = %#v (nulls are dropped)", out)
	}
	_, got = check(t, root, nil, "port: 70000\non: \"true\"\nitems: {n: a}\n")
	expectIssues(t, got,
		"1:1 port: too big",
		`2:1 on: expected true or false (yes or no), got the string "true"`,
		"3:1 items: expected a list, got a mapping")
	_, got = check(t, root, nil, "port: 1.5\nitems: [a, {}]\n")
	expectIssues(t, got,
		"1:1 port: expected a whole number, got the number 1.5",
		`2:9 items[0]: expected a mapping, got the string "a"`,
		"2:12 items[1].n: required field is missing")
	// JSON-decoded values: whole floats are whole numbers.
	out, issues := schema.Validate(map[string]any{"port": float64(443)}, root, nil)
	if len(issues) > 0 || out["port"] != int64(443) {
		t.Errorf("JSON number: %#v %v", out, issues)
	}
}

func TestRulesAndHints(t *testing.T) {
	inner := schema.Field{Name: "inner", Kind: schema.Object,
		Fields: []schema.Field{{Name: "a", Kind: schema.String}, {Name: "b", Kind: schema.String}},
		Rules: []schema.Rule{func(o map[string]any, ctx *schema.Context) []schema.Issue {
			if o["a"] != nil && o["b"] != nil {
				return []schema.Issue{schema.At("not both", "b")}
			}
			if ctx.Getenv != nil && ctx.Getenv("STRICT") != "" && o["a"] == nil {
				return []schema.Issue{schema.At("a is needed in strict mode")}
			}
			return nil
		}},
		Hint: func(k string) string {
			if k == "c" {
				return "`c` belongs at the top"
			}
			return ""
		}}
	root := obj(inner, schema.Field{Name: "c", Kind: schema.String})
	_, got := check(t, root, nil, "inner:\n  a: x\n  b: y\n  c: z\n  d: w\n")
	expectIssues(t, got,
		"3:3 inner.b: not both",
		"4:3 inner.c: unknown key \"c\": `c` belongs at the top",
		`5:3 inner.d: unknown key "d"; expected one of: a, b`)
	_, got = check(t, root, &schema.Context{Getenv: func(string) string { return "1" }}, "inner: {b: y}\n")
	expectIssues(t, got, "1:1 inner: a is needed in strict mode")
}

// TestLocate: issues are placed at the key they concern, also inside lists, and sorted by position.
func TestLocate(t *testing.T) {
	root := obj(schema.Field{Name: "projects", Kind: schema.ObjectList, Required: true, Fields: []schema.Field{
		{Name: "name", Kind: schema.String, Required: true},
		{Name: "tags", Kind: schema.StringList},
		{Name: "backends", Kind: schema.ObjectList, Variants: creds.Variants},
	}})
	_, got := check(t, root, nil, `projects:
  - name: a
    backends:
      - type: api_key
        api_key: k
      - type: nope
  - tags: [x, [y], z]
    backends: [{type: default, extra: 1}, {type: api_key}]
  -   name: c
      backends:
        -
          type: default
          api_key: k
`)
	expectIssues(t, got,
		`6:9 projects[0].backends[1].type: unknown type "nope"`,
		"7:5 projects[1].name: required field is missing",
		"7:15 projects[1].tags[1]: expected a string, got a list",
		`8:32 projects[1].backends[0].extra: unknown key "extra"`,
		"8:43 projects[1].backends[1].api_key: required field is missing",
		`13:11 projects[2].backends[0].api_key: unknown key "api_key"`,
	)

	// Paths the source does not have stop at the deepest node found; issues without a path stay at
	// the top of the document.
	doc, _ := schema.ParseYAML("t.yml", []byte("# comment\na:\n  - b: 1\n"))
	issues := []schema.Issue{
		{Path: []string{"a", "[0]", "b", "deeper"}, Msg: "m1"},
		{Path: []string{"a", "[5]"}, Msg: "m2"},
		{Path: []string{"a", "x"}, Msg: "m3"},
		{Path: []string{"zzz"}, Msg: "m4"},
		{Path: nil, Msg: "m5"},
	}
	doc.Locate(issues)
	var pos []string
	for _, is := range issues {
		pos = append(pos, fmt.Sprintf("%s@%d:%d", is.Msg, is.Line, is.Col))
	}
	if want := []string{"m2@2:1", "m3@2:1", "m4@2:1", "m5@2:1", "m1@3:5"}; !reflect.DeepEqual(pos, want) {
		t.Errorf("positions %v, want %v", pos, want)
	}
}

func TestAnchorsAndAliases(t *testing.T) {
	root := obj(schema.Field{Name: "backends", Kind: schema.ObjectList, Variants: creds.Variants},
		schema.Field{Name: "extra", Kind: schema.StringMap},
		schema.Field{Name: "tagged", Kind: schema.Object, Fields: []schema.Field{{Name: "n", Kind: schema.Int}}})
	out, got := check(t, root, nil, `extra: &e {a: b}
backends:
  - &k {type: api_key, api_key: secret}
  - *k
  - <<: *k
    type: default
`)
	// The third entry merges the first and overrides its type, so api_key is unknown there.
	expectIssues(t, got, `5:5 backends[2].api_key: unknown key "api_key"; expected one of: type`)
	if l, _ := out["backends"].([]any); len(l) != 3 || !reflect.DeepEqual(l[0], l[1]) {
		t.Errorf("out = %#v", out)
	}

	// An issue inside an aliased value is placed at the alias; one inside an anchored value at its key.
	_, got = check(t, root, nil, `tagged: &t !!map
  n: x
backends:
  - &bad {type: api_key}
  - *bad
`)
	expectIssues(t, got,
		`2:3 tagged.n: expected a whole number, got the string "x"`,
		"4:5 backends[0].api_key: required field is missing",
		"5:5 backends[1].api_key: required field is missing")

	// A self-referring alias neither hangs nor crashes.
	_, got = check(t, root, nil, "backends: &l [*l]\n")
	if len(got) == 0 {
		t.Error("a self-referring alias was accepted")
	}
}

func TestParseYAML(t *testing.T) {
	for src, want := range map[string]string{
		"a: [1, 2\n":              "t.yml:1:4: invalid YAML: sequence end token ']' not found",
		"a: 1\n  b: 2\n":          "t.yml:1:4: invalid YAML: mapping value is not allowed in this context",
		"a: 1\na: 2\n":            `t.yml:2:1: invalid YAML: mapping key "a" already defined at [1:1]`,
		"a: 1\n---\nb: 2\n":       "t.yml:2:1: invalid YAML: expected a single document, but a `---` line starts another one",
		"a: *nowhere\n":           "t.yml:1:5: invalid YAML: could not find alias \"nowhere\"",
		"a: \"unterminated\nb: 1": "t.yml:1:4: invalid YAML:",
	} {
		doc, issues := schema.ParseYAML("t.yml", []byte(src))
		if doc != nil || len(issues) != 1 {
			t.Errorf("%q: doc %v issues %v", src, doc, issues)
			continue
		}
		if got := schema.FormatIssue("t.yml", issues[0]); !strings.HasPrefix(got, want) {
			t.Errorf("%q: %s; want %s…", src, got, want)
		}
	}
	for _, src := range []string{"---\na: 1\n", "a: 1\n...\n", "a: 1\n---\n", "", "# only a comment\n"} {
		if _, issues := schema.ParseYAML("t.yml", []byte(src)); issues != nil {
			t.Errorf("%q: %v", src, issues)
		}
	}
}

func TestErrors(t *testing.T) {
	if schema.AsError("f", nil) != nil {
		t.Error("AsError with no issues is not nil")
	}
	err := schema.AsError("f.yml", []schema.Issue{
		{Path: []string{"a", "[0]", "b"}, Msg: "bad", Line: 3, Col: 5},
		{Msg: "no path or place"},
	})
	if want := "f.yml:3:5: a[0].b: bad\nf.yml: no path or place"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
	se, ok := schema.IsError(fmt.Errorf("loading: %w", err))
	if !ok || len(se.Issues) != 2 {
		t.Errorf("IsError through a wrap: %v %v", se, ok)
	}
	if _, ok := schema.IsError(os.ErrNotExist); ok {
		t.Error("IsError of another error")
	}
	if got := schema.FormatIssue("", schema.Issue{Path: []string{"x"}, Msg: "m", Line: 1, Col: 2}); got != ":1:2: x: m" {
		t.Errorf("FormatIssue without a name: %q", got)
	}
	if got := schema.FormatIssue("", schema.At("m", "x", "y")); got != "x.y: m" {
		t.Errorf("FormatIssue without a name or place: %q", got)
	}
	doc, _ := schema.ParseYAML("d.yml", []byte("a: 1\n"))
	if got := doc.Format(schema.Issue{Path: []string{"a"}, Msg: "m", Line: 1, Col: 1}); got != "d.yml:1:1: a: m" {
		t.Errorf("Document.Format: %q", got)
	}
}
