package gcp

import (
	"context"
	"fmt"
	"path"
	"strings"

	"google.golang.org/api/compute/v1"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/bootstrap"
)

// Volumes are zonal persistent disks (backends.VolumeCompute, backends.VolumeAttacher):
//
//   - CreateVolume is disks.insert of a pd-balanced disk in the volume's zone (the region's first
//     when none is given), labelled like instances, waited for;
//   - RegisterVolume is disks.get of an existing disk by name, in the given zone or in each zone of
//     the region;
//   - DeleteVolume is disks.delete; a disk already gone is success;
//   - AttachVolume is instances.attachDisk with the disk's name as device name, so that the disk
//     appears as /dev/disk/by-id/google-<name>; a disk already attached to the instance is success;
//   - DetachVolume is instances.detachDisk; a disk not attached (or an instance gone) is success.

// diskPricePerGBMonth is the list price of pd-balanced storage (us-central1), for the volume's price.
const diskPricePerGBMonth = 0.10

var (
	_ backends.VolumeCompute  = (*gcpCompute)(nil)
	_ backends.VolumeAttacher = (*gcpCompute)(nil)
)

func diskURL(project, zone, name string) string {
	return "projects/" + project + "/zones/" + zone + "/disks/" + name
}

func (c *gcpCompute) volumeData(region, zone, name string, size int64) *backends.VolumeProvisioningData {
	z := zone
	return &backends.VolumeProvisioningData{Backend: typ, Region: region, VolumeID: name, SizeGB: int(size), AvailabilityZone: &z,
		Price: float64(size) * diskPricePerGBMonth, Attachable: true, Detachable: true}
}

func (c *gcpCompute) CreateVolume(ctx context.Context, cfg backends.VolumeConfig) (*backends.VolumeProvisioningData, error) {
	s, err := c.session(ctx)
	if err != nil {
		return nil, err
	}
	if cfg.SizeGB < 1 {
		return nil, fmt.Errorf("GCP volume %s: size %d GB; give a size of at least 10 GB", cfg.Name, cfg.SizeGB)
	}
	zone := cfg.AvailabilityZone
	if zone == "" {
		zones, err := zonesOf(ctx, s, cfg.Region)
		if err != nil {
			return nil, err
		}
		if len(zones) == 0 {
			return nil, fmt.Errorf("GCP region %s has no zones", cfg.Region)
		}
		zone = zones[0]
	}
	name := sanitizeName(bootstrap.ResourceName(strings.ToLower(cfg.ProjectName), strings.ToLower(cfg.Name), 63))
	own := map[string]string{"dstack_project": cfg.ProjectName, "dstack_volume": cfg.Name}
	for k, v := range cfg.Tags {
		own[k] = v
	}
	tags, _ := c.cfg.Values["tags"].(map[string]any)
	disk := &compute.Disk{Name: name, SizeGb: int64(cfg.SizeGB), Type: "zones/" + zone + "/diskTypes/pd-balanced", Labels: Labels(tags, own)}
	var op *compute.Operation
	rid := newRequestID()
	err = s.do(ctx, func() error {
		var err error
		op, err = s.svc.Disks.Insert(s.project, zone, disk).RequestId(rid).Context(ctx).Do()
		return err
	})
	if err == nil {
		op, err = c.waitZone(ctx, s, zone, op)
	}
	if err != nil {
		return nil, s.mapError("disks.insert "+name+" in "+zone, err)
	}
	if op.Error != nil {
		if opCapacity(op) {
			return nil, &backends.NoCapacityError{Msg: fmt.Sprintf("GCP %s: disk %s: %s", zone, name, opErrorText(op))}
		}
		return nil, fmt.Errorf("GCP disks.insert of %s in %s failed: %s", name, zone, opErrorText(op))
	}
	return c.volumeData(regionOfZone(zone), zone, name, int64(cfg.SizeGB)), nil
}

func (c *gcpCompute) RegisterVolume(ctx context.Context, cfg backends.VolumeConfig) (*backends.VolumeProvisioningData, error) {
	s, err := c.session(ctx)
	if err != nil {
		return nil, err
	}
	zones := []string{cfg.AvailabilityZone}
	if cfg.AvailabilityZone == "" {
		if zones, err = zonesOf(ctx, s, cfg.Region); err != nil {
			return nil, err
		}
	}
	for _, zone := range zones {
		var d *compute.Disk
		err := s.do(ctx, func() error {
			var err error
			d, err = s.svc.Disks.Get(s.project, zone, cfg.VolumeID).Context(ctx).Do()
			return err
		})
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, s.mapError("disks.get "+cfg.VolumeID+" in "+zone, err)
		}
		return c.volumeData(regionOfZone(zone), zone, d.Name, d.SizeGb), nil
	}
	return nil, fmt.Errorf("GCP disk %s not found in %s of project %s; check volume_id and the region", cfg.VolumeID, strings.Join(zones, ", "), s.project)
}

