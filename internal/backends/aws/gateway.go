package aws

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	acmtypes "github.com/aws/aws-sdk-go-v2/service/acm/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/bootstrap"
)

// Gateways (backends.GatewayCompute):
//
//   - CreateGateway launches one instance (t3.micro unless the configuration names a type) from the
//     CPU AMI that CreateInstance uses, in the region's first zone with capacity, in a public subnet
//     (a private one with NAT egress for public_ip: false), with the project's gateway security
//     group dstack-gateway-<project> (created with TCP 22, 80 and 443 from anywhere when missing;
//     shared by the project's gateways, so never deleted) and user data that only authorizes the
//     project key: the server installs dstack-gateway over SSH. A ClientToken digesting the
//     request (whose tags hold the gateway's id) makes a retried launch idempotent; when the
//     token's instance is gone (deleted by a failed CreateGateway), another token launches anew.
//   - With an ACM certificate, acm:DescribeCertificate first checks that the certificate exists in
//     the region and is ISSUED. Then an Application Load Balancer (internet-facing, or internal for a
//     private gateway) in one subnet of every zone of the VPC (at least two), with the gateway
//     group; a target group HTTP:80 of instance targets; an HTTPS:443 listener with the certificate
//     that forwards to it. All are tagged on creation. The target group's health check is HTTP on
//     the traffic port at / with codes 200-499: dstack-gateway answers any request on 80 (404 for a
//     host it does not serve), so any answer proves it is up; a TCP check is not allowed for an
//     Application Load Balancer's HTTP target group. The permission list has no Describe call
//     for load balancers, so the ARNs and the DNS name that the Create calls answer are kept in
//     BackendData, and the hostname is the load balancer's DNS name.
//   - UpdateGateway is DescribeInstances: pending is nothing yet; running gives the public address
//     (the private one for a private gateway) and, behind a load balancer, registers the instance
//     with the target group (EC2 refuses targets that are not running yet); anything else is a
//     *backends.ProvisioningError.
//   - TerminateGateway deletes the listener, the load balancer, then the target group (a target
//     group in use by a load balancer cannot be deleted), then the instance; what is gone already is
//     success, so it can be repeated.
//
// A CreateGateway that fails after launching deletes what it made before it returns the error.

// GatewaySecurityGroupName is the security group of a project's gateways.
func GatewaySecurityGroupName(project string) string { return "dstack-gateway-" + project }

// Gateway machine defaults.
const (
	gatewayInstanceType = "t3.micro"
	// gatewaySSLPolicy is the listener's TLS policy: TLS 1.3 and 1.2 with forward secrecy.
	gatewaySSLPolicy = "ELBSecurityPolicy-TLS13-1-2-2021-06"
	gatewayHTTPPort  = 80
	gatewayHTTPSPort = 443
)

// gatewayData is GatewayProvisioningData.BackendData: what UpdateGateway and TerminateGateway need.
// The ARN keys are those dstack's AWSGatewayBackendData uses.
type gatewayData struct {
	SecurityGroupID string `json:"security_group_id,omitempty"`
	// Private is a gateway without a public IP: its address is the private one.
	Private         bool   `json:"private,omitempty"`
	LoadBalancerARN string `json:"lb_arn,omitempty"`
	TargetGroupARN  string `json:"tg_arn,omitempty"`
	ListenerARN     string `json:"listener_arn,omitempty"`
	// TargetRegistered is true once the instance is in the target group.
	TargetRegistered bool `json:"target_registered,omitempty"`
}

func parseGatewayData(gpd backends.GatewayProvisioningData) (gatewayData, error) {
	var d gatewayData
	if gpd.BackendData == "" {
		return d, nil
	}
	if err := json.Unmarshal([]byte(gpd.BackendData), &d); err != nil {
		return d, fmt.Errorf("AWS gateway %s: backend_data is not the aws backend's: %v", gpd.InstanceID, err)
	}
	return d, nil
}

func (d gatewayData) store(gpd *backends.GatewayProvisioningData) {
	b, _ := json.Marshal(d) // strings and booleans only: cannot fail
	gpd.BackendData = string(b)
}

