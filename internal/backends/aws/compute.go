package aws

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/bootstrap"
	"github.com/dstackgo/dstack/internal/offers"
)

// Machines on EC2 (spec §5):
//
//   - CreateInstance finds the region's subnets (network.go), the AMI (DescribeImages: dstack's
//     dstack-<version> / dstack-cuda-<version> owned by dstack's account, or os_images' cpu or
//     nvidia image by name and owner; the newest available one), and the project's security group
//     dstack-<project> in the VPC (DescribeSecurityGroups; CreateSecurityGroup and
//     AuthorizeSecurityGroupIngress — SSH from anywhere, all traffic within the group — when it is
//     missing). Then RunInstances: one instance of the offer's type from the AMI, one network
//     interface in the subnet with the group and a public IP per public_ips, the root volume sized
//     to the offer's disk, user data = bootstrap.CloudConfig (authorizes the SSH keys, installs and
//     starts dstack-shim; no key pair is needed), spot through InstanceMarketOptions when the offer
//     is spot, iam_instance_profile, and TagSpecifications on the instance and its volumes: the
//     config's tags, then Name and InstanceConfig.Tags (dstack_project, dstack_server,
//     dstack_instance) over them. A ClientToken digesting the request (which names the instance)
//     makes a retried launch idempotent. Capacity refusals (InsufficientInstanceCapacity, Unsupported,
//     InstanceLimitExceeded, spot capacity...) move on to the next zone's subnet; when every zone
//     refuses, the result is a *backends.NoCapacityError.
//   - UpdateProvisioningData is DescribeInstances: running instances get the public IP (or the
//     private one without public_ips) as hostname, port 22; pending ones (and ids EC2 does not
//     list yet, which its eventual consistency allows right after a launch) nothing yet; stopped,
//     shutting-down and terminated ones a *backends.ProvisioningError.
//   - TerminateInstance is TerminateInstances; InvalidInstanceID.NotFound is success.
//   - ListInstances (backends.InstanceLister) lists, in every configured region, the instances
//     that are not terminated and carry a dstack_server tag.
//
// Throttling and 5xx are retried by the SDK (4 attempts, backoff up to 5 s); credential refusals
// are a *backends.CredentialsError.

// Username is the SSH user of dstack's AMIs.
const Username = "ubuntu"

// dstackAMIOwner is the AWS account that publishes dstack's AMIs.
const dstackAMIOwner = "142421590066"

// ImageVersion is the version of dstack's AMIs: dstack-<ImageVersion>, dstack-cuda-<ImageVersion>.
const ImageVersion = "0.7"

// Cache lifetimes of what CreateInstance looks up.
const (
	networkTTL = 10 * time.Minute
	imageTTL   = time.Hour
)

type compute struct {
	cfg backends.Config
	nc  netConfig

	sess backends.Lazy[*session]

	mu       sync.Mutex
	networks map[string]cached[*network]
	images   map[string]cached[image]
	groups   map[string]string // region/vpc/project -> group id
}

type cached[T any] struct {
	v  T
	at time.Time
}

type image struct{ id, user, rootDevice string }

func newCompute(cfg backends.Config) (backends.Compute, error) {
	return &compute{cfg: cfg, nc: netConfigOf(cfg), networks: map[string]cached[*network]{},
		images: map[string]cached[image]{}, groups: map[string]string{}}, nil
}

func (c *compute) session(ctx context.Context) (*session, error) {
	return c.sess.Get(func() (*session, error) { return newSession(ctx, c.cfg, true) })
}

func (c *compute) network(ctx context.Context, s *session, region string) (*network, error) {
	c.mu.Lock()
	n, ok := c.networks[region]
	c.mu.Unlock()
	if ok && time.Since(n.at) < networkTTL {
		return n.v, nil
	}
	net, err := resolveNetwork(ctx, s.ec2Client(region), region, c.nc)
	if err != nil {
		var ce *backends.CredentialsError
		if errors.As(err, &ce) && ce.Fields[0][0] != "creds" {
			// A config problem: no machine can start in this region.
			return nil, &backends.ProvisioningError{Msg: "AWS " + region + ": " + ce.Msg}
		}
		return nil, s.mapError(region, err)
	}
	c.mu.Lock()
	c.networks[region] = cached[*network]{net, time.Now()}
	c.mu.Unlock()
	return net, nil
}

