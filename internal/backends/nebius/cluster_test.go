package nebius_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/fake"
	"github.com/dstackgo/dstack/internal/backends/nebius"
	commonpb "github.com/dstackgo/dstack/internal/backends/nebius/proto/nebius/common/v1"
	computepb "github.com/dstackgo/dstack/internal/backends/nebius/proto/nebius/compute/v1"
	iampb "github.com/dstackgo/dstack/internal/backends/nebius/proto/nebius/iam/v1"
	"github.com/dstackgo/dstack/internal/offers"
)

// gpu8 is an 8-GPU offer of a platform in a region.
func gpu8(platform, gpu, region string) offers.Offer {
	gpus := make([]offers.GPU, 8)
	for i := range gpus {
		gpus[i] = offers.GPU{Name: gpu, MemoryMiB: 80 * 1024, Vendor: "nvidia"}
	}
	return offers.Offer{Backend: "nebius", Region: region, Price: 23.6,
		Instance: offers.InstanceType{Name: platform + " 8gpu-128vcpu-1600gb", Resources: offers.Resources{
			CPUs: 128, MemoryMiB: 1600 * 1024, GPUs: gpus, Disk: offers.Disk{SizeMiB: 200 * 1024}}}}
}

func placement(t *testing.T, c backends.Compute) backends.PlacementGroupCompute {
	t.Helper()
	pc, ok := c.(backends.PlacementGroupCompute)
	if !ok {
		t.Fatal("the nebius compute is not a backends.PlacementGroupCompute")
	}
	return pc
}

