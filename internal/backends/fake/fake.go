// Package fake simulates the APIs of the clouds (AWS, Lambda, RunPod, Vultr, Vast.ai, TensorDock,
// CUDO, DataCrunch) in process, for tests and for cmd/dstack-cloudsim. Each simulation speaks its
// provider's wire protocol for every call the backend makes: the method and path, where the
// credentials travel (bearer header, query string, form or JSON body, AWS's SigV4 signature), the
// provider's JSON (or GraphQL, or AWS's Query API XML) shapes for requests, answers and errors, and
// its refusals of malformed requests (see aws.go for AWS). Machines
// live in memory: created ones boot, become active with an address after Options.BootDelay, and
// are terminated; a Host can back them with real local machines or containers.
//
// A Sim is an http.Handler; a Server is a Sim on an httptest server for one test. A unit fake (Start,
// Use) accepts one known-good credential (Good) and refuses any other the way the provider does;
// the cloud simulator uses Lenient auth, which accepts any credential that does not contain
// "invalid". Fail and Hang make the fake answer 500 or never answer; Options.Faults injects capacity
// errors, throttling, 5xx and timeouts at a rate; SetNoCapacity refuses every launch as the
// provider refuses one without capacity.
//
// Typical use:
//
//	srv := fake.Start(t, "lambda")
//	t.Setenv(backends.EnvAPIURL("lambda"), srv.URL) // or fake.Use(t, "lambda"), which does both
//	err := driver.Check(ctx, srv.Good)                // nil
//	err = driver.Check(ctx, srv.Bad)                  // *backends.CredentialsError
//
// Requests that do not match one of the provider's calls (unknown method or path, wrong content
// type, missing credentials, invalid bodies) are answered with an error, as the provider would, and
// are listed by Misses.
package fake

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
)

// AuthPolicy says which credentials a simulation accepts.
type AuthPolicy int

const (
	// Strict accepts only the credentials of the provider's Good config.
	Strict AuthPolicy = iota
	// Lenient accepts any non-empty credential that does not contain "invalid" (in any case).
	Lenient
)

// Options tune a simulation.
type Options struct {
	Auth AuthPolicy
	// BootDelay is how long a created machine stays booting before it is active with an address.
	BootDelay time.Duration
	// Host, when set, backs machines with real ones; nil gives them made-up addresses.
	Host Host
	// Faults are injected at random into requests.
	Faults Faults
	// Seed seeds the fault injection; 0 uses the clock.
	Seed int64
}

// Fault kinds.
const (
	FaultCapacity = "capacity" // launches refused as having no capacity
	FaultThrottle = "throttle" // HTTP 429 with the provider's rate-limit answer
	Fault5xx      = "5xx"      // HTTP 500 with the provider's internal-error answer
	FaultTimeout  = "timeout"  // no answer until Faults.Hang passes (then 504) or the client gives up
)

// FaultKinds lists every fault kind.
var FaultKinds = []string{FaultCapacity, FaultThrottle, Fault5xx, FaultTimeout}

// Faults inject failures: each request to a provider's call fails with probability Rate, with a
// kind drawn from Kinds (all kinds when empty). Capacity faults apply to launches only; a request
// drawn for a capacity fault that is not a launch is served normally.
type Faults struct {
	Rate  float64
	Kinds []string
	// Hang is how long a timeout fault holds the request before answering 504; 0 holds it until the
	// client gives up or the simulation stops.
	Hang time.Duration
}