// imageFor finds the AMI for an offer: nvidia for offers with GPUs, cpu otherwise.
func (c *compute) imageFor(ctx context.Context, s *session, region string, gpu bool) (image, error) {
	category := map[bool]string{false: "cpu", true: "nvidia"}[gpu]
	key := region + "/" + category
	c.mu.Lock()
	im, ok := c.images[key]
	c.mu.Unlock()
	if ok && time.Since(im.at) < imageTTL {
		return im.v, nil
	}
	name, owner, user := "dstack-"+ImageVersion, dstackAMIOwner, Username
	if gpu {
		name = "dstack-cuda-" + ImageVersion
	}
	if custom, ok := c.cfg.Values["os_images"].(map[string]any); ok {
		img, _ := custom[category].(map[string]any)
		if img == nil {
			return image{}, &backends.ProvisioningError{Msg: "os_images has no " + category + " image, so " + category + " instances cannot start"}
		}
		name, user = fmt.Sprint(img["name"]), fmt.Sprint(img["user"])
		owner = "self"
		if o, ok := img["owner"]; ok && o != nil {
			owner = fmt.Sprint(o)
		}
	}
	out, err := s.ec2Client(region).DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{owner},
		Filters: []types.Filter{{Name: aws.String("name"), Values: []string{name}}, {Name: aws.String("state"), Values: []string{"available"}}}})
	if err != nil {
		return image{}, s.mapError(region, err)
	}
	imgs := out.Images
	sort.Slice(imgs, func(i, j int) bool { return aws.ToString(imgs[i].CreationDate) > aws.ToString(imgs[j].CreationDate) })
	for _, i := range imgs {
		if i.State != types.ImageStateAvailable {
			continue
		}
		found := image{id: aws.ToString(i.ImageId), user: user, rootDevice: aws.ToString(i.RootDeviceName)}
		if found.rootDevice == "" {
			found.rootDevice = "/dev/sda1"
		}
		c.mu.Lock()
		c.images[key] = cached[image]{found, time.Now()}
		c.mu.Unlock()
		return found, nil
	}
	return image{}, &backends.ProvisioningError{Msg: fmt.Sprintf("AWS %s: no available AMI named %q owned by %s", region, name, owner)}
}

// SecurityGroupName is the project's security group.
func SecurityGroupName(project string) string { return "dstack-" + project }

// securityGroup finds or creates the project's group in a VPC: SSH from anywhere, all traffic
// within the group.
func (c *compute) securityGroup(ctx context.Context, s *session, region, vpcID string, cfg backends.InstanceConfig) (string, error) {
	return c.ensureGroup(ctx, s, region, vpcID, groupSpec{
		name: SecurityGroupName(cfg.ProjectName),
		desc: "dstack instances of project " + cfg.ProjectName,
		tags: groupTags(cfg.ProjectName, cfg.Tags),
		ingress: func(id string) []types.IpPermission {
			return []types.IpPermission{tcpFromAnywhere(22),
				{IpProtocol: aws.String("-1"), UserIdGroupPairs: []types.UserIdGroupPair{{GroupId: aws.String(id)}}}}
		},
	})
}

// groupSpec is a security group dstack keeps per project and VPC, and the ingress rules it gets
// when created (given its id).
type groupSpec struct {
	name, desc string
	tags       map[string]string
	ingress    func(id string) []types.IpPermission
}

// groupTags are the tags of a project's group: shared by the project's machines, it carries only
// the project and the server.
func groupTags(project string, tags map[string]string) map[string]string {
	out := map[string]string{"dstack_project": project}
	if v := tags["dstack_server"]; v != "" {
		out["dstack_server"] = v
	}
	return out
}

func tcpFromAnywhere(port int32) types.IpPermission {
	return types.IpPermission{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(port), ToPort: aws.Int32(port),
		IpRanges: []types.IpRange{{CidrIp: aws.String("0.0.0.0/0")}}}
}

