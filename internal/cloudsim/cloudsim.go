// Package cloudsim runs the cloud simulator: every provider simulation of internal/backends/fake on
// its own local port (each provider at its real base path, so that an SDK that takes a server root,
// like govultr, works unchanged), plus a control API that lists the machines still alive, sets
// faults and capacity, and reports malformed requests. cmd/dstack-cloudsim is its command; tests
// start it in process with Start.
//
// Credentials: the simulator accepts any credential that does not contain "invalid" (Lenient), so
// that real-looking keys from config examples pass while `invalid` ones are refused the way each
// provider refuses them. Machines boot for Config.BootDelay and then have an address; a Host backs
// them with real local machines (see fake.Host).
//
// Control API (JSON), at ControlURL:
//
//	GET  /instances[?alive=1][&provider=lambda]  machines, oldest first
//	GET  /alive                                  {"count": n, "instances": [...]} (not terminated)
//	GET  /misses                                 {"lambda": ["..."], ...} requests a provider would refuse
//	GET  /faults                                 the injected faults per provider and counts so far
//	POST /faults    {"rate", "kinds", "hang", "providers"}  set faults (providers: all when empty)
//	POST /capacity  {"provider", "available": false}        refuse (or allow) every launch
//	POST /terminate {"provider", "id"}                      end a machine as the provider would
//	GET  /healthz
package cloudsim

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/fake"
)

// Host backs simulated machines with real ones; see fake.Host.
type Host = fake.Host

// EnvControlURL is the variable Exports sets to the control API's URL.
const EnvControlURL = "DSTACK_CLOUDSIM_URL"

// Config configures a simulator.
type Config struct {
	// Providers are the backend types to simulate; empty means all (fake.Types()).
	Providers []string
	// Listen is the address to bind, default 127.0.0.1.
	Listen string
	// BasePort, when not 0, puts the providers on BasePort, BasePort+1, ... in the order of
	// Providers and the control API after them; 0 picks free ports.
	BasePort int
	// Strict makes the providers accept only the unit fakes' good credentials.
	Strict bool
	// BootDelay is how long machines boot.
	BootDelay time.Duration
	Faults    fake.Faults
	Host      Host
	Seed      int64
}

// Provider is one running provider simulation.
type Provider struct {
	Type string
	Sim  *fake.Sim
	// URL is the value for DSTACK_<TYPE>_API_URL.
	URL string
	srv *http.Server
}

// Cloud is a running simulator.
type Cloud struct {
	Providers  []*Provider
	ControlURL string

	byType  map[string]*Provider
	control *http.Server
	mu      sync.Mutex
	faults  map[string]fake.Faults
	wg      sync.WaitGroup
}

// Start starts the simulator.
func Start(cfg Config) (*Cloud, error) {
	types := cfg.Providers
	if len(types) == 0 {
		types = fake.Types()
	}
	host := cfg.Listen
	if host == "" {
		host = "127.0.0.1"
	}
	opts := fake.Options{Auth: fake.Lenient, BootDelay: cfg.BootDelay, Host: cfg.Host, Faults: cfg.Faults, Seed: cfg.Seed}
	if cfg.Strict {
		opts.Auth = fake.Strict
	}
	c := &Cloud{byType: map[string]*Provider{}, faults: map[string]fake.Faults{}}
	listen := func(i int) (net.Listener, error) {
		port := 0
		if cfg.BasePort != 0 {
			port = cfg.BasePort + i
		}
		return net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	}
	for i, typ := range types {
		if _, dup := c.byType[typ]; dup {
			c.Close()
			return nil, fmt.Errorf("cloudsim: provider %s given twice", typ)
		}
		sim, err := fake.New(typ, opts)
		if err != nil {
			c.Close()
			return nil, err
		}
		ln, err := listen(i)
		if err != nil {
			sim.Close()
			c.Close()
			return nil, fmt.Errorf("cloudsim: %s: %w", typ, err)
		}
		scheme := "http"
		if fake.TLS(typ) {
			// The provider's SDK refuses http (Azure); clients trust fake.SimCertPEM through the
			// SSL_CERT_FILE that Env exports.
			scheme, ln = "https", tls.NewListener(ln, fake.SimTLSConfig())
		}
		p := &Provider{Type: typ, Sim: sim, URL: scheme + "://" + ln.Addr().String() + fake.Prefix(typ),
			srv: &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}}
		c.serve(p.srv, ln)
		c.Providers = append(c.Providers, p)
		c.byType[typ] = p
		c.faults[typ] = cfg.Faults
	}
	ln, err := listen(len(types))
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("cloudsim: control API: %w", err)
	}
	c.ControlURL = "http://" + ln.Addr().String()
	c.control = &http.Server{Handler: c.controlHandler(), ReadHeaderTimeout: 10 * time.Second}
	c.serve(c.control, ln)
	return c, nil
}

