package nebius

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/bootstrap"
	commonpb "github.com/dstackgo/dstack/internal/backends/nebius/proto/nebius/common/v1"
	computepb "github.com/dstackgo/dstack/internal/backends/nebius/proto/nebius/compute/v1"
	vpcpb "github.com/dstackgo/dstack/internal/backends/nebius/proto/nebius/vpc/v1"
	"github.com/dstackgo/dstack/internal/offers"
)

// Machines on Nebius: CreateInstance resolves the offer's region to its project (RegionProjects,
// the check's rule), finds the project's default subnet (nebius.vpc.v1.SubnetService/List: the
// subnet named default-subnet…, else the only one), creates the boot disk
// (nebius.compute.v1.DiskService/Create, image family ubuntu22.04-cuda12 or ubuntu22.04-driverless
// without GPUs) and waits for its operation (nebius.common.v1.OperationService/Get at compute),
// then creates the instance (InstanceService/Create: platform and preset from the offer's
// instance name "<platform> <preset>", the disk attached read-write as the boot disk, one network
// interface on the subnet with a public address, bootstrap.CloudConfig as cloud_init_user_data,
// and the GPU cluster of the config's placement group as gpu_cluster: see cluster.go).
// Every resource is named dstack-<project>-<instance> and labelled with the config's tags
// (sanitized to Nebius's label syntax). backend_data records the project and the boot disk id.
//
// Errors: ResourceExhausted or a message with "not enough resources" is a
// *backends.NoCapacityError; Unauthenticated and PermissionDenied a *backends.CredentialsError;
// NotFound on delete is success.

// Username is the SSH user of Nebius's Ubuntu images.
const Username = "ubuntu"

const (
	serviceCompute = "compute"
	serviceVPC     = "vpc"
	// DefaultSubnetPrefix starts the name of a project's default subnet.
	DefaultSubnetPrefix = "default-subnet"
	maxName             = 63
	defaultDiskGiB      = 100
	opWait              = 5 * time.Minute
)

// BackendData is what CreateInstance keeps for TerminateInstance.
type BackendData struct {
	ProjectID  string `json:"project_id"`
	BootDiskID string `json:"boot_disk_id,omitempty"`
}

type compute struct {
	cfg backends.Config
	key *rsa.PrivateKey

	mu       sync.Mutex
	c        *client
	dialed   time.Time
	projects map[string]string
}

// NewCompute returns Nebius's machine operations for a config.
func NewCompute(cfg backends.Config) (backends.Compute, error) {
	key, err := ParsePrivateKey(cfg.String("creds", "private_key_content"))
	if err != nil {
		return nil, &backends.CredentialsError{Msg: err.Error(), Fields: credsField}
	}
	return &compute{cfg: cfg, key: key}, nil
}

// client returns a client with a fresh enough access token (tokens live 12 hours; this renews
// after one).
func (c *compute) client(ctx context.Context) (*client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c != nil && time.Since(c.dialed) < time.Hour {
		return c.c, nil
	}
	cl, err := dial(ctx, c.cfg, c.key)
	if err != nil {
		return nil, err
	}
	if c.c != nil {
		c.c.close()
	}
	c.c, c.dialed = cl, time.Now()
	return cl, nil
}

func (c *compute) project(ctx context.Context, cl *client, region string) (string, error) {
	c.mu.Lock()
	m := c.projects
	c.mu.Unlock()
	if m == nil {
		all, err := cl.listProjects(ctx)
		if err != nil {
			return "", err
		}
		configured, has := c.cfg.Values["projects"]
		if m, err = RegionProjects(all, c.cfg.Strings("regions"), c.cfg.Strings("projects"), has && configured != nil); err != nil {
			return "", err
		}
		c.mu.Lock()
		c.projects = m
		c.mu.Unlock()
	}
	p, ok := m[region]
	if !ok {
		return "", fmt.Errorf("nebius: no project for region %s", region)
	}
	return p, nil
}

