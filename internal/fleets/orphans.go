package fleets

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/store"
)

// ProviderName is the name a machine is created under (before the backend's dstack-<project>-
// prefix): the instance's name and the server's id, so that the orphan reconciler can tell this
// server's machines from anyone else's, even at providers without tags.
func ProviderName(instanceName, serverID string) string {
	if serverID == "" {
		return instanceName
	}
	return instanceName + "-" + serverID
}

// CloudBackend is one backend of one project, for the reconciler.
type CloudBackend struct {
	ProjectID, ProjectName, Type string
	Compute                      backends.Compute
}

// Reconciler is the orphan reconciler (dstack has none): a machine that this server created at a
// provider but whose instance the database does not know (the server died between the provider's
// answer and the record, or a termination was lost) would run, and bill, for ever. Each pass lists
// the machines of every backend whose Compute can list them, keeps those carrying this server's
// mark (the dstack_server tag, or, at providers without tags (Lambda, RunPod), a name
// dstack-<project>-<instance>-<server id>, see ProviderName), and
// terminates those that no instance (not yet terminated, in any project) has as its machine, once
// they have been seen so for the grace period: a machine being created now is recorded within
// seconds.
//
// Several replicas may reconcile at once: termination is idempotent.
type Reconciler struct {
	Store    *store.Store
	Log      *slog.Logger
	ServerID string
	// Backends lists the backends to look at.
	Backends func(ctx context.Context) ([]CloudBackend, error)
	// Interval is the time between passes (default 5 min).
	Interval time.Duration
	// Grace is how long a machine must be seen unknown before it is terminated (default 10 min).
	Grace time.Duration

	mu      sync.Mutex
	unknown map[string]time.Time // backend, project and machine id -> first seen unknown
	report  OrphanReport
}

// OrphanReport counts what the reconciler did since the server started.
type OrphanReport struct {
	Passes     int       `json:"passes"`
	LastPass   time.Time `json:"last_pass"`
	Terminated int       `json:"terminated"`
	Failed     int       `json:"failed"`
	// Pending are machines seen unknown, waiting for the grace period.
	Pending int `json:"pending"`
	// Events are the last terminations, newest last.
	Events []OrphanEvent `json:"events"`
}

// OrphanEvent is one orphan the reconciler terminated (or failed to).
type OrphanEvent struct {
	Time    time.Time `json:"time"`
	Project string    `json:"project"`
	Backend string    `json:"backend"`
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Error   string    `json:"error,omitempty"`
}

func (r *Reconciler) log() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log
}

// Report returns what the reconciler has done so far.
func (r *Reconciler) Report() OrphanReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.report
	out.Events = append([]OrphanEvent(nil), r.report.Events...)
	return out
}

