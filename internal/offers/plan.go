package offers

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/dstackgo/dstack/internal/catalog"
	"github.com/dstackgo/dstack/internal/resources"
)

// NoteKind says why a backend contributed nothing (or something unusual) to a plan.
type NoteKind string

// Note kinds.
const (
	// NoteExcluded: left out by the profile's backends filter.
	NoteExcluded NoteKind = "excluded"
	// NoteNotConfigured: named by the backends filter, but the project has no such backend.
	NoteNotConfigured NoteKind = "not_configured"
	NoteFailed        NoteKind = "failed"
	NoteTimedOut      NoteKind = "timed_out"
	// NoteNoCatalog: the backend's catalog is not loaded (or lacks the provider).
	NoteNoCatalog NoteKind = "no_catalog"
	// NoteNoOffers: the backend answered, with nothing that matches.
	NoteNoOffers NoteKind = "no_offers"
	// NoteStale: offers were used, but they are old because refreshing them failed.
	NoteStale NoteKind = "stale"
)

// BackendNote is one backend's note in a plan.
type BackendNote struct {
	Backend string   `json:"backend"`
	Kind    NoteKind `json:"kind"`
	Message string   `json:"message"`
}

// PlanResult is a plan's offers: available ones first, each group by price, at most maxOffers.
// Total and MaxPrice cover all matching offers before truncation.
type PlanResult struct {
	Offers   []Offer
	Total    int
	MaxPrice float64
	// Notes, sorted by backend, say which backends were left out, failed or had nothing.
	Notes []BackendNote
	// Explanation, set when there are no offers at all, says which filter removed everything.
	Explanation string
}

// Plan asks every source (keyed by backend type) for offers at once, applies the profile's filters,
// merges the lists by price, puts available offers first (keeping price order within each group)
// and keeps the first maxOffers (all when maxOffers <= 0). A source that fails, has no catalog or
// has not answered when ctx ends is noted and skipped; it never fails the plan.
func Plan(ctx context.Context, sources map[string]Source, q Query, maxOffers int) PlanResult {
	var res PlanResult
	backends := q.Backends
	if len(backends) == 1 && backends[0] == "dstack" {
		backends = nil
	}
	var asked []string
	for _, name := range sortedKeys(sources) {
		if backends != nil && !slices.Contains(backends, name) {
			res.Notes = append(res.Notes, BackendNote{name, NoteExcluded, "not in the backends filter"})
			continue
		}
		asked = append(asked, name)
	}
	for _, b := range backends {
		if _, ok := sources[b]; !ok {
			res.Notes = append(res.Notes, BackendNote{b, NoteNotConfigured, "in the backends filter but not configured"})
		}
	}

	lists := fetchAll(ctx, sources, asked, q, maxOffers, &res.Notes)
	var cursors mergeHeap
	for i, l := range lists {
		res.Total += l.total
		res.MaxPrice = max(res.MaxPrice, l.maxPrice)
		if len(l.offers) > 0 {
			cursors = append(cursors, &cursor{list: l.offers, rank: i})
		}
	}
	res.Offers = merge(cursors, res.Total, maxOffers)
	if res.Total == 0 {
		res.Explanation = explain(ctx, sources, asked, q, res.Notes)
	}
	sort.SliceStable(res.Notes, func(i, j int) bool { return res.Notes[i].Backend < res.Notes[j].Backend })
	return res
}

// backendOffers is one backend's filtered offers, sorted by price: all of them, or the cheapest
// ones of a TopSource, with the count and highest price of all.
type backendOffers struct {
	offers   []Offer
	total    int
	maxPrice float64
}

