package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
)

// maxBody bounds request bodies; the largest legitimate ones are backend configs with key files.
const maxBody = 4 << 20

// decode reads a JSON request body into dst the way dstack's pydantic models do: unknown keys at any
// depth are refused, fields tagged `required:"true"` must be present, and failures are 422s in FastAPI's
// shape. An empty body leaves dst at its defaults when optional is true.
func decode(r *http.Request, dst any, optional bool) *apiError {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		return unprocessable(validationItem{Type: "json_invalid", Loc: []any{"body"}, Msg: "cannot read body"})
	}
	if len(bytes.TrimSpace(data)) == 0 || string(bytes.TrimSpace(data)) == "null" {
		if optional {
			return nil
		}
		return unprocessable(validationItem{Type: "missing", Loc: []any{"body"}, Msg: "Field required", Input: nil})
	}
	var raw any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return unprocessable(validationItem{Type: "json_invalid", Loc: []any{"body", 0}, Msg: "JSON decode error",
			Input: map[string]any{}, Ctx: map[string]any{"error": err.Error()}})
	}
	if items := check(raw, reflect.TypeOf(dst).Elem(), []any{"body"}); len(items) > 0 {
		return unprocessable(items...)
	}
	if err := json.Unmarshal(data, dst); err != nil {
		return unprocessable(validationItem{Type: "value_error", Loc: []any{"body"}, Msg: err.Error(), Input: raw})
	}
	return nil
}

// check compares a decoded JSON value with the struct type it will be decoded into.
func check(v any, t reflect.Type, loc []any) []validationItem {
	for t.Kind() == reflect.Pointer {
		if v == nil {
			return nil
		}
		t = t.Elem()
	}
	// A union picks the type that checks its value (and names it in loc, as pydantic does for tagged
	// unions); other types with their own UnmarshalJSON validate themselves when decoded.
	if u, ok := reflect.New(t).Interface().(jsonVariant); ok {
		vt, seg := u.JSONVariant(v)
		if vt == nil {
			return nil
		}
		if seg != "" {
			loc = appendLoc(loc, seg)
		}
		return check(v, vt, loc)
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]()) {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return []validationItem{{Type: "model_attributes_type", Loc: loc,
				Msg: "Input should be a valid dictionary or object to extract fields from", Input: v}}
		}
		var items []validationItem
		known := map[string]bool{}
		checkFields(m, v, t, loc, known, &items)
		for k, x := range m {
			if !known[k] {
				items = append(items, validationItem{Type: "extra_forbidden", Loc: appendLoc(loc, k), Msg: "Extra inputs are not permitted", Input: x})
			}
		}
		return items
	case reflect.Slice:
		if v == nil {
			return nil
		}
		l, ok := v.([]any)
		if !ok {
			return []validationItem{{Type: "list_type", Loc: loc, Msg: "Input should be a valid list", Input: v}}
		}
		var items []validationItem
		for i, e := range l {
			items = append(items, check(e, t.Elem(), appendLoc(loc, i))...)
		}
		return items
	case reflect.String:
		if _, ok := v.(string); !ok && v != nil {
			return []validationItem{{Type: "string_type", Loc: loc, Msg: "Input should be a valid string", Input: v}}
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok && v != nil {
			return []validationItem{{Type: "bool_type", Loc: loc, Msg: "Input should be a valid boolean", Input: v}}
		}
	case reflect.Int, reflect.Int64, reflect.Float64:
		if _, ok := v.(json.Number); !ok && v != nil {
			return []validationItem{{Type: "int_type", Loc: loc, Msg: "Input should be a valid number", Input: v}}
		}
	}
	return nil
}

// jsonVariant is implemented by union types: JSONVariant returns the type that value v is checked
// against (nil accepts v as is) and the loc segment naming the variant ("" for none).
type jsonVariant interface {
	JSONVariant(v any) (reflect.Type, string)
}

// checkFields checks the fields of struct type t, including those of embedded structs, which JSON
// flattens into the same object.
func checkFields(m map[string]any, v any, t reflect.Type, loc []any, known map[string]bool, items *[]validationItem) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("json"), ",")[0]
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			checkFields(m, v, f.Type, loc, known, items)
			continue
		}
		if name == "" || name == "-" {
			continue
		}
		known[name] = true
		fv, present := m[name]
		if !present {
			if f.Tag.Get("required") == "true" {
				*items = append(*items, validationItem{Type: "missing", Loc: appendLoc(loc, name), Msg: "Field required", Input: v})
			}
			continue
		}
		*items = append(*items, check(fv, f.Type, appendLoc(loc, name))...)
	}
}

func appendLoc(loc []any, seg any) []any {
	return append(append([]any(nil), loc...), seg)
}

// badRequestf is a shortcut for a 400 with code "error".
func badRequestf(format string, args ...any) *apiError {
	return clientError(codeError, fmt.Sprintf(format, args...))
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
