package server

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/backends/fake"
	"github.com/dstackgo/dstack/internal/catalog"
)

// nebiusCatalog is a gpuhunt catalog of Nebius offers named "<platform> <preset>", as the backend
// creates them: an 8xL40S machine (cannot join an InfiniBand cluster), 8xH100 in eu-north1, 8xH200
// in eu-west1, and a 1xH100 one.
const nebiusCatalog = `instance_name,location,price,cpu,memory,gpu_count,gpu_name,gpu_memory,spot,disk_size,gpu_vendor,flags,cpu_arch
gpu-h100-sxm 1gpu-16vcpu-200gb,eu-north1,2.95,16,200,1,H100,80,False,,nvidia,,x86
gpu-l40s-a 8gpu-128vcpu-768gb,eu-north1,12,128,768,8,L40S,48,False,,nvidia,,x86
gpu-h100-sxm 8gpu-128vcpu-1600gb,eu-north1,23.6,128,1600,8,H100,80,False,,nvidia,,x86
gpu-h200-sxm 8gpu-128vcpu-1600gb,eu-west1,28,128,1600,8,H200,141,False,,nvidia,,x86
`

// TestFleetNodesClusterOnNebius applies a cloud fleet with nodes: 2 and placement: cluster on the
// Nebius simulation: the plan leaves out the machines that cannot join a cluster; the first
// instance's cheapest offer has no capacity, so the cluster is made where the next offer is, and
// both machines are created in it. Deleting the fleet terminates the machines, then the cluster:
// nothing is left alive in the simulation.
func TestFleetNodesClusterOnNebius(t *testing.T) {
	neb := fake.UseNebius(t)
	neb.NebiusHoldBoot(true) // the machines never get the fake's addresses: no SSH to them
	neb.NebiusNoCapacity("gpu-h100-sxm")
	e := newEnv(t)
	table, err := catalog.Parse("nebius", strings.NewReader(nebiusCatalog))
	if err != nil {
		t.Fatal(err)
	}
	e.srv.SetCatalog(catalog.NewSnapshot(table))
	e.srv.ConfigureWork(WorkOptions{Dir: t.TempDir(), Poll: 50 * time.Millisecond, LeaseTTL: 10 * time.Second, OrphanInterval: -1})
	ctx, cancel := context.WithCancel(context.Background())
	wait := e.srv.StartWork(ctx)
	t.Cleanup(func() { cancel(); wait() })
	yml, err := backendYAML(neb.Good)
	if err != nil {
		t.Fatal(err)
	}
	e.must("admin", "/api/project/main/backends/create_yaml", map[string]any{"config_yaml": yml})

	spec := map[string]any{"configuration": map[string]any{"type": "fleet", "name": "train", "nodes": 2, "placement": "cluster",
		"resources": map[string]any{"gpu": "8"}}, "profile": map[string]any{"name": "default"}}
	plan := e.must("admin", "/api/project/main/fleets/get_plan", map[string]any{"spec": spec}).(map[string]any)
	var offered []string
	for _, o := range plan["offers"].([]any) {
		o := o.(map[string]any)
		offered = append(offered, fmt.Sprint(o["instance"].(map[string]any)["name"], " ", o["region"]))
	}
	if want := []string{"gpu-h100-sxm 8gpu-128vcpu-1600gb eu-north1", "gpu-h200-sxm 8gpu-128vcpu-1600gb eu-west1"}; fmt.Sprint(offered) != fmt.Sprint(want) ||
		plan["total_offers"] != float64(2) || !strings.Contains(fmt.Sprint(plan["notes"]), "only 8-GPU H100, H200, B200 machines") {
		t.Fatalf("plan offers %q (total %v), notes %v; want %q and a note on the L40S machine", offered, plan["total_offers"], plan["notes"], want)
	}

	f := e.must("admin", "/api/project/main/fleets/apply", applyBody(spec, nil)).(map[string]any)
	if insts := f["instances"].([]any); len(insts) != 2 || insts[0].(map[string]any)["status"] != "pending" {
		t.Fatalf("instances after apply: %v", insts)
	}
	ew := &e2e{env: e}
	ew.waitFor(time.Minute, "two machines in one cluster", func() (bool, string) {
		f := e.must("admin", "/api/project/main/fleets/get", map[string]any{"name": "train"}).(map[string]any)
		var st []string
		created := 0
		for _, i := range f["instances"].([]any) {
			i := i.(map[string]any)
			st = append(st, fmt.Sprintf("%v %v %v %v (%v)", i["name"], i["status"], i["backend"], i["region"], i["status_message"]))
			if i["status"] == "provisioning" && i["backend"] == "nebius" && i["region"] == "eu-west1" {
				created++
			}
		}
		return created == 2, strings.Join(st, "; ")
	})
	clusters, machines := neb.GpuClusters(), neb.Instances()
	var ids []string
	for _, m := range machines {
		ids = append(ids, m.ID)
	}
	sort.Strings(ids)
	if len(clusters) != 1 || clusters[0].Fabric != "fabric-5" || fmt.Sprint(clusters[0].Instances) != fmt.Sprint(ids) || len(ids) != 2 {
		t.Fatalf("clusters %+v; machines %v", clusters, ids)
	}

	e.must("admin", "/api/project/main/fleets/delete", map[string]any{"names": []string{"train"}})
	ew.waitFor(time.Minute, "the fleet, its machines and its cluster gone", func() (bool, string) {
		fleets := e.must("admin", "/api/project/main/fleets/list", map[string]any{}).([]any)
		c, m, d := neb.GpuClusters(), neb.Instances(), neb.Disks()
		return len(fleets) == 0 && len(c) == 0 && len(m) == 0 && len(d) == 0,
			fmt.Sprintf("%d fleets, %d clusters, %d machines, %d disks alive", len(fleets), len(c), len(m), len(d))
	})
	for _, i := range e.must("admin", "/api/instances/list", map[string]any{"project_names": []string{"main"}}).([]any) {
		if i := i.(map[string]any); i["status"] != "terminated" {
			t.Errorf("instance %v is %v", i["name"], i["status"])
		}
	}
	for _, m := range neb.Misses() {
		t.Errorf("the fake did not take a call as Nebius's: %s", m)
	}
}

