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
	vpcpb "github.com/dstackgo/dstack/internal/backends/nebius/proto/nebius/vpc/v1"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
)

// The Nebius fake's compute, with the messages of internal/backends/nebius/proto (bearer token
// required on every call, as for the IAM services; parent_id must be one of the tenant's
// projects, else PermissionDenied):
//
//   - nebius.vpc.v1.SubnetService/List: each project has one subnet, default-subnet-<region>
//     (id vpcsubnet-<project id>).
//   - nebius.compute.v1.DiskService/Create (size, source image family required) answers an
//     operation that is not done yet; OperationService/Get finishes it. Delete of a disk that an
//     instance still uses is FailedPrecondition; of an unknown disk NotFound.
//   - nebius.compute.v1.InstanceService/Create: platform and preset, an existing boot disk
//     attached read-write, one network interface on a subnet of the project with a public
//     address, and cloud_init_user_data required (InvalidArgument and a miss otherwise);
//     gpu_cluster, when set, is checked as nebius_cluster.go says; a platform set by
//     NebiusNoCapacity is ResourceExhausted "not enough resources". The instance
//     is STARTING for its first Get (and while NebiusHoldBoot holds it), then RUNNING with
//     addresses 10.0.0.N/32 and 203.0.113.N/32.
//     Delete removes it (NotFound when unknown).
//   - nebius.compute.v1.GpuClusterService/Create, Get, Delete: see nebius_cluster.go.
//   - nebius.common.v1.OperationService/Get: the operations above.

// NebiusInstance is an instance of the fake.
type NebiusInstance struct {
	ID, ProjectID, Name, Platform, Preset, BootDiskID, SubnetID, UserData string
	// GpuClusterID is the GPU cluster the instance is in ("" for none).
	GpuClusterID string
	Labels       map[string]string
	State        string
	gets         int
	n            int
}

// NebiusDisk is a disk of the fake.
type NebiusDisk struct {
	ID, ProjectID, Name, ImageFamily string
	SizeGiB                          int64
	Labels                           map[string]string
}

type nebiusComputeState struct {
	instances  map[string]*NebiusInstance
	disks      map[string]*NebiusDisk
	ops        map[string]*commonpb.Operation
	noCapacity map[string]bool
	clusters   map[string]*NebiusGpuCluster
	holdBoot   bool
}

func (s *NebiusServer) registerCompute() {
	s.compute = nebiusComputeState{instances: map[string]*NebiusInstance{}, disks: map[string]*NebiusDisk{},
		ops: map[string]*commonpb.Operation{}, noCapacity: map[string]bool{}, clusters: map[string]*NebiusGpuCluster{}}
	vpcpb.RegisterSubnetServiceServer(s.srv, nebiusSubnets{s: s})
	computepb.RegisterDiskServiceServer(s.srv, nebiusDisks{s: s})
	computepb.RegisterInstanceServiceServer(s.srv, nebiusInstances{s: s})
	computepb.RegisterGpuClusterServiceServer(s.srv, nebiusGpuClusters{s: s})
	commonpb.RegisterOperationServiceServer(s.srv, nebiusOperations{s: s})
}

// NebiusNoCapacity makes instance creation on a platform fail for lack of capacity.
func (s *NebiusServer) NebiusNoCapacity(platform string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.compute.noCapacity[platform] = true
}

// NebiusHoldBoot keeps instances STARTING, without addresses, while hold is true: for tests of a
// server whose pipelines would otherwise connect to the fake's documentation addresses.
func (s *NebiusServer) NebiusHoldBoot(hold bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.compute.holdBoot = hold
}

