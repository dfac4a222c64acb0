package gatewayd

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/acme/autocert"
)

// cacheCert stores a self-signed certificate for domain in the gateway's certificate cache, as autocert
// stores the certificates it obtained, and returns it for the clients' trust store.
func cacheCert(t *testing.T, stateDir, domain string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: domain},
		DNSNames: []string{domain}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_ = pem.Encode(&buf, &pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := autocert.DirCache(filepath.Join(stateDir, "certs")).Put(context.Background(), domain, buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert
}

// httpsClient connects to addr whatever the URL's host, which stays the server name it asks for.
func httpsClient(addr string, roots *x509.CertPool) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true,
	}}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestServe runs the gateway on its three listeners: configuration and stats through Client, HTTPS
// with certificates from the cache, and a graceful shutdown.
func TestServe(t *testing.T) {
	key := newKey(t)
	h := startHost(t, "web-0", key, nil)
	stateDir := t.TempDir()
	g := New(Options{StateDir: stateDir})
	defer g.Close()
	l := Listeners{API: listen(t), HTTP: listen(t), HTTPS: listen(t)}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- g.Serve(ctx, l) }()
	defer func() {
		cancel()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(ShutdownGrace + 5*time.Second):
			t.Error("Serve did not return after the context ended")
		}
	}()

	c := NewClient("http://"+l.API.Addr().String()+"/", nil)
	hc, err := c.Healthcheck(ctx)
	if err != nil || hc != (Health{Service: "dstack-gateway", Version: Version}) {
		t.Fatalf("healthcheck: %+v %v", hc, err)
	}
	err = c.SetConfig(ctx, Config{SSHPrivateKey: key.PrivatePEM, Services: []Service{{Domain: "Bad"}}})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest || !strings.Contains(apiErr.Detail, "not lowercase") {
		t.Fatalf("bad config: %v", err)
	}
	if err := c.SetConfig(ctx, Config{TLS: TLSLetsEncrypt, SSHPrivateKey: key.PrivatePEM, Services: []Service{
		svcOf("secure.example.com", true, h), svcOf("plain.example.com", false, h), svcOf("nocert.example.com", false, h),
	}}); err != nil {
		t.Fatal(err)
	}

	roots := x509.NewCertPool()
	roots.AddCert(cacheCert(t, stateDir, "secure.example.com"))
	roots.AddCert(cacheCert(t, stateDir, "plain.example.com"))
	hs := httpsClient(l.HTTPS.Addr().String(), roots)
	for _, domain := range []string{"secure.example.com", "plain.example.com"} {
		resp, err := hs.Get("https://" + domain + "/x")
		if err != nil {
			t.Fatalf("%s over HTTPS: %v", domain, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e echoed
		_ = json.Unmarshal(body, &e)
		if resp.StatusCode != http.StatusOK || e.URI != "/x" || e.Headers["X-Forwarded-Proto"] != "https" {
			t.Fatalf("%s over HTTPS: %s %s", domain, resp.Status, body)
		}
	}
	// An HTTP service without a certificate gets none from ACME, nor does an unregistered name.
	for _, domain := range []string{"nocert.example.com", "unknown.example.com"} {
		if _, err := hs.Get("https://" + domain + "/"); err == nil || !strings.Contains(err.Error(), "tls") {
			t.Fatalf("%s over HTTPS: %v, want a handshake failure", domain, err)
		}
	}
	// Plain HTTP on the same gateway: the HTTPS service redirects, the HTTP service answers.
	base := "http://" + l.HTTP.Addr().String()
	if resp, _ := get(t, base, "secure.example.com", "/x"); resp.StatusCode != http.StatusPermanentRedirect {
		t.Fatalf("secure over HTTP: %s", resp.Status)
	}
	echo(t, base, "nocert.example.com", "/", nil)

	st, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Services) != 3 || st.Services["secure.example.com"].Requests != 1 || st.Services["nocert.example.com"].Requests1m != 1 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestHostPolicy(t *testing.T) {
	key := newKey(t)
	g := New(Options{StateDir: t.TempDir()})
	defer g.Close()
	cfg := Config{SSHPrivateKey: key.PrivatePEM, Services: []Service{svcOf("secure.example.com", true), svcOf("plain.example.com", false)}}
	apply(t, g, cfg)
	ctx := context.Background()
	if err := g.hostPolicy(ctx, "secure.example.com"); err != nil {
		t.Fatalf("registered https service refused: %v", err)
	}
	if err := g.hostPolicy(ctx, "Secure.Example.com:80"); err != nil {
		t.Fatalf("host with port and case refused: %v", err)
	}
	for host, want := range map[string]string{
		"evil.example.com":  "no service is registered",
		"plain.example.com": "not served over HTTPS",
	} {
		if err := g.hostPolicy(ctx, host); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", host, err, want)
		}
	}
	// The policy is the manager's: its GetCertificate refuses before any ACME request.
	_, err := g.acme.Load().manager.GetCertificate(&tls.ClientHelloInfo{ServerName: "evil.example.com"})
	if err == nil || !strings.Contains(err.Error(), "no service is registered") {
		t.Fatalf("manager for an unregistered name: %v", err)
	}
	cfg.TLS = TLSNone
	apply(t, g, cfg)
	if err := g.hostPolicy(ctx, "secure.example.com"); err == nil {
		t.Fatal("tls none: the policy allowed a certificate")
	}
}
