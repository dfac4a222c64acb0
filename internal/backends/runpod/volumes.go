package runpod

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/bootstrap"
)

// Network volumes follow the same GraphQL spec (graphql-spec.runpod.io): createNetworkVolume(input:
// CreateNetworkVolumeInput! {name, size, dataCenterId}) returns the NetworkVolume {id name size
// dataCenterId}; deleteNetworkVolume(input: DeleteNetworkVolumeInput! {id}) returns a scalar;
// myself { networkVolumes { id name size dataCenterId } } lists the account's volumes. A network
// volume is Secure Cloud storage in one data center: the volume's region is a data center id
// (CA-MTL-3), and a pod that mounts it must be deployed there (see podVolume).
//
// RunPod mounts a network volume when the pod is created (networkVolumeId and volumeMountPath in the
// deploy input), so there is no VolumeAttacher; a pod mounts at most one.
//
// Price: $0.07 per GB per month below 1 TB and $0.05 per GB per month from 1 TB (RunPod's billing
// documentation, docs.runpod.io/get-started/billing-information and docs.runpod.io/pods/storage/types;
// the original backend prices volumes the same way).

// volumePrice is a volume's price per month.
func volumePrice(sizeGB int) float64 {
	if sizeGB < 1000 {
		return 0.07 * float64(sizeGB)
	}
	return 0.05 * float64(sizeGB)
}

type networkVolume struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	Size         int    `json:"size"`
	DataCenterID string `json:"dataCenterId"`
}

func isDataCenter(region string) bool { return strings.Contains(region, "-") }

func (v networkVolume) provisioningData() *backends.VolumeProvisioningData {
	return &backends.VolumeProvisioningData{
		Backend:  typ,
		Region:   v.DataCenterID,
		VolumeID: v.ID,
		SizeGB:   v.Size,
		Price:    volumePrice(v.Size),
		// Mounted by id when a pod is created: never attached or detached.
		Attachable: false,
		Detachable: false,
	}
}

var _ backends.VolumeCompute = (*compute)(nil)

// CreateVolume creates a network volume of cfg.SizeGB in the data center cfg.Region.
func (c *compute) CreateVolume(ctx context.Context, cfg backends.VolumeConfig) (*backends.VolumeProvisioningData, error) {
	if !isDataCenter(cfg.Region) {
		return nil, fmt.Errorf("runpod: volume %q: region %q is not a RunPod data center id; network volumes live in a "+
			"Secure Cloud data center: set the volume configuration's region to one, such as CA-MTL-3", cfg.Name, cfg.Region)
	}
	if cfg.SizeGB < 1 {
		return nil, fmt.Errorf("runpod: volume %q: size %d GB: set the volume configuration's size to at least 1GB", cfg.Name, cfg.SizeGB)
	}
	var out struct {
		Volume *networkVolume `json:"createNetworkVolume"`
	}
	q := `mutation CreateVolume($input: CreateNetworkVolumeInput!) { createNetworkVolume(input: $input) { id name size dataCenterId } }`
	input := map[string]any{"name": volumeName(cfg), "size": cfg.SizeGB, "dataCenterId": cfg.Region}
	if err := c.c.do(ctx, q, map[string]any{"input": input}, &out); err != nil {
		return nil, fmt.Errorf("runpod: creating volume %q in %s: %w", cfg.Name, cfg.Region, err)
	}
	if out.Volume == nil || out.Volume.ID == "" {
		return nil, fmt.Errorf("runpod: creating volume %q in %s: RunPod answered no volume id", cfg.Name, cfg.Region)
	}
	v := *out.Volume
	// The answer may leave out what was asked for; what was asked for is what was made.
	if v.Size == 0 {
		v.Size = cfg.SizeGB
	}
	if v.DataCenterID == "" {
		v.DataCenterID = cfg.Region
	}
	return v.provisioningData(), nil
}

// volumeName is dstack-<project>-<volume>, within RunPod's 60 characters.
func volumeName(cfg backends.VolumeConfig) string {
	name := cfg.Name
	if name == "" {
		name = "volume"
	}
	return bootstrap.ResourceName(cfg.ProjectName, name, 60)
}

