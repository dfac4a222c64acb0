package gcp_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/backendtest"
	"github.com/dstackgo/dstack/internal/backends/fake"
	gcpb "github.com/dstackgo/dstack/internal/backends/gcp"
	"github.com/dstackgo/dstack/internal/offers"
	"github.com/dstackgo/dstack/internal/schema"
)

// config is the fake's good config with extra keys (nil deletes one), through the schema as the
// server reads it.
func config(t *testing.T, srv *fake.Server, extra map[string]any) backends.Config {
	t.Helper()
	return backendtest.Validated(t, fake.GoodConfigAt("gcp", srv.URL).Values, &schema.Context{ReadFiles: true, Getenv: backendtest.NoEnv}, extra)
}

func fields(err error) []string {
	var ce *backends.CredentialsError
	if !errors.As(err, &ce) {
		return nil
	}
	var out []string
	for _, f := range ce.Fields {
		out = append(out, strings.Join(f, "."))
	}
	return out
}

func TestCheck(t *testing.T) {
	srv := fake.Use(t, "gcp")
	d := backendtest.Driver(t, "gcp")
	good := config(t, srv, nil)
	if err := d.Check(backendtest.Ctx(t), good); err != nil {
		t.Fatalf("Check(good) = %v", err)
	}

	if got := fields(d.Check(backendtest.Ctx(t), srv.Bad)); !slices.Equal(got, []string{"creds.data"}) {
		t.Errorf("Check(bad key) names %v, want [creds.data]", got)
	}

	notJSON := config(t, srv, map[string]any{"creds": map[string]any{"type": "service_account", "data": "not a key"}})
	err := d.Check(backendtest.Ctx(t), notJSON)
	if got := fields(err); !slices.Equal(got, []string{"creds.data"}) || !strings.Contains(err.Error(), "not JSON") {
		t.Errorf("Check(data not JSON) = %v, fields %v", err, got)
	}

	missing := config(t, srv, map[string]any{"project_id": "no-such-project"})
	err = d.Check(backendtest.Ctx(t), missing)
	if got := fields(err); !slices.Equal(got, []string{"project_id"}) || !strings.Contains(err.Error(), "no-such-project not found") {
		t.Errorf("Check(missing project) = %v, fields %v", err, got)
	}

	// A key from a file: read at load time; a bad key then names the file too.
	dir := t.TempDir()
	file := filepath.Join(dir, "key.json")
	if err := os.WriteFile(file, []byte(fake.GCPKeyJSON(srv.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	fromFile := config(t, srv, map[string]any{"creds": map[string]any{"type": "service_account", "filename": file}})
	if fromFile.String("creds", "data") == "" {
		t.Fatalf("the key file was not read into creds.data")
	}
	if err := d.Check(backendtest.Ctx(t), fromFile); err != nil {
		t.Errorf("Check(key file) = %v", err)
	}
	badFile := filepath.Join(dir, "bad.json")
	_ = os.WriteFile(badFile, []byte(srv.Bad.String("creds", "data")), 0o600)
	err = d.Check(backendtest.Ctx(t), config(t, srv, map[string]any{"creds": map[string]any{"type": "service_account", "filename": badFile}}))
	if got := fields(err); !slices.Contains(got, "creds.filename") || !slices.Contains(got, "creds.data") {
		t.Errorf("Check(bad key file) = %v, fields %v", err, got)
	}
	gone := backends.Config{Type: "gcp", Values: map[string]any{"type": "gcp", "creds": map[string]any{"type": "service_account", "filename": filepath.Join(dir, "none.json")}}}
	if got := fields(d.Check(backendtest.Ctx(t), gone)); !slices.Equal(got, []string{"creds.filename"}) {
		t.Errorf("Check(missing key file) names %v", got)
	}

	// Application Default Credentials.
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", file)
	def := config(t, srv, map[string]any{"creds": map[string]any{"type": "default"}})
	if err := d.Check(backendtest.Ctx(t), def); err != nil {
		t.Errorf("Check(default) = %v", err)
	}
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", badFile)
	if got := fields(d.Check(backendtest.Ctx(t), def)); !slices.Equal(got, []string{"creds"}) {
		t.Errorf("Check(default, bad key) names %v, want [creds]", got)
	}
	if _, issues := backends.Validate(def.Values, &schema.Context{Getenv: func(k string) string {
		if k == "DSTACK_DEFAULT_CREDS_DISABLED" {
			return "1"
		}
		return ""
	}}); len(issues) == 0 {
		t.Errorf("default credentials pass the schema with DSTACK_DEFAULT_CREDS_DISABLED set")
	}
	backendtest.NoMisses(t, srv)
}

func TestOffersQuotas(t *testing.T) {
	srv := fake.Use(t, "gcp")
	d := backendtest.Driver(t, "gcp")
	cfg := config(t, srv, map[string]any{"regions": []any{"us-central1", "europe-west4"}})
	list, err := d.NewOffers(cfg, fake.Tables()).Offers(backendtest.Ctx(t), offers.Requirements{})
	if err != nil {
		t.Fatal(err)
	}
	type key struct {
		name, region string
		spot         bool
		gpus         int
	}
	got := map[key]offers.Offer{}
	for i, o := range list {
		if o.Region != "us-central1" && o.Region != "europe-west4" {
			t.Errorf("offer %s in %s, outside the regions", o.Instance.Name, o.Region)
		}
		if i > 0 && o.Price < list[i-1].Price {
			t.Errorf("offers not sorted by price at %d", i)
		}
		k := key{o.Instance.Name, o.Region, o.Instance.Resources.Spot, len(o.Instance.Resources.GPUs)}
		if _, dup := got[k]; dup {
			t.Errorf("offer %+v appears twice: zones were not folded into the region", k)
		}
		got[k] = o
	}
	want := []struct {
		k     key
		avail offers.Availability
		zones []string
	}{
		{key{"a2-highgpu-1g", "us-central1", false, 1}, offers.Unknown, []string{"us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"}},
		{key{"a2-highgpu-1g", "us-central1", true, 1}, offers.NoQuota, nil},   // PREEMPTIBLE_NVIDIA_A100_GPUS 0
		{key{"a3-highgpu-8g", "us-central1", false, 8}, offers.NoQuota, nil},  // NVIDIA_H100_GPUS 0
		{key{"n1-standard-4", "europe-west4", false, 1}, offers.NoQuota, nil}, // NVIDIA_T4_GPUS 0
		{key{"n1-standard-4", "us-central1", false, 1}, offers.Unknown, nil},
		{key{"g2-standard-4", "us-central1", true, 1}, offers.NoQuota, nil},
		{key{"g2-standard-4", "europe-west4", true, 1}, offers.Unknown, nil},
		{key{"e2-standard-4", "europe-west4", false, 0}, offers.Unknown, []string{"europe-west4-a", "europe-west4-b", "europe-west4-c"}},
	}
	for _, w := range want {
		o, ok := got[w.k]
		if !ok {
			t.Errorf("no offer %+v", w.k)
			continue
		}
		if o.Availability != w.avail {
			t.Errorf("%+v availability %q, want %q", w.k, o.Availability, w.avail)
		}
		if w.zones != nil && !slices.Equal(o.AvailabilityZones, w.zones) {
			t.Errorf("%+v zones %v, want %v", w.k, o.AvailabilityZones, w.zones)
		}
	}
	backendtest.NoMisses(t, srv)
}

// offer finds an offer of the config by type, GPUs and spot, in the region when one is given.
func offer(t *testing.T, cfg backends.Config, name string, gpus int, spot bool, region ...string) offers.Offer {
	t.Helper()
	for _, o := range backendtest.Offers(t, "gcp", cfg) {
		if o.Instance.Name == name && len(o.Instance.Resources.GPUs) == gpus && o.Instance.Resources.Spot == spot &&
			(len(region) == 0 || o.Region == region[0]) {
			return o
		}
	}
	t.Fatalf("no offer %s x%d spot=%v %v", name, gpus, spot, region)
	return offers.Offer{}
}

func newCompute(t *testing.T, cfg backends.Config) backends.Compute {
	t.Helper()
	c, err := backendtest.Driver(t, "gcp").NewCompute(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLifecycle(t *testing.T) {
	srv := fake.Use(t, "gcp")
	cfg := config(t, srv, map[string]any{"tags": map[string]any{"Team": "ML Research", "cost-center": "42"}})
	comp := newCompute(t, cfg)
	o := offer(t, cfg, "n1-standard-4", 1, false)
	pd, err := comp.CreateInstance(backendtest.Ctx(t), o, backendtest.InstanceConfig("Run-1.Node", "srv1"))
	if err != nil {
		t.Fatal(err)
	}
	if pd.InstanceID != "dstack-main-run-1-node" || pd.Region != "us-central1" || pd.Username != "ubuntu" || !pd.Dockerized {
		t.Errorf("provisioning data %+v", pd)
	}
	m, ok := srv.Machine(pd.InstanceID)
	if !ok {
		t.Fatalf("no machine %s", pd.InstanceID)
	}
	if m.Extra["accelerator"] != "nvidia-tesla-t4" || m.Extra["zone"] != "us-central1-a" || m.Extra["tags"] != "dstack-runner-instance" {
		t.Errorf("machine %+v", m.Extra)
	}
	if !slices.Equal(m.SSHKeys, []string{backendtest.TestKey}) || !strings.Contains(m.UserData, "dstack-shim") {
		t.Errorf("keys %v, startup script %q", m.SSHKeys, m.UserData)
	}
	// Labels: the config's, sanitised, and dstack's.
	for _, l := range []string{"team=ml_research", "cost-center=42", "dstack_project=main", "dstack_server=srv1", "dstack_instance=run-1_node"} {
		if !slices.Contains(m.Tags, l) {
			t.Errorf("labels %v lack %s", m.Tags, l)
		}
	}
	for pd.Hostname == nil {
		if err := comp.UpdateProvisioningData(backendtest.Ctx(t), pd); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	m, _ = srv.Machine(pd.InstanceID)
	if *pd.Hostname != m.IP || *pd.InternalIP != m.PrivateIP || *pd.SSHPort != 22 {
		t.Errorf("hostname %s internal %s, want %s %s", *pd.Hostname, *pd.InternalIP, m.IP, m.PrivateIP)
	}

	// The orphan reconciler's view.
	lister := comp.(backends.InstanceLister)
	tagged, err := lister.ListInstances(backendtest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(tagged) != 1 || tagged[0].InstanceID != pd.InstanceID || tagged[0].Tags["dstack_server"] != "srv1" || tagged[0].State != "running" ||
		tagged[0].Region != "us-central1" || tagged[0].LaunchedAt.IsZero() {
		t.Errorf("ListInstances = %+v", tagged)
	}

	for i := 0; i < 2; i++ {
		if err := comp.TerminateInstance(backendtest.Ctx(t), pd.InstanceID, pd.Region, pd.BackendData); err != nil {
			t.Fatalf("TerminateInstance #%d = %v", i+1, err)
		}
	}
	if alive := srv.Alive(); len(alive) != 0 {
		t.Errorf("alive after terminate: %+v", alive)
	}
	if tagged, _ := lister.ListInstances(backendtest.Ctx(t)); len(tagged) != 0 {
		t.Errorf("ListInstances after terminate = %+v", tagged)
	}
	// Without backend data the region's zones are tried.
	if err := comp.TerminateInstance(backendtest.Ctx(t), pd.InstanceID, pd.Region, ""); err != nil {
		t.Errorf("TerminateInstance without backend data = %v", err)
	}
	backendtest.NoMisses(t, srv)
}

func TestZoneFallOver(t *testing.T) {
	srv := fake.Use(t, "gcp")
	cfg := config(t, srv, nil)
	comp := newCompute(t, cfg)
	o := offer(t, cfg, "a2-highgpu-1g", 1, false)
	pd, err := comp.CreateInstance(backendtest.Ctx(t), o, backendtest.InstanceConfig("a100-0", "srv1"))
	if err != nil {
		t.Fatal(err)
	}
	if *pd.AvailabilityZone != "us-central1-c" || !strings.Contains(pd.BackendData, `"zone":"us-central1-c"`) {
		t.Errorf("zone %s, backend data %s; want us-central1-c, the one with capacity", *pd.AvailabilityZone, pd.BackendData)
	}
	m, _ := srv.Machine(pd.InstanceID)
	if m.Extra["accelerator"] != "" {
		t.Errorf("a2 instance got guestAccelerators %v; its GPUs come with the type", m.Extra["accelerator"])
	}
	// Only zones without capacity: no capacity.
	o.AvailabilityZones = []string{"us-central1-a", "us-central1-b"}
	_, err = comp.CreateInstance(backendtest.Ctx(t), o, backendtest.InstanceConfig("a100-1", "srv1"))
	if !backends.IsNoCapacity(err) || !strings.Contains(err.Error(), "ZONE_RESOURCE_POOL_EXHAUSTED") {
		t.Errorf("CreateInstance in exhausted zones = %v, want a NoCapacityError", err)
	}
	// Beyond the region's quota (8 A100s): quotaExceeded is a capacity refusal too.
	o = offer(t, cfg, "a3-highgpu-8g", 8, false)
	if _, err := comp.CreateInstance(backendtest.Ctx(t), o, backendtest.InstanceConfig("h100-0", "srv1")); !backends.IsNoCapacity(err) {
		t.Errorf("CreateInstance without quota = %v, want a NoCapacityError", err)
	}
	if len(srv.Alive()) != 1 {
		t.Errorf("alive: %+v", srv.Alive())
	}
	backendtest.NoMisses(t, srv)
}

func TestSpotPrivateServiceAccount(t *testing.T) {
	srv := fake.Use(t, "gcp")
	cfg := config(t, srv, map[string]any{"public_ips": false, "vm_service_account": "runner@sim-project.iam.gserviceaccount.com"})
	comp := newCompute(t, cfg)
	pd, err := comp.CreateInstance(backendtest.Ctx(t), offer(t, cfg, "n1-standard-4", 1, true), backendtest.InstanceConfig("spot-0", "srv1"))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := srv.Machine(pd.InstanceID)
	if !m.Spot || m.Extra["public"] != false || m.Extra["service_account"] != "runner@sim-project.iam.gserviceaccount.com" {
		t.Errorf("machine spot=%v extra=%v", m.Spot, m.Extra)
	}
	for pd.Hostname == nil {
		if err := comp.UpdateProvisioningData(backendtest.Ctx(t), pd); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if m, _ = srv.Machine(pd.InstanceID); *pd.Hostname != m.PrivateIP || pd.PublicIPEnabled {
		t.Errorf("hostname %s, want the internal IP %s", *pd.Hostname, m.PrivateIP)
	}
	// A preempted spot instance is deleted: the machine is gone.
	srv.Terminate(pd.InstanceID)
	var pe *backends.ProvisioningError
	if err := comp.UpdateProvisioningData(backendtest.Ctx(t), pd); !errors.As(err, &pe) {
		t.Errorf("UpdateProvisioningData of a deleted instance = %v, want a ProvisioningError", err)
	}
	backendtest.NoMisses(t, srv)
}

func TestFirewallAndSharedVPC(t *testing.T) {
	srv := fake.Use(t, "gcp")
	cfg := config(t, srv, nil)
	o := offer(t, cfg, "e2-standard-4", 0, false)
	for i, name := range []string{"fw-0", "fw-1"} {
		// A fresh compute each time: the rule is found on the provider, not only in a cache.
		if _, err := newCompute(t, cfg).CreateInstance(backendtest.Ctx(t), o, backendtest.InstanceConfig(name, "srv1")); err != nil {
			t.Fatalf("CreateInstance #%d = %v", i, err)
		}
	}
	rules := srv.Objects("gcp-firewalls")
	if len(rules) != 1 || rules["sim-project/"+gcpb.FirewallRuleName("default")] == nil {
		t.Errorf("firewall rules %v, want one: %s", rules, gcpb.FirewallRuleName("default"))
	}

	shared := config(t, srv, map[string]any{"vpc_name": "my-custom-vpc", "vpc_project_id": "another-project-id"})
	pd, err := newCompute(t, shared).CreateInstance(backendtest.Ctx(t), o, backendtest.InstanceConfig("shared-0", "srv1"))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := srv.Machine(pd.InstanceID)
	if m.Extra["network"] != "projects/another-project-id/global/networks/my-custom-vpc" {
		t.Errorf("network %v", m.Extra["network"])
	}
	if len(srv.Objects("gcp-firewalls")) != 1 {
		t.Errorf("a rule was created in the Shared VPC's host project: %v", srv.Objects("gcp-firewalls"))
	}
	missing := config(t, srv, map[string]any{"vpc_name": "no-such-vpc"})
	if _, err := newCompute(t, missing).CreateInstance(backendtest.Ctx(t), o, backendtest.InstanceConfig("novpc-0", "srv1")); err == nil || backends.IsNoCapacity(err) {
		t.Errorf("CreateInstance in a missing VPC = %v", err)
	}
	backendtest.NoMisses(t, srv)
}

func TestLabelSanitising(t *testing.T) {
	long := strings.Repeat("x", 70)
	got := gcpb.Labels(map[string]any{"9Lives": "Has Spaces/And:Colons", "ok_key": long}, map[string]string{"dstack_project": "Main"})
	want := map[string]string{"l9lives": "has_spaces_and_colons", "ok_key": long[:63], "dstack_project": "main"}
	if len(got) != len(want) {
		t.Fatalf("labels %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("label %s = %q, want %q", k, got[k], v)
		}
	}
}

func TestVolumes(t *testing.T) {
	srv := fake.Use(t, "gcp")
	cfg := config(t, srv, nil)
	comp := newCompute(t, cfg)
	vc := comp.(backends.VolumeCompute)
	va := comp.(backends.VolumeAttacher)
	vol, err := vc.CreateVolume(backendtest.Ctx(t), backends.VolumeConfig{ProjectName: "main", Name: "data", Region: "us-central1", SizeGB: 100,
		Tags: map[string]string{"dstack_server": "srv1"}})
	if err != nil {
		t.Fatal(err)
	}
	if vol.VolumeID != "dstack-main-data" || *vol.AvailabilityZone != "us-central1-a" || vol.SizeGB != 100 || !vol.Attachable {
		t.Errorf("volume %+v", vol)
	}
	reg, err := vc.RegisterVolume(backendtest.Ctx(t), backends.VolumeConfig{Region: "us-central1", VolumeID: "dstack-main-data"})
	if err != nil || reg.SizeGB != 100 || *reg.AvailabilityZone != "us-central1-a" {
		t.Errorf("RegisterVolume = %+v, %v", reg, err)
	}
	if _, err := vc.RegisterVolume(backendtest.Ctx(t), backends.VolumeConfig{Region: "us-central1", VolumeID: "nope"}); err == nil {
		t.Errorf("RegisterVolume of a missing disk = nil")
	}

	o := offer(t, cfg, "e2-standard-4", 0, false)
	pd, err := comp.CreateInstance(backendtest.Ctx(t), o, backendtest.InstanceConfig("vol-0", "srv1"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		att, err := va.AttachVolume(backendtest.Ctx(t), *vol, *pd)
		if err != nil || att.DeviceName != "/dev/disk/by-id/google-dstack-main-data" {
			t.Fatalf("AttachVolume #%d = %+v, %v", i+1, att, err)
		}
	}
	// An attached disk cannot be deleted.
	if err := vc.DeleteVolume(backendtest.Ctx(t), *vol); err == nil {
		t.Errorf("DeleteVolume of an attached disk = nil")
	}
	for i := 0; i < 2; i++ {
		if err := va.DetachVolume(backendtest.Ctx(t), *vol, *pd); err != nil {
			t.Fatalf("DetachVolume #%d = %v", i+1, err)
		}
	}
	for i := 0; i < 2; i++ {
		if err := vc.DeleteVolume(backendtest.Ctx(t), *vol); err != nil {
			t.Fatalf("DeleteVolume #%d = %v", i+1, err)
		}
	}
	if disks := srv.Objects("gcp-disks"); len(disks) != 0 {
		t.Errorf("disks left: %v", disks)
	}
	backendtest.NoMisses(t, srv)
}

func TestRetriesAndSecrets(t *testing.T) {
	srv := fake.Use(t, "gcp")
	cfg := config(t, srv, nil)
	comp := newCompute(t, cfg)
	o := offer(t, cfg, "e2-standard-4", 0, false)
	// Half the calls throttled: the retries get the machine through.
	srv.SetFaults(fake.Faults{Rate: 0.5, Kinds: []string{fake.FaultThrottle}})
	created := 0
	for i := 0; i < 4; i++ {
		if _, err := comp.CreateInstance(backendtest.Ctx(t), o, backendtest.InstanceConfig("retry-"+string(rune('a'+i)), "srv1")); err == nil {
			created++
		} else if strings.Contains(err.Error(), "PRIVATE KEY") {
			t.Errorf("error leaks the key: %v", err)
		}
	}
	if created == 0 || srv.FaultsInjected()[fake.FaultThrottle] == 0 {
		t.Errorf("created %d with %v faults", created, srv.FaultsInjected())
	}
	if got := len(srv.Alive()); got != created {
		t.Errorf("%d machines alive for %d launches: a retried insert made two", got, created)
	}
}

// TestNATCheck: without public IPs the check wants the VPC's Cloud NAT in every region (a router
// of that VPC with a NAT gateway), unless nat_check is false.
func TestNATCheck(t *testing.T) {
	srv := fake.Use(t, "gcp")
	d := backendtest.Driver(t, "gcp")
	check := func(extra map[string]any) error {
		t.Helper()
		return d.Check(backendtest.Ctx(t), config(t, srv, extra))
	}
	// sim-project's default VPC has a Cloud NAT in every region, the 35 default ones included.
	for _, regions := range []any{[]any{"us-central1"}, nil} {
		if err := check(map[string]any{"public_ips": false, "regions": regions}); err != nil {
			t.Errorf("Check(public_ips false, regions %v) = %v", regions, err)
		}
	}
	// my-custom-vpc of gcp-project-id: a NAT in us-central1; in us-east1 only a router without NAT
	// and another VPC's router with one.
	custom := map[string]any{"project_id": "gcp-project-id", "vpc_name": "my-custom-vpc", "public_ips": false,
		"regions": []any{"us-central1", "us-east1"}}
	err := check(custom)
	if got := fields(err); !slices.Equal(got, []string{"public_ips", "nat_check"}) ||
		!strings.Contains(err.Error(), "no Cloud NAT in us-east1,") || !strings.Contains(err.Error(), "nat_check: false") {
		t.Errorf("Check(no NAT in us-east1) = %v, fields %v", err, got)
	}
	custom["nat_check"] = false
	if err := check(custom); err != nil {
		t.Errorf("Check(nat_check false) = %v", err)
	}
	delete(custom, "nat_check")
	custom["public_ips"] = true
	if err := check(custom); err != nil {
		t.Errorf("Check(public IPs, no NAT) = %v", err)
	}
	// gcp-project-id's default VPC: NAT in us-central1, us-east1 and europe-west4 only.
	err = check(map[string]any{"project_id": "gcp-project-id", "public_ips": false,
		"regions": []any{"us-west1", "europe-west4", "us-central1", "asia-east1"}})
	if got := fields(err); !slices.Equal(got, []string{"public_ips", "nat_check"}) || !strings.Contains(err.Error(), "no Cloud NAT in asia-east1, us-west1,") {
		t.Errorf("Check(no NAT in two regions) = %v, fields %v", err, got)
	}
	// A VPC that does not exist is named as such, with or without public IPs.
	if got := fields(check(map[string]any{"vpc_name": "no-such-vpc"})); !slices.Equal(got, []string{"vpc_name"}) {
		t.Errorf("Check(missing VPC) names %v, want [vpc_name]", got)
	}
	if got := fields(check(map[string]any{"vpc_name": "no-such-vpc", "vpc_project_id": "another-project-id"})); !slices.Equal(got, []string{"vpc_name", "vpc_project_id"}) {
		t.Errorf("Check(missing shared VPC) names %v", got)
	}
	backendtest.NoMisses(t, srv)
}

// TestExtraVPCs: A3 instances get one gVNIC interface per extra VPC (up to their GPU NICs), in
// order; other types ignore them; the check wants the VPCs to exist.
func TestExtraVPCs(t *testing.T) {
	srv := fake.Use(t, "gcp")
	d := backendtest.Driver(t, "gcp")
	gpuVPCs := []any{"gpudirect-1", "gpudirect-2", "gpudirect-3", "gpudirect-4", "gpudirect-eu"}
	cfg := config(t, srv, map[string]any{"regions": []any{"us-east4", "us-central1"}, "extra_vpcs": gpuVPCs})
	// gpudirect-eu has no subnet in these regions; the check does not look at subnets.
	if err := d.Check(backendtest.Ctx(t), cfg); err != nil {
		t.Fatalf("Check(extra_vpcs) = %v", err)
	}
	for _, bad := range [][]any{{"gpudirect-1", "no-such-vpc"}, {"default"}} {
		err := d.Check(backendtest.Ctx(t), config(t, srv, map[string]any{"extra_vpcs": bad}))
		if got := fields(err); !slices.Equal(got, []string{"extra_vpcs"}) || !strings.Contains(err.Error(), bad[len(bad)-1].(string)) {
			t.Errorf("Check(extra_vpcs %v) = %v, fields %v", bad, err, got)
		}
	}

	comp := newCompute(t, cfg)
	nics := func(id string) []string {
		m, ok := srv.Machine(id)
		if !ok {
			t.Fatalf("no machine %s", id)
		}
		got, _ := m.Extra["nics"].([]string)
		return got
	}
	// a3-highgpu-8g takes the first four, after nic0.
	pd, err := comp.CreateInstance(backendtest.Ctx(t), offer(t, cfg, "a3-highgpu-8g", 8, false, "us-east4"), backendtest.InstanceConfig("a3-high", "srv1"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"projects/sim-project/global/networks/default|GVNIC"}
	for _, v := range gpuVPCs[:4] {
		want = append(want, "projects/sim-project/global/networks/"+v.(string)+"|GVNIC")
	}
	if got := nics(pd.InstanceID); !slices.Equal(got, want) {
		t.Errorf("a3-highgpu-8g interfaces %v, want %v", got, want)
	}
	for pd.Hostname == nil {
		if err := comp.UpdateProvisioningData(backendtest.Ctx(t), pd); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if m, _ := srv.Machine(pd.InstanceID); *pd.Hostname != m.IP || *pd.InternalIP != m.PrivateIP {
		t.Errorf("hostname %s internal %s, want nic0's %s %s", *pd.Hostname, *pd.InternalIP, m.IP, m.PrivateIP)
	}
	// a3-megagpu-8g takes up to eight: the fifth, gpudirect-eu, has no subnet in us-east4.
	mega := offer(t, cfg, "a3-megagpu-8g", 8, false, "us-east4")
	_, err = comp.CreateInstance(backendtest.Ctx(t), mega, backendtest.InstanceConfig("a3-mega", "srv1"))
	var pe *backends.ProvisioningError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "gpudirect-eu") || !strings.Contains(err.Error(), "extra_vpcs") {
		t.Errorf("CreateInstance(a3-mega, extra VPC without a subnet) = %v, want a ProvisioningError naming gpudirect-eu and extra_vpcs", err)
	}
	four := config(t, srv, map[string]any{"regions": []any{"us-east4", "us-central1"}, "extra_vpcs": gpuVPCs[:4]})
	pd, err = newCompute(t, four).CreateInstance(backendtest.Ctx(t), mega, backendtest.InstanceConfig("a3-mega", "srv1"))
	if err != nil {
		t.Fatal(err)
	}
	if got := nics(pd.InstanceID); !slices.Equal(got, want) {
		t.Errorf("a3-megagpu-8g interfaces %v, want %v", got, want)
	}
	// Other types ignore extra_vpcs.
	pd, err = comp.CreateInstance(backendtest.Ctx(t), offer(t, cfg, "e2-standard-4", 0, false, "us-central1"), backendtest.InstanceConfig("cpu-0", "srv1"))
	if err != nil {
		t.Fatal(err)
	}
	if got := nics(pd.InstanceID); !slices.Equal(got, []string{"projects/sim-project/global/networks/default|"}) {
		t.Errorf("e2-standard-4 interfaces %v, want nic0 only", got)
	}
	backendtest.NoMisses(t, srv)
}
