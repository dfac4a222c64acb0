package resources

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Number is what a Range can hold: a count (int), a size in GB (Memory) or a price (float64).
type Number interface {
	int | float64 | Memory
}

// Range is dstack's Range[T]: an inclusive interval whose open ends are nil. On the wire it is
// {"min": x|null, "max": x|null}; in YAML it may also be a scalar (exact value) or "a..b", "a..", "..b".
type Range[T Number] struct {
	Min *T
	Max *T
}

// Exact is the range [v, v]; its ends are separate variables.
func Exact[T Number](v T) Range[T] {
	lo, hi := v, v
	return Range[T]{Min: &lo, Max: &hi}
}

// AtLeast is the range [v, ∞).
func AtLeast[T Number](v T) Range[T] { return Range[T]{Min: &v} }

// Between is the range [lo, hi].
func Between[T Number](lo, hi T) Range[T] { return Range[T]{Min: &lo, Max: &hi} }

// Contains reports whether v lies in r.
func (r Range[T]) Contains(v T) bool {
	return (r.Min == nil || v >= *r.Min) && (r.Max == nil || v <= *r.Max)
}

// Intersect returns the common part of r and o, and false when they do not overlap.
func (r Range[T]) Intersect(o Range[T]) (Range[T], bool) {
	out := r
	if o.Min != nil && (out.Min == nil || *o.Min > *out.Min) {
		out.Min = o.Min
	}
	if o.Max != nil && (out.Max == nil || *o.Max < *out.Max) {
		out.Max = o.Max
	}
	if out.Min != nil && out.Max != nil && *out.Min > *out.Max {
		return Range[T]{}, false
	}
	return out, true
}

// Equal compares bounds by value.
func (r Range[T]) Equal(o Range[T]) bool {
	eq := func(a, b *T) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }
	return eq(r.Min, o.Min) && eq(r.Max, o.Max)
}

// String formats r the way dstack prints it and parses it back: "2", "2..", "4..8", "..8".
func (r Range[T]) String() string {
	lo, hi := "", ""
	if r.Min != nil {
		lo = formatNumber(*r.Min)
	}
	if r.Max != nil {
		hi = formatNumber(*r.Max)
	}
	if r.Min != nil && r.Max != nil && *r.Min == *r.Max {
		return lo
	}
	return lo + ".." + hi
}

