package fake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// What AWS gateways with ACM certificates call besides EC2:
//
//   - Elastic Load Balancing v2 (Query API, Version=2015-12-01, answers in the
//     http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/ namespace, errors
//     <ErrorResponse><Error><Type/><Code/><Message/></Error>): CreateTargetGroup, CreateLoadBalancer
//     (application load balancers), CreateListener, RegisterTargets, DeregisterTargets, AddTags,
//     DeleteListener, DeleteLoadBalancer and DeleteTargetGroup. A Create call repeated with the same
//     settings answers the existing resource, as AWS documents; with other settings it is
//     DuplicateTargetGroupName, DuplicateLoadBalancerName or DuplicateListener. Unknown ARNs are
//     LoadBalancerNotFound, TargetGroupNotFound or ListenerNotFound, except that DeleteLoadBalancer
//     succeeds for a load balancer that is gone (as AWS documents); a target group that a listener
//     forwards to is ResourceInUse; only running instances of the group's VPC can be registered
//     (InvalidTarget). An application load balancer needs subnets of at least two zones of one VPC,
//     and an internet gateway in that VPC when internet-facing. Deleting a load balancer deletes
//     its listeners.
//   - ACM (JSON 1.1, X-Amz-Target: CertificateManager.<Action>): DescribeCertificate and
//     ListCertificates; errors {"__type", "message"}: InvalidArnException, ResourceNotFoundException,
//     ValidationException. Every region has an ISSUED certificate for *.example.com
//     (AWSCertificateARN); tests add others with Sim.AddACMCertificate.
//
// Every ELBv2 call is served under the Sim's launchMu, so check-then-create sequences are atomic.

// AWSLoadBalancer is a simulated application load balancer.
type AWSLoadBalancer struct {
	ARN, Name, DNSName, Region, Scheme, VPC string
	Subnets, SecurityGroups                 []string
	Tags                                    map[string]string
	Created                                 time.Time
	settings                                string
}

// AWSTargetGroup is a simulated target group; Targets are instance:port.
type AWSTargetGroup struct {
	ARN, Name, Region, Protocol, VPC, TargetType string
	Port                                         int
	HealthCheckProtocol, HealthCheckPath         string
	Matcher                                      string
	Targets                                      []string
	Tags                                         map[string]string
	settings                                     string
}

// AWSListener is a simulated listener; it forwards to TargetGroup.
type AWSListener struct {
	ARN, LoadBalancer, Region, Protocol string
	Port                                int
	SSLPolicy, Certificate, TargetGroup string
	Tags                                map[string]string
	settings                            string
}

// AWSCertificate is a simulated ACM certificate.
type AWSCertificate struct {
	ARN, Region, Domain, Status string
	Created                     time.Time
}

const (
	elbLBKind       = "elb-load-balancers"
	elbTGKind       = "elb-target-groups"
	elbListenerKind = "elb-listeners"
	acmCertKind     = "acm-certificates"
	elbHostedZone   = "Z35SXDOTRQ7X7K"
)

var (
	elbNameRe     = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?$`)
	lbARNRe       = regexp.MustCompile(`^arn:aws:elasticloadbalancing:([a-z0-9-]+):\d{12}:loadbalancer/app/[A-Za-z0-9-]{1,32}/[0-9a-f]{16}$`)
	tgARNRe       = regexp.MustCompile(`^arn:aws:elasticloadbalancing:([a-z0-9-]+):\d{12}:targetgroup/[A-Za-z0-9-]{1,32}/[0-9a-f]{16}$`)
	listenerARNRe = regexp.MustCompile(`^arn:aws:elasticloadbalancing:([a-z0-9-]+):\d{12}:listener/app/[A-Za-z0-9-]{1,32}/[0-9a-f]{16}/[0-9a-f]{16}$`)
	acmARNRe      = regexp.MustCompile(`^arn:aws:acm:([a-z0-9-]+):(\d{12}):certificate/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	httpCodesRe   = regexp.MustCompile(`^\d{3}(-\d{3})?(,\d{3}(-\d{3})?)*$`)
)

// elbSSLPolicies are the listener security policies the simulation knows.
var elbSSLPolicies = []string{"ELBSecurityPolicy-2016-08", "ELBSecurityPolicy-TLS-1-2-2017-01", "ELBSecurityPolicy-TLS-1-2-Ext-2018-06",
	"ELBSecurityPolicy-FS-1-2-Res-2020-10", "ELBSecurityPolicy-TLS13-1-2-2021-06", "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
	"ELBSecurityPolicy-TLS13-1-3-2021-06"}

// AWSCertificateARN is the ARN of the ISSUED certificate for *.example.com that every region has.
func AWSCertificateARN(region string) string {
	h := awsID("x", "acm", region)[2:]
	h += awsID("x", "acm2", region)[2:]
	return fmt.Sprintf("arn:aws:acm:%s:%s:certificate/%s-%s-4%s-a%s-%s", region, awsAccount, h[:8], h[8:12], h[12:15], h[15:18], h[18:30])
}

// AddACMCertificate adds a certificate for domain with an ACM status (ISSUED, PENDING_VALIDATION,
// EXPIRED...) in region and returns its ARN.
func (s *Sim) AddACMCertificate(region, domain, status string) string {
	c := &AWSCertificate{ARN: fmt.Sprintf("arn:aws:acm:%s:%s:certificate/%s", region, awsAccount, s.uuid()), Region: region,
		Domain: domain, Status: status, Created: time.Now().UTC()}
	s.putObject(acmCertKind, c.ARN, c)
	return c.ARN
}

