package aws

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/backendtest"
	"github.com/dstackgo/dstack/internal/backends/fake"
)

// gatewayCompute is the aws compute of the simulation's good config with extra keys.
func gatewayCompute(t *testing.T, extra map[string]any) *compute {
	t.Helper()
	comp, err := backendtest.Driver(t, "aws").NewCompute(backendtest.Config(t, "aws", extra))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := comp.(backends.GatewayCompute); !ok {
		t.Fatal("the aws compute has no gateways")
	}
	return comp.(*compute)
}

func gatewayConfig(name string) backends.GatewayConfig {
	return backends.GatewayConfig{ProjectName: "main", Name: name, Region: "us-east-1", PublicIP: true,
		SSHPublicKeys: []string{backendtest.TestKey},
		Tags:          map[string]string{"dstack_project": "main", "dstack_server": "srv-1", "dstack_gateway": "id-" + name}}
}

// waitGatewayIP calls UpdateGateway until the gateway has an address; the test fails after 10 s.
func waitGatewayIP(t *testing.T, c *compute, gpd *backends.GatewayProvisioningData) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); gpd.IPAddress == ""; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no IP address after 10s")
		}
		if err := c.UpdateGateway(backendtest.Ctx(t), gpd); err != nil {
			t.Fatalf("UpdateGateway: %v", err)
		}
	}
}

func terminateTwice(t *testing.T, c *compute, gpd backends.GatewayProvisioningData) {
	t.Helper()
	for i := range 2 {
		if err := c.TerminateGateway(backendtest.Ctx(t), gpd); err != nil {
			t.Fatalf("TerminateGateway #%d: %v", i+1, err)
		}
	}
}

func wantProvisioningError(t *testing.T, err error, says ...string) {
	t.Helper()
	var pe *backends.ProvisioningError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v (%T), want a ProvisioningError", err, err)
	}
	for _, s := range says {
		if !strings.Contains(pe.Msg, s) {
			t.Errorf("error %q does not say %q", pe.Msg, s)
		}
	}
}

