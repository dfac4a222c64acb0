package runs

import (
	"slices"
	"testing"

	"github.com/dstackgo/dstack/internal/agentapi"
	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/offers"
)

func TestParseMounts(t *testing.T) {
	mps, inst, err := parseMounts([]any{"data:/data", "/mnt/cache:/cache",
		map[string]any{"name": []any{"a", "b"}, "path": "/ab"},
		map[string]any{"instance_path": "/opt/x", "path": "/x", "optional": true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(mps) != 2 || !slices.Equal(mps[0].names, []string{"data"}) || mps[0].path != "/data" ||
		!slices.Equal(mps[1].names, []string{"a", "b"}) || mps[1].path != "/ab" {
		t.Errorf("mount points %+v", mps)
	}
	want := []agentapi.InstanceMountPoint{{InstancePath: "/mnt/cache", Path: "/cache"}, {InstancePath: "/opt/x", Path: "/x", Optional: true}}
	if !slices.Equal(inst, want) {
		t.Errorf("instance mounts %+v", inst)
	}
	for _, bad := range []any{"data", "data:relative", map[string]any{"path": "/x"}, map[string]any{"name": "a", "path": "x"}, 42} {
		if _, _, err := parseMounts([]any{bad}); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

func vol(name, backend, region, zone string) *models.Volume {
	pd := &backends.VolumeProvisioningData{Backend: backend, Region: region, VolumeID: "id-" + name}
	if zone != "" {
		pd.AvailabilityZone = &zone
	}
	return &models.Volume{Name: name, Configuration: models.VolumeConfiguration{Backend: backend, Region: region}, PD: pd,
		Status: models.VolumeActive}
}

// TestVolumePlacement: a job goes where every one of its mount points has a volume, in the zone of
// the zonal ones; an offer is narrowed to that zone.
func TestVolumePlacement(t *testing.T) {
	jv := &jobVolumes{points: []mountPoint{{names: []string{"a1", "a2"}, path: "/a"}, {names: []string{"b"}, path: "/b"}},
		candidates: [][]*models.Volume{
			{vol("a1", "aws", "us-east-1", "us-east-1a"), vol("a2", "aws", "eu-west-1", "eu-west-1b")},
			{vol("b", "aws", "eu-west-1", "eu-west-1b")},
		}}
	if got, ok := jv.pick("aws", "eu-west-1", ""); !ok || got[0].Name != "a2" || got[1].Name != "b" {
		t.Errorf("pick eu-west-1: %v %v", got, ok)
	}
	if _, ok := jv.pick("aws", "us-east-1", ""); ok {
		t.Error("picked us-east-1, where b is not")
	}
	o := offers.Offer{Backend: "aws", Region: "eu-west-1", AvailabilityZones: []string{"eu-west-1a", "eu-west-1b"}}
	fitted, vols, ok := jv.fitOffer(o)
	if !ok || !slices.Equal(fitted.AvailabilityZones, []string{"eu-west-1b"}) || len(vols) != 2 {
		t.Errorf("fitOffer: %+v %v %v", fitted, vols, ok)
	}
	o.AvailabilityZones = []string{"eu-west-1a"}
	if _, _, ok := jv.fitOffer(o); ok {
		t.Error("an offer outside the volumes' zone fits")
	}
	inst := &models.Instance{Backend: "aws", Region: "eu-west-1", JPD: &models.JobProvisioningData{AvailabilityZone: ptr("eu-west-1c")}}
	if jv.fitsInstance(inst) {
		t.Error("an instance in another zone fits")
	}
	inst.JPD.AvailabilityZone = ptr("eu-west-1b")
	if !jv.fitsInstance(inst) {
		t.Error("an instance in the volumes' zone does not fit")
	}
	q := offers.Query{Regions: []string{"us-east-1", "eu-west-1"}}
	jv.restrict(&q)
	if !slices.Equal(q.Backends, []string{"aws"}) || !slices.Equal(q.Regions, []string{"us-east-1", "eu-west-1"}) {
		t.Errorf("restricted query %+v", q)
	}
	// RunPod's volumes are not zonal: a pod mounts one wherever its data center is.
	rp := &jobVolumes{points: []mountPoint{{names: []string{"r"}, path: "/r"}},
		candidates: [][]*models.Volume{{vol("r", "runpod", "EU-RO-1", "")}}}
	if _, vols, ok := rp.fitOffer(offers.Offer{Backend: "runpod", Region: "EU-RO-1"}); !ok || len(mountedVolumes(rp, vols)) != 1 {
		t.Errorf("runpod offer: %v %v", vols, ok)
	}
}

func ptr(s string) *string { return &s }