func (c *compute) CreateGateway(ctx context.Context, cfg backends.GatewayConfig) (*backends.GatewayProvisioningData, error) {
	s, err := c.session(ctx)
	if err != nil {
		return nil, err
	}
	region := cfg.Region
	if region == "" {
		return nil, errors.New("AWS: a gateway needs a region")
	}
	if cfg.ACMCertificateARN != "" {
		if err := checkCertificate(ctx, s, region, cfg.ACMCertificateARN); err != nil {
			return nil, err
		}
	}
	net, err := c.gatewayNetwork(ctx, s, region, cfg.PublicIP)
	if err != nil {
		return nil, err
	}
	zones := net.perZone()
	if cfg.ACMCertificateARN != "" && len(zones) < 2 {
		kind := map[bool]string{true: "public", false: "private"}[cfg.PublicIP]
		return nil, &backends.ProvisioningError{Msg: fmt.Sprintf("AWS %s: a gateway with an ACM certificate needs a load balancer in %s subnets of at least two availability zones, and VPC %s has them in %d",
			region, kind, net.vpcID, len(zones))}
	}
	img, err := c.imageFor(ctx, s, region, false)
	if err != nil {
		return nil, err
	}
	group, err := c.ensureGroup(ctx, s, region, net.vpcID, groupSpec{
		name: GatewaySecurityGroupName(cfg.ProjectName),
		desc: "dstack gateways of project " + cfg.ProjectName,
		tags: groupTags(cfg.ProjectName, cfg.Tags),
		ingress: func(string) []types.IpPermission {
			return []types.IpPermission{tcpFromAnywhere(22), tcpFromAnywhere(gatewayHTTPPort), tcpFromAnywhere(gatewayHTTPSPort)}
		},
	})
	if err != nil {
		return nil, err
	}
	gpd, err := c.launchGateway(ctx, s, cfg, img, zones, group)
	if err != nil {
		return nil, err
	}
	if cfg.ACMCertificateARN == "" {
		return gpd, nil
	}
	if err := c.createLoadBalancer(ctx, s, cfg, net.vpcID, zones, group, gpd); err != nil {
		if terr := c.TerminateGateway(context.WithoutCancel(ctx), *gpd); terr != nil {
			return nil, fmt.Errorf("%w (and deleting what was made failed: %v)", err, terr)
		}
		return nil, err
	}
	return gpd, nil
}

// gatewayNetwork is the VPC and the subnets of a gateway: public ones, or private ones with NAT
// egress for a private gateway, whatever the backend's public_ips says.
func (c *compute) gatewayNetwork(ctx context.Context, s *session, region string, public bool) (*network, error) {
	nc := c.nc
	nc.publicIPs = public
	net, err := resolveNetwork(ctx, s.ec2Client(region), region, nc)
	var ce *backends.CredentialsError
	if errors.As(err, &ce) && ce.Fields[0][0] != "creds" {
		return nil, &backends.ProvisioningError{Msg: "AWS " + region + ": " + ce.Msg}
	}
	if err != nil {
		return nil, s.mapError(region, err)
	}
	return net, nil
}

// gatewayTags are the tags of a gateway's instance, volume and load balancing resources: the
// config's, then the gateway's (dstack_project, dstack_server, dstack_gateway) and Name over them.
func (c *compute) gatewayTags(cfg backends.GatewayConfig) map[string]string {
	tags := backends.StringMap(c.cfg.Values["tags"])
	for k, v := range cfg.Tags {
		tags[k] = v
	}
	tags["dstack_project"] = cfg.ProjectName
	tags["Name"] = "dstack-gateway-" + cfg.ProjectName + "-" + cfg.Name
	return tags
}

