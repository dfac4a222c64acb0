package offers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrTimeout is a source that did not answer within the cache's timeout; the request goes on in
// the background and fills the cache for the next plan.
var ErrTimeout = errors.New("offers source timed out")

// StaleError comes with offers that are older than the cache TTL because refreshing them failed.
type StaleError struct {
	Age time.Duration
	Err error
}

func (e *StaleError) Error() string {
	return fmt.Sprintf("offers are %s old: refresh failed: %v", e.Age.Round(time.Second), e.Err)
}

func (e *StaleError) Unwrap() error { return e.Err }

// Limits of a cache: how many requirement sets it keeps, and how long a background fetch may run.
const (
	maxCacheEntries = 64
	fetchLimit      = 2 * time.Minute
)

// Cached wraps a live source (one that calls a provider API) so that plans never wait on it for
// more than timeout: answers are kept for ttl per requirements; an older answer is served at once
// while a fresh one is fetched in the background (stale-while-revalidate); concurrent plans share
// one fetch. A first request that takes longer than timeout gets ErrTimeout.
func Cached(src Source, ttl, timeout time.Duration) Source {
	return &cachedSource{src: src, ttl: ttl, timeout: timeout, entries: map[string]*cacheEntry{}}
}

type cachedSource struct {
	src          Source
	ttl, timeout time.Duration
	mu           sync.Mutex
	entries      map[string]*cacheEntry
}

type cacheEntry struct {
	offers   []Offer
	have     bool
	at       time.Time // of offers
	tried    time.Time // of the last fetch started
	lastErr  error
	inflight *fetch
}

// fetch is one call of the wrapped source; its fields are set before done closes.
type fetch struct {
	done   chan struct{}
	offers []Offer
	err    error
}

func (c *cachedSource) Offers(ctx context.Context, req Requirements) ([]Offer, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	key := string(b)
	now := time.Now()

	c.mu.Lock()
	e := c.entries[key]
	if e == nil {
		c.evict()
		e = &cacheEntry{}
		c.entries[key] = e
	}
	if e.have && now.Sub(e.at) < c.ttl {
		offers := e.offers
		c.mu.Unlock()
		return offers, nil
	}
	// A failed refresh is retried once per TTL, not on every plan.
	if e.inflight == nil && (!e.have || now.Sub(e.tried) >= c.ttl) {
		e.inflight, e.tried = c.start(ctx, key, req), now
	}
	if e.have {
		offers, age, lastErr := e.offers, now.Sub(e.at), e.lastErr
		c.mu.Unlock()
		if lastErr != nil {
			return offers, &StaleError{Age: age, Err: lastErr}
		}
		return offers, nil
	}
	f := e.inflight
	c.mu.Unlock()

	timer := time.NewTimer(c.timeout)
	defer timer.Stop()
	select {
	case <-f.done:
		return f.offers, f.err
	case <-timer.C:
		return nil, fmt.Errorf("%w after %s", ErrTimeout, c.timeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// start runs the wrapped source detached from the caller's context, so that a plan that stops
// waiting still gets the answer cached for the next one. Callers hold c.mu.
func (c *cachedSource) start(ctx context.Context, key string, req Requirements) *fetch {
	f := &fetch{done: make(chan struct{})}
	go func() {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchLimit)
		defer cancel()
		f.offers, f.err = c.src.Offers(fctx, req)
		c.mu.Lock()
		if e := c.entries[key]; e != nil && e.inflight == f {
			e.inflight, e.lastErr = nil, f.err
			if f.err == nil {
				e.offers, e.have, e.at = f.offers, true, time.Now()
			}
		}
		c.mu.Unlock()
		close(f.done)
	}()
	return f
}

// evict drops the oldest idle entry when the cache is full. Callers hold c.mu.
func (c *cachedSource) evict() {
	if len(c.entries) < maxCacheEntries {
		return
	}
	var oldest string
	var at time.Time
	for k, e := range c.entries {
		if e.inflight == nil && (oldest == "" || e.tried.Before(at)) {
			oldest, at = k, e.tried
		}
	}
	if oldest != "" {
		delete(c.entries, oldest)
	}
}