// ensureGroup finds or creates a group in a VPC (DescribeSecurityGroups, then CreateSecurityGroup
// and AuthorizeSecurityGroupIngress), cached by region, VPC and name.
func (c *compute) ensureGroup(ctx context.Context, s *session, region, vpcID string, g groupSpec) (string, error) {
	key := region + "/" + vpcID + "/" + g.name
	c.mu.Lock()
	id := c.groups[key]
	c.mu.Unlock()
	if id != "" {
		return id, nil
	}
	client := s.ec2Client(region)
	out, err := client.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: []types.Filter{
		{Name: aws.String("group-name"), Values: []string{g.name}}, {Name: aws.String("vpc-id"), Values: []string{vpcID}}}})
	if err != nil {
		return "", s.mapError(region, err)
	}
	if len(out.SecurityGroups) > 0 {
		id = aws.ToString(out.SecurityGroups[0].GroupId)
	} else {
		created, err := client.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String(g.name),
			Description: aws.String(g.desc), VpcId: aws.String(vpcID),
			TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSecurityGroup, Tags: ec2Tags(g.tags)}}})
		if errorCode(err) == "InvalidGroup.Duplicate" {
			return c.ensureGroup(ctx, s, region, vpcID, g) // created meanwhile by a concurrent launch
		}
		if err != nil {
			return "", s.mapError(region, err)
		}
		id = aws.ToString(created.GroupId)
		_, err = client.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String(id),
			IpPermissions: g.ingress(id)})
		if err != nil && errorCode(err) != "InvalidPermission.Duplicate" {
			return "", s.mapError(region, err)
		}
	}
	c.mu.Lock()
	c.groups[key] = id
	c.mu.Unlock()
	return id, nil
}

func ec2Tags(m map[string]string) []types.Tag {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]types.Tag, 0, len(keys))
	for _, k := range keys {
		out = append(out, types.Tag{Key: aws.String(k), Value: aws.String(m[k])})
	}
	return out
}

// instanceTags are the tags of an instance and its volumes: the config's, then dstack's over them.
func (c *compute) instanceTags(cfg backends.InstanceConfig) map[string]string {
	tags := backends.StringMap(c.cfg.Values["tags"])
	tags["Name"] = bootstrap.ResourceName(cfg.ProjectName, cfg.InstanceName, 128)
	tags["dstack_project"] = cfg.ProjectName
	tags["dstack_instance"] = cfg.InstanceName
	for k, v := range cfg.Tags {
		tags[k] = v
	}
	return tags
}

