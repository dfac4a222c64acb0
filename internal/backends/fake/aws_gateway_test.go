package fake_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	acmtypes "github.com/aws/aws-sdk-go-v2/service/acm/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/smithy-go"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/fake"
)

// dstackAgent sends requests as the backends do: dstack first in the User-Agent (which SigV4 does
// not sign).
type dstackAgent struct{}

func (dstackAgent) Do(r *http.Request) (*http.Response, error) {
	r.Header.Set("User-Agent", backends.UserAgent+" "+r.Header.Get("User-Agent"))
	return http.DefaultClient.Do(r)
}

// awsSDKConfig is an SDK configuration for the simulation with its good key and no retries.
func awsSDKConfig(srv *fake.Server) aws.Config {
	creds := srv.Good.Values["creds"].(map[string]any)
	return aws.Config{Region: "us-east-1", Retryer: func() aws.Retryer { return aws.NopRetryer{} }, HTTPClient: dstackAgent{},
		Credentials:  credentials.NewStaticCredentialsProvider(creds["access_key"].(string), creds["secret_key"].(string), ""),
		BaseEndpoint: aws.String(srv.URL)}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != code {
		t.Errorf("err = %v, want %s", err, code)
	}
}

// TestAWSLoadBalancing drives the ELBv2 simulation through the SDK: idempotent and conflicting
// creates, the two-zone rule, certificates, target registration of pending and running instances,
// a target group in use, tags, and deletes of what is gone.
func TestAWSLoadBalancing(t *testing.T) {
	srv := fake.Start(t, "aws")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := awsSDKConfig(srv)
	ec := ec2.NewFromConfig(cfg)
	lbc := elb.NewFromConfig(cfg)

	subnets, err := ec.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []ec2types.Filter{{Name: aws.String("default-for-az"), Values: []string{"true"}}}})
	if err != nil || len(subnets.Subnets) != 3 {
		t.Fatalf("default subnets: %v, %v", subnets, err)
	}
	vpc := aws.ToString(subnets.Subnets[0].VpcId)
	var ids []string
	for _, sn := range subnets.Subnets {
		ids = append(ids, aws.ToString(sn.SubnetId))
	}

	tgIn := &elb.CreateTargetGroupInput{Name: aws.String("gw-tg"), Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(80),
		VpcId: aws.String(vpc), HealthCheckPath: aws.String("/"), Matcher: &elbtypes.Matcher{HttpCode: aws.String("200-499")}}
	tg, err := lbc.CreateTargetGroup(ctx, tgIn)
	if err != nil {
		t.Fatal(err)
	}
	tgARN := aws.ToString(tg.TargetGroups[0].TargetGroupArn)
	if !strings.HasPrefix(tgARN, "arn:aws:elasticloadbalancing:us-east-1:210987654321:targetgroup/gw-tg/") ||
		tg.TargetGroups[0].HealthCheckProtocol != elbtypes.ProtocolEnumHttp || aws.ToString(tg.TargetGroups[0].Matcher.HttpCode) != "200-499" {
		t.Errorf("target group %+v", tg.TargetGroups[0])
	}
	again, err := lbc.CreateTargetGroup(ctx, tgIn)
	if err != nil || aws.ToString(again.TargetGroups[0].TargetGroupArn) != tgARN {
		t.Errorf("the same CreateTargetGroup again = %v, %v; want %s", again, err, tgARN)
	}
	_, err = lbc.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("gw-tg"), Protocol: elbtypes.ProtocolEnumHttp,
		Port: aws.Int32(8080), VpcId: aws.String(vpc)})
	wantCode(t, err, "DuplicateTargetGroupName")
	_, err = lbc.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("gw-tg2"), Protocol: elbtypes.ProtocolEnumHttp,
		Port: aws.Int32(80), VpcId: aws.String("vpc-00000000000000000")})
	wantCode(t, err, "ValidationError")

	_, err = lbc.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("gw-lb"), Subnets: ids[:1]})
	wantCode(t, err, "ValidationError")
	lbIn := &elb.CreateLoadBalancerInput{Name: aws.String("gw-lb"), Subnets: ids, Scheme: elbtypes.LoadBalancerSchemeEnumInternetFacing,
		Type: elbtypes.LoadBalancerTypeEnumApplication, Tags: []elbtypes.Tag{{Key: aws.String("team"), Value: aws.String("ml")}}}
	lb, err := lbc.CreateLoadBalancer(ctx, lbIn)
	if err != nil {
		t.Fatal(err)
	}
	lbARN := aws.ToString(lb.LoadBalancers[0].LoadBalancerArn)
	if dns := aws.ToString(lb.LoadBalancers[0].DNSName); !strings.HasPrefix(dns, "gw-lb-") || !strings.HasSuffix(dns, ".us-east-1.elb.amazonaws.com") ||
		len(lb.LoadBalancers[0].AvailabilityZones) != 3 || aws.ToString(lb.LoadBalancers[0].VpcId) != vpc {
		t.Errorf("load balancer %+v", lb.LoadBalancers[0])
	}
	if again, err := lbc.CreateLoadBalancer(ctx, lbIn); err != nil || aws.ToString(again.LoadBalancers[0].LoadBalancerArn) != lbARN {
		t.Errorf("the same CreateLoadBalancer again = %v, %v", again, err)
	}
	_, err = lbc.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("gw-lb"), Subnets: ids[:2]})
	wantCode(t, err, "DuplicateLoadBalancerName")

	listener := func(cert string) (*elb.CreateListenerOutput, error) {
		return lbc.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: aws.String(lbARN), Protocol: elbtypes.ProtocolEnumHttps,
			Port: aws.Int32(443), SslPolicy: aws.String("ELBSecurityPolicy-TLS13-1-2-2021-06"),
			Certificates:   []elbtypes.Certificate{{CertificateArn: aws.String(cert)}},
			DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: aws.String(tgARN)}}})
	}
	_, err = listener("arn:aws:acm:us-east-1:210987654321:certificate/00000000-0000-4000-a000-000000000000")
	wantCode(t, err, "CertificateNotFound")
	_, err = listener(srv.AddACMCertificate("us-east-1", "*.example.org", "PENDING_VALIDATION"))
	wantCode(t, err, "UnsupportedCertificate")
	l, err := listener(fake.AWSCertificateARN("us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	listenerARN := aws.ToString(l.Listeners[0].ListenerArn)
	if !strings.HasPrefix(listenerARN, strings.Replace(lbARN, ":loadbalancer/", ":listener/", 1)+"/") {
		t.Errorf("listener ARN %s is not under %s", listenerARN, lbARN)
	}
	_, err = lbc.DeleteTargetGroup(ctx, &elb.DeleteTargetGroupInput{TargetGroupArn: aws.String(tgARN)})
	wantCode(t, err, "ResourceInUse")

	// Only running instances join a target group.
	imgs, err := ec.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"142421590066"},
		Filters: []ec2types.Filter{{Name: aws.String("name"), Values: []string{"dstack-0.7"}}}})
	if err != nil || len(imgs.Images) == 0 {
		t.Fatalf("images: %v, %v", imgs, err)
	}
	run, err := ec.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: imgs.Images[0].ImageId, InstanceType: "t3.micro",
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), SubnetId: aws.String(ids[0])})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(run.Instances[0].InstanceId)
	register := func() error {
		_, err := lbc.RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: aws.String(tgARN),
			Targets: []elbtypes.TargetDescription{{Id: aws.String(id)}}})
		return err
	}
	wantCode(t, register(), "InvalidTarget")
	time.Sleep(2 * fake.DefaultTestBootDelay)
	for range 2 {
		if err := register(); err != nil {
			t.Fatalf("RegisterTargets of a running instance: %v", err)
		}
	}
	if _, tgs, _ := srv.AWSLoadBalancing(); len(tgs) != 1 || strings.Join(tgs[0].Targets, ",") != id+":80" {
		t.Errorf("target groups %+v, want %s:80 registered once", tgs, id)
	}
	if _, err := lbc.DeregisterTargets(ctx, &elb.DeregisterTargetsInput{TargetGroupArn: aws.String(tgARN),
		Targets: []elbtypes.TargetDescription{{Id: aws.String(id)}}}); err != nil {
		t.Errorf("DeregisterTargets: %v", err)
	}

	if _, err := lbc.AddTags(ctx, &elb.AddTagsInput{ResourceArns: []string{lbARN, tgARN, listenerARN},
		Tags: []elbtypes.Tag{{Key: aws.String("dstack_project"), Value: aws.String("main")}}}); err != nil {
		t.Fatal(err)
	}
	lbs, tgs, ls := srv.AWSLoadBalancing()
	if lbs[0].Tags["dstack_project"] != "main" || lbs[0].Tags["team"] != "ml" || tgs[0].Tags["dstack_project"] != "main" ||
		ls[0].Tags["dstack_project"] != "main" {
		t.Errorf("tags after AddTags: %v, %v, %v", lbs[0].Tags, tgs[0].Tags, ls[0].Tags)
	}

	// Deleting the load balancer deletes its listener and frees the target group.
	for range 2 {
		if _, err := lbc.DeleteLoadBalancer(ctx, &elb.DeleteLoadBalancerInput{LoadBalancerArn: aws.String(lbARN)}); err != nil {
			t.Errorf("DeleteLoadBalancer: %v", err)
		}
	}
	_, err = lbc.DeleteListener(ctx, &elb.DeleteListenerInput{ListenerArn: aws.String(listenerARN)})
	wantCode(t, err, "ListenerNotFound")
	if _, err := lbc.DeleteTargetGroup(ctx, &elb.DeleteTargetGroupInput{TargetGroupArn: aws.String(tgARN)}); err != nil {
		t.Errorf("DeleteTargetGroup: %v", err)
	}
	_, err = lbc.DeleteTargetGroup(ctx, &elb.DeleteTargetGroupInput{TargetGroupArn: aws.String(tgARN)})
	wantCode(t, err, "TargetGroupNotFound")
	_, err = lbc.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: aws.String(lbARN), Protocol: elbtypes.ProtocolEnumHttp,
		Port: aws.Int32(80), DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: aws.String(tgARN)}}})
	wantCode(t, err, "LoadBalancerNotFound")
	if lbs, tgs, ls := srv.AWSLoadBalancing(); len(lbs)+len(tgs)+len(ls) != 0 {
		t.Errorf("left: %v %v %v", lbs, tgs, ls)
	}
	if misses := srv.Misses(); len(misses) != 0 {
		t.Errorf("misses: %v", misses)
	}
}

