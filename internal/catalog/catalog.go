// Package catalog holds gpuhunt's v2 price catalogs in memory: one Table per provider, rows sorted by
// price, repeated strings interned so that a row takes a few dozen bytes. Tables are loaded from
// gpuhunt's CSV files, either from a local directory or from gpuhunt's published zip (see Source),
// and queried with a Filter that mirrors gpuhunt's QueryFilter.
package catalog

import (
	"slices"
	"strings"
)

// Vendor is a GPU vendor; None for rows without GPUs.
type Vendor uint8

// Vendors, in gpuhunt's naming.
const (
	None Vendor = iota
	NVIDIA
	AMD
	Google
	Intel
	Tenstorrent
)

var vendorNames = [...]string{"", "nvidia", "amd", "google", "intel", "tenstorrent"}

func (v Vendor) String() string { return vendorNames[v] }

// ParseVendor maps a vendor name (case-insensitive, with dstack's aliases tpu and tt).
func ParseVendor(s string) (Vendor, bool) {
	switch strings.ToLower(s) {
	case "nvidia":
		return NVIDIA, true
	case "amd":
		return AMD, true
	case "google", "tpu":
		return Google, true
	case "intel":
		return Intel, true
	case "tenstorrent", "tt":
		return Tenstorrent, true
	}
	return None, false
}

// Arch is a CPU architecture.
type Arch uint8

// Architectures; x86 is the zero value since gpuhunt treats an empty cpu_arch as x86.
const (
	X86 Arch = iota
	ARM
)

func (a Arch) String() string {
	if a == ARM {
		return "arm"
	}
	return "x86"
}

// Row is one catalog offer. Strings are indexes into its Table; use the Table's accessors.
// Price stays float64 so that prices print exactly as the CSV wrote them (a float32 would turn
// 0.0185 into 0.018499999).
type Row struct {
	Price     float64 // USD per hour
	Memory    float32 // GB
	GPUMemory float32 // GB per GPU
	Disk      float32 // GB; 0 when the disk size is configurable
	name      uint32
	location  uint16
	gpuName   uint16
	flags     uint16
	CPU       uint16
	GPUCount  uint8
	Vendor    Vendor
	Arch      Arch
	Spot      bool
}

// Table is one provider's catalog, immutable once loaded, rows sorted by price.
type Table struct {
	Provider string
	// Version is the catalog version it came from ("" for a local directory).
	Version string
	rows    []Row
	names   []string
	locs    []string
	gpus    []string
	flags   []string
	// ccs is the NVIDIA compute capability of each gpus entry (zero when unknown).
	ccs      []cc
	rejected map[string]int
}

// Len is the number of rows.
func (t *Table) Len() int { return len(t.rows) }

// Row returns the i-th row (by price); it must not be modified.
func (t *Table) Row(i int) *Row { return &t.rows[i] }

// Name is the row's instance type.
func (t *Table) Name(r *Row) string { return t.names[r.name] }

// Location is the row's region (or zone).
func (t *Table) Location(r *Row) string { return t.locs[r.location] }

// GPUName is the row's GPU model, "" without GPUs. TPU names have no "tpu-" prefix.
func (t *Table) GPUName(r *Row) string { return t.gpus[r.gpuName] }

// Flags are the row's space-separated gpuhunt flags, "" for most rows.
func (t *Table) Flags(r *Row) string { return t.flags[r.flags] }

// Rejected counts the CSV rows that failed the integrity checks, by reason.
func (t *Table) Rejected() map[string]int { return t.rejected }

// RejectedTotal is the number of rejected CSV rows.
func (t *Table) RejectedTotal() int {
	n := 0
	for _, c := range t.rejected {
		n += c
	}
	return n
}

// Locations lists the distinct locations of the table.
func (t *Table) Locations() []string { return slices.Clone(t.locs) }

// ProviderNames maps a dstack backend type to the gpuhunt provider names to look up, in order:
// `lambda` is `lambdalabs` in gpuhunt, and `verda` is DataCrunch's new name.
func ProviderNames(backend string) []string {
	switch backend {
	case "lambda":
		return []string{"lambdalabs"}
	case "verda":
		return []string{"verda", "datacrunch"}
	case "datacrunch":
		return []string{"datacrunch", "verda"}
	}
	return []string{backend}
}
