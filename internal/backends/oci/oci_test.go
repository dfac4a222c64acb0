package oci_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/backendtest"
	"github.com/dstackgo/dstack/internal/backends/fake"
	"github.com/dstackgo/dstack/internal/backends/oci"
	"github.com/dstackgo/dstack/internal/offers"
	"github.com/dstackgo/dstack/internal/schema"
)

func creds(cfg backends.Config) map[string]any { return cfg.Values["creds"].(map[string]any) }

func clone(cfg backends.Config) backends.Config {
	v := map[string]any{}
	for k, x := range cfg.Values {
		if m, ok := x.(map[string]any); ok {
			c := map[string]any{}
			for kk, y := range m {
				c[kk] = y
			}
			x = c
		}
		v[k] = x
	}
	return backends.Config{Type: cfg.Type, Values: v}
}

func wantFields(t *testing.T, err error, want ...string) {
	t.Helper()
	var ce *backends.CredentialsError
	if !errors.As(err, &ce) {
		t.Fatalf("error = %v (%T), want *backends.CredentialsError", err, err)
	}
	var got []string
	for _, f := range ce.Fields {
		got = append(got, strings.Join(f, "."))
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("fields %v lack %s (%s)", got, w, ce.Msg)
		}
	}
}

func TestCheck(t *testing.T) {
	d := backendtest.Driver(t, "oci")
	srv := fake.Use(t, "oci")
	if err := d.Check(backendtest.Ctx(t), srv.Good); err != nil {
		t.Fatalf("Check(good) = %v", err)
	}
	for _, field := range []string{"user", "tenancy", "fingerprint", "region"} {
		t.Run(field, func(t *testing.T) {
			cfg := clone(srv.Good)
			creds(cfg)[field] = "invalid"
			wantFields(t, d.Check(backendtest.Ctx(t), cfg), "creds."+field)
		})
	}
	t.Run("key_content not a key", func(t *testing.T) {
		cfg := clone(srv.Good)
		creds(cfg)["key_content"] = "invalid"
		err := d.Check(backendtest.Ctx(t), cfg)
		wantFields(t, err, "creds.key_content")
	})
	t.Run("key_content another key", func(t *testing.T) {
		cfg := clone(srv.Good)
		creds(cfg)["key_content"] = creds(srv.Bad)["key_content"]
		err := d.Check(backendtest.Ctx(t), cfg)
		wantFields(t, err, "creds.key_content", "creds.fingerprint")
		for _, s := range srv.Secrets {
			if strings.Contains(err.Error(), s) {
				t.Errorf("error %q leaks a secret", err)
			}
		}
	})
	t.Run("key_file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "key.pem")
		if err := os.WriteFile(path, []byte(creds(srv.Good)["key_content"].(string)), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := clone(srv.Good)
		delete(creds(cfg), "key_content")
		creds(cfg)["key_file"] = path
		if err := d.Check(backendtest.Ctx(t), cfg); err != nil {
			t.Fatalf("Check with key_file = %v", err)
		}
		missing := filepath.Join(t.TempDir(), "nope.pem")
		creds(cfg)["key_file"] = missing
		err := d.Check(backendtest.Ctx(t), cfg)
		wantFields(t, err, "creds.key_file")
		if err == nil || !strings.Contains(err.Error(), missing) {
			t.Errorf("error %v does not name the path %s", err, missing)
		}
	})
	t.Run("regions not subscribed", func(t *testing.T) {
		cfg := clone(srv.Good)
		cfg.Values["regions"] = []any{"us-phoenix-1"}
		wantFields(t, d.Check(backendtest.Ctx(t), cfg), "regions")
	})
	t.Run("compartment_id unknown", func(t *testing.T) {
		cfg := clone(srv.Good)
		cfg.Values["compartment_id"] = "ocid1.compartment.oc1..aaaaaaaanothere"
		wantFields(t, d.Check(backendtest.Ctx(t), cfg), "compartment_id")
	})
	t.Run("default", func(t *testing.T) {
		home := t.TempDir()
		for rel, content := range fake.HomeFiles("oci", home) {
			p := filepath.Join(home, rel)
			_ = os.MkdirAll(filepath.Dir(p), 0o700)
			if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		cfg := backends.Config{Type: "oci", Values: map[string]any{"type": "oci",
			"creds": map[string]any{"type": "default", "file": filepath.Join(home, ".oci", "config")}}}
		if err := d.Check(backendtest.Ctx(t), cfg); err != nil {
			t.Fatalf("Check(default) = %v", err)
		}
		creds(cfg)["profile"] = "OTHER"
		wantFields(t, d.Check(backendtest.Ctx(t), cfg), "creds.profile")
		creds(cfg)["file"] = filepath.Join(home, "missing")
		wantFields(t, d.Check(backendtest.Ctx(t), cfg), "creds.file")
	})
	t.Run("default disabled", func(t *testing.T) {
		v := map[string]any{"type": "oci", "creds": map[string]any{"type": "default"}}
		_, issues := backends.Validate(v, &schema.Context{Getenv: func(k string) string {
			if k == "DSTACK_DEFAULT_CREDS_DISABLED" {
				return "1"
			}
			return ""
		}})
		if len(issues) == 0 {
			t.Error("default credentials accepted with DSTACK_DEFAULT_CREDS_DISABLED set")
		}
	})
	backendtest.NoMisses(t, srv)
}

func TestOffers(t *testing.T) {
	d := backendtest.Driver(t, "oci")
	srv := fake.Use(t, "oci")
	cfg := clone(srv.Good)
	delete(cfg.Values, "regions") // the subscribed regions dstack supports
	list, err := d.NewOffers(cfg, fake.Tables()).Offers(backendtest.Ctx(t), offers.Requirements{})
	if err != nil {
		t.Fatal(err)
	}
	regions := map[string]bool{}
	for _, o := range list {
		regions[o.Region] = true
	}
	if len(regions) != 3 || !regions["eu-frankfurt-1"] || !regions["us-ashburn-1"] || !regions["uk-london-1"] {
		t.Errorf("offer regions %v, want the subscribed supported ones (Frankfurt, Ashburn, London)", regions)
	}
	ad := func(region string, n int) string {
		return "Simx:" + strings.ToUpper(region) + "-AD-" + string(rune('0'+n))
	}
	for _, c := range []struct {
		shape, region string
		spot          bool
		avail         offers.Availability
		ads           []string
	}{
		{"VM.GPU.A10.1", "us-ashburn-1", false, offers.Available, []string{ad("us-ashburn-1", 2), ad("us-ashburn-1", 3)}},
		{"VM.GPU.A10.1", "us-ashburn-1", true, offers.Available, []string{ad("us-ashburn-1", 2), ad("us-ashburn-1", 3)}},
		{"VM.GPU2.1", "us-ashburn-1", false, offers.Available, []string{ad("us-ashburn-1", 1)}},
		{"VM.GPU2.1", "eu-frankfurt-1", false, offers.NotAvailable, nil},
		{"VM.Standard.E4.Flex", "uk-london-1", false, offers.Available, []string{ad("uk-london-1", 1)}},
	} {
		o := backendtest.Find(list, c.shape, c.region, c.spot)
		if o == nil {
			t.Errorf("no offer %s in %s (spot %v)", c.shape, c.region, c.spot)
			continue
		}
		if o.Availability != c.avail || !slices.Equal(o.AvailabilityZones, c.ads) {
			t.Errorf("%s in %s: %s %v, want %s %v", c.shape, c.region, o.Availability, o.AvailabilityZones, c.avail, c.ads)
		}
	}
	// Cached: a second query asks nothing.
	src := d.NewOffers(srv.Good, fake.Tables())
	if _, err := src.Offers(backendtest.Ctx(t), offers.Requirements{}); err != nil {
		t.Fatal(err)
	}
	hits := srv.Hits()
	if _, err := src.Offers(backendtest.Ctx(t), offers.Requirements{}); err != nil {
		t.Fatal(err)
	}
	if srv.Hits() != hits {
		t.Errorf("a second Offers call made %d requests, want 0 (cached)", srv.Hits()-hits)
	}
	backendtest.NoMisses(t, srv)
}

func TestLifecycle(t *testing.T) {
	d := backendtest.Driver(t, "oci")
	srv := fake.Use(t, "oci")
	comp, _ := d.NewCompute(srv.Good)
	offer := backendtest.OfferFor(t, "oci", srv.Good, "VM.GPU.A10.1", "us-ashburn-1", true)
	pd, err := comp.CreateInstance(backendtest.Ctx(t), offer, backendtest.InstanceConfig("life-0", "srv-1"))
	if err != nil {
		t.Fatal(err)
	}
	if pd.Hostname != nil || pd.Username != oci.Username || !pd.Dockerized || pd.AvailabilityZone == nil {
		t.Errorf("provisioning data %+v", pd)
	}
	backendtest.WaitHostname(t, comp, pd)
	m, _ := srv.Machine(pd.InstanceID)
	if *pd.Hostname != m.IP || *pd.SSHPort != 22 || pd.InternalIP == nil || *pd.InternalIP != m.PrivateIP {
		t.Errorf("address %s:%d (%v), want %s:22 (%s)", *pd.Hostname, *pd.SSHPort, pd.InternalIP, m.IP, m.PrivateIP)
	}
	if !m.Spot || m.Extra["preemptible"] != true || m.Type != "VM.GPU.A10.1" || !strings.Contains(m.UserData, "dstack-shim") || len(m.SSHKeys) != 1 {
		t.Errorf("machine %+v", m)
	}
	for _, want := range []string{"dstack_instance=life-0", "dstack_project=main", "dstack_server=srv-1"} {
		if !slices.Contains(m.Tags, want) {
			t.Errorf("instance tags %v lack %s", m.Tags, want)
		}
	}
	for i := 0; i < 2; i++ {
		if err := comp.TerminateInstance(backendtest.Ctx(t), pd.InstanceID, pd.Region, pd.BackendData); err != nil {
			t.Fatalf("terminate #%d: %v", i+1, err)
		}
	}
	if m, _ := srv.Machine(pd.InstanceID); m.Status != fake.StatusTerminated || m.Extra["preserve_boot_volume"] != false {
		t.Errorf("after terminate: status %s, preserve_boot_volume %v (want terminated, false)", m.Status, m.Extra["preserve_boot_volume"])
	}
	if err := comp.TerminateInstance(backendtest.Ctx(t), "ocid1.instance.oc1.us-ashburn-1.unknown", "us-ashburn-1", ""); err != nil {
		t.Errorf("terminate of an unknown instance = %v, want nil", err)
	}
	backendtest.NoMisses(t, srv)

	// A flexible shape gets its shape config; the boot volume follows the offer's disk.
	flex := backendtest.OfferFor(t, "oci", srv.Good, "VM.Standard.E4.Flex", "us-ashburn-1", false)
	flex.Instance.Resources.Disk.SizeMiB = 120 * 1024
	pd, err = comp.CreateInstance(backendtest.Ctx(t), flex, backendtest.InstanceConfig("life-1", "srv-1"))
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := srv.Machine(pd.InstanceID); m.Spot || m.Type != "VM.Standard.E4.Flex" || m.Extra["boot_volume_gb"] != 120 ||
		m.Extra["ocpus"] != float64(1) || m.Extra["memory_gb"] != float64(16) {
		t.Errorf("flex machine %+v, want 1 OCPU, 16 GB, a 120 GB boot volume", m)
	}
	_ = comp.TerminateInstance(backendtest.Ctx(t), pd.InstanceID, pd.Region, "")
	backendtest.NoMisses(t, srv)
}

func TestCapacityFallOver(t *testing.T) {
	d := backendtest.Driver(t, "oci")
	srv := fake.Use(t, "oci")
	cfg := clone(srv.Good)
	cfg.Values["regions"] = []any{"eu-frankfurt-1", "us-ashburn-1"}
	comp, _ := d.NewCompute(cfg)
	// Frankfurt AD-1 is out of host capacity for A10s: the launch lands in AD-2.
	pd, err := comp.CreateInstance(backendtest.Ctx(t), backendtest.OfferFor(t, "oci", cfg, "VM.GPU.A10.1", "eu-frankfurt-1", false), backendtest.InstanceConfig("fall-0", "srv-1"))
	if err != nil {
		t.Fatal(err)
	}
	if pd.AvailabilityZone == nil || *pd.AvailabilityZone != "Simx:EU-FRANKFURT-1-AD-2" {
		t.Errorf("availability domain %v, want AD-2", pd.AvailabilityZone)
	}
	// The A100 shape's only AD refuses with LimitExceeded: no capacity.
	_, err = comp.CreateInstance(backendtest.Ctx(t), backendtest.OfferFor(t, "oci", cfg, "BM.GPU.A100-v2.8", "us-ashburn-1", false), backendtest.InstanceConfig("fall-1", "srv-1"))
	if !backends.IsNoCapacity(err) {
		t.Errorf("CreateInstance over the limit = %v, want a NoCapacityError", err)
	}
	if len(srv.Alive()) != 1 {
		t.Errorf("alive: %+v", srv.Alive())
	}
	backendtest.NoMisses(t, srv)
}

func TestNetworkOnce(t *testing.T) {
	d := backendtest.Driver(t, "oci")
	srv := fake.Use(t, "oci")
	offer := backendtest.OfferFor(t, "oci", srv.Good, "VM.Standard.E4.Flex", "us-ashburn-1", false)
	first, _ := d.NewCompute(srv.Good)
	for _, name := range []string{"net-0", "net-1"} { // the second reuses what the first cached
		if _, err := first.CreateInstance(backendtest.Ctx(t), offer, backendtest.InstanceConfig(name, "srv-1")); err != nil {
			t.Fatal(err)
		}
	}
	fresh, _ := d.NewCompute(srv.Good) // a fresh compute finds them again by name
	if _, err := fresh.CreateInstance(backendtest.Ctx(t), offer, backendtest.InstanceConfig("net-2", "srv-1")); err != nil {
		t.Fatal(err)
	}
	comps := srv.OCICompartments()
	if len(comps) != 1 || comps[oci.CompartmentName] == nil || comps[oci.CompartmentName]["dstack_server"] != "srv-1" {
		t.Errorf("compartments %v, want one named %s tagged dstack_server", comps, oci.CompartmentName)
	}
	for _, kind := range []string{"vcn", "internetgateway", "routetable", "securitylist", "subnet"} {
		res := srv.OCIResources(kind)
		if len(res) != 1 {
			t.Errorf("%d %s resources, want 1", len(res), kind)
			continue
		}
		tags := res[0]["freeformTags"].(map[string]string)
		if !strings.HasPrefix(res[0]["displayName"].(string), "dstack-main-default-") || tags["dstack_project"] != "main" || tags["dstack_server"] != "srv-1" {
			t.Errorf("%s %v", kind, res[0])
		}
	}
	// With compartment_id, nothing is created in the tenancy's root.
	cfg := clone(srv.Good)
	cfg.Values["compartment_id"] = "ocid1.compartment.oc1..aaaaaaaa"
	comp, _ := d.NewCompute(cfg)
	if _, err := comp.CreateInstance(backendtest.Ctx(t), offer, backendtest.InstanceConfig("net-3", "srv-1")); err != nil {
		t.Fatal(err)
	}
	if len(srv.OCICompartments()) != 1 || len(srv.OCIResources("vcn")) != 2 {
		t.Errorf("compartment_id: compartments %v, %d VCNs (want 1 and 2)", srv.OCICompartments(), len(srv.OCIResources("vcn")))
	}
	backendtest.NoMisses(t, srv)
}

func TestListInstances(t *testing.T) {
	d := backendtest.Driver(t, "oci")
	srv := fake.Use(t, "oci")
	comp, _ := d.NewCompute(srv.Good)
	lister := comp.(backends.InstanceLister)
	got, err := lister.ListInstances(backendtest.Ctx(t))
	if err != nil || len(got) != 0 {
		t.Fatalf("ListInstances before any launch = %v, %v", got, err)
	}
	offer := backendtest.OfferFor(t, "oci", srv.Good, "VM.Standard.E4.Flex", "us-ashburn-1", false)
	var ids []string
	for _, name := range []string{"orph-0", "orph-1", "orph-2", "orph-3"} { // more than a page
		pd, err := comp.CreateInstance(backendtest.Ctx(t), offer, backendtest.InstanceConfig(name, "srv-1"))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, pd.InstanceID)
	}
	untagged := backendtest.InstanceConfig("orph-x", "srv-1")
	untagged.Tags = nil
	if _, err := comp.CreateInstance(backendtest.Ctx(t), offer, untagged); err != nil {
		t.Fatal(err)
	}
	if err := comp.TerminateInstance(backendtest.Ctx(t), ids[0], "us-ashburn-1", ""); err != nil {
		t.Fatal(err)
	}
	got, err = lister.ListInstances(backendtest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, x := range got {
		listed = append(listed, x.InstanceID)
		if x.Tags["dstack_server"] != "srv-1" || x.Region != "us-ashburn-1" || x.LaunchedAt.IsZero() || x.Backend != "oci" {
			t.Errorf("listed %+v", x)
		}
	}
	slices.Sort(listed)
	want := append([]string(nil), ids[1:]...)
	slices.Sort(want)
	if !slices.Equal(listed, want) {
		t.Errorf("ListInstances = %v, want %v", listed, want)
	}
	backendtest.NoMisses(t, srv)
}
