package gatewayd

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func sha(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func TestRoutingByHost(t *testing.T) {
	key := newKey(t)
	web, api := startHost(t, "web-0", key, nil), startHost(t, "api-0", key, nil)
	g, srv, _ := newGateway(t, Options{})
	apply(t, g, Config{TLS: TLSNone, SSHPrivateKey: key.PrivatePEM, Services: []Service{
		svcOf("web.example.com", true, web), svcOf("api.example.com", false, api)}})

	if e := echo(t, srv.URL, "WEB.Example.com:8080", "/a/b?x=1", nil); e.Replica != "web-0" || e.URI != "/a/b?x=1" || e.Host != "WEB.Example.com:8080" {
		t.Fatalf("web: %+v", e)
	}
	if e := echo(t, srv.URL, "api.example.com", "/", nil); e.Replica != "api-0" {
		t.Fatalf("api: %+v", e)
	}
	e := echo(t, srv.URL, "api.example.com", "/", http.Header{"X-Forwarded-For": {"203.0.113.7"}, "X-Forwarded-Proto": {"https"}})
	if !strings.HasPrefix(e.Headers["X-Forwarded-For"], "203.0.113.7, 127.0.0.1") || e.Headers["X-Forwarded-Proto"] != "https" ||
		e.Headers["X-Forwarded-Host"] != "api.example.com" {
		t.Fatalf("behind a load balancer, its forwarding headers are extended: %v", e.Headers)
	}
	resp, body := get(t, srv.URL, "other.example.com", "/")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, `no service is registered for host "other.example.com"`) {
		t.Fatalf("unknown host: %s %q", resp.Status, body)
	}
}

func TestForwardedHeadersWithoutLoadBalancer(t *testing.T) {
	key := newKey(t)
	web := startHost(t, "web-0", key, nil)
	g, srv, _ := newGateway(t, Options{})
	apply(t, g, Config{TLS: TLSLetsEncrypt, SSHPrivateKey: key.PrivatePEM, Services: []Service{svcOf("web.example.com", false, web)}})
	// Nothing in front: what the client claims is replaced.
	e := echo(t, srv.URL, "web.example.com", "/", http.Header{"X-Forwarded-For": {"203.0.113.7"}, "X-Forwarded-Proto": {"https"}})
	if e.Headers["X-Forwarded-For"] != "127.0.0.1" || e.Headers["X-Forwarded-Proto"] != "http" {
		t.Fatalf("forwarding headers: %v", e.Headers)
	}
}

func TestAuth(t *testing.T) {
	key := newKey(t)
	h := startHost(t, "web-0", key, nil)
	g, srv, _ := newGateway(t, Options{})
	private := svcOf("private.example.com", false, h)
	private.Auth = true
	private.AuthTokensSHA256 = []string{sha("other-token"), strings.ToUpper(sha("good-token"))}
	public := svcOf("public.example.com", false, h)
	apply(t, g, Config{TLS: TLSNone, SSHPrivateKey: key.PrivatePEM, Services: []Service{private, public}})

	if e := echo(t, srv.URL, "public.example.com", "/", http.Header{"Authorization": {"Bearer anything"}}); e.Headers["Authorization"] != "" {
		t.Fatalf("Authorization forwarded to a service without auth: %v", e.Headers)
	}
	for name, tc := range map[string]struct {
		auth string
		code int
		want string
	}{
		"missing":    {"", http.StatusUnauthorized, `"detail":"this service requires a dstack token`},
		"not bearer": {"Basic Z29vZC10b2tlbg==", http.StatusUnauthorized, `"detail"`},
		"wrong":      {"Bearer bad-token", http.StatusForbidden, `"detail":"the token does not give access`},
	} {
		hdr := http.Header{}
		if tc.auth != "" {
			hdr.Set("Authorization", tc.auth)
		}
		resp, body := do(t, http.MethodGet, srv.URL, "private.example.com", "/", hdr, nil)
		if resp.StatusCode != tc.code || !strings.Contains(body, tc.want) || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %s %q", name, resp.Status, body)
		}
	}
	e := echo(t, srv.URL, "private.example.com", "/", http.Header{"Authorization": {"Bearer good-token"}})
	if e.Replica != "web-0" || e.Headers["Authorization"] != "" {
		t.Fatalf("right token: %+v", e)
	}
}