func formatNumber[T Number](v T) string {
	switch x := any(v).(type) {
	case int:
		return strconv.Itoa(x)
	case Memory:
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	panic("unreachable")
}

type rangeJSON[T Number] struct {
	Min *T `json:"min"`
	Max *T `json:"max"`
}

// MarshalJSON writes the object form with both keys.
func (r Range[T]) MarshalJSON() ([]byte, error) {
	return json.Marshal(rangeJSON[T](r))
}

// UnmarshalJSON accepts the object form and the YAML short forms (number, "a..b").
func (r *Range[T]) UnmarshalJSON(b []byte) error {
	v, err := decodeJSON(b)
	if err != nil {
		return err
	}
	out, err := ParseRange[T](v)
	if err != nil {
		return err
	}
	*r = out
	return nil
}

// ParseRange reads a range from a decoded YAML or JSON value: a number (exact), a string "a..b" /
// "a.." / "..b" / "a", or an object {min, max}. Memory bounds may carry units (512MB, 8GB, 1TB).
// Both ends open ("..") and min > max are errors, as in dstack.
func ParseRange[T Number](v any) (Range[T], error) {
	var r Range[T]
	switch x := v.(type) {
	case string:
		s := strings.ReplaceAll(x, " ", "")
		lo, hi, isRange := strings.Cut(s, "..")
		if !isRange {
			hi = lo
		}
		var err error
		if r.Min, err = parseBound[T](lo); err != nil {
			return r, err
		}
		if r.Max, err = parseBound[T](hi); err != nil {
			return r, err
		}
	case map[string]any:
		for k := range x {
			if k != "min" && k != "max" {
				return r, fmt.Errorf("unknown key %q (a range object has only min and max)", k)
			}
		}
		var err error
		if r.Min, err = parseBoundValue[T](x["min"]); err != nil {
			return r, fmt.Errorf("min: %w", err)
		}
		if r.Max, err = parseBoundValue[T](x["max"]); err != nil {
			return r, fmt.Errorf("max: %w", err)
		}
	default:
		n, err := parseNumber[T](v)
		if err != nil {
			return r, err
		}
		r = Exact(n)
	}
	if r.Min == nil && r.Max == nil {
		return r, errors.New("empty range: give at least one end")
	}
	if r.Min != nil && r.Max != nil && *r.Min > *r.Max {
		return r, fmt.Errorf("min %s is greater than max %s", formatNumber(*r.Min), formatNumber(*r.Max))
	}
	return r, nil
}

// parseBound reads one end of a "a..b" string; an empty end is open.
func parseBound[T Number](s string) (*T, error) {
	if s == "" {
		return nil, nil
	}
	n, err := parseNumber[T](s)
	if err != nil {
		return nil, err
	}
	return &n, nil
}

func parseBoundValue[T Number](v any) (*T, error) {
	if v == nil {
		return nil, nil
	}
	if s, ok := v.(string); ok && strings.TrimSpace(s) == "" {
		return nil, nil
	}
	n, err := parseNumber[T](v)
	if err != nil {
		return nil, err
	}
	return &n, nil
}

// parseNumber reads one value of T from a decoded YAML/JSON scalar.
func parseNumber[T Number](v any) (T, error) {
	var zero T
	switch any(zero).(type) {
	case int:
		n, err := parseInt(v)
		return T(n), err
	case Memory:
		m, err := ParseMemory(v)
		return T(m), err
	default:
		f, err := parseFloat(v)
		return T(f), err
	}
}

// parseInt accepts whole non-negative numbers of any decoded integer type, integral floats and
// decimal strings.
func parseInt(v any) (int, error) {
	switch x := v.(type) {
	case string:
		s := strings.ReplaceAll(x, " ", "")
		if s == "" || strings.Trim(s, "0123456789") != "" {
			return 0, fmt.Errorf("%q is not a whole number", x)
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0, fmt.Errorf("%q is too large", x)
		}
		return n, nil
	case json.Number:
		return parseInt(string(x))
	case bool:
		return 0, fmt.Errorf("%v is not a number", x)
	}
	f, ok := toFloat(v)
	if !ok {
		return 0, fmt.Errorf("%s is not a number", describe(v))
	}
	if f != float64(int(f)) || f < 0 || f > 1<<53 {
		return 0, fmt.Errorf("%v is not a whole number >= 0", f)
	}
	return int(f), nil
}

func parseFloat(v any) (float64, error) {
	if s, ok := v.(string); ok {
		s = strings.ReplaceAll(s, " ", "")
		if !isDecimal(s) {
			return 0, fmt.Errorf("%q is not a number", s)
		}
		return strconv.ParseFloat(s, 64)
	}
	f, ok := toFloat(v)
	if !ok || f < 0 {
		return 0, fmt.Errorf("%s is not a number >= 0", describe(v))
	}
	return f, nil
}

// toFloat converts the numeric types YAML and JSON decoders produce.
func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int8:
		return float64(x), true
	case int16:
		return float64(x), true
	case int32:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint8:
		return float64(x), true
	case uint16:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint64:
		return float64(x), true
	case float32:
		return float64(x), true
	case float64:
		return x, true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

// isDecimal accepts plain decimal numbers such as "8", "0.5", "8.", ".5", "1e3"; it refuses what
// strconv.ParseFloat would also take but no one means: signs, "inf", "nan", hex and underscores.
func isDecimal(s string) bool {
	mant, exp, hasExp := strings.Cut(strings.ToLower(s), "e")
	intPart, frac, _ := strings.Cut(mant, ".")
	if intPart+frac == "" || !allDigits(intPart) || !allDigits(frac) {
		return false
	}
	if hasExp {
		exp = strings.TrimPrefix(strings.TrimPrefix(exp, "+"), "-")
		return exp != "" && allDigits(exp)
	}
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// describe renders an input value for an error message: strings quoted, the rest as compact JSON.
func describe(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
