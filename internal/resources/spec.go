// Package resources is dstack's `resources:` requirement of a run or fleet: CPU, memory, shared
// memory, GPU and disk, each a value or a range. It parses every form dstack accepts in YAML (ints,
// "2..", "A100:80GB:2", objects) and the full object form the dstack CLI sends as JSON, and writes
// that object form back. Errors name the field and the forms it accepts.
package resources

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// DiskSpec is dstack's `resources.disk`.
type DiskSpec struct {
	Size Range[Memory] `json:"size"`
}

// ResourcesSpec is dstack's `resources`, with JSON field names as in run_spec.configuration.resources.
type ResourcesSpec struct {
	CPU          CPUSpec       `json:"cpu"`
	Memory       Range[Memory] `json:"memory"`
	SharedMemory *Memory       `json:"shm_size"`
	GPU          *GPUSpec      `json:"gpu"`
	Disk         *DiskSpec     `json:"disk"`
}

// Defaults of dstack 0.21 for a configuration that leaves a key out.
var (
	DefaultMemory = AtLeast[Memory](8)
	DefaultDisk   = AtLeast[Memory](100)
)

// Default is the spec of a configuration without `resources`: cpu 2.., memory 8GB.., any GPU count
// (0..), disk 100GB...
func Default() ResourcesSpec {
	return ResourcesSpec{
		CPU:    DefaultCPU(),
		Memory: DefaultMemory,
		GPU:    &GPUSpec{Count: AtLeast(0)},
		Disk:   &DiskSpec{Size: DefaultDisk},
	}
}

// Parse reads `resources` from a decoded YAML or JSON value (nil gives Default). Keys left out get
// their defaults; `gpu: null` and `disk: null` remove that requirement.
func Parse(v any) (ResourcesSpec, error) {
	spec := Default()
	if v == nil {
		return spec, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return spec, &Error{Value: describe(v), Expected: "an object with cpu, memory, shm_size, gpu and disk"}
	}
	for _, k := range sortedKeys(m) {
		val := m[k]
		var err error
		switch k {
		case "cpu":
			spec.CPU, err = ParseCPU(val)
		case "memory":
			if val != nil {
				spec.Memory, err = ParseRange[Memory](val)
				if err != nil {
					err = fieldError("memory", val, formsMemory, err)
				}
			}
		case "shm_size":
			spec.SharedMemory = nil
			if val != nil {
				var shm Memory
				if shm, err = ParseMemory(val); err != nil {
					err = fieldError("shm_size", val, formsSize, err)
				}
				spec.SharedMemory = &shm
			}
		case "gpu":
			spec.GPU, err = ParseGPU(val)
		case "disk":
			spec.Disk, err = ParseDisk(val)
		default:
			err = &Error{Field: k, Value: describe(val), Reason: "unknown key; resources has cpu, memory, shm_size, gpu and disk"}
		}
		if err != nil {
			return spec, err
		}
	}
	return spec, nil
}

// ParseDisk reads `resources.disk`: a size or range, or {size: ...}. Nil gives nil.
func ParseDisk(v any) (*DiskSpec, error) {
	if v == nil {
		return nil, nil
	}
	src := v
	if m, ok := v.(map[string]any); ok && !isRangeObject(m) {
		for k := range m {
			if k != "size" {
				return nil, fieldError("disk", v, formsDisk, fmt.Errorf("unknown key %q", k))
			}
		}
		if src = m["size"]; src == nil {
			return nil, fieldError("disk", v, formsDisk, errors.New("size is required"))
		}
	}
	r, err := ParseRange[Memory](src)
	if err != nil {
		return nil, fieldError("disk", v, formsDisk, err)
	}
	return &DiskSpec{Size: r}, nil
}

// String formats the spec the way the dstack CLI shows requirements, e.g.
// "cpu=2.. mem=8GB.. disk=100GB.. gpu=A100:80GB:2".
func (r ResourcesSpec) String() string {
	parts := []string{"cpu=" + r.CPU.String(), "mem=" + r.Memory.String()}
	if r.SharedMemory != nil {
		parts = append(parts, "shm="+r.SharedMemory.String())
	}
	if r.Disk != nil {
		parts = append(parts, "disk="+r.Disk.Size.String())
	}
	if r.GPU != nil && !r.GPU.isAny() {
		parts = append(parts, "gpu="+r.GPU.String())
	}
	return strings.Join(parts, " ")
}

// isAny reports a spec that accepts any machine, with or without GPUs (the 0.21 default).
func (g GPUSpec) isAny() bool {
	return g.Vendor == nil && g.Name == nil && g.Memory == nil && g.TotalMemory == nil &&
		g.ComputeCapability == nil && (g.Count.Min == nil || *g.Count.Min == 0) && g.Count.Max == nil
}

// UnmarshalJSON accepts every form Parse does.
func (r *ResourcesSpec) UnmarshalJSON(b []byte) error {
	v, err := decodeJSON(b)
	if err != nil {
		return err
	}
	out, err := Parse(v)
	if err != nil {
		return err
	}
	*r = out
	return nil
}

// UnmarshalJSON accepts every form ParseDisk does.
func (d *DiskSpec) UnmarshalJSON(b []byte) error {
	v, err := decodeJSON(b)
	if err != nil {
		return err
	}
	out, err := ParseDisk(v)
	if err != nil {
		return err
	}
	if out != nil {
		*d = *out
	}
	return nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
