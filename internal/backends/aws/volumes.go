package aws

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/dstackgo/dstack/internal/backends"
)

// EBS volumes: gp3, priced at its us-east-1 list price per GB-month (regions differ by a few cents;
// dstack shows the price as an estimate).
const ebsPricePerGBMonth = 0.08

// CreateVolume creates a gp3 volume in cfg's zone, or the region's first available zone.
func (c *compute) CreateVolume(ctx context.Context, cfg backends.VolumeConfig) (*backends.VolumeProvisioningData, error) {
	s, err := c.session(ctx)
	if err != nil {
		return nil, err
	}
	client := s.ec2Client(cfg.Region)
	zone := cfg.AvailabilityZone
	if zone == "" {
		out, err := client.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{
			Filters: []types.Filter{{Name: aws.String("state"), Values: []string{"available"}}}})
		if err != nil {
			return nil, s.mapError(cfg.Region, err)
		}
		if len(out.AvailabilityZones) == 0 {
			return nil, fmt.Errorf("AWS %s: no availability zone is available", cfg.Region)
		}
		zone = aws.ToString(out.AvailabilityZones[0].ZoneName)
	}
	tags := backends.StringMap(c.cfg.Values["tags"])
	tags["Name"] = cfg.Name
	for k, v := range cfg.Tags {
		tags[k] = v
	}
	out, err := client.CreateVolume(ctx, &ec2.CreateVolumeInput{
		AvailabilityZone:  aws.String(zone),
		Size:              aws.Int32(int32(cfg.SizeGB)),
		VolumeType:        types.VolumeTypeGp3,
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeVolume, Tags: ec2Tags(tags)}},
	})
	if err != nil {
		return nil, s.mapError(cfg.Region, err)
	}
	return volumeData(cfg.Region, aws.ToString(out.VolumeId), aws.ToInt32(out.Size), aws.ToString(out.AvailabilityZone)), nil
}

// RegisterVolume looks up an existing volume by id.
func (c *compute) RegisterVolume(ctx context.Context, cfg backends.VolumeConfig) (*backends.VolumeProvisioningData, error) {
	s, err := c.session(ctx)
	if err != nil {
		return nil, err
	}
	out, err := s.ec2Client(cfg.Region).DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{cfg.VolumeID}})
	if errorCode(err) == "InvalidVolume.NotFound" || err == nil && len(out.Volumes) == 0 {
		return nil, fmt.Errorf("AWS %s: volume %s does not exist; check volume_id and region", cfg.Region, cfg.VolumeID)
	}
	if err != nil {
		return nil, s.mapError(cfg.Region, err)
	}
	v := out.Volumes[0]
	return volumeData(cfg.Region, aws.ToString(v.VolumeId), aws.ToInt32(v.Size), aws.ToString(v.AvailabilityZone)), nil
}

func volumeData(region, id string, size int32, zone string) *backends.VolumeProvisioningData {
	return &backends.VolumeProvisioningData{Backend: typ, Region: region, VolumeID: id, SizeGB: int(size),
		AvailabilityZone: &zone, Price: float64(size) * ebsPricePerGBMonth, Attachable: true, Detachable: true}
}

// DeleteVolume deletes a volume; one already gone is success.
func (c *compute) DeleteVolume(ctx context.Context, vol backends.VolumeProvisioningData) error {
	s, err := c.session(ctx)
	if err != nil {
		return err
	}
	_, err = s.ec2Client(vol.Region).DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(vol.VolumeID)})
	if err == nil || errorCode(err) == "InvalidVolume.NotFound" {
		return nil
	}
	return s.mapError(vol.Region, err)
}

// ebsDevices are the device names AWS recommends for EBS volumes on Linux.
var ebsDevices = []string{"/dev/sdf", "/dev/sdg", "/dev/sdh", "/dev/sdi", "/dev/sdj", "/dev/sdk", "/dev/sdl",
	"/dev/sdm", "/dev/sdn", "/dev/sdo", "/dev/sdp"}

// AttachVolume attaches vol to the instance under the first device name no other volume uses there.
// On Nitro instances the volume appears as an NVMe device; the shim finds it by the volume id.
func (c *compute) AttachVolume(ctx context.Context, vol backends.VolumeProvisioningData, pd backends.ProvisioningData) (*backends.VolumeAttachmentData, error) {
	s, err := c.session(ctx)
	if err != nil {
		return nil, err
	}
	client := s.ec2Client(vol.Region)
	out, err := client.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{
		Filters: []types.Filter{{Name: aws.String("attachment.instance-id"), Values: []string{pd.InstanceID}}}})
	if err != nil {
		return nil, s.mapError(vol.Region, err)
	}
	used := map[string]bool{}
	for _, v := range out.Volumes {
		for _, a := range v.Attachments {
			if aws.ToString(v.VolumeId) == vol.VolumeID {
				return &backends.VolumeAttachmentData{DeviceName: aws.ToString(a.Device)}, nil // attached already
			}
			used[aws.ToString(a.Device)] = true
		}
	}
	for _, dev := range ebsDevices {
		if used[dev] {
			continue
		}
		_, err := client.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(vol.VolumeID),
			InstanceId: aws.String(pd.InstanceID), Device: aws.String(dev)})
		if err != nil {
			if errorCode(err) == "VolumeInUse" {
				return nil, fmt.Errorf("AWS %s: volume %s is attached to another instance", vol.Region, vol.VolumeID)
			}
			return nil, s.mapError(vol.Region, err)
		}
		return &backends.VolumeAttachmentData{DeviceName: dev}, nil
	}
	return nil, fmt.Errorf("AWS %s: instance %s has no free device name for volume %s", vol.Region, pd.InstanceID, vol.VolumeID)
}

// DetachVolume detaches vol from the instance; a volume not attached there is success.
func (c *compute) DetachVolume(ctx context.Context, vol backends.VolumeProvisioningData, pd backends.ProvisioningData) error {
	s, err := c.session(ctx)
	if err != nil {
		return err
	}
	_, err = s.ec2Client(vol.Region).DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: aws.String(vol.VolumeID),
		InstanceId: aws.String(pd.InstanceID)})
	switch errorCode(err) {
	case "", "IncorrectState", "InvalidVolume.NotFound", "InvalidAttachment.NotFound":
		return nil
	}
	return s.mapError(vol.Region, err)
}
