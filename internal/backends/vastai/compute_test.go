package vastai_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/fake"
	_ "github.com/dstackgo/dstack/internal/backends/vastai"
	"github.com/dstackgo/dstack/internal/offers"
)

func names(list []offers.Offer) []string {
	var out []string
	for _, o := range list {
		out = append(out, o.Instance.Name)
	}
	sort.Strings(out)
	return out
}

// TestMarketplace: the search keeps only reliable, verified asks with open ports and a recent CUDA;
// a rented ask leaves the search and cannot be rented twice.
func TestMarketplace(t *testing.T) {
	srv := fake.Use(t, "vastai")
	d, _ := backends.Lookup("vastai")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src := d.NewOffers(srv.Good, nil)
	list, err := src.Offers(ctx, offers.Requirements{})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(list); len(got) != 5 || got[0] != "1001" || got[4] != "1005" {
		t.Fatalf("offers %v, want asks 1001-1005", got)
	}
	for _, o := range list {
		if o.InstanceRuntime != offers.RuntimeRunner || o.Availability != offers.Available || o.Instance.Resources.Spot {
			t.Errorf("offer %+v", o)
		}
	}
	if spot, _ := src.Offers(ctx, offers.Requirements{Spot: new(true)}); len(spot) != 0 {
		t.Errorf("%d spot offers; Vast.ai is on-demand only here", len(spot))
	}
	comp, _ := d.NewCompute(srv.Good)
	cfg := backends.InstanceConfig{ProjectName: "main", InstanceName: "ask-0", SSHPublicKeys: []string{"ssh-ed25519 AAAA k"}}
	pd, err := comp.CreateInstance(ctx, list[0], cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := srv.Machine(pd.InstanceID)
	if m.Name != "dstack-main-ask-0" || m.Env["DSTACK_PUBLIC_SSH_KEY"] != "ssh-ed25519 AAAA k" {
		t.Errorf("machine %+v", m)
	}
	if _, err := comp.CreateInstance(ctx, list[0], cfg); !backends.IsNoCapacity(err) {
		t.Errorf("renting a taken ask = %v, want no capacity", err)
	}
	again, _ := src.Offers(ctx, offers.Requirements{})
	if len(again) != 4 {
		t.Errorf("%d offers while one ask is rented, want 4", len(again))
	}
	if err := comp.TerminateInstance(ctx, pd.InstanceID, "", ""); err != nil {
		t.Fatal(err)
	}
	if m := srv.Misses(); len(m) > 0 {
		t.Errorf("misses: %v", m)
	}
}
