// Package gatewayd is dstack-gateway, the data plane of a dstack gateway: it serves each registered
// service at its domain (HTTPS with Let's Encrypt certificates, or plain HTTP behind a load balancer
// that terminates HTTPS), checks the dstack tokens of services with auth, and proxies to the service's
// replicas through SSH connections to their hosts, as the server's own service proxy does.
//
// The dstack server configures it declaratively through a management API on loopback (Config,
// Client): each configuration replaces the routing state as a whole.
package gatewayd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net"
	"net/http/httputil"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme/autocert"

	"github.com/dstackgo/dstack/internal/sshpool"
)

// Version is the gateway's version, set at build time with
// -ldflags "-X github.com/dstackgo/dstack/internal/gatewayd.Version=...".
var Version = "0.21.2"

// LetsEncryptURL is the default ACME directory.
const LetsEncryptURL = autocert.DefaultACMEDirectory

// Options configure a Gateway.
type Options struct {
	// StateDir holds the certificates (StateDir/certs) and the ACME account key.
	StateDir string
	// ACMEDirectory is the ACME directory URL; empty is Let's Encrypt production.
	ACMEDirectory string
	// HTTPSPort is the port redirects to HTTPS point at; 0 is 443.
	HTTPSPort int
	Logger    *slog.Logger
	// Pool carries the SSH connections to replica hosts; nil makes one, closed by Close.
	Pool *sshpool.Pool
}

// Gateway holds the routing state. Its handlers are safe for concurrent use with Apply.
type Gateway struct {
	opts     Options
	log      *slog.Logger
	pool     *sshpool.Pool
	ownsPool bool
	now      func() time.Time // the clock of the request counters

	state atomic.Pointer[state]
	acme  atomic.Pointer[acmeState]

	mu       sync.Mutex // serialises Apply; guards the fields below
	replicas map[string]*replica
	counters map[string]*counter
	applied  string // configSum of the last configuration applied
}

// state is one applied Config, never modified once published.
type state struct {
	tls      string
	services map[string]*service // by domain
}

// service is a registered service with its replicas and counters.
type service struct {
	Service
	tokens   map[string]bool // sha256 hex of accepted tokens
	replicas []*replica
	next     atomic.Uint64 // round-robin position
	counter  *counter
	proxy    *httputil.ReverseProxy
}

// New returns a gateway that serves nothing until the first Apply.
func New(opts Options) *Gateway {
	if opts.ACMEDirectory == "" {
		opts.ACMEDirectory = LetsEncryptURL
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	g := &Gateway{opts: opts, log: opts.Logger, pool: opts.Pool, now: time.Now,
		replicas: map[string]*replica{}, counters: map[string]*counter{}}
	if g.pool == nil {
		g.pool, g.ownsPool = sshpool.New(), true
	}
	g.state.Store(&state{tls: TLSLetsEncrypt, services: map[string]*service{}})
	return g
}

// Apply validates cfg and replaces the routing state with it. Replicas that are no longer in it
// stop receiving requests and their SSH connections are closed; unchanged replicas keep theirs.
func (g *Gateway) Apply(cfg Config) error {
	cfg, err := validate(cfg)
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if cfg.TLS == TLSLetsEncrypt {
		g.ensureACME(cfg.ACMEEmail)
	}
	st := &state{tls: cfg.TLS, services: make(map[string]*service, len(cfg.Services))}
	replicas := map[string]*replica{}
	counters := map[string]*counter{}
	for _, s := range cfg.Services {
		svc := &service{Service: s, tokens: map[string]bool{}}
		for _, h := range s.AuthTokensSHA256 {
			svc.tokens[h] = true
		}
		for _, r := range s.Replicas {
			t := target(r.SSH, cfg.SSHPrivateKey)
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(r.AppPort))
			k := replicaKey(t, addr)
			rep := replicas[k]
			if rep == nil {
				rep = g.replicas[k]
			}
			if rep == nil {
				rep = g.newReplica(t, addr)
			}
			replicas[k] = rep
			svc.replicas = append(svc.replicas, rep)
		}
		if prev := g.state.Load().services[s.Domain]; prev != nil {
			svc.next.Store(prev.next.Load()) // the turn goes on across re-sent configurations
		}
		svc.counter = g.counters[s.Domain]
		if svc.counter == nil {
			svc.counter = &counter{now: g.now}
		}
		counters[s.Domain] = svc.counter
		svc.proxy = g.newProxy(svc, cfg.TLS)
		st.services[s.Domain] = svc
	}
	g.state.Store(st)
	used := map[string]bool{} // SSH connections still needed, jump hosts included
	for _, rep := range replicas {
		for _, t := range hops(rep.target) {
			used[hostConnKey(t)] = true
		}
	}
	for k, rep := range g.replicas {
		if replicas[k] != nil {
			continue
		}
		rep.transport.CloseIdleConnections()
		for _, t := range hops(rep.target) {
			if k := hostConnKey(t); !used[k] {
				used[k] = true // close each connection once
				g.pool.Close(t)
			}
		}
	}
	g.replicas, g.counters = replicas, counters
	// The server re-sends the configuration periodically: only changes are worth a line at info.
	level := slog.LevelDebug
	if sum := configSum(cfg); sum != g.applied {
		g.applied, level = sum, slog.LevelInfo
	}
	g.log.Log(context.Background(), level, "configuration applied", "services", len(st.services), "replicas", len(replicas), "tls", cfg.TLS)
	return nil
}

func configSum(cfg Config) string {
	b, _ := json.Marshal(cfg) // plain structs: cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Close drops every SSH connection the gateway opened.
func (g *Gateway) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, rep := range g.replicas {
		rep.transport.CloseIdleConnections()
		if !g.ownsPool {
			for _, t := range hops(rep.target) {
				g.pool.Close(t)
			}
		}
	}
	if g.ownsPool {
		g.pool.CloseAll()
	}
}

// Stats returns the counters of the registered services.
func (g *Gateway) Stats() Stats {
	st := g.state.Load()
	s := Stats{Services: make(map[string]ServiceStats, len(st.services))}
	for d, svc := range st.services {
		s.Services[d] = svc.counter.snapshot()
	}
	return s
}

func target(s SSH, key string) sshpool.Target {
	if s.PrivateKey != "" {
		key = s.PrivateKey
	}
	t := sshpool.Target{User: s.User, Host: s.Host, Port: s.Port, PrivateKey: key, HostKey: s.HostKey}
	if s.Proxy != nil {
		p := target(*s.Proxy, key)
		t.Proxy = &p
	}
	return t
}

// hops is t and the jump hosts it is reached through.
func hops(t sshpool.Target) []sshpool.Target {
	all := []sshpool.Target{t}
	for p := t.Proxy; p != nil; p = p.Proxy {
		all = append(all, *p)
	}
	return all
}

// hostConnKey identifies the SSH connection to t (the key is hashed: these strings are map keys only).
func hostConnKey(t sshpool.Target) string {
	b, _ := json.Marshal(t) // a plain struct: cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func replicaKey(t sshpool.Target, addr string) string {
	return hostConnKey(t) + " " + addr
}