// computeError maps a failed compute call.
func computeError(ctx context.Context, addr, what string, err error) error {
	st := status.Convert(err)
	if st.Code() == codes.ResourceExhausted || strings.Contains(strings.ToLower(st.Message()), "not enough resources") {
		return &backends.NoCapacityError{Msg: "Nebius: " + st.Message()}
	}
	return callError(ctx, addr, what, err, false)
}

// errGone is an operation that failed with NotFound.
var errGone = errors.New("resource not found")

func isNotFound(err error) bool { return status.Code(err) == codes.NotFound }

// wait polls an operation until it is done and returns its resource id.
func wait(ctx context.Context, cl *client, addr string, op *commonpb.Operation, what string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, opWait)
	defer cancel()
	cc, _, err := cl.conn(serviceCompute)
	if err != nil {
		return "", err
	}
	ops := commonpb.NewOperationServiceClient(cc)
	for delay := 200 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		if st := op.GetStatus(); st != nil {
			switch codes.Code(st.GetCode()) {
			case codes.OK:
			case codes.NotFound:
				return "", fmt.Errorf("nebius: %s: %w: %s", what, errGone, st.GetMessage())
			default:
				return "", computeError(ctx, addr, what, status.ErrorProto(st))
			}
			return op.GetResourceId(), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("nebius: %s: operation %s: %w", what, op.GetId(), ctx.Err())
		case <-time.After(delay):
		}
		if op, err = ops.Get(cl.authed(ctx), &commonpb.GetOperationRequest{Id: op.GetId()}); err != nil {
			return "", computeError(ctx, addr, what, err)
		}
	}
}

var labelChars = regexp.MustCompile(`[^a-z0-9_-]+`)

// Labels turns tags into Nebius labels: lower case letters, digits, - and _, at most 63 characters.
func Labels(tags map[string]string) map[string]string {
	out := map[string]string{}
	clean := func(s string) string {
		s = labelChars.ReplaceAllString(strings.ToLower(s), "-")
		if len(s) > 63 {
			s = s[:63]
		}
		return s
	}
	for k, v := range tags {
		if k = clean(k); k != "" {
			out[k] = clean(v)
		}
	}
	return out
}

// PlatformPreset splits an offer's instance name "<platform> <preset>", or "<platform>_<preset>" as
// gpuhunt's nebius catalog writes it (gpu-h100-sxm_8gpu-128vcpu-1600gb: platforms and presets have
// dashes, never underscores).
func PlatformPreset(name string) (string, string, error) {
	name = strings.TrimSpace(name)
	platform, preset, ok := strings.Cut(name, " ")
	if !ok {
		platform, preset, ok = strings.Cut(name, "_")
	}
	if !ok || platform == "" || strings.TrimSpace(preset) == "" {
		return "", "", fmt.Errorf("nebius: instance name %q is not \"<platform> <preset>\"", name)
	}
	return platform, strings.TrimSpace(preset), nil
}

