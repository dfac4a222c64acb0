package runpod_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/fake"
)

func volumeCompute(t *testing.T) (*fake.Server, backends.Compute, backends.VolumeCompute) {
	t.Helper()
	srv := fake.Use(t, "runpod")
	d, _ := backends.Lookup("runpod")
	comp, err := d.NewCompute(srv.Good)
	if err != nil {
		t.Fatal(err)
	}
	vc, ok := comp.(backends.VolumeCompute)
	if !ok {
		t.Fatal("the runpod compute is not a VolumeCompute")
	}
	if _, ok := comp.(backends.VolumeAttacher); ok {
		t.Error("the runpod compute is a VolumeAttacher; RunPod mounts volumes at pod creation")
	}
	return srv, comp, vc
}

func ctx10(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestVolumeLifecycle: create in the configured data center, register by id, delete twice.
func TestVolumeLifecycle(t *testing.T) {
	srv, _, vc := volumeCompute(t)
	ctx := ctx10(t)

	vol, err := vc.CreateVolume(ctx, backends.VolumeConfig{ProjectName: "main", Name: "data", Region: "CA-MTL-3", SizeGB: 100})
	if err != nil {
		t.Fatal(err)
	}
	obj, ok := srv.Objects("network-volumes")[vol.VolumeID].(map[string]any)
	if !ok {
		t.Fatalf("volume %s not created on RunPod; objects %v", vol.VolumeID, srv.Objects("network-volumes"))
	}
	if obj["name"] != "dstack-main-data" || obj["size"] != 100 || obj["dataCenterId"] != "CA-MTL-3" {
		t.Errorf("RunPod volume = %v, want dstack-main-data, 100 GB in CA-MTL-3", obj)
	}
	if vol.Backend != "runpod" || vol.Region != "CA-MTL-3" || vol.SizeGB != 100 || vol.Attachable || vol.Detachable ||
		math.Abs(vol.Price-7) > 1e-9 {
		t.Errorf("provisioning data = %+v, want runpod CA-MTL-3 100 GB at $7/month, not attachable", vol)
	}

	// From 1 TB the price per GB drops to $0.05.
	big, err := vc.CreateVolume(ctx, backends.VolumeConfig{ProjectName: "main", Name: "big", Region: "EU-RO-1", SizeGB: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(big.Price-50) > 1e-9 {
		t.Errorf("1000 GB price = %v, want 50", big.Price)
	}

	reg, err := vc.RegisterVolume(ctx, backends.VolumeConfig{ProjectName: "main", Name: "shared", VolumeID: vol.VolumeID})
	if err != nil {
		t.Fatal(err)
	}
	if reg.VolumeID != vol.VolumeID || reg.Region != "CA-MTL-3" || reg.SizeGB != 100 || math.Abs(reg.Price-7) > 1e-9 {
		t.Errorf("registered = %+v, want the volume as RunPod lists it", reg)
	}
	if _, err := vc.RegisterVolume(ctx, backends.VolumeConfig{Name: "shared", VolumeID: vol.VolumeID, Region: "EU-RO-1"}); err == nil ||
		!strings.Contains(err.Error(), "CA-MTL-3") {
		t.Errorf("register in the wrong region = %v, want an error naming CA-MTL-3", err)
	}
	if _, err := vc.RegisterVolume(ctx, backends.VolumeConfig{Name: "x", VolumeID: "nosuchvol1"}); err == nil ||
		!strings.Contains(err.Error(), "nosuchvol1") || !strings.Contains(err.Error(), "volume_id") {
		t.Errorf("register of an unknown volume = %v, want not found naming the id and volume_id", err)
	}

	for i := 0; i < 2; i++ {
		if err := vc.DeleteVolume(ctx, *vol); err != nil {
			t.Fatalf("delete #%d: %v", i+1, err)
		}
	}
	if _, still := srv.Objects("network-volumes")[vol.VolumeID]; still {
		t.Error("the volume is still on RunPod after DeleteVolume")
	}
	if _, ok := srv.Objects("network-volumes")[big.VolumeID]; !ok {
		t.Error("deleting one volume removed another")
	}
	if m := srv.Misses(); len(m) > 0 {
		t.Errorf("misses: %v", m)
	}
}

// TestVolumeConfigErrors: a region that is not a data center, or no size, fails before any call.
func TestVolumeConfigErrors(t *testing.T) {
	srv, _, vc := volumeCompute(t)
	ctx := ctx10(t)
	for _, c := range []struct {
		cfg  backends.VolumeConfig
		want string
	}{
		{backends.VolumeConfig{Name: "v", Region: "CA", SizeGB: 10}, "region"},
		{backends.VolumeConfig{Name: "v", Region: "", SizeGB: 10}, "region"},
		{backends.VolumeConfig{Name: "v", Region: "CA-MTL-3"}, "size"},
	} {
		if _, err := vc.CreateVolume(ctx, c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CreateVolume(%+v) = %v, want an error about %s", c.cfg, err, c.want)
		}
	}
	if hits := srv.Hits(); hits != 0 {
		t.Errorf("%d calls to RunPod for invalid configurations", hits)
	}
}

// TestPodWithVolume: a pod mounts its network volume in the volume's data center only; a volume in
// use cannot be deleted until the pod is gone.
func TestPodWithVolume(t *testing.T) {
	srv, comp, vc := volumeCompute(t)
	ctx := ctx10(t)
	vol, err := vc.CreateVolume(ctx, backends.VolumeConfig{ProjectName: "main", Name: "data", Region: "CA-MTL-3", SizeGB: 50})
	if err != nil {
		t.Fatal(err)
	}
	cfg := backends.InstanceConfig{ProjectName: "main", InstanceName: "vol-0", SSHPublicKeys: []string{"ssh-ed25519 AAAA a"},
		Volumes: []backends.MountedVolume{{Volume: *vol, Path: "/workspace"}}}

	// Wrong data center: a Secure Cloud offer elsewhere, and a Community Cloud country. The backend
	// refuses them itself, before any call (RunPod's own refusal would come after a GPU lookup).
	hits := srv.Hits()
	for _, region := range []string{"EU-RO-1", "CA"} {
		_, err := comp.CreateInstance(ctx, gpuOffer("1x_A100-PCIe_SECURE", region, 1, 1.64, false), cfg)
		if err == nil || !strings.Contains(err.Error(), "CA-MTL-3") || !strings.Contains(err.Error(), region) {
			t.Errorf("pod in %s with a CA-MTL-3 volume = %v, want an error naming both", region, err)
		}
	}
	if n := len(srv.Machines()); n != 0 || srv.Hits() != hits {
		t.Fatalf("%d pods deployed in the wrong data center, %d calls to RunPod", n, srv.Hits()-hits)
	}

	pd, err := comp.CreateInstance(ctx, gpuOffer("1x_A100-PCIe_SECURE", "CA-MTL-3", 1, 1.64, false), cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := srv.Machine(pd.InstanceID)
	if m.Region != "CA-MTL-3" || m.Extra["network_volume_id"] != vol.VolumeID || m.Extra["volume_mount_path"] != "/workspace" {
		t.Errorf("pod in %s mounts %v at %v, want %s at /workspace in CA-MTL-3",
			m.Region, m.Extra["network_volume_id"], m.Extra["volume_mount_path"], vol.VolumeID)
	}

	// Two volumes, or a relative path: refused before any pod is deployed.
	two := cfg
	two.Volumes = append(append([]backends.MountedVolume{}, cfg.Volumes...), backends.MountedVolume{Volume: *vol, Path: "/data"})
	rel := cfg
	rel.Volumes = []backends.MountedVolume{{Volume: *vol, Path: "workspace"}}
	for name, c := range map[string]backends.InstanceConfig{"two volumes": two, "relative path": rel} {
		if _, err := comp.CreateInstance(ctx, gpuOffer("1x_A100-PCIe_SECURE", "CA-MTL-3", 1, 1.64, false), c); err == nil {
			t.Errorf("%s: CreateInstance succeeded", name)
		}
	}
	if n := len(srv.Machines()); n != 1 {
		t.Errorf("%d pods, want 1", n)
	}

	if err := vc.DeleteVolume(ctx, *vol); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("deleting a mounted volume = %v, want RunPod's in-use refusal", err)
	}
	if err := comp.TerminateInstance(ctx, pd.InstanceID, "", ""); err != nil {
		t.Fatal(err)
	}
	if err := vc.DeleteVolume(ctx, *vol); err != nil {
		t.Fatalf("delete after the pod is gone: %v", err)
	}
	if m := srv.Misses(); len(m) > 0 {
		t.Errorf("misses: %v", m)
	}
}

// TestFakeVolumeWire holds the fake to GraphQL's validation of the volume operations, so that the
// backend's tests above cannot pass with a malformed request.
func TestFakeVolumeWire(t *testing.T) {
	srv := fake.Start(t, "runpod")
	post := func(query string, vars map[string]any) (int, string) {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"?api_key="+srv.Good.String("creds", "api_key"), bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", backends.UserAgent)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var answer struct {
			Errors []struct {
				Message string `json:"message"`
			} `json:"errors"`
		}
		if json.Unmarshal(b, &answer) != nil || len(answer.Errors) == 0 {
			return resp.StatusCode, "no GraphQL errors: " + string(b)
		}
		return resp.StatusCode, answer.Errors[0].Message
	}
	create := `mutation C($input: CreateNetworkVolumeInput!) { createNetworkVolume(input: $input) { id } }`
	for _, c := range []struct {
		name, query string
		input       map[string]any
		want        string
	}{
		{"unknown field", create, map[string]any{"name": "v", "size": 10, "dataCenterId": "CA-MTL-3", "region": "x"}, `"region" is not defined`},
		{"wrong variable type", strings.Replace(create, "CreateNetworkVolumeInput!", "NetworkVolumeInput", 1),
			map[string]any{"name": "v", "size": 10, "dataCenterId": "CA-MTL-3"}, "expecting type"},
		{"country, not data center", create, map[string]any{"name": "v", "size": 10, "dataCenterId": "CA"}, "data center id"},
		{"selection on delete", `mutation D($input: DeleteNetworkVolumeInput!) { deleteNetworkVolume(input: $input) { id } }`,
			map[string]any{"id": "abc"}, "must not have a selection"},
	} {
		status, body := post(c.query, map[string]any{"input": c.input})
		if status != http.StatusBadRequest || !strings.Contains(body, c.want) {
			t.Errorf("%s: HTTP %d %s, want 400 with %q", c.name, status, body, c.want)
		}
	}
	if n := len(srv.Objects("network-volumes")); n != 0 {
		t.Errorf("%d volumes created by malformed requests", n)
	}
	if n := len(srv.Misses()); n != 4 {
		t.Errorf("misses = %v, want the 4 malformed requests", srv.Misses())
	}
}
