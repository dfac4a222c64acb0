package gcp_test

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/backendtest"
	"github.com/dstackgo/dstack/internal/backends/fake"
	"github.com/dstackgo/dstack/internal/offers"
	"github.com/dstackgo/dstack/internal/resources"
)

// waitAddress polls until the machine has an address.
func waitAddress(t *testing.T, comp backends.Compute, pd *backends.ProvisioningData) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for pd.Hostname == nil {
		if time.Now().After(deadline) {
			t.Fatalf("%s has no address after 10s", pd.InstanceID)
		}
		if err := comp.UpdateProvisioningData(backendtest.Ctx(t), pd); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTPUOffers(t *testing.T) {
	srv := fake.Use(t, "gcp")
	cfg := config(t, srv, map[string]any{"regions": []any{"us-central1", "europe-west4"}})
	src := backendtest.Driver(t, "gcp").NewOffers(cfg, fake.Tables())
	list, err := src.Offers(backendtest.Ctx(t), offers.Requirements{})
	if err != nil {
		t.Fatal(err)
	}
	tpus := map[string]offers.Offer{}
	for _, o := range list {
		if g := o.Instance.Resources.GPUs; len(g) > 0 && g[0].Vendor == "google" {
			tpus[o.Instance.Name+"/"+o.Region+"/"+map[bool]string{true: "spot", false: "on-demand"}[o.Instance.Resources.Spot]] = o
		}
	}
	for _, want := range []struct {
		key   string
		zones []string
		price float64
	}{
		{"v5litepod-1/us-central1/on-demand", []string{"us-central1-a", "us-central1-b"}, 1.2},
		{"v5litepod-8/us-central1/spot", []string{"us-central1-a", "us-central1-b"}, 3.84},
		{"v4-8/us-central1/on-demand", []string{"us-central1-b", "us-central1-f"}, 12.88},
		{"v3-8/europe-west4/on-demand", []string{"europe-west4-a"}, 8.8},
		{"v2-8/us-central1/spot", []string{"us-central1-b", "us-central1-c", "us-central1-f"}, 1.35},
	} {
		o, ok := tpus[want.key]
		if !ok {
			t.Errorf("no TPU offer %s among %v", want.key, slices.Sorted(maps.Keys(tpus)))
			continue
		}
		if !slices.Equal(o.AvailabilityZones, want.zones) || o.Price != want.price || o.Availability != offers.Unknown {
			t.Errorf("%s: zones %v price %v availability %q, want %v %v unknown", want.key, o.AvailabilityZones, o.Price, o.Availability, want.zones, want.price)
		}
	}
	for k := range tpus {
		if strings.HasPrefix(k, "v5litepod-16/") {
			t.Errorf("multi-host slice offered: %s", k)
		}
	}

	// `tpu:v5litepod-8` selects that slice only.
	spec, err := resources.Parse(map[string]any{"gpu": "tpu:v5litepod-8"})
	if err != nil {
		t.Fatal(err)
	}
	sel, err := src.Offers(backendtest.Ctx(t), offers.Requirements{Resources: spec})
	if err != nil {
		t.Fatal(err)
	}
	if len(sel) == 0 {
		t.Fatal("tpu:v5litepod-8 selects nothing")
	}
	for _, o := range sel {
		if o.Instance.Name != "v5litepod-8" || o.Instance.Resources.GPUs[0].Name != "v5litepod-8" {
			t.Errorf("tpu:v5litepod-8 selects %s (%+v)", o.Instance.Name, o.Instance.Resources.GPUs)
		}
	}
	// A bigger disk than a TPU VM's fixed 100 GB boot disk leaves TPUs out.
	big, _ := resources.Parse(map[string]any{"gpu": "tpu:v5litepod-8", "disk": "200GB.."})
	if sel, _ := src.Offers(backendtest.Ctx(t), offers.Requirements{Resources: big}); len(sel) != 0 {
		t.Errorf("tpu:v5litepod-8 with disk 200GB.. = %d offers, want none", len(sel))
	}
	backendtest.NoMisses(t, srv)
}

func TestTPULifecycle(t *testing.T) {
	srv := fake.Use(t, "gcp")
	cfg := config(t, srv, map[string]any{"tags": map[string]any{"Team": "ML"}})
	comp := newCompute(t, cfg)
	o := offer(t, cfg, "v5litepod-4", 1, false)
	pd, err := comp.CreateInstance(backendtest.Ctx(t), o, backendtest.InstanceConfig("tpu-0", "srv1"))
	if err != nil {
		t.Fatal(err)
	}
	if pd.InstanceID != "dstack-main-tpu-0" || *pd.AvailabilityZone != "us-central1-a" || !pd.Dockerized || pd.Username != "ubuntu" ||
		!strings.Contains(pd.BackendData, `"is_tpu":true`) || !strings.Contains(pd.BackendData, `"zone":"us-central1-a"`) {
		t.Errorf("provisioning data %+v", pd)
	}
	m, ok := srv.Machine(pd.InstanceID)
	if !ok || m.Extra["tpu"] != true {
		t.Fatalf("no TPU node %s: %+v", pd.InstanceID, m)
	}
	if m.Extra["accelerator_type"] != "v5litepod-4" || m.Extra["runtime_version"] != "v2-alpha-tpuv5-lite" || m.Extra["public"] != true ||
		m.Extra["tags"] != "dstack-runner-instance" || m.Extra["network"] != "projects/sim-project/global/networks/default" || m.Extra["scheduling"] != "" {
		t.Errorf("node %v", m.Extra)
	}
	for _, s := range []string{"dstack-shim", "DSTACK_DOCKER_PRIVILEGED=true", "PJRT_DEVICE=TPU"} {
		if !strings.Contains(m.UserData, s) {
			t.Errorf("startup script lacks %s", s)
		}
	}
	if !slices.Equal(m.SSHKeys, []string{backendtest.TestKey}) {
		t.Errorf("ssh keys %v", m.SSHKeys)
	}
	for _, l := range []string{"team=ml", "dstack_server=srv1", "dstack_project=main"} {
		if !slices.Contains(m.Tags, l) {
			t.Errorf("labels %v lack %s", m.Tags, l)
		}
	}
	waitAddress(t, comp, pd)
	m, _ = srv.Machine(pd.InstanceID)
	if *pd.Hostname != m.IP || *pd.InternalIP != m.PrivateIP || *pd.SSHPort != 22 {
		t.Errorf("hostname %s internal %s, want %s %s", *pd.Hostname, *pd.InternalIP, m.IP, m.PrivateIP)
	}

	lister := comp.(backends.InstanceLister)
	tagged, err := lister.ListInstances(backendtest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(tagged) != 1 || tagged[0].InstanceID != pd.InstanceID || tagged[0].State != "ready" || tagged[0].Region != "us-central1" ||
		tagged[0].Tags["dstack_server"] != "srv1" || tagged[0].LaunchedAt.IsZero() {
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
	var pe *backends.ProvisioningError
	if err := comp.UpdateProvisioningData(backendtest.Ctx(t), pd); !errors.As(err, &pe) {
		t.Errorf("UpdateProvisioningData of a deleted node = %v, want a ProvisioningError", err)
	}
	backendtest.NoMisses(t, srv)
}

func TestTPUSpotPrivateServiceAccount(t *testing.T) {
	srv := fake.Use(t, "gcp")
	cfg := config(t, srv, map[string]any{"public_ips": false, "vm_service_account": "runner@sim-project.iam.gserviceaccount.com"})
	comp := newCompute(t, cfg)
	o := offer(t, cfg, "v2-8", 1, true)
	pd, err := comp.CreateInstance(backendtest.Ctx(t), o, backendtest.InstanceConfig("tpu-spot", "srv1"))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := srv.Machine(pd.InstanceID)
	if !m.Spot || m.Price != 1.35 || m.Extra["scheduling"] != "spot" || m.Extra["public"] != false ||
		m.Extra["service_account"] != "runner@sim-project.iam.gserviceaccount.com" || m.Extra["runtime_version"] != "tpu-ubuntu2204-base" {
		t.Errorf("node spot=%v price=%v extra=%v", m.Spot, m.Price, m.Extra)
	}
	waitAddress(t, comp, pd)
	if m, _ = srv.Machine(pd.InstanceID); *pd.Hostname != m.PrivateIP || pd.PublicIPEnabled {
		t.Errorf("hostname %s, want the internal IP %s", *pd.Hostname, m.PrivateIP)
	}
	// Preempted: the node is gone.
	srv.Terminate(pd.InstanceID)
	var pe *backends.ProvisioningError
	if err := comp.UpdateProvisioningData(backendtest.Ctx(t), pd); !errors.As(err, &pe) {
		t.Errorf("UpdateProvisioningData of a preempted node = %v, want a ProvisioningError", err)
	}
	backendtest.NoMisses(t, srv)
}

func TestTPUZoneFallOver(t *testing.T) {
	srv := fake.Use(t, "gcp")
	cfg := config(t, srv, nil)
	comp := newCompute(t, cfg)
	o := offer(t, cfg, "v5litepod-8", 1, false)
	if !slices.Equal(o.AvailabilityZones, []string{"us-central1-a", "us-central1-b"}) {
		t.Fatalf("zones %v", o.AvailabilityZones)
	}
	// us-central1-a is out of capacity: its create's operation ends in a stockout.
	pd, err := comp.CreateInstance(backendtest.Ctx(t), o, backendtest.InstanceConfig("tpu-8", "srv1"))
	if err != nil {
		t.Fatal(err)
	}
	if *pd.AvailabilityZone != "us-central1-b" {
		t.Errorf("zone %s, want us-central1-b, the one with capacity", *pd.AvailabilityZone)
	}
	o.AvailabilityZones = []string{"us-central1-a"}
	_, err = comp.CreateInstance(backendtest.Ctx(t), o, backendtest.InstanceConfig("tpu-8b", "srv1"))
	if !backends.IsNoCapacity(err) || !strings.Contains(err.Error(), "no more capacity in the zone") {
		t.Errorf("CreateInstance in an exhausted zone = %v, want a NoCapacityError", err)
	}
	// Every launch refused (the create's operation done with the stockout at once).
	srv.SetNoCapacity(true)
	o = offer(t, cfg, "v5litepod-1", 1, false)
	if _, err := comp.CreateInstance(backendtest.Ctx(t), o, backendtest.InstanceConfig("tpu-1", "srv1")); !backends.IsNoCapacity(err) {
		t.Errorf("CreateInstance without capacity = %v, want a NoCapacityError", err)
	}
	srv.SetNoCapacity(false)
	// Throttling is not a quota refusal: it is retried, then a plain error.
	srv.SetFaults(fake.Faults{Rate: 1, Kinds: []string{fake.FaultThrottle}})
	_, err = comp.CreateInstance(backendtest.Ctx(t), o, backendtest.InstanceConfig("tpu-1", "srv1"))
	if err == nil || backends.IsNoCapacity(err) {
		t.Errorf("CreateInstance throttled = %v, want a plain error", err)
	}
	srv.SetFaults(fake.Faults{})
	if alive := srv.Alive(); len(alive) != 1 {
		t.Errorf("alive: %+v", alive)
	}
	backendtest.NoMisses(t, srv)
}

// TestTPUOrphans: the orphan reconciler lists TPU nodes beside VMs and terminates them without
// backend data; a project without the Cloud TPU API has none, and creating one says how to enable it.
func TestTPUOrphans(t *testing.T) {
	srv := fake.Use(t, "gcp")
	cfg := config(t, srv, nil)
	comp := newCompute(t, cfg)
	tpuPD, err := comp.CreateInstance(backendtest.Ctx(t), offer(t, cfg, "v4-8", 1, false), backendtest.InstanceConfig("orphan-tpu", "srv1"))
	if err != nil {
		t.Fatal(err)
	}
	if *tpuPD.AvailabilityZone != "us-central1-b" {
		t.Errorf("v4-8 in %s", *tpuPD.AvailabilityZone)
	}
	vmPD, err := comp.CreateInstance(backendtest.Ctx(t), offer(t, cfg, "e2-standard-4", 0, false), backendtest.InstanceConfig("orphan-vm", "srv1"))
	if err != nil {
		t.Fatal(err)
	}
	lister := comp.(backends.InstanceLister)
	tagged, err := lister.ListInstances(backendtest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range tagged {
		ids = append(ids, m.InstanceID)
	}
	if !slices.Equal(ids, []string{tpuPD.InstanceID, vmPD.InstanceID}) {
		t.Errorf("ListInstances = %v, want the TPU node and the VM", ids)
	}
	for _, m := range tagged {
		if err := comp.TerminateInstance(backendtest.Ctx(t), m.InstanceID, m.Region, ""); err != nil {
			t.Errorf("TerminateInstance(%s, no backend data) = %v", m.InstanceID, err)
		}
	}
	if alive := srv.Alive(); len(alive) != 0 {
		t.Errorf("alive after the orphans' termination: %+v", alive)
	}

	noTPU := config(t, srv, map[string]any{"project_id": "another-project-id"})
	other := newCompute(t, noTPU)
	if tagged, err := other.(backends.InstanceLister).ListInstances(backendtest.Ctx(t)); err != nil || len(tagged) != 0 {
		t.Errorf("ListInstances without the TPU API = %v, %v", tagged, err)
	}
	_, err = other.CreateInstance(backendtest.Ctx(t), offer(t, noTPU, "v5litepod-1", 1, false), backendtest.InstanceConfig("no-api", "srv1"))
	if err == nil || backends.IsNoCapacity(err) || !strings.Contains(err.Error(), "gcloud services enable tpu.googleapis.com") {
		t.Errorf("CreateInstance without the TPU API = %v", err)
	}
	backendtest.NoMisses(t, srv)
}
