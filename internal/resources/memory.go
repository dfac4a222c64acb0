package resources

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Memory is a size in GB (1 GB = 1024 MB, 1 TB = 1024 GB, as in dstack). On the wire it is a float.
type Memory float64

// ParseMemory reads a size: a number (GB) or a string with an optional unit MB, GB or TB
// (case-insensitive, GB when absent), e.g. "512MB", "16GB", "1TB", "80".
func ParseMemory(v any) (Memory, error) {
	s, ok := v.(string)
	if !ok {
		f, err := parseFloat(v)
		if err != nil {
			return 0, err
		}
		return checkMemory(f, v)
	}
	t := strings.ToLower(strings.ReplaceAll(s, " ", ""))
	scale := 1.0
	switch {
	case strings.HasSuffix(t, "tb"):
		t, scale = t[:len(t)-2], 1024
	case strings.HasSuffix(t, "gb"):
		t = t[:len(t)-2]
	case strings.HasSuffix(t, "mb"):
		t, scale = t[:len(t)-2], 1.0/1024
	}
	if !isDecimal(t) {
		return 0, fmt.Errorf("%q is not a size (use MB, GB or TB, e.g. 16GB)", s)
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size: %v", s, err)
	}
	return checkMemory(f*scale, v)
}

func checkMemory(f float64, v any) (Memory, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) || f < 0 {
		return 0, fmt.Errorf("%s is not a size >= 0", describe(v))
	}
	return Memory(f), nil
}

// String formats a size in GB, e.g. "80GB", "0.5GB".
func (m Memory) String() string {
	return strconv.FormatFloat(float64(m), 'f', -1, 64) + "GB"
}

// MiB converts to whole MiB, rounding like dstack does.
func (m Memory) MiB() int { return int(math.Round(float64(m) * 1024)) }

// UnmarshalJSON accepts a number (GB) or a size string.
func (m *Memory) UnmarshalJSON(b []byte) error {
	v, err := decodeJSON(b)
	if err != nil {
		return err
	}
	out, err := ParseMemory(v)
	if err != nil {
		return err
	}
	*m = out
	return nil
}

// MarshalJSON writes the number of GB.
func (m Memory) MarshalJSON() ([]byte, error) { return json.Marshal(float64(m)) }
