package testhost

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/sshpool"
	"github.com/dstackgo/dstack/internal/testhost/sshserver"
)

func TestHostOverSSH(t *testing.T) {
	key, err := sshserver.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	h := Start(t, key)
	pool := sshpool.New()
	defer pool.CloseAll()
	tg := sshpool.Target{User: h.User, Host: h.IP, Port: 22, PrivateKey: key.PrivatePEM}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var out []byte
	for deadline := time.Now().Add(20 * time.Second); ; {
		if out, err = pool.Run(ctx, tg, "uname -m && sudo -n true && test -S /var/run/docker.sock && echo ok", nil); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("host not reachable: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.HasSuffix(string(out), "ok\n") {
		t.Fatalf("checks: %q", out)
	}
	// A daemon started over SSH outlives the session, and its port is reachable through the tunnel.
	if _, err := pool.Run(ctx, tg, "mkdir -p /tmp/www && echo page > /tmp/www/index.html && setsid httpd -f -p 127.0.0.1:8080 -h /tmp/www >/dev/null 2>&1 </dev/null &", nil); err != nil {
		t.Fatal(err)
	}
	hc := pool.HTTPClient(tg, 5*time.Second)
	for deadline := time.Now().Add(5 * time.Second); ; {
		resp, err := hc.Get("http://127.0.0.1:8080/index.html")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "page\n" {
				t.Fatalf("body %q", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tunnel: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out, err := pool.Run(ctx, tg, "echo $DSTACK_SHIM_NETWORK_CONTAINER", nil); err != nil || string(out) != h.Name+"\n" {
		t.Fatalf("host env: %q %v", out, err)
	}
}
