package cudo_test

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	_ "github.com/dstackgo/dstack/internal/backends/cudo"
	"github.com/dstackgo/dstack/internal/backends/fake"
	"github.com/dstackgo/dstack/internal/offers"
)

// TestMachineTypes: balanced offers per GPU count from what is free, without in-hyderabad-1; a VM id
// CUDO takes; what is rented is no longer free.
func TestMachineTypes(t *testing.T) {
	srv := fake.Use(t, "cudo")
	d, _ := backends.Lookup("cudo")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src := d.NewOffers(srv.Good, nil)
	list, err := src.Offers(ctx, offers.Requirements{})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	var a4000x4 offers.Offer
	for _, o := range list {
		if o.Region == "in-hyderabad-1" {
			t.Errorf("offer in the excluded in-hyderabad-1")
		}
		if n := len(o.Instance.Resources.GPUs); n > 0 {
			counts[o.Instance.Name]++
			if o.Instance.Name == "epyc-milan-rtx-a4000" && n == 4 {
				a4000x4 = o
			}
		}
	}
	if counts["epyc-milan-rtx-a4000"] != 3 || counts["ice-lake-a40"] != 4 {
		t.Errorf("GPU offers per machine type: %v, want 1/2/4 A4000 and 1/2/4/8 A40", counts)
	}
	comp, _ := d.NewCompute(srv.Good)
	pd, err := comp.CreateInstance(ctx, a4000x4, backends.InstanceConfig{ProjectName: "Main_Project", InstanceName: "Fleet_With-A-Very-Long-Name-0-abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[a-z]([a-z0-9-]{0,28}[a-z0-9])?$`).MatchString(pd.InstanceID) || pd.InstanceID[:7] != "dstack-" {
		t.Errorf("vm id %q", pd.InstanceID)
	}
	after, _ := src.Offers(ctx, offers.Requirements{})
	for _, o := range after {
		if o.Instance.Name == "epyc-milan-rtx-a4000" && len(o.Instance.Resources.GPUs) > 0 {
			t.Errorf("an A4000 offer while all four are rented: %+v", o.Instance)
		}
	}
	if _, err := comp.CreateInstance(ctx, a4000x4, backends.InstanceConfig{ProjectName: "main", InstanceName: "second"}); !backends.IsNoCapacity(err) {
		t.Errorf("a second 4xA4000 = %v, want no capacity", err)
	}
	if err := comp.TerminateInstance(ctx, pd.InstanceID, "", ""); err != nil {
		t.Fatal(err)
	}
	if m := srv.Misses(); len(m) > 0 {
		t.Errorf("misses: %v", m)
	}
}
