package resources

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Accelerator vendors as dstack names them on the wire.
const (
	VendorNVIDIA      = "nvidia"
	VendorAMD         = "amd"
	VendorGoogle      = "google"
	VendorIntel       = "intel"
	VendorTenstorrent = "tenstorrent"
)

// GPUSpec is dstack's `resources.gpu`. Memory and TotalMemory are per GPU and over all GPUs.
type GPUSpec struct {
	Vendor            *string            `json:"vendor"`
	Name              []string           `json:"name"`
	Count             Range[int]         `json:"count"`
	Memory            *Range[Memory]     `json:"memory"`
	TotalMemory       *Range[Memory]     `json:"total_memory"`
	ComputeCapability *ComputeCapability `json:"compute_capability"`
}

// ComputeCapability is an NVIDIA compute capability; dstack 0.21 sends it as [major, minor].
type ComputeCapability struct{ Major, Minor int }

// String formats it as "8.0".
func (c ComputeCapability) String() string { return fmt.Sprintf("%d.%d", c.Major, c.Minor) }

// Less orders capabilities.
func (c ComputeCapability) Less(o ComputeCapability) bool {
	return c.Major < o.Major || c.Major == o.Major && c.Minor < o.Minor
}

// MarshalJSON writes [major, minor].
func (c ComputeCapability) MarshalJSON() ([]byte, error) {
	return []byte("[" + strconv.Itoa(c.Major) + "," + strconv.Itoa(c.Minor) + "]"), nil
}

// UnmarshalJSON accepts [major, minor], "8.0" or 8.0.
func (c *ComputeCapability) UnmarshalJSON(b []byte) error {
	v, err := decodeJSON(b)
	if err != nil {
		return err
	}
	out, err := parseCC(v)
	if err != nil {
		return fieldError("gpu.compute_capability", v, formsCC, err)
	}
	*c = out
	return nil
}

func parseCC(v any) (ComputeCapability, error) {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case []any:
		if len(x) != 2 {
			return ComputeCapability{}, errors.New("a list needs exactly [major, minor]")
		}
		maj, err1 := parseInt(x[0])
		mnr, err2 := parseInt(x[1])
		if err := errors.Join(err1, err2); err != nil {
			return ComputeCapability{}, err
		}
		return ComputeCapability{maj, mnr}, nil
	default:
		f, ok := toFloat(v)
		if !ok {
			return ComputeCapability{}, errors.New("not a version")
		}
		s = strconv.FormatFloat(f, 'f', -1, 64)
	}
	majS, minS, _ := strings.Cut(strings.TrimSpace(s), ".")
	if minS == "" {
		minS = "0"
	}
	maj, err1 := parseInt(majS)
	mnr, err2 := parseInt(minS)
	if err := errors.Join(err1, err2); err != nil {
		return ComputeCapability{}, err
	}
	return ComputeCapability{maj, mnr}, nil
}

// DefaultGPUCount is the count a GPU spec gets when it names a GPU but no count: 1 or more.
func DefaultGPUCount() Range[int] { return AtLeast(1) }

// ParseGPU reads `resources.gpu`: an int (exact count), a spec string, an object {vendor, name,
// count, memory, total_memory, compute_capability} or a bare {min, max} count range. A nil value is
// a nil spec (no GPU requirement).
//
// In a spec string, `:`-separated tokens are read as in dstack: a vendor name (nvidia, amd,
// google/tpu, intel, tenstorrent/tt) sets the vendor; another token starting with a letter is a
// comma-separated list of names; a token starting with a digit that contains a letter is the memory
// per GPU ("80GB", "24GB.."); anything else is the count ("2", "1..8"). Examples: "A100:80GB:2",
// "24GB..", "H100,A100:8", "amd:MI300X:1..", "nvidia:1..8", "tpu:v5litepod-8". A name starting with
// "tpu-" is a Google TPU and loses the prefix.
func ParseGPU(v any) (*GPUSpec, error) {
	if v == nil {
		return nil, nil
	}
	g, err := parseGPU(v)
	if err == nil {
		err = g.normalise()
	}
	if err != nil {
		return nil, fieldError("gpu", v, formsGPU, err)
	}
	return g, nil
}

func parseGPU(v any) (*GPUSpec, error) {
	g := &GPUSpec{Count: DefaultGPUCount()}
	switch x := v.(type) {
	case string:
		return g, g.parseString(x)
	case map[string]any:
		if isRangeObject(x) {
			r, err := ParseRange[int](x)
			g.Count = r
			return g, err
		}
		return g, g.parseObject(x)
	}
	r, err := ParseRange[int](v)
	g.Count = r
	return g, err
}