func (c *Cloud) serve(srv *http.Server, ln net.Listener) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		_ = srv.Serve(ln)
	}()
}

// Close stops every server and the hosted machines.
func (c *Cloud) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, p := range c.Providers {
		p.Sim.Close() // releases hung requests first
		_ = p.srv.Shutdown(ctx)
	}
	if c.control != nil {
		_ = c.control.Shutdown(ctx)
	}
	c.wg.Wait()
}

// Sim returns the simulation of a provider.
func (c *Cloud) Sim(typ string) *fake.Sim {
	if p := c.byType[typ]; p != nil {
		return p.Sim
	}
	return nil
}

// Env lists NAME=value settings that point a dstack server at the simulator:
// DSTACK_<TYPE>_API_URL for each provider, what a provider's SDK needs besides (for AWS:
// AWS_ENDPOINT_URL, and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY with AWS_EC2_METADATA_DISABLED so
// that `creds: {type: default}` finds simulated credentials rather than real ones; see fake.Env),
// and DSTACK_CLOUDSIM_URL for the control API.
func (c *Cloud) Env() []string {
	var out []string
	for _, p := range c.Providers {
		out = append(out, backends.EnvAPIURL(p.Type)+"="+p.URL)
		out = append(out, fake.Env(p.Type, p.URL)...)
	}
	return append(out, EnvControlURL+"="+c.ControlURL)
}

// Exports renders Env as shell `export` lines, for eval "$(dstack-cloudsim ...)".
func (c *Cloud) Exports() string {
	var b strings.Builder
	for _, kv := range c.Env() {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(v))
	}
	return b.String()
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@=,+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Machines lists every provider's machines, oldest first per provider.
func (c *Cloud) Machines() []fake.Machine {
	var out []fake.Machine
	for _, p := range c.Providers {
		out = append(out, p.Sim.Machines()...)
	}
	return out
}

// Alive lists the machines not terminated, over all providers.
func (c *Cloud) Alive() []fake.Machine {
	var out []fake.Machine
	for _, p := range c.Providers {
		out = append(out, p.Sim.Alive()...)
	}
	return out
}

// Misses lists, per provider, the requests the provider would have refused as malformed.
func (c *Cloud) Misses() map[string][]string {
	out := map[string][]string{}
	for _, p := range c.Providers {
		if m := p.Sim.Misses(); len(m) > 0 {
			out[p.Type] = m
		}
	}
	return out
}

// SetFaults sets the faults of the given providers (all when empty).
func (c *Cloud) SetFaults(f fake.Faults, providers ...string) error {
	if len(providers) == 0 {
		for _, p := range c.Providers {
			providers = append(providers, p.Type)
		}
	}
	for _, typ := range providers {
		p := c.byType[typ]
		if p == nil {
			return fmt.Errorf("cloudsim: no provider %q", typ)
		}
		p.Sim.SetFaults(f)
		c.mu.Lock()
		c.faults[typ] = f
		c.mu.Unlock()
	}
	return nil
}

// WriteCatalogs writes the gpuhunt catalog CSV of every simulated provider that has one into dir
// (for DSTACK_CATALOG_URL), and returns the files written.
func (c *Cloud) WriteCatalogs(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var out []string
	for _, p := range c.Providers {
		csv := fake.CatalogCSV(p.Type)
		if csv == "" {
			continue
		}
		name := filepath.Join(dir, fake.CatalogProvider(p.Type)+".csv")
		if err := os.WriteFile(name, []byte(csv), 0o644); err != nil {
			return out, err
		}
		out = append(out, name)
	}
	return out, nil
}

