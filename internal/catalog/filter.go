package catalog

import (
	"math"
	"sort"
	"strings"

	"github.com/dstackgo/dstack/internal/resources"
)

// Filter selects rows, like gpuhunt's QueryFilter. Zero fields accept everything, except that rows
// carrying flags are hidden unless every flag is in AllowedFlags.
type Filter struct {
	CPU    resources.Range[int]
	Memory resources.Range[resources.Memory]
	// CPUArch is "x86", "arm" or "" for any.
	CPUArch string

	// GPUVendor applies to rows with GPUs; CPU-only rows pass it.
	GPUVendor string
	// GPUNames match case-insensitively; a row without GPUs never matches a name.
	GPUNames []string
	GPUCount resources.Range[int]
	// GPUMemory (per GPU) and TotalGPUMemory, when set, exclude rows without GPUs.
	GPUMemory      resources.Range[resources.Memory]
	TotalGPUMemory resources.Range[resources.Memory]
	// MinComputeCapability keeps NVIDIA GPUs of at least this capability.
	MinComputeCapability *resources.ComputeCapability

	// Disk applies to rows with a fixed disk size only.
	Disk  resources.Range[resources.Memory]
	Spot  *bool
	Price resources.Range[float64]
	// Locations and InstanceTypes match case-insensitively; empty means all.
	Locations     []string
	InstanceTypes []string
	AllowedFlags  []string
}

// Stage names one group of checks of a Filter, in the order Funnel applies them.
type Stage int

// Stages.
const (
	StageFlags Stage = iota
	StageGPU
	StageGPUCount
	StageGPUMemory
	StageCPU
	StageMemory
	StageDisk
	StageSpot
	StagePrice
	StageLocation
	StageInstanceType
	// NumStages is the number of stages, the length of a Funnel.
	NumStages
	stagePass = NumStages
)

var stageNames = [...]string{"flags", "gpu", "gpu count", "gpu memory", "cpu", "memory", "disk", "spot",
	"price", "region", "instance type"}

func (s Stage) String() string { return stageNames[s] }

// bounds is a Range compiled to floats, open ends at ±Inf.
type bounds struct{ lo, hi float64 }

func compile[T resources.Number](r resources.Range[T]) bounds {
	b := bounds{math.Inf(-1), math.Inf(1)}
	if r.Min != nil {
		b.lo = float64(*r.Min)
	}
	if r.Max != nil {
		b.hi = float64(*r.Max)
	}
	return b
}

func (b bounds) has(v float64) bool { return v >= b.lo && v <= b.hi }

func isSet[T resources.Number](r resources.Range[T]) bool { return r.Min != nil || r.Max != nil }

// matcher is a Filter compiled against one Table: string checks become lookups by index.
type matcher struct {
	t                                                 *Table
	cpu, mem, gpuCount, gpuMem, totalMem, disk, price bounds
	needGPUMem, needTotalMem                          bool
	arch                                              Arch
	anyArch                                           bool
	vendor                                            Vendor
	gpuOK, locOK, flagOK                              []bool // nil: no check
	types                                             []string
	spot                                              int8 // -1 any, 0 on-demand, 1 spot
}

