package aws_test

import (
	"testing"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/backendtest"
	"github.com/dstackgo/dstack/internal/backends/fake"
)

// TestVolumes drives the EBS lifecycle through the SDK against the simulation: create in the first
// zone, register by id, attach to an instance of the same zone (twice: the same device), refuse an
// instance of another zone, detach (twice), delete (twice).
func TestVolumes(t *testing.T) {
	srv := fake.Use(t, "aws")
	cfg := backendtest.Config(t, "aws", map[string]any{"tags": map[string]any{"team": "ml"}})
	comp, err := backendtest.Driver(t, "aws").NewCompute(cfg)
	if err != nil {
		t.Fatal(err)
	}
	vc, ok := comp.(backends.VolumeCompute)
	if !ok {
		t.Fatal("the aws compute has no volumes")
	}
	va := comp.(backends.VolumeAttacher)
	vol, err := vc.CreateVolume(backendtest.Ctx(t), backends.VolumeConfig{ProjectName: "main", Name: "data", Region: "us-east-1", SizeGB: 50,
		Tags: map[string]string{"dstack_project": "main"}})
	if err != nil {
		t.Fatal(err)
	}
	if vol.SizeGB != 50 || vol.AvailabilityZone == nil || *vol.AvailabilityZone != "us-east-1a" || vol.Price != 4 || !vol.Attachable {
		t.Errorf("volume %+v", vol)
	}
	reg, err := vc.RegisterVolume(backendtest.Ctx(t), backends.VolumeConfig{Region: "us-east-1", VolumeID: vol.VolumeID})
	if err != nil || reg.VolumeID != vol.VolumeID || reg.SizeGB != 50 {
		t.Fatalf("register: %+v, %v", reg, err)
	}
	if _, err := vc.RegisterVolume(backendtest.Ctx(t), backends.VolumeConfig{Region: "us-east-1", VolumeID: "vol-00000000000000000"}); err == nil {
		t.Error("registered a volume that does not exist")
	}

	offer := backendtest.OfferFor(t, "aws", cfg, "g4dn.xlarge", "us-east-1", false)
	offer.AvailabilityZones = []string{"us-east-1a"}
	pd, err := comp.CreateInstance(backendtest.Ctx(t), offer, backendtest.InstanceConfig("task-0-vol", "srv-1"))
	if err != nil {
		t.Fatal(err)
	}
	att, err := va.AttachVolume(backendtest.Ctx(t), *vol, *pd)
	if err != nil || att.DeviceName != "/dev/sdf" {
		t.Fatalf("attach: %+v, %v", att, err)
	}
	again, err := va.AttachVolume(backendtest.Ctx(t), *vol, *pd)
	if err != nil || again.DeviceName != "/dev/sdf" {
		t.Fatalf("attach again: %+v, %v", again, err)
	}
	if got := srv.AWSVolumes()[vol.VolumeID]; got != pd.InstanceID {
		t.Errorf("the volume is attached to %q, want %s", got, pd.InstanceID)
	}
	if err := vc.DeleteVolume(backendtest.Ctx(t), *vol); err == nil {
		t.Error("deleted a volume in use")
	}
	other := backendtest.OfferFor(t, "aws", cfg, "g4dn.xlarge", "us-east-1", false)
	other.AvailabilityZones = []string{"us-east-1b"}
	pd2, err := comp.CreateInstance(backendtest.Ctx(t), other, backendtest.InstanceConfig("task-1-vol", "srv-1"))
	if err != nil {
		t.Fatal(err)
	}
	second, err := vc.CreateVolume(backendtest.Ctx(t), backends.VolumeConfig{Name: "other", Region: "us-east-1", AvailabilityZone: "us-east-1a", SizeGB: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := va.AttachVolume(backendtest.Ctx(t), *second, *pd2); err == nil {
		t.Error("attached a volume to an instance of another zone")
	}
	for range 2 {
		if err := va.DetachVolume(backendtest.Ctx(t), *vol, *pd); err != nil {
			t.Fatalf("detach: %v", err)
		}
	}
	for range 2 {
		if err := vc.DeleteVolume(backendtest.Ctx(t), *vol); err != nil {
			t.Fatalf("delete: %v", err)
		}
	}
	if _, left := srv.AWSVolumes()[vol.VolumeID]; left {
		t.Error("the volume is still there")
	}
	backendtest.NoMisses(t, srv)
}
