package fleets

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/fake"
	"github.com/dstackgo/dstack/internal/backends/nebius"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/offers"
	"github.com/dstackgo/dstack/internal/resources"
	"github.com/dstackgo/dstack/internal/store"
)

// nebiusOffer is an offer of the Nebius fake: gpus GPUs of a kind ("" and 0 for a CPU machine).
func nebiusOffer(platform, preset, region string, gpus int, gpu string, price float64) offers.Offer {
	o := offers.Offer{Backend: "nebius", Region: region, Price: price, Availability: offers.Available,
		Instance: offers.InstanceType{Name: platform + " " + preset, Resources: offers.Resources{
			CPUs: 16, MemoryMiB: 64 * 1024, CPUArch: "x86", Disk: offers.Disk{SizeMiB: 100 * 1024}}}}
	for i := 0; i < gpus; i++ {
		o.Instance.Resources.GPUs = append(o.Instance.Resources.GPUs, offers.GPU{Name: gpu, MemoryMiB: 80 * 1024, Vendor: "nvidia"})
	}
	return o
}

// nodesFixture is a fixture whose cloud fleets make their machines on the Nebius fake, from a fixed
// list of offers.
type nodesFixture struct {
	*fixture
	neb *fake.NebiusServer

	mu      sync.Mutex
	refused []string
	queries []offers.Query
}

func newNodesFixture(t *testing.T, list ...offers.Offer) *nodesFixture {
	t.Helper()
	f := &nodesFixture{fixture: newFixture(t, ""), neb: fake.UseNebius(t)}
	c, err := nebius.NewCompute(f.neb.Good)
	if err != nil {
		t.Fatal(err)
	}
	f.svc.Compute = func(_ context.Context, _, backend string) (backends.Compute, error) {
		if backend != "nebius" {
			return nil, ErrNoBackend
		}
		return c, nil
	}
	f.svc.Nodes = NodeOptions{ServerID: "5e7a11aa", Retry: 200 * time.Millisecond,
		Refused: func(o offers.Offer) {
			f.mu.Lock()
			f.refused = append(f.refused, o.Instance.Name)
			f.mu.Unlock()
		},
		// The offers of the fixed list that the query's backends and regions allow, cheapest first.
		Offers: func(_ context.Context, _ string, q offers.Query, limit int) ([]offers.Offer, string, error) {
			f.mu.Lock()
			f.queries = append(f.queries, q)
			f.mu.Unlock()
			var out []offers.Offer
			for _, o := range list {
				if (len(q.Backends) == 0 || slices.Contains(q.Backends, o.Backend)) && (len(q.Regions) == 0 || slices.Contains(q.Regions, o.Region)) {
					out = append(out, o)
				}
			}
			if limit > 0 && len(out) > limit {
				out = out[:limit]
			}
			return out, "", nil
		}}
	return f
}

// addNodes applies a cloud fleet with `nodes: min..max` (max 0: none) as the server does: the fleet
// and its nodes.min pending instances.
func (f *nodesFixture) addNodes(name string, min, max int, placement string) *models.Fleet {
	f.t.Helper()
	nodes := map[string]any{"min": float64(min), "max": nil}
	if max > 0 {
		nodes["max"] = float64(max)
	}
	cfg := models.FleetConfiguration{Type: "fleet", Name: &name, Nodes: nodes}
	if placement != "" {
		cfg.Placement = &placement
	}
	fl := &models.Fleet{ProjectID: f.project.ID, Name: name, Status: models.FleetActive, Spec: models.FleetSpec{Configuration: cfg}}
	var insts []*models.Instance
	for i := 0; i < min; i++ {
		insts = append(insts, NewNode(f.project.ID, "", name, i))
	}
	if err := f.st.CreateFleet(context.Background(), fl, insts); err != nil {
		f.t.Fatal(err)
	}
	return fl
}