// launchGateway runs the gateway instance in the first zone with capacity.
func (c *compute) launchGateway(ctx context.Context, s *session, cfg backends.GatewayConfig, img image, zones []subnet, group string) (*backends.GatewayProvisioningData, error) {
	region := cfg.Region
	instanceType := cfg.InstanceType
	if instanceType == "" {
		instanceType = gatewayInstanceType
	}
	tags := ec2Tags(c.gatewayTags(cfg))
	userData := base64.StdEncoding.EncodeToString([]byte(bootstrap.KeysCloudConfig(cfg.SSHPublicKeys)))
	var last error
	for _, sn := range zones {
		in := &ec2.RunInstancesInput{
			ImageId:      aws.String(img.id),
			InstanceType: types.InstanceType(instanceType),
			MinCount:     aws.Int32(1),
			MaxCount:     aws.Int32(1),
			UserData:     aws.String(userData),
			NetworkInterfaces: []types.InstanceNetworkInterfaceSpecification{{
				DeviceIndex: aws.Int32(0), SubnetId: aws.String(sn.id), Groups: []string{group},
				AssociatePublicIpAddress: aws.Bool(cfg.PublicIP), DeleteOnTermination: aws.Bool(true),
			}},
			TagSpecifications: []types.TagSpecification{
				{ResourceType: types.ResourceTypeInstance, Tags: tags},
				{ResourceType: types.ResourceTypeVolume, Tags: tags},
			},
		}
		in.ClientToken = aws.String(clientToken(in))
		inst, err := c.runInstance(ctx, s, region, in)
		if err == nil && inst.State != nil && (inst.State.Name == types.InstanceStateNameTerminated || inst.State.Name == types.InstanceStateNameShuttingDown) {
			// The token's instance is gone (a CreateGateway that deleted what it made, then was
			// retried): another token launches anew.
			in.ClientToken = aws.String(fmt.Sprintf("%.40s-%x", aws.ToString(in.ClientToken), time.Now().UnixNano()))
			inst, err = c.runInstance(ctx, s, region, in)
		}
		if err != nil {
			last = err
			if backends.IsNoCapacity(err) && ctx.Err() == nil {
				continue
			}
			return nil, err
		}
		gpd := &backends.GatewayProvisioningData{Backend: typ, InstanceID: aws.ToString(inst.InstanceId), Region: region,
			AvailabilityZone: sn.az, Username: img.user, SSHPort: 22}
		if inst.Placement != nil && inst.Placement.AvailabilityZone != nil {
			gpd.AvailabilityZone = *inst.Placement.AvailabilityZone
		}
		gatewayData{SecurityGroupID: group, Private: !cfg.PublicIP}.store(gpd)
		return gpd, nil
	}
	return nil, last
}

// runInstance is one RunInstances of one instance.
func (c *compute) runInstance(ctx context.Context, s *session, region string, in *ec2.RunInstancesInput) (*types.Instance, error) {
	out, err := s.ec2Client(region).RunInstances(ctx, in)
	if err != nil {
		if staleCodes[errorCode(err)] {
			c.forget(region)
		}
		return nil, s.mapError(region, err)
	}
	if len(out.Instances) != 1 {
		return nil, fmt.Errorf("AWS %s: RunInstances answered %d instances, want 1", region, len(out.Instances))
	}
	return &out.Instances[0], nil
}

// checkCertificate wants the ACM certificate to exist in the region and be issued.
func checkCertificate(ctx context.Context, s *session, region, arn string) error {
	out, err := s.acmClient(region).DescribeCertificate(ctx, &acm.DescribeCertificateInput{CertificateArn: aws.String(arn)})
	switch code := errorCode(err); {
	case code == "ResourceNotFoundException" || code == "InvalidArnException":
		return &backends.ProvisioningError{Msg: fmt.Sprintf("certificate.arn: ACM has no certificate %s in region %s (the load balancer takes a certificate of the gateway's region): %s",
			arn, region, errorMessage(err))}
	case err != nil:
		return s.mapError(region, err)
	}
	if out.Certificate == nil || out.Certificate.Status != acmtypes.CertificateStatusIssued {
		status := "unknown"
		if out.Certificate != nil {
			status = string(out.Certificate.Status)
		}
		return &backends.ProvisioningError{Msg: fmt.Sprintf("certificate.arn: ACM certificate %s is %s, not ISSUED: complete its validation or name an issued certificate",
			arn, status)}
	}
	return nil
}

var notNameChars = regexp.MustCompile(`[^A-Za-z0-9-]+`)

