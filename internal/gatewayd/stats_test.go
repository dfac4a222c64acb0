package gatewayd

import (
	"net/http"
	"sync"
	"testing"
	"time"
)

// clock is a settable time source for the request counters.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestStats(t *testing.T) {
	key := newKey(t)
	h := startHost(t, "web-0", key, nil)
	g, srv, _ := newGateway(t, Options{})
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	g.now = clk.Now
	web := svcOf("web.example.com", false, h)
	private := svcOf("private.example.com", false, h)
	private.Auth = true
	down := svcOf("down.example.com", false)
	apply(t, g, Config{TLS: TLSNone, SSHPrivateKey: key.PrivatePEM, Services: []Service{web, private, down}})

	for range 3 {
		echo(t, srv.URL, "web.example.com", "/", nil)
	}
	clk.advance(90 * time.Second)
	echo(t, srv.URL, "web.example.com", "/", nil)
	if resp, _ := get(t, srv.URL, "web.example.com", "/fail"); resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("/fail: %s", resp.Status)
	}
	get(t, srv.URL, "private.example.com", "/") // 401: reached the service, not an error
	get(t, srv.URL, "down.example.com", "/")    // 502
	get(t, srv.URL, "unknown.example.com", "/") // counted nowhere

	want := map[string]ServiceStats{
		"web.example.com":     {Requests: 5, Requests1m: 2, Requests5m: 5, Errors: 1},
		"private.example.com": {Requests: 1, Requests1m: 1, Requests5m: 1},
		"down.example.com":    {Requests: 1, Requests1m: 1, Requests5m: 1, Errors: 1},
	}
	check := func(when string, want map[string]ServiceStats) {
		t.Helper()
		got := g.Stats().Services
		if len(got) != len(want) {
			t.Fatalf("%s: services %v, want %v", when, got, want)
		}
		for d, w := range want {
			if got[d] != w {
				t.Errorf("%s: %s: %+v, want %+v", when, d, got[d], w)
			}
		}
	}
	check("now", want)

	clk.advance(4 * time.Minute) // the first three requests are 5.5 minutes old, the others 4
	want["web.example.com"] = ServiceStats{Requests: 5, Requests5m: 2, Errors: 1}
	want["private.example.com"] = ServiceStats{Requests: 1, Requests5m: 1}
	want["down.example.com"] = ServiceStats{Requests: 1, Requests5m: 1, Errors: 1}
	check("4 minutes later", want)

	// Counters survive a configuration update; removed services are no longer reported.
	apply(t, g, Config{TLS: TLSNone, SSHPrivateKey: key.PrivatePEM, Services: []Service{web}})
	check("after the update", map[string]ServiceStats{"web.example.com": want["web.example.com"]})
	clk.advance(10 * time.Minute)
	check("10 minutes later", map[string]ServiceStats{"web.example.com": {Requests: 5, Errors: 1}})
}
