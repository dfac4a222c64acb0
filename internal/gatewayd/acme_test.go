package gatewayd

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/acme"
)

// fakeACME is an ACME CA (RFC 8555) that offers http-01 challenges only and validates them by
// fetching http://<domain>/.well-known/acme-challenge/<token> from the gateway's HTTP listener, as
// Let's Encrypt does from the internet. Requests are flattened JWS signed with ES256, checked here.
type fakeACME struct {
	t        *testing.T
	srv      *httptest.Server
	httpAddr string // where domains resolve to: the gateway's HTTP listener
	caKey    *ecdsa.PrivateKey
	ca       *x509.Certificate

	mu         sync.Mutex
	accounts   []*ecdsa.PublicKey // kid /acct/<i>
	orders     []*acmeOrder
	authzs     []*acmeAuthz
	nonce      int
	validated  []string // challenge URLs fetched from the gateway
	validation []string // what the gateway answered
}

type acmeOrder struct {
	account int
	domain  string
	authz   int
	csr     *x509.CertificateRequest
	chain   []byte
}

type acmeAuthz struct {
	account int
	domain  string
	token   string
	status  string
}

func newFakeACME(t *testing.T, httpAddr string) *fakeACME {
	t.Helper()
	f := &fakeACME{t: t, httpAddr: httpAddr}
	var err error
	if f.caKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fake ACME CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &f.caKey.PublicKey, f.caKey)
	if err != nil {
		t.Fatal(err)
	}
	f.ca, _ = x509.ParseCertificate(der)
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeACME) url(path string) string { return f.srv.URL + path }

func (f *fakeACME) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.nonce++
	w.Header().Set("Replay-Nonce", fmt.Sprintf("nonce-%d", f.nonce))
	f.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	switch {
	case r.URL.Path == "/directory":
		writeJSON(w, http.StatusOK, map[string]any{"newNonce": f.url("/nonce"), "newAccount": f.url("/account"),
			"newOrder": f.url("/order"), "revokeCert": f.url("/revoke"), "keyChange": f.url("/key-change"),
			"meta": map[string]any{"termsOfService": f.url("/terms")}})
	case r.URL.Path == "/nonce":
		w.WriteHeader(http.StatusOK)
	case r.Method != http.MethodPost:
		problem(w, http.StatusMethodNotAllowed, "malformed", "POST only")
	default:
		f.post(w, r)
	}
}

func problem(w http.ResponseWriter, code int, typ, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "urn:ietf:params:acme:error:" + typ, "detail": detail})
}