func (g *GPUSpec) parseString(s string) error {
	s = strings.ReplaceAll(s, " ", "")
	haveCount := false
	for tok := range strings.SplitSeq(s, ":") {
		if tok == "" {
			return errors.New("empty token")
		}
		first, _ := utf8.DecodeRuneInString(tok)
		switch {
		case unicode.IsLetter(first):
			if vendor, ok := castVendor(tok); ok {
				if g.Vendor != nil {
					return fmt.Errorf("two vendors: %s and %s", *g.Vendor, vendor)
				}
				g.Vendor = &vendor
				continue
			}
			if g.Name != nil {
				return fmt.Errorf("two name tokens: %q and %q; list names with commas", strings.Join(g.Name, ","), tok)
			}
			g.Name = strings.Split(tok, ",")
		case strings.ContainsFunc(tok, unicode.IsLetter):
			if g.Memory != nil {
				return fmt.Errorf("two memory tokens: %s and %q", g.Memory, tok)
			}
			r, err := ParseRange[Memory](tok)
			if err != nil {
				return fmt.Errorf("memory %q: %v", tok, err)
			}
			g.Memory = &r
		default:
			if haveCount {
				return fmt.Errorf("two count tokens: %s and %q", g.Count, tok)
			}
			r, err := ParseRange[int](tok)
			if err != nil {
				return fmt.Errorf("count %q: %v", tok, err)
			}
			g.Count, haveCount = r, true
		}
	}
	return nil
}

func (g *GPUSpec) parseObject(m map[string]any) error {
	for _, k := range sortedKeys(m) {
		val := m[k]
		if val == nil {
			continue
		}
		switch k {
		case "vendor":
			s, _ := val.(string)
			vendor, ok := castVendor(s)
			if !ok {
				return &Error{Field: "gpu.vendor", Value: describe(val), Expected: formsVendor}
			}
			g.Vendor = &vendor
		case "name":
			names, err := stringList(val)
			if err != nil {
				return fieldError("gpu.name", val, "a name or a list of names, e.g. [A100, H100]", err)
			}
			g.Name = names
		case "count":
			r, err := ParseRange[int](val)
			if err != nil {
				return fieldError("gpu.count", val, formsCount, err)
			}
			g.Count = r
		case "memory", "total_memory":
			r, err := ParseRange[Memory](val)
			if err != nil {
				return fieldError("gpu."+k, val, formsMemory, err)
			}
			if k == "memory" {
				g.Memory = &r
			} else {
				g.TotalMemory = &r
			}
		case "compute_capability":
			cc, err := parseCC(val)
			if err != nil {
				return fieldError("gpu.compute_capability", val, formsCC, err)
			}
			g.ComputeCapability = &cc
		default:
			return fmt.Errorf("unknown key %q (gpu has vendor, name, count, memory, total_memory and compute_capability)", k)
		}
	}
	return nil
}

// normalise checks names and turns "tpu-" names into Google ones.
func (g *GPUSpec) normalise() error {
	if len(g.Name) == 0 {
		g.Name = nil
	}
	for i, n := range g.Name {
		for {
			rest, ok := cutPrefixFold(n, "tpu-")
			if !ok {
				break
			}
			if g.Vendor != nil && *g.Vendor != VendorGoogle {
				return fmt.Errorf("TPU %q with vendor %s", g.Name[i], *g.Vendor)
			}
			google := VendorGoogle
			g.Vendor, n = &google, rest
		}
		if first, _ := utf8.DecodeRuneInString(n); n != g.Name[i] && !unicode.IsLetter(first) {
			return fmt.Errorf("TPU name %q must start with a letter after tpu-, e.g. tpu-v5litepod-8", g.Name[i])
		}
		g.Name[i] = n
		if n == "" {
			return errors.New("empty GPU name")
		}
	}
	return nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// castVendor maps the vendor names and aliases dstack accepts, case-insensitively.
func castVendor(s string) (string, bool) {
	switch strings.ToLower(s) {
	case "nvidia":
		return VendorNVIDIA, true
	case "amd":
		return VendorAMD, true
	case "google", "tpu":
		return VendorGoogle, true
	case "intel":
		return VendorIntel, true
	case "tenstorrent", "tt":
		return VendorTenstorrent, true
	}
	return "", false
}

func stringList(v any) ([]string, error) {
	switch x := v.(type) {
	case string:
		return []string{strings.TrimSpace(x)}, nil
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("%s is not a name", describe(e))
			}
			out = append(out, strings.TrimSpace(s))
		}
		return out, nil
	case []string:
		return x, nil
	}
	return nil, errors.New("not a string or a list")
}

// String formats the spec as a spec string that ParseGPU reads back, e.g. "nvidia:A100,H100:80GB:2..".
// TotalMemory and ComputeCapability have no place in that form and are left out.
func (g GPUSpec) String() string {
	var toks []string
	if g.Vendor != nil {
		toks = append(toks, *g.Vendor)
	}
	if len(g.Name) > 0 {
		names := g.Name
		if g.Vendor != nil && *g.Vendor == VendorGoogle {
			// A TPU name that reads as a vendor ("tpu") goes back with its tpu- prefix.
			names = make([]string, len(g.Name))
			for i, n := range g.Name {
				names[i] = n
				if _, isVendor := castVendor(n); isVendor {
					names[i] = "tpu-" + n
				}
			}
		}
		toks = append(toks, strings.Join(names, ","))
	}
	if g.Memory != nil {
		toks = append(toks, g.Memory.String())
	}
	return strings.Join(append(toks, g.Count.String()), ":")
}

// UnmarshalJSON accepts every form ParseGPU does.
func (g *GPUSpec) UnmarshalJSON(b []byte) error {
	v, err := decodeJSON(b)
	if err != nil {
		return err
	}
	out, err := ParseGPU(v)
	if err != nil {
		return err
	}
	if out == nil {
		out = &GPUSpec{Count: DefaultGPUCount()}
	}
	*g = *out
	return nil
}
