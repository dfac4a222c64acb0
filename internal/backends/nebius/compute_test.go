package nebius_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/fake"
	"github.com/dstackgo/dstack/internal/backends/nebius"
	"github.com/dstackgo/dstack/internal/offers"
)

func h100Offer() offers.Offer {
	return offers.Offer{Backend: "nebius", Region: "eu-north1", Price: 2.95,
		Instance: offers.InstanceType{Name: "gpu-h100-sxm 1gpu-16vcpu-200gb", Resources: offers.Resources{
			CPUs: 16, MemoryMiB: 200 * 1024, GPUs: []offers.GPU{{Name: "H100"}}, Disk: offers.Disk{SizeMiB: 200 * 1024}}}}
}

func instanceConfig(name string) backends.InstanceConfig {
	return backends.InstanceConfig{ProjectName: "main", InstanceName: name,
		SSHPublicKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFake project"},
		ShimURL:       "http://127.0.0.1:3000/api/agents/dstack-shim-linux-amd64",
		ShimEnv:       map[string]string{"DSTACK_SERVER_URL": "http://127.0.0.1:3000"},
		Tags:          map[string]string{"dstack_project": "main", "dstack_server": "test", "dstack_instance": name}}
}

func newCompute(t *testing.T, cfg backends.Config) backends.Compute {
	t.Helper()
	c, err := nebius.NewCompute(cfg)
	if err != nil {
		t.Fatalf("NewCompute = %v", err)
	}
	return c
}

func TestComputeLifecycle(t *testing.T) {
	srv := fake.UseNebius(t)
	c := newCompute(t, srv.Good)
	pd, err := c.CreateInstance(ctx(t), h100Offer(), instanceConfig("fleet-0-abc123"))
	if err != nil {
		t.Fatalf("CreateInstance = %v", err)
	}
	if pd.InstanceID == "" || pd.Username != "ubuntu" || !pd.Dockerized || pd.Region != "eu-north1" || pd.Backend != "nebius" {
		t.Errorf("provisioning data %+v", pd)
	}
	var bd nebius.BackendData
	if err := json.Unmarshal([]byte(pd.BackendData), &bd); err != nil || bd.ProjectID != "project-e00fakeeunorth1default" || bd.BootDiskID == "" {
		t.Errorf("backend_data %q (%v)", pd.BackendData, err)
	}
	insts, disks := srv.Instances(), srv.Disks()
	if len(insts) != 1 || len(disks) != 1 {
		t.Fatalf("instances %d, disks %d, want 1 and 1", len(insts), len(disks))
	}
	in := insts[0]
	if in.ID != pd.InstanceID || in.Platform != "gpu-h100-sxm" || in.Preset != "1gpu-16vcpu-200gb" ||
		in.BootDiskID != bd.BootDiskID || in.ProjectID != bd.ProjectID || !strings.HasPrefix(in.Name, "dstack-main-") {
		t.Errorf("instance %+v", in)
	}
	if in.Labels["dstack_project"] != "main" || in.Labels["dstack_instance"] != "fleet-0-abc123" || in.Labels["dstack_server"] != "test" {
		t.Errorf("instance labels %v", in.Labels)
	}
	if !strings.Contains(in.UserData, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFake") || !strings.Contains(in.UserData, "dstack-shim") {
		t.Errorf("cloud-init user data %q", in.UserData)
	}
	if d := disks[0]; d.SizeGiB != 200 || d.ImageFamily != "ubuntu22.04-cuda12" || !strings.HasPrefix(d.Name, "dstack-main-") || d.Labels["dstack_project"] != "main" {
		t.Errorf("disk %+v", d)
	}

	for i := 0; i < 5 && pd.Hostname == nil; i++ {
		if err := c.UpdateProvisioningData(ctx(t), pd); err != nil {
			t.Fatalf("UpdateProvisioningData = %v", err)
		}
	}
	if pd.Hostname == nil || !strings.HasPrefix(*pd.Hostname, "203.0.113.") || pd.InternalIP == nil || !strings.HasPrefix(*pd.InternalIP, "10.0.0.") ||
		pd.SSHPort == nil || *pd.SSHPort != 22 {
		t.Fatalf("after polling: hostname %v, internal ip %v, port %v", pd.Hostname, pd.InternalIP, pd.SSHPort)
	}

	for i := 0; i < 2; i++ {
		if err := c.TerminateInstance(ctx(t), pd.InstanceID, pd.Region, pd.BackendData); err != nil {
			t.Fatalf("TerminateInstance #%d = %v", i+1, err)
		}
	}
	if n, d := len(srv.Instances()), len(srv.Disks()); n != 0 || d != 0 {
		t.Errorf("after terminate: %d instances, %d disks alive", n, d)
	}
	var pe *backends.ProvisioningError
	if err := c.UpdateProvisioningData(ctx(t), pd); !errors.As(err, &pe) {
		t.Errorf("UpdateProvisioningData after terminate = %v, want *backends.ProvisioningError", err)
	}
	noMisses(t, srv)
}

