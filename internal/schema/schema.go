// Package schema checks YAML documents against schemas declared as data, the way rclone declares backend
// options: each field has a name, a kind, whether it is required or secret, and a line of help that
// error messages quote. One walk reports every problem of a document at once, each with its field path
// (projects[0].backends[2].creds.api_key) and its line and column in the source.
//
// The result of a successful check is a normalised map (nulls dropped, ints as int64, ${VAR} expanded,
// referenced files read in) that callers store as JSON.
package schema

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Kind is what a field holds.
type Kind int

// Field kinds.
const (
	String     Kind = iota
	Int             // whole number
	Bool            // true or false
	StringList      // list of strings
	StringMap       // map of string to string
	Object          // nested object with its own Fields
	ObjectList      // list of objects with Fields (or of a union when Variants is set)
	Union           // object whose Tag key (default "type") picks one of Variants
)

// Field declares one key of an object.
type Field struct {
	Name     string
	Kind     Kind
	Required bool
	// Secret fields are stored encrypted and shown only to project admins.
	Secret bool
	// Help says what is expected; error messages quote it.
	Help string
	// Fields of an Object, or of the elements of an ObjectList.
	Fields []Field
	// Variants of a Union (or of the elements of an ObjectList of unions), picked by Tag.
	Variants []Variant
	Tag      string
	// Enum lists the accepted values of a String.
	Enum []string
	// Pattern, when set, must match a String (or every key of a StringMap when MapKeys is set).
	Pattern *regexp.Regexp
	// Check is any other test of a scalar value; it returns a message or "".
	Check func(v any) string
	// Rules run on an Object (or each element of an ObjectList) after its fields are checked.
	Rules []Rule
	// FileRef makes an Object read a file named by one key into another (see FileRef).
	FileRef *FileRef
	// Hint explains an unknown key of an Object, e.g. that it belongs one level deeper.
	Hint func(key string) string
	// IntOK lets a String accept an unquoted whole number (AWS account ids are often written so).
	IntOK bool
}

// Variant is one alternative of a Union.
type Variant struct {
	Name   string
	Fields []Field
	Rules  []Rule
	// FileRef as in Field, for variants that name a file.
	FileRef *FileRef
}

// FileRef reads the file named by key From into key To when To is not given, with ~ expanded.
type FileRef struct{ From, To string }

// Rule checks relations between the fields of one object. Paths in the issues it returns are relative
// to that object.
type Rule func(obj map[string]any, ctx *Context) []Issue

// Context carries what a check may depend on beyond the document.
type Context struct {
	// ReadFiles allows FileRef to read the server's files. It is on for config.yml and off for
	// documents that arrive through the API, so that a project admin cannot read the server's disk.
	ReadFiles bool
	// Env resolves ${VAR} in string values; nil turns interpolation off.
	Env func(string) (string, bool)
	// Getenv reads server settings that rules consult (DSTACK_DEFAULT_CREDS_DISABLED).
	Getenv func(string) string
}

// Issue is one problem, at Path (segments of keys and [i] indexes).
type Issue struct {
	Path []string
	Msg  string
	Line int
	Col  int
}

// PathString renders a path as a.b[0].c.
func PathString(p []string) string {
	var b strings.Builder
	for _, s := range p {
		if strings.HasPrefix(s, "[") || b.Len() == 0 {
			b.WriteString(s)
		} else {
			b.WriteString(".")
			b.WriteString(s)
		}
	}
	return b.String()
}

// At returns an issue at a relative path.
func At(msg string, path ...string) Issue { return Issue{Path: path, Msg: msg} }

func (i Issue) String() string {
	p := PathString(i.Path)
	if p == "" {
		return i.Msg
	}
	return p + ": " + i.Msg
}

// Validate checks value (as decoded from YAML or JSON) against the fields of a root object and returns the
// normalised value and every issue found.
func Validate(value any, root Field, ctx *Context) (map[string]any, []Issue) {
	if ctx == nil {
		ctx = &Context{}
	}
	w := &walker{ctx: ctx}
	out := w.value(value, root, nil)
	m, _ := out.(map[string]any)
	return m, w.issues
}

type walker struct {
	ctx    *Context
	issues []Issue
}

func (w *walker) add(path []string, format string, args ...any) {
	w.issues = append(w.issues, Issue{Path: clone(path), Msg: fmt.Sprintf(format, args...)})
}

func clone(p []string) []string { return append([]string(nil), p...) }

func child(path []string, seg string) []string { return append(clone(path), seg) }

