package oci

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/oracle/oci-go-sdk/v65/common"
	"github.com/oracle/oci-go-sdk/v65/core"
	"github.com/oracle/oci-go-sdk/v65/identity"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/offers"
)

// Offers (spec §4.3) are the oci catalog's rows (spot rows are OCI's preemptible capacity) in
// the backend's regions — the configured ones, else the tenancy's subscribed regions that dstack
// supports — enriched per region with shape availability: identity ListAvailabilityDomains, then
// core ListShapes in each availability domain. A shape that some AD lists is available there (the
// offer's availability_zones are those ADs); one that no AD lists is not_available. The
// subscriptions and the shapes are cached for shapesTTL; errors are not cached and fail the call.

const shapesTTL = 10 * time.Minute

type cached[T any] struct {
	v  T
	at time.Time
}

func (c cached[T]) fresh(ttl time.Duration) bool { return !c.at.IsZero() && time.Since(c.at) < ttl }

type liveOffers struct {
	cfg     backends.Config
	catalog offers.Source

	sess backends.Lazy[*session]

	mu      sync.Mutex
	regions cached[[]string]
	shapes  map[string]cached[map[string][]string] // region -> shape -> ADs listing it
}

func newOffers(cfg backends.Config, tables offers.Tables) offers.Source {
	cc := offers.DefaultCatalogConfig(typ)
	cc.Regions = cfg.Strings("regions")
	if len(cc.Regions) == 0 {
		cc.Regions = Regions
	}
	return &liveOffers{cfg: cfg, catalog: offers.NewCatalogSource(typ, tables, cc), shapes: map[string]cached[map[string][]string]{}}
}

func (l *liveOffers) session() (*session, error) {
	return l.sess.Get(func() (*session, error) { return newSession(l.cfg, true) })
}

// workRegions are the backend's regions (see regionsFor), cached.
func (l *liveOffers) workRegions(ctx context.Context, s *session) ([]string, error) {
	l.mu.Lock()
	c := l.regions
	l.mu.Unlock()
	if c.fresh(shapesTTL) {
		return c.v, nil
	}
	subscribed, err := s.subscribedRegions(ctx)
	if err != nil {
		return nil, err
	}
	regions, err := regionsFor(l.cfg, subscribed)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.regions = cached[[]string]{regions, time.Now()}
	l.mu.Unlock()
	return regions, nil
}

func (l *liveOffers) Offers(ctx context.Context, req offers.Requirements) ([]offers.Offer, error) {
	list, err := l.catalog.Offers(ctx, req)
	if err != nil || len(list) == 0 {
		return list, err
	}
	s, err := l.session()
	if err != nil {
		return nil, err
	}
	regions, err := l.workRegions(ctx, s)
	if err != nil {
		return nil, err
	}
	var need []string
	for _, o := range list {
		if slices.Contains(regions, o.Region) && !slices.Contains(need, o.Region) {
			need = append(need, o.Region)
		}
	}
	sort.Strings(need)
	shapes, errs := backends.EachRegion(need, func(r string) (map[string][]string, error) {
		return l.shapesOf(ctx, s, r)
	})
	byRegion := map[string]map[string][]string{}
	for i, r := range need {
		if errs[i] != nil {
			return nil, fmt.Errorf("OCI offers in %s: %w", r, errs[i])
		}
		byRegion[r] = shapes[i]
	}
	out := make([]offers.Offer, 0, len(list))
	for _, o := range list {
		avail, ok := byRegion[o.Region]
		if !ok {
			continue // a region the tenancy does not subscribe to
		}
		if ads := avail[o.Instance.Name]; len(ads) > 0 {
			o.Availability = offers.Available
			o.AvailabilityZones = ads
		} else {
			o.Availability = offers.NotAvailable
		}
		out = append(out, o)
	}
	return out, nil
}

// compartmentForReads is where shapes and images are listed: compartment_id, else the tenancy
// (the root compartment), so that offers never create anything.
func compartmentForReads(cfg backends.Config, s *session) string {
	if id := cfg.String("compartment_id"); id != "" {
		return id
	}
	return s.tenancy
}

// shapesOf maps each shape of a region to the availability domains that list it.
func (l *liveOffers) shapesOf(ctx context.Context, s *session, region string) (map[string][]string, error) {
	l.mu.Lock()
	c := l.shapes[region]
	l.mu.Unlock()
	if c.fresh(shapesTTL) {
		return c.v, nil
	}
	ads, err := s.availabilityDomains(ctx, region)
	if err != nil {
		return nil, err
	}
	cc, err := s.computeClient(region)
	if err != nil {
		return nil, err
	}
	compartment := compartmentForReads(l.cfg, s)
	out := map[string][]string{}
	for _, ad := range ads {
		req := core.ListShapesRequest{CompartmentId: common.String(compartment), AvailabilityDomain: common.String(ad)}
		for {
			resp, err := cc.ListShapes(sdkCtx(ctx), req)
			if err != nil {
				return nil, s.mapError(region, "ListShapes", err)
			}
			for _, sh := range resp.Items {
				if sh.Shape != nil && !slices.Contains(out[*sh.Shape], ad) {
					out[*sh.Shape] = append(out[*sh.Shape], ad)
				}
			}
			if resp.OpcNextPage == nil {
				break
			}
			req.Page = resp.OpcNextPage
		}
	}
	l.mu.Lock()
	l.shapes[region] = cached[map[string][]string]{out, time.Now()}
	l.mu.Unlock()
	return out, nil
}

// availabilityDomains lists a region's ADs by name, sorted.
func (s *session) availabilityDomains(ctx context.Context, region string) ([]string, error) {
	ic, err := s.identityClient(region)
	if err != nil {
		return nil, err
	}
	resp, err := ic.ListAvailabilityDomains(sdkCtx(ctx), identity.ListAvailabilityDomainsRequest{CompartmentId: common.String(s.tenancy)})
	if err != nil {
		return nil, s.mapError(region, "ListAvailabilityDomains", err)
	}
	var out []string
	for _, ad := range resp.Items {
		if ad.Name != nil {
			out = append(out, *ad.Name)
		}
	}
	sort.Strings(out)
	return out, nil
}