// TestGpuClusterLifecycle: a cluster fleet's placement group is a GPU cluster on a fabric of the
// offer's platform and region; instances join it; it cannot be deleted while they are in it, and
// can once they are gone (twice: idempotent).
func TestGpuClusterLifecycle(t *testing.T) {
	srv := fake.UseNebius(t)
	c := newCompute(t, srv.Good)
	pc := placement(t, c)
	o := gpu8("gpu-h100-sxm", "H100", "eu-north1")
	if why := pc.PlacementGroupFit(o, nil); why != "" {
		t.Fatalf("an 8xH100 offer does not fit a new cluster: %s", why)
	}
	pg, err := pc.CreatePlacementGroup(ctx(t), backends.PlacementGroupConfig{ProjectName: "main", Name: "train-1a2b3c",
		Offer: o, Tags: map[string]string{"dstack_project": "main", "dstack_server": "test"}})
	if err != nil {
		t.Fatalf("CreatePlacementGroup = %v", err)
	}
	var cd nebius.ClusterData
	if err := json.Unmarshal([]byte(pg.BackendData), &cd); err != nil {
		t.Fatal(err)
	}
	// Without `fabrics`, the first fabric of the platform and region in nebius.Fabrics by name.
	if pg.Backend != "nebius" || pg.Region != "eu-north1" || pg.ID == "" || cd.Fabric != "fabric-2" ||
		cd.Platform != "gpu-h100-sxm" || cd.ProjectID != "project-e00fakeeunorth1default" {
		t.Fatalf("placement group %+v, backend data %+v", pg, cd)
	}
	clusters := srv.GpuClusters()
	if len(clusters) != 1 || clusters[0].ID != pg.ID || clusters[0].Fabric != "fabric-2" ||
		!strings.HasPrefix(clusters[0].Name, "dstack-main-train-1a2b3c") || clusters[0].Labels["dstack_project"] != "main" {
		t.Fatalf("clusters %+v", clusters)
	}
	if why := pc.PlacementGroupFit(gpu8("gpu-h200-sxm", "H200", "eu-north1"), pg); !strings.Contains(why, "gpu-h100-sxm") {
		t.Errorf("an H200 offer fits the H100 cluster: %q", why)
	}

	var pds []*backends.ProvisioningData
	for _, name := range []string{"train-0-x", "train-1-x"} {
		cfg := instanceConfig(name)
		cfg.PlacementGroup = pg
		pd, err := c.CreateInstance(ctx(t), o, cfg)
		if err != nil {
			t.Fatalf("CreateInstance in the cluster = %v", err)
		}
		pds = append(pds, pd)
	}
	if in := srv.GpuClusters()[0].Instances; len(in) != 2 || in[0] != pds[0].InstanceID || in[1] != pds[1].InstanceID {
		t.Fatalf("cluster instances %v, want %s and %s", in, pds[0].InstanceID, pds[1].InstanceID)
	}

	// Nebius refuses to delete a cluster with instances: they go first.
	err = pc.DeletePlacementGroup(ctx(t), *pg)
	if err == nil || !strings.Contains(err.Error(), "FailedPrecondition") {
		t.Fatalf("DeletePlacementGroup with instances in the cluster = %v, want a FailedPrecondition refusal", err)
	}
	if n := len(srv.GpuClusters()); n != 1 {
		t.Fatalf("%d clusters after the refused deletion", n)
	}
	for _, pd := range pds {
		if err := c.TerminateInstance(ctx(t), pd.InstanceID, pd.Region, pd.BackendData); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2; i++ {
		if err := pc.DeletePlacementGroup(ctx(t), *pg); err != nil {
			t.Fatalf("DeletePlacementGroup #%d = %v", i+1, err)
		}
	}
	if n, i, d := len(srv.GpuClusters()), len(srv.Instances()), len(srv.Disks()); n != 0 || i != 0 || d != 0 {
		t.Errorf("left alive: %d clusters, %d instances, %d disks", n, i, d)
	}
	noMisses(t, srv)
}

// TestGpuClusterFabrics: `fabrics` narrows and orders the choice; offers that cannot join an
// InfiniBand cluster are refused with the reason.
func TestGpuClusterFabrics(t *testing.T) {
	srv := fake.UseNebius(t)
	c := newCompute(t, with(srv.Good, "fabrics", []any{"fabric-5", "fabric-7", "fabric-3"}))
	pc := placement(t, c)
	pg, err := pc.CreatePlacementGroup(ctx(t), backends.PlacementGroupConfig{ProjectName: "main", Name: "f-1",
		Offer: gpu8("gpu-h100-sxm", "H100", "eu-north1")})
	if err != nil {
		t.Fatal(err)
	}
	if cl := srv.GpuClusters(); len(cl) != 1 || cl[0].ID != pg.ID || cl[0].Fabric != "fabric-3" {
		t.Fatalf("clusters %+v, want one on fabric-3 (the configured H100 fabric of eu-north1)", cl)
	}
	pg, err = pc.CreatePlacementGroup(ctx(t), backends.PlacementGroupConfig{ProjectName: "main", Name: "f-2",
		Offer: gpu8("gpu-h200-sxm", "H200", "eu-west1")})
	if err != nil {
		t.Fatal(err)
	}
	if cl := srv.GpuClusters(); len(cl) != 2 || cl[1].ID != pg.ID || cl[1].Fabric != "fabric-5" || cl[1].ProjectID != "project-e01fakeeuwest1only0000" {
		t.Fatalf("clusters %+v, want the second on fabric-5 in eu-west1's project", cl)
	}

	one := h100Offer() // 1 GPU
	a100 := gpu8("gpu-a100-sxm", "A100", "eu-north1")
	b200 := gpu8("gpu-b200-sxm", "B200", "us-central1") // us-central1-b is not among the configured fabrics
	for _, tc := range []struct {
		o    offers.Offer
		want string
	}{{one, "only 8-GPU"}, {a100, "only 8-GPU"}, {b200, "no InfiniBand fabric for gpu-b200-sxm in us-central1 among the backend's fabrics"}} {
		if why := pc.PlacementGroupFit(tc.o, nil); !strings.Contains(why, tc.want) {
			t.Errorf("PlacementGroupFit(%s in %s) = %q, want %q", tc.o.Instance.Name, tc.o.Region, why, tc.want)
		}
		if _, err := pc.CreatePlacementGroup(ctx(t), backends.PlacementGroupConfig{ProjectName: "main", Name: "no", Offer: tc.o}); err == nil {
			t.Errorf("CreatePlacementGroup(%s in %s) made a cluster", tc.o.Instance.Name, tc.o.Region)
		}
	}
	if n := len(srv.GpuClusters()); n != 2 {
		t.Errorf("%d clusters, want the 2 made", n)
	}
	// Without `fabrics`, any fabric of the table serves.
	if why := placement(t, newCompute(t, srv.Good)).PlacementGroupFit(b200, nil); why != "" {
		t.Errorf("8xB200 in us-central1 without `fabrics`: %q", why)
	}
	noMisses(t, srv)
}

// TestFakeGpuClusterChecks drives the fake with the real gRPC client past the backend's own checks:
// a fabric of another region, an unknown fabric, an instance in a cluster of another region, a
// preset without 8 GPUs, and an instance naming no cluster that exists are refused.
func TestFakeGpuClusterChecks(t *testing.T) {
	srv := fake.UseNebius(t)
	conn, err := grpc.NewClient(srv.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithUserAgent(backends.UserAgent))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	key, err := nebius.ParsePrivateKey(srv.Good.String("creds", "private_key_content"))
	if err != nil {
		t.Fatal(err)
	}
	jwt, err := nebius.SignJWT(key, fake.NebiusServiceAccountID, fake.NebiusPublicKeyID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := iampb.NewTokenExchangeServiceClient(conn).Exchange(ctx(t), &iampb.ExchangeTokenRequest{
		GrantType: nebius.GrantTypeTokenExchange, SubjectToken: jwt, SubjectTokenType: nebius.TokenTypeJWT})
	if err != nil {
		t.Fatal(err)
	}
	authed := metadata.AppendToOutgoingContext(ctx(t), "authorization", "Bearer "+tok.GetAccessToken())
	clusters := computepb.NewGpuClusterServiceClient(conn)
	const north, west = "project-e00fakeeunorth1default", "project-e01fakeeuwest1only0000"
	create := func(project, fabric string) (*commonpb.Operation, error) {
		return clusters.Create(authed, &computepb.CreateGpuClusterRequest{
			Metadata: &commonpb.ResourceMetadata{ParentId: project, Name: "c"}, Spec: &computepb.GpuClusterSpec{InfinibandFabric: fabric}})
	}
	for _, tc := range []struct{ project, fabric string }{{west, "fabric-2"}, {north, "fabric-5"}, {north, "fabric-99"}, {north, ""}} {
		if _, err := create(tc.project, tc.fabric); status.Code(err) != codes.InvalidArgument {
			t.Errorf("cluster on %q in %s = %v, want InvalidArgument", tc.fabric, tc.project, err)
		}
	}
	op, err := create(west, "fabric-5")
	if err != nil {
		t.Fatal(err)
	}
	got, err := clusters.Get(authed, &computepb.GetGpuClusterRequest{Id: op.GetResourceId()})
	if err != nil || got.GetSpec().GetInfinibandFabric() != "fabric-5" || got.GetMetadata().GetParentId() != west {
		t.Fatalf("Get = %v, %v", got, err)
	}

	// Instances naming the cluster, each with a boot disk of its project (the fake checks it first).
	disks, instances := computepb.NewDiskServiceClient(conn), computepb.NewInstanceServiceClient(conn)
	instance := func(project, platform, preset, cluster string) error {
		dop, err := disks.Create(authed, &computepb.CreateDiskRequest{Metadata: &commonpb.ResourceMetadata{ParentId: project, Name: "d"},
			Spec: &computepb.DiskSpec{Size: &computepb.DiskSpec_SizeGibibytes{SizeGibibytes: 100},
				Source: &computepb.DiskSpec_SourceImageFamily{SourceImageFamily: &computepb.SourceImageFamily{ImageFamily: "ubuntu22.04-cuda12"}}}})
		if err != nil {
			return err
		}
		_, err = instances.Create(authed, &computepb.CreateInstanceRequest{
			Metadata: &commonpb.ResourceMetadata{ParentId: project, Name: "i"},
			Spec: &computepb.InstanceSpec{
				Resources:  &computepb.ResourcesSpec{Platform: platform, Size: &computepb.ResourcesSpec_Preset{Preset: preset}},
				GpuCluster: &computepb.InstanceGpuClusterSpec{Id: cluster},
				BootDisk: &computepb.AttachedDiskSpec{AttachMode: computepb.AttachedDiskSpec_READ_WRITE,
					Type: &computepb.AttachedDiskSpec_ExistingDisk{ExistingDisk: &computepb.ExistingDisk{Id: dop.GetResourceId()}}},
				NetworkInterfaces: []*computepb.NetworkInterfaceSpec{{SubnetId: "vpcsubnet-" + project, Name: "eth0",
					IpAddress: &computepb.IPAddress{}, PublicIpAddress: &computepb.PublicIPAddress{}}},
				CloudInitUserData: "#cloud-config\n",
			}})
		return err
	}
	id := op.GetResourceId()
	for _, tc := range []struct{ project, platform, preset, cluster string }{
		{north, "gpu-h200-sxm", "8gpu-128vcpu-1600gb", id},       // the cluster is in eu-west1
		{west, "gpu-h100-sxm", "8gpu-128vcpu-1600gb", id},        // fabric-5 is an H200 fabric
		{west, "gpu-h200-sxm", "1gpu-16vcpu-200gb", id},          // one GPU
		{west, "gpu-h200-sxm", "8gpu-128vcpu-1600gb", "missing"}, // no such cluster
	} {
		if err := instance(tc.project, tc.platform, tc.preset, tc.cluster); status.Code(err) != codes.InvalidArgument {
			t.Errorf("instance %s %s in %s, cluster %s = %v, want InvalidArgument", tc.platform, tc.preset, tc.project, tc.cluster, err)
		}
	}
	if err := instance(west, "gpu-h200-sxm", "8gpu-128vcpu-1600gb", id); err != nil {
		t.Fatalf("an 8xH200 instance in the eu-west1 cluster = %v", err)
	}
	if _, err := clusters.Delete(authed, &computepb.DeleteGpuClusterRequest{Id: id}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("Delete of a cluster with an instance = %v, want FailedPrecondition", err)
	}
	if _, err := clusters.Delete(authed, &computepb.DeleteGpuClusterRequest{Id: "computegpucluster-e00nothing"}); status.Code(err) != codes.NotFound {
		t.Errorf("Delete of an unknown cluster = %v, want NotFound", err)
	}
}