// post checks the JWS and dispatches on the URL.
func (f *fakeACME) post(w http.ResponseWriter, r *http.Request) {
	var jws struct{ Protected, Payload, Signature string }
	if err := json.NewDecoder(r.Body).Decode(&jws); err != nil {
		problem(w, http.StatusBadRequest, "malformed", err.Error())
		return
	}
	ph, _ := base64.RawURLEncoding.DecodeString(jws.Protected)
	var hdr struct {
		Alg, Nonce, URL, Kid string
		JWK                  *struct{ Kty, Crv, X, Y string }
	}
	if err := json.Unmarshal(ph, &hdr); err != nil || hdr.Alg != "ES256" || hdr.Nonce == "" || hdr.URL != f.url(r.URL.Path) {
		problem(w, http.StatusBadRequest, "malformed", "bad protected header "+string(ph))
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	account := -1
	var key *ecdsa.PublicKey
	if hdr.JWK != nil {
		x, _ := base64.RawURLEncoding.DecodeString(hdr.JWK.X)
		y, _ := base64.RawURLEncoding.DecodeString(hdr.JWK.Y)
		key = &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}
	} else if _, err := fmt.Sscanf(strings.TrimPrefix(hdr.Kid, f.srv.URL), "/acct/%d", &account); err == nil && account < len(f.accounts) {
		key = f.accounts[account]
	} else {
		problem(w, http.StatusUnauthorized, "accountDoesNotExist", "unknown kid "+hdr.Kid)
		return
	}
	sig, _ := base64.RawURLEncoding.DecodeString(jws.Signature)
	digest := sha256.Sum256([]byte(jws.Protected + "." + jws.Payload))
	if len(sig) != 64 || !ecdsa.Verify(key, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		problem(w, http.StatusUnauthorized, "unauthorized", "bad JWS signature")
		return
	}
	payload, _ := base64.RawURLEncoding.DecodeString(jws.Payload)
	var id int
	switch path := r.URL.Path; {
	case path == "/account":
		for i, k := range f.accounts {
			if k.Equal(key) {
				w.Header().Set("Location", f.url(fmt.Sprintf("/acct/%d", i)))
				writeJSON(w, http.StatusOK, map[string]string{"status": "valid"})
				return
			}
		}
		f.accounts = append(f.accounts, key)
		w.Header().Set("Location", f.url(fmt.Sprintf("/acct/%d", len(f.accounts)-1)))
		writeJSON(w, http.StatusCreated, map[string]string{"status": "valid"})
	case account < 0:
		problem(w, http.StatusBadRequest, "malformed", "requests other than newAccount are signed with a kid")
	case path == "/order":
		var req struct {
			Identifiers []struct{ Type, Value string }
		}
		if json.Unmarshal(payload, &req) != nil || len(req.Identifiers) != 1 {
			problem(w, http.StatusBadRequest, "malformed", "one identifier per order here")
			return
		}
		tok := make([]byte, 16)
		_, _ = rand.Read(tok)
		f.authzs = append(f.authzs, &acmeAuthz{account: account, domain: req.Identifiers[0].Value,
			token: base64.RawURLEncoding.EncodeToString(tok), status: "pending"})
		f.orders = append(f.orders, &acmeOrder{account: account, domain: req.Identifiers[0].Value, authz: len(f.authzs) - 1})
		f.writeOrder(w, http.StatusCreated, len(f.orders)-1)
	case scan(path, "/authz/%d", &id) && id < len(f.authzs):
		f.writeAuthz(w, id)
	case scan(path, "/chal/%d", &id) && id < len(f.authzs):
		f.validate(id)
		writeJSON(w, http.StatusOK, f.challenge(id))
	case scan(path, "/orders/%d", &id) && id < len(f.orders):
		f.writeOrder(w, http.StatusOK, id)
	case scan(path, "/finalize/%d", &id) && id < len(f.orders):
		f.finalize(w, id, payload)
	case scan(path, "/cert/%d", &id) && id < len(f.orders) && f.orders[id].chain != nil:
		w.Header().Set("Content-Type", "application/pem-certificate-chain")
		_, _ = w.Write(f.orders[id].chain)
	default:
		problem(w, http.StatusNotFound, "malformed", "no such resource "+path)
	}
}

func scan(path, format string, id *int) bool {
	_, err := fmt.Sscanf(path, format, id)
	return err == nil
}

func (f *fakeACME) challenge(id int) map[string]string {
	z := f.authzs[id]
	return map[string]string{"type": "http-01", "url": f.url(fmt.Sprintf("/chal/%d", id)), "token": z.token, "status": z.status}
}

func (f *fakeACME) writeAuthz(w http.ResponseWriter, id int) {
	z := f.authzs[id]
	writeJSON(w, http.StatusOK, map[string]any{"status": z.status, "identifier": map[string]string{"type": "dns", "value": z.domain},
		"expires": time.Now().Add(time.Hour), "challenges": []any{f.challenge(id)}})
}

func (f *fakeACME) writeOrder(w http.ResponseWriter, code, id int) {
	o := f.orders[id]
	status := "pending"
	switch {
	case o.chain != nil:
		status = "valid"
	case f.authzs[o.authz].status == "valid":
		status = "ready"
	case f.authzs[o.authz].status == "invalid":
		status = "invalid"
	}
	body := map[string]any{"status": status, "expires": time.Now().Add(time.Hour),
		"identifiers":    []any{map[string]string{"type": "dns", "value": o.domain}},
		"authorizations": []string{f.url(fmt.Sprintf("/authz/%d", o.authz))}, "finalize": f.url(fmt.Sprintf("/finalize/%d", id))}
	if o.chain != nil {
		body["certificate"] = f.url(fmt.Sprintf("/cert/%d", id))
	}
	w.Header().Set("Location", f.url(fmt.Sprintf("/orders/%d", id)))
	writeJSON(w, code, body)
}

