package gatewayd

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/dstackgo/dstack/internal/sshpool"
	"github.com/dstackgo/dstack/internal/testhost/sshserver"
)

// host is a replica's machine: a real SSH server that accepts the project key, and the service's
// app listening on loopback, reached through the SSH server's direct-tcpip forwarding.
type host struct {
	name    string
	ssh     *sshserver.Server
	sshPort int
	appPort int
	hostKey sshserver.Key
}

func newKey(t *testing.T) sshserver.Key {
	t.Helper()
	k, err := sshserver.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// startHost starts a replica host whose app answers with echo (or app, when set).
func startHost(t *testing.T, name string, projectKey sshserver.Key, app http.Handler) *host {
	t.Helper()
	if app == nil {
		app = echoApp(name)
	}
	web := httptest.NewServer(app)
	t.Cleanup(web.Close)
	h := &host{name: name, hostKey: newKey(t), appPort: port(t, web.Listener.Addr())}
	h.ssh = &sshserver.Server{HostKey: h.hostKey.Signer, AuthorizedKeys: []ssh.PublicKey{projectKey.Signer.PublicKey()}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.sshPort = port(t, ln.Addr())
	go h.ssh.Serve(ln)
	t.Cleanup(h.ssh.Close)
	return h
}

func port(t *testing.T, a net.Addr) int {
	t.Helper()
	return a.(*net.TCPAddr).Port
}

func (h *host) replica() Replica {
	return Replica{ID: h.name, AppPort: h.appPort, SSH: SSH{Host: "127.0.0.1", Port: h.sshPort, User: "ubuntu",
		HostKey: strings.TrimSpace(h.hostKey.Public)}}
}

// echoed is what echoApp answers: who answered and what it received.
type echoed struct {
	Replica string            `json:"replica"`
	Method  string            `json:"method"`
	URI     string            `json:"uri"`
	Host    string            `json:"host"`
	Body    string            `json:"body"`
	Headers map[string]string `json:"headers"`
}

func echoApp(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		e := echoed{Replica: name, Method: r.Method, URI: r.RequestURI, Host: r.Host, Body: string(body), Headers: map[string]string{}}
		for _, k := range []string{"Authorization", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"} {
			if v := r.Header.Values(k); len(v) > 0 {
				e.Headers[k] = strings.Join(v, ", ")
			}
		}
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusInternalServerError)
		}
		_ = json.NewEncoder(w).Encode(e)
	})
}

// newGateway returns a gateway whose data plane listens on an httptest server, and its SSH pool.
func newGateway(t *testing.T, opts Options) (*Gateway, *httptest.Server, *sshpool.Pool) {
	t.Helper()
	if opts.StateDir == "" {
		opts.StateDir = t.TempDir()
	}
	if opts.Pool == nil {
		opts.Pool = sshpool.New()
		opts.Pool.DialTimeout = time.Minute // a loaded test machine is slow to handshake, not down
		t.Cleanup(opts.Pool.CloseAll)
	}
	g := New(opts)
	t.Cleanup(g.Close)
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	return g, srv, opts.Pool
}

func apply(t *testing.T, g *Gateway, cfg Config) {
	t.Helper()
	if err := g.Apply(cfg); err != nil {
		t.Fatal(err)
	}
}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// do sends a request for host to the gateway at base and returns the answer and its body.
func do(t *testing.T, method, base, host, path string, hdr http.Header, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func get(t *testing.T, base, host, path string) (*http.Response, string) {
	t.Helper()
	return do(t, http.MethodGet, base, host, path, nil, nil)
}

// echo sends a request that the echo app must answer with 200.
func echo(t *testing.T, base, host, path string, hdr http.Header) echoed {
	t.Helper()
	resp, body := do(t, http.MethodGet, base, host, path, hdr, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s%s: %s: %s", host, path, resp.Status, body)
	}
	var e echoed
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("GET %s%s: %v: %s", host, path, err, body)
	}
	return e
}

func svcOf(domain string, https bool, hosts ...*host) Service {
	s := Service{Project: "main", RunName: strings.Split(domain, ".")[0], Domain: domain, HTTPS: https}
	for _, h := range hosts {
		s.Replicas = append(s.Replicas, h.replica())
	}
	return s
}
