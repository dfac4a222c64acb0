package gatewayd

import (
	"sync"
	"time"
)

// Stats is GET /api/stats: request counters per service domain. dstack's autoscaler derives each
// service's RPS from the windowed counts.
type Stats struct {
	Services map[string]ServiceStats `json:"services"`
}

// ServiceStats counts the requests that reached a service (whatever the answer) since the service was
// registered, in the last minute and in the last five minutes. Errors are answers of 500 and more,
// including the gateway's own 502 when no replica could be reached.
type ServiceStats struct {
	Requests   int64 `json:"requests"`
	Requests1m int64 `json:"requests_1m"`
	Requests5m int64 `json:"requests_5m"`
	Errors     int64 `json:"errors"`
}

const statsWindow = 300 // seconds kept, one bucket per second

// counter counts one service's requests in per-second buckets over the last five minutes.
type counter struct {
	now func() time.Time

	mu       sync.Mutex
	requests int64
	errors   int64
	buckets  [statsWindow]struct{ sec, n int64 }
}

func (c *counter) request() {
	sec := c.now().Unix()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requests++
	b := &c.buckets[sec%statsWindow]
	if b.sec != sec {
		b.sec, b.n = sec, 0
	}
	b.n++
}

func (c *counter) error() {
	c.mu.Lock()
	c.errors++
	c.mu.Unlock()
}

func (c *counter) snapshot() ServiceStats {
	sec := c.now().Unix()
	c.mu.Lock()
	defer c.mu.Unlock()
	s := ServiceStats{Requests: c.requests, Errors: c.errors}
	for _, b := range c.buckets {
		age := sec - b.sec
		if age < 0 || age >= statsWindow {
			continue
		}
		s.Requests5m += b.n
		if age < 60 {
			s.Requests1m += b.n
		}
	}
	return s
}
