package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/fleets"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/offers"
	"github.com/dstackgo/dstack/internal/runs"
	"github.com/dstackgo/dstack/internal/store"
)

// SetPublicURL tells the server how machines reach it (DSTACK_SERVER_URL, else its listening
// address): cloud machines download dstack-shim from it.
func (s *Server) SetPublicURL(url string) {
	s.mu.Lock()
	s.publicURL = strings.TrimRight(url, "/")
	s.mu.Unlock()
}

func (s *Server) shimURL(arch string) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.publicURL == "" {
		return ""
	}
	return s.publicURL + "/api/agents/dstack-shim/linux-" + arch
}

// computeFor returns the machine operations of a project's backend, made once per backend record
// and config (computes cache what they learn, such as registered SSH keys).
func (s *Server) computeFor(ctx context.Context, projectID, typ string) (backends.Compute, error) {
	b, err := s.store.GetBackend(ctx, projectID, typ)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%s: %w", typ, fleets.ErrNoBackend)
	}
	if err != nil {
		return nil, err
	}
	return s.computeOf(b)
}

func (s *Server) computeOf(b *models.Backend) (backends.Compute, error) {
	d, ok := backends.Lookup(b.Type)
	if !ok || d.NewCompute == nil {
		return nil, fmt.Errorf("this server cannot create machines on %s", b.Type)
	}
	key := b.ID + "\x00" + b.Config + "\x00" + b.Auth
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.computes[key]; ok {
		return c, nil
	}
	cfg, err := configOf(b)
	if err != nil {
		return nil, fmt.Errorf("cannot read the %s backend's config: %w", b.Type, err)
	}
	c, err := d.NewCompute(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Type, err)
	}
	if s.computes == nil {
		s.computes = map[string]backends.Compute{}
	}
	for k := range s.computes {
		if strings.HasPrefix(k, b.ID+"\x00") {
			delete(s.computes, k) // the backend's config changed
		}
	}
	s.computes[key] = c
	return c, nil
}

// jobOffers are the offers a job tries, in order: the plan's available offers of backends this
// server can create machines on (recent capacity refusals are not available), at most limit.
func (s *Server) jobOffers(ctx context.Context, projectID string, q offers.Query, limit int) ([]offers.Offer, string, error) {
	res, err := s.PlanOffers(ctx, projectID, q, limit)
	if err != nil {
		return nil, "", err
	}
	var out []offers.Offer
	for _, o := range res.Offers {
		if d, ok := backends.Lookup(o.Backend); !ok || d.NewCompute == nil {
			continue
		}
		if o.Availability.IsAvailable() && o.Availability != offers.Idle {
			out = append(out, o)
		}
	}
	if len(out) > 0 {
		return out, "", nil
	}
	why := res.Explanation
	if why == "" && res.Total > 0 {
		why = fmt.Sprintf("none of the %d matching offers is available now", res.Total)
	}
	for _, n := range res.Notes {
		if n.Kind == offers.NoteFailed || n.Kind == offers.NoteTimedOut {
			why += fmt.Sprintf("; %s: %s", n.Backend, n.Message)
		}
	}
	return nil, strings.TrimPrefix(why, "; "), nil
}

// cloudBackends lists every project's backends this server can create machines on, for the
// orphan reconciler.
func (s *Server) cloudBackends(ctx context.Context) ([]fleets.CloudBackend, error) {
	projects, err := s.store.ListProjects(ctx)
	if err != nil {
		return nil, err
	}
	var out []fleets.CloudBackend
	for _, p := range projects {
		list, err := s.store.ListBackends(ctx, p.ID)
		if err != nil {
			return nil, err
		}
		for _, b := range list {
			if b.Status == models.BackendInvalid {
				continue
			}
			c, err := s.computeOf(b)
			if err != nil {
				continue
			}
			out = append(out, fleets.CloudBackend{ProjectID: p.ID, ProjectName: p.Name, Type: b.Type, Compute: c})
		}
	}
	return out, nil
}

// OrphanReport says what the orphan reconciler has done.
func (s *Server) OrphanReport() fleets.OrphanReport {
	return s.work().orphans.Report()
}

// capacityMarked marks the offers a provider refused recently for want of capacity not_available.
type capacityMarked struct {
	offers.Source
	mem *runs.CapacityMemory
}

func (c capacityMarked) Offers(ctx context.Context, req offers.Requirements) ([]offers.Offer, error) {
	list, err := c.Source.Offers(ctx, req)
	out := make([]offers.Offer, len(list)) // the source's list may be its cache
	for i, o := range list {
		if c.mem.Recent(o) {
			o.Availability = offers.NotAvailable
		}
		out[i] = o
	}
	return out, err
}
