package gcp

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/offers"
)

// Offers (spec §4.3) are the gcp catalog's rows, whose locations are zones, folded into one offer
// per region, instance type (with its GPUs) and spot, whose availability_zones are the zones that
// sell it, in the configured regions (DefaultRegions when none). regions.get gives each region's
// zones and quotas: an offer with GPUs whose region quota (NVIDIA_<GPU>_GPUS, NVIDIA_A100_80GB_GPUS,
// PREEMPTIBLE_... for spot) has less room (limit - usage) than its GPUs is no_quota; the others
// stay unknown, as dstack leaves them. Regions are cached for quotaTTL; errors are not cached and
// fail the call. TPU rows (tpu.go) become offers when they are single-host slices of a known
// generation; regions.get has no TPU quotas, so their availability stays unknown.

const quotaTTL = 10 * time.Minute

type regionInfo struct {
	zones  map[string]bool
	quotas map[string]float64 // metric -> room (limit - usage)
	at     time.Time
}

type liveOffers struct {
	cfg     backends.Config
	catalog offers.Source

	sess backends.Lazy[*session]

	mu      sync.Mutex
	regions map[string]regionInfo
}

func newOffers(cfg backends.Config, tables offers.Tables) offers.Source {
	// The catalog's locations are zones, so the regions are applied here rather than by the catalog.
	return &liveOffers{cfg: cfg, catalog: offers.NewCatalogSource(typ, tables, offers.DefaultCatalogConfig(typ)),
		regions: map[string]regionInfo{}}
}

// regionsOf is the configured regions, or DefaultRegions.
func regionsOf(cfg backends.Config) []string {
	if r := cfg.Strings("regions"); len(r) > 0 {
		return r
	}
	return DefaultRegions
}

// regionOfZone is the region of a zone: us-central1-a → us-central1.
func regionOfZone(zone string) string {
	if i := strings.LastIndex(zone, "-"); i > 0 {
		return zone[:i]
	}
	return zone
}

func (l *liveOffers) session(ctx context.Context) (*session, error) {
	return l.sess.Get(func() (*session, error) { return newSession(ctx, l.cfg, true) })
}

// offerKey tells region offers apart: the type, its GPUs and spot.
func offerKey(o offers.Offer, region string) string {
	r := o.Instance.Resources
	k := fmt.Sprintf("%s|%s|%v|%d", region, o.Instance.Name, r.Spot, len(r.GPUs))
	if len(r.GPUs) > 0 {
		k += fmt.Sprintf("|%s|%d", r.GPUs[0].Name, r.GPUs[0].MemoryMiB)
	}
	return k
}

func isTPU(o offers.Offer) bool {
	gpus := o.Instance.Resources.GPUs
	return len(gpus) > 0 && strings.EqualFold(gpus[0].Vendor, "google")
}

func (l *liveOffers) Offers(ctx context.Context, req offers.Requirements) ([]offers.Offer, error) {
	list, err := l.catalog.Offers(ctx, req)
	if err != nil || len(list) == 0 {
		return list, err
	}
	wanted := map[string]bool{}
	for _, r := range regionsOf(l.cfg) {
		wanted[strings.ToLower(r)] = true
	}
	// Fold the zone rows (cheapest first) into region offers.
	var folded []offers.Offer
	byKey := map[string]int{}
	var regions []string
	for _, o := range list {
		region := regionOfZone(o.Region)
		if !wanted[strings.ToLower(region)] || isTPU(o) && !offerableTPU(o) {
			continue
		}
		key := offerKey(o, region)
		if i, ok := byKey[key]; ok {
			folded[i].AvailabilityZones = append(folded[i].AvailabilityZones, o.Region)
			continue
		}
		if !contains(regions, region) {
			regions = append(regions, region)
		}
		zone := o.Region
		o.Region = region
		o.AvailabilityZones = []string{zone}
		byKey[key] = len(folded)
		folded = append(folded, o)
	}
	if len(folded) == 0 {
		return nil, nil
	}
	s, err := l.session(ctx)
	if err != nil {
		return nil, err
	}
	sort.Strings(regions)
	infos, errs := backends.EachRegion(regions, func(r string) (regionInfo, error) {
		return l.region(ctx, s, r)
	})
	info := map[string]regionInfo{}
	for i, r := range regions {
		if errs[i] != nil {
			return nil, errs[i]
		}
		info[r] = infos[i]
	}
	out := make([]offers.Offer, 0, len(folded))
	for _, o := range folded {
		ri := info[o.Region]
		var zones []string
		for _, z := range o.AvailabilityZones {
			if ri.zones[z] {
				zones = append(zones, z)
			}
		}
		if len(zones) == 0 {
			continue // the catalog's zones are not (or no longer) the region's
		}
		o.AvailabilityZones = zones
		if metric := QuotaMetric(o.Instance.Resources); metric != "" && ri.quotas[metric] < float64(len(o.Instance.Resources.GPUs)) {
			o.Availability = offers.NoQuota
		}
		out = append(out, o)
	}
	return out, nil
}

// QuotaMetric is the region quota an instance's GPUs count against ("" without GPUs, and for
// TPUs, whose quotas are the Cloud TPU API's): NVIDIA_<GPU>_GPUS, NVIDIA_A100_80GB_GPUS for 80 GB
// A100s, with PREEMPTIBLE_ for spot.
func QuotaMetric(r offers.Resources) string {
	if len(r.GPUs) == 0 || strings.EqualFold(r.GPUs[0].Vendor, "google") {
		return ""
	}
	g := r.GPUs[0]
	m := "NVIDIA_" + strings.ToUpper(g.Name) + "_GPUS"
	if strings.EqualFold(g.Name, "A100") && g.MemoryMiB >= 80*1024 {
		m = "NVIDIA_A100_80GB_GPUS"
	}
	if r.Spot {
		m = "PREEMPTIBLE_" + m
	}
	return m
}

// region returns a region's zones (those UP) and quota room, cached for quotaTTL.
func (l *liveOffers) region(ctx context.Context, s *session, name string) (regionInfo, error) {
	l.mu.Lock()
	ri, ok := l.regions[name]
	l.mu.Unlock()
	if ok && time.Since(ri.at) < quotaTTL {
		return ri, nil
	}
	ri, err := fetchRegion(ctx, s, name)
	if err != nil {
		return ri, err
	}
	l.mu.Lock()
	l.regions[name] = ri
	l.mu.Unlock()
	return ri, nil
}

func fetchRegion(ctx context.Context, s *session, name string) (regionInfo, error) {
	ri := regionInfo{zones: map[string]bool{}, quotas: map[string]float64{}, at: time.Now()}
	err := s.do(ctx, func() error {
		r, err := s.svc.Regions.Get(s.project, name).Context(ctx).Do()
		if err != nil {
			return err
		}
		for _, z := range r.Zones {
			ri.zones[path.Base(z)] = true
		}
		for _, q := range r.Quotas {
			ri.quotas[q.Metric] = q.Limit - q.Usage
		}
		return nil
	})
	if err != nil {
		return ri, s.mapError("regions.get "+name, err)
	}
	return ri, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