func (c *compute) listVolumes(ctx context.Context) ([]networkVolume, error) {
	var out struct {
		Myself *struct {
			NetworkVolumes []networkVolume `json:"networkVolumes"`
		} `json:"myself"`
	}
	if err := c.c.do(ctx, `query Volumes { myself { networkVolumes { id name size dataCenterId } } }`, nil, &out); err != nil {
		return nil, err
	}
	if out.Myself == nil {
		return nil, errors.New("RunPod API: the answer has no myself")
	}
	return out.Myself.NetworkVolumes, nil
}

// RegisterVolume looks up the existing network volume cfg.VolumeID on the account.
func (c *compute) RegisterVolume(ctx context.Context, cfg backends.VolumeConfig) (*backends.VolumeProvisioningData, error) {
	if cfg.VolumeID == "" {
		return nil, fmt.Errorf("runpod: volume %q: no volume_id to register: set the volume configuration's volume_id to a network volume id", cfg.Name)
	}
	vols, err := c.listVolumes(ctx)
	if err != nil {
		return nil, fmt.Errorf("runpod: listing network volumes: %w", err)
	}
	for _, v := range vols {
		if v.ID != cfg.VolumeID {
			continue
		}
		if cfg.Region != "" && cfg.Region != v.DataCenterID {
			return nil, fmt.Errorf("runpod: network volume %s is in data center %s, not in %s: set the volume configuration's region to %s",
				v.ID, v.DataCenterID, cfg.Region, v.DataCenterID)
		}
		return v.provisioningData(), nil
	}
	return nil, fmt.Errorf("runpod: network volume %q not found on this account: check the volume configuration's volume_id (RunPod console, Storage)", cfg.VolumeID)
}

// DeleteVolume deletes the network volume; one that is already gone is success.
func (c *compute) DeleteVolume(ctx context.Context, vol backends.VolumeProvisioningData) error {
	if vol.VolumeID == "" {
		return nil // nothing was created
	}
	q := `mutation DeleteVolume($input: DeleteNetworkVolumeInput!) { deleteNetworkVolume(input: $input) }`
	err := c.c.do(ctx, q, map[string]any{"input": map[string]any{"id": vol.VolumeID}}, nil)
	if err == nil {
		return nil
	}
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status >= 500 {
		return fmt.Errorf("runpod: deleting network volume %s: %w", vol.VolumeID, err)
	}
	// RunPod's wording for an unknown volume is not documented: a refusal for a volume that is not
	// on the account any more means it is gone.
	vols, lerr := c.listVolumes(ctx)
	if lerr != nil {
		return fmt.Errorf("runpod: deleting network volume %s: %w", vol.VolumeID, err)
	}
	for _, v := range vols {
		if v.ID == vol.VolumeID {
			return fmt.Errorf("runpod: deleting network volume %s: %w", vol.VolumeID, err)
		}
	}
	return nil
}

// podVolume checks the volumes a pod mounts against the offer and returns the deploy input's
// networkVolumeId and volumeMountPath ("" when none).
func podVolume(offer string, region string, vols []backends.MountedVolume) (id, path string, err error) {
	switch {
	case len(vols) == 0:
		return "", "", nil
	case len(vols) > 1:
		return "", "", fmt.Errorf("runpod: a pod mounts at most one network volume, and this job mounts %d: keep one in the run configuration's volumes", len(vols))
	}
	v := vols[0]
	switch {
	case v.Volume.Backend != "" && v.Volume.Backend != typ:
		return "", "", fmt.Errorf("runpod: volume %s is a %s volume; a RunPod pod mounts only RunPod network volumes", v.Volume.VolumeID, v.Volume.Backend)
	case v.Volume.VolumeID == "":
		return "", "", errors.New("runpod: the job's network volume has no volume id (was it provisioned?)")
	case !strings.HasPrefix(v.Path, "/"):
		return "", "", fmt.Errorf("runpod: volume %s: mount path %q is not absolute: set the run configuration's volume path to one such as /workspace", v.Volume.VolumeID, v.Path)
	case v.Volume.Region == "":
		return "", "", fmt.Errorf("runpod: network volume %s has no data center recorded: register it again with its region", v.Volume.VolumeID)
	case region != v.Volume.Region:
		return "", "", fmt.Errorf("runpod: network volume %s is in data center %s, and a pod that mounts it must run there; offer %s is in %s: choose an offer in %s",
			v.Volume.VolumeID, v.Volume.Region, offer, region, v.Volume.Region)
	}
	return v.Volume.VolumeID, v.Path, nil
}