// step processes instance id once, as its pipeline would; other instances that are due are left
// alone.
func (f *nodesFixture) step(id string) *models.Instance {
	f.t.Helper()
	ctx := context.Background()
	if err := f.st.WakeRow(ctx, store.TableInstances, id); err != nil {
		f.t.Fatal(err)
	}
	ls, err := f.st.AcquireLeases(ctx, store.TableInstances, 100, time.Minute)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, l := range ls {
		if l.ID == id {
			if _, err := f.svc.ProcessInstance(ctx, l); err != nil {
				f.t.Fatal(err)
			}
		}
		if err := f.st.ReleaseLease(ctx, l, nil); err != nil {
			f.t.Fatal(err)
		}
	}
	inst, err := f.st.GetInstance(ctx, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return inst
}

// stepFleet processes the fleet once, as its pipeline would.
func (f *nodesFixture) stepFleet(id string) (*models.Fleet, time.Duration) {
	f.t.Helper()
	ctx := context.Background()
	if err := f.st.WakeRow(ctx, store.TableFleets, id); err != nil {
		f.t.Fatal(err)
	}
	ls, err := f.st.AcquireLeases(ctx, store.TableFleets, 1, time.Minute)
	if err != nil || len(ls) != 1 {
		f.t.Fatalf("lease: %v %v", ls, err)
	}
	next, err := f.svc.ProcessFleet(ctx, ls[0])
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.st.ReleaseLease(ctx, ls[0], nil); err != nil {
		f.t.Fatal(err)
	}
	fl, err := f.st.GetFleetByID(ctx, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return fl, next
}

// active lists the fleet's instances that are not terminated or to be, by number.
func (f *nodesFixture) active(fleetID string) []*models.Instance {
	f.t.Helper()
	insts, err := f.st.ListInstances(context.Background(), store.InstanceFilter{FleetIDs: []string{fleetID}, OnlyActive: true})
	if err != nil {
		f.t.Fatal(err)
	}
	out := insts[:0]
	for _, i := range insts {
		if !i.TerminateRequested {
			out = append(out, i)
		}
	}
	slices.SortFunc(out, func(a, b *models.Instance) int { return a.InstanceNum - b.InstanceNum })
	return out
}

// ready makes a provisioning instance idle, as if its machine had come up.
func (f *nodesFixture) ready(id string) {
	f.t.Helper()
	ctx := context.Background()
	_ = f.st.WakeRow(ctx, store.TableInstances, id)
	ls, err := f.st.AcquireLeases(ctx, store.TableInstances, 100, time.Minute)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, l := range ls {
		if l.ID == id {
			inst, _ := f.st.GetInstance(ctx, id)
			if err := f.st.SetInstanceReady(ctx, l, inst.InstanceType, inst.JPD, 1); err != nil {
				f.t.Fatal(err)
			}
		}
		_ = f.st.ReleaseLease(ctx, l, nil)
	}
}

// TestNodesProvisionFailoverAndReplace: a fleet with nodes min 2 gets two machines through the
// offers' failover (the first offer has no capacity, which is remembered); an instance that is gone
// is replaced, and one above nodes.max is terminated.
func TestNodesProvisionFailoverAndReplace(t *testing.T) {
	f := newNodesFixture(t,
		nebiusOffer("gpu-h100-sxm", "1gpu-16vcpu-200gb", "eu-north1", 1, "H100", 2.95),
		nebiusOffer("cpu-d3", "4vcpu-16gb", "eu-north1", 0, "", 3.1))
	f.neb.NebiusNoCapacity("gpu-h100-sxm")
	fl := f.addNodes("workers", 2, 3, "")
	insts := f.active(fl.ID)
	if len(insts) != 2 || insts[0].Status != models.InstancePending || insts[1].Name != "workers-1" {
		t.Fatalf("instances after apply: %+v", insts)
	}
	for _, inst := range insts {
		got := f.step(inst.ID)
		if got.Status != models.InstanceProvisioning || got.Backend != "nebius" || got.Region != "eu-north1" ||
			got.InstanceType.Name != "cpu-d3 4vcpu-16gb" || got.JPD == nil || got.JPD.InstanceID == "" || got.Price != 3.1 {
			t.Fatalf("after one pass: %s %q %s %+v", got.Status, got.StatusMessage, got.Backend, got.JPD)
		}
	}
	machines := f.neb.Instances()
	if len(machines) != 2 || machines[0].Platform != "cpu-d3" || !strings.HasPrefix(machines[0].Name, "dstack-main-workers-") ||
		machines[0].Labels["dstack_server"] != "5e7a11aa" || machines[1].Labels["dstack_instance"] != "workers-1" {
		t.Fatalf("machines at the provider: %+v", machines)
	}
	if !slices.Equal(f.refused, []string{"gpu-h100-sxm 1gpu-16vcpu-200gb", "gpu-h100-sxm 1gpu-16vcpu-200gb"}) {
		t.Errorf("capacity refusals recorded: %v", f.refused)
	}
	// The next passes bring the machine up (the fake's machine answers on its second Get).
	if got := f.step(insts[0].ID); got.Status != models.InstanceProvisioning || got.StatusMessage != "waiting for the machine to boot" {
		t.Fatalf("second pass: %s %q", got.Status, got.StatusMessage)
	}
	f.ready(insts[0].ID)
	f.ready(insts[1].ID)

	// A terminated machine is replaced, with the next number.
	if err := f.st.RequestInstanceTermination(context.Background(), []string{insts[0].ID}); err != nil {
		t.Fatal(err)
	}
	if got := f.step(insts[0].ID); got.Status != models.InstanceTerminated {
		t.Fatalf("terminated instance: %s", got.Status)
	}
	if n := len(f.neb.Instances()); n != 1 {
		t.Fatalf("%d machines alive after the termination", n)
	}
	f.stepFleet(fl.ID)
	now := f.active(fl.ID)
	if len(now) != 2 || now[1].Name != "workers-2" || now[1].Status != models.InstancePending {
		t.Fatalf("after the fleet's pass: %+v", now)
	}
	if got := f.step(now[1].ID); got.Status != models.InstanceProvisioning {
		t.Fatalf("replacement: %s %q", got.Status, got.StatusMessage)
	}
	if n := len(f.neb.Instances()); n != 2 {
		t.Fatalf("%d machines alive, want 2", n)
	}

	// Above nodes.max (3), the newest idle instance goes; at nodes.min, idle ones stay past idle_duration.
	for _, num := range []int{3, 4} {
		if err := f.st.CreateInstance(context.Background(), NewNode(f.project.ID, fl.ID, fl.Name, num)); err != nil {
			t.Fatal(err)
		}
	}
	f.stepFleet(fl.ID)
	if now := f.active(fl.ID); len(now) != 3 || now[2].Name != "workers-3" {
		t.Fatalf("after trimming to max: %+v", now)
	}
	if keep, err := f.svc.keepsNode(context.Background(), now[0]); err != nil || keep {
		t.Errorf("at 3 instances (min 2) an idle one is kept: %v %v", keep, err)
	}
}

// TestNodesNoOffers: an instance for which every offer fails is terminated with no_offers; the
// fleet replaces it only after NodeOptions.Retry.
func TestNodesNoOffers(t *testing.T) {
	f := newNodesFixture(t, nebiusOffer("gpu-h100-sxm", "1gpu-16vcpu-200gb", "eu-north1", 1, "H100", 2.95))
	f.neb.NebiusNoCapacity("gpu-h100-sxm")
	fl := f.addNodes("scarce", 1, 0, "")
	inst := f.step(f.active(fl.ID)[0].ID)
	if inst.Status != models.InstanceTerminated || inst.TerminationReason != InstanceNoOffers ||
		!strings.Contains(inst.TerminationReasonMessage, "All offers failed: nebius eu-north1 gpu-h100-sxm") ||
		!strings.Contains(inst.TerminationReasonMessage, "not enough resources") {
		t.Fatalf("instance %s %s: %q", inst.Status, inst.TerminationReason, inst.TerminationReasonMessage)
	}
	if _, next := f.stepFleet(fl.ID); len(f.active(fl.ID)) != 0 || next <= 0 || next > 200*time.Millisecond {
		t.Fatalf("replaced at once: %d active, next pass in %v", len(f.active(fl.ID)), next)
	}
	time.Sleep(250 * time.Millisecond)
	f.stepFleet(fl.ID)
	if now := f.active(fl.ID); len(now) != 1 || now[0].Name != "scarce-1" {
		t.Fatalf("after the retry interval: %+v", now)
	}
}

// TestNodesCluster: a cluster fleet's first instance makes the GPU cluster for its offer (a cluster
// made for an offer that failed is deleted as the next offer is in another region), the second
// waits for it and joins it; offers that cannot join a cluster are left out. Deleting the fleet
// terminates the machines first, then deletes the cluster, then the fleet.
func TestNodesCluster(t *testing.T) {
	f := newNodesFixture(t,
		nebiusOffer("gpu-h100-sxm", "1gpu-16vcpu-200gb", "eu-north1", 1, "H100", 2.95), // cannot join a cluster
		nebiusOffer("gpu-h100-sxm", "8gpu-128vcpu-1600gb", "eu-north1", 8, "H100", 23.6),
		nebiusOffer("gpu-h200-sxm", "8gpu-128vcpu-1600gb", "eu-west1", 8, "H200", 28))
	f.neb.NebiusNoCapacity("gpu-h100-sxm")
	fl := f.addNodes("train", 2, 0, PlacementCluster)
	insts := f.active(fl.ID)
	ctx := context.Background()

	if got := f.step(insts[1].ID); got.Status != models.InstancePending || !strings.Contains(got.StatusMessage, "waiting for the fleet's first instance") {
		t.Fatalf("second instance before the cluster exists: %s %q", got.Status, got.StatusMessage)
	}
	first := f.step(insts[0].ID)
	if first.Status != models.InstanceProvisioning || first.Region != "eu-west1" || first.InstanceType.Name != "gpu-h200-sxm 8gpu-128vcpu-1600gb" {
		t.Fatalf("first instance: %s %q in %s", first.Status, first.StatusMessage, first.Region)
	}
	clusters := f.neb.GpuClusters()
	if len(clusters) != 1 || clusters[0].Fabric != "fabric-5" || !slices.Equal(clusters[0].Instances, []string{first.JPD.InstanceID}) {
		t.Fatalf("clusters at the provider: %+v", clusters)
	}
	groups, err := f.st.ListPlacementGroups(ctx, fl.ID)
	if err != nil {
		t.Fatal(err)
	}
	// The 8xH100 offer was tried (in an eu-north1 cluster) and refused; the 1xH100 one never was.
	if !slices.Equal(f.refused, []string{"gpu-h100-sxm 8gpu-128vcpu-1600gb"}) {
		t.Errorf("offers refused: %v", f.refused)
	}
	// The eu-north1 cluster was deleted when the eu-west1 offer needed its own.
	if len(groups) != 1 || groups[0].Data.ID != clusters[0].ID || groups[0].DeleteRequested {
		t.Fatalf("live placement groups: %+v", groups)
	}
	second := f.step(insts[1].ID)
	if second.Status != models.InstanceProvisioning || second.Region != "eu-west1" {
		t.Fatalf("second instance: %s %q in %s", second.Status, second.StatusMessage, second.Region)
	}
	f.mu.Lock()
	last := f.queries[len(f.queries)-1]
	f.mu.Unlock()
	if !slices.Equal(last.Backends, []string{"nebius"}) || !slices.Equal(last.Regions, []string{"eu-west1"}) {
		t.Errorf("the second instance's offers were not narrowed to the cluster: %+v", last)
	}
	if in := f.neb.GpuClusters()[0].Instances; len(in) != 2 {
		t.Fatalf("cluster instances %v, want both", in)
	}

	if err := f.st.RequestFleetDeletion(ctx, []string{fl.ID}); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.stepFleet(fl.ID); got.Status != models.FleetTerminating {
		t.Fatalf("fleet %s after the deletion request", got.Status)
	}
	for _, inst := range insts {
		if got := f.step(inst.ID); got.Status != models.InstanceTerminated {
			t.Fatalf("instance %s: %s %q", got.Name, got.Status, got.StatusMessage)
		}
	}
	if got, _ := f.stepFleet(fl.ID); !got.Deleted || got.Status != models.FleetTerminated {
		t.Fatalf("fleet %s (deleted %v): %q", got.Status, got.Deleted, got.StatusMessage)
	}
	if c, i, d := f.neb.GpuClusters(), f.neb.Instances(), f.neb.Disks(); len(c) != 0 || len(i) != 0 || len(d) != 0 {
		t.Fatalf("left at the provider: %d clusters, %d instances, %d disks", len(c), len(i), len(d))
	}
	if groups, _ := f.st.ListPlacementGroups(ctx, fl.ID); len(groups) != 0 {
		t.Fatalf("placement groups not deleted: %+v", groups)
	}
	for _, m := range f.neb.Misses() {
		t.Errorf("the fake did not take a call as Nebius's: %s", m)
	}
}

// TestNodesClusterDeletionWaitsForMachines: while a machine is still in the cluster (its
// termination fails), the fleet stays terminating and the cluster stays.
func TestNodesClusterDeletionWaitsForMachines(t *testing.T) {
	f := newNodesFixture(t, nebiusOffer("gpu-h200-sxm", "8gpu-128vcpu-1600gb", "eu-west1", 8, "H200", 28))
	fl := f.addNodes("held", 1, 0, PlacementCluster)
	inst := f.step(f.active(fl.ID)[0].ID)
	ctx := context.Background()
	// The machine stays in the cluster although its instance is recorded terminated.
	_ = f.st.WakeRow(ctx, store.TableInstances, inst.ID)
	ls, _ := f.st.AcquireLeases(ctx, store.TableInstances, 1, time.Minute)
	if len(ls) != 1 || ls[0].ID != inst.ID {
		t.Fatalf("leases %v", ls)
	}
	if _, err := f.st.StartInstanceTermination(ctx, ls[0], models.InstanceError, "lost"); err != nil {
		t.Fatal(err)
	}
	if err := f.st.FinishInstanceTermination(ctx, ls[0]); err != nil {
		t.Fatal(err)
	}
	_ = f.st.ReleaseLease(ctx, ls[0], nil)
	if err := f.st.RequestFleetDeletion(ctx, []string{fl.ID}); err != nil {
		t.Fatal(err)
	}
	got, next := f.stepFleet(fl.ID)
	if got.Deleted || got.Status != models.FleetTerminating || !strings.Contains(got.StatusMessage, "cannot delete the placement group") || next <= 0 {
		t.Fatalf("fleet %s (deleted %v, next %v): %q", got.Status, got.Deleted, next, got.StatusMessage)
	}
	if n := len(f.neb.GpuClusters()); n != 1 {
		t.Fatalf("%d clusters", n)
	}
	// Once the machine is gone, the cluster and the fleet go.
	c, _ := f.svc.Compute(ctx, "", "nebius")
	if err := c.TerminateInstance(ctx, inst.JPD.InstanceID, inst.Region, *inst.JPD.BackendData); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.stepFleet(fl.ID); !got.Deleted || len(f.neb.GpuClusters()) != 0 {
		t.Fatalf("fleet %s (deleted %v): %q; %d clusters", got.Status, got.Deleted, got.StatusMessage, len(f.neb.GpuClusters()))
	}
}

func TestParseNodes(t *testing.T) {
	two, four := 2, 4
	for _, tc := range []struct {
		in   any
		want Nodes
	}{
		{float64(2), Nodes{Min: 2, Max: &two}},
		{"2..4", Nodes{Min: 2, Max: &four}},
		{"2..", Nodes{Min: 2}},
		{"..4", Nodes{Max: &four}},
		{map[string]any{"min": float64(2), "target": float64(2), "max": nil}, Nodes{Min: 2}},
		{map[string]any{"min": float64(0), "max": float64(4)}, Nodes{Max: &four}},
	} {
		got, ok, err := ParseNodes(tc.in)
		if err != nil || !ok || got.Min != tc.want.Min || (got.Max == nil) != (tc.want.Max == nil) || got.Max != nil && *got.Max != *tc.want.Max {
			t.Errorf("ParseNodes(%v) = %+v %v %v, want %+v", tc.in, got, ok, err, tc.want)
		}
	}
	for _, bad := range []any{"4..2", float64(-1), "x", map[string]any{"target": float64(1)}, float64(0)} {
		if _, _, err := ParseNodes(bad); err == nil {
			t.Errorf("ParseNodes(%v): no error", bad)
		}
	}
	if _, ok, err := ParseNodes(nil); ok || err != nil {
		t.Errorf("ParseNodes(nil) = %v %v", ok, err)
	}
}

func TestNodeQuery(t *testing.T) {
	spot, auto := "spot", "auto"
	price := 3.5
	spec := models.FleetSpec{Configuration: models.FleetConfiguration{Regions: []string{"eu-west1"}, SpotPolicy: &spot},
		Profile: models.Profile{ProfileParams: models.ProfileParams{Backends: []string{"nebius"}, Regions: []string{"eu-north1"},
			MaxPrice: &price, SpotPolicy: &auto}}}
	q, err := NodeQuery(spec)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(q.Backends, []string{"nebius"}) || !slices.Equal(q.Regions, []string{"eu-west1"}) || q.MaxPrice == nil ||
		*q.MaxPrice != 3.5 || q.Spot == nil || !*q.Spot {
		t.Fatalf("query %+v", q)
	}
	def := resources.Default()
	if *q.Resources.CPU.Arch != "x86" || !q.Resources.Memory.Equal(def.Memory) || q.Resources.Disk == nil {
		t.Errorf("default resources %+v", q.Resources)
	}
	if q, _ := NodeQuery(models.FleetSpec{}); q.Spot == nil || *q.Spot {
		t.Errorf("default spot policy: %v, want on-demand", q.Spot)
	}
	bad := "sometimes"
	if _, err := NodeQuery(models.FleetSpec{Configuration: models.FleetConfiguration{SpotPolicy: &bad}}); err == nil {
		t.Error("a bad spot_policy: no error")
	}
}
