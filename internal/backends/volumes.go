package backends

import "context"

// VolumeCompute is an optional ability of a Compute, found by type assertion: network volumes
// (dstack's `type: volume` configurations: AWS EBS, GCP persistent disks, RunPod network volumes).
type VolumeCompute interface {
	// CreateVolume makes a new volume and returns once the provider accepted it.
	CreateVolume(ctx context.Context, cfg VolumeConfig) (*VolumeProvisioningData, error)
	// RegisterVolume looks up an existing volume (cfg.VolumeID set) so that dstack can use it without
	// owning it: DeleteVolume is never called for it.
	RegisterVolume(ctx context.Context, cfg VolumeConfig) (*VolumeProvisioningData, error)
	// DeleteVolume deletes a volume dstack created. It is idempotent: a volume already gone is success.
	DeleteVolume(ctx context.Context, vol VolumeProvisioningData) error
}

// VolumeAttacher is an optional ability of a VolumeCompute whose volumes are attached to a machine
// before a job mounts them (AWS, GCP); providers that mount by id at launch (RunPod) have none.
type VolumeAttacher interface {
	// AttachVolume attaches vol to the machine and returns how it appears there.
	AttachVolume(ctx context.Context, vol VolumeProvisioningData, pd ProvisioningData) (*VolumeAttachmentData, error)
	// DetachVolume detaches it; a volume that is not attached is success.
	DetachVolume(ctx context.Context, vol VolumeProvisioningData, pd ProvisioningData) error
}

// VolumeConfig is a `type: volume` configuration as the backend needs it.
type VolumeConfig struct {
	ProjectName      string
	Name             string
	Region           string
	AvailabilityZone string // optional; the backend picks one when empty
	SizeGB           int    // for a new volume
	VolumeID         string // an existing volume to register
	Tags             map[string]string
}

// VolumeProvisioningData is dstack's VolumeProvisioningData: what the provider made.
type VolumeProvisioningData struct {
	Backend          string  `json:"backend"`
	Region           string  `json:"region"`
	VolumeID         string  `json:"volume_id"`
	SizeGB           int     `json:"size_gb"`
	AvailabilityZone *string `json:"availability_zone"`
	Price            float64 `json:"price"` // per month
	Attachable       bool    `json:"attachable"`
	Detachable       bool    `json:"detachable"`
	BackendData      string  `json:"backend_data,omitempty"`
}

// VolumeAttachmentData is how an attached volume appears on the machine.
type VolumeAttachmentData struct {
	DeviceName string `json:"device_name"`
}
