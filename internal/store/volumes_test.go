package store

import (
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/models"
)

func testVolumes(t *testing.T, dbURL string) {
	s := openNew(t, dbURL)
	u := mkUser(t, s, "alice")
	p := mkProject(t, s, "p", u)
	size := 100.0
	v := &models.Volume{ProjectID: p.ID, UserID: u.ID, Name: "data", Status: models.VolumeSubmitted,
		Configuration: models.VolumeConfiguration{Type: "volume", Backend: "aws", Region: "us-east-1", Size: &size}}
	must(t, s.CreateVolume(ctx, v))
	wantErr(t, s.CreateVolume(ctx, &models.Volume{ProjectID: p.ID, UserID: u.ID, Name: "data", Status: models.VolumeSubmitted}), ErrExists)

	leases, err := s.AcquireLeases(ctx, TableVolumes, 10, time.Minute)
	must(t, err)
	if len(leases) != 1 || leases[0].ID != v.ID {
		t.Fatalf("leases %+v", leases)
	}
	az := "us-east-1a"
	v.Status, v.PD = models.VolumeActive, &backends.VolumeProvisioningData{Backend: "aws", VolumeID: "vol-1", SizeGB: 100, AvailabilityZone: &az, Attachable: true, Detachable: true}
	must(t, s.SaveVolumeState(ctx, leases[0], v))
	got, err := s.GetVolume(ctx, p.ID, "data")
	must(t, err)
	if got.Status != models.VolumeActive || got.PD == nil || got.PD.VolumeID != "vol-1" || *got.PD.AvailabilityZone != az || *got.Configuration.Size != 100 {
		t.Fatalf("got %+v %+v", got, got.PD)
	}
	// A replica that lost the lease cannot write.
	must(t, s.ReleaseLease(ctx, leases[0], nil))
	wantErr(t, s.SaveVolumeState(ctx, leases[0], v), ErrLeaseLost)

	_, insts := mkFleet(t, s, p, "f", 1)
	a := models.VolumeAttachment{VolumeID: v.ID, InstanceID: insts[0].ID, Data: &backends.VolumeAttachmentData{DeviceName: "/dev/sdf"}}
	must(t, s.AddVolumeAttachment(ctx, a))
	a.Data.DeviceName = "/dev/sdg"
	must(t, s.AddVolumeAttachment(ctx, a)) // again: updated
	list, err := s.VolumeAttachments(ctx, v.ID, "")
	must(t, err)
	if len(list) != 1 || list[0].Data.DeviceName != "/dev/sdg" {
		t.Fatalf("attachments %+v", list)
	}
	must(t, s.RemoveVolumeAttachment(ctx, v.ID, insts[0].ID))
	must(t, s.RemoveVolumeAttachment(ctx, v.ID, insts[0].ID))
	if list, _ := s.VolumeAttachments(ctx, "", insts[0].ID); len(list) != 0 {
		t.Fatalf("attachments after removal %+v", list)
	}

	must(t, s.RequestVolumeDeletion(ctx, []string{v.ID}))
	leases, err = s.AcquireLeases(ctx, TableVolumes, 10, time.Minute)
	must(t, err)
	got, _ = s.GetVolumeByID(ctx, v.ID)
	if len(leases) != 1 || !got.DeleteRequested {
		t.Fatalf("deletion not requested: %+v", got)
	}
	got.Deleted = true
	must(t, s.SaveVolumeState(ctx, leases[0], got))
	if _, err := s.GetVolume(ctx, p.ID, "data"); err == nil {
		t.Fatal("a deleted volume is still found by name")
	}
	all, err := s.ListVolumes(ctx, []string{p.ID})
	must(t, err)
	if len(all) != 0 {
		t.Fatalf("deleted volume listed: %+v", all)
	}
	// Its name can be reused.
	must(t, s.CreateVolume(ctx, &models.Volume{ProjectID: p.ID, UserID: u.ID, Name: "data", Status: models.VolumeSubmitted,
		Configuration: v.Configuration}))
}
