package gatewayd

import (
	"encoding/hex"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// TLS modes of Config.TLS.
const (
	// TLSLetsEncrypt: the gateway terminates HTTPS with certificates from the ACME directory.
	TLSLetsEncrypt = "letsencrypt"
	// TLSNone: a load balancer in front terminates HTTPS (AWS ACM); the gateway serves plain HTTP only.
	TLSNone = "none"
)

// Config is the whole routing state, as POST /api/config takes it. Each POST replaces the previous
// one; a gateway that restarted serves nothing until the server sends it again.
type Config struct {
	ACMEEmail string `json:"acme_email"`
	// TLS is TLSLetsEncrypt or TLSNone; empty means TLSLetsEncrypt.
	TLS string `json:"tls"`
	// SSHPrivateKey is the project's private key (PEM), used to reach the replicas. The gateway keeps
	// it in memory only.
	SSHPrivateKey string    `json:"ssh_private_key"`
	Services      []Service `json:"services"`
}

// Service is one dstack service, served at https://Domain.
type Service struct {
	Project string `json:"project"`
	RunName string `json:"run_name"`
	Domain  string `json:"domain"`
	HTTPS   bool   `json:"https"`
	// Auth requires "Authorization: Bearer <token>" with the sha256 of the token in AuthTokensSHA256.
	Auth             bool      `json:"auth"`
	AuthTokensSHA256 []string  `json:"auth_tokens_sha256"`
	Replicas         []Replica `json:"replicas"`
}

// Replica is one running job of the service: its app listens on AppPort of the host that SSH reaches.
type Replica struct {
	ID      string `json:"id"`
	AppPort int    `json:"app_port"`
	SSH     SSH    `json:"ssh"`
}

// SSH is how the gateway logs in to a replica's host (with Config.SSHPrivateKey), possibly through a
// jump host.
type SSH struct {
	Host string `json:"host"`
	Port int    `json:"port"` // 22 when 0
	User string `json:"user"`
	// HostKey is the host's key in authorized_keys format; empty trusts the first key seen.
	HostKey string `json:"host_key"`
	// PrivateKey, when set, is used for this host instead of Config.SSHPrivateKey (hosts of SSH
	// fleets that log in with their own key). Kept in memory only, like the project key.
	PrivateKey string `json:"private_key,omitempty"`
	Proxy      *SSH   `json:"proxy,omitempty"`
}

// validate checks cfg and returns it normalised (TLS mode filled in, token hashes lowercase).
func validate(cfg Config) (Config, error) {
	switch cfg.TLS {
	case "":
		cfg.TLS = TLSLetsEncrypt
	case TLSLetsEncrypt, TLSNone:
	default:
		return cfg, fmt.Errorf("tls: %q is not a TLS mode; use %q or %q", cfg.TLS, TLSLetsEncrypt, TLSNone)
	}
	if cfg.SSHPrivateKey != "" {
		if _, err := ssh.ParsePrivateKey([]byte(cfg.SSHPrivateKey)); err != nil {
			// The parser's message never quotes the key.
			return cfg, fmt.Errorf("ssh_private_key: cannot parse the key (an unencrypted PEM private key is expected): %v", err)
		}
	}
	seen := map[string]string{}
	services := make([]Service, len(cfg.Services))
	for i, svc := range cfg.Services {
		name := fmt.Sprintf("services[%d] (%s/%s)", i, svc.Project, svc.RunName)
		if err := checkDomain(svc.Domain); err != nil {
			return cfg, fmt.Errorf("%s: domain: %w", name, err)
		}
		if other, dup := seen[svc.Domain]; dup {
			return cfg, fmt.Errorf("%s: domain: %s is also the domain of %s; domains must be unique", name, svc.Domain, other)
		}
		seen[svc.Domain] = name
		tokens := make([]string, len(svc.AuthTokensSHA256))
		for j, h := range svc.AuthTokensSHA256 {
			h = strings.ToLower(h)
			if b, err := hex.DecodeString(h); err != nil || len(b) != 32 {
				return cfg, fmt.Errorf("%s: auth_tokens_sha256[%d]: not a hex sha256 (64 hex digits)", name, j)
			}
			tokens[j] = h
		}
		svc.AuthTokensSHA256 = tokens
		for j, r := range svc.Replicas {
			rname := fmt.Sprintf("%s: replicas[%d] (%s)", name, j, r.ID)
			if r.AppPort < 1 || r.AppPort > 65535 {
				return cfg, fmt.Errorf("%s: app_port: %d is not a port (1..65535)", rname, r.AppPort)
			}
			if err := checkSSH(r.SSH); err != nil {
				return cfg, fmt.Errorf("%s: ssh%w", rname, err)
			}
			if cfg.SSHPrivateKey == "" && r.SSH.PrivateKey == "" {
				return cfg, fmt.Errorf("%s: ssh_private_key is empty; the gateway needs the project key to reach replicas", rname)
			}
		}
		services[i] = svc
	}
	cfg.Services = services
	return cfg, nil
}

// checkSSH returns errors that start with the path of the field below "ssh" (".host: ...").
func checkSSH(s SSH) error {
	if s.Host == "" {
		return fmt.Errorf(".host: empty")
	}
	if s.User == "" {
		return fmt.Errorf(".user: empty")
	}
	if s.Port < 0 || s.Port > 65535 {
		return fmt.Errorf(".port: %d is not a port (1..65535, or 0 for 22)", s.Port)
	}
	if s.PrivateKey != "" {
		if _, err := ssh.ParsePrivateKey([]byte(s.PrivateKey)); err != nil {
			return fmt.Errorf(".private_key: cannot parse the key (an unencrypted PEM private key is expected): %v", err)
		}
	}
	if s.HostKey != "" {
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s.HostKey)); err != nil {
			return fmt.Errorf(".host_key: not an authorized_keys line: %v", err)
		}
	}
	if s.Proxy != nil {
		if err := checkSSH(*s.Proxy); err != nil {
			return fmt.Errorf(".proxy%w", err)
		}
	}
	return nil
}

// checkDomain accepts lowercase DNS hostnames: dot-separated labels of a-z, 0-9 and inner hyphens.
func checkDomain(d string) error {
	if d == "" {
		return fmt.Errorf("empty")
	}
	if d != strings.ToLower(d) {
		return fmt.Errorf("%q is not lowercase", d)
	}
	if len(d) > 253 {
		return fmt.Errorf("%q is longer than 253 characters", d)
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("%q is not a hostname: labels must have 1 to 63 characters", d)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%q is not a hostname: a label starts or ends with '-'", d)
		}
		for _, c := range label {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return fmt.Errorf("%q is not a hostname: %q is not allowed", d, c)
			}
		}
	}
	return nil
}