// TestAWSCertificates drives the ACM simulation through the SDK.
func TestAWSCertificates(t *testing.T) {
	srv := fake.Start(t, "aws")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := acm.NewFromConfig(awsSDKConfig(srv))
	seeded := fake.AWSCertificateARN("us-east-1")
	out, err := c.DescribeCertificate(ctx, &acm.DescribeCertificateInput{CertificateArn: aws.String(seeded)})
	if err != nil {
		t.Fatal(err)
	}
	if d := out.Certificate; d.Status != acmtypes.CertificateStatusIssued || aws.ToString(d.DomainName) != "*.example.com" ||
		d.IssuedAt == nil || aws.ToString(d.CertificateArn) != seeded {
		t.Errorf("certificate %+v", d)
	}
	_, err = c.DescribeCertificate(ctx, &acm.DescribeCertificateInput{CertificateArn: aws.String(fake.AWSCertificateARN("eu-west-1"))})
	wantCode(t, err, "ResourceNotFoundException")
	_, err = c.DescribeCertificate(ctx, &acm.DescribeCertificateInput{CertificateArn: aws.String("arn:aws:acm:us-east-1:210987654321:certificate/x")})
	wantCode(t, err, "InvalidArnException")

	pending := srv.AddACMCertificate("us-east-1", "*.example.org", "PENDING_VALIDATION")
	all, err := c.ListCertificates(ctx, &acm.ListCertificatesInput{})
	if err != nil || len(all.CertificateSummaryList) != 2 {
		t.Fatalf("ListCertificates = %+v, %v; want 2", all, err)
	}
	issued, err := c.ListCertificates(ctx, &acm.ListCertificatesInput{CertificateStatuses: []acmtypes.CertificateStatus{acmtypes.CertificateStatusIssued}})
	if err != nil || len(issued.CertificateSummaryList) != 1 || aws.ToString(issued.CertificateSummaryList[0].CertificateArn) != seeded {
		t.Errorf("issued certificates %+v, %v", issued, err)
	}
	if d, err := c.DescribeCertificate(ctx, &acm.DescribeCertificateInput{CertificateArn: aws.String(pending)}); err != nil ||
		d.Certificate.Status != acmtypes.CertificateStatusPendingValidation || d.Certificate.IssuedAt != nil {
		t.Errorf("pending certificate %+v, %v", d, err)
	}

	bad := awsSDKConfig(srv)
	bad.Credentials = credentials.NewStaticCredentialsProvider("AKIANOSUCHKEY0000000", "x", "")
	_, err = acm.NewFromConfig(bad).DescribeCertificate(ctx, &acm.DescribeCertificateInput{CertificateArn: aws.String(seeded)})
	wantCode(t, err, "UnrecognizedClientException")
	_, err = elb.NewFromConfig(bad).DeleteLoadBalancer(ctx, &elb.DeleteLoadBalancerInput{LoadBalancerArn: aws.String("x")})
	wantCode(t, err, "InvalidClientTokenId")
	if misses := srv.Misses(); len(misses) != 0 {
		t.Errorf("misses: %v", misses)
	}
}

