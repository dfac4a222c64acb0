package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/offers"
)

// planTimeout bounds how long a plan waits for backends; a slower one is reported, not waited for.
const planTimeout = 5 * time.Second

// SetCatalog gives the server the price catalogs that backends build their offers from.
func (s *Server) SetCatalog(t offers.Tables) {
	s.mu.Lock()
	s.catalog = t
	s.mu.Unlock()
}

func (s *Server) tables() offers.Tables {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.catalog
}

// PlanOffers gathers the offers of a project's backends for q: cheapest first, available ones first,
// at most maxOffers, with notes on every backend that was left out or had nothing, and why.
func (s *Server) PlanOffers(ctx context.Context, projectID string, q offers.Query, maxOffers int) (offers.PlanResult, error) {
	stored, err := s.store.ListBackends(ctx, projectID)
	if err != nil {
		return offers.PlanResult{}, err
	}
	sources := map[string]offers.Source{}
	var skipped []offers.BackendNote
	tables := s.tables()
	for _, b := range stored {
		if b.Status == models.BackendInvalid {
			skipped = append(skipped, offers.BackendNote{Backend: b.Type, Kind: offers.NoteFailed,
				Message: "left out: its credentials are invalid (" + b.StatusMessage + ")"})
			continue
		}
		if tables == nil {
			skipped = append(skipped, offers.BackendNote{Backend: b.Type, Kind: offers.NoteNoCatalog,
				Message: "no price catalog is loaded on this server"})
			continue
		}
		src, err := s.offerSource(b, tables)
		if err != nil {
			skipped = append(skipped, offers.BackendNote{Backend: b.Type, Kind: offers.NoteFailed, Message: err.Error()})
			continue
		}
		if s.capacity.Any(b.Type) {
			src = capacityMarked{src, s.capacity}
		}
		sources[b.Type] = src
	}
	ctx, cancel := context.WithTimeout(ctx, planTimeout)
	defer cancel()
	res := offers.Plan(ctx, sources, q, maxOffers)
	res.Notes = append(res.Notes, skipped...)
	if len(stored) == 0 && res.Explanation == "" {
		res.Explanation = "no offers: the project has no backends; add one in config.yml or with `backends/create_yaml`"
	}
	return res, nil
}

// Live offers are kept this long and served stale while a refresh runs; a provider that does not answer
// within liveOffersTimeout is reported in the plan instead of holding it up.
const (
	liveOffersTTL     = 2 * time.Minute
	liveOffersTimeout = 3 * time.Second
)

// offerSource is a backend's source of offers: its provider's live query when it has one (cached,
// stale-while-revalidate), else its catalog. Cached sources are kept per backend record and config, so
// that their caches outlive a request.
func (s *Server) offerSource(b *models.Backend, tables offers.Tables) (offers.Source, error) {
	d, ok := backends.Lookup(b.Type)
	if !ok || d.NewOffers == nil {
		return catalogSource(b, tables), nil
	}
	key := b.ID + "\x00" + b.Config + "\x00" + b.Auth
	s.mu.Lock()
	defer s.mu.Unlock()
	if src, ok := s.live[key]; ok {
		return src, nil
	}
	cfg, err := configOf(b)
	if err != nil {
		return nil, fmt.Errorf("cannot read the backend's config: %w", err)
	}
	src := offers.Cached(d.NewOffers(cfg, tables), liveOffersTTL, liveOffersTimeout)
	if s.live == nil {
		s.live = map[string]offers.Source{}
	}
	for k := range s.live {
		if strings.HasPrefix(k, b.ID+"\x00") {
			delete(s.live, k) // the backend's config changed
		}
	}
	s.live[key] = src
	return src, nil
}

// catalogSource turns a stored backend into its offer source, honouring the backend's config:
// its regions and, for RunPod, whether Community Cloud may be used.
func catalogSource(b *models.Backend, tables offers.Tables) offers.Source {
	var cfg struct {
		Regions        []string `json:"regions"`
		CommunityCloud *bool    `json:"community_cloud"`
	}
	_ = json.Unmarshal([]byte(b.Config), &cfg)
	cc := offers.DefaultCatalogConfig(b.Type)
	cc.Regions = cfg.Regions
	var src offers.Source = offers.NewCatalogSource(b.Type, tables, cc)
	if b.Type == "runpod" && cfg.CommunityCloud != nil && !*cfg.CommunityCloud {
		src = filtered{src, secureCloud}
	}
	return src
}

// secureCloud tells RunPod Secure Cloud offers: their regions are datacenter ids such as CA-MTL-3
// (Community Cloud ones are country codes), and catalogs derived from SkyPilot's name them *_SECURE.
func secureCloud(o offers.Offer) bool {
	return strings.Contains(o.Region, "-") || strings.HasSuffix(strings.ToUpper(o.Instance.Name), "_SECURE")
}

// filtered drops the offers of a source that keep refuses.
type filtered struct {
	offers.Source
	keep func(offers.Offer) bool
}

func (f filtered) Offers(ctx context.Context, req offers.Requirements) ([]offers.Offer, error) {
	all, err := f.Source.Offers(ctx, req)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, o := range all {
		if f.keep(o) {
			out = append(out, o)
		}
	}
	return out, nil
}