// TestFleetNodesRules: the cloud fleet settings that are refused, and an in-place change of nodes.
func TestFleetNodesRules(t *testing.T) {
	e := newEnv(t)
	cloud := func(conf map[string]any) map[string]any {
		c := map[string]any{"type": "fleet", "name": "c"}
		for k, v := range conf {
			c[k] = v
		}
		return map[string]any{"configuration": c, "profile": map[string]any{"name": "default"}}
	}
	for name, tc := range map[string]struct {
		conf map[string]any
		want string
	}{
		"min above max":   {map[string]any{"nodes": "3..2"}, "nodes"},
		"bad placement":   {map[string]any{"nodes": 1, "placement": "spread"}, "placement must be any or cluster"},
		"bad spot policy": {map[string]any{"nodes": 1, "spot_policy": "sometimes"}, "spot_policy"},
	} {
		code, out := e.call("admin", "/api/project/main/fleets/apply", applyBody(cloud(tc.conf), nil))
		if code == 200 || !strings.Contains(fmt.Sprint(out), tc.want) {
			t.Errorf("%s: %d %v", name, code, out)
		}
	}
	f := e.must("admin", "/api/project/main/fleets/apply", applyBody(cloud(map[string]any{"nodes": "1..3"}), nil)).(map[string]any)
	if n := len(f["instances"].([]any)); n != 1 {
		t.Fatalf("%d instances, want nodes.min 1", n)
	}
	cur := e.must("admin", "/api/project/main/fleets/get", map[string]any{"name": "c"})
	if code, out := e.call("admin", "/api/project/main/fleets/apply", applyBody(cloud(map[string]any{"nodes": "1..3", "regions": []string{"x"}}), cur)); code == 200 ||
		!strings.Contains(fmt.Sprint(out), "only nodes may change") {
		t.Errorf("changing regions in place: %d %v", code, out)
	}
	f = e.must("admin", "/api/project/main/fleets/apply", applyBody(cloud(map[string]any{"nodes": 2}), cur)).(map[string]any)
	if nodes := f["spec"].(map[string]any)["configuration"].(map[string]any)["nodes"]; fmt.Sprint(nodes) != "2" {
		t.Errorf("nodes after the update: %v", nodes)
	}
}

