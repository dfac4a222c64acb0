// Package pipeline runs the server's background work (provisioning hosts, driving jobs through their
// lifecycle, finishing runs and fleets) over database rows held under leases, so that several server
// replicas on one PostgreSQL database share the work without ever acting on the same row at once.
//
// A pipeline serves one table. It claims due rows with a lease (a random token and an expiry, see
// store.AcquireLeases), processes each claimed row in its own goroutine while renewing the lease, and
// releases it with the time the row needs processing next. Processing does its network work outside
// any transaction and writes its results guarded by the token, so a replica that stalled past its
// expiry cannot overwrite the work of the replica that took over. A replica that dies simply lets its
// leases expire.
//
// Work is event-driven within a process: whoever makes a row due (an API request, another pipeline)
// calls Wake, and the pipeline also sleeps only until the earliest due row of its table. A slow poll
// catches rows made due by other replicas.
package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/dstackgo/dstack/internal/store"
)

// Func processes one leased row. It returns how long until the row needs processing again (0: not
// until something wakes it). Writes of the row's state must be guarded by the lease; a write that
// fails with store.ErrLeaseLost means another replica owns the row now and the work is abandoned.
// ctx is cancelled when the lease is lost or the pipeline stops.
type Func func(ctx context.Context, l store.Lease) (time.Duration, error)

// Pipeline processes the rows of one table. Set the fields, then call Run.
type Pipeline struct {
	Table   string
	Store   *store.Store
	Process Func
	// Workers is how many rows are processed at once (default 16).
	Workers int
	// TTL is the lease duration (default 30s); leases are renewed every TTL/3 while processing.
	TTL time.Duration
	// Poll is the longest sleep between looks for due rows (default 2s).
	Poll time.Duration
	// RetryAfter is when a row whose processing failed is tried again, if Process gave no time
	// (default 5s).
	RetryAfter time.Duration
	Log        *slog.Logger

	once sync.Once
	wake chan struct{}
}

func (p *Pipeline) init() {
	p.once.Do(func() {
		p.wake = make(chan struct{}, 1)
		if p.Workers <= 0 {
			p.Workers = 16
		}
		if p.TTL <= 0 {
			p.TTL = 30 * time.Second
		}
		if p.Poll <= 0 {
			p.Poll = 2 * time.Second
		}
		if p.RetryAfter <= 0 {
			p.RetryAfter = 5 * time.Second
		}
		if p.Log == nil {
			p.Log = slog.New(slog.DiscardHandler)
		}
	})
}

// Wake makes the pipeline look for due rows now.
func (p *Pipeline) Wake() {
	p.init()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run processes rows until ctx ends, then waits for the rows in progress, whose leases are released
// so that a restarted server picks them up at once.
func (p *Pipeline) Run(ctx context.Context) {
	p.init()
	log := p.Log.With("pipeline", p.Table)
	var wg sync.WaitGroup
	defer wg.Wait()
	done := make(chan struct{}, p.Workers)
	inflight := 0
	for {
		for {
			select {
			case <-done:
				inflight--
				continue
			default:
			}
			break
		}
		if ctx.Err() != nil {
			return
		}
		if free := p.Workers - inflight; free > 0 {
			leases, err := p.Store.AcquireLeases(ctx, p.Table, free, p.TTL)
			if err != nil && ctx.Err() == nil {
				log.Error("cannot lease rows", "err", err)
			}
			for _, l := range leases {
				inflight++
				wg.Add(1)
				go func() {
					defer wg.Done()
					p.handle(ctx, log, l)
					done <- struct{}{}
				}()
			}
			if len(leases) == free {
				continue // there may be more due rows
			}
		}
		sleep := p.Poll
		if next, err := p.Store.NextDue(ctx, p.Table); err == nil && next != nil {
			if d := time.Until(*next); d < sleep {
				sleep = max(d, time.Millisecond)
			}
		}
		timer := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-p.wake:
		case <-done:
			inflight--
		case <-timer.C:
		}
		timer.Stop()
	}
}

func (p *Pipeline) handle(ctx context.Context, log *slog.Logger, l store.Lease) {
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		tick := time.NewTicker(p.TTL / 3)
		defer tick.Stop()
		for {
			select {
			case <-pctx.Done():
				return
			case <-tick.C:
				if err := p.Store.RenewLease(pctx, l, p.TTL); err != nil {
					if pctx.Err() == nil {
						log.Warn("lease lost; abandoning the row", "id", l.ID, "err", err)
						cancel()
					}
					return
				}
			}
		}
	}()
	after, err := p.run(pctx, l)
	cancel()
	<-renewed
	if err != nil && !errors.Is(err, store.ErrLeaseLost) && ctx.Err() == nil {
		log.Error("processing failed", "id", l.ID, "err", err)
		if after <= 0 {
			after = p.RetryAfter
		}
	}
	var next *time.Time
	switch {
	case ctx.Err() != nil:
		now := time.Now() // stopping: due at once for whoever runs next
		next = &now
	case after > 0:
		t := time.Now().Add(after)
		next = &t
	}
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer rcancel()
	if err := p.Store.ReleaseLease(rctx, l, next); err != nil && !errors.Is(err, store.ErrLeaseLost) {
		log.Error("cannot release lease", "id", l.ID, "err", err)
	}
}

// run calls Process, turning a panic into an error so that one bad row cannot stop the server.
func (p *Pipeline) run(ctx context.Context, l store.Lease) (after time.Duration, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = panicError{r}
		}
	}()
	return p.Process(ctx, l)
}

type panicError struct{ v any }

func (e panicError) Error() string { return "panic: " + slog.AnyValue(e.v).String() }

// Group is a set of pipelines started and woken together.
type Group struct {
	pipelines map[string]*Pipeline
}

// NewGroup returns a group of the pipelines.
func NewGroup(ps ...*Pipeline) *Group {
	g := &Group{pipelines: map[string]*Pipeline{}}
	for _, p := range ps {
		g.pipelines[p.Table] = p
	}
	return g
}

// Wake wakes the pipeline of table, if the group has one.
func (g *Group) Wake(table string) {
	if g == nil {
		return
	}
	if p := g.pipelines[table]; p != nil {
		p.Wake()
	}
}

// Run runs every pipeline until ctx ends and they have stopped.
func (g *Group) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, p := range g.pipelines {
		wg.Add(1)
		go func() { defer wg.Done(); p.Run(ctx) }()
	}
	wg.Wait()
}
