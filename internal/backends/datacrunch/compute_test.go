package datacrunch_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	_ "github.com/dstackgo/dstack/internal/backends/datacrunch"
	"github.com/dstackgo/dstack/internal/backends/fake"
	"github.com/dstackgo/dstack/internal/offers"
)

// TestSpotAndCleanup: live capacity per spot flag; a spot deploy asks for spot; the instance's SSH
// keys and startup script are deleted with it.
func TestSpotAndCleanup(t *testing.T) {
	srv := fake.Use(t, "datacrunch")
	d, _ := backends.Lookup("datacrunch")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := srv.Good
	delete(cfg.Values, "regions")
	list, err := d.NewOffers(cfg, fake.Tables()).Offers(ctx, offers.Requirements{Spot: nil})
	if err != nil {
		t.Fatal(err)
	}
	avail := map[string]offers.Availability{}
	var spot offers.Offer
	for _, o := range list {
		k := o.Instance.Name + "@" + o.Region
		if o.Instance.Resources.Spot {
			k += "/spot"
			if o.Instance.Name == "1A100.22V" && o.Region == "FIN-03" {
				spot = o
			}
		}
		avail[k] = o.Availability
	}
	for k, want := range map[string]offers.Availability{"1A100.22V@FIN-01": offers.Available, "1A100.22V@FIN-03": offers.NotAvailable,
		"1A100.22V@FIN-03/spot": offers.Available, "1V100.6V@FIN-01/spot": offers.NotAvailable} {
		if avail[k] != want {
			t.Errorf("%s: %q, want %q", k, avail[k], want)
		}
	}
	comp, _ := d.NewCompute(srv.Good)
	pd, err := comp.CreateInstance(ctx, spot, backends.InstanceConfig{ProjectName: "main", InstanceName: "spot-0",
		SSHPublicKeys: []string{"ssh-ed25519 AAAA a", "ssh-ed25519 BBBB b"}, ShimURL: "http://srv/dstack-shim"})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := srv.Machine(pd.InstanceID)
	if !m.Spot || m.Name != "dstack-main-spot-0" || len(m.SSHKeys) != 2 || !strings.Contains(m.UserData, "/usr/local/bin/dstack-shim") {
		t.Errorf("machine %+v", m)
	}
	if len(srv.Objects("ssh-keys")) != 2 || len(srv.Objects("scripts")) != 1 {
		t.Errorf("keys %v scripts %v", srv.Objects("ssh-keys"), srv.Objects("scripts"))
	}
	if err := comp.TerminateInstance(ctx, pd.InstanceID, pd.Region, pd.BackendData); err != nil {
		t.Fatal(err)
	}
	if len(srv.Objects("ssh-keys")) != 0 || len(srv.Objects("scripts")) != 0 || len(srv.Alive()) != 0 {
		t.Errorf("left behind: keys %v scripts %v alive %v", srv.Objects("ssh-keys"), srv.Objects("scripts"), srv.Alive())
	}
	// No capacity: refused before anything is created.
	na := spot
	na.Region = "FIN-02"
	if _, err := comp.CreateInstance(ctx, na, backends.InstanceConfig{ProjectName: "main", InstanceName: "x"}); !backends.IsNoCapacity(err) {
		t.Errorf("create without capacity = %v", err)
	}
	if len(srv.Objects("scripts")) != 0 {
		t.Errorf("a refused create left a script")
	}
	if m := srv.Misses(); len(m) > 0 {
		t.Errorf("misses: %v", m)
	}
}