func (c *compute) defaultSubnet(ctx context.Context, cl *client, project string) (string, error) {
	cc, addr, err := cl.conn(serviceVPC)
	if err != nil {
		return "", err
	}
	req := &vpcpb.ListSubnetsRequest{ParentId: project, PageSize: 999}
	var all []*vpcpb.Subnet
	for page := 0; ; page++ {
		resp, err := vpcpb.NewSubnetServiceClient(cc).List(cl.authed(ctx), req)
		if err != nil {
			return "", callError(ctx, addr, "listing subnets", err, false)
		}
		all = append(all, resp.GetItems()...)
		if resp.GetNextPageToken() == "" || page >= 100 {
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}
	for _, s := range all {
		if strings.HasPrefix(s.GetMetadata().GetName(), DefaultSubnetPrefix) {
			return s.GetMetadata().GetId(), nil
		}
	}
	if len(all) == 1 {
		return all[0].GetMetadata().GetId(), nil
	}
	return "", fmt.Errorf("nebius: project %s has no subnet named %s…", project, DefaultSubnetPrefix)
}

func (c *compute) CreateInstance(ctx context.Context, offer offers.Offer, cfg backends.InstanceConfig) (*backends.ProvisioningData, error) {
	platform, preset, err := PlatformPreset(offer.Instance.Name)
	if err != nil {
		return nil, err
	}
	cluster, err := gpuCluster(cfg.PlacementGroup, offer.Region)
	if err != nil {
		return nil, err
	}
	cl, err := c.client(ctx)
	if err != nil {
		return nil, err
	}
	project, err := c.project(ctx, cl, offer.Region)
	if err != nil {
		return nil, err
	}
	subnet, err := c.defaultSubnet(ctx, cl, project)
	if err != nil {
		return nil, err
	}
	cc, addr, err := cl.conn(serviceCompute)
	if err != nil {
		return nil, err
	}
	name := bootstrap.ResourceName(cfg.ProjectName, cfg.InstanceName, maxName)
	labels := Labels(cfg.Tags)
	family := "ubuntu22.04-cuda12"
	if len(offer.Instance.Resources.GPUs) == 0 {
		family = "ubuntu22.04-driverless"
	}
	gib := int64(defaultDiskGiB)
	if mib := offer.Instance.Resources.Disk.SizeMiB; mib > 0 {
		gib = int64((mib + 1023) / 1024)
	}
	diskName := bootstrap.ResourceName(cfg.ProjectName, cfg.InstanceName+"-boot", maxName)
	disks := computepb.NewDiskServiceClient(cc)
	op, err := disks.Create(cl.authed(ctx), &computepb.CreateDiskRequest{
		Metadata: &commonpb.ResourceMetadata{ParentId: project, Name: diskName, Labels: labels},
		Spec: &computepb.DiskSpec{
			Size:   &computepb.DiskSpec_SizeGibibytes{SizeGibibytes: gib},
			Type:   computepb.DiskSpec_NETWORK_SSD,
			Source: &computepb.DiskSpec_SourceImageFamily{SourceImageFamily: &computepb.SourceImageFamily{ImageFamily: family}},
		},
	})
	if err != nil {
		return nil, computeError(ctx, addr, "creating the boot disk", err)
	}
	diskID, err := wait(ctx, cl, addr, op, "creating the boot disk")
	if err == nil && diskID == "" {
		err = fmt.Errorf("nebius: creating the boot disk: operation %s has no resource id", op.GetId())
	}
	if err != nil {
		if id := op.GetResourceId(); id != "" {
			c.deleteDisk(context.WithoutCancel(ctx), cl, id)
		}
		return nil, err
	}
	op, err = computepb.NewInstanceServiceClient(cc).Create(cl.authed(ctx), &computepb.CreateInstanceRequest{
		Metadata: &commonpb.ResourceMetadata{ParentId: project, Name: name, Labels: labels},
		Spec: &computepb.InstanceSpec{
			Resources:  &computepb.ResourcesSpec{Platform: platform, Size: &computepb.ResourcesSpec_Preset{Preset: preset}},
			GpuCluster: cluster,
			BootDisk: &computepb.AttachedDiskSpec{AttachMode: computepb.AttachedDiskSpec_READ_WRITE,
				Type: &computepb.AttachedDiskSpec_ExistingDisk{ExistingDisk: &computepb.ExistingDisk{Id: diskID}}},
			NetworkInterfaces: []*computepb.NetworkInterfaceSpec{{SubnetId: subnet, Name: "dstack-default-interface",
				IpAddress: &computepb.IPAddress{}, PublicIpAddress: &computepb.PublicIPAddress{}}},
			CloudInitUserData: bootstrap.CloudConfig(cfg, Username),
		},
	})
	if err == nil && op.GetResourceId() == "" {
		err = status.Errorf(codes.Internal, "operation %s has no resource id", op.GetId())
	}
	if err == nil && op.GetStatus() != nil && codes.Code(op.GetStatus().GetCode()) != codes.OK {
		err = status.ErrorProto(op.GetStatus())
	}
	if err != nil {
		if op != nil && op.GetResourceId() != "" {
			_ = c.deleteInstance(context.WithoutCancel(ctx), cl, op.GetResourceId())
		}
		c.deleteDisk(context.WithoutCancel(ctx), cl, diskID)
		return nil, computeError(ctx, addr, "creating the instance", err)
	}
	bd, _ := json.Marshal(BackendData{ProjectID: project, BootDiskID: diskID})
	return &backends.ProvisioningData{
		Backend:         "nebius",
		InstanceType:    offer.Instance,
		InstanceID:      op.GetResourceId(),
		PublicIPEnabled: true,
		Region:          offer.Region,
		Price:           offer.Price,
		Username:        Username,
		Dockerized:      true,
		BackendData:     string(bd),
	}, nil
}

func (c *compute) UpdateProvisioningData(ctx context.Context, pd *backends.ProvisioningData) error {
	cl, err := c.client(ctx)
	if err != nil {
		return err
	}
	cc, addr, err := cl.conn(serviceCompute)
	if err != nil {
		return err
	}
	inst, err := computepb.NewInstanceServiceClient(cc).Get(cl.authed(ctx), &computepb.GetInstanceRequest{Id: pd.InstanceID})
	if isNotFound(err) {
		return &backends.ProvisioningError{Msg: "Nebius instance " + pd.InstanceID + " no longer exists"}
	}
	if err != nil {
		return computeError(ctx, addr, "getting the instance", err)
	}
	pd.Username, pd.Dockerized = Username, true
	switch st := inst.GetStatus().GetState(); st {
	case computepb.InstanceStatus_ERROR, computepb.InstanceStatus_DELETING, computepb.InstanceStatus_STOPPED, computepb.InstanceStatus_STOPPING:
		return &backends.ProvisioningError{Msg: fmt.Sprintf("Nebius instance %s is %s", pd.InstanceID, st)}
	case computepb.InstanceStatus_RUNNING:
	default:
		return nil
	}
	for _, ni := range inst.GetStatus().GetNetworkInterfaces() {
		if ip := stripCIDR(ni.GetPublicIpAddress().GetAddress()); ip != "" && pd.Hostname == nil {
			pd.Hostname = &ip
			port := 22
			pd.SSHPort = &port
		}
		if ip := stripCIDR(ni.GetIpAddress().GetAddress()); ip != "" && pd.InternalIP == nil {
			pd.InternalIP = &ip
		}
	}
	return nil
}

func stripCIDR(s string) string {
	ip, _, _ := strings.Cut(s, "/")
	return ip
}

func (c *compute) deleteInstance(ctx context.Context, cl *client, id string) error {
	cc, addr, err := cl.conn(serviceCompute)
	if err != nil {
		return err
	}
	op, err := computepb.NewInstanceServiceClient(cc).Delete(cl.authed(ctx), &computepb.DeleteInstanceRequest{Id: id})
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return computeError(ctx, addr, "deleting the instance", err)
	}
	_, err = wait(ctx, cl, addr, op, "deleting the instance")
	if errors.Is(err, errGone) {
		return nil
	}
	return err
}