// acmCertificate finds a certificate by ARN, seeded or added.
func (s *Sim) acmCertificate(arn string) *AWSCertificate {
	if c, ok := s.Objects(acmCertKind)[arn].(*AWSCertificate); ok {
		return c
	}
	for _, r := range awsRegions {
		if AWSCertificateARN(r) == arn {
			return &AWSCertificate{ARN: arn, Region: r, Domain: "*.example.com", Status: "ISSUED",
				Created: time.Date(2025, 1, 10, 12, 0, 0, 0, time.UTC)}
		}
	}
	return nil
}

// AWSLoadBalancing lists the load balancers, target groups and listeners that exist, by ARN.
func (s *Sim) AWSLoadBalancing() ([]AWSLoadBalancer, []AWSTargetGroup, []AWSListener) {
	s.launchMu.Lock()
	defer s.launchMu.Unlock()
	var lbs []AWSLoadBalancer
	for _, o := range sortedObjects(s, elbLBKind) {
		lbs = append(lbs, *o.(*AWSLoadBalancer))
	}
	var tgs []AWSTargetGroup
	for _, o := range sortedObjects(s, elbTGKind) {
		tg := *o.(*AWSTargetGroup)
		tg.Targets = append([]string(nil), tg.Targets...)
		tgs = append(tgs, tg)
	}
	var ls []AWSListener
	for _, o := range sortedObjects(s, elbListenerKind) {
		ls = append(ls, *o.(*AWSListener))
	}
	return lbs, tgs, ls
}

// AWSGroupIngress lists the ingress rules of the security groups named name, as
// "<protocol> <from>-<to> <cidr or group>", sorted.
func (s *Sim) AWSGroupIngress(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, o := range s.objects["security-groups"] {
		sg := o.(*awsSG)
		if sg.name != name {
			continue
		}
		for _, p := range sg.ingress {
			peer := p.cidr
			if peer == "" {
				peer = p.peer
			}
			out = append(out, fmt.Sprintf("%s %d-%d %s", p.proto, p.from, p.to, peer))
		}
	}
	sort.Strings(out)
	return out
}

// elbAction is one ELBv2 action: the parameters it takes and how it is served.
type elbAction struct {
	params []string
	serve  func(q *awsReq) string
}

var elbActions map[string]elbAction

func init() {
	elbActions = map[string]elbAction{
		"CreateTargetGroup": {[]string{"Name", "Protocol", "ProtocolVersion", "Port", "VpcId", "HealthCheckProtocol", "HealthCheckPort",
			"HealthCheckEnabled", "HealthCheckPath", "HealthCheckIntervalSeconds", "HealthCheckTimeoutSeconds", "HealthyThresholdCount",
			"UnhealthyThresholdCount", "Matcher", "TargetType", "Tags", "IpAddressType"}, elbCreateTargetGroup},
		"CreateLoadBalancer": {[]string{"Name", "Subnets", "SubnetMappings", "SecurityGroups", "Scheme", "Tags", "Type", "IpAddressType",
			"CustomerOwnedIpv4Pool", "EnablePrefixForIpv6SourceNat", "IpamPools"}, elbCreateLoadBalancer},
		"CreateListener": {[]string{"LoadBalancerArn", "Protocol", "Port", "SslPolicy", "Certificates", "DefaultActions", "AlpnPolicy",
			"Tags", "MutualAuthentication"}, elbCreateListener},
		"RegisterTargets":    {[]string{"TargetGroupArn", "Targets"}, elbRegisterTargets},
		"DeregisterTargets":  {[]string{"TargetGroupArn", "Targets"}, elbDeregisterTargets},
		"AddTags":            {[]string{"ResourceArns", "Tags"}, elbAddTags},
		"DeleteListener":     {[]string{"ListenerArn"}, elbDeleteListener},
		"DeleteLoadBalancer": {[]string{"LoadBalancerArn"}, elbDeleteLoadBalancer},
		"DeleteTargetGroup":  {[]string{"TargetGroupArn"}, elbDeleteTargetGroup},
	}
}

func serveELB(q *awsReq) string {
	h, ok := elbActions[q.action]
	if !ok {
		return q.bad("InvalidAction", fmt.Sprintf("Could not find operation %s for version %s", q.action, elbVersion))
	}
	if p := q.form.unknown(h.params...); p != "" {
		return q.bad("ValidationError", "The parameter "+p+" is not recognized")
	}
	q.s.launchMu.Lock()
	defer q.s.launchMu.Unlock()
	return h.serve(q)
}

// elbSettings are a Create call's parameters but its tags: what makes a repeated call the same.
func (q *awsReq) elbSettings() string {
	v := url.Values{}
	for k, vals := range q.form.Values {
		if top, _, _ := strings.Cut(k, "."); top != "Tags" && k != "Action" && k != "Version" {
			v[k] = vals
		}
	}
	return v.Encode()
}

// elbTags reads Tags.member.N.Key and .Value.
func (q *awsReq) elbTags() (map[string]string, string) {
	tags := map[string]string{}
	for _, i := range q.form.indexes("Tags.member") {
		t := q.form.sub("Tags.member", i)
		k := t.Get("Key")
		switch {
		case k == "" || len(k) > 128 || len(t.Get("Value")) > 256:
			return nil, q.bad("ValidationError", fmt.Sprintf("Tag key %q or its value is empty or too long", k))
		case strings.HasPrefix(strings.ToLower(k), "aws:"):
			return nil, q.bad("ValidationError", "Tag keys starting with 'aws:' are reserved for internal use")
		}
		if _, dup := tags[k]; dup {
			return nil, q.bad("DuplicateTagKeys", fmt.Sprintf("Tag key '%s' is duplicated", k))
		}
		tags[k] = t.Get("Value")
	}
	if len(tags) > 50 {
		return nil, q.bad("TooManyTags", "The quota for the number of tags that can be assigned to a load balancer has been reached")
	}
	return tags, ""
}