// Machine is one simulated machine (instance, pod, VM, server or contract).
type Machine struct {
	Provider string `json:"provider"`
	ID       string `json:"id"`
	Name     string `json:"name"`
	// Type is the provider's instance type, plan, GPU type, machine type or offer id.
	Type   string `json:"type"`
	Region string `json:"region"`
	// Status is booting, active, failed or terminated.
	Status    string            `json:"status"`
	IP        string            `json:"ip,omitempty"`
	PrivateIP string            `json:"private_ip,omitempty"`
	SSHPort   int               `json:"ssh_port,omitempty"`
	Ports     map[int]int       `json:"ports,omitempty"` // container port -> public port
	Spot      bool              `json:"spot,omitempty"`
	Price     float64           `json:"price,omitempty"`
	GPUs      int               `json:"gpus,omitempty"`
	Image     string            `json:"image,omitempty"`
	Container bool              `json:"container,omitempty"` // runs an image (runner) rather than a VM (shim)
	UserData  string            `json:"user_data,omitempty"`
	Command   string            `json:"command,omitempty"`
	SSHKeys   []string          `json:"ssh_keys,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	Tags      []string          `json:"tags,omitempty"`
	Created   time.Time         `json:"created"`
	Extra     map[string]any    `json:"extra,omitempty"`
	Error     string            `json:"error,omitempty"`

	ready    bool // the host (or the made-up address) is up
	hostDone bool
}

// Machine statuses.
const (
	StatusBooting    = "booting"
	StatusActive     = "active"
	StatusFailed     = "failed"
	StatusTerminated = "terminated"
)

// Host backs simulated machines with real ones: a local process, container or VM that runs the
// machine's user data (VM providers) or its image's command (container providers), so that a
// server can reach it over SSH.
type Host interface {
	// Start brings the machine up and says where it is reachable; it may take a while. An error
	// makes the machine fail as the provider reports a failed machine.
	Start(ctx context.Context, m Machine) (Addr, error)
	// Stop tears it down; it must be idempotent.
	Stop(ctx context.Context, m Machine) error
}

// Addr is where a hosted machine is reachable.
type Addr struct {
	IP        string
	PrivateIP string
	// SSHPort is the public port of the machine's SSH server (22 on a VM; the port mapped to the
	// runner's 10022 in a container).
	SSHPort int
	// Ports maps the machine's ports to public ones (containers).
	Ports map[int]int
}

// Sim is one provider's simulated API.
type Sim struct {
	Type string

	p      *provider
	opts   Options
	mux    *http.ServeMux
	mode   atomic.Int32
	hits   atomic.Int64
	stop   chan struct{}
	closed sync.Once

	launchMu   sync.Mutex // serialises check-then-launch sequences of a provider
	mu         sync.Mutex
	misses     []string
	machines   map[string]*Machine
	order      []string
	seq        int
	rng        *rand.Rand
	noCapacity bool
	objects    map[string]map[string]any // provider-side objects (ssh keys, scripts) by kind and id
	faultsHit  map[string]int
}

const (
	modeOK int32 = iota
	modeFail
	modeHang
)

// provider describes one simulation: its calls and the provider's answers.
type provider struct {
	// prefix is the path of the provider's default base URL, e.g. /api/v1; a Server's URL ends with it.
	prefix string
	// good and bad are the backend entry (without type) with accepted and refused secrets.
	good, bad map[string]any
	routes    []route
	// failBody, throttleBody are the provider's bodies for an internal error and a rate limit.
	failBody, throttleBody string
	// capacity answers a launch as the provider does when it has no capacity.
	capacity func(w http.ResponseWriter)
	// notFound answers a request for an unknown path.
	notFound func(w http.ResponseWriter)
	// newID makes the provider's id of the n-th machine.
	newID func(s *Sim, n int) string
	// container is true for providers whose machines are containers running the job's image.
	container bool
	// catalog lists the inventory as catalog rows, for backends whose offers come from the catalog.
	catalog func() []catalogRow
	// failure, when set, answers Fail, an injected throttle, 5xx or timeout (kind, a Fault* constant)
	// in the provider's own format, for providers whose errors are not JSON (AWS's XML); nil
	// answers failBody and throttleBody as JSON.
	failure func(w http.ResponseWriter, r *http.Request, kind string)
	// env, when set, lists the NAME=value settings besides DSTACK_<TYPE>_API_URL that point a
	// provider's SDK at the simulation at url (AWS_ENDPOINT_URL, credentials for a default chain).
	env func(url string) []string
	// at, when set, makes the good and bad entries of a simulation serving at url, for credentials
	// that name the provider's own endpoints (a GCP service-account key's token_uri); good and bad
	// are then what GoodConfig and BadConfig give without a URL.
	at func(url string) (good, bad map[string]any)
	// tls is true for providers whose SDK refuses http endpoints (Azure): their servers serve https
	// with SimTLSConfig, and Use points SSL_CERT_FILE at CertFile.
	tls bool
	// homeFiles, when set, are files (path relative to a home directory -> content) that the
	// seed's examples of the provider read from the server user's home (OCI's ~/.oci/config and
	// key_file), given the home directory they will be written under.
	homeFiles func(home string) map[string]string
}

// route is one call of a provider. serve returns "" when the request is well formed (whatever the
// credentials), else what was wrong with it, recorded as a miss.
type route struct {
	pattern string // "METHOD /path/{var}"
	launch  bool   // creates a machine: capacity faults apply
	// launchIf, when set, says whether one request creates a machine, for providers whose calls
	// share one path (AWS's Query API: POST / with Action=RunInstances). It may read the body if it
	// puts it back.
	launchIf func(r *http.Request) bool
	serve    func(s *Sim, w http.ResponseWriter, r *http.Request) string
	// capacity, when set, answers this launch's capacity refusals in place of the provider's
	// capacity, for providers with two launch APIs (GCP's Compute Engine and Cloud TPU).
	capacity func(w http.ResponseWriter, r *http.Request)
}

var providers = map[string]*provider{}

func register(typ string, p *provider) { providers[typ] = p }

// Types lists the backend types that have a simulation.
func Types() []string {
	out := make([]string, 0, len(providers))
	for t := range providers {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Has reports whether typ has a simulation.
func Has(typ string) bool { _, ok := providers[typ]; return ok }

// Prefix is the path of the provider's base URL that DSTACK_<TYPE>_API_URL must end with, e.g.
// /api/v1 for Lambda ("" for Vultr, whose SDK takes the server root).
func Prefix(typ string) string {
	if p, ok := providers[typ]; ok {
		return p.prefix
	}
	return ""
}

// Env lists the settings besides DSTACK_<TYPE>_API_URL that point the provider's SDK at a
// simulation serving at url, as NAME=value (for AWS: AWS_ENDPOINT_URL and credentials for the
// default chain); nil for most providers.
func Env(typ, url string) []string {
	if p, ok := providers[typ]; ok && p.env != nil {
		return p.env(url)
	}
	return nil
}

// HomeFiles lists the files, by path relative to home, that the provider's seed examples read
// from the server user's home directory when home is that directory (OCI's ~/.oci/config and its
// key); nil for most providers.
func HomeFiles(typ, home string) map[string]string {
	if p, ok := providers[typ]; ok && p.homeFiles != nil {
		return p.homeFiles(home)
	}
	return nil
}

// UseHome makes a temporary HOME holding the files typ's default credentials read (HomeFiles),
// e.g. OCI's ~/.oci/config and its key; it does nothing for providers without such files.
func UseHome(t testing.TB, typ string) {
	t.Helper()
	home := t.TempDir()
	files := HomeFiles(typ, home)
	if files == nil {
		return
	}
	for rel, content := range files {
		p := filepath.Join(home, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("HOME", home)
}

// GoodConfig is a complete backend config (type, creds and required keys) that a Strict simulation
// accepts; BadConfig is the same with every secret refused.
func GoodConfig(typ string) backends.Config { return config(typ, providers[typ].good) }

// BadConfig is GoodConfig with every secret replaced by one a Strict simulation refuses.
func BadConfig(typ string) backends.Config { return config(typ, providers[typ].bad) }

// New makes the simulation of typ; Close releases requests it holds.
func New(typ string, opts Options) (*Sim, error) {
	p, ok := providers[typ]
	if !ok {
		return nil, fmt.Errorf("fake: no simulation for backend type %q (have %v)", typ, Types())
	}
	seed := opts.Seed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	s := &Sim{Type: typ, p: p, opts: opts, mux: http.NewServeMux(), stop: make(chan struct{}),
		machines: map[string]*Machine{}, rng: rand.New(rand.NewSource(seed)),
		objects: map[string]map[string]any{}, faultsHit: map[string]int{}}
	for _, rt := range p.routes {
		s.mux.HandleFunc(rt.pattern, s.wrap(rt))
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.miss("%s %s: not a %s call this simulation knows", r.Method, r.URL.Path, typ)
		if p.notFound != nil {
			p.notFound(w)
			return
		}
		http.NotFound(w, r)
	})
	return s, nil
}

// Close releases hung requests and stops hosted machines.
func (s *Sim) Close() {
	s.closed.Do(func() { close(s.stop) })
	if s.opts.Host == nil {
		return
	}
	s.mu.Lock()
	var alive []Machine
	for _, id := range s.order {
		if m := s.machines[id]; m.Status != StatusTerminated {
			alive = append(alive, *m)
		}
	}
	s.mu.Unlock()
	for _, m := range alive {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = s.opts.Host.Stop(ctx, m)
		cancel()
	}
}

// ServeHTTP answers one request.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// OK makes the simulation answer normally again.
func (s *Sim) OK() { s.mode.Store(modeOK) }

// Fail makes the simulation answer every request with HTTP 500 and the provider's error body.
func (s *Sim) Fail() { s.mode.Store(modeFail) }

// Hang makes the simulation never answer: requests wait until the client gives up or it closes.
func (s *Sim) Hang() { s.mode.Store(modeHang) }

// SetNoCapacity makes every launch fail (or succeed again) with the provider's capacity error.
func (s *Sim) SetNoCapacity(on bool) {
	s.mu.Lock()
	s.noCapacity = on
	s.mu.Unlock()
}

// SetFaults replaces the injected faults.
func (s *Sim) SetFaults(f Faults) {
	s.mu.Lock()
	s.opts.Faults = f
	s.mu.Unlock()
}

// FaultsInjected counts the faults injected so far, by kind.
func (s *Sim) FaultsInjected() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.faultsHit {
		out[k] = v
	}
	return out
}

// Hits counts the requests that reached one of the provider's calls, in any mode.
func (s *Sim) Hits() int64 { return s.hits.Load() }

// Misses lists the requests the real provider would have refused as malformed.
func (s *Sim) Misses() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.misses...)
}

// Machines lists every machine created so far, terminated ones included, oldest first.
func (s *Sim) Machines() []Machine {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Machine, 0, len(s.order))
	for _, id := range s.order {
		m := s.refresh(s.machines[id])
		out = append(out, copyMachine(m))
	}
	return out
}

// Alive lists the machines not terminated: what a test asserts is empty after cleanup.
func (s *Sim) Alive() []Machine {
	var out []Machine
	for _, m := range s.Machines() {
		if m.Status != StatusTerminated {
			out = append(out, m)
		}
	}
	return out
}

// Machine returns one machine by its provider id.
func (s *Sim) Machine(id string) (Machine, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.machines[id]
	if !ok {
		return Machine{}, false
	}
	return copyMachine(s.refresh(m)), true
}

func copyMachine(m *Machine) Machine {
	c := *m
	c.SSHKeys = append([]string(nil), m.SSHKeys...)
	c.Tags = append([]string(nil), m.Tags...)
	if m.Env != nil {
		c.Env = make(map[string]string, len(m.Env))
		for k, v := range m.Env {
			c.Env[k] = v
		}
	}
	if m.Ports != nil {
		c.Ports = make(map[int]int, len(m.Ports))
		for k, v := range m.Ports {
			c.Ports[k] = v
		}
	}
	if m.Extra != nil {
		c.Extra = make(map[string]any, len(m.Extra))
		for k, v := range m.Extra {
			c.Extra[k] = v
		}
	}
	return c
}

func (s *Sim) miss(format string, args ...any) {
	s.mu.Lock()
	s.misses = append(s.misses, fmt.Sprintf(format, args...))
	s.mu.Unlock()
}

func (s *Sim) wrap(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		switch s.mode.Load() {
		case modeFail:
			s.fail(w, r, Fault5xx)
			return
		case modeHang:
			s.hold(r, 0)
			return
		}
		launch := rt.launch || rt.launchIf != nil && rt.launchIf(r)
		if kind := s.drawFault(launch); kind != "" {
			switch kind {
			case FaultCapacity:
				s.refuse(rt, w, r)
			case FaultThrottle, Fault5xx:
				s.fail(w, r, kind)
			case FaultTimeout:
				s.mu.Lock()
				d := s.opts.Faults.Hang
				s.mu.Unlock()
				if s.hold(r, d) {
					s.fail(w, r, FaultTimeout)
				}
			}
			return
		}
		if launch {
			s.mu.Lock()
			full := s.noCapacity
			s.mu.Unlock()
			if full {
				s.refuse(rt, w, r)
				return
			}
		}
		// The unit fakes also hold the backends to their User-Agent; the simulator serves any client.
		if ua := r.Header.Get("User-Agent"); s.opts.Auth == Strict && !strings.HasPrefix(ua, backends.UserAgent) {
			s.miss("%s %s: User-Agent %q, want %s", r.Method, r.URL.Path, ua, backends.UserAgent)
		}
		if why := rt.serve(s, w, r); why != "" {
			s.miss("%s %s: %s", r.Method, r.URL.Path, why)
		}
	}
}

// refuse answers a launch as having no capacity: the route's own answer, else the provider's.
func (s *Sim) refuse(rt route, w http.ResponseWriter, r *http.Request) {
	if rt.capacity != nil {
		rt.capacity(w, r)
		return
	}
	s.p.capacity(w)
}

// fail answers a failure of a kind (Fault5xx, FaultThrottle, FaultTimeout) as the provider does.
func (s *Sim) fail(w http.ResponseWriter, r *http.Request, kind string) {
	if s.p.failure != nil {
		s.p.failure(w, r, kind)
		return
	}
	switch kind {
	case FaultThrottle:
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusTooManyRequests, s.p.throttleBody)
	case FaultTimeout:
		writeJSON(w, http.StatusGatewayTimeout, s.p.failBody)
	default:
		writeJSON(w, http.StatusInternalServerError, s.p.failBody)
	}
}

// hold keeps a request unanswered for d (0: until the client gives up or the simulation closes);
// it reports whether d passed.
func (s *Sim) hold(r *http.Request, d time.Duration) bool {
	_, _ = io.Copy(io.Discard, r.Body) // lets the server notice when the client gives up
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-r.Context().Done():
	case <-s.stop:
	case <-timeout:
		return true
	}
	return false
}

func (s *Sim) drawFault(launch bool) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.opts.Faults
	if f.Rate <= 0 || s.rng.Float64() >= f.Rate {
		return ""
	}
	kinds := f.Kinds
	if len(kinds) == 0 {
		kinds = FaultKinds
	}
	kind := kinds[s.rng.Intn(len(kinds))]
	if kind == FaultCapacity && !launch {
		return ""
	}
	s.faultsHit[kind]++
	return kind
}

// credOK judges one credential value against the Good config's value of the same creds field.
func (s *Sim) credOK(field, value string) bool {
	if s.opts.Auth == Lenient {
		return value != "" && !strings.Contains(strings.ToLower(value), "invalid")
	}
	creds, _ := s.p.good["creds"].(map[string]any)
	want, _ := creds[field].(string)
	return want != "" && value == want
}

// launch records a new machine, booting; the host (if any) starts it in the background.
func (s *Sim) launch(m *Machine) *Machine {
	n := s.nextSeq()
	if m.ID == "" {
		m.ID = s.p.newID(s, n)
	}
	s.mu.Lock()
	m.Provider = s.Type
	m.Status = StatusBooting
	m.Created = time.Now()
	m.Container = s.p.container
	if _, reused := s.machines[m.ID]; !reused {
		s.order = append(s.order, m.ID)
	}
	s.machines[m.ID] = m
	host := s.opts.Host
	spec := copyMachine(m)
	s.mu.Unlock()
	if host == nil {
		s.mu.Lock()
		m.IP = fmt.Sprintf("198.51.%d.%d", 100+n/250%100, n%250+1)
		m.PrivateIP = fmt.Sprintf("10.%d.%d.%d", n/65536%256, n/256%256, n%256)
		if m.Container {
			m.SSHPort = 40000 + n%20000
			m.Ports = map[int]int{10022: m.SSHPort}
		} else {
			m.SSHPort = 22
		}
		m.ready, m.hostDone = true, true
		s.mu.Unlock()
		return m
	}
	go func() {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-s.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		addr, err := host.Start(ctx, spec)
		s.mu.Lock()
		m.hostDone = true
		stopNow := m.Status == StatusTerminated
		if err != nil {
			m.Error = err.Error()
		} else {
			m.IP, m.PrivateIP, m.SSHPort, m.Ports, m.ready = addr.IP, addr.PrivateIP, addr.SSHPort, addr.Ports, true
		}
		final := copyMachine(m)
		s.mu.Unlock()
		if stopNow && err == nil {
			sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
			_ = host.Stop(sctx, final)
			scancel()
		}
	}()
	return m
}

// refresh moves a booting machine on: active once the boot delay passed and its host is up, failed
// when the host could not start it. Callers hold s.mu.
func (s *Sim) refresh(m *Machine) *Machine {
	if m.Status == StatusBooting && m.hostDone {
		switch {
		case m.Error != "":
			m.Status = StatusFailed
		case m.ready && time.Since(m.Created) >= s.opts.BootDelay:
			m.Status = StatusActive
		}
	}
	return m
}

// get returns a machine by id, refreshed, or nil.
func (s *Sim) get(id string) *Machine {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.machines[id]
	if !ok {
		return nil
	}
	return s.refresh(m)
}

// snapshot returns a copy of a machine, refreshed, or false.
func (s *Sim) snapshot(id string) (Machine, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.machines[id]
	if !ok {
		return Machine{}, false
	}
	return copyMachine(s.refresh(m)), true
}

// terminate marks a machine terminated and stops its host; it reports false when there is no such
// machine, and whether it was already terminated.
func (s *Sim) terminate(id string) (found, already bool) {
	s.mu.Lock()
	m, ok := s.machines[id]
	if !ok {
		s.mu.Unlock()
		return false, false
	}
	if m.Status == StatusTerminated {
		s.mu.Unlock()
		return true, true
	}
	m.Status = StatusTerminated
	host, started, spec := s.opts.Host, m.hostDone && m.Error == "", copyMachine(m)
	s.mu.Unlock()
	if host != nil && started {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = host.Stop(ctx, spec)
		}()
	}
	return true, false
}

// list returns copies of the machines, refreshed, that keep accepts, oldest first.
func (s *Sim) list(keep func(*Machine) bool) []Machine {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Machine
	for _, id := range s.order {
		m := s.refresh(s.machines[id])
		if keep == nil || keep(m) {
			out = append(out, copyMachine(m))
		}
	}
	return out
}

// object stores and finds provider-side objects such as SSH keys and scripts.
func (s *Sim) putObject(kind, id string, v any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.objects[kind] == nil {
		s.objects[kind] = map[string]any{}
	}
	s.objects[kind][id] = v
}

func (s *Sim) deleteObject(kind, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.objects[kind][id]; !ok {
		return false
	}
	delete(s.objects[kind], id)
	return true
}

// Objects returns the provider-side objects of a kind ("ssh-keys", "scripts"), by id.
func (s *Sim) Objects(kind string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]any{}
	for k, v := range s.objects[kind] {
		out[k] = v
	}
	return out
}

func (s *Sim) nextSeq() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return s.seq
}

// Server is one running simulation on an httptest server.
type Server struct {
	*Sim
	// URL is the value for DSTACK_<TYPE>_API_URL: the server's root plus the path prefix of the
	// provider's base URL (e.g. /api/v1 for Lambda).
	URL string
	// Good is a complete backend config (type, creds and required keys) that the fake accepts.
	Good backends.Config
	// Bad is the same config with every secret replaced by one the fake refuses.
	Bad backends.Config
	// Secrets lists every secret value of Good and Bad, for tests that check they never leak.
	Secrets []string

	srv *httptest.Server
}

// DefaultTestBootDelay is how long machines of a test fake boot.
const DefaultTestBootDelay = 50 * time.Millisecond

// Start starts the fake of typ with Strict auth; it stops when the test ends. It does not set
// DSTACK_<TYPE>_API_URL (see Use).
func Start(t testing.TB, typ string) *Server {
	t.Helper()
	return StartWith(t, typ, Options{BootDelay: DefaultTestBootDelay})
}

// StartWith starts the fake of typ with options.
func StartWith(t testing.TB, typ string, opts Options) *Server {
	t.Helper()
	sim, err := New(typ, opts)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Sim: sim}
	if sim.p.tls {
		s.srv = httptest.NewUnstartedServer(sim)
		s.srv.TLS = SimTLSConfig()
		s.srv.StartTLS()
	} else {
		s.srv = httptest.NewServer(sim)
	}
	// Cleanups run last-in first-out: release hung handlers, then close the server.
	t.Cleanup(s.srv.Close)
	t.Cleanup(sim.Close)
	s.URL = s.srv.URL + sim.p.prefix
	good, bad := sim.p.good, sim.p.bad
	if sim.p.at != nil {
		good, bad = sim.p.at(s.URL)
	}
	s.Good = config(typ, good)
	s.Bad = config(typ, bad)
	s.Secrets = append(secrets(good), secrets(bad)...)
	return s
}

// GoodConfigAt is GoodConfig for a simulation serving at url (the value of DSTACK_<TYPE>_API_URL):
// for providers whose credentials name the provider's endpoints (a GCP key's token_uri), they
// point there. For the others it is GoodConfig.
func GoodConfigAt(typ, url string) backends.Config {
	p := providers[typ]
	if p.at == nil {
		return config(typ, p.good)
	}
	good, _ := p.at(url)
	return config(typ, good)
}

// Use starts the fake of typ and points DSTACK_<TYPE>_API_URL at it for the rest of the test (and,
// for a TLS simulation, SSL_CERT_FILE at its certificate).
func Use(t testing.TB, typ string) *Server {
	t.Helper()
	s := Start(t, typ)
	t.Setenv(backends.EnvAPIURL(typ), s.URL)
	if s.p.tls {
		path, err := CertFile()
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv("SSL_CERT_FILE", path)
	}
	return s
}

// writeJSON answers with a JSON body given as text (or as a value to encode).
func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	switch b := body.(type) {
	case string:
		_, _ = w.Write([]byte(b))
	default:
		_ = json.NewEncoder(w).Encode(b)
	}
}

// readJSON decodes a JSON request body into v, refusing unknown fields when strict.
func readJSON(r *http.Request, v any, strict bool) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	if strict {
		dec.DisallowUnknownFields()
	}
	return dec.Decode(v)
}

// bearer returns the token of an `Authorization: Bearer` header, or "".
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func config(typ string, entry map[string]any) backends.Config {
	v := deepCopy(entry)
	v["type"] = typ
	return backends.Config{Type: typ, Values: v}
}

func deepCopy(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		switch x := v.(type) {
		case map[string]any:
			v = deepCopy(x)
		case []any:
			v = append([]any(nil), x...)
		}
		out[k] = v
	}
	return out
}

// secrets collects the values under creds except its type.
func secrets(entry map[string]any) []string {
	creds, _ := entry["creds"].(map[string]any)
	var out []string
	for k, v := range creds {
		if s, ok := v.(string); ok && k != "type" {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

func apiKeyCreds(key string) map[string]any {
	return map[string]any{"type": "api_key", "api_key": key}
}

// hexID returns n hex digits from the simulation's random source.
func (s *Sim) hexID(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[s.rng.Intn(16)]
	}
	return string(b)
}

// uuid returns a random version-4 UUID.
func (s *Sim) uuid() string {
	h := s.hexID(32)
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:]
}

func sortStrings(s []string) { sort.Strings(s) }

// Terminate ends a machine as if the provider took it away (a spot interruption, a user in the
// console); it reports whether the machine exists.
func (s *Sim) Terminate(id string) bool {
	found, _ := s.terminate(id)
	return found
}
