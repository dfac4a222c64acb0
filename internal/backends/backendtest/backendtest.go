// Package backendtest holds the helpers the provider packages' tests share (aws, azure, gcp, oci):
// the registered driver, the simulation's config read through the schema as the server reads it,
// a bounded context, the instance config of a launch, offer look-ups, and the checks of what the
// simulation saw and of the errors a backend check returns. It is for tests only.
package backendtest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/fake"
	"github.com/dstackgo/dstack/internal/offers"
	"github.com/dstackgo/dstack/internal/schema"
)

// TestKey is the SSH public key the tests' instances are created with.
const TestKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl dstack-project"

// Driver is the registered driver of the backend type typ; the test fails when there is none.
func Driver(t testing.TB, typ string) *backends.Driver {
	t.Helper()
	d, ok := backends.Lookup(typ)
	if !ok {
		t.Fatal(typ + " is not registered")
	}
	return d
}

// NoEnv is an empty environment, for a schema.Context.
func NoEnv(string) string { return "" }

// Config is the simulation's good config of typ with extra keys (a nil value deletes the key),
// through the schema as the server reads it, with an empty environment.
func Config(t testing.TB, typ string, extra map[string]any) backends.Config {
	t.Helper()
	return Validated(t, fake.GoodConfig(typ).Values, &schema.Context{Getenv: NoEnv}, extra)
}

// Validated is values with extra keys (a nil value deletes the key), through the schema under sctx;
// the test fails when the schema finds issues.
func Validated(t testing.TB, values map[string]any, sctx *schema.Context, extra map[string]any) backends.Config {
	t.Helper()
	for k, x := range extra {
		if x == nil {
			delete(values, k)
			continue
		}
		values[k] = x
	}
	cfg, issues := backends.Validate(values, sctx)
	if len(issues) > 0 {
		t.Fatalf("config %v does not pass the schema: %v", extra, issues)
	}
	return cfg
}

// Ctx is a context that ends after 20 seconds or with the test.
func Ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// NoMisses fails the test for every request the simulation refused as malformed.
func NoMisses(t testing.TB, srv *fake.Server) {
	t.Helper()
	for _, m := range srv.Misses() {
		t.Errorf("the simulation refused a request as malformed: %s", m)
	}
}

// FieldError wants a CredentialsError naming exactly field and saying want.
func FieldError(t testing.TB, err error, field, want string) {
	t.Helper()
	var ce *backends.CredentialsError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v (%T), want a CredentialsError on %s", err, err, field)
	}
	if len(ce.Fields) != 1 || strings.Join(ce.Fields[0], ".") != field {
		t.Errorf("fields %v, want [%s] (%s)", ce.Fields, field, ce.Msg)
	}
	if !strings.Contains(ce.Msg, want) {
		t.Errorf("message %q does not say %q", ce.Msg, want)
	}
}

// InstanceConfig is the config of an instance named name of project main, tagged as dstack tags
// it for the server id server, with TestKey and the shim's URL on a local server.
func InstanceConfig(name, server string) backends.InstanceConfig {
	return backends.InstanceConfig{
		ProjectName:   "main",
		InstanceName:  name,
		SSHPublicKeys: []string{TestKey},
		ShimURL:       "http://127.0.0.1:3000/api/agents/dstack-shim-linux-amd64",
		Tags:          map[string]string{"dstack_project": "main", "dstack_server": server, "dstack_instance": name},
	}
}

// Offers is every offer of the backend type typ under cfg, with the simulation's catalog tables.
func Offers(t testing.TB, typ string, cfg backends.Config) []offers.Offer {
	t.Helper()
	list, err := Driver(t, typ).NewOffers(cfg, fake.Tables()).Offers(Ctx(t), offers.Requirements{})
	if err != nil {
		t.Fatalf("offers: %v", err)
	}
	return list
}

// Find is the offer of the instance type name in region (spot or not) in list, or nil.
func Find(list []offers.Offer, name, region string, spot bool) *offers.Offer {
	for i := range list {
		o := &list[i]
		if o.Instance.Name == name && o.Region == region && o.Instance.Resources.Spot == spot {
			return o
		}
	}
	return nil
}

// OfferFor is the offer of the backend type typ under cfg of the instance type name in region
// (spot or not); the test fails when there is none.
func OfferFor(t testing.TB, typ string, cfg backends.Config, name, region string, spot bool) offers.Offer {
	t.Helper()
	list := Offers(t, typ, cfg)
	o := Find(list, name, region, spot)
	if o == nil {
		t.Fatalf("no offer %s in %s (spot %v) among %d", name, region, spot, len(list))
	}
	return *o
}

// WaitHostname polls the instance of pd until it has a hostname; the test fails after 10 seconds.
func WaitHostname(t testing.TB, comp backends.Compute, pd *backends.ProvisioningData) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); pd.Hostname == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no hostname after 10s")
		}
		if err := comp.UpdateProvisioningData(Ctx(t), pd); err != nil {
			t.Fatalf("UpdateProvisioningData: %v", err)
		}
	}
}