// elbName names a gateway's load balancer and target group (each in its own namespace): at most 32
// letters, digits and hyphens, dstack-<project>-<name> cut to fit, then a digest of the gateway's
// project, name and tags (which hold the server's and the gateway's ids) that keeps it unique.
func elbName(cfg backends.GatewayConfig) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s/%s", cfg.ProjectName, cfg.Name)
	for _, k := range bootstrap.SortedKeys(cfg.Tags) {
		fmt.Fprintf(h, "/%s=%s", k, cfg.Tags[k])
	}
	base := notNameChars.ReplaceAllString(bootstrap.ResourceName(cfg.ProjectName, cfg.Name, 23), "-")
	return strings.TrimRight(base, "-") + "-" + hex.EncodeToString(h.Sum(nil))[:8]
}

func elbTags(m map[string]string) []elbtypes.Tag {
	out := make([]elbtypes.Tag, 0, len(m))
	for _, k := range bootstrap.SortedKeys(m) {
		out = append(out, elbtypes.Tag{Key: aws.String(k), Value: aws.String(m[k])})
	}
	return out
}

// createLoadBalancer puts an Application Load Balancer with the certificate in front of the
// gateway instance of gpd, recording each resource in gpd's BackendData as soon as it exists.
func (c *compute) createLoadBalancer(ctx context.Context, s *session, cfg backends.GatewayConfig, vpcID string, zones []subnet, group string, gpd *backends.GatewayProvisioningData) error {
	region := cfg.Region
	data, err := parseGatewayData(*gpd)
	if err != nil {
		return err
	}
	client := s.elbClient(region)
	name, tags := elbName(cfg), elbTags(c.gatewayTags(cfg))
	tg, err := client.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{
		Name: aws.String(name), Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(gatewayHTTPPort), VpcId: aws.String(vpcID),
		TargetType: elbtypes.TargetTypeEnumInstance, HealthCheckProtocol: elbtypes.ProtocolEnumHttp, HealthCheckPath: aws.String("/"),
		Matcher: &elbtypes.Matcher{HttpCode: aws.String("200-499")}, Tags: tags,
	})
	if err != nil {
		return s.mapError(region, err)
	}
	if len(tg.TargetGroups) != 1 {
		return fmt.Errorf("AWS %s: CreateTargetGroup answered %d target groups, want 1", region, len(tg.TargetGroups))
	}
	data.TargetGroupARN = aws.ToString(tg.TargetGroups[0].TargetGroupArn)
	data.store(gpd)

	scheme := elbtypes.LoadBalancerSchemeEnumInternetFacing
	if !cfg.PublicIP {
		scheme = elbtypes.LoadBalancerSchemeEnumInternal
	}
	subnets := make([]string, 0, len(zones))
	for _, sn := range zones {
		subnets = append(subnets, sn.id)
	}
	lb, err := client.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{
		Name: aws.String(name), Type: elbtypes.LoadBalancerTypeEnumApplication, Scheme: scheme, Subnets: subnets,
		SecurityGroups: []string{group}, IpAddressType: elbtypes.IpAddressTypeIpv4, Tags: tags,
	})
	if err != nil {
		return s.mapError(region, err)
	}
	if len(lb.LoadBalancers) != 1 {
		return fmt.Errorf("AWS %s: CreateLoadBalancer answered %d load balancers, want 1", region, len(lb.LoadBalancers))
	}
	data.LoadBalancerARN = aws.ToString(lb.LoadBalancers[0].LoadBalancerArn)
	data.store(gpd)

	l, err := client.CreateListener(ctx, &elb.CreateListenerInput{
		LoadBalancerArn: aws.String(data.LoadBalancerARN), Protocol: elbtypes.ProtocolEnumHttps, Port: aws.Int32(gatewayHTTPSPort),
		SslPolicy:      aws.String(gatewaySSLPolicy),
		Certificates:   []elbtypes.Certificate{{CertificateArn: aws.String(cfg.ACMCertificateARN)}},
		DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: aws.String(data.TargetGroupARN)}},
		Tags:           tags,
	})
	switch code := errorCode(err); {
	case code == "CertificateNotFound" || code == "UnsupportedCertificate":
		return &backends.ProvisioningError{Msg: fmt.Sprintf("certificate.arn: the load balancer refuses ACM certificate %s: %s", cfg.ACMCertificateARN, errorMessage(err))}
	case err != nil:
		return s.mapError(region, err)
	}
	if len(l.Listeners) != 1 {
		return fmt.Errorf("AWS %s: CreateListener answered %d listeners, want 1", region, len(l.Listeners))
	}
	data.ListenerARN = aws.ToString(l.Listeners[0].ListenerArn)
	data.store(gpd)
	gpd.Hostname = aws.ToString(lb.LoadBalancers[0].DNSName)
	gpd.TLSTerminated = true
	return nil
}

