package offers

import (
	"context"
	"strings"

	"github.com/dstackgo/dstack/internal/catalog"
	"github.com/dstackgo/dstack/internal/resources"
)

// Source gives one backend's offers for requirements, sorted by price when it can (Plan sorts a
// list that is not). The returned slice is shared and must not be modified. A source may return
// offers together with a *StaleError: the offers are usable but old.
type Source interface {
	Offers(ctx context.Context, req Requirements) ([]Offer, error)
}

// TopSource is a Source that can return just the cheapest offers of a query, with the count and
// highest price of all its matches, so that a plan of a few offers need not build every one. Its
// offers have the query's regions, zones and instance types applied already and share one
// availability, so the limit cheapest are all a plan can take from it.
type TopSource interface {
	Source
	Top(ctx context.Context, q Query, limit int) (offers []Offer, total int, maxPrice float64, err error)
}

// Explainer is a Source that can say, when it has no offers for a query, how many candidates each
// filter stage left (see catalog.Table.Funnel).
type Explainer interface {
	Explain(ctx context.Context, q Query) ([]catalog.StageCount, error)
}

// Tables gives the catalog table of a backend type; *catalog.Source and *catalog.Snapshot are Tables.
type Tables interface {
	TableFor(backend string) (*catalog.Table, error)
}

// CatalogConfig is how a backend turns its catalog rows into offers.
type CatalogConfig struct {
	// Regions are the backend's configured regions (case-insensitive); empty means all.
	Regions []string
	// ExcludeRegions are never offered (cudo's in-hyderabad-1).
	ExcludeRegions []string
	// Spot says whether the backend can start spot instances; if not, spot rows are dropped.
	Spot bool
	// Disk is the range of disk sizes the backend can attach, in GB, for rows without a fixed disk.
	Disk resources.Range[resources.Memory]
	// Availability is what offers say before any live check.
	Availability Availability
	Runtime      string
	// AllowedFlags are the gpuhunt row flags the backend understands.
	AllowedFlags []string
}

// DefaultCatalogConfig is dstack's behaviour for a backend type: the disk ranges of spec §4.3,
// spot support, runtime and the availability that offers carry without a live check.
func DefaultCatalogConfig(backend string) CatalogConfig {
	c := CatalogConfig{
		Spot:         true,
		Disk:         resources.AtLeast[resources.Memory](1),
		Availability: Unknown,
		Runtime:      RuntimeShim,
		AllowedFlags: []string{"oci-spot", "lambda-arm"},
	}
	gb := func(lo, hi resources.Memory) resources.Range[resources.Memory] { return resources.Between(lo, hi) }
	switch backend {
	case "aws":
		c.Disk = gb(100, 16*1024)
	case "azure":
		c.Disk = gb(30, 4095)
	case "gcp":
		c.Disk = gb(20, 32*1024)
	case "oci":
		c.Disk = gb(50, 32*1024)
	case "nebius":
		c.Disk, c.Spot = gb(40, 8*1024), false
	case "datacrunch", "verda":
		// The disk must hold the OS image; 50GB is the smallest that does.
		c.Disk = resources.AtLeast[resources.Memory](50)
	case "runpod":
		c.Runtime, c.Availability = RuntimeRunner, Available
	case "vastai":
		c.Runtime, c.Availability, c.Spot = RuntimeRunner, Available, false
	case "cudo":
		c.Availability, c.Spot, c.ExcludeRegions = Available, false, []string{"in-hyderabad-1"}
	case "lambda", "tensordock", "vultr":
		c.Spot = false
		if backend != "lambda" {
			c.Availability = Available
		}
	case "kubernetes":
		c.Runtime = RuntimeRunner
	}
	return c
}

// CatalogSource serves a backend's offers from its gpuhunt catalog.
type CatalogSource struct {
	backend string
	tables  Tables
	cfg     CatalogConfig
}

// NewCatalogSource returns the catalog-backed source of a backend.
func NewCatalogSource(backend string, tables Tables, cfg CatalogConfig) *CatalogSource {
	return &CatalogSource{backend: backend, tables: tables, cfg: cfg}
}

// Offers returns the matching rows as offers, cheapest first. Rows without a fixed disk get the
// smallest size both the requirements and the backend accept; when those do not overlap there
// are no offers. Errors wrap catalog.ErrNotLoaded or catalog.ErrNoProvider.
func (s *CatalogSource) Offers(ctx context.Context, req Requirements) ([]Offer, error) {
	out, _, _, err := s.scan(ctx, Query{Requirements: req}, -1)
	return out, err
}

// Top returns the limit cheapest offers for q, with the profile's regions and instance types
// applied, and the count and highest price of all matches.
func (s *CatalogSource) Top(ctx context.Context, q Query, limit int) ([]Offer, int, float64, error) {
	return s.scan(ctx, q, limit)
}

