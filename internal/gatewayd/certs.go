package gatewayd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// acmeState is the certificate manager and its HTTP-01 challenge handler.
type acmeState struct {
	manager   *autocert.Manager
	challenge http.Handler
}

// ensureACME makes the certificate manager on the first Let's Encrypt configuration. The e-mail goes
// into the ACME account, which is registered once and kept in the state directory, so later changes
// of acme_email do not apply to it. Called with g.mu held.
func (g *Gateway) ensureACME(email string) {
	if g.acme.Load() != nil {
		return
	}
	m := &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(g.certDir()),
		HostPolicy: g.hostPolicy,
		Email:      email,
		Client:     &acme.Client{DirectoryURL: g.opts.ACMEDirectory, UserAgent: "dstack-gateway/" + Version},
	}
	g.acme.Store(&acmeState{manager: m, challenge: m.HTTPHandler(nil)})
}

func (g *Gateway) certDir() string { return filepath.Join(g.opts.StateDir, "certs") }

// hostPolicy lets the ACME client ask for certificates of registered HTTPS services only, so that
// anyone pointing a name at the gateway cannot make it request certificates.
func (g *Gateway) hostPolicy(_ context.Context, host string) error {
	st := g.state.Load()
	if st.tls != TLSLetsEncrypt {
		return errors.New("HTTPS is terminated in front of this gateway (tls: none)")
	}
	svc := st.services[hostName(host)]
	if svc == nil {
		return fmt.Errorf("no service is registered for %s", host)
	}
	if !svc.HTTPS {
		return fmt.Errorf("the service at %s is not served over HTTPS", host)
	}
	return nil
}

// TLSConfig is the configuration of the HTTPS listener.
func (g *Gateway) TLSConfig() *tls.Config {
	return &tls.Config{
		GetCertificate: g.getCertificate,
		NextProtos:     []string{"h2", "http/1.1", acme.ALPNProto},
		MinVersion:     tls.VersionTLS12,
	}
}

// getCertificate answers HTTPS services through the ACME manager (which issues and renews their
// certificates) and HTTP services with a certificate already in the cache, if any.
func (g *Gateway) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	st := g.state.Load()
	if st.tls != TLSLetsEncrypt {
		return nil, errors.New("dstack-gateway: HTTPS is terminated in front of this gateway")
	}
	name := hostName(hello.ServerName)
	svc := st.services[name]
	if svc == nil {
		return nil, fmt.Errorf("dstack-gateway: no service is registered for %q", hello.ServerName)
	}
	a := g.acme.Load()
	if svc.HTTPS {
		return a.manager.GetCertificate(hello)
	}
	return g.cachedCertificate(hello, a.manager.Cache, name)
}

// cachedCertificate reads a certificate of name that autocert stored earlier (the ECDSA one, or the
// RSA one for clients without ECDSA) without asking the ACME directory for one.
func (g *Gateway) cachedCertificate(hello *tls.ClientHelloInfo, cache autocert.Cache, name string) (*tls.Certificate, error) {
	for _, key := range []string{name, name + "+rsa"} {
		data, err := cache.Get(hello.Context(), key)
		if err != nil {
			continue
		}
		// autocert stores the private key and the chain as PEM blocks in one entry.
		cert, err := tls.X509KeyPair(data, data)
		if err != nil || cert.Leaf == nil || g.now().After(cert.Leaf.NotAfter) || cert.Leaf.VerifyHostname(name) != nil {
			continue
		}
		if hello.SupportsCertificate(&cert) == nil {
			return &cert, nil
		}
	}
	return nil, fmt.Errorf("dstack-gateway: the service at %s is not served over HTTPS and has no certificate", name)
}
