package resources

import (
	"errors"
	"fmt"
	"strings"
)

// CPU architectures as dstack names them.
const (
	ArchX86 = "x86"
	ArchARM = "arm"
)

// CPUSpec is dstack's `resources.cpu`.
type CPUSpec struct {
	Arch  *string    `json:"arch"`
	Count Range[int] `json:"count"`
}

// DefaultCPU is `2..` of any architecture.
func DefaultCPU() CPUSpec { return CPUSpec{Count: AtLeast(2)} }

// ParseCPU reads `resources.cpu`: an int, a range string ("2..", "4..8"), a spec string whose
// `:`-separated tokens are an architecture and a count ("arm:4..", "x86:8"), an object {arch, count},
// or a bare {min, max} range (older clients).
func ParseCPU(v any) (CPUSpec, error) {
	spec, err := parseCPU(v)
	if err != nil {
		return spec, fieldError("cpu", v, formsCPU, err)
	}
	return spec, nil
}

func parseCPU(v any) (CPUSpec, error) {
	spec := DefaultCPU()
	switch x := v.(type) {
	case nil:
		return spec, nil
	case string:
		s := strings.ReplaceAll(x, " ", "")
		haveCount, haveArch := false, false
		for tok := range strings.SplitSeq(s, ":") {
			switch {
			case tok == "":
				return spec, errors.New("empty token")
			case strings.Contains(tok, "..") || allDigits(tok):
				if haveCount {
					return spec, errors.New("two counts")
				}
				r, err := ParseRange[int](tok)
				if err != nil {
					return spec, err
				}
				spec.Count, haveCount = r, true
			default:
				a, ok := castArch(tok)
				if !ok {
					return spec, fmt.Errorf("unknown CPU architecture %q; expected %s", tok, formsArch)
				}
				if haveArch {
					return spec, errors.New("two architectures")
				}
				spec.Arch, haveArch = &a, true
			}
		}
		return spec, nil
	case map[string]any:
		if isRangeObject(x) {
			r, err := ParseRange[int](x)
			spec.Count = r
			return spec, err
		}
		for _, k := range sortedKeys(x) {
			val := x[k]
			switch k {
			case "arch":
				if val == nil {
					continue
				}
				s, _ := val.(string)
				a, ok := castArch(s)
				if !ok {
					return spec, &Error{Field: "cpu.arch", Value: describe(val), Expected: formsArch}
				}
				spec.Arch = &a
			case "count":
				if val == nil {
					continue
				}
				r, err := ParseRange[int](val)
				if err != nil {
					return spec, fieldError("cpu.count", val, formsCount, err)
				}
				spec.Count = r
			default:
				return spec, fmt.Errorf("unknown key %q (cpu has arch and count)", k)
			}
		}
		return spec, nil
	}
	r, err := ParseRange[int](v)
	spec.Count = r
	return spec, err
}

// isRangeObject tells a bare {min, max} object from a {arch, count} one.
func isRangeObject(m map[string]any) bool {
	if len(m) == 0 {
		return false
	}
	for k := range m {
		if k != "min" && k != "max" {
			return false
		}
	}
	return true
}

func castArch(s string) (string, bool) {
	switch strings.ToLower(s) {
	case "x86", "x86_64", "amd64":
		return ArchX86, true
	case "arm", "arm64", "aarch64":
		return ArchARM, true
	}
	return "", false
}

// String formats the spec so that ParseCPU reads it back: "2..", "arm:4..".
func (c CPUSpec) String() string {
	if c.Arch != nil {
		return *c.Arch + ":" + c.Count.String()
	}
	return c.Count.String()
}

// UnmarshalJSON accepts every form ParseCPU does.
func (c *CPUSpec) UnmarshalJSON(b []byte) error {
	v, err := decodeJSON(b)
	if err != nil {
		return err
	}
	out, err := ParseCPU(v)
	if err != nil {
		return err
	}
	*c = out
	return nil
}