// Instances lists the instances alive, by id.
func (s *NebiusServer) Instances() []NebiusInstance {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []NebiusInstance
	for _, i := range s.compute.instances {
		out = append(out, *i)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out
}

// Disks lists the disks alive, by id.
func (s *NebiusServer) Disks() []NebiusDisk {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []NebiusDisk
	for _, d := range s.compute.disks {
		out = append(out, *d)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out
}

// project checks that id is a project of the tenant; call with s.mu held.
func (s *NebiusServer) projectLocked(method, id string) error {
	if id == "" {
		s.misses = append(s.misses, method+": no parent_id")
		return status.Error(codes.InvalidArgument, "parent_id is required")
	}
	for _, p := range s.projects {
		if p.ID == id {
			return nil
		}
	}
	return status.Errorf(codes.PermissionDenied, "permission denied for %s", id)
}

// opLocked records an operation on a resource; done ones carry an OK status.
func (s *NebiusServer) opLocked(resource string, done bool) *commonpb.Operation {
	s.seq++
	op := &commonpb.Operation{Id: fmt.Sprintf("computeoperation-e00fake%06d", s.seq), ResourceId: resource}
	if done {
		op.Status = &rpcstatus.Status{}
	}
	s.compute.ops[op.Id] = op
	return cloneOp(op)
}

func cloneOp(op *commonpb.Operation) *commonpb.Operation {
	out := &commonpb.Operation{Id: op.Id, ResourceId: op.ResourceId}
	if op.Status != nil {
		out.Status = &rpcstatus.Status{Code: op.Status.Code, Message: op.Status.Message}
	}
	return out
}

func (s *NebiusServer) invalid(method, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	s.misses = append(s.misses, method+": "+msg)
	return status.Error(codes.InvalidArgument, msg)
}

type nebiusSubnets struct {
	vpcpb.UnimplementedSubnetServiceServer
	s *NebiusServer
}

func (n nebiusSubnets) List(ctx context.Context, r *vpcpb.ListSubnetsRequest) (*vpcpb.ListSubnetsResponse, error) {
	const m = "/nebius.vpc.v1.SubnetService/List"
	if _, err := n.s.authed(ctx, m); err != nil {
		return nil, err
	}
	n.s.mu.Lock()
	defer n.s.mu.Unlock()
	if err := n.s.projectLocked(m, r.GetParentId()); err != nil {
		return nil, err
	}
	for _, p := range n.s.projects {
		if p.ID == r.GetParentId() {
			return &vpcpb.ListSubnetsResponse{Items: []*vpcpb.Subnet{{Metadata: &commonpb.ResourceMetadata{
				Id: "vpcsubnet-" + p.ID, ParentId: p.ID, Name: "default-subnet-" + p.Region}}}}, nil
		}
	}
	return &vpcpb.ListSubnetsResponse{}, nil
}

type nebiusDisks struct {
	computepb.UnimplementedDiskServiceServer
	s *NebiusServer
}

func (n nebiusDisks) Create(ctx context.Context, r *computepb.CreateDiskRequest) (*commonpb.Operation, error) {
	const m = "/nebius.compute.v1.DiskService/Create"
	if _, err := n.s.authed(ctx, m); err != nil {
		return nil, err
	}
	s := n.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.projectLocked(m, r.GetMetadata().GetParentId()); err != nil {
		return nil, err
	}
	spec := r.GetSpec()
	if spec.GetSizeGibibytes() <= 0 && spec.GetSizeBytes() <= 0 {
		return nil, s.invalid(m, "no size")
	}
	family := spec.GetSourceImageFamily().GetImageFamily()
	if family == "" && spec.GetSourceImageId() == "" {
		return nil, s.invalid(m, "no source image")
	}
	s.seq++
	d := &NebiusDisk{ID: fmt.Sprintf("computedisk-e00fake%06d", s.seq), ProjectID: r.GetMetadata().GetParentId(),
		Name: r.GetMetadata().GetName(), ImageFamily: family, SizeGiB: spec.GetSizeGibibytes(), Labels: r.GetMetadata().GetLabels()}
	s.compute.disks[d.ID] = d
	return s.opLocked(d.ID, false), nil
}

func (n nebiusDisks) Delete(ctx context.Context, r *computepb.DeleteDiskRequest) (*commonpb.Operation, error) {
	const m = "/nebius.compute.v1.DiskService/Delete"
	if _, err := n.s.authed(ctx, m); err != nil {
		return nil, err
	}
	s := n.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.compute.disks[r.GetId()]; !ok {
		return nil, status.Errorf(codes.NotFound, "disk %s not found", r.GetId())
	}
	for _, i := range s.compute.instances {
		if i.BootDiskID == r.GetId() {
			return nil, status.Errorf(codes.FailedPrecondition, "disk %s is attached to instance %s", r.GetId(), i.ID)
		}
	}
	delete(s.compute.disks, r.GetId())
	return s.opLocked(r.GetId(), true), nil
}

type nebiusInstances struct {
	computepb.UnimplementedInstanceServiceServer
	s *NebiusServer
}

func (n nebiusInstances) Create(ctx context.Context, r *computepb.CreateInstanceRequest) (*commonpb.Operation, error) {
	const m = "/nebius.compute.v1.InstanceService/Create"
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
	spec := r.GetSpec()
	platform, preset := spec.GetResources().GetPlatform(), spec.GetResources().GetPreset()
	if platform == "" || preset == "" {
		return nil, s.invalid(m, "resources.platform and resources.preset are required")
	}
	if r.GetMetadata().GetName() == "" {
		return nil, s.invalid(m, "metadata.name is required")
	}
	boot := spec.GetBootDisk()
	disk, ok := s.compute.disks[boot.GetExistingDisk().GetId()]
	if !ok || disk.ProjectID != project {
		return nil, s.invalid(m, "boot_disk.existing_disk %q is not a disk of the project", boot.GetExistingDisk().GetId())
	}
	if boot.GetAttachMode() != computepb.AttachedDiskSpec_READ_WRITE {
		return nil, s.invalid(m, "boot_disk.attach_mode %s, want READ_WRITE", boot.GetAttachMode())
	}
	nis := spec.GetNetworkInterfaces()
	if len(nis) != 1 || nis[0].GetSubnetId() != "vpcsubnet-"+project || nis[0].GetName() == "" || nis[0].GetIpAddress() == nil {
		return nil, s.invalid(m, "want one named network interface on the project's subnet with ip_address")
	}
	if nis[0].GetPublicIpAddress() == nil {
		return nil, s.invalid(m, "no public_ip_address")
	}
	if !strings.HasPrefix(spec.GetCloudInitUserData(), "#cloud-config") {
		return nil, s.invalid(m, "cloud_init_user_data is not #cloud-config")
	}
	if err := s.checkGpuClusterLocked(m, project, platform, preset, spec.GetGpuCluster()); err != nil {
		return nil, err
	}
	if s.compute.noCapacity[platform] {
		return nil, status.Errorf(codes.ResourceExhausted, "not enough resources: %s %s", platform, preset)
	}
	s.seq++
	i := &NebiusInstance{ID: fmt.Sprintf("computeinstance-e00fake%06d", s.seq), ProjectID: project,
		Name: r.GetMetadata().GetName(), Platform: platform, Preset: preset, BootDiskID: disk.ID,
		SubnetID: nis[0].GetSubnetId(), UserData: spec.GetCloudInitUserData(), GpuClusterID: spec.GetGpuCluster().GetId(), Labels: r.GetMetadata().GetLabels(),
		State: "STARTING", n: s.seq%250 + 1}
	s.compute.instances[i.ID] = i
	return s.opLocked(i.ID, false), nil
}

func (n nebiusInstances) Get(ctx context.Context, r *computepb.GetInstanceRequest) (*computepb.Instance, error) {
	const m = "/nebius.compute.v1.InstanceService/Get"
	if _, err := n.s.authed(ctx, m); err != nil {
		return nil, err
	}
	s := n.s
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.compute.instances[r.GetId()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "instance %s not found", r.GetId())
	}
	i.gets++
	out := &computepb.Instance{Metadata: &commonpb.ResourceMetadata{Id: i.ID, ParentId: i.ProjectID, Name: i.Name, Labels: i.Labels},
		Status: &computepb.InstanceStatus{State: computepb.InstanceStatus_STARTING}}
	if i.gets > 1 && !s.compute.holdBoot {
		i.State = "RUNNING"
		out.Status.State = computepb.InstanceStatus_RUNNING
		out.Status.NetworkInterfaces = []*computepb.NetworkInterfaceStatus{{Name: "eth0",
			IpAddress:       &computepb.IPAddressStatus{Address: fmt.Sprintf("10.0.0.%d/32", i.n)},
			PublicIpAddress: &computepb.PublicIPAddressStatus{Address: fmt.Sprintf("203.0.113.%d/32", i.n)}}}
	}
	return out, nil
}

func (n nebiusInstances) Delete(ctx context.Context, r *computepb.DeleteInstanceRequest) (*commonpb.Operation, error) {
	const m = "/nebius.compute.v1.InstanceService/Delete"
	if _, err := n.s.authed(ctx, m); err != nil {
		return nil, err
	}
	s := n.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.compute.instances[r.GetId()]; !ok {
		return nil, status.Errorf(codes.NotFound, "instance %s not found", r.GetId())
	}
	delete(s.compute.instances, r.GetId())
	return s.opLocked(r.GetId(), false), nil
}

type nebiusOperations struct {
	commonpb.UnimplementedOperationServiceServer
	s *NebiusServer
}

func (n nebiusOperations) Get(ctx context.Context, r *commonpb.GetOperationRequest) (*commonpb.Operation, error) {
	const m = "/nebius.common.v1.OperationService/Get"
	if _, err := n.s.authed(ctx, m); err != nil {
		return nil, err
	}
	s := n.s
	s.mu.Lock()
	defer s.mu.Unlock()
	op, ok := s.compute.ops[r.GetId()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "operation %s not found", r.GetId())
	}
	op.Status = &rpcstatus.Status{}
	return cloneOp(op), nil
}