func TestComputeCPUOfferUsesDriverlessImage(t *testing.T) {
	srv := fake.UseNebius(t)
	c := newCompute(t, srv.Good)
	o := offers.Offer{Backend: "nebius", Region: "eu-west1", Instance: offers.InstanceType{Name: "cpu-d3 4vcpu-16gb"}}
	pd, err := c.CreateInstance(ctx(t), o, instanceConfig("cpu-0-x"))
	if err != nil {
		t.Fatalf("CreateInstance = %v", err)
	}
	if d := srv.Disks(); len(d) != 1 || d[0].ImageFamily != "ubuntu22.04-driverless" || d[0].ProjectID != "project-e01fakeeuwest1only0000" || d[0].SizeGiB != 100 {
		t.Errorf("disks %+v", d)
	}
	if err := c.TerminateInstance(ctx(t), pd.InstanceID, pd.Region, pd.BackendData); err != nil {
		t.Fatal(err)
	}
	noMisses(t, srv)
}

func TestComputeNoCapacity(t *testing.T) {
	srv := fake.UseNebius(t)
	srv.NebiusNoCapacity("gpu-h100-sxm")
	c := newCompute(t, srv.Good)
	_, err := c.CreateInstance(ctx(t), h100Offer(), instanceConfig("fleet-1-def"))
	if !backends.IsNoCapacity(err) {
		t.Fatalf("CreateInstance = %v (%T), want *backends.NoCapacityError", err, err)
	}
	if n, d := len(srv.Instances()), len(srv.Disks()); n != 0 || d != 0 {
		t.Errorf("after a capacity refusal: %d instances, %d disks alive (the boot disk must be deleted)", n, d)
	}
	noMisses(t, srv)
}

func TestComputeAuthFailure(t *testing.T) {
	srv := fake.UseNebius(t)
	c := newCompute(t, srv.Bad)
	_, err := c.CreateInstance(ctx(t), h100Offer(), instanceConfig("fleet-2-ghi"))
	credErr(t, err, "creds")
	for _, s := range srv.Secrets {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q contains a secret", err)
		}
	}
	credErr(t, c.TerminateInstance(ctx(t), "computeinstance-e00nothing", "eu-north1", ""), "creds")
	if n := len(srv.Instances()); n != 0 {
		t.Errorf("%d instances alive", n)
	}
	noMisses(t, srv)
}

func TestComputeBadInstanceName(t *testing.T) {
	if _, _, err := nebius.PlatformPreset("gpu-h100-sxm"); err == nil {
		t.Error("PlatformPreset without a preset: no error")
	}
	// Both the "<platform> <preset>" form and gpuhunt's catalog form.
	for _, name := range []string{"gpu-h100-sxm 8gpu-128vcpu-1600gb", "gpu-h100-sxm_8gpu-128vcpu-1600gb"} {
		if p, pr, err := nebius.PlatformPreset(name); err != nil || p != "gpu-h100-sxm" || pr != "8gpu-128vcpu-1600gb" {
			t.Errorf("PlatformPreset(%q) = %q, %q, %v", name, p, pr, err)
		}
	}
	if l := nebius.Labels(map[string]string{"Dstack Project": "My.Project"}); l["dstack-project"] != "my-project" {
		t.Errorf("Labels = %v", l)
	}
}
