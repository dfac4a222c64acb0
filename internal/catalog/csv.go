package catalog

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// columns of gpuhunt's v2 CSV, in the order of the c* constants. The last two, flags and cpu_arch,
// are missing from v1 files and optional here.
var columns = []string{"instance_name", "location", "price", "cpu", "memory", "gpu_count",
	"gpu_name", "gpu_memory", "spot", "disk_size", "gpu_vendor", "flags", "cpu_arch"}

const requiredColumns = 11

// ErrIntegrity marks a CSV that parsed but cannot be trusted as a whole: no usable rows, or more
// than half of them rejected.
var ErrIntegrity = errors.New("catalog integrity check failed")

// Parse reads one provider's CSV. Rows that fail a check (a price, CPU count or memory that is not
// positive; GPU count, name and memory that disagree; a malformed number) are skipped and counted by
// reason in Table.Rejected. A missing header column or a failed integrity check is an error.
func Parse(provider string, r io.Reader) (*Table, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: reading header: %w", provider, err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))] = i
	}
	idx := make([]int, len(columns))
	for i, name := range columns {
		j, ok := col[name]
		if !ok && i < requiredColumns {
			return nil, fmt.Errorf("%s: header has no %q column (want %s)", provider, name, strings.Join(columns, ","))
		}
		if !ok {
			j = -1
		}
		idx[i] = j
	}
	b := newBuilder(provider)
	line := 1
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		line++
		var perr *csv.ParseError
		if errors.As(err, &perr) {
			b.reject("malformed CSV line")
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: line %d: %w", provider, line, err)
		}
		field := func(i int) string {
			if idx[i] < 0 || idx[i] >= len(rec) {
				return ""
			}
			return strings.TrimSpace(rec[idx[i]])
		}
		if len(rec) < len(header) {
			b.reject("too few columns")
			continue
		}
		if reason := b.add(field); reason != "" {
			b.reject(reason)
		}
	}
	return b.table()
}

// builder interns strings while rows are added.
type builder struct {
	t                        *Table
	names, locs, gpus, flags map[string]int
}

func newBuilder(provider string) *builder {
	return &builder{
		// Index 0 of gpus and flags is "", for rows without GPUs or flags.
		t:     &Table{Provider: provider, rejected: map[string]int{}, gpus: []string{""}, ccs: []cc{0}, flags: []string{""}},
		names: map[string]int{}, locs: map[string]int{},
		gpus: map[string]int{"": 0}, flags: map[string]int{"": 0},
	}
}

func (b *builder) reject(reason string) { b.t.rejected[reason]++ }

// intern returns the index of s in list, adding a copy (fields of a csv record share one backing
// string per line, which must not be kept alive) when it is new; false when list is full.
func intern(m map[string]int, list *[]string, s string, limit int) (int, bool) {
	if i, ok := m[s]; ok {
		return i, true
	}
	if len(*list) >= limit {
		return 0, false
	}
	s = strings.Clone(s)
	m[s] = len(*list)
	*list = append(*list, s)
	return len(*list) - 1, true
}

// Column positions in the field function passed to add, following columns.
const (
	cName = iota
	cLocation
	cPrice
	cCPU
	cMemory
	cGPUCount
	cGPUName
	cGPUMemory
	cSpot
	cDisk
	cVendor
	cFlags
	cArch
)