// fetchAll queries the sources concurrently; backends with a note have no offers.
func fetchAll(ctx context.Context, sources map[string]Source, asked []string, q Query, limit int, notes *[]BackendNote) []backendOffers {
	type answer struct {
		i int
		backendOffers
		err error
	}
	ch := make(chan answer, len(asked))
	for i, name := range asked {
		go func() {
			defer func() {
				if p := recover(); p != nil {
					ch <- answer{i: i, err: fmt.Errorf("panic: %v", p)}
				}
			}()
			if top, ok := sources[name].(TopSource); ok && limit > 0 {
				offers, total, maxPrice, err := top.Top(ctx, q, limit)
				ch <- answer{i, backendOffers{offers, total, maxPrice}, err}
				return
			}
			offers, err := sources[name].Offers(ctx, q.Requirements)
			if err == nil || errors.As(err, new(*StaleError)) {
				offers = sortByPrice(postFilter(offers, q))
			}
			var maxPrice float64
			if len(offers) > 0 {
				maxPrice = offers[len(offers)-1].Price
			}
			ch <- answer{i, backendOffers{offers, len(offers), maxPrice}, err}
		}()
	}
	lists := make([]backendOffers, len(asked))
	answered := make([]bool, len(asked))
wait:
	for range asked {
		select {
		case a := <-ch:
			answered[a.i] = true
			name := asked[a.i]
			var stale *StaleError
			switch {
			case errors.As(a.err, &stale):
				*notes = append(*notes, BackendNote{name, NoteStale, stale.Error()})
			case errors.Is(a.err, catalog.ErrNotLoaded), errors.Is(a.err, catalog.ErrNoProvider):
				*notes = append(*notes, BackendNote{name, NoteNoCatalog, a.err.Error()})
				continue
			case errors.Is(a.err, ErrTimeout), errors.Is(a.err, context.DeadlineExceeded):
				*notes = append(*notes, BackendNote{name, NoteTimedOut, a.err.Error()})
				continue
			case a.err != nil:
				*notes = append(*notes, BackendNote{name, NoteFailed, a.err.Error()})
				continue
			}
			lists[a.i] = a.backendOffers
			if a.total == 0 {
				*notes = append(*notes, BackendNote{name, NoteNoOffers, "no offers match"})
			}
		case <-ctx.Done():
			break wait
		}
	}
	for i, ok := range answered {
		if !ok {
			*notes = append(*notes, BackendNote{asked[i], NoteTimedOut, "no answer before the plan's deadline"})
		}
	}
	return lists
}

// postFilter applies the profile's regions, availability zones and instance types. The source's
// slice is shared, so a filtered list is a new one; an offer whose zones are narrowed is a copy.
func postFilter(offers []Offer, q Query) []Offer {
	if len(q.Regions) == 0 && len(q.AvailabilityZones) == 0 && len(q.InstanceTypes) == 0 {
		return offers
	}
	var out []Offer
	for _, o := range offers {
		if len(q.Regions) > 0 && !containsFold(q.Regions, o.Region) ||
			len(q.InstanceTypes) > 0 && !containsFold(q.InstanceTypes, o.Instance.Name) {
			continue
		}
		if len(q.AvailabilityZones) > 0 && o.AvailabilityZones != nil {
			var zones []string
			for _, z := range o.AvailabilityZones {
				if slices.Contains(q.AvailabilityZones, z) {
					zones = append(zones, z)
				}
			}
			if len(zones) == 0 {
				continue
			}
			o.AvailabilityZones = zones
		}
		out = append(out, o)
	}
	return out
}

func byPrice(a, b Offer) int { return cmp.Compare(a.Price, b.Price) }

// sortByPrice returns the list sorted by price, copying it only when it is not sorted already.
func sortByPrice(list []Offer) []Offer {
	if slices.IsSortedFunc(list, byPrice) {
		return list
	}
	list = slices.Clone(list)
	slices.SortStableFunc(list, byPrice)
	return list
}

// cursor walks one backend's sorted list; rank orders equal prices by backend name.
type cursor struct {
	list []Offer
	pos  int
	rank int
}

type mergeHeap []*cursor

