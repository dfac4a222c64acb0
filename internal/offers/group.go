package offers

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/dstackgo/dstack/internal/resources"
)

// GPUGroup is dstack's GpuGroup: offers of one GPU model, summarised, for `dstack offer --group-by`.
// Backend, Region and the exact count are set when the group is split by them; otherwise Backends
// and Regions list what the group spans and Count its range.
type GPUGroup struct {
	Name         string                   `json:"name"`
	MemoryMiB    int                      `json:"memory_mib"`
	Vendor       string                   `json:"vendor"`
	Availability []Availability           `json:"availability"`
	Spot         []string                 `json:"spot"`
	Count        resources.Range[int]     `json:"count"`
	Price        resources.Range[float64] `json:"price"`
	Backends     []string                 `json:"backends"`
	Backend      *string                  `json:"backend"`
	Regions      []string                 `json:"regions"`
	Region       *string                  `json:"region"`
}

// GroupBy says what GPU groups are split by besides the GPU model.
type GroupBy struct {
	Backend, Region, Count bool
}

// ParseGroupBy reads `--group-by` fields: gpu (always implied), backend, region, count. Splitting
// by region needs backend too, since region names are per backend.
func ParseGroupBy(fields []string) (GroupBy, error) {
	var g GroupBy
	for _, f := range fields {
		switch strings.TrimSpace(f) {
		case "gpu":
		case "backend":
			g.Backend = true
		case "region":
			g.Region = true
		case "count":
			g.Count = true
		default:
			return g, fmt.Errorf("group_by: %q is not valid: expected gpu, backend, region or count", f)
		}
	}
	if g.Region && !g.Backend {
		return g, fmt.Errorf("group_by: region needs backend too")
	}
	return g, nil
}

type groupKey struct {
	name, vendor, backend, region string
	memoryMiB, count              int
}

// GroupByGPU summarises offers with GPUs into groups, available groups first, then by lowest price.
func GroupByGPU(offers []Offer, by GroupBy) []GPUGroup {
	index := map[groupKey]int{}
	var groups []GPUGroup
	for _, o := range offers {
		gpus := o.Instance.Resources.GPUs
		if len(gpus) == 0 {
			continue
		}
		k := groupKey{name: gpus[0].Name, vendor: gpus[0].Vendor, memoryMiB: gpus[0].MemoryMiB}
		if by.Backend {
			k.backend = o.Backend
		}
		if by.Region {
			k.region = o.Region
		}
		if by.Count {
			k.count = len(gpus)
		}
		i, ok := index[k]
		if !ok {
			i = len(groups)
			index[k] = i
			g := GPUGroup{Name: k.name, MemoryMiB: k.memoryMiB, Vendor: k.vendor,
				Count: resources.Exact(len(gpus)), Price: resources.Exact(o.Price)}
			if by.Backend {
				g.Backend = &k.backend
			}
			if by.Region {
				g.Region = &k.region
			}
			groups = append(groups, g)
		}
		g := &groups[i]
		*g.Count.Min, *g.Count.Max = min(*g.Count.Min, len(gpus)), max(*g.Count.Max, len(gpus))
		*g.Price.Min, *g.Price.Max = min(*g.Price.Min, o.Price), max(*g.Price.Max, o.Price)
		g.Availability = addUnique(g.Availability, o.Availability)
		spot := "on-demand"
		if o.Instance.Resources.Spot {
			spot = "spot"
		}
		g.Spot = addUnique(g.Spot, spot)
		if !by.Backend {
			g.Backends = addUnique(g.Backends, o.Backend)
		}
		if !by.Region {
			g.Regions = addUnique(g.Regions, o.Region)
		}
	}
	for i := range groups {
		slices.Sort(groups[i].Availability)
		slices.Sort(groups[i].Spot)
		slices.Sort(groups[i].Backends)
		slices.Sort(groups[i].Regions)
	}
	slices.SortStableFunc(groups, func(a, b GPUGroup) int {
		return cmp.Or(
			-cmp.Compare(anyAvailable(a), anyAvailable(b)),
			cmp.Compare(*a.Price.Min, *b.Price.Min),
			cmp.Compare(*a.Count.Min, *b.Count.Min),
			cmp.Compare(a.Name, b.Name),
			cmp.Compare(a.MemoryMiB, b.MemoryMiB),
			cmp.Compare(deref(a.Backend), deref(b.Backend)),
			cmp.Compare(deref(a.Region), deref(b.Region)),
		)
	})
	return groups
}

func anyAvailable(g GPUGroup) int {
	if slices.ContainsFunc(g.Availability, Availability.IsAvailable) {
		return 1
	}
	return 0
}

func addUnique[T comparable](list []T, v T) []T {
	if slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