func (c *compute) UpdateGateway(ctx context.Context, gpd *backends.GatewayProvisioningData) error {
	s, err := c.session(ctx)
	if err != nil {
		return err
	}
	data, err := parseGatewayData(*gpd)
	if err != nil {
		return err
	}
	out, err := s.ec2Client(gpd.Region).DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{gpd.InstanceID}})
	if errorCode(err) == "InvalidInstanceID.NotFound" {
		return nil // not listed yet: EC2 is eventually consistent right after RunInstances
	}
	if err != nil {
		return s.mapError(gpd.Region, err)
	}
	var inst *types.Instance
	for _, r := range out.Reservations {
		for i := range r.Instances {
			if aws.ToString(r.Instances[i].InstanceId) == gpd.InstanceID {
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
		msg := fmt.Sprintf("AWS gateway instance %s is %s", gpd.InstanceID, inst.State.Name)
		if inst.StateReason != nil && inst.StateReason.Message != nil {
			msg += ": " + *inst.StateReason.Message
		}
		return &backends.ProvisioningError{Msg: msg}
	}
	ip := aws.ToString(inst.PublicIpAddress)
	if data.Private {
		ip = aws.ToString(inst.PrivateIpAddress)
	}
	if ip == "" {
		return nil
	}
	if data.TargetGroupARN != "" && !data.TargetRegistered {
		_, err := s.elbClient(gpd.Region).RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: aws.String(data.TargetGroupARN),
			Targets: []elbtypes.TargetDescription{{Id: aws.String(gpd.InstanceID), Port: aws.Int32(gatewayHTTPPort)}}})
		if err != nil {
			return s.mapError(gpd.Region, err)
		}
		data.TargetRegistered = true
		data.store(gpd)
	}
	if inst.Placement != nil && inst.Placement.AvailabilityZone != nil {
		gpd.AvailabilityZone = *inst.Placement.AvailabilityZone
	}
	gpd.IPAddress = ip
	return nil
}

func (c *compute) TerminateGateway(ctx context.Context, gpd backends.GatewayProvisioningData) error {
	s, err := c.session(ctx)
	if err != nil {
		return err
	}
	if gpd.Region == "" {
		return fmt.Errorf("AWS: cannot terminate gateway %s: no region", gpd.InstanceID)
	}
	data, err := parseGatewayData(gpd)
	if err != nil {
		return err
	}
	client := s.elbClient(gpd.Region)
	steps := []struct {
		arn, gone string
		del       func(arn string) error
	}{
		{data.ListenerARN, "ListenerNotFound", func(arn string) error {
			_, err := client.DeleteListener(ctx, &elb.DeleteListenerInput{ListenerArn: aws.String(arn)})
			return err
		}},
		{data.LoadBalancerARN, "LoadBalancerNotFound", func(arn string) error {
			_, err := client.DeleteLoadBalancer(ctx, &elb.DeleteLoadBalancerInput{LoadBalancerArn: aws.String(arn)})
			return err
		}},
		{data.TargetGroupARN, "TargetGroupNotFound", func(arn string) error {
			_, err := client.DeleteTargetGroup(ctx, &elb.DeleteTargetGroupInput{TargetGroupArn: aws.String(arn)})
			return err
		}},
	}
	for _, st := range steps {
		if st.arn == "" {
			continue
		}
		if err := st.del(st.arn); err != nil && errorCode(err) != st.gone {
			return s.mapError(gpd.Region, err)
		}
	}
	if gpd.InstanceID == "" {
		return nil
	}
	return c.TerminateInstance(ctx, gpd.InstanceID, gpd.Region, "")
}

var _ backends.GatewayCompute = (*compute)(nil)