func (c *compute) CreateInstance(ctx context.Context, offer offers.Offer, cfg backends.InstanceConfig) (*backends.ProvisioningData, error) {
	s, err := c.session(ctx)
	if err != nil {
		return nil, err
	}
	region := offer.Region
	net, err := c.network(ctx, s, region)
	if err != nil {
		return nil, err
	}
	img, err := c.imageFor(ctx, s, region, len(offer.Instance.Resources.GPUs) > 0)
	if err != nil {
		return nil, err
	}
	group, err := c.securityGroup(ctx, s, region, net.vpcID, cfg)
	if err != nil {
		return nil, err
	}
	diskGB := int32((offer.Instance.Resources.Disk.SizeMiB + 1023) / 1024)
	if diskGB == 0 {
		diskGB = offers.DefaultDiskMiB / 1024
	}
	tags := ec2Tags(c.instanceTags(cfg))
	userData := base64.StdEncoding.EncodeToString([]byte(bootstrap.CloudConfig(cfg, img.user)))
	candidates := net.perZone()
	if len(offer.AvailabilityZones) > 0 {
		var keep []subnet
		for _, sn := range candidates {
			for _, z := range offer.AvailabilityZones {
				if sn.az == z {
					keep = append(keep, sn)
				}
			}
		}
		candidates = keep
	}
	if len(candidates) == 0 {
		return nil, &backends.NoCapacityError{Msg: fmt.Sprintf("AWS %s: no subnet in the offer's zones %v", region, offer.AvailabilityZones)}
	}
	var last error
	for _, sn := range candidates {
		in := &ec2.RunInstancesInput{
			ImageId:      aws.String(img.id),
			InstanceType: types.InstanceType(offer.Instance.Name),
			MinCount:     aws.Int32(1),
			MaxCount:     aws.Int32(1),
			UserData:     aws.String(userData),
			NetworkInterfaces: []types.InstanceNetworkInterfaceSpecification{{
				DeviceIndex: aws.Int32(0), SubnetId: aws.String(sn.id), Groups: []string{group},
				AssociatePublicIpAddress: aws.Bool(c.nc.publicIPs), DeleteOnTermination: aws.Bool(true),
			}},
			BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String(img.rootDevice),
				Ebs: &types.EbsBlockDevice{VolumeSize: aws.Int32(diskGB), VolumeType: types.VolumeTypeGp3, DeleteOnTermination: aws.Bool(true)}}},
			TagSpecifications: []types.TagSpecification{
				{ResourceType: types.ResourceTypeInstance, Tags: tags},
				{ResourceType: types.ResourceTypeVolume, Tags: tags},
			},
		}
		if offer.Instance.Resources.Spot {
			in.InstanceMarketOptions = &types.InstanceMarketOptionsRequest{MarketType: types.MarketTypeSpot,
				SpotOptions: &types.SpotMarketOptions{SpotInstanceType: types.SpotInstanceTypeOneTime,
					InstanceInterruptionBehavior: types.InstanceInterruptionBehaviorTerminate}}
		}
		if p := c.cfg.String("iam_instance_profile"); p != "" {
			in.IamInstanceProfile = &types.IamInstanceProfileSpecification{Name: aws.String(p)}
		}
		in.ClientToken = aws.String(clientToken(in))
		out, err := s.ec2Client(region).RunInstances(ctx, in)
		if err != nil {
			if staleCodes[errorCode(err)] {
				c.forget(region)
			}
			last = s.mapError(region, err)
			if backends.IsNoCapacity(last) && ctx.Err() == nil {
				continue
			}
			return nil, last
		}
		if len(out.Instances) != 1 {
			return nil, fmt.Errorf("AWS %s: RunInstances answered %d instances, want 1", region, len(out.Instances))
		}
		inst := out.Instances[0]
		pd := &backends.ProvisioningData{
			Backend:         typ,
			InstanceType:    offer.Instance,
			InstanceID:      aws.ToString(inst.InstanceId),
			PublicIPEnabled: c.nc.publicIPs,
			Region:          region,
			Price:           offer.Price,
			Username:        img.user,
			Dockerized:      true,
		}
		if inst.Placement != nil && inst.Placement.AvailabilityZone != nil {
			pd.AvailabilityZone = aws.String(*inst.Placement.AvailabilityZone)
		}
		if ip := aws.ToString(inst.PrivateIpAddress); ip != "" {
			pd.InternalIP = &ip
		}
		return pd, nil
	}
	return nil, last
}

// staleCodes say that a cached subnet, group or image is gone.
var staleCodes = backends.Set("InvalidSubnetID.NotFound", "InvalidGroup.NotFound", "InvalidAMIID.NotFound", "InvalidAMIID.Unavailable",
	"InvalidParameter")

// forget drops what CreateInstance cached about a region.
func (c *compute) forget(region string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.networks, region)
	for k := range c.images {
		if strings.HasPrefix(k, region+"/") {
			delete(c.images, k)
		}
	}
	for k := range c.groups {
		if strings.HasPrefix(k, region+"/") {
			delete(c.groups, k)
		}
	}
}

// clientToken is the idempotency token of a launch (at most 64 characters): a digest of the whole
// request, which names the instance (its tags), so that the SDK's retries and a repeated
// CreateInstance of the same instance get the first launch's instance rather than a second one.
func clientToken(in *ec2.RunInstancesInput) string {
	b, _ := json.Marshal(in)
	sum := sha256.Sum256(b)
	return "dstack-" + hex.EncodeToString(sum[:])[:40]
}

