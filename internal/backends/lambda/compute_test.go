package lambda_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/fake"
	_ "github.com/dstackgo/dstack/internal/backends/lambda"
	"github.com/dstackgo/dstack/internal/offers"
)

// TestLiveCapacity: catalog offers are available where Lambda reports capacity for the type and
// not_available elsewhere; launches reuse one registered project key.
func TestLiveCapacity(t *testing.T) {
	srv := fake.Use(t, "lambda")
	d, _ := backends.Lookup("lambda")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := srv.Good
	cfg.Values["regions"] = []any{"us-east-1", "us-south-1"}
	list, err := d.NewOffers(cfg, fake.Tables()).Offers(ctx, offers.Requirements{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]offers.Availability{}
	for _, o := range list {
		got[o.Instance.Name+"@"+o.Region] = o.Availability
		if o.Region != "us-east-1" && o.Region != "us-south-1" {
			t.Errorf("offer in %s, outside the configured regions", o.Region)
		}
	}
	for k, want := range map[string]offers.Availability{
		"gpu_1x_a10@us-east-1": offers.Available, "gpu_1x_a10@us-south-1": offers.NotAvailable,
		"gpu_8x_h100_sxm5@us-south-1": offers.NotAvailable,
	} {
		if got[k] != want {
			t.Errorf("%s: %q, want %q", k, got[k], want)
		}
	}

	comp, _ := d.NewCompute(srv.Good)
	var offer offers.Offer
	for _, o := range list {
		if o.Instance.Name == "gpu_1x_a10" && o.Region == "us-east-1" {
			offer = o
		}
	}
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl project"
	for i, name := range []string{"fleet-0-aaaa", "fleet-1-bbbb"} {
		pd, err := comp.CreateInstance(ctx, offer, backends.InstanceConfig{ProjectName: "main", InstanceName: name, SSHPublicKeys: []string{key}})
		if err != nil {
			t.Fatal(err)
		}
		m, _ := srv.Machine(pd.InstanceID)
		if m.Name != "dstack-main-"+name || pd.Username != "ubuntu" || !pd.Dockerized {
			t.Errorf("#%d: machine %q, pd %+v", i, m.Name, pd)
		}
	}
	keys := srv.Objects("ssh-keys")
	if len(keys) != 1 {
		t.Fatalf("%d SSH keys registered, want 1", len(keys))
	}
	for _, k := range keys {
		if !strings.HasPrefix(k.(map[string]any)["name"].(string), "dstack-main-") {
			t.Errorf("key %v is not named dstack-main-...", k)
		}
	}
	// No capacity in the region: Lambda's own refusal, not the fake's switch.
	offer.Region = "us-south-1"
	if _, err := comp.CreateInstance(ctx, offer, backends.InstanceConfig{ProjectName: "main", InstanceName: "x", SSHPublicKeys: []string{key}}); !backends.IsNoCapacity(err) {
		t.Errorf("launch without capacity = %v", err)
	}
	if m := srv.Misses(); len(m) > 0 {
		t.Errorf("misses: %v", m)
	}
}

// TestListInstances: the lister finds the machines dstack named (dstack-...), not others, and not
// terminated ones.
func TestListInstances(t *testing.T) {
	srv := fake.Use(t, "lambda")
	d, _ := backends.Lookup("lambda")
	comp, _ := d.NewCompute(srv.Good)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offer := offers.Offer{Backend: "lambda", Region: "us-east-1", Instance: offers.InstanceType{Name: "gpu_1x_a10"}}
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl project"
	var ids []string
	for _, name := range []string{"run-0-5e7a", "run-1-5e7a"} {
		pd, err := comp.CreateInstance(ctx, offer, backends.InstanceConfig{ProjectName: "main", InstanceName: name, SSHPublicKeys: []string{key}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, pd.InstanceID)
	}
	if err := comp.TerminateInstance(ctx, ids[1], "", ""); err != nil {
		t.Fatal(err)
	}
	list, err := comp.(backends.InstanceLister).ListInstances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].InstanceID != ids[0] || list[0].Name != "dstack-main-run-0-5e7a" || list[0].Region != "us-east-1" {
		t.Fatalf("listed %+v, want only %s", list, ids[0])
	}
	if m := srv.Misses(); len(m) > 0 {
		t.Errorf("misses: %v", m)
	}
}
