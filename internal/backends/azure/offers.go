package azure

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v7"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/offers"
)

// Offers (spec §4.3) are the azure catalog's rows in the configured locations (Locations when
// none), enriched with the Resource SKUs API (GET .../providers/Microsoft.Compute/skus, filtered
// by location): a VM size the location lists without a Location restriction keeps the catalog's
// availability (a Zone restriction leaves other zones); one restricted NotAvailableForSubscription,
// or not listed at all, is not_available; one restricted QuotaId is no_quota. Each location's list
// is cached for skuTTL (the list is large and slow: dstack saw plans take up to a minute); errors
// are not cached and fail the call.

const skuTTL = 10 * time.Minute

// skuState is what the SKU list says of a VM size in a location.
type skuState struct {
	availability offers.Availability // "" keeps the catalog's
}

type liveOffers struct {
	cfg     backends.Config
	catalog offers.Source
	cs      cachedSession

	mu   sync.Mutex
	skus map[string]cached[map[string]skuState] // location -> lower-case size name -> state
}

func newOffers(cfg backends.Config, tables offers.Tables) offers.Source {
	cc := offers.DefaultCatalogConfig(typ)
	cc.Regions = regionsOf(cfg)
	return &liveOffers{cfg: cfg, catalog: offers.NewCatalogSource(typ, tables, cc), cs: cachedSession{cfg: cfg},
		skus: map[string]cached[map[string]skuState]{}}
}

func (l *liveOffers) Offers(ctx context.Context, req offers.Requirements) ([]offers.Offer, error) {
	list, err := l.catalog.Offers(ctx, req)
	if err != nil || len(list) == 0 {
		return list, err
	}
	s, err := l.cs.get()
	if err != nil {
		return nil, err
	}
	var locs []string
	seen := map[string]bool{}
	for _, o := range list {
		if !seen[o.Region] {
			seen[o.Region] = true
			locs = append(locs, o.Region)
		}
	}
	sort.Strings(locs)
	states, errs := backends.EachRegion(locs, func(loc string) (map[string]skuState, error) {
		return l.skusOf(ctx, s, loc)
	})
	byLoc := map[string]map[string]skuState{}
	for i, loc := range locs {
		if errs[i] != nil {
			return nil, fmt.Errorf("Azure offers in %s: %w", loc, errs[i])
		}
		byLoc[loc] = states[i]
	}
	out := make([]offers.Offer, 0, len(list))
	for _, o := range list {
		st, listed := byLoc[o.Region][strings.ToLower(o.Instance.Name)]
		switch {
		case !listed:
			o.Availability = offers.NotAvailable
		case st.availability != "":
			o.Availability = st.availability
		}
		out = append(out, o)
	}
	return out, nil
}

// skusOf returns the VM sizes a location lists, with their restrictions.
func (l *liveOffers) skusOf(ctx context.Context, s *session, loc string) (map[string]skuState, error) {
	l.mu.Lock()
	c, ok := l.skus[loc]
	l.mu.Unlock()
	if ok && time.Since(c.at) < skuTTL {
		return c.v, nil
	}
	out := map[string]skuState{}
	p := s.skus.NewListPager(&armcompute.ResourceSKUsClientListOptions{Filter: to.Ptr("location eq '" + loc + "'")})
	for p.More() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.mapError(ctx, loc+" resource SKUs", err)
		}
		for _, sku := range page.Value {
			if sku == nil || !strings.EqualFold(deref(sku.ResourceType, ""), "virtualMachines") || sku.Name == nil {
				continue
			}
			out[strings.ToLower(*sku.Name)] = skuState{availability: restriction(sku, loc)}
		}
	}
	l.mu.Lock()
	l.skus[loc] = cached[map[string]skuState]{out, time.Now()}
	l.mu.Unlock()
	return out, nil
}

// restriction is the availability a size's Location restrictions in loc give, "" for none.
func restriction(sku *armcompute.ResourceSKU, loc string) offers.Availability {
	for _, r := range sku.Restrictions {
		if r == nil || deref(r.Type, "") != armcompute.ResourceSKURestrictionsTypeLocation {
			continue
		}
		applies := len(r.Values) == 0
		for _, v := range r.Values {
			applies = applies || strings.EqualFold(deref(v, ""), loc)
		}
		if !applies {
			continue
		}
		if deref(r.ReasonCode, "") == armcompute.ResourceSKURestrictionsReasonCodeQuotaID {
			return offers.NoQuota
		}
		return offers.NotAvailable
	}
	return ""
}
