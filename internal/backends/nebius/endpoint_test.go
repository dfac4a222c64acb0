package nebius

import (
	"testing"

	"github.com/dstackgo/dstack/internal/backends"
)

func TestEndpointFor(t *testing.T) {
	env := backends.EnvAPIURL("nebius")
	cases := []struct {
		env, service string
		want         endpoint
	}{
		{"", serviceTokens, endpoint{addr: "tokens.iam.api.eu.nebius.cloud:443"}},
		{"", serviceIAM, endpoint{addr: "cpl.iam.api.eu.nebius.cloud:443"}},
		{"proxy.example.com:8443", serviceIAM, endpoint{addr: "proxy.example.com:8443"}},
		{"https://proxy.example.com:8443/", serviceTokens, endpoint{addr: "proxy.example.com:8443"}},
		{"http://10.0.0.5:9000", serviceTokens, endpoint{addr: "10.0.0.5:9000", plaintext: true}},
		{"127.0.0.1:4000", serviceTokens, endpoint{addr: "127.0.0.1:4000", plaintext: true}},
		{"localhost:4000", serviceIAM, endpoint{addr: "localhost:4000", plaintext: true}},
		{"[::1]:4000", serviceIAM, endpoint{addr: "[::1]:4000", plaintext: true}},
	}
	for _, c := range cases {
		t.Setenv(env, c.env)
		if got := endpointFor(c.service); got != c.want {
			t.Errorf("%s=%q: endpointFor(%s) = %+v, want %+v", env, c.env, c.service, got, c.want)
		}
	}
}
