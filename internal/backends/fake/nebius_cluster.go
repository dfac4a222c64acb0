package fake

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonpb "github.com/dstackgo/dstack/internal/backends/nebius/proto/nebius/common/v1"
	computepb "github.com/dstackgo/dstack/internal/backends/nebius/proto/nebius/compute/v1"
)

// The Nebius fake's GPU clusters (nebius.compute.v1.GpuClusterService), as Nebius documents them
// (https://docs.nebius.com/compute/clusters/gpu):
//
//   - Create: parent_id a project of the tenant, a name, and spec.infiniband_fabric a fabric of
//     the project's region (NebiusFabrics); an unknown fabric, or one of another region, is
//     InvalidArgument. The operation is done at once when polled, like a disk's.
//   - Get: the cluster with status.instances, the ids of the instances in it (NotFound when
//     unknown).
//   - Delete: FailedPrecondition while an instance is still in the cluster; NotFound when unknown.
//
// InstanceService/Create with spec.gpu_cluster checks that the cluster exists in the instance's
// project (so its region), that the platform is the fabric's, and that the preset has 8 GPUs;
// InvalidArgument otherwise.

// NebiusFabrics are the fake's InfiniBand fabrics: name → platform and region, as in Nebius's
// documentation (the same table as the backend's, kept apart: the fake is the provider's truth).
var NebiusFabrics = map[string][2]string{
	"fabric-2":      {"gpu-h100-sxm", "eu-north1"},
	"fabric-3":      {"gpu-h100-sxm", "eu-north1"},
	"fabric-4":      {"gpu-h100-sxm", "eu-north1"},
	"fabric-5":      {"gpu-h200-sxm", "eu-west1"},
	"fabric-6":      {"gpu-h100-sxm", "eu-north1"},
	"fabric-7":      {"gpu-h200-sxm", "eu-north1"},
	"us-central1-a": {"gpu-h200-sxm", "us-central1"},
	"us-central1-b": {"gpu-b200-sxm", "us-central1"},
}

// NebiusGpuCluster is a GPU cluster of the fake.
type NebiusGpuCluster struct {
	ID, ProjectID, Name, Fabric string
	Labels                      map[string]string
	// Instances are the ids of the instances in the cluster, sorted.
	Instances []string
}

// GpuClusters lists the GPU clusters alive, by id.
func (s *NebiusServer) GpuClusters() []NebiusGpuCluster {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []NebiusGpuCluster
	for _, c := range s.compute.clusters {
		cp := *c
		cp.Instances = s.clusterInstancesLocked(c.ID)
		out = append(out, cp)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out
}

func (s *NebiusServer) clusterInstancesLocked(id string) []string {
	var out []string
	for _, i := range s.compute.instances {
		if i.GpuClusterID == id {
			out = append(out, i.ID)
		}
	}
	sort.Strings(out)
	return out
}

func (s *NebiusServer) regionLocked(project string) string {
	for _, p := range s.projects {
		if p.ID == project {
			return p.Region
		}
	}
	return ""
}

// checkGpuClusterLocked checks an instance's spec.gpu_cluster (call with s.mu held).
func (s *NebiusServer) checkGpuClusterLocked(method, project, platform, preset string, spec *computepb.InstanceGpuClusterSpec) error {
	if spec == nil {
		return nil
	}
	c, ok := s.compute.clusters[spec.GetId()]
	if !ok {
		return s.invalid(method, "gpu_cluster %q does not exist", spec.GetId())
	}
	if c.ProjectID != project {
		return s.invalid(method, "gpu_cluster %s is in region %s, the instance in %s", c.ID, s.regionLocked(c.ProjectID), s.regionLocked(project))
	}
	if want := NebiusFabrics[c.Fabric][0]; platform != want {
		return s.invalid(method, "platform %s cannot join gpu_cluster %s on fabric %s (%s only)", platform, c.ID, c.Fabric, want)
	}
	if !strings.HasPrefix(preset, "8gpu-") {
		return s.invalid(method, "preset %s cannot join an InfiniBand cluster: only 8-GPU presets can", preset)
	}
	return nil
}

type nebiusGpuClusters struct {
	computepb.UnimplementedGpuClusterServiceServer
	s *NebiusServer
}

func (n nebiusGpuClusters) Create(ctx context.Context, r *computepb.CreateGpuClusterRequest) (*commonpb.Operation, error) {
	const m = "/nebius.compute.v1.GpuClusterService/Create"
	if _, err := n.s.authed(ctx, m); err != nil {
		return nil, err
	}
	s := n.s
	s.mu.Lock()
	defer s.mu.Unlock()
	project := r.GetMetadata().GetParentId()
	if err := s.projectLocked(m, project); err != nil {
		return nil, err
	}
	if r.GetMetadata().GetName() == "" {
		return nil, s.invalid(m, "metadata.name is required")
	}
	fabric := r.GetSpec().GetInfinibandFabric()
	pr, ok := NebiusFabrics[fabric]
	if !ok {
		return nil, s.invalid(m, "spec.infiniband_fabric %q is not a fabric", fabric)
	}
	if region := s.regionLocked(project); pr[1] != region {
		return nil, s.invalid(m, "fabric %s is in region %s, not in the project's region %s", fabric, pr[1], region)
	}
	s.seq++
	c := &NebiusGpuCluster{ID: fmt.Sprintf("computegpucluster-e00fake%06d", s.seq), ProjectID: project,
		Name: r.GetMetadata().GetName(), Fabric: fabric, Labels: r.GetMetadata().GetLabels()}
	s.compute.clusters[c.ID] = c
	return s.opLocked(c.ID, false), nil
}

func (n nebiusGpuClusters) Get(ctx context.Context, r *computepb.GetGpuClusterRequest) (*computepb.GpuCluster, error) {
	const m = "/nebius.compute.v1.GpuClusterService/Get"
	if _, err := n.s.authed(ctx, m); err != nil {
		return nil, err
	}
	s := n.s
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.compute.clusters[r.GetId()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "gpu cluster %s not found", r.GetId())
	}
	return &computepb.GpuCluster{
		Metadata: &commonpb.ResourceMetadata{Id: c.ID, ParentId: c.ProjectID, Name: c.Name, Labels: c.Labels},
		Spec:     &computepb.GpuClusterSpec{InfinibandFabric: c.Fabric},
		Status:   &computepb.GpuClusterStatus{Instances: s.clusterInstancesLocked(c.ID)},
	}, nil
}

func (n nebiusGpuClusters) Delete(ctx context.Context, r *computepb.DeleteGpuClusterRequest) (*commonpb.Operation, error) {
	const m = "/nebius.compute.v1.GpuClusterService/Delete"
	if _, err := n.s.authed(ctx, m); err != nil {
		return nil, err
	}
	s := n.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.compute.clusters[r.GetId()]; !ok {
		return nil, status.Errorf(codes.NotFound, "gpu cluster %s not found", r.GetId())
	}
	if in := s.clusterInstancesLocked(r.GetId()); len(in) > 0 {
		return nil, status.Errorf(codes.FailedPrecondition, "gpu cluster %s still has instances %s", r.GetId(), strings.Join(in, ", "))
	}
	delete(s.compute.clusters, r.GetId())
	return s.opLocked(r.GetId(), false), nil
}