// add checks one record and appends it; it returns why the record was rejected, or "".
func (b *builder) add(field func(int) string) string {
	var r Row
	name, loc := field(cName), field(cLocation)
	if name == "" || loc == "" {
		return "empty instance_name or location"
	}
	price, ok := parsePositive(field(cPrice))
	if !ok {
		return "price not > 0"
	}
	r.Price = price
	cpu, err := strconv.ParseFloat(field(cCPU), 64)
	if err != nil || cpu <= 0 || cpu > math.MaxUint16 || cpu != math.Trunc(cpu) {
		return "cpu not a whole number > 0"
	}
	r.CPU = uint16(cpu)
	mem, ok := parsePositive(field(cMemory))
	if !ok {
		return "memory not > 0"
	}
	r.Memory = float32(mem)

	gpuCount, err := strconv.ParseFloat(orZero(field(cGPUCount)), 64)
	if err != nil || gpuCount < 0 || gpuCount > math.MaxUint8 || gpuCount != math.Trunc(gpuCount) {
		return "gpu_count not a whole number 0..255"
	}
	gpuName := field(cGPUName)
	gpuMem, err := strconv.ParseFloat(orZero(field(cGPUMemory)), 64)
	if err != nil || math.IsNaN(gpuMem) || math.IsInf(gpuMem, 0) {
		return "gpu_memory not a number"
	}
	vendor := None
	if gpuCount > 0 {
		if gpuName == "" || gpuMem <= 0 {
			return "gpu_count > 0 without gpu_name and gpu_memory > 0"
		}
		if v := field(cVendor); v != "" {
			if vendor, ok = ParseVendor(v); !ok {
				return "unknown gpu_vendor"
			}
		} else {
			vendor = NVIDIA
		}
		if rest, ok := strings.CutPrefix(gpuName, "tpu-"); ok {
			gpuName, vendor = rest, Google
		}
	} else if gpuName != "" || gpuMem != 0 {
		return "gpu_name or gpu_memory without gpu_count"
	}
	r.GPUCount, r.GPUMemory, r.Vendor = uint8(gpuCount), float32(gpuMem), vendor

	switch strings.ToLower(field(cSpot)) {
	case "true", "1":
		r.Spot = true
	case "false", "0", "":
	default:
		return "spot not True or False"
	}
	if d := field(cDisk); d != "" {
		disk, ok := parsePositive(d)
		if !ok {
			return "disk_size not > 0"
		}
		r.Disk = float32(disk)
	}
	switch strings.ToLower(field(cArch)) {
	case "", "x86", "x86_64", "amd64":
	case "arm", "arm64", "aarch64":
		r.Arch = ARM
	default:
		return "unknown cpu_arch"
	}

	t := b.t
	n, ok := intern(b.names, &t.names, name, math.MaxUint32)
	l, ok2 := intern(b.locs, &t.locs, loc, math.MaxUint16+1)
	g, ok3 := intern(b.gpus, &t.gpus, gpuName, math.MaxUint16+1)
	f, ok4 := intern(b.flags, &t.flags, strings.Join(strings.Fields(field(cFlags)), " "), math.MaxUint16+1)
	if !ok || !ok2 || !ok3 || !ok4 {
		return "too many distinct strings"
	}
	if g == len(t.ccs) {
		t.ccs = append(t.ccs, lookupCC(vendor, gpuName))
	}
	r.name, r.location, r.gpuName, r.flags = uint32(n), uint16(l), uint16(g), uint16(f)
	t.rows = append(t.rows, r)
	return ""
}

func parsePositive(s string) (float64, bool) {
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil && f > 0 && !math.IsInf(f, 0)
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

// table finishes the build: integrity check, price order, compact slices.
func (b *builder) table() (*Table, error) {
	t := b.t
	rejected := t.RejectedTotal()
	if len(t.rows) == 0 {
		return nil, fmt.Errorf("%s: %w: no usable rows (%d rejected: %s)", t.Provider, ErrIntegrity, rejected, reasons(t.rejected))
	}
	if rejected > len(t.rows) {
		return nil, fmt.Errorf("%s: %w: %d of %d rows rejected (%s)", t.Provider, ErrIntegrity,
			rejected, rejected+len(t.rows), reasons(t.rejected))
	}
	slices.SortStableFunc(t.rows, func(a, b Row) int {
		switch {
		case a.Price < b.Price:
			return -1
		case a.Price > b.Price:
			return 1
		}
		return 0
	})
	// Copies drop the spare capacity that append left behind.
	t.rows = slices.Clone(t.rows)
	t.names = slices.Clone(t.names)
	return t, nil
}

func reasons(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