// scan builds the offers of the first limit matches (all when limit < 0) and counts them all.
func (s *CatalogSource) scan(ctx context.Context, q Query, limit int) ([]Offer, int, float64, error) {
	t, err := s.tables.TableFor(s.backend)
	if err != nil {
		return nil, 0, 0, err
	}
	f, spotOK := s.filter(t, q.Requirements, q.Regions)
	f.InstanceTypes = q.InstanceTypes
	disk, diskOK := s.diskMiB(q.Requirements)
	if !spotOK || !diskOK {
		return nil, 0, 0, nil
	}
	total, maxPrice := 0, 0.0
	t.Query(f, func(r *catalog.Row) bool {
		// Checking the context every few thousand rows keeps a cancelled plan from scanning on.
		if total++; total%4096 == 0 && ctx.Err() != nil {
			return false
		}
		maxPrice = r.Price
		return true
	})
	if err := ctx.Err(); err != nil {
		return nil, 0, 0, err
	}
	if limit < 0 || limit > total {
		limit = total
	}
	out := make([]Offer, 0, limit)
	gpus := map[gpuKey][]GPU{}
	t.Query(f, func(r *catalog.Row) bool {
		if len(out) == limit {
			return false
		}
		size := disk
		if r.Disk > 0 {
			size = mib(float64(r.Disk))
		}
		out = append(out, Offer{
			Backend: s.backend,
			Instance: InstanceType{Name: t.Name(r), Resources: Resources{
				CPUs:      int(r.CPU),
				MemoryMiB: mib(float64(r.Memory)),
				GPUs:      gpuList(gpus, t, r),
				Spot:      r.Spot,
				Disk:      Disk{SizeMiB: size},
				CPUArch:   r.Arch.String(),
			}},
			Region:          t.Location(r),
			Price:           r.Price,
			Availability:    s.cfg.Availability,
			InstanceRuntime: s.cfg.Runtime,
			Blocks:          1,
			TotalBlocks:     1,
		})
		return true
	})
	return out, total, maxPrice, nil
}

// Explain counts what each filter stage leaves for q, including the profile's regions and
// instance types; the stages that cannot match at all (spot on a backend without spot, disk
// ranges that do not overlap) are reported as leaving nothing.
func (s *CatalogSource) Explain(ctx context.Context, q Query) ([]catalog.StageCount, error) {
	t, err := s.tables.TableFor(s.backend)
	if err != nil {
		return nil, err
	}
	f, spotOK := s.filter(t, q.Requirements, q.Regions)
	f.InstanceTypes = q.InstanceTypes
	funnel := t.Funnel(f)
	_, diskOK := s.diskMiB(q.Requirements)
	for i := range funnel {
		if st := funnel[i].Stage; st >= catalog.StageDisk && !diskOK || st >= catalog.StageSpot && !spotOK {
			funnel[i].Remaining = 0
		}
	}
	return funnel, nil
}

type gpuKey struct {
	name   string
	memory float32
	vendor catalog.Vendor
	count  uint8
}

// gpuList returns the row's GPUs, one entry per GPU as dstack lists them, sharing one slice among
// the offers with the same GPUs.
func gpuList(cache map[gpuKey][]GPU, t *catalog.Table, r *catalog.Row) []GPU {
	if r.GPUCount == 0 {
		return nil
	}
	k := gpuKey{t.GPUName(r), r.GPUMemory, r.Vendor, r.GPUCount}
	if g, ok := cache[k]; ok {
		return g
	}
	g := make([]GPU, r.GPUCount)
	for i := range g {
		g[i] = GPU{Name: k.name, MemoryMiB: mib(float64(k.memory)), Vendor: k.vendor.String()}
	}
	cache[k] = g
	return g
}

// filter translates requirements to a catalog filter, like dstack's requirements_to_query_filter.
// regions, when set, narrow the configured ones. It reports false when the backend cannot satisfy
// the spot requirement at all.
func (s *CatalogSource) filter(t *catalog.Table, req Requirements, regions []string) (*catalog.Filter, bool) {
	res := req.Resources
	f := &catalog.Filter{
		CPU:          res.CPU.Count,
		Memory:       res.Memory,
		Spot:         req.Spot,
		AllowedFlags: s.cfg.AllowedFlags,
	}
	if res.CPU.Arch != nil {
		f.CPUArch = *res.CPU.Arch
	}
	if g := res.GPU; g != nil {
		f.GPUNames, f.GPUCount, f.MinComputeCapability = g.Name, g.Count, g.ComputeCapability
		if g.Vendor != nil {
			f.GPUVendor = *g.Vendor
		}
		if g.Memory != nil {
			f.GPUMemory = *g.Memory
		}
		if g.TotalMemory != nil {
			f.TotalGPUMemory = *g.TotalMemory
		}
	}
	if res.Disk != nil {
		f.Disk = res.Disk.Size
	}
	if req.MaxPrice != nil {
		f.Price.Max = req.MaxPrice
	}
	spotOK := true
	if !s.cfg.Spot {
		spotOK = req.Spot == nil || !*req.Spot
		f.Spot = new(false)
	}
	f.Locations = s.locations(t, regions)
	return f, spotOK
}

// locations is the configured regions narrowed by regions and without the excluded ones; nil
// means all. A list that matches nothing is a one-element list no location has.
func (s *CatalogSource) locations(t *catalog.Table, regions []string) []string {
	if len(s.cfg.Regions) == 0 && len(regions) == 0 && len(s.cfg.ExcludeRegions) == 0 {
		return nil
	}
	var out []string
	for _, l := range t.Locations() {
		if (len(s.cfg.Regions) == 0 || containsFold(s.cfg.Regions, l)) &&
			(len(regions) == 0 || containsFold(regions, l)) && !containsFold(s.cfg.ExcludeRegions, l) {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		return []string{"\x00none"}
	}
	return out
}

// diskMiB is the disk for rows without a fixed size: the smallest in both the requirements and
// the backend's range (dstack's default 100GB.. when the requirements say nothing).
func (s *CatalogSource) diskMiB(req Requirements) (int, bool) {
	want := resources.DefaultDisk
	if req.Resources.Disk != nil {
		want = req.Resources.Disk.Size
	}
	r, ok := want.Intersect(s.cfg.Disk)
	if !ok || r.Min == nil {
		return 0, false
	}
	return mib(float64(*r.Min)), true
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