// elbName checks the name of a load balancer or target group.
func (q *awsReq) elbName(what, name string) string {
	switch {
	case name == "":
		return q.bad("ValidationError", fmt.Sprintf("A %s name must be specified", what))
	case len(name) > 32:
		return q.bad("ValidationError", fmt.Sprintf("%s name '%s' cannot be longer than '32' characters", what, name))
	case !elbNameRe.MatchString(name):
		return q.bad("ValidationError", fmt.Sprintf("%s name '%s' can only contain characters that are alphanumeric characters or hyphens(-), and cannot begin or end with a hyphen", what, name))
	}
	return ""
}

func (q *awsReq) elbARN(kind, id string) string {
	return fmt.Sprintf("arn:aws:elasticloadbalancing:%s:%s:%s/%s", q.region, awsAccount, kind, id)
}

// loadBalancer finds a load balancer by ARN; on a bad or unknown ARN it has answered, nil and
// the miss (for a malformed ARN).
func (q *awsReq) loadBalancer(arn string) (*AWSLoadBalancer, string) {
	if !lbARNRe.MatchString(arn) {
		return nil, q.bad("ValidationError", fmt.Sprintf("'%s' is not a valid load balancer ARN", arn))
	}
	lb, _ := q.s.Objects(elbLBKind)[arn].(*AWSLoadBalancer)
	if lb == nil || lb.Region != q.region {
		q.fail(http.StatusBadRequest, "LoadBalancerNotFound", "One or more load balancers not found")
		return nil, ""
	}
	return lb, ""
}

func (q *awsReq) targetGroup(arn string) (*AWSTargetGroup, string) {
	if !tgARNRe.MatchString(arn) {
		return nil, q.bad("ValidationError", fmt.Sprintf("'%s' is not a valid target group ARN", arn))
	}
	tg, _ := q.s.Objects(elbTGKind)[arn].(*AWSTargetGroup)
	if tg == nil || tg.Region != q.region {
		q.fail(http.StatusBadRequest, "TargetGroupNotFound", "One or more target groups not found")
		return nil, ""
	}
	return tg, ""
}

func (q *awsReq) listener(arn string) (*AWSListener, string) {
	if !listenerARNRe.MatchString(arn) {
		return nil, q.bad("ValidationError", fmt.Sprintf("'%s' is not a valid listener ARN", arn))
	}
	l, _ := q.s.Objects(elbListenerKind)[arn].(*AWSListener)
	if l == nil || l.Region != q.region {
		q.fail(http.StatusBadRequest, "ListenerNotFound", "One or more listeners not found")
		return nil, ""
	}
	return l, ""
}

func (q *awsReq) intParam(name string, def, lo, hi int) (int, string) {
	s := q.form.Get(name)
	if s == "" {
		return def, ""
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, q.bad("ValidationError", fmt.Sprintf("1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must have value between %d and %d",
			s, strings.ToLower(name[:1])+name[1:], lo, hi))
	}
	return n, ""
}

func elbCreateTargetGroup(q *awsReq) string {
	f := q.form
	name := f.Get("Name")
	if miss := q.elbName("Target group", name); miss != "" {
		return miss
	}
	typ := f.Get("TargetType")
	if typ == "" {
		typ = "instance"
	}
	if !contains([]string{"instance", "ip", "lambda", "alb"}, typ) {
		return q.bad("ValidationError", fmt.Sprintf("Target type '%s' is not valid", typ))
	}
	if typ == "lambda" || typ == "alb" {
		return q.bad("ValidationError", "the simulation has instance and ip target groups only")
	}
	proto, vpcID := f.Get("Protocol"), f.Get("VpcId")
	switch {
	case proto == "":
		return q.bad("ValidationError", "A protocol must be specified")
	case !contains([]string{"HTTP", "HTTPS", "TCP", "TLS", "UDP", "TCP_UDP", "GENEVE"}, proto):
		return q.bad("ValidationError", fmt.Sprintf("Protocol '%s' is not valid", proto))
	case f.Get("Port") == "":
		return q.bad("ValidationError", "A port must be specified")
	case vpcID == "":
		return q.bad("ValidationError", "A VPC ID must be specified")
	}
	port, miss := q.intParam("Port", 0, 1, 65535)
	if miss != "" {
		return miss
	}
	if awsNetwork(q.region).vpc(vpcID) == nil {
		q.fail(http.StatusBadRequest, "ValidationError", fmt.Sprintf("The VPC ID '%s' is not found", vpcID))
		return ""
	}
	web := proto == "HTTP" || proto == "HTTPS"
	hcProto := f.Get("HealthCheckProtocol")
	if hcProto == "" {
		hcProto = map[bool]string{true: proto, false: "TCP"}[web]
	}
	if !contains([]string{"HTTP", "HTTPS", "TCP"}, hcProto) {
		return q.bad("ValidationError", fmt.Sprintf("Health check protocol '%s' is not valid", hcProto))
	}
	if web && hcProto == "TCP" {
		return q.bad("ValidationError", fmt.Sprintf("Health check protocol 'TCP' is not supported for target groups with the '%s' protocol", proto))
	}
	path := f.Get("HealthCheckPath")
	if path != "" && hcProto == "TCP" {
		return q.bad("ValidationError", "Health check path cannot be specified for TCP health checks")
	}
	if path == "" && hcProto != "TCP" {
		path = "/"
	}
	if path != "" && (!strings.HasPrefix(path, "/") || len(path) > 1024) {
		return q.bad("ValidationError", "Health check path must begin with a '/' character and be at most 1024 characters long")
	}
	codes := f.Get("Matcher.HttpCode")
	if codes == "" && web {
		codes = "200"
	}
	if codes != "" {
		if !web {
			return q.bad("ValidationError", "Health check matcher HTTP codes cannot be specified for target groups with the '"+proto+"' protocol")
		}
		ok := httpCodesRe.MatchString(codes)
		for _, part := range strings.FieldsFunc(codes, func(r rune) bool { return r == ',' || r == '-' }) {
			n, _ := strconv.Atoi(part)
			ok = ok && n >= 200 && n <= 499
		}
		if !ok {
			return q.bad("ValidationError", fmt.Sprintf("Health check matcher HTTP code '%s' must be within '200-499' inclusive", codes))
		}
	}
	tags, miss := q.elbTags()
	if miss != "" {
		return miss
	}
	settings := q.elbSettings()
	for _, o := range q.s.Objects(elbTGKind) {
		if tg := o.(*AWSTargetGroup); tg.Region == q.region && tg.Name == name {
			if tg.settings != settings {
				q.fail(http.StatusBadRequest, "DuplicateTargetGroupName", fmt.Sprintf("A target group with the same name '%s' exists, but with different settings", name))
				return ""
			}
			return q.answerTargetGroup(tg)
		}
	}
	tg := &AWSTargetGroup{ARN: q.elbARN("targetgroup", name+"/"+q.s.hexID(16)), Name: name, Region: q.region, Protocol: proto,
		VPC: vpcID, TargetType: typ, Port: port, HealthCheckProtocol: hcProto, HealthCheckPath: path, Matcher: codes, Tags: tags,
		settings: settings}
	q.s.putObject(elbTGKind, tg.ARN, tg)
	return q.answerTargetGroup(tg)
}

