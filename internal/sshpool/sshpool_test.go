package sshpool

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/dstackgo/dstack/internal/testhost/sshserver"
)

type host struct {
	srv    *sshserver.Server
	port   int
	hostKy sshserver.Key
	accept atomic.Int32 // connections accepted
}

// countingListener counts accepted connections, to tell reuse from redial.
type countingListener struct {
	net.Listener
	n *atomic.Int32
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

func newKey(t *testing.T) sshserver.Key {
	t.Helper()
	k, err := sshserver.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func startHost(t *testing.T, authorized ...sshserver.Key) *host {
	t.Helper()
	h := &host{hostKy: newKey(t)}
	var keys []ssh.PublicKey
	for _, k := range authorized {
		keys = append(keys, k.Signer.PublicKey())
	}
	h.srv = &sshserver.Server{HostKey: h.hostKy.Signer, AuthorizedKeys: keys}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.port = ln.Addr().(*net.TCPAddr).Port
	go h.srv.Serve(countingListener{ln, &h.accept})
	t.Cleanup(h.srv.Close)
	return h
}

func target(h *host, k sshserver.Key) Target {
	return Target{User: "root", Host: "127.0.0.1", Port: h.port, PrivateKey: k.PrivatePEM}
}

func TestRunAndReuse(t *testing.T) {
	k := newKey(t)
	h := startHost(t, k)
	p := New()
	defer p.CloseAll()
	ctx := context.Background()
	tg := target(h, k)
	out, err := p.Run(ctx, tg, "echo hello; echo err >&2", nil)
	if err != nil || string(out) != "hello\n" {
		t.Fatalf("run: %q %v", out, err)
	}
	out, err = p.Run(ctx, tg, "cat; printf x", strings.NewReader("in-"))
	if err != nil || string(out) != "in-x" {
		t.Fatalf("stdin: %q %v", out, err)
	}
	_, err = p.Run(ctx, tg, "echo bad >&2; exit 3", nil)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 3 || strings.TrimSpace(ee.Stderr) != "bad" {
		t.Fatalf("exit: %v", err)
	}
	if n := h.accept.Load(); n != 1 {
		t.Fatalf("%d connections for three commands, want 1", n)
	}
}

func TestConcurrentFirstUseDialsOnce(t *testing.T) {
	k := newKey(t)
	h := startHost(t, k)
	p := New()
	defer p.CloseAll()
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := p.Run(context.Background(), target(h, k), "true", nil); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := h.accept.Load(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
}

func TestAuthRefused(t *testing.T) {
	h := startHost(t, newKey(t))
	p := New()
	defer p.CloseAll()
	_, err := p.Run(context.Background(), target(h, newKey(t)), "true", nil)
	if !IsAuthError(err) {
		t.Fatalf("want an auth error, got %v", err)
	}
	if p.Len() != 0 {
		t.Fatal("failed connection kept in the pool")
	}
}

func TestHostKeyTrustOnFirstUse(t *testing.T) {
	k := newKey(t)
	h := startHost(t, k)
	p := New()
	defer p.CloseAll()
	var got string
	p.OnHostKey = func(_ Target, line string) { got = line }
	tg := target(h, k)
	if _, err := p.Run(context.Background(), tg, "true", nil); err != nil {
		t.Fatal(err)
	}
	if got != strings.TrimSpace(string(ssh.MarshalAuthorizedKey(h.hostKy.Signer.PublicKey()))) {
		t.Fatalf("OnHostKey got %q", got)
	}
	// The stored key is accepted; another one is refused.
	p2 := New()
	defer p2.CloseAll()
	tg.HostKey = got
	if _, err := p2.Run(context.Background(), tg, "true", nil); err != nil {
		t.Fatal(err)
	}
	tg.HostKey = newKey(t).Public
	_, err := New().Run(context.Background(), tg, "true", nil)
	var mm *HostKeyMismatchError
	if !errors.As(err, &mm) {
		t.Fatalf("want a host key mismatch, got %v", err)
	}
}

func TestReconnectAfterDrop(t *testing.T) {
	k := newKey(t)
	h := startHost(t, k)
	p := New()
	defer p.CloseAll()
	tg := target(h, k)
	ctx := context.Background()
	if _, err := p.Run(ctx, tg, "true", nil); err != nil {
		t.Fatal(err)
	}
	h.srv.DropConnections()
	// The dead connection is noticed (by the watcher or by the failing session) and redialled.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := p.Run(ctx, tg, "true", nil)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reconnect: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := h.accept.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

func TestKeepAliveDropsDeadHost(t *testing.T) {
	k := newKey(t)
	h := startHost(t, k)
	p := New()
	p.KeepAlive = 50 * time.Millisecond
	defer p.CloseAll()
	if _, err := p.Run(context.Background(), target(h, k), "true", nil); err != nil {
		t.Fatal(err)
	}
	h.srv.Close()
	deadline := time.Now().Add(3 * time.Second)
	for p.Len() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("dead connection still pooled")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRunCancel(t *testing.T) {
	k := newKey(t)
	h := startHost(t, k)
	p := New()
	defer p.CloseAll()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := p.Run(ctx, target(h, k), "sleep 10", nil)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 3*time.Second {
		t.Fatalf("cancel: %v after %v", err, time.Since(start))
	}
}

func TestHTTPThroughTunnelAndProxyJump(t *testing.T) {
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "agent "+r.URL.Path)
	}))
	defer web.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(web.URL, "http://"))

	k := newKey(t)
	jump := startHost(t, k)
	h := startHost(t, k)
	p := New()
	defer p.CloseAll()
	for name, tg := range map[string]Target{
		"direct": target(h, k),
		"jump":   {User: "root", Host: "127.0.0.1", Port: h.port, PrivateKey: k.PrivatePEM, Proxy: &Target{User: "j", Host: "127.0.0.1", Port: jump.port, PrivateKey: k.PrivatePEM}},
	} {
		hc := p.HTTPClient(tg, 5*time.Second)
		for i := range 3 {
			resp, err := hc.Get("http://127.0.0.1:" + port + "/api/healthcheck")
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "agent /api/healthcheck" {
				t.Fatalf("%s %d: %q", name, i, body)
			}
		}
	}
	if jump.accept.Load() != 1 || h.accept.Load() != 2 {
		t.Fatalf("connections: jump %d, host %d; want 1 and 2", jump.accept.Load(), h.accept.Load())
	}
	// Nothing listening: the channel is refused, the connection stays.
	_, err := p.HTTPClient(target(h, k), time.Second).Get("http://127.0.0.1:1/")
	if err == nil {
		t.Fatal("want an error for a closed port")
	}
	if _, err := p.Run(context.Background(), target(h, k), "true", nil); err != nil || h.accept.Load() != 2 {
		t.Fatalf("connection not kept after a refused channel: %v, %d", err, h.accept.Load())
	}
}

func TestUploadAndQuote(t *testing.T) {
	k := newKey(t)
	h := startHost(t, k)
	p := New()
	defer p.CloseAll()
	path := t.TempDir() + "/sub dir/it's"
	if err := p.Upload(context.Background(), target(h, k), path, 0o755, strings.NewReader("#!/bin/sh\necho up\n"), false); err != nil {
		t.Fatal(err)
	}
	out, err := p.Run(context.Background(), target(h, k), Quote(path), nil)
	if err != nil || string(out) != "up\n" {
		t.Fatalf("%q %v", out, err)
	}
}