// Run reconciles every Interval until ctx ends.
func (r *Reconciler) Run(ctx context.Context) {
	interval := r.Interval
	if interval <= 0 {
		interval = 5 * time.Minute
	}
	for {
		if err := r.Pass(ctx); err != nil && ctx.Err() == nil {
			r.log().Error("orphan reconciler pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// Ours reports whether a listed machine carries this server's mark.
func (r *Reconciler) Ours(m backends.Tagged) bool {
	if r.ServerID == "" {
		return false
	}
	if v, ok := m.Tags["dstack_server"]; ok {
		return v == r.ServerID
	}
	return strings.HasPrefix(m.Name, "dstack-") && strings.HasSuffix(m.Name, "-"+r.ServerID)
}

// Pass is one reconciliation over every backend.
func (r *Reconciler) Pass(ctx context.Context) error {
	list, err := r.Backends(ctx)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	known := map[string]map[string]bool{} // by backend type
	for _, b := range list {
		lister, ok := b.Compute.(backends.InstanceLister)
		if !ok {
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, time.Minute)
		machines, err := lister.ListInstances(lctx)
		cancel()
		if err != nil {
			r.log().Warn("orphan reconciler cannot list machines", "project", b.ProjectName, "backend", b.Type, "err", err)
			continue
		}
		// The database is read after the provider's list: a machine recorded in between is known.
		if known[b.Type] == nil {
			if known[b.Type], err = r.known(ctx, b.Type); err != nil {
				return err
			}
		}
		for _, m := range machines {
			if !r.Ours(m) || known[b.Type][m.InstanceID] || goingAway(m.State) {
				continue
			}
			key := b.Type + "\x00" + b.ProjectID + "\x00" + m.InstanceID
			seen[key] = true
			r.mu.Lock()
			first, ok := r.unknown[key]
			if !ok {
				if r.unknown == nil {
					r.unknown = map[string]time.Time{}
				}
				first = time.Now()
				if !m.LaunchedAt.IsZero() && m.LaunchedAt.Before(first) {
					first = m.LaunchedAt // the provider says how old it is
				}
				r.unknown[key] = first
			}
			r.mu.Unlock()
			if !ok {
				r.log().Warn("machine unknown to the database; terminating it after the grace period unless it is recorded",
					"project", b.ProjectName, "backend", b.Type, "id", m.InstanceID, "name", m.Name, "grace", r.grace())
			}
			if time.Since(first) < r.grace() {
				continue
			}
			r.terminate(ctx, b, m)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for key := range r.unknown {
		if !seen[key] {
			delete(r.unknown, key) // recorded, terminated or gone
		}
	}
	r.report.Passes++
	r.report.LastPass = time.Now()
	r.report.Pending = len(r.unknown)
	return nil
}

func (r *Reconciler) grace() time.Duration {
	if r.Grace > 0 {
		return r.Grace
	}
	return 10 * time.Minute
}

// known lists the provider ids of the machines of the instances not yet terminated on a backend
// type, and of the gateways not yet deleted, in every project: projects that share a provider
// account see each other's machines.
func (r *Reconciler) known(ctx context.Context, backend string) (map[string]bool, error) {
	insts, err := r.Store.ListInstances(ctx, store.InstanceFilter{Statuses: []string{models.InstancePending,
		models.InstanceProvisioning, models.InstanceIdle, models.InstanceBusy, models.InstanceTerminating}})
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, inst := range insts {
		if inst.Backend == backend && inst.JPD != nil {
			out[inst.JPD.InstanceID] = true
		}
	}
	gws, err := r.Store.ListGateways(ctx, nil)
	if err != nil {
		return nil, err
	}
	for _, g := range gws {
		if g.Configuration.Backend == backend && g.PD != nil {
			out[g.PD.InstanceID] = true
		}
	}
	return out, nil
}

func (r *Reconciler) terminate(ctx context.Context, b CloudBackend, m backends.Tagged) {
	tctx, cancel := context.WithTimeout(ctx, time.Minute)
	err := b.Compute.TerminateInstance(tctx, m.InstanceID, m.Region, "")
	cancel()
	ev := OrphanEvent{Time: time.Now(), Project: b.ProjectName, Backend: b.Type, ID: m.InstanceID, Name: m.Name}
	r.mu.Lock()
	if err != nil {
		ev.Error = err.Error()
		r.report.Failed++
	} else {
		r.report.Terminated++
		delete(r.unknown, b.Type+"\x00"+b.ProjectID+"\x00"+m.InstanceID)
	}
	r.report.Events = append(r.report.Events, ev)
	if n := len(r.report.Events); n > 100 {
		r.report.Events = r.report.Events[n-100:]
	}
	r.mu.Unlock()
	if err != nil {
		r.log().Error("orphan machine: cannot terminate it", "project", b.ProjectName, "backend", b.Type, "id", m.InstanceID, "name", m.Name, "err", err)
		return
	}
	r.log().Warn("orphan machine terminated", "event", "orphan_terminated", "project", b.ProjectName, "backend", b.Type, "id", m.InstanceID, "name", m.Name)
}

// goingAway tells a machine state that needs no termination.
func goingAway(state string) bool {
	switch strings.ToLower(state) {
	case "terminating", "terminated", "shutting-down", "deleting", "deleted":
		return true
	}
	return false
}