func (q *awsReq) answerTargetGroup(tg *AWSTargetGroup) string {
	var w xw
	w.open("TargetGroups")
	w.open("member")
	w.el("TargetGroupArn", tg.ARN)
	w.el("TargetGroupName", tg.Name)
	w.el("Protocol", tg.Protocol)
	w.el("Port", tg.Port)
	w.el("VpcId", tg.VPC)
	w.el("HealthCheckProtocol", tg.HealthCheckProtocol)
	w.el("HealthCheckPort", "traffic-port")
	w.el("HealthCheckEnabled", true)
	w.el("HealthCheckIntervalSeconds", 30)
	w.el("HealthCheckTimeoutSeconds", 5)
	w.el("HealthyThresholdCount", 5)
	w.el("UnhealthyThresholdCount", 2)
	w.el("HealthCheckPath", tg.HealthCheckPath)
	if tg.Matcher != "" {
		w.WriteString("<Matcher><HttpCode>" + tg.Matcher + "</HttpCode></Matcher>")
	}
	w.open("LoadBalancerArns")
	for _, lb := range q.loadBalancersOf(tg.ARN) {
		w.el("member", lb)
	}
	w.close("LoadBalancerArns")
	w.el("TargetType", tg.TargetType)
	if tg.Protocol == "HTTP" || tg.Protocol == "HTTPS" {
		w.el("ProtocolVersion", "HTTP1")
	}
	w.el("IpAddressType", "ipv4")
	w.close("member")
	w.close("TargetGroups")
	q.ok(w.String())
	return ""
}

// loadBalancersOf lists the load balancers whose listeners forward to a target group.
func (q *awsReq) loadBalancersOf(tgARN string) []string {
	var out []string
	for _, o := range q.s.Objects(elbListenerKind) {
		if l := o.(*AWSListener); l.TargetGroup == tgARN && !contains(out, l.LoadBalancer) {
			out = append(out, l.LoadBalancer)
		}
	}
	sort.Strings(out)
	return out
}

