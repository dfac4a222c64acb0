package conformance_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/fake"
	"github.com/dstackgo/dstack/internal/offers"
)

// testKey is an OpenSSH public key for the machines of the suite.
const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl dstack-project"

func instanceConfig(name string) backends.InstanceConfig {
	return backends.InstanceConfig{
		ProjectName:   "main",
		InstanceName:  name,
		SSHPublicKeys: []string{testKey, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB8yX2 user"},
		ShimURL:       "http://127.0.0.1:3000/api/agents/dstack-shim-linux-amd64",
		ShimEnv: map[string]string{
			"DSTACK_RUNNER_DOWNLOAD_URL": "http://127.0.0.1:3000/api/agents/dstack-runner-linux-amd64",
			"DSTACK_SERVER_URL":          "http://127.0.0.1:3000",
		},
		Tags: map[string]string{"dstack_project": "main", "dstack_server": "test", "dstack_instance": name},
	}
}

// realServer lists the backends tested against their provider's real server software in their own
// package instead of a simulation here, and why.
var realServer = map[string]string{
	"kubernetes": "its package runs the lifecycle against a real kube-apiserver with kwok nodes (DSTACK_TEST_KUBE_BIN)",
}

// computeTypes lists the backends this build can provision on that have a simulation.
func computeTypes(t *testing.T) []*backends.Driver {
	var out []*backends.Driver
	for _, typ := range backends.Types() {
		d, _ := backends.Lookup(typ)
		if d.NewCompute == nil {
			continue
		}
		if !fake.Has(typ) {
			if why, ok := realServer[typ]; ok {
				t.Logf("%s has no simulation: %s", typ, why)
			} else if fake.HasGRPC(typ) {
				t.Logf("%s is simulated over gRPC; its package runs the same lifecycle against that fake", typ)
			} else {
				t.Errorf("%s can provision machines but has no simulation", typ)
			}
			continue
		}
		out = append(out, d)
	}
	if len(out) == 0 {
		t.Fatal("no backend can provision machines")
	}
	return out
}

// offerSource is how the server gets a backend's offers: its live source, or the catalog.
func offerSource(d *backends.Driver, cfg backends.Config) offers.Source {
	if d.NewOffers != nil {
		return d.NewOffers(cfg, fake.Tables())
	}
	return offers.NewCatalogSource(d.Type, fake.Tables(), offers.DefaultCatalogConfig(d.Type))
}

// firstOffer returns the cheapest available offer, preferring one with a GPU.
func firstOffer(t *testing.T, d *backends.Driver, cfg backends.Config) offers.Offer {
	t.Helper()
	list, err := offerSource(d, cfg).Offers(ctx(t, 10*time.Second), offers.Requirements{})
	if err != nil {
		t.Fatalf("offers: %v", err)
	}
	var pick *offers.Offer
	for i := range list {
		o := &list[i]
		if !o.Availability.IsAvailable() {
			continue
		}
		if pick == nil || len(pick.Instance.Resources.GPUs) == 0 && len(o.Instance.Resources.GPUs) > 0 {
			pick = o
		}
		if len(pick.Instance.Resources.GPUs) > 0 {
			break
		}
	}
	if pick == nil {
		t.Fatalf("no available offer among %d", len(list))
	}
	return *pick
}

// TestCompute runs every backend that can provision machines through its simulation: create, poll
// until the machine has an address, terminate twice, and the error mapping.
func TestCompute(t *testing.T) {
	for _, d := range computeTypes(t) {
		t.Run(d.Type, func(t *testing.T) { computeConformance(t, d) })
	}
}

func computeConformance(t *testing.T, d *backends.Driver) {
	typ := d.Type

	t.Run("lifecycle", func(t *testing.T) {
		srv := fake.Use(t, typ)
		comp, err := d.NewCompute(srv.Good)
		if err != nil {
			t.Fatalf("NewCompute: %v", err)
		}
		offer := firstOffer(t, d, srv.Good)
		pd, err := comp.CreateInstance(ctx(t, 10*time.Second), offer, instanceConfig("conf-lifecycle-0"))
		if err != nil {
			t.Fatalf("CreateInstance(%s %s %s) = %v", offer.Instance.Name, offer.Region, offer.InstanceRuntime, err)
		}
		if pd.Backend != typ || pd.InstanceID == "" || pd.Username == "" || pd.Region != offer.Region || pd.Price != offer.Price {
			t.Errorf("provisioning data = %+v", pd)
		}
		if want := offer.InstanceRuntime != offers.RuntimeRunner; pd.Dockerized != want {
			t.Errorf("Dockerized = %v, want %v (runtime %q)", pd.Dockerized, want, offer.InstanceRuntime)
		}
		alive := srv.Alive()
		if len(alive) != 1 {
			t.Fatalf("the simulation has %d machines alive, want 1", len(alive))
		}
		if !named(alive[0], "dstack-main-") {
			t.Errorf("machine %+v is neither named nor tagged dstack-main-...", alive[0])
		}

		deadline := time.Now().Add(10 * time.Second)
		polls := 0
		for pd.Hostname == nil {
			if time.Now().After(deadline) {
				t.Fatalf("no hostname after %d polls", polls)
			}
			polls++
			if err := comp.UpdateProvisioningData(ctx(t, 5*time.Second), pd); err != nil {
				t.Fatalf("UpdateProvisioningData: %v", err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		m, _ := srv.Machine(pd.InstanceID)
		if *pd.Hostname != m.IP || pd.SSHPort == nil || *pd.SSHPort != m.SSHPort {
			t.Errorf("hostname %v port %v, want the machine's %s:%d", *pd.Hostname, deref(pd.SSHPort), m.IP, m.SSHPort)
		}

		for i := 0; i < 2; i++ {
			if err := comp.TerminateInstance(ctx(t, 10*time.Second), pd.InstanceID, pd.Region, pd.BackendData); err != nil {
				t.Fatalf("TerminateInstance #%d = %v, want nil", i+1, err)
			}
		}
		if alive := srv.Alive(); len(alive) != 0 {
			t.Errorf("machines alive after terminate: %+v", alive)
		}
		noMisses(t, srv)
	})

	t.Run("gone machine", func(t *testing.T) {
		srv := fake.Use(t, typ)
		comp, _ := d.NewCompute(srv.Good)
		pd, err := comp.CreateInstance(ctx(t, 10*time.Second), firstOffer(t, d, srv.Good), instanceConfig("conf-gone-0"))
		if err != nil {
			t.Fatal(err)
		}
		srv.Terminate(pd.InstanceID) // the provider took it away
		err = comp.UpdateProvisioningData(ctx(t, 5*time.Second), pd)
		var pe *backends.ProvisioningError
		if !errors.As(err, &pe) {
			t.Errorf("UpdateProvisioningData of a terminated machine = %v (%T), want *backends.ProvisioningError", err, err)
		}
		if err := comp.TerminateInstance(ctx(t, 10*time.Second), pd.InstanceID, pd.Region, pd.BackendData); err != nil {
			t.Errorf("TerminateInstance of a machine already gone = %v, want nil", err)
		}
		noMisses(t, srv)
	})

	t.Run("no capacity", func(t *testing.T) {
		srv := fake.Use(t, typ)
		comp, _ := d.NewCompute(srv.Good)
		offer := firstOffer(t, d, srv.Good)
		srv.SetNoCapacity(true)
		_, err := comp.CreateInstance(ctx(t, 10*time.Second), offer, instanceConfig("conf-capacity-0"))
		if !backends.IsNoCapacity(err) {
			t.Errorf("CreateInstance without capacity = %v (%T), want *backends.NoCapacityError", err, err)
		}
		if alive := srv.Alive(); len(alive) != 0 {
			t.Errorf("machines alive after a refused launch: %+v", alive)
		}
		noMisses(t, srv)
	})

	t.Run("bad credentials", func(t *testing.T) {
		srv := fake.Use(t, typ)
		offer := firstOffer(t, d, srv.Good)
		comp, err := d.NewCompute(srv.Bad)
		if err == nil {
			_, err = comp.CreateInstance(ctx(t, 10*time.Second), offer, instanceConfig("conf-auth-0"))
		}
		var ce *backends.CredentialsError
		if !errors.As(err, &ce) {
			t.Fatalf("CreateInstance with bad credentials = %v (%T), want *backends.CredentialsError", err, err)
		}
		noSecrets(t, srv, err)
		if len(srv.Alive()) != 0 {
			t.Errorf("a machine was created with bad credentials")
		}
	})

	t.Run("provider fails", func(t *testing.T) {
		srv := fake.Use(t, typ)
		comp, _ := d.NewCompute(srv.Good)
		offer := firstOffer(t, d, srv.Good)
		srv.Fail()
		_, err := comp.CreateInstance(ctx(t, 10*time.Second), offer, instanceConfig("conf-fail-0"))
		plainError(t, srv, err)
		plainError(t, srv, comp.TerminateInstance(ctx(t, 10*time.Second), "0123456789abcdef", offer.Region, ""))
	})

	t.Run("provider throttles", func(t *testing.T) {
		srv := fake.Use(t, typ)
		comp, _ := d.NewCompute(srv.Good)
		offer := firstOffer(t, d, srv.Good)
		srv.SetFaults(fake.Faults{Rate: 1, Kinds: []string{fake.FaultThrottle}})
		_, err := comp.CreateInstance(ctx(t, 10*time.Second), offer, instanceConfig("conf-throttle-0"))
		plainError(t, srv, err)
	})

	t.Run("provider hangs", func(t *testing.T) {
		srv := fake.Use(t, typ)
		comp, _ := d.NewCompute(srv.Good)
		offer := firstOffer(t, d, srv.Good)
		srv.Hang()
		c, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := comp.CreateInstance(c, offer, instanceConfig("conf-hang-0"))
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("CreateInstance took %v against a hung provider with a 200ms deadline", took)
		}
		plainError(t, srv, err)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("CreateInstance = %v, want an error that unwraps to context.DeadlineExceeded", err)
		}
	})
}

// plainError wants an error that is neither a capacity nor a credentials verdict, and no secret.
func plainError(t *testing.T, srv *fake.Server, err error) {
	t.Helper()
	var ce *backends.CredentialsError
	switch {
	case err == nil:
		t.Errorf("got nil, want an error")
	case backends.IsNoCapacity(err):
		t.Errorf("got %v, a NoCapacityError; a provider failure is not a capacity verdict", err)
	case errors.As(err, &ce):
		t.Errorf("got %v, a CredentialsError; a provider failure says nothing about the credentials", err)
	default:
		noSecrets(t, srv, err)
	}
}

func named(m fake.Machine, prefix string) bool {
	if strings.HasPrefix(m.Name, prefix) {
		return true
	}
	return slices.ContainsFunc(m.Tags, func(s string) bool { return strings.HasPrefix(s, prefix) })
}

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestLiveOffers checks every live offer source against its simulation: offers exist, belong to
// the backend, come cheapest first, and some are available.
func TestLiveOffers(t *testing.T) {
	for _, typ := range backends.Types() {
		d, _ := backends.Lookup(typ)
		if d.NewOffers == nil {
			continue
		}
		if why, ok := realServer[typ]; ok {
			t.Logf("%s has no simulation: %s", typ, why)
			continue
		}
		t.Run(typ, func(t *testing.T) {
			srv := fake.Use(t, typ)
			list, err := d.NewOffers(srv.Good, fake.Tables()).Offers(ctx(t, 10*time.Second), offers.Requirements{})
			if err != nil {
				t.Fatalf("Offers = %v", err)
			}
			if len(list) == 0 {
				t.Fatal("no offers")
			}
			available := 0
			for i, o := range list {
				if o.Backend != typ {
					t.Errorf("offer %d has backend %q", i, o.Backend)
				}
				if i > 0 && o.Price < list[i-1].Price {
					t.Errorf("offer %d (%s %v) is cheaper than offer %d (%v): not sorted by price", i, o.Instance.Name, o.Price, i-1, list[i-1].Price)
				}
				if o.Availability.IsAvailable() {
					available++
				}
			}
			if available == 0 {
				t.Errorf("none of %d offers is available", len(list))
			}
			noMisses(t, srv)

			srv.Fail()
			if _, err := d.NewOffers(srv.Good, fake.Tables()).Offers(ctx(t, 10*time.Second), offers.Requirements{}); err == nil {
				t.Errorf("Offers against a failing provider = nil error")
			}
		})
	}
}