func TestRoundRobinFailoverAndUpdate(t *testing.T) {
	key := newKey(t)
	a, b := startHost(t, "a", key, nil), startHost(t, "b", key, nil)
	g, srv, pool := newGateway(t, Options{})
	both := Config{TLS: TLSNone, SSHPrivateKey: key.PrivatePEM, Services: []Service{svcOf("web.example.com", false, a, b)}}
	apply(t, g, both)

	count := func(n int) map[string]int {
		got := map[string]int{}
		for range n {
			got[echo(t, srv.URL, "web.example.com", "/", nil).Replica]++
		}
		return got
	}
	if got := count(6); got["a"] != 3 || got["b"] != 3 {
		t.Fatalf("round robin: %v", got)
	}
	if pool.Len() != 2 {
		t.Fatalf("%d SSH connections, want one per host", pool.Len())
	}
	// Re-sending the same configuration keeps the connections.
	apply(t, g, both)
	if pool.Len() != 2 {
		t.Fatalf("%d SSH connections after re-applying, want 2", pool.Len())
	}

	// A POST body survives the failover: it was never sent to the dead replica. Requests racing with
	// the loss of a kept-alive connection may fail (the app could have received them); once the gateway
	// has noticed, none does.
	a.ssh.Close()
	for deadline := time.Now().Add(5 * time.Second); pool.Len() != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the dead host's SSH connection is still pooled")
		}
	}
	time.Sleep(100 * time.Millisecond) // the transport drops the connections over it
	for i := range 4 {
		resp, body := do(t, http.MethodPost, srv.URL, "web.example.com", "/", nil, strings.NewReader("payload"))
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"replica":"b"`) || !strings.Contains(body, `"body":"payload"`) {
			t.Fatalf("request %d with a replica down: %s %s", i, resp.Status, body)
		}
	}

	// The update drops a: it gets no request and its connection is closed.
	c := startHost(t, "c", key, nil)
	apply(t, g, Config{TLS: TLSNone, SSHPrivateKey: key.PrivatePEM, Services: []Service{svcOf("web.example.com", false, b, c)}})
	if got := count(4); got["b"] != 2 || got["c"] != 2 {
		t.Fatalf("after the update: %v", got)
	}
	if pool.Len() != 2 {
		t.Fatalf("%d SSH connections after the update, want 2 (b and c)", pool.Len())
	}
	apply(t, g, Config{TLS: TLSNone, SSHPrivateKey: key.PrivatePEM, Services: []Service{svcOf("web.example.com", false, c)}})
	if pool.Len() != 1 {
		t.Fatalf("%d SSH connections, want 1 (c)", pool.Len())
	}

	// No replica reachable: 502 with the reason.
	c.ssh.Close()
	resp, body := get(t, srv.URL, "web.example.com", "/")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "the service web did not answer") || !strings.Contains(body, "cannot reach 127.0.0.1:") {
		t.Fatalf("all down: %s %q", resp.Status, body)
	}
	apply(t, g, Config{TLS: TLSNone, SSHPrivateKey: key.PrivatePEM, Services: []Service{svcOf("web.example.com", false)}})
	resp, body = get(t, srv.URL, "web.example.com", "/")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "no running replica") {
		t.Fatalf("no replicas: %s %q", resp.Status, body)
	}
}

func TestAppPortClosedFailsOver(t *testing.T) {
	key := newKey(t)
	a, b := startHost(t, "a", key, nil), startHost(t, "b", key, nil)
	g, srv, _ := newGateway(t, Options{})
	broken := a.replica()
	broken.AppPort = 1 // the host is up, nothing listens there
	svc := svcOf("web.example.com", false, b)
	svc.Replicas = append([]Replica{broken}, svc.Replicas...)
	apply(t, g, Config{TLS: TLSNone, SSHPrivateKey: key.PrivatePEM, Services: []Service{svc}})
	for range 4 {
		if e := echo(t, srv.URL, "web.example.com", "/", nil); e.Replica != "b" {
			t.Fatalf("answered by %s", e.Replica)
		}
	}
}

func TestRedirectToHTTPS(t *testing.T) {
	key := newKey(t)
	h := startHost(t, "web-0", key, nil)
	g, srv, _ := newGateway(t, Options{})
	cfg := Config{TLS: TLSLetsEncrypt, SSHPrivateKey: key.PrivatePEM, Services: []Service{
		svcOf("secure.example.com", true, h), svcOf("plain.example.com", false, h)}}
	apply(t, g, cfg)

	resp, _ := get(t, srv.URL, "Secure.example.com:80", "/v1/models?limit=2")
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != "https://secure.example.com/v1/models?limit=2" {
		t.Fatalf("https service over HTTP: %s %q", resp.Status, resp.Header.Get("Location"))
	}
	// The ACME HTTP-01 challenge is answered by the certificate manager, not redirected.
	resp, body := get(t, srv.URL, "secure.example.com", "/.well-known/acme-challenge/some-token")
	if resp.StatusCode == http.StatusPermanentRedirect || !strings.Contains(body, "acme/autocert") {
		t.Fatalf("challenge: %s %q", resp.Status, body)
	}
	if e := echo(t, srv.URL, "plain.example.com", "/", nil); e.Replica != "web-0" {
		t.Fatalf("http service: %+v", e)
	}

	// With HTTPS terminated in front, nothing is redirected.
	cfg.TLS = TLSNone
	apply(t, g, cfg)
	if e := echo(t, srv.URL, "secure.example.com", "/x", nil); e.URI != "/x" {
		t.Fatalf("tls none: %+v", e)
	}

	// A non-standard HTTPS port is kept in the redirect.
	g2, srv2, _ := newGateway(t, Options{HTTPSPort: 8443})
	apply(t, g2, Config{SSHPrivateKey: key.PrivatePEM, Services: []Service{svcOf("secure.example.com", true, h)}})
	resp, _ = get(t, srv2.URL, "secure.example.com", "/")
	if resp.Header.Get("Location") != "https://secure.example.com:8443/" {
		t.Fatalf("redirect to port 8443: %q", resp.Header.Get("Location"))
	}
}

func TestStreamingAndWebSocket(t *testing.T) {
	key := newKey(t)
	release := make(chan struct{})
	app := http.NewServeMux()
	app.HandleFunc("/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write([]byte("data: first\n\n"))
		http.NewResponseController(w).Flush()
		<-release // the client must see the first event before the second is written
		_, _ = w.Write([]byte("data: second\n\n"))
	})
	app.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		typ, msg, err := c.Read(r.Context())
		if err != nil {
			return
		}
		_ = c.Write(r.Context(), typ, append([]byte("echo: "), msg...))
		_ = c.Close(websocket.StatusNormalClosure, "")
	})
	h := startHost(t, "web-0", key, app)
	g, srv, _ := newGateway(t, Options{})
	svc := svcOf("web.example.com", false, h)
	svc.Auth, svc.AuthTokensSHA256 = true, []string{sha("tok")}
	apply(t, g, Config{TLS: TLSNone, SSHPrivateKey: key.PrivatePEM, Services: []Service{svc}})

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/events", nil)
	req.Host = "web.example.com"
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	first := make(chan string, 1)
	go func() {
		line, _ := rd.ReadString('\n')
		first <- line
	}()
	select {
	case line := <-first:
		if line != "data: first\n" {
			t.Fatalf("first event: %q", line)
		}
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("the first event was held back by the gateway")
	}
	close(release)
	rest, _ := rd.ReadString(0)
	if !strings.Contains(rest, "data: second") {
		t.Fatalf("rest of the stream: %q", rest)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", &websocket.DialOptions{
		Host: "web.example.com", HTTPHeader: http.Header{"Authorization": {"Bearer tok"}}})
	if err != nil {
		t.Fatalf("websocket through the gateway: %v", err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := c.Read(ctx); err != nil || string(msg) != "echo: hi" {
		t.Fatalf("websocket answer: %q %v", msg, err)
	}
}

func TestProxyJump(t *testing.T) {
	key := newKey(t)
	jump, h := startHost(t, "jump", key, nil), startHost(t, "web-0", key, nil)
	g, srv, pool := newGateway(t, Options{})
	svc := svcOf("web.example.com", false, h)
	svc.Replicas[0].SSH.Proxy = &SSH{Host: "127.0.0.1", Port: jump.sshPort, User: "root"}
	apply(t, g, Config{TLS: TLSNone, SSHPrivateKey: key.PrivatePEM, Services: []Service{svc}})
	if e := echo(t, srv.URL, "web.example.com", "/", nil); e.Replica != "web-0" {
		t.Fatalf("through the jump host: %+v", e)
	}
	if pool.Len() != 2 {
		t.Fatalf("%d SSH connections, want the jump host's and the replica's", pool.Len())
	}
	// Removing the replica closes both.
	apply(t, g, Config{TLS: TLSNone, SSHPrivateKey: key.PrivatePEM})
	if pool.Len() != 0 {
		t.Fatalf("%d SSH connections left", pool.Len())
	}
}