func volumeZone(vol backends.VolumeProvisioningData) (string, error) {
	if vol.AvailabilityZone == nil || *vol.AvailabilityZone == "" {
		return "", fmt.Errorf("GCP volume %s has no zone in its provisioning data", vol.VolumeID)
	}
	return *vol.AvailabilityZone, nil
}

func (c *gcpCompute) DeleteVolume(ctx context.Context, vol backends.VolumeProvisioningData) error {
	s, err := c.session(ctx)
	if err != nil {
		return err
	}
	zone, err := volumeZone(vol)
	if err != nil {
		return err
	}
	var op *compute.Operation
	rid := newRequestID()
	err = s.do(ctx, func() error {
		var err error
		op, err = s.svc.Disks.Delete(s.project, zone, vol.VolumeID).RequestId(rid).Context(ctx).Do()
		return err
	})
	if isNotFound(err) {
		return nil
	}
	if err == nil {
		op, err = c.waitZone(ctx, s, zone, op)
	}
	if err != nil {
		return s.mapError("disks.delete "+vol.VolumeID+" in "+zone, err)
	}
	if op.Error != nil {
		return fmt.Errorf("GCP disks.delete of %s in %s failed: %s", vol.VolumeID, zone, opErrorText(op))
	}
	return nil
}

// DeviceName is where an attached disk appears on the instance.
func DeviceName(disk string) string { return "/dev/disk/by-id/google-" + disk }

func (c *gcpCompute) AttachVolume(ctx context.Context, vol backends.VolumeProvisioningData, pd backends.ProvisioningData) (*backends.VolumeAttachmentData, error) {
	s, err := c.session(ctx)
	if err != nil {
		return nil, err
	}
	zone, err := volumeZone(vol)
	if err != nil {
		return nil, err
	}
	if iz := zoneOf(pd.BackendData, pd.AvailabilityZone); iz != zone {
		return nil, fmt.Errorf("GCP volume %s is in %s and instance %s in %s; a disk attaches only to instances of its zone", vol.VolumeID, zone, pd.InstanceID, iz)
	}
	var d *compute.Disk
	err = s.do(ctx, func() error {
		var err error
		d, err = s.svc.Disks.Get(s.project, zone, vol.VolumeID).Context(ctx).Do()
		return err
	})
	if err != nil {
		return nil, s.mapError("disks.get "+vol.VolumeID+" in "+zone, err)
	}
	for _, u := range d.Users {
		if path.Base(u) == pd.InstanceID {
			return &backends.VolumeAttachmentData{DeviceName: DeviceName(vol.VolumeID)}, nil
		}
	}
	ad := &compute.AttachedDisk{Source: diskURL(s.project, zone, vol.VolumeID), DeviceName: vol.VolumeID, Mode: "READ_WRITE"}
	var op *compute.Operation
	rid := newRequestID()
	err = s.do(ctx, func() error {
		var err error
		op, err = s.svc.Instances.AttachDisk(s.project, zone, pd.InstanceID, ad).
			RequestId(rid).Context(ctx).Do()
		return err
	})
	if err == nil {
		op, err = c.waitZone(ctx, s, zone, op)
	}
	if err != nil {
		return nil, s.mapError("instances.attachDisk "+vol.VolumeID+" to "+pd.InstanceID, err)
	}
	if op.Error != nil {
		return nil, fmt.Errorf("GCP instances.attachDisk of %s to %s failed: %s", vol.VolumeID, pd.InstanceID, opErrorText(op))
	}
	return &backends.VolumeAttachmentData{DeviceName: DeviceName(vol.VolumeID)}, nil
}

func (c *gcpCompute) DetachVolume(ctx context.Context, vol backends.VolumeProvisioningData, pd backends.ProvisioningData) error {
	s, err := c.session(ctx)
	if err != nil {
		return err
	}
	zone, err := volumeZone(vol)
	if err != nil {
		return err
	}
	var inst *compute.Instance
	err = s.do(ctx, func() error {
		var err error
		inst, err = s.svc.Instances.Get(s.project, zone, pd.InstanceID).Context(ctx).Do()
		return err
	})
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return s.mapError("instances.get "+pd.InstanceID, err)
	}
	device := ""
	for _, d := range inst.Disks {
		if path.Base(d.Source) == vol.VolumeID && !d.Boot {
			device = d.DeviceName
		}
	}
	if device == "" {
		return nil
	}
	var op *compute.Operation
	rid := newRequestID()
	err = s.do(ctx, func() error {
		var err error
		op, err = s.svc.Instances.DetachDisk(s.project, zone, pd.InstanceID, device).
			RequestId(rid).Context(ctx).Do()
		return err
	})
	if err == nil {
		op, err = c.waitZone(ctx, s, zone, op)
	}
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return s.mapError("instances.detachDisk "+vol.VolumeID+" from "+pd.InstanceID, err)
	}
	if op.Error != nil {
		return fmt.Errorf("GCP instances.detachDisk of %s from %s failed: %s", vol.VolumeID, pd.InstanceID, opErrorText(op))
	}
	return nil
}
