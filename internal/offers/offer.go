// Package offers turns resource requirements into instance offers and plans: per-backend offer
// sources (catalog-backed, or live ones behind a stale-while-revalidate cache), and Plan, which asks
// every source at once, merges their offers by price, puts available ones first and explains an
// empty result. It is pure code over snapshots and sources: no HTTP, no database.
package offers

import (
	"encoding/json"
	"math"
)

// Availability of an offer, as in dstack's InstanceAvailability.
type Availability string

// Availabilities.
const (
	Unknown      Availability = "unknown"
	Available    Availability = "available"
	NotAvailable Availability = "not_available"
	NoQuota      Availability = "no_quota"
	NoBalance    Availability = "no_balance"
	Idle         Availability = "idle"
	Busy         Availability = "busy"
)

// IsAvailable is dstack's ranking rule: unknown (or unset), available and idle offers come first
// in a plan.
func (a Availability) IsAvailable() bool {
	return a == Unknown || a == Available || a == Idle || a == ""
}

// Instance runtimes: shim runs jobs in containers on a VM; runner runs directly in a container
// that the provider starts (runpod, vastai, kubernetes).
const (
	RuntimeShim   = "shim"
	RuntimeRunner = "runner"
)

// Offer is dstack's InstanceOfferWithAvailability.
type Offer struct {
	Backend  string       `json:"backend"`
	Instance InstanceType `json:"instance"`
	Region   string       `json:"region"`
	Price    float64      `json:"price"`
	// BackendData is written as {} when nil.
	BackendData       map[string]any `json:"backend_data"`
	Availability      Availability   `json:"availability"`
	AvailabilityZones []string       `json:"availability_zones"`
	// InstanceRuntime is written as "shim" when empty; Blocks and TotalBlocks as 1 when 0.
	InstanceRuntime string `json:"instance_runtime"`
	Blocks          int    `json:"blocks"`
	TotalBlocks     int    `json:"total_blocks"`
}

// InstanceType is dstack's InstanceType.
type InstanceType struct {
	Name      string    `json:"name"`
	Resources Resources `json:"resources"`
}

// Resources is dstack's Resources of an instance: integer MiB, one Gpu entry per GPU.
type Resources struct {
	CPUs      int   `json:"cpus"`
	MemoryMiB int   `json:"memory_mib"`
	GPUs      []GPU `json:"gpus"`
	Spot      bool  `json:"spot"`
	Disk      Disk  `json:"disk"`
	// CPUArch is "x86", "arm", or "" (written as null).
	CPUArch     string `json:"cpu_arch"`
	Description string `json:"description"`
}

// GPU is dstack's Gpu.
type GPU struct {
	Name      string `json:"name"`
	MemoryMiB int    `json:"memory_mib"`
	Vendor    string `json:"vendor"`
}

// Disk is dstack's Disk.
type Disk struct {
	SizeMiB int `json:"size_mib"`
}

// DefaultDiskMiB is the disk dstack assumes when Resources has none.
const DefaultDiskMiB = 102400

// MarshalJSON fills the defaults dstack writes for empty fields.
func (o Offer) MarshalJSON() ([]byte, error) {
	type plain Offer
	p := plain(o)
	if p.BackendData == nil {
		p.BackendData = map[string]any{}
	}
	if p.InstanceRuntime == "" {
		p.InstanceRuntime = RuntimeShim
	}
	if p.Blocks == 0 {
		p.Blocks = 1
	}
	if p.TotalBlocks == 0 {
		p.TotalBlocks = 1
	}
	return json.Marshal(p)
}

type resourcesJSON struct {
	CPUs        int     `json:"cpus"`
	MemoryMiB   int     `json:"memory_mib"`
	GPUs        []GPU   `json:"gpus"`
	Spot        bool    `json:"spot"`
	Disk        *Disk   `json:"disk"`
	CPUArch     *string `json:"cpu_arch"`
	Description string  `json:"description"`
}

// MarshalJSON writes gpus as [] and an empty cpu_arch as null.
func (r Resources) MarshalJSON() ([]byte, error) {
	j := resourcesJSON{CPUs: r.CPUs, MemoryMiB: r.MemoryMiB, GPUs: r.GPUs, Spot: r.Spot, Disk: &r.Disk,
		Description: r.Description}
	if j.GPUs == nil {
		j.GPUs = []GPU{}
	}
	if r.CPUArch != "" {
		j.CPUArch = &r.CPUArch
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads null cpu_arch as "" and a missing disk as DefaultDiskMiB.
func (r *Resources) UnmarshalJSON(b []byte) error {
	var j resourcesJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*r = Resources{CPUs: j.CPUs, MemoryMiB: j.MemoryMiB, GPUs: j.GPUs, Spot: j.Spot,
		Disk: Disk{SizeMiB: DefaultDiskMiB}, Description: j.Description}
	if j.Disk != nil {
		r.Disk = *j.Disk
	}
	if j.CPUArch != nil {
		r.CPUArch = *j.CPUArch
	}
	return nil
}

// mib converts GB to whole MiB, rounding as dstack does.
func mib(gb float64) int { return int(math.Round(gb * 1024)) }
