package nebius

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/bootstrap"
	commonpb "github.com/dstackgo/dstack/internal/backends/nebius/proto/nebius/common/v1"
	computepb "github.com/dstackgo/dstack/internal/backends/nebius/proto/nebius/compute/v1"
	"github.com/dstackgo/dstack/internal/offers"
)

// Placement groups on Nebius are GPU clusters (https://docs.nebius.com/compute/clusters/gpu): a
// cluster lives in one project (so one region) on one InfiniBand fabric, and instances join it by
// naming it in spec.gpu_cluster. A fabric serves one platform in one region (the Fabrics table),
// and only 8-GPU presets of H100, H200 and B200 platforms can join. CreatePlacementGroup picks the
// first fabric of the offer's platform and region among the config's `fabrics` (in their order),
// or among all of Fabrics (sorted by name) when `fabrics` is not set, and creates the cluster
// (nebius.compute.v1.GpuClusterService/Create, waiting for its operation). DeletePlacementGroup
// deletes it; Nebius refuses that while instances are still in the cluster, so the fleet deletes
// its instances first.

// clusterGPUs are the GPUs of the machines that can join an InfiniBand cluster, 8 per machine.
var clusterGPUs = []string{"H100", "H200", "B200"}

const clusterGPUCount = 8

// ClusterData is the backend_data of a Nebius placement group.
type ClusterData struct {
	ProjectID string `json:"project_id"`
	Fabric    string `json:"fabric"`
	Platform  string `json:"platform"`
}

var _ backends.PlacementGroupCompute = (*compute)(nil)

// SuitableFabrics lists the fabrics an offer's machine can join: of its platform and region, among
// allowed (the config's `fabrics`, in order) or, when allowed is empty, among all of Fabrics.
func SuitableFabrics(offer offers.Offer, allowed []string) []string {
	platform, _, err := PlatformPreset(offer.Instance.Name)
	if err != nil {
		return nil
	}
	names := allowed
	if len(names) == 0 {
		for f := range Fabrics {
			names = append(names, f)
		}
		sort.Strings(names)
	}
	var out []string
	for _, f := range names {
		if pr, ok := Fabrics[f]; ok && pr[0] == platform && pr[1] == offer.Region {
			out = append(out, f)
		}
	}
	return out
}

// PlacementGroupFit says why an offer cannot be in a GPU cluster ("" when it can).
func (c *compute) PlacementGroupFit(offer offers.Offer, group *backends.PlacementGroupData) string {
	platform, _, err := PlatformPreset(offer.Instance.Name)
	if err != nil {
		return err.Error()
	}
	gpus := offer.Instance.Resources.GPUs
	if len(gpus) != clusterGPUCount || !slices.Contains(clusterGPUs, strings.ToUpper(gpus[0].Name)) {
		return fmt.Sprintf("only 8-GPU %s machines can join a Nebius InfiniBand cluster", strings.Join(clusterGPUs, ", "))
	}
	if group != nil {
		var cd ClusterData
		if err := json.Unmarshal([]byte(group.BackendData), &cd); err != nil {
			return "the fleet's cluster has unreadable backend data: " + err.Error()
		}
		if cd.Platform != platform {
			return fmt.Sprintf("the fleet's cluster (fabric %s) takes %s machines", cd.Fabric, cd.Platform)
		}
		return ""
	}
	if len(SuitableFabrics(offer, c.cfg.Strings("fabrics"))) == 0 {
		scope := "known to dstack"
		if f := c.cfg.Strings("fabrics"); len(f) > 0 {
			scope = "among the backend's fabrics " + strings.Join(f, ", ")
		}
		return fmt.Sprintf("no InfiniBand fabric for %s in %s %s", platform, offer.Region, scope)
	}
	return ""
}

// CreatePlacementGroup creates the GPU cluster for the offer's machine.
func (c *compute) CreatePlacementGroup(ctx context.Context, cfg backends.PlacementGroupConfig) (*backends.PlacementGroupData, error) {
	if why := c.PlacementGroupFit(cfg.Offer, nil); why != "" {
		return nil, fmt.Errorf("nebius: cannot make a GPU cluster for %s in %s: %s", cfg.Offer.Instance.Name, cfg.Offer.Region, why)
	}
	platform, _, _ := PlatformPreset(cfg.Offer.Instance.Name)
	fabric := SuitableFabrics(cfg.Offer, c.cfg.Strings("fabrics"))[0]
	cl, err := c.client(ctx)
	if err != nil {
		return nil, err
	}
	project, err := c.project(ctx, cl, cfg.Offer.Region)
	if err != nil {
		return nil, err
	}
	cc, addr, err := cl.conn(serviceCompute)
	if err != nil {
		return nil, err
	}
	op, err := computepb.NewGpuClusterServiceClient(cc).Create(cl.authed(ctx), &computepb.CreateGpuClusterRequest{
		Metadata: &commonpb.ResourceMetadata{ParentId: project, Name: bootstrap.ResourceName(cfg.ProjectName, cfg.Name, maxName),
			Labels: Labels(cfg.Tags)},
		Spec: &computepb.GpuClusterSpec{InfinibandFabric: fabric},
	})
	if err != nil {
		return nil, computeError(ctx, addr, "creating the GPU cluster", err)
	}
	id, err := wait(ctx, cl, addr, op, "creating the GPU cluster")
	if err == nil && id == "" {
		err = fmt.Errorf("nebius: creating the GPU cluster: operation %s has no resource id", op.GetId())
	}
	if err != nil {
		if id := op.GetResourceId(); id != "" {
			_ = c.deleteCluster(context.WithoutCancel(ctx), cl, id)
		}
		return nil, err
	}
	bd, _ := json.Marshal(ClusterData{ProjectID: project, Fabric: fabric, Platform: platform})
	return &backends.PlacementGroupData{Backend: "nebius", Region: cfg.Offer.Region, ID: id, BackendData: string(bd)}, nil
}

// DeletePlacementGroup deletes the GPU cluster; one already gone is success.
func (c *compute) DeletePlacementGroup(ctx context.Context, group backends.PlacementGroupData) error {
	cl, err := c.client(ctx)
	if err != nil {
		return err
	}
	return c.deleteCluster(ctx, cl, group.ID)
}

func (c *compute) deleteCluster(ctx context.Context, cl *client, id string) error {
	cc, addr, err := cl.conn(serviceCompute)
	if err != nil {
		return err
	}
	op, err := computepb.NewGpuClusterServiceClient(cc).Delete(cl.authed(ctx), &computepb.DeleteGpuClusterRequest{Id: id})
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return computeError(ctx, addr, "deleting the GPU cluster", err)
	}
	_, err = wait(ctx, cl, addr, op, "deleting the GPU cluster")
	if errors.Is(err, errGone) {
		return nil
	}
	return err
}

// gpuCluster is the spec.gpu_cluster of an instance created in a placement group.
func gpuCluster(group *backends.PlacementGroupData, region string) (*computepb.InstanceGpuClusterSpec, error) {
	if group == nil {
		return nil, nil
	}
	if group.Backend != "nebius" || group.ID == "" || group.Region != region {
		return nil, fmt.Errorf("nebius: placement group %s (%s %s) is not a GPU cluster of region %s", group.ID, group.Backend, group.Region, region)
	}
	return &computepb.InstanceGpuClusterSpec{Id: group.ID}, nil
}