// validate fetches the key authorization from the gateway, where the domain points.
func (f *fakeACME) validate(id int) {
	z := f.authzs[id]
	if z.status != "pending" {
		return
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, f.httpAddr)
	}}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	u := "http://" + z.domain + acmeChallengePrefix + z.token
	f.validated = append(f.validated, u)
	z.status = "invalid"
	resp, err := hc.Get(u)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	f.validation = append(f.validation, string(body))
	thumb, err := acme.JWKThumbprint(f.accounts[z.account])
	if err == nil && resp.StatusCode == http.StatusOK && strings.TrimSpace(string(body)) == z.token+"."+thumb {
		z.status = "valid"
	}
}

func (f *fakeACME) finalize(w http.ResponseWriter, id int, payload []byte) {
	o := f.orders[id]
	var req struct{ CSR string }
	_ = json.Unmarshal(payload, &req)
	der, _ := base64.RawURLEncoding.DecodeString(req.CSR)
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil || csr.CheckSignature() != nil || len(csr.DNSNames) != 1 || csr.DNSNames[0] != o.domain {
		problem(w, http.StatusBadRequest, "badCSR", "the CSR must be signed and name the order's domain only")
		return
	}
	if f.authzs[o.authz].status != "valid" {
		problem(w, http.StatusForbidden, "orderNotReady", "the order is not ready")
		return
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(id) + 2), Subject: pkix.Name{CommonName: o.domain}, DNSNames: csr.DNSNames,
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leaf, err := x509.CreateCertificate(rand.Reader, tmpl, f.ca, csr.PublicKey, f.caKey)
	if err != nil {
		problem(w, http.StatusInternalServerError, "serverInternal", err.Error())
		return
	}
	o.csr = csr
	o.chain = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.ca.Raw})...)
	f.writeOrder(w, http.StatusOK, id)
}

// TestACMEIssuance gets a certificate the way it happens in production: the first HTTPS request for a
// registered HTTPS service makes the gateway order one, the CA validates the http-01 challenge on the
// gateway's HTTP listener (not redirected to HTTPS), and the request is then served with it.
func TestACMEIssuance(t *testing.T) {
	key := newKey(t)
	h := startHost(t, "web-0", key, nil)
	stateDir := t.TempDir()
	l := Listeners{API: listen(t), HTTP: listen(t), HTTPS: listen(t)}
	ca := newFakeACME(t, l.HTTP.Addr().String())
	g := New(Options{StateDir: stateDir, ACMEDirectory: ca.url("/directory")})
	defer g.Close()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- g.Serve(ctx, l) }()
	defer func() { cancel(); <-served }()
	apply(t, g, Config{TLS: TLSLetsEncrypt, ACMEEmail: "ops@example.com", SSHPrivateKey: key.PrivatePEM, Services: []Service{
		svcOf("secure.example.com", true, h), svcOf("plain.example.com", false, h)}})

	roots := x509.NewCertPool()
	roots.AddCert(ca.ca)
	hs := httpsClient(l.HTTPS.Addr().String(), roots)
	resp, err := hs.Get("https://secure.example.com/hello")
	if err != nil {
		t.Fatalf("first HTTPS request: %v (challenges fetched %v, answers %q)", err, ca.validated, ca.validation)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"uri":"/hello"`) {
		t.Fatalf("first HTTPS request: %s %s", resp.Status, body)
	}
	if leaf := resp.TLS.PeerCertificates[0]; leaf.Issuer.CommonName != "fake ACME CA" || leaf.DNSNames[0] != "secure.example.com" {
		t.Fatalf("served certificate: %v %v", leaf.Issuer, leaf.DNSNames)
	}
	ca.mu.Lock()
	validated := append([]string(nil), ca.validated...)
	ca.mu.Unlock()
	if len(validated) != 1 || !strings.HasPrefix(validated[0], "http://secure.example.com/.well-known/acme-challenge/") {
		t.Fatalf("challenges fetched: %v", validated)
	}
	// The certificate is kept in the state directory for the next start.
	if _, err := os.Stat(filepath.Join(stateDir, "certs", "secure.example.com")); err != nil {
		t.Fatalf("certificate not cached: %v", err)
	}

	// Names the gateway must not get certificates for: no order reaches the CA.
	for _, name := range []string{"plain.example.com", "unregistered.example.com"} {
		if _, err := hs.Get("https://" + name + "/"); err == nil {
			t.Fatalf("%s: served over HTTPS without a certificate", name)
		}
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if len(ca.orders) != 1 || len(ca.accounts) != 1 {
		t.Fatalf("%d orders and %d accounts at the CA, want 1 and 1", len(ca.orders), len(ca.accounts))
	}
}