func (c *Cloud) controlHandler() http.Handler {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(v)
	}
	fail := func(w http.ResponseWriter, status int, err error) {
		reply(w, status, map[string]string{"error": err.Error()})
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, map[string]any{"ok": true})
	})
	mux.HandleFunc("GET /instances", func(w http.ResponseWriter, r *http.Request) {
		alive := r.URL.Query().Get("alive") != ""
		prov := r.URL.Query().Get("provider")
		out := []fake.Machine{}
		for _, m := range c.Machines() {
			if (prov == "" || m.Provider == prov) && (!alive || m.Status != fake.StatusTerminated) {
				out = append(out, m)
			}
		}
		reply(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /alive", func(w http.ResponseWriter, r *http.Request) {
		alive := c.Alive()
		if alive == nil {
			alive = []fake.Machine{}
		}
		reply(w, http.StatusOK, map[string]any{"count": len(alive), "instances": alive})
	})
	mux.HandleFunc("GET /misses", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, c.Misses())
	})
	mux.HandleFunc("GET /faults", func(w http.ResponseWriter, r *http.Request) {
		out := map[string]any{}
		c.mu.Lock()
		for typ, f := range c.faults {
			out[typ] = map[string]any{"rate": f.Rate, "kinds": f.Kinds, "hang": f.Hang.String(),
				"injected": c.byType[typ].Sim.FaultsInjected()}
		}
		c.mu.Unlock()
		reply(w, http.StatusOK, out)
	})
	mux.HandleFunc("POST /faults", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Rate      float64  `json:"rate"`
			Kinds     []string `json:"kinds"`
			Hang      string   `json:"hang"`
			Providers []string `json:"providers"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		f, err := ParseFaults(req.Rate, strings.Join(req.Kinds, ","), req.Hang)
		if err == nil {
			err = c.SetFaults(f, req.Providers...)
		}
		if err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		reply(w, http.StatusOK, map[string]any{"ok": true})
	})
	mux.HandleFunc("POST /capacity", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Provider  string `json:"provider"`
			Available bool   `json:"available"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		s := c.Sim(req.Provider)
		if s == nil {
			fail(w, http.StatusNotFound, fmt.Errorf("no provider %q", req.Provider))
			return
		}
		s.SetNoCapacity(!req.Available)
		reply(w, http.StatusOK, map[string]any{"ok": true})
	})
	mux.HandleFunc("POST /terminate", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Provider string `json:"provider"`
			ID       string `json:"id"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		s := c.Sim(req.Provider)
		if s == nil || !s.Terminate(req.ID) {
			fail(w, http.StatusNotFound, errors.New("no such machine"))
			return
		}
		reply(w, http.StatusOK, map[string]any{"ok": true})
	})
	return mux
}

// ParseFaults reads a fault rate, a comma-separated list of kinds (empty: all) and a hang duration
// (empty: until the client gives up).
func ParseFaults(rate float64, kinds, hang string) (fake.Faults, error) {
	f := fake.Faults{Rate: rate}
	if rate < 0 || rate > 1 {
		return f, fmt.Errorf("fault rate %v is not between 0 and 1", rate)
	}
	for _, k := range strings.Split(kinds, ",") {
		k = strings.TrimSpace(k)
		if k == "" {
			continue
		}
		known := false
		for _, kk := range fake.FaultKinds {
			known = known || kk == k
		}
		if !known {
			return f, fmt.Errorf("fault kind %q is not one of %s", k, strings.Join(fake.FaultKinds, ", "))
		}
		f.Kinds = append(f.Kinds, k)
	}
	sort.Strings(f.Kinds)
	if hang != "" {
		d, err := time.ParseDuration(hang)
		if err != nil {
			return f, fmt.Errorf("fault hang: %w", err)
		}
		f.Hang = d
	}
	return f, nil
}