func (h mergeHeap) Len() int { return len(h) }
func (h mergeHeap) Less(i, j int) bool {
	a, b := h[i].list[h[i].pos].Price, h[j].list[h[j].pos].Price
	return a < b || a == b && h[i].rank < h[j].rank
}
func (h mergeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)   { *h = append(*h, x.(*cursor)) }
func (h *mergeHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

// merge takes offers in price order across the lists, available ones first. It stops as soon as
// it holds limit available offers, since nothing after them can make the cut.
func merge(h mergeHeap, total, limit int) []Offer {
	if limit <= 0 || limit > total {
		limit = total
	}
	heap.Init(&h)
	avail := make([]Offer, 0, limit)
	var unavail []Offer
	for h.Len() > 0 && len(avail) < limit {
		c := h[0]
		o := c.list[c.pos]
		if o.Availability.IsAvailable() {
			avail = append(avail, o)
		} else if len(unavail) < limit {
			unavail = append(unavail, o)
		}
		if c.pos++; c.pos == len(c.list) {
			heap.Pop(&h)
		} else {
			heap.Fix(&h, 0)
		}
	}
	return append(avail, unavail[:min(len(unavail), limit-len(avail))]...)
}

// explain says why a plan has no offers: which filter stage removed the last candidates across the
// catalogs, and which backends could not answer.
func explain(ctx context.Context, sources map[string]Source, asked []string, q Query, notes []BackendNote) string {
	if len(sources) == 0 {
		return "no offers: the project has no backends"
	}
	if len(asked) == 0 {
		return fmt.Sprintf("no offers: the backends filter [%s] matches none of the project's backends (%s)",
			strings.Join(q.Backends, ", "), strings.Join(sortedKeys(sources), ", "))
	}
	var trouble []string
	skip := map[string]bool{}
	for _, n := range notes {
		switch n.Kind {
		case NoteFailed, NoteTimedOut, NoteNoCatalog:
			trouble = append(trouble, n.Backend+" "+strings.ReplaceAll(string(n.Kind), "_", " ")+": "+n.Message)
			skip[n.Backend] = true
		}
	}
	totals := make([]int, catalog.NumStages)
	explained := false
	for _, name := range asked {
		ex, ok := sources[name].(Explainer)
		if !ok || skip[name] {
			continue
		}
		funnel, err := ex.Explain(ctx, q)
		if err != nil {
			continue
		}
		explained = true
		for _, s := range funnel {
			totals[s.Stage] += s.Remaining
		}
	}
	msg := "no offers"
	if explained {
		msg += ": " + funnelText(totals, q)
	} else if len(trouble) == 0 {
		msg += ": no backend returned any that match"
	}
	if len(trouble) > 0 {
		msg += "; " + strings.Join(trouble, "; ")
	}
	return msg
}

// stageLabel describes a catalog.Stage with the query's values.
func stageLabel(s catalog.Stage, q Query) string {
	res := q.Resources
	g := res.GPU
	if g == nil {
		g = &resources.GPUSpec{}
	}
	switch s {
	case catalog.StageGPU:
		var parts []string
		if g.Vendor != nil {
			parts = append(parts, *g.Vendor)
		}
		if len(g.Name) > 0 {
			parts = append(parts, strings.Join(g.Name, ","))
		}
		if g.ComputeCapability != nil {
			parts = append(parts, "compute capability "+g.ComputeCapability.String()+"+")
		}
		return "gpu " + strings.Join(parts, " ")
	case catalog.StageGPUCount:
		return "gpu count " + g.Count.String()
	case catalog.StageGPUMemory:
		var parts []string
		if g.Memory != nil {
			parts = append(parts, "gpu memory "+g.Memory.String())
		}
		if g.TotalMemory != nil {
			parts = append(parts, "total gpu memory "+g.TotalMemory.String())
		}
		return strings.Join(parts, ", ")
	case catalog.StageCPU:
		return "cpu " + res.CPU.String()
	case catalog.StageMemory:
		return "memory " + res.Memory.String()
	case catalog.StageDisk:
		if res.Disk == nil {
			return "disk (the backends' range)"
		}
		return "disk " + res.Disk.Size.String()
	case catalog.StageSpot:
		if q.Spot != nil && *q.Spot {
			return "spot"
		}
		return "on-demand"
	case catalog.StagePrice:
		if q.MaxPrice != nil {
			return "max_price " + strconv.FormatFloat(*q.MaxPrice, 'f', -1, 64)
		}
	case catalog.StageLocation:
		if len(q.Regions) == 0 {
			return "configured regions"
		}
		return "regions " + strings.Join(q.Regions, ",")
	case catalog.StageInstanceType:
		return "instance_types " + strings.Join(q.InstanceTypes, ",")
	}
	return s.String()
}

// funnelText renders stage totals as "max_price 0.5 removed the last 40 of 9574 catalog rows
// (gpu A100: 412 → gpu count 8: 40 → max_price 0.5: 0)".
func funnelText(totals []int, q Query) string {
	rows := totals[catalog.StageFlags]
	if rows == 0 {
		return "the catalogs have no rows"
	}
	prev := rows
	var chain []string
	for s := catalog.StageGPU; int(s) < len(totals); s++ {
		n := totals[s]
		if n == prev {
			continue
		}
		label := stageLabel(s, q)
		chain = append(chain, label+": "+strconv.Itoa(n))
		if n == 0 {
			return fmt.Sprintf("%s removed the last %d of %d catalog rows (%s)", label, prev, rows,
				strings.Join(chain, " → "))
		}
		prev = n
	}
	if len(q.AvailabilityZones) > 0 {
		return fmt.Sprintf("%d catalog rows match, but the availability_zones filter [%s] removed them",
			prev, strings.Join(q.AvailabilityZones, ","))
	}
	return fmt.Sprintf("%d catalog rows match, but no backend returned them", prev)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