func elbCreateLoadBalancer(q *awsReq) string {
	f := q.form
	name := f.Get("Name")
	if miss := q.elbName("Load balancer", name); miss != "" {
		return miss
	}
	if strings.HasPrefix(name, "internal-") {
		return q.bad("ValidationError", fmt.Sprintf("Load balancer name '%s' cannot begin with 'internal-'", name))
	}
	if typ := f.Get("Type"); typ != "" && typ != "application" {
		if !contains([]string{"network", "gateway"}, typ) {
			return q.bad("ValidationError", fmt.Sprintf("Load balancer type '%s' is not valid", typ))
		}
		return q.bad("ValidationError", "the simulation has application load balancers only")
	}
	scheme := f.Get("Scheme")
	if scheme == "" {
		scheme = "internet-facing"
	}
	if scheme != "internet-facing" && scheme != "internal" {
		return q.bad("ValidationError", fmt.Sprintf("Scheme '%s' is not valid", scheme))
	}
	if ipt := f.Get("IpAddressType"); ipt != "" && ipt != "ipv4" && ipt != "dualstack" {
		return q.bad("ValidationError", fmt.Sprintf("IP address type '%s' is not valid", ipt))
	}
	ids := f.list("Subnets.member")
	for _, i := range f.indexes("SubnetMappings.member") {
		ids = append(ids, f.sub("SubnetMappings.member", i).Get("SubnetId"))
	}
	n := awsNetwork(q.region)
	var subnets []*awsSubnet
	zones := map[string]bool{}
	for _, id := range ids {
		sn := n.subnet(id)
		if sn == nil {
			q.fail(http.StatusBadRequest, "SubnetNotFound", fmt.Sprintf("The subnet ID '%s' is not valid", id))
			return ""
		}
		if len(subnets) > 0 && sn.vpc != subnets[0].vpc {
			q.fail(http.StatusBadRequest, "InvalidConfigurationRequest", "The subnets of a load balancer must belong to the same VPC")
			return ""
		}
		if zones[sn.az] {
			q.fail(http.StatusBadRequest, "InvalidConfigurationRequest", "A load balancer cannot be attached to multiple subnets in the same Availability Zone")
			return ""
		}
		zones[sn.az] = true
		subnets = append(subnets, sn)
	}
	if len(zones) < 2 {
		q.fail(http.StatusBadRequest, "ValidationError", "At least two subnets in two different Availability Zones must be specified")
		return ""
	}
	vpc := subnets[0].vpc
	if scheme == "internet-facing" && !awsVPCHasIGW(n, vpc) {
		q.fail(http.StatusBadRequest, "InvalidSubnet", fmt.Sprintf("VPC %s has no internet gateway", vpc))
		return ""
	}
	groups := f.list("SecurityGroups.member")
	all := q.securityGroups()
	for _, g := range groups {
		found := false
		for _, sg := range all {
			found = found || sg.id == g && sg.vpc == vpc
		}
		if !found {
			q.fail(http.StatusBadRequest, "InvalidSecurityGroup", fmt.Sprintf("Security group '%s' does not exist in VPC '%s'", g, vpc))
			return ""
		}
	}
	if len(groups) == 0 {
		groups = []string{awsID("sg", q.region, vpc, "default")}
	}
	tags, miss := q.elbTags()
	if miss != "" {
		return miss
	}
	settings := q.elbSettings()
	for _, o := range q.s.Objects(elbLBKind) {
		if lb := o.(*AWSLoadBalancer); lb.Region == q.region && lb.Name == name {
			if lb.settings != settings {
				q.fail(http.StatusBadRequest, "DuplicateLoadBalancerName", fmt.Sprintf("A load balancer with the same name '%s' exists, but with different settings", name))
				return ""
			}
			return q.answerLoadBalancer(lb)
		}
	}
	id := q.s.hexID(16)
	num, _ := strconv.ParseUint(id[:12], 16, 64)
	dns := fmt.Sprintf("%s-%010d.%s.elb.amazonaws.com", name, num%10000000000, q.region)
	if scheme == "internal" {
		dns = "internal-" + dns
	}
	lb := &AWSLoadBalancer{ARN: q.elbARN("loadbalancer", "app/"+name+"/"+id), Name: name, DNSName: dns, Region: q.region,
		Scheme: scheme, VPC: vpc, SecurityGroups: groups, Tags: tags, Created: time.Now().UTC(), settings: settings}
	for _, sn := range subnets {
		lb.Subnets = append(lb.Subnets, sn.id)
	}
	q.s.putObject(elbLBKind, lb.ARN, lb)
	return q.answerLoadBalancer(lb)
}

// awsVPCHasIGW reports whether a route table of the VPC routes through an internet gateway.
func awsVPCHasIGW(n *awsNet, vpc string) bool {
	for _, t := range n.tables {
		for _, r := range t.routes {
			if t.vpc == vpc && strings.HasPrefix(r.gateway, "igw-") {
				return true
			}
		}
	}
	return false
}

func (q *awsReq) answerLoadBalancer(lb *AWSLoadBalancer) string {
	n := awsNetwork(q.region)
	var w xw
	w.open("LoadBalancers")
	w.open("member")
	w.el("LoadBalancerArn", lb.ARN)
	w.el("DNSName", lb.DNSName)
	w.el("CanonicalHostedZoneId", elbHostedZone)
	w.el("CreatedTime", amzTime(lb.Created))
	w.el("LoadBalancerName", lb.Name)
	w.el("Scheme", lb.Scheme)
	w.el("VpcId", lb.VPC)
	w.WriteString("<State><Code>provisioning</Code></State>")
	w.el("Type", "application")
	w.open("AvailabilityZones")
	for _, id := range lb.Subnets {
		w.open("member")
		w.el("ZoneName", n.subnet(id).az)
		w.el("SubnetId", id)
		w.WriteString("<LoadBalancerAddresses/>")
		w.close("member")
	}
	w.close("AvailabilityZones")
	w.open("SecurityGroups")
	for _, g := range lb.SecurityGroups {
		w.el("member", g)
	}
	w.close("SecurityGroups")
	w.el("IpAddressType", "ipv4")
	w.close("member")
	w.close("LoadBalancers")
	q.ok(w.String())
	return ""
}