// TestGateway creates a public gateway, waits for its address, checks the machine, its user data,
// tags and the gateway group's rules, then terminates it twice.
func TestGateway(t *testing.T) {
	srv := fake.Use(t, "aws")
	c := gatewayCompute(t, map[string]any{"tags": map[string]any{"team": "ml"}})
	gpd, err := c.CreateGateway(backendtest.Ctx(t), gatewayConfig("gw"))
	if err != nil {
		t.Fatal(err)
	}
	if gpd.Backend != "aws" || gpd.Region != "us-east-1" || gpd.AvailabilityZone != "us-east-1a" || gpd.Username != "ubuntu" ||
		gpd.SSHPort != 22 || gpd.Hostname != "" || gpd.TLSTerminated || gpd.IPAddress != "" {
		t.Errorf("provisioning data %+v", gpd)
	}
	m, ok := srv.Machine(gpd.InstanceID)
	if !ok {
		t.Fatalf("no machine %s", gpd.InstanceID)
	}
	if m.Type != "t3.micro" || !strings.HasPrefix(m.UserData, "#cloud-config\n") || !slices.Equal(m.SSHKeys, []string{backendtest.TestKey}) ||
		strings.Contains(m.UserData, "dstack-shim") {
		t.Errorf("machine %s of type %s with user data %q", m.ID, m.Type, m.UserData)
	}
	for _, tag := range []string{"Name=dstack-gateway-main-gw", "dstack_gateway=id-gw", "dstack_project=main", "dstack_server=srv-1", "team=ml"} {
		if !slices.Contains(m.Tags, tag) {
			t.Errorf("tags %v lack %s", m.Tags, tag)
		}
	}
	wantRules := []string{"tcp 22-22 0.0.0.0/0", "tcp 443-443 0.0.0.0/0", "tcp 80-80 0.0.0.0/0"}
	if got := srv.AWSGroupIngress(GatewaySecurityGroupName("main")); !slices.Equal(got, wantRules) {
		t.Errorf("gateway group rules %v, want %v", got, wantRules)
	}

	waitGatewayIP(t, c, gpd)
	if m, _ = srv.Machine(gpd.InstanceID); gpd.IPAddress != m.IP || m.IP == "" {
		t.Errorf("IP address %q, want the public %q", gpd.IPAddress, m.IP)
	}

	// A second gateway of the project shares the group; its own type is honoured.
	cfg := gatewayConfig("other")
	cfg.InstanceType = "m5.large"
	other, err := c.CreateGateway(backendtest.Ctx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := srv.Machine(other.InstanceID); m.Type != "m5.large" {
		t.Errorf("second gateway of type %s, want m5.large", m.Type)
	}
	if got := srv.AWSGroupIngress(GatewaySecurityGroupName("main")); !slices.Equal(got, wantRules) {
		t.Errorf("after a second gateway, group rules %v, want %v (one group)", got, wantRules)
	}
	var d1, d2 gatewayData
	_ = json.Unmarshal([]byte(gpd.BackendData), &d1)
	_ = json.Unmarshal([]byte(other.BackendData), &d2)
	if d1.SecurityGroupID == "" || d1.SecurityGroupID != d2.SecurityGroupID {
		t.Errorf("backend data %s and %s, want one security group", gpd.BackendData, other.BackendData)
	}

	terminateTwice(t, c, *gpd)
	terminateTwice(t, c, *other)
	if alive := srv.Alive(); len(alive) != 0 {
		t.Errorf("machines left: %v", alive)
	}
	backendtest.NoMisses(t, srv)
}

// TestGatewayPrivate creates a gateway without a public IP: in a private subnet, reached at its
// private address.
func TestGatewayPrivate(t *testing.T) {
	srv := fake.Use(t, "aws")
	c := gatewayCompute(t, nil)
	cfg := gatewayConfig("private")
	cfg.PublicIP = false
	gpd, err := c.CreateGateway(backendtest.Ctx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitGatewayIP(t, c, gpd)
	m, _ := srv.Machine(gpd.InstanceID)
	if gpd.IPAddress != m.PrivateIP || m.Extra["public"] != false {
		t.Errorf("IP address %q, want the private %q of a machine without a public IP (%v)", gpd.IPAddress, m.PrivateIP, m.Extra["public"])
	}
	terminateTwice(t, c, *gpd)
	if len(srv.Alive()) != 0 {
		t.Error("the private gateway is still alive")
	}
	backendtest.NoMisses(t, srv)
}

// TestGatewayGone: an instance that EC2 terminated is a ProvisioningError.
func TestGatewayGone(t *testing.T) {
	srv := fake.Use(t, "aws")
	c := gatewayCompute(t, nil)
	gpd, err := c.CreateGateway(backendtest.Ctx(t), gatewayConfig("gone"))
	if err != nil {
		t.Fatal(err)
	}
	srv.Terminate(gpd.InstanceID)
	wantProvisioningError(t, c.UpdateGateway(backendtest.Ctx(t), gpd), gpd.InstanceID, "terminated")
	terminateTwice(t, c, *gpd)
	backendtest.NoMisses(t, srv)
}

func TestGatewayCredentials(t *testing.T) {
	srv := fake.Use(t, "aws")
	comp, err := backendtest.Driver(t, "aws").NewCompute(srv.Bad)
	if err != nil {
		t.Fatal(err)
	}
	_, err = comp.(backends.GatewayCompute).CreateGateway(backendtest.Ctx(t), gatewayConfig("gw"))
	var ce *backends.CredentialsError
	if !errors.As(err, &ce) {
		t.Fatalf("CreateGateway with bad credentials = %v, want a CredentialsError", err)
	}
	if len(srv.Alive()) != 0 {
		t.Error("a machine was created with bad credentials")
	}
}

// TestGatewayACM puts a load balancer with an issued certificate in front of the gateway, and
// refuses certificates that are missing, of another region or not issued before creating anything.
func TestGatewayACM(t *testing.T) {
	srv := fake.Use(t, "aws")
	c := gatewayCompute(t, nil)
	pending := srv.AddACMCertificate("us-east-1", "*.pending.example.com", "PENDING_VALIDATION")
	for _, tc := range []struct {
		name, arn string
		says      []string
	}{
		{"missing", "arn:aws:acm:us-east-1:210987654321:certificate/00000000-0000-4000-a000-000000000000", []string{"certificate.arn", "ResourceNotFoundException"}},
		{"another region", fake.AWSCertificateARN("eu-west-1"), []string{"certificate.arn", "region us-east-1"}},
		{"malformed", "arn:aws:acm:us-east-1:210987654321:certificate/nope", []string{"certificate.arn", "InvalidArnException"}},
		{"not issued", pending, []string{"certificate.arn", "PENDING_VALIDATION", "not ISSUED"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := gatewayConfig("acm")
			cfg.ACMCertificateARN = tc.arn
			_, err := c.CreateGateway(backendtest.Ctx(t), cfg)
			wantProvisioningError(t, err, tc.says...)
		})
	}
	if lbs, tgs, ls := srv.AWSLoadBalancing(); len(srv.Alive())+len(lbs)+len(tgs)+len(ls) != 0 {
		t.Fatalf("refused certificates left machines %v, load balancers %v, target groups %v, listeners %v", srv.Alive(), lbs, tgs, ls)
	}

	cfg := gatewayConfig("acm")
	cfg.ACMCertificateARN = fake.AWSCertificateARN("us-east-1")
	gpd, err := c.CreateGateway(backendtest.Ctx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	lbs, tgs, ls := srv.AWSLoadBalancing()
	if len(lbs) != 1 || len(tgs) != 1 || len(ls) != 1 {
		t.Fatalf("load balancers %v, target groups %v, listeners %v: want one of each", lbs, tgs, ls)
	}
	lb, tg, l := lbs[0], tgs[0], ls[0]
	if !gpd.TLSTerminated || gpd.Hostname == "" || gpd.Hostname != lb.DNSName {
		t.Errorf("TLS terminated %v, hostname %q, want true and the load balancer's %q", gpd.TLSTerminated, gpd.Hostname, lb.DNSName)
	}
	var data gatewayData
	if err := json.Unmarshal([]byte(gpd.BackendData), &data); err != nil || data.LoadBalancerARN != lb.ARN ||
		data.TargetGroupARN != tg.ARN || data.ListenerARN != l.ARN || data.SecurityGroupID == "" {
		t.Errorf("backend data %s (%v)", gpd.BackendData, err)
	}
	if lb.Scheme != "internet-facing" || len(lb.Subnets) != 3 || !slices.Equal(lb.SecurityGroups, []string{data.SecurityGroupID}) ||
		len(lb.Name) > 32 || lb.Tags["dstack_gateway"] != "id-acm" {
		t.Errorf("load balancer %+v", lb)
	}
	if tg.Protocol != "HTTP" || tg.Port != 80 || tg.TargetType != "instance" || tg.HealthCheckProtocol != "HTTP" ||
		tg.Matcher != "200-499" || tg.Tags["dstack_gateway"] != "id-acm" || len(tg.Targets) != 0 {
		t.Errorf("target group %+v", tg)
	}
	if l.Protocol != "HTTPS" || l.Port != 443 || l.Certificate != cfg.ACMCertificateARN || l.TargetGroup != tg.ARN ||
		l.LoadBalancer != lb.ARN || l.SSLPolicy != gatewaySSLPolicy || l.Tags["dstack_gateway"] != "id-acm" {
		t.Errorf("listener %+v", l)
	}

	// Running, the instance joins the target group.
	waitGatewayIP(t, c, gpd)
	_, tgs, _ = srv.AWSLoadBalancing()
	if want := gpd.InstanceID + ":80"; !slices.Equal(tgs[0].Targets, []string{want}) {
		t.Errorf("targets %v, want [%s]", tgs[0].Targets, want)
	}
	if err := json.Unmarshal([]byte(gpd.BackendData), &data); err != nil || !data.TargetRegistered {
		t.Errorf("backend data %s does not record the registration", gpd.BackendData)
	}

	terminateTwice(t, c, *gpd)
	if lbs, tgs, ls := srv.AWSLoadBalancing(); len(srv.Alive())+len(lbs)+len(tgs)+len(ls) != 0 {
		t.Errorf("after terminate: machines %v, load balancers %v, target groups %v, listeners %v", srv.Alive(), lbs, tgs, ls)
	}
	backendtest.NoMisses(t, srv)
}

// TestGatewayACMPrivate: an internal load balancer needs private subnets in two zones, which the
// default VPC of the simulation lacks; nothing is created.
func TestGatewayACMPrivate(t *testing.T) {
	srv := fake.Use(t, "aws")
	c := gatewayCompute(t, nil)
	cfg := gatewayConfig("acm-private")
	cfg.PublicIP, cfg.ACMCertificateARN = false, fake.AWSCertificateARN("us-east-1")
	_, err := c.CreateGateway(backendtest.Ctx(t), cfg)
	wantProvisioningError(t, err, "private subnets of at least two availability zones", "has them in 1")
	if len(srv.Alive()) != 0 {
		t.Error("a machine was created")
	}
	backendtest.NoMisses(t, srv)
}

// TestGatewayACMRollback: when the load balancer cannot be made (a target group of the same name
// and other settings exists), CreateGateway deletes the instance it launched; retried once the
// clash is gone, it launches a new one rather than answering the deleted one of the same token.
func TestGatewayACMRollback(t *testing.T) {
	srv := fake.Use(t, "aws")
	c := gatewayCompute(t, nil)
	cfg := gatewayConfig("clash")
	cfg.ACMCertificateARN = fake.AWSCertificateARN("us-east-1")
	ctx := backendtest.Ctx(t)
	s, err := c.session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	net, err := c.gatewayNetwork(ctx, s, "us-east-1", true)
	if err != nil {
		t.Fatal(err)
	}
	clash, err := s.elbClient("us-east-1").CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String(elbName(cfg)),
		Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(8080), VpcId: aws.String(net.vpcID)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateGateway(ctx, cfg)
	if errorCode(err) != "DuplicateTargetGroupName" {
		t.Fatalf("CreateGateway = %v, want DuplicateTargetGroupName", err)
	}
	if len(srv.Machines()) != 1 || len(srv.Alive()) != 0 {
		t.Fatalf("machines %v, alive %v: want the launched one terminated", srv.Machines(), srv.Alive())
	}
	first := srv.Machines()[0].ID

	if _, err := s.elbClient("us-east-1").DeleteTargetGroup(ctx, &elb.DeleteTargetGroupInput{TargetGroupArn: clash.TargetGroups[0].TargetGroupArn}); err != nil {
		t.Fatal(err)
	}
	gpd, err := c.CreateGateway(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if alive := srv.Alive(); gpd.InstanceID == first || len(alive) != 1 || alive[0].ID != gpd.InstanceID {
		t.Errorf("retried gateway on %s (first %s), alive %v", gpd.InstanceID, first, alive)
	}
	terminateTwice(t, c, *gpd)
	backendtest.NoMisses(t, srv)
}

func TestELBName(t *testing.T) {
	cfg := gatewayConfig("a-very-long-gateway-name-of-forty-chars")
	cfg.ProjectName = "my_project.with.dots"
	name := elbName(cfg)
	if len(name) > 32 || !strings.HasPrefix(name, "dstack-") || strings.ContainsAny(name, "_.") {
		t.Errorf("elbName = %q", name)
	}
	other := cfg
	other.Tags = map[string]string{"dstack_gateway": "another-id"}
	if elbName(other) == name {
		t.Error("two gateways of the same name and different ids share a load balancer name")
	}
}