// TestAWSLoadBalancingWire checks the ELBv2 envelopes and the refusal of malformed requests.
func TestAWSLoadBalancingWire(t *testing.T) {
	srv := fake.Start(t, "aws")
	creds := srv.Good.Values["creds"].(map[string]any)
	key, secret := creds["access_key"].(string), creds["secret_key"].(string)
	status, body := awsCall(t, srv, "elasticloadbalancing", "us-east-1", key, secret,
		"Action=DeleteLoadBalancer&Version=2015-12-01&LoadBalancerArn=arn%3Aaws%3Aelasticloadbalancing%3Aus-east-1%3A210987654321%3Aloadbalancer%2Fapp%2Fgone%2F0123456789abcdef", nil)
	if status != 200 || !strings.Contains(body, `<DeleteLoadBalancerResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"><DeleteLoadBalancerResult>`) ||
		!strings.Contains(body, "<ResponseMetadata><RequestId>") {
		t.Errorf("DeleteLoadBalancer of a gone load balancer: %d %s", status, body)
	}
	status, body = awsCall(t, srv, "elasticloadbalancing", "us-east-1", key, secret, "Action=DeleteListener&Version=2015-12-01&ListenerArn=nope", nil)
	if status != 400 || !strings.Contains(body, `<ErrorResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"><Error><Type>Sender</Type><Code>ValidationError</Code>`) {
		t.Errorf("DeleteListener of a malformed ARN: %d %s", status, body)
	}
	if len(srv.Misses()) != 1 {
		t.Errorf("misses %v, want the malformed ARN", srv.Misses())
	}
	status, body = awsCall(t, srv, "elasticloadbalancing", "us-east-1", key, secret, "Action=DescribeLoadBalancers&Version=2015-12-01", nil)
	if status != 400 || !strings.Contains(body, "<Code>InvalidAction</Code>") {
		t.Errorf("an action gateways do not call: %d %s", status, body)
	}
}