func elbCreateListener(q *awsReq) string {
	f := q.form
	lbARN, proto := f.Get("LoadBalancerArn"), f.Get("Protocol")
	if lbARN == "" {
		return q.bad("ValidationError", "A load balancer ARN must be specified")
	}
	lb, miss := q.loadBalancer(lbARN)
	if lb == nil {
		return miss
	}
	switch {
	case proto == "":
		return q.bad("ValidationError", "A listener protocol must be specified")
	case proto != "HTTP" && proto != "HTTPS":
		return q.bad("ValidationError", fmt.Sprintf("Listener protocol '%s' must be one of 'HTTPS, HTTP'", proto))
	case f.Get("Port") == "":
		return q.bad("ValidationError", "A listener port must be specified")
	}
	port, miss := q.intParam("Port", 0, 1, 65535)
	if miss != "" {
		return miss
	}
	certs := f.indexes("Certificates.member")
	cert, policy := "", f.Get("SslPolicy")
	if proto == "HTTP" && (len(certs) > 0 || policy != "") {
		return q.bad("ValidationError", "Certificates and SSL policies can only be specified for HTTPS listeners")
	}
	if proto == "HTTPS" {
		if len(certs) != 1 {
			return q.bad("ValidationError", "An HTTPS listener takes exactly one default certificate")
		}
		cert = f.sub("Certificates.member", certs[0]).Get("CertificateArn")
		if cert == "" {
			return q.bad("ValidationError", "A certificate ARN must be specified for HTTPS listeners")
		}
		if policy == "" {
			policy = "ELBSecurityPolicy-2016-08"
		}
		if !contains(elbSSLPolicies, policy) {
			q.fail(http.StatusBadRequest, "SSLPolicyNotFound", fmt.Sprintf("SSL policy '%s' not found", policy))
			return ""
		}
		c := q.s.acmCertificate(cert)
		if c == nil || c.Region != q.region {
			q.fail(http.StatusBadRequest, "CertificateNotFound", fmt.Sprintf("Certificate '%s' not found", cert))
			return ""
		}
		if c.Status != "ISSUED" {
			q.fail(http.StatusBadRequest, "UnsupportedCertificate", fmt.Sprintf("The certificate '%s' is %s: a listener takes an issued certificate", cert, c.Status))
			return ""
		}
	}
	actions := f.indexes("DefaultActions.member")
	if len(actions) != 1 {
		return q.bad("ValidationError", "the simulation takes exactly one default action")
	}
	a := f.sub("DefaultActions.member", actions[0])
	if a.Get("Type") != "forward" || a.Get("TargetGroupArn") == "" {
		return q.bad("ValidationError", "the simulation's listeners forward to one TargetGroupArn only")
	}
	tg, miss := q.targetGroup(a.Get("TargetGroupArn"))
	if tg == nil {
		return miss
	}
	if tg.VPC != lb.VPC {
		q.fail(http.StatusBadRequest, "InvalidConfigurationRequest", fmt.Sprintf("The target group '%s' is not in the VPC of the load balancer '%s'", tg.ARN, lb.ARN))
		return ""
	}
	if tg.Protocol != "HTTP" && tg.Protocol != "HTTPS" {
		q.fail(http.StatusBadRequest, "InvalidConfigurationRequest", fmt.Sprintf("The target group '%s' has protocol %s, which an application load balancer cannot use", tg.ARN, tg.Protocol))
		return ""
	}
	if others := q.loadBalancersOf(tg.ARN); len(others) > 0 && others[0] != lb.ARN {
		q.fail(http.StatusBadRequest, "TargetGroupAssociationLimit", "The following target groups cannot be associated with more than one load balancer: '"+tg.ARN+"'")
		return ""
	}
	tags, miss := q.elbTags()
	if miss != "" {
		return miss
	}
	settings := q.elbSettings()
	for _, o := range q.s.Objects(elbListenerKind) {
		if l := o.(*AWSListener); l.LoadBalancer == lb.ARN && l.Port == port {
			if l.settings != settings {
				q.fail(http.StatusBadRequest, "DuplicateListener", fmt.Sprintf("A listener already exists on port %d of load balancer '%s'", port, lb.ARN))
				return ""
			}
			return q.answerListener(l)
		}
	}
	lbPath := strings.TrimPrefix(lb.ARN, q.elbARN("loadbalancer", ""))
	l := &AWSListener{ARN: q.elbARN("listener", lbPath+"/"+q.s.hexID(16)), LoadBalancer: lb.ARN, Region: q.region, Protocol: proto,
		Port: port, TargetGroup: tg.ARN, Tags: tags, settings: settings}
	if proto == "HTTPS" {
		l.SSLPolicy, l.Certificate = policy, cert
	}
	q.s.putObject(elbListenerKind, l.ARN, l)
	return q.answerListener(l)
}

func (q *awsReq) answerListener(l *AWSListener) string {
	var w xw
	w.open("Listeners")
	w.open("member")
	w.el("ListenerArn", l.ARN)
	w.el("LoadBalancerArn", l.LoadBalancer)
	w.el("Port", l.Port)
	w.el("Protocol", l.Protocol)
	if l.Certificate != "" {
		w.WriteString("<Certificates><member>")
		w.el("CertificateArn", l.Certificate)
		w.WriteString("</member></Certificates>")
		w.el("SslPolicy", l.SSLPolicy)
	}
	w.WriteString("<DefaultActions><member><Type>forward</Type>")
	w.el("TargetGroupArn", l.TargetGroup)
	w.WriteString("<ForwardConfig><TargetGroups><member>")
	w.el("TargetGroupArn", l.TargetGroup)
	w.WriteString("<Weight>1</Weight></member></TargetGroups><TargetGroupStickinessConfig><Enabled>false</Enabled></TargetGroupStickinessConfig></ForwardConfig>")
	w.WriteString("</member></DefaultActions>")
	w.close("member")
	w.close("Listeners")
	q.ok(w.String())
	return ""
}

// targets reads Targets.member.N as instance:port (the group's port when none is given).
func (q *awsReq) targets(tg *AWSTargetGroup) ([]string, []string, string) {
	idx := q.form.indexes("Targets.member")
	if len(idx) == 0 {
		return nil, nil, q.bad("ValidationError", "At least one target must be specified")
	}
	var ids, out []string
	for _, i := range idx {
		t := q.form.sub("Targets.member", i)
		id := t.Get("Id")
		if id == "" {
			return nil, nil, q.bad("ValidationError", "A target ID must be specified")
		}
		port := tg.Port
		if p := t.Get("Port"); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil || n < 1 || n > 65535 {
				return nil, nil, q.bad("ValidationError", fmt.Sprintf("Target port '%s' must be between 1 and 65535", p))
			}
			port = n
		}
		ids = append(ids, id)
		out = append(out, fmt.Sprintf("%s:%d", id, port))
	}
	return ids, out, ""
}