func (c *compute) UpdateProvisioningData(ctx context.Context, pd *backends.ProvisioningData) error {
	s, err := c.session(ctx)
	if err != nil {
		return err
	}
	out, err := s.ec2Client(pd.Region).DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{pd.InstanceID}})
	if errorCode(err) == "InvalidInstanceID.NotFound" {
		return nil // not listed yet: EC2 is eventually consistent right after RunInstances
	}
	if err != nil {
		return s.mapError(pd.Region, err)
	}
	var inst *types.Instance
	for _, r := range out.Reservations {
		for i := range r.Instances {
			if aws.ToString(r.Instances[i].InstanceId) == pd.InstanceID {
				inst = &r.Instances[i]
			}
		}
	}
	if inst == nil || inst.State == nil {
		return nil
	}
	switch inst.State.Name {
	case types.InstanceStateNamePending:
		return nil
	case types.InstanceStateNameRunning:
	default:
		msg := fmt.Sprintf("AWS instance %s is %s", pd.InstanceID, inst.State.Name)
		if inst.StateReason != nil && inst.StateReason.Message != nil {
			msg += ": " + *inst.StateReason.Message
		}
		return &backends.ProvisioningError{Msg: msg}
	}
	if inst.Placement != nil && inst.Placement.AvailabilityZone != nil {
		pd.AvailabilityZone = aws.String(*inst.Placement.AvailabilityZone)
	}
	private := aws.ToString(inst.PrivateIpAddress)
	if private != "" {
		pd.InternalIP = &private
	}
	host := private
	if pd.PublicIPEnabled {
		host = aws.ToString(inst.PublicIpAddress)
	}
	if host != "" {
		port := 22
		pd.Hostname, pd.SSHPort = &host, &port
	}
	return nil
}

func (c *compute) TerminateInstance(ctx context.Context, instanceID, region, backendData string) error {
	s, err := c.session(ctx)
	if err != nil {
		return err
	}
	if region == "" {
		return fmt.Errorf("AWS: cannot terminate %s: no region", instanceID)
	}
	_, err = s.ec2Client(region).TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{instanceID}})
	if err == nil || errorCode(err) == "InvalidInstanceID.NotFound" {
		return nil
	}
	return s.mapError(region, err)
}

// ListInstances lists, in every configured region, the instances not terminated that carry a
// dstack_server tag (of any server: the caller compares the tag with its own id), with their tags.
// It implements backends.InstanceLister for the orphan reconciler.
func (c *compute) ListInstances(ctx context.Context) ([]backends.Tagged, error) {
	s, err := c.session(ctx)
	if err != nil {
		return nil, err
	}
	return backends.ListEachRegion(regionsOf(c.cfg), func(region string) ([]backends.Tagged, error) {
		var out []backends.Tagged
		p := ec2.NewDescribeInstancesPaginator(s.ec2Client(region), &ec2.DescribeInstancesInput{MaxResults: aws.Int32(1000),
			Filters: []types.Filter{
				{Name: aws.String("tag-key"), Values: []string{"dstack_server"}},
				{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped", "shutting-down"}},
			}})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, s.mapError(region, err)
			}
			for _, r := range page.Reservations {
				for _, inst := range r.Instances {
					t := backends.Tagged{Backend: typ, InstanceID: aws.ToString(inst.InstanceId), Region: region, Tags: map[string]string{}}
					if inst.State != nil {
						t.State = string(inst.State.Name)
					}
					if inst.LaunchTime != nil {
						t.LaunchedAt = *inst.LaunchTime
					}
					for _, tag := range inst.Tags {
						t.Tags[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
					}
					t.Name = t.Tags["Name"]
					out = append(out, t)
				}
			}
		}
		return out, nil
	})
}

var _ backends.InstanceLister = (*compute)(nil)

// category names an offer's image category in messages.
func category(o offers.Offer) string {
	if len(o.Instance.Resources.GPUs) > 0 {
		return "nvidia"
	}
	return "cpu"
}

// hasImage reports whether the config can start an offer: without os_images always; with it only
// when it has the offer's category.
func hasImage(cfg backends.Config, o offers.Offer) bool {
	custom, ok := cfg.Values["os_images"].(map[string]any)
	if !ok {
		return true
	}
	img, _ := custom[category(o)].(map[string]any)
	return img != nil && strings.TrimSpace(fmt.Sprint(img["name"])) != ""
}