func index(path []string, i int) []string { return append(clone(path), "["+strconv.Itoa(i)+"]") }

func describe(v any) string {
	switch t := v.(type) {
	case nil:
		return "nothing (null)"
	case string:
		return fmt.Sprintf("the string %q", t)
	case bool:
		return fmt.Sprintf("%t", t)
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case float64:
		return "the number " + strconv.FormatFloat(t, 'g', -1, 64)
	case uint64: // above the int64 range (asInt takes the rest)
		return "the number " + strconv.FormatUint(t, 10)
	default:
		if _, ok := asInt(v); ok {
			return fmt.Sprintf("the number %v", v)
		}
		return fmt.Sprintf("%T", v)
	}
}

func expected(f Field, what string) string {
	if f.Help != "" {
		return what + " (" + f.Help + ")"
	}
	return what
}

func (w *walker) value(v any, f Field, path []string) any {
	switch f.Kind {
	case String:
		return w.str(v, f, path)
	case Int:
		n, ok := asInt(v)
		if !ok {
			w.add(path, "expected %s, got %s", expected(f, "a whole number"), describe(v))
			return nil
		}
		w.check(f, n, path)
		return n
	case Bool:
		b, ok := v.(bool)
		if !ok {
			w.add(path, "expected %s, got %s", expected(f, "true or false"), describe(v))
			return nil
		}
		return b
	case StringList:
		l, ok := v.([]any)
		if !ok {
			w.add(path, "expected %s, got %s", expected(f, "a list of strings, e.g. [a, b]"), describe(v))
			return nil
		}
		out := make([]any, 0, len(l))
		for i, e := range l {
			if s := w.str(e, Field{Kind: String, Enum: f.Enum, Pattern: f.Pattern, Check: f.Check, Help: f.Help}, index(path, i)); s != nil {
				out = append(out, s)
			}
		}
		return out
	case StringMap:
		m, ok := v.(map[string]any)
		if !ok {
			w.add(path, "expected %s, got %s", expected(f, "a mapping of names to strings"), describe(v))
			return nil
		}
		out := make(map[string]any, len(m))
		for _, k := range sortedKeys(m) {
			if s := w.str(m[k], Field{Kind: String, IntOK: true}, child(path, k)); s != nil {
				out[k] = s
			}
		}
		if f.Check != nil {
			w.check(f, out, path)
		}
		return out
	case Object:
		return w.object(v, f.Fields, f.Rules, f.FileRef, f, path)
	case Union:
		return w.union(v, f, path)
	case ObjectList:
		l, ok := v.([]any)
		if !ok {
			w.add(path, "expected %s, got %s", expected(f, "a list"), describe(v))
			return nil
		}
		out := make([]any, 0, len(l))
		elem := f
		elem.Kind = Object
		if len(f.Variants) > 0 {
			elem.Kind = Union
		}
		for i, e := range l {
			out = append(out, w.value(e, elem, index(path, i)))
		}
		return out
	}
	panic("schema: unknown kind")
}

func (w *walker) str(v any, f Field, path []string) any {
	var s string
	switch t := v.(type) {
	case string:
		s = t
	default:
		n, isInt := asInt(v)
		if !isInt || !f.IntOK {
			w.add(path, "expected %s, got %s", expected(f, "a string"), describe(v))
			return nil
		}
		s = strconv.FormatInt(n, 10)
	}
	if w.ctx.Env != nil {
		var missing []string
		s, missing = Interpolate(s, w.ctx.Env)
		for _, name := range missing {
			w.add(path, "environment variable %s is not set (referenced as ${%s}); set it, or write $${%s} for a literal", name, name, name)
		}
	}
	if len(f.Enum) > 0 && !contains(f.Enum, s) {
		w.add(path, "unknown value %q; expected one of: %s", s, strings.Join(f.Enum, ", "))
		return nil
	}
	if f.Pattern != nil && !f.Pattern.MatchString(s) {
		w.add(path, "%q is not valid; expected %s", s, orDefault(f.Help, "a value matching "+f.Pattern.String()))
		return nil
	}
	w.check(f, s, path)
	return s
}

func (w *walker) check(f Field, v any, path []string) {
	if f.Check == nil {
		return
	}
	if msg := f.Check(v); msg != "" {
		w.add(path, "%s", msg)
	}
}