func elbRegisterTargets(q *awsReq) string {
	tg, miss := q.targetGroup(q.form.Get("TargetGroupArn"))
	if tg == nil {
		return miss
	}
	ids, targets, miss := q.targets(tg)
	if miss != "" {
		return miss
	}
	var notRunning, elsewhere []string
	for _, id := range ids {
		m, found := q.s.snapshot(id)
		if !instanceIDRe.MatchString(id) || !found || m.Region != q.region {
			q.fail(http.StatusBadRequest, "InvalidTarget", fmt.Sprintf("The following targets are not valid instances: '%s'", id))
			return ""
		}
		if _, state, _ := awsState(m); state != "running" {
			notRunning = append(notRunning, "'"+id+"'")
		} else if instanceOf(m).VPC != tg.VPC {
			elsewhere = append(elsewhere, "'"+id+"'")
		}
	}
	switch {
	case len(notRunning) > 0:
		q.fail(http.StatusBadRequest, "InvalidTarget", "The following targets are not in a running state and cannot be registered: "+strings.Join(notRunning, ", "))
		return ""
	case len(elsewhere) > 0:
		q.fail(http.StatusBadRequest, "InvalidTarget", fmt.Sprintf("The following targets are not in the target group's VPC '%s': %s", tg.VPC, strings.Join(elsewhere, ", ")))
		return ""
	}
	for _, t := range targets {
		if !contains(tg.Targets, t) {
			tg.Targets = append(tg.Targets, t)
		}
	}
	q.ok("")
	return ""
}

func elbDeregisterTargets(q *awsReq) string {
	tg, miss := q.targetGroup(q.form.Get("TargetGroupArn"))
	if tg == nil {
		return miss
	}
	_, targets, miss := q.targets(tg)
	if miss != "" {
		return miss
	}
	for _, t := range targets {
		if !contains(tg.Targets, t) {
			q.fail(http.StatusBadRequest, "InvalidTarget", fmt.Sprintf("The following targets are not registered in target group '%s': '%s'", tg.ARN, t))
			return ""
		}
	}
	var keep []string
	for _, t := range tg.Targets {
		if !contains(targets, t) {
			keep = append(keep, t)
		}
	}
	tg.Targets = keep
	q.ok("")
	return ""
}

func elbAddTags(q *awsReq) string {
	arns := q.form.list("ResourceArns.member")
	switch {
	case len(arns) == 0:
		return q.bad("ValidationError", "At least one resource ARN must be specified")
	case len(arns) > 20:
		return q.bad("ValidationError", "At most 20 resource ARNs can be specified")
	case len(q.form.indexes("Tags.member")) == 0:
		return q.bad("ValidationError", "At least one tag must be specified")
	}
	tags, miss := q.elbTags()
	if miss != "" {
		return miss
	}
	var targets []map[string]string
	for _, arn := range arns {
		switch {
		case lbARNRe.MatchString(arn):
			lb, miss := q.loadBalancer(arn)
			if lb == nil {
				return miss
			}
			targets = append(targets, lb.Tags)
		case tgARNRe.MatchString(arn):
			tg, miss := q.targetGroup(arn)
			if tg == nil {
				return miss
			}
			targets = append(targets, tg.Tags)
		case listenerARNRe.MatchString(arn):
			l, miss := q.listener(arn)
			if l == nil {
				return miss
			}
			targets = append(targets, l.Tags)
		default:
			return q.bad("ValidationError", fmt.Sprintf("'%s' is not a valid load balancer, target group or listener ARN", arn))
		}
	}
	for _, have := range targets {
		n := len(have)
		for k := range tags {
			if _, ok := have[k]; !ok {
				n++
			}
		}
		if n > 50 {
			q.fail(http.StatusBadRequest, "TooManyTags", "The quota for the number of tags that can be assigned to a load balancer has been reached")
			return ""
		}
	}
	for _, have := range targets {
		for k, v := range tags {
			have[k] = v
		}
	}
	q.ok("")
	return ""
}

func elbDeleteListener(q *awsReq) string {
	arn := q.form.Get("ListenerArn")
	if arn == "" {
		return q.bad("ValidationError", "A listener ARN must be specified")
	}
	l, miss := q.listener(arn)
	if l == nil {
		return miss
	}
	q.s.deleteObject(elbListenerKind, l.ARN)
	q.ok("")
	return ""
}

func elbDeleteLoadBalancer(q *awsReq) string {
	arn := q.form.Get("LoadBalancerArn")
	switch {
	case arn == "":
		return q.bad("ValidationError", "A load balancer ARN must be specified")
	case !lbARNRe.MatchString(arn):
		return q.bad("ValidationError", fmt.Sprintf("'%s' is not a valid load balancer ARN", arn))
	}
	if lb, _ := q.s.Objects(elbLBKind)[arn].(*AWSLoadBalancer); lb != nil && lb.Region == q.region {
		for id, o := range q.s.Objects(elbListenerKind) {
			if o.(*AWSListener).LoadBalancer == arn {
				q.s.deleteObject(elbListenerKind, id)
			}
		}
		q.s.deleteObject(elbLBKind, arn)
	}
	q.ok("")
	return ""
}

func elbDeleteTargetGroup(q *awsReq) string {
	arn := q.form.Get("TargetGroupArn")
	if arn == "" {
		return q.bad("ValidationError", "A target group ARN must be specified")
	}
	tg, miss := q.targetGroup(arn)
	if tg == nil {
		return miss
	}
	if len(q.loadBalancersOf(tg.ARN)) > 0 {
		q.fail(http.StatusBadRequest, "ResourceInUse", fmt.Sprintf("Target group '%s' is currently in use by a listener or a rule", tg.ARN))
		return ""
	}
	q.s.deleteObject(elbTGKind, tg.ARN)
	q.ok("")
	return ""
}