func (f *Filter) compile(t *Table) *matcher {
	m := &matcher{
		t:            t,
		cpu:          compile(f.CPU),
		mem:          compile(f.Memory),
		gpuCount:     compile(f.GPUCount),
		gpuMem:       compile(f.GPUMemory),
		totalMem:     compile(f.TotalGPUMemory),
		disk:         compile(f.Disk),
		price:        compile(f.Price),
		needGPUMem:   isSet(f.GPUMemory),
		needTotalMem: isSet(f.TotalGPUMemory),
		anyArch:      f.CPUArch == "",
		spot:         -1,
		types:        f.InstanceTypes,
	}
	if f.CPUArch == "arm" {
		m.arch = ARM
	}
	m.vendor, _ = ParseVendor(f.GPUVendor)
	if f.Spot != nil {
		m.spot = 0
		if *f.Spot {
			m.spot = 1
		}
	}
	if len(f.GPUNames) > 0 || f.MinComputeCapability != nil {
		m.gpuOK = make([]bool, len(t.gpus))
		for i, g := range t.gpus {
			ok := i > 0 && (len(f.GPUNames) == 0 || containsFold(f.GPUNames, g))
			if ok && f.MinComputeCapability != nil {
				want := f.MinComputeCapability.Major*10 + f.MinComputeCapability.Minor
				ok = t.ccs[i] != 0 && int(t.ccs[i]) >= want
			}
			m.gpuOK[i] = ok
		}
	}
	if len(f.Locations) > 0 {
		m.locOK = make([]bool, len(t.locs))
		for i, l := range t.locs {
			m.locOK[i] = containsFold(f.Locations, l)
		}
	}
	m.flagOK = make([]bool, len(t.flags))
	for i, fl := range t.flags {
		m.flagOK[i] = true
		for _, one := range strings.Fields(fl) {
			m.flagOK[i] = m.flagOK[i] && containsFold(f.AllowedFlags, one)
		}
	}
	return m
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// stage returns the first stage r fails, or stagePass.
func (m *matcher) stage(r *Row) Stage {
	switch {
	case !m.flagOK[r.flags]:
		return StageFlags
	case r.GPUCount > 0 && m.vendor != None && r.Vendor != m.vendor,
		m.gpuOK != nil && !m.gpuOK[r.gpuName]:
		return StageGPU
	case !m.gpuCount.has(float64(r.GPUCount)):
		return StageGPUCount
	case m.needGPUMem && (r.GPUCount == 0 || !m.gpuMem.has(float64(r.GPUMemory))),
		m.needTotalMem && (r.GPUCount == 0 || !m.totalMem.has(float64(r.GPUMemory)*float64(r.GPUCount))):
		return StageGPUMemory
	case !m.cpu.has(float64(r.CPU)) || !m.anyArch && r.Arch != m.arch:
		return StageCPU
	case !m.mem.has(float64(r.Memory)):
		return StageMemory
	case r.Disk > 0 && !m.disk.has(float64(r.Disk)):
		return StageDisk
	case m.spot >= 0 && r.Spot != (m.spot == 1):
		return StageSpot
	case !m.price.has(r.Price):
		return StagePrice
	case m.locOK != nil && !m.locOK[r.location]:
		return StageLocation
	case len(m.types) > 0 && !containsFold(m.types, m.t.names[r.name]):
		return StageInstanceType
	}
	return stagePass
}

// Query calls fn for each matching row in price order until fn returns false. Rows above the price
// ceiling are never visited.
func (t *Table) Query(f *Filter, fn func(r *Row) bool) {
	m := f.compile(t)
	start := 0
	if !math.IsInf(m.price.lo, -1) {
		start = sort.Search(len(t.rows), func(i int) bool { return t.rows[i].Price >= m.price.lo })
	}
	for i := start; i < len(t.rows); i++ {
		r := &t.rows[i]
		if r.Price > m.price.hi {
			return
		}
		if m.stage(r) == stagePass && !fn(r) {
			return
		}
	}
}

// StageCount is how many rows are left after a stage of a Funnel.
type StageCount struct {
	Stage     Stage
	Remaining int
}

// Funnel counts the visible rows (those whose flags are allowed) and how many remain after each
// stage of f, to explain an empty result: the first stage that leaves 0 is the one that removed
// everything.
func (t *Table) Funnel(f *Filter) []StageCount {
	m := f.compile(t)
	var failedAt [NumStages + 1]int
	for i := range t.rows {
		failedAt[m.stage(&t.rows[i])]++
	}
	out := make([]StageCount, NumStages)
	left := len(t.rows)
	for s := Stage(0); s < NumStages; s++ {
		left -= failedAt[s]
		out[s] = StageCount{Stage: s, Remaining: left}
	}
	return out
}