func (w *walker) object(v any, fields []Field, rules []Rule, ref *FileRef, f Field, path []string) map[string]any {
	m, ok := v.(map[string]any)
	if !ok {
		w.add(path, "expected %s, got %s", expected(f, "a mapping"), describe(v))
		return nil
	}
	out := make(map[string]any, len(m))
	known := make(map[string]bool, len(fields))
	for _, fd := range fields {
		known[fd.Name] = true
		raw, present := m[fd.Name]
		if !present || raw == nil {
			if fd.Required && !(ref != nil && fd.Name == ref.To) {
				w.add(child(path, fd.Name), "required %s is missing", expected(fd, "field"))
			}
			continue
		}
		if nv := w.value(raw, fd, child(path, fd.Name)); nv != nil {
			out[fd.Name] = nv
		}
	}
	for _, k := range sortedKeys(m) {
		if known[k] {
			continue
		}
		msg := fmt.Sprintf("unknown key %q; expected one of: %s", k, fieldNames(fields))
		if f.Hint != nil {
			if h := f.Hint(k); h != "" {
				msg = fmt.Sprintf("unknown key %q: %s", k, h)
			}
		}
		w.add(child(path, k), "%s", msg)
	}
	if ref != nil {
		w.resolveFile(out, ref, path)
	}
	for _, r := range rules {
		for _, is := range r(out, w.ctx) {
			is.Path = append(clone(path), is.Path...)
			w.issues = append(w.issues, is)
		}
	}
	return out
}

func (w *walker) union(v any, f Field, path []string) map[string]any {
	tag := orDefault(f.Tag, "type")
	names := make([]string, len(f.Variants))
	for i, vr := range f.Variants {
		names[i] = vr.Name
	}
	m, ok := v.(map[string]any)
	if !ok {
		w.add(path, "expected %s, got %s", expected(f, "a mapping with `"+tag+"`"), describe(v))
		return nil
	}
	t, ok := m[tag].(string)
	if !ok {
		if _, present := m[tag]; present {
			w.add(child(path, tag), "expected one of: %s; got %s", strings.Join(names, ", "), describe(m[tag]))
		} else {
			w.add(child(path, tag), "required field is missing; expected one of: %s", strings.Join(names, ", "))
		}
		return nil
	}
	for _, vr := range f.Variants {
		if vr.Name != t {
			continue
		}
		fields := append([]Field{{Name: tag, Kind: String}}, vr.Fields...)
		rules := append(append([]Rule(nil), vr.Rules...), f.Rules...)
		return w.object(m, fields, rules, vr.FileRef, f, path)
	}
	w.add(child(path, tag), "unknown %s %q; expected one of: %s", tag, t, strings.Join(names, ", "))
	return nil
}

func (w *walker) resolveFile(out map[string]any, ref *FileRef, path []string) {
	if s, _ := out[ref.To].(string); s != "" {
		return
	}
	name, _ := out[ref.From].(string)
	if name == "" {
		w.add(path, "either `%s` or `%s` must be specified", ref.From, ref.To)
		return
	}
	if !w.ctx.ReadFiles {
		w.add(child(path, ref.From), "the server does not read files named in requests; send the file's contents in `%s` instead", ref.To)
		return
	}
	file := ExpandHome(name)
	// A device or a pipe (/dev/zero, /dev/stdin) would block or never end.
	if st, err := os.Stat(file); err == nil && !st.Mode().IsRegular() {
		w.add(child(path, ref.From), "cannot read %s: not a regular file; fix the path or give the contents in `%s`", name, ref.To)
		return
	}
	data, err := os.ReadFile(file)
	if err != nil {
		w.add(child(path, ref.From), "cannot read %s: %v; fix the path or give the contents in `%s`", name, unwrapPathError(err), ref.To)
		return
	}
	out[ref.To] = string(data)
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// ExpandHome turns a leading ~ into the user's home directory.
func ExpandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[1:])
		}
	}
	return p
}

var envRef = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// Interpolate replaces ${NAME} with the variable's value and $$ with $, and returns the names that
// env could not resolve.
func Interpolate(s string, env func(string) (string, bool)) (string, []string) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var missing []string
	out := envRef.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		name := m[2 : len(m)-1]
		v, ok := env(name)
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	return out, missing
}

func asInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int64:
		return n, true
	case uint64:
		if n > 1<<63-1 {
			return 0, false
		}
		return int64(n), true
	case float64:
		// JSON numbers arrive as float64; accept the whole ones.
		if n == float64(int64(n)) {
			return int64(n), true
		}
	}
	return 0, false
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func fieldNames(fields []Field) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}

func contains(l []string, s string) bool {
	for _, e := range l {
		if e == s {
			return true
		}
	}
	return false
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
