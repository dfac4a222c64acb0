package gatewayd

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func postConfig(t *testing.T, api string, body []byte) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(api+"/api/config", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

func TestConfigValidation(t *testing.T) {
	key := newKey(t)
	g := New(Options{StateDir: t.TempDir()})
	defer g.Close()
	api := httptest.NewServer(g.APIHandler())
	defer api.Close()

	good := func() Config {
		return Config{TLS: TLSNone, SSHPrivateKey: key.PrivatePEM, Services: []Service{{
			Project: "main", RunName: "web", Domain: "web.example.com", Auth: true,
			AuthTokensSHA256: []string{strings.Repeat("AB", 32)},
			Replicas: []Replica{{ID: "j1", AppPort: 8000, SSH: SSH{Host: "10.0.0.5", User: "ubuntu",
				Proxy: &SSH{Host: "jump", Port: 22, User: "root"}}}},
		}}}
	}
	cases := []struct {
		name   string
		mutate func(*Config)
		want   []string // substrings of the detail
	}{
		{"empty domain", func(c *Config) { c.Services[0].Domain = "" }, []string{"services[0] (main/web)", "domain: empty"}},
		{"uppercase domain", func(c *Config) { c.Services[0].Domain = "Web.example.com" }, []string{"domain", "not lowercase"}},
		{"not a hostname", func(c *Config) { c.Services[0].Domain = "web_1.example.com" }, []string{"domain", "not a hostname"}},
		{"empty label", func(c *Config) { c.Services[0].Domain = "web..example.com" }, []string{"domain", "not a hostname"}},
		{"duplicate domain", func(c *Config) {
			s := c.Services[0]
			s.RunName = "web2"
			c.Services = append(c.Services, s)
		}, []string{"services[1] (main/web2)", "also the domain of services[0] (main/web)"}},
		{"port zero", func(c *Config) { c.Services[0].Replicas[0].AppPort = 0 }, []string{"replicas[0] (j1)", "app_port: 0"}},
		{"port too big", func(c *Config) { c.Services[0].Replicas[0].AppPort = 70000 }, []string{"app_port: 70000"}},
		{"bad key", func(c *Config) { c.SSHPrivateKey = "not a key" }, []string{"ssh_private_key"}},
		{"no key with replicas", func(c *Config) { c.SSHPrivateKey = "" }, []string{"replicas[0] (j1)", "ssh_private_key is empty"}},
		{"no ssh host", func(c *Config) { c.Services[0].Replicas[0].SSH.Host = "" }, []string{"ssh.host: empty"}},
		{"no proxy user", func(c *Config) { c.Services[0].Replicas[0].SSH.Proxy.User = "" }, []string{"ssh.proxy.user: empty"}},
		{"bad host key", func(c *Config) { c.Services[0].Replicas[0].SSH.HostKey = "nope" }, []string{"ssh.host_key"}},
		{"bad token hash", func(c *Config) { c.Services[0].AuthTokensSHA256 = []string{"abc"} }, []string{"auth_tokens_sha256[0]"}},
		{"bad tls", func(c *Config) { c.TLS = "acm" }, []string{`tls: "acm"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good()
			tc.mutate(&cfg)
			body, _ := json.Marshal(cfg)
			code, out := postConfig(t, api.URL, body)
			detail, _ := out["detail"].(string)
			if code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %v", code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(detail, w) {
					t.Errorf("detail %q does not mention %q", detail, w)
				}
			}
			if strings.Contains(detail, "PRIVATE KEY") {
				t.Errorf("detail quotes the key: %q", detail)
			}
		})
	}

	if code, out := postConfig(t, api.URL, []byte(`{"services": 3}`)); code != http.StatusBadRequest || out["detail"] == nil {
		t.Fatalf("malformed body: %d %v", code, out)
	}
	body, _ := json.Marshal(good())
	code, out := postConfig(t, api.URL, body)
	if code != http.StatusOK || out["services"] != float64(1) {
		t.Fatalf("good config: %d %v", code, out)
	}
	// A refused configuration leaves the applied one in place.
	bad := good()
	bad.Services[0].Domain = ""
	body, _ = json.Marshal(bad)
	postConfig(t, api.URL, body)
	if st := g.state.Load(); st.services["web.example.com"] == nil || st.services["web.example.com"].tokens[strings.Repeat("ab", 32)] != true {
		t.Fatal("the applied configuration was lost, or token hashes were not normalised")
	}
}