// TestE2EFleetNodesRunJobs applies a cloud fleet with nodes: 1 on the Lambda simulation, each
// machine a test host: its instance goes pending → provisioning → idle, a task naming the fleet
// runs on it (no other machine is made), a machine that is gone is replaced, and deleting the fleet
// leaves nothing alive at the provider.
func TestE2EFleetNodesRunJobs(t *testing.T) {
	e, sim, hosts := newCloudE2E(t, "lambda", true)
	spec := map[string]any{"configuration": map[string]any{"type": "fleet", "name": "pool", "nodes": 1,
		"resources": map[string]any{"cpu": "2..", "memory": "1GB..", "disk": "1GB.."}}, "profile": map[string]any{"name": "default"}}
	e.must("admin", "/api/project/main/fleets/apply", applyBody(spec, nil))
	var seen []string
	idle := func(what string) map[string]any {
		var inst map[string]any
		e.waitFor(3*time.Minute, what, func() (bool, string) {
			f := e.must("admin", "/api/project/main/fleets/get", map[string]any{"name": "pool"}).(map[string]any)
			inst = nil
			for _, i := range f["instances"].([]any) {
				if i := i.(map[string]any); i["status"] != "terminated" {
					inst = i
				}
			}
			if inst == nil {
				return false, "no active instance"
			}
			if s := fmt.Sprint(inst["status"]); len(seen) == 0 || seen[len(seen)-1] != s {
				seen = append(seen, s)
			}
			return inst["status"] == "idle", fmt.Sprintf("%v %v (%v)", inst["name"], inst["status"], inst["status_message"])
		})
		return inst
	}
	inst := idle("the fleet's instance idle")
	if fmt.Sprint(seen) != "[pending provisioning idle]" && fmt.Sprint(seen) != "[provisioning idle]" {
		t.Errorf("instance statuses seen: %v", seen)
	}
	machines := sim.Machines()
	if len(machines) != 1 || inst["backend"] != "lambda" || inst["name"] != "pool-0" {
		t.Fatalf("instance %v; machines %+v", inst, machines)
	}

	e.submit("on-pool", map[string]any{"commands": []string{"echo on the pool"}, "fleets": []string{"pool"},
		"resources": map[string]any{"cpu": "1..", "memory": "0.1GB..", "disk": "0.1GB.."}})
	run := e.waitRun("on-pool", 2*time.Minute, "done", "failed", "terminated")
	if out, _ := e.logs(run); run["status"] != "done" || out != "on the pool\n" || jobPD(run)["instance_id"] != machines[0].ID {
		t.Fatalf("run %v on %v: %q", run["status"], jobPD(run)["instance_id"], out)
	}
	if n := len(sim.Machines()); n != 1 {
		t.Fatalf("%d machines made, want the fleet's one", n)
	}

	// A machine that is gone is replaced: nodes.min stays.
	e.must("admin", "/api/project/main/fleets/delete_instances", map[string]any{"name": "pool", "instance_nums": []int{0}})
	seen = nil
	if inst := idle("a replacement idle"); inst["name"] != "pool-1" {
		t.Fatalf("replacement %v", inst["name"])
	}
	if n := len(sim.Alive()); n != 1 {
		t.Fatalf("%d machines alive, want the replacement", n)
	}

	e.must("admin", "/api/project/main/fleets/delete", map[string]any{"names": []string{"pool"}})
	e.waitTornDown(sim, hosts, time.Minute)
	if m := sim.Misses(); len(m) > 0 {
		t.Errorf("requests Lambda would refuse: %v", m)
	}
}