// deleteDisk deletes a boot disk, best effort.
func (c *compute) deleteDisk(ctx context.Context, cl *client, id string) {
	_ = c.deleteDiskErr(ctx, cl, id)
}

func (c *compute) deleteDiskErr(ctx context.Context, cl *client, id string) error {
	cc, addr, err := cl.conn(serviceCompute)
	if err != nil {
		return err
	}
	_, err = computepb.NewDiskServiceClient(cc).Delete(cl.authed(ctx), &computepb.DeleteDiskRequest{Id: id})
	if err == nil || isNotFound(err) {
		return nil
	}
	return computeError(ctx, addr, "deleting the boot disk", err)
}

// TerminateInstance deletes the instance, waits for that, then deletes its boot disk; what is
// already gone is success.
func (c *compute) TerminateInstance(ctx context.Context, instanceID, region, backendData string) error {
	cl, err := c.client(ctx)
	if err != nil {
		return err
	}
	if err := c.deleteInstance(ctx, cl, instanceID); err != nil {
		return err
	}
	var bd BackendData
	if backendData != "" {
		if err := json.Unmarshal([]byte(backendData), &bd); err != nil {
			return fmt.Errorf("nebius: backend_data: %w", err)
		}
	}
	if bd.BootDiskID == "" {
		return nil
	}
	return c.deleteDiskErr(ctx, cl, bd.BootDiskID)
}