// serveACM answers the ACM calls a gateway makes.
func serveACM(q *awsReq, body []byte) string {
	answer := func(v any) {
		q.w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		q.w.Header().Set("X-Amzn-RequestId", q.reqID)
		q.w.WriteHeader(http.StatusOK)
		_ = json.NewEncoder(q.w).Encode(v)
	}
	switch q.action {
	case "DescribeCertificate":
		var req struct {
			CertificateArn string `json:"CertificateArn"`
		}
		if miss := acmDecode(q, body, &req); miss != "" {
			return miss
		}
		if req.CertificateArn == "" {
			q.fail(http.StatusBadRequest, "ValidationException", "1 validation error detected: Value null at 'certificateArn' failed to satisfy constraint: Member must not be null")
			return "DescribeCertificate without CertificateArn"
		}
		m := acmARNRe.FindStringSubmatch(req.CertificateArn)
		if m == nil {
			q.fail(http.StatusBadRequest, "InvalidArnException", fmt.Sprintf("String '%s' is not a valid ARN", req.CertificateArn))
			return ""
		}
		c := q.s.acmCertificate(req.CertificateArn)
		if c == nil || c.Region != q.region || m[2] != awsAccount {
			q.fail(http.StatusBadRequest, "ResourceNotFoundException", fmt.Sprintf("Could not find certificate %s.", req.CertificateArn))
			return ""
		}
		answer(map[string]any{"Certificate": q.certificateDetail(c)})
		return ""
	case "ListCertificates":
		var req struct {
			CertificateStatuses []string       `json:"CertificateStatuses"`
			Includes            map[string]any `json:"Includes"`
			MaxItems            int            `json:"MaxItems"`
			NextToken           string         `json:"NextToken"`
			SortBy              string         `json:"SortBy"`
			SortOrder           string         `json:"SortOrder"`
		}
		if miss := acmDecode(q, body, &req); miss != "" {
			return miss
		}
		if req.MaxItems < 0 || req.MaxItems > 1000 {
			q.fail(http.StatusBadRequest, "ValidationException", "1 validation error detected: Value at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 1000")
			return "MaxItems out of range"
		}
		var list []*AWSCertificate
		if c := q.s.acmCertificate(AWSCertificateARN(q.region)); c != nil {
			list = append(list, c)
		}
		for _, o := range q.s.Objects(acmCertKind) {
			if c := o.(*AWSCertificate); c.Region == q.region {
				list = append(list, c)
			}
		}
		sort.Slice(list, func(i, j int) bool { return list[i].ARN < list[j].ARN })
		var keep []*AWSCertificate
		for _, c := range list {
			if len(req.CertificateStatuses) == 0 || contains(req.CertificateStatuses, c.Status) {
				keep = append(keep, c)
			}
		}
		start := 0
		if req.NextToken != "" {
			n, err := strconv.Atoi(req.NextToken)
			if err != nil || n < 0 || n > len(keep) {
				q.fail(http.StatusBadRequest, "InvalidArgsException", "The NextToken is not valid")
				return "NextToken " + req.NextToken
			}
			start = n
		}
		size := req.MaxItems
		if size == 0 {
			size = 1000
		}
		summaries := []any{}
		for i := start; i < len(keep) && i < start+size; i++ {
			c := keep[i]
			summaries = append(summaries, map[string]any{"CertificateArn": c.ARN, "DomainName": c.Domain, "Status": c.Status,
				"Type": "AMAZON_ISSUED", "KeyAlgorithm": "RSA_2048", "InUse": len(q.certificateUsers(c.ARN)) > 0,
				"CreatedAt": float64(c.Created.Unix())})
		}
		out := map[string]any{"CertificateSummaryList": summaries}
		if start+size < len(keep) {
			out["NextToken"] = strconv.Itoa(start + size)
		}
		answer(out)
		return ""
	}
	q.fail(http.StatusBadRequest, "UnknownOperationException", "")
	return "ACM operation " + q.action + " is not one the aws backend calls"
}

func acmDecode(q *awsReq, body []byte, v any) string {
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		q.fail(http.StatusBadRequest, "SerializationException", "")
		return "body: " + err.Error()
	}
	return ""
}

// certificateUsers lists the load balancers whose listeners use a certificate.
func (q *awsReq) certificateUsers(arn string) []string {
	out := []string{}
	for _, o := range q.s.Objects(elbListenerKind) {
		if l := o.(*AWSListener); l.Certificate == arn && !contains(out, l.LoadBalancer) {
			out = append(out, l.LoadBalancer)
		}
	}
	sort.Strings(out)
	return out
}

func (q *awsReq) certificateDetail(c *AWSCertificate) map[string]any {
	d := map[string]any{"CertificateArn": c.ARN, "DomainName": c.Domain, "SubjectAlternativeNames": []string{c.Domain},
		"Status": c.Status, "Type": "AMAZON_ISSUED", "KeyAlgorithm": "RSA_2048", "SignatureAlgorithm": "SHA256WITHRSA",
		"CreatedAt": float64(c.Created.Unix()), "InUseBy": q.certificateUsers(c.ARN), "RenewalEligibility": "INELIGIBLE",
		"DomainValidationOptions": []any{map[string]any{"DomainName": c.Domain, "ValidationMethod": "DNS",
			"ValidationStatus": map[bool]string{true: "SUCCESS", false: "PENDING_VALIDATION"}[c.Status == "ISSUED"]}}}
	if c.Status == "ISSUED" {
		d["Issuer"] = "Amazon"
		d["IssuedAt"] = float64(c.Created.Unix())
		d["NotBefore"] = float64(c.Created.Unix())
		d["NotAfter"] = float64(c.Created.AddDate(0, 13, 0).Unix())
		d["Serial"] = awsID("x", c.ARN)[2:]
		d["RenewalEligibility"] = "ELIGIBLE"
	}
	return d
}
