package resources

import "errors"

// Accepted forms, quoted by error messages so that a user sees what to write instead.
const (
	formsCPU    = `a count (4), a range (2.., 4..8, ..8), [arch:]count (arm:4.., x86:8) or {arch, count}`
	formsMemory = `a size (16GB, 512MB, 1TB; GB when no unit) or a range (8GB.., 16GB..64GB)`
	formsSize   = `a size (16GB, 512MB, 1TB; GB when no unit)`
	formsGPU    = `[vendor:]name[,name...][:memory][:count], e.g. A100:80GB:2`
	formsDisk   = `a size or range (100GB.., 200GB..1TB) or {size}`
	formsCount  = `a count (2) or a range (1.., 1..8, ..8)`
	formsCC     = `major.minor, e.g. "8.0"`
	formsVendor = `nvidia, amd, google (or tpu), intel or tenstorrent (or tt)`
	formsArch   = `x86 or arm`
)

// Error is a resources value that does not parse. Field is its path under `resources`
// (e.g. "gpu", "cpu.count"), Value the input as written, Expected the accepted forms and Reason
// what exactly is wrong.
type Error struct {
	Field    string
	Value    string
	Expected string
	Reason   string
}

func (e *Error) Error() string {
	path := "resources"
	if e.Field != "" {
		path += "." + e.Field
	}
	s := path + ": " + e.Value + " is not valid"
	if e.Expected != "" {
		s += ": expected " + e.Expected
	}
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	return s
}

// fieldError wraps err from parsing v at field. An *Error from deeper down is kept as it is, since
// it already names the inner field.
func fieldError(field string, v any, expected string, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	reason := ""
	if err != nil {
		reason = err.Error()
	}
	return &Error{Field: field, Value: describe(v), Expected: expected, Reason: reason}
}
