package fake

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
)

// The simulations of providers whose SDKs insist on https (Azure: azidentity and the ARM bearer
// policy refuse http endpoints) serve TLS with this self-signed certificate, valid for 127.0.0.1,
// ::1 and localhost until 2125. It is a simulator's certificate, not a secret: its key is public
// here on purpose. Clients trust it through SSL_CERT_FILE (see CertFile), which Use sets for a
// test and the cloud simulator exports.

// SimCertPEM is the certificate of the TLS simulations.
const SimCertPEM = `-----BEGIN CERTIFICATE-----
MIIB/jCCAaWgAwIBAgIEATT/6TAKBggqhkjOPQQDAjBCMR8wHQYDVQQKExZkc3Rh
Y2sgY2xvdWQgc2ltdWxhdG9yMR8wHQYDVQQDExZkc3RhY2sgY2xvdWQgc2ltdWxh
dG9yMCAXDTI1MDEwMTAwMDAwMFoYDzIxMjUwMTAxMDAwMDAwWjBCMR8wHQYDVQQK
ExZkc3RhY2sgY2xvdWQgc2ltdWxhdG9yMR8wHQYDVQQDExZkc3RhY2sgY2xvdWQg
c2ltdWxhdG9yMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEvATNDZiqazW6F78S
kXwaReAq2klrdMto7xSAVuuCd78fr5ExzXmfD9gwvs/87q0R302gBWWMuz5xeV+B
tYZG1KOBhjCBgzAOBgNVHQ8BAf8EBAMCAoQwEwYDVR0lBAwwCgYIKwYBBQUHAwEw
DwYDVR0TAQH/BAUwAwEB/zAdBgNVHQ4EFgQUZXls0fjPiGCJEzXFxN5pfEnUNIEw
LAYDVR0RBCUwI4IJbG9jYWxob3N0hwR/AAABhxAAAAAAAAAAAAAAAAAAAAABMAoG
CCqGSM49BAMCA0cAMEQCIGMa6eMMA7+pXvf9tiNwYPqofdjyVI0qJakCiYudg5mZ
AiBdDz5t+FqVGblpXwxcZEDA7Ptxo9NX2a4Fs/Bf8hZH3Q==
-----END CERTIFICATE-----
`

const simKeyPEM = `-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIG7eaveNP6GIwaGQFEYORwC92GzMFz1mM2KLmbcfZd/koAoGCCqGSM49
AwEHoUQDQgAEvATNDZiqazW6F78SkXwaReAq2klrdMto7xSAVuuCd78fr5ExzXmf
D9gwvs/87q0R302gBWWMuz5xeV+BtYZG1A==
-----END EC PRIVATE KEY-----
`

var (
	simCertOnce sync.Once
	simCert     tls.Certificate
	simCertErr  error

	certFileMu   sync.Mutex
	certFilePath string
)

// SimTLSConfig is the server side of the TLS simulations.
func SimTLSConfig() *tls.Config {
	simCertOnce.Do(func() { simCert, simCertErr = tls.X509KeyPair([]byte(SimCertPEM), []byte(simKeyPEM)) })
	if simCertErr != nil {
		panic("fake: the simulator certificate does not load: " + simCertErr.Error())
	}
	return &tls.Config{Certificates: []tls.Certificate{simCert}, MinVersion: tls.VersionTLS12}
}

// CertFile writes SimCertPEM to a file in the temporary directory (once; its name is the
// certificate's digest, so every process shares one file) and returns its path, for SSL_CERT_FILE.
func CertFile() (string, error) {
	certFileMu.Lock()
	defer certFileMu.Unlock()
	if certFilePath != "" {
		if _, err := os.Stat(certFilePath); err == nil {
			return certFilePath, nil
		}
	}
	sum := sha256.Sum256([]byte(SimCertPEM))
	path := filepath.Join(os.TempDir(), "dstack-sim-cert-"+hex.EncodeToString(sum[:6])+".pem")
	if b, err := os.ReadFile(path); err != nil || string(b) != SimCertPEM {
		tmp, err := os.CreateTemp(os.TempDir(), "dstack-sim-cert-*.tmp")
		if err != nil {
			return "", err
		}
		_, werr := tmp.WriteString(SimCertPEM)
		cerr := tmp.Close()
		if werr != nil || cerr != nil {
			_ = os.Remove(tmp.Name())
			return "", firstErr(werr, cerr)
		}
		// A rename is atomic: a concurrent process reads the old file or the new one, never half.
		if err := os.Rename(tmp.Name(), path); err != nil {
			_ = os.Remove(tmp.Name())
			return "", err
		}
	}
	certFilePath = path
	return path, nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// TLS reports whether the simulation of typ serves https (with SimTLSConfig) rather than http.
func TLS(typ string) bool {
	p, ok := providers[typ]
	return ok && p.tls
}
