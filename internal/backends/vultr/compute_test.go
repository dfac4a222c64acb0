package vultr_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/fake"
	_ "github.com/dstackgo/dstack/internal/backends/vultr"
	"github.com/dstackgo/dstack/internal/offers"
)

// TestPlans: cloud GPU plans count their GPUs from the VRAM (fractions left out), bare-metal plans
// from their id; a plan is offered where it has locations; bare metal is created as bare metal.
func TestPlans(t *testing.T) {
	srv := fake.Use(t, "vultr")
	d, _ := backends.Lookup("vultr")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := srv.Good
	delete(cfg.Values, "regions")
	list, err := d.NewOffers(cfg, nil).Offers(ctx, offers.Requirements{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]offers.Offer{}
	for _, o := range list {
		got[o.Instance.Name+"@"+o.Region] = o
	}
	gpus := func(k string) (int, string) {
		o, ok := got[k]
		if !ok || len(o.Instance.Resources.GPUs) == 0 {
			return 0, ""
		}
		return len(o.Instance.Resources.GPUs), o.Instance.Resources.GPUs[0].Name
	}
	for k, want := range map[string]string{"vcg-a40-24c-120g-96vram@fra": "2 A40", "vcg-a100-12c-120g-80vram@lax": "1 A100",
		"vbm-256c-2048gb-8-h100-gpu@lax": "8 H100"} {
		n, name := gpus(k)
		if n == 0 || want != strconv.Itoa(n)+" "+name {
			t.Errorf("%s: %d %s, want %s", k, n, name, want)
		}
	}
	for k := range got {
		if strings.HasPrefix(k, "vcg-a16") || strings.HasPrefix(k, "vcg-l40s") {
			t.Errorf("offer %s: a fraction of a GPU, or a plan without locations", k)
		}
	}
	if _, ok := got["vc2-2c-4gb@ewr"]; !ok {
		t.Errorf("no CPU plan offer")
	}

	comp, _ := d.NewCompute(srv.Good)
	pd, err := comp.CreateInstance(ctx, got["vbm-256c-2048gb-8-h100-gpu@lax"], backends.InstanceConfig{ProjectName: "main",
		InstanceName: "metal-0", SSHPublicKeys: []string{"ssh-ed25519 AAAA k"}, ShimURL: "http://srv/dstack-shim"})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := srv.Machine(pd.InstanceID)
	if m.Extra["metal"] != true || !strings.Contains(pd.BackendData, "bare_metal") {
		t.Errorf("bare-metal plan created as %+v / %s", m.Extra, pd.BackendData)
	}
	if !strings.HasPrefix(m.UserData, "#cloud-config\n") || !strings.Contains(m.UserData, "dstack-shim") ||
		!strings.Contains(m.UserData, `"ssh-ed25519 AAAA k"`) {
		t.Errorf("user data:\n%s", m.UserData)
	}
	if m.Name != "dstack-main-metal-0" || len(m.Tags) != 2 || m.Tags[0] != "dstack-main" {
		t.Errorf("label %q tags %v", m.Name, m.Tags)
	}
	for pd.Hostname == nil {
		if err := comp.UpdateProvisioningData(ctx, pd); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := 0; i < 2; i++ {
		if err := comp.TerminateInstance(ctx, pd.InstanceID, pd.Region, pd.BackendData); err != nil {
			t.Fatal(err)
		}
	}
	if len(srv.Alive()) != 0 || len(srv.Misses()) != 0 {
		t.Errorf("alive %v misses %v", srv.Alive(), srv.Misses())
	}
	// A plan outside its locations is not available there: Vultr's refusal is a capacity error.
	o := got["vcg-a100-12c-120g-80vram@lax"]
	o.Region = "fra"
	if _, err := comp.CreateInstance(ctx, o, backends.InstanceConfig{ProjectName: "main", InstanceName: "x"}); !backends.IsNoCapacity(err) {
		t.Errorf("create where the plan is sold out = %v", err)
	}
}
