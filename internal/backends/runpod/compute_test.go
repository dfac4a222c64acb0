package runpod_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/fake"
	"github.com/dstackgo/dstack/internal/backends/runpod"
	"github.com/dstackgo/dstack/internal/offers"
)

func gpuOffer(name, region string, n int, price float64, spot bool) offers.Offer {
	gpus := make([]offers.GPU, n)
	for i := range gpus {
		gpus[i] = offers.GPU{Name: "A100", MemoryMiB: 80 * 1024, Vendor: "nvidia"}
	}
	return offers.Offer{Backend: "runpod", Region: region, Price: price, InstanceRuntime: offers.RuntimeRunner,
		Instance: offers.InstanceType{Name: name, Resources: offers.Resources{CPUs: 16, MemoryMiB: 62 * 1024, GPUs: gpus,
			Spot: spot, Disk: offers.Disk{SizeMiB: 100 * 1024}}}}
}

// TestSpotBidPerGPU: a spot pod bids the offer's price divided by its GPUs (issue #1890), in the
// offer's cloud and place, running dstack-runner from the job's image.
func TestSpotBidPerGPU(t *testing.T) {
	srv := fake.Use(t, "runpod")
	d, _ := backends.Lookup("runpod")
	comp, err := d.NewCompute(srv.Good)
	if err != nil {
		t.Fatal(err)
	}
	cfg := backends.InstanceConfig{ProjectName: "main", InstanceName: "spot-0", SSHPublicKeys: []string{"ssh-ed25519 AAAA a", "ssh-ed25519 BBBB b"},
		ShimEnv: map[string]string{runpod.EnvJobImage: "python:3.12", "DSTACK_RUNNER_DOWNLOAD_URL": "http://srv/runner"}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	pd, err := comp.CreateInstance(ctx, gpuOffer("2x_A100-SXM_COMMUNITY", "CA", 2, 1.9, true), cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := srv.Machine(pd.InstanceID)
	if bid := m.Extra["bid_per_gpu"]; bid != 0.95 {
		t.Errorf("bidPerGpu = %v, want 0.95 (1.9 for 2 GPUs)", bid)
	}
	if m.Type != "NVIDIA A100-SXM4-80GB" || m.GPUs != 2 || m.Region != "CA" || m.Extra["cloud_type"] != "COMMUNITY" {
		t.Errorf("pod %s x%d in %s (%v), want A100 SXM x2 in community CA", m.Type, m.GPUs, m.Region, m.Extra["cloud_type"])
	}
	if m.Image != "python:3.12" || m.Name != "dstack-main-spot-0" {
		t.Errorf("image %q name %q", m.Image, m.Name)
	}
	if m.Env["DSTACK_PUBLIC_SSH_KEY"] != "ssh-ed25519 AAAA a\nssh-ed25519 BBBB b" || m.Env[runpod.EnvJobImage] != "" {
		t.Errorf("env = %v", m.Env)
	}
	var args struct {
		Cmd        []string `json:"cmd"`
		Entrypoint []string `json:"entrypoint"`
	}
	if err := json.Unmarshal([]byte(m.Command), &args); err != nil || len(args.Cmd) != 1 ||
		!strings.Contains(args.Cmd[0], "http://srv/runner") || !strings.Contains(args.Cmd[0], "--ssh-port 10022") {
		t.Errorf("dockerArgs = %s", m.Command)
	}
	if pd.Dockerized || pd.Username != "root" {
		t.Errorf("pd = %+v, want a runner container with root", pd)
	}

	pd2, err := comp.CreateInstance(ctx, gpuOffer("1x_A100-PCIe_SECURE", "CA-MTL-3", 1, 1.64, false), cfg)
	if err != nil {
		t.Fatal(err)
	}
	m2, _ := srv.Machine(pd2.InstanceID)
	if m2.Spot || m2.Type != "NVIDIA A100 80GB PCIe" || m2.Region != "CA-MTL-3" || m2.Extra["cloud_type"] != "SECURE" {
		t.Errorf("on-demand pod = %+v", m2)
	}
	for _, id := range []string{pd.InstanceID, pd2.InstanceID} {
		if err := comp.TerminateInstance(ctx, id, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	if len(srv.Alive()) != 0 || len(srv.Misses()) != 0 {
		t.Errorf("alive %v, misses %v", srv.Alive(), srv.Misses())
	}
}

// TestListInstances: the lister finds the pods dstack named (dstack-...) that are not terminated.
func TestListInstances(t *testing.T) {
	srv := fake.Use(t, "runpod")
	d, _ := backends.Lookup("runpod")
	comp, err := d.NewCompute(srv.Good)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var ids []string
	for _, name := range []string{"run-0-5e7a", "run-1-5e7a"} {
		cfg := backends.InstanceConfig{ProjectName: "main", InstanceName: name, SSHPublicKeys: []string{"ssh-ed25519 AAAA a"}}
		pd, err := comp.CreateInstance(ctx, gpuOffer("1x_A100-PCIe_SECURE", "CA-MTL-3", 1, 1.64, false), cfg)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, pd.InstanceID)
	}
	if err := comp.TerminateInstance(ctx, ids[0], "", ""); err != nil {
		t.Fatal(err)
	}
	list, err := comp.(backends.InstanceLister).ListInstances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].InstanceID != ids[1] || list[0].Name != "dstack-main-run-1-5e7a" || list[0].Backend != "runpod" {
		t.Fatalf("listed %+v, want only %s", list, ids[1])
	}
	if m := srv.Misses(); len(m) > 0 {
		t.Errorf("misses: %v", m)
	}
}
