package fake

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Amazon Web Services: the four APIs the aws backend calls, all served at one URL (POST /), as the
// SDK reaches them when every client's BaseEndpoint is that URL:
//
//   - EC2 (Query API, Version=2016-11-15, form-encoded Action=...; XML answers in the
//     http://ec2.amazonaws.com/doc/2016-11-15/ namespace; errors
//     <Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>):
//     DescribeAvailabilityZones, DescribeVpcs, DescribeSubnets, DescribeRouteTables,
//     DescribeSecurityGroups, CreateSecurityGroup, AuthorizeSecurityGroupIngress, DescribeImages,
//     RunInstances, DescribeInstances, TerminateInstances, and the EBS volume actions of
//     aws_volumes.go.
//   - STS (Query API, Version=2011-06-15): GetCallerIdentity. IAM (Query API, Version=2010-05-08):
//     GetInstanceProfile. Both answer <Action>Response><Action>Result>... and errors
//     <ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>.
//   - Service Quotas (JSON 1.1, X-Amz-Target: ServiceQuotasV20190624.<Action>): ListServiceQuotas,
//     GetServiceQuota; errors {"__type", "message"} with X-Amzn-ErrorType.
//   - Elastic Load Balancing v2 (Query API, Version=2015-12-01) and ACM (JSON 1.1, X-Amz-Target:
//     CertificateManager.<Action>), for gateways with ACM certificates: see aws_gateway.go.
//
// Authentication is Signature Version 4: the Authorization header must be present and well formed
// (MissingAuthenticationToken, IncompleteSignature), the access key known (EC2 AuthFailure,
// STS/IAM InvalidClientTokenId, Service Quotas UnrecognizedClientException), the scope's service
// the one called, and the signature right: for the Good access key it is recomputed with the Good
// secret (a wrong secret is EC2 AuthFailure, STS/IAM SignatureDoesNotMatch, Service Quotas
// InvalidSignatureException). The secret itself never travels, so under Lenient auth a request
// signed by another key is accepted unless its signature verifies under the secret `invalid`: a
// secret_key set to `invalid` is refused as a wrong secret is. The region is the one of the
// signature's scope, so one URL serves every region.
//
// The world: every region of awsRegions has availability zones a, b and c and a default VPC
// (172.31.0.0/16, a public subnet per zone through the main route table's internet gateway, and a
// private subnet behind a NAT gateway in zone a), except ap-northeast-3, which has no default VPC.
// Every region also has a VPC named my-vpc (a public and a private subnet: the seed's vpc_name
// example); us-east-1, us-east-2 and us-west-1 have the seed's vpc_ids examples (ids kept as the
// documentation spells them, though real ids are hex); us-east-1 has public-only (no private
// subnet) and isolated (a private subnet without egress). Images: dstack's (owner 142421590066,
// dstack-0.7 and dstack-cuda-0.7, an older build of each), the caller's own
// my-ami-for-cpu-instances (owner self, plus a pending build) and a public third-party
// "Some ThirdParty CUDA image" (owner 123456789012). Instance types are those of CatalogCSV("aws");
// p4d.24xlarge has capacity only in zone c of us-east-1 (InsufficientInstanceCapacity elsewhere).
// Quotas: Standard 640 vCPUs, G 64 (0 in eu-north-1), P 192 in us-east-1 and 0 elsewhere; the
// spot quotas are listed by ListServiceQuotas in us-east-1 only and answered by GetServiceQuota
// everywhere. Instance profiles: dstack-instance-profile.
//
// Instances are pending (code 0) until they boot, then running (16) with a private and, when the
// launch asked for one, a public address; terminated ones (48) stay visible. RunInstances honours
// ClientToken (a retried launch returns the first instance). Capacity faults answer
// InsufficientInstanceCapacity (HTTP 500), throttling RequestLimitExceeded (EC2, 503),
// Throttling (STS, IAM) or TooManyRequestsException (Service Quotas); 5xx is InternalError.

const (
	awsAccount      = "210987654321" // the caller's account
	awsDstackOwner  = "142421590066" // dstack's AMIs
	awsThirdParty   = "123456789012"
	awsGoodKey      = "AKIASIMGOOD7EXAMPLE4"
	awsGoodSecret   = "sImGoodSecret/K7MDENG/bPxRfiCYEXAMPLEKEY"
	awsBadKey       = "AKIASIMBAD0EXAMPLE99"
	awsBadSecret    = "sImBadSecret0/K7MDENG/bPxRfiCYEXAMPLEKEY"
	awsNoDefaultVPC = "ap-northeast-3"
)

var awsRegions = []string{"us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "eu-central-1",
	"eu-west-1", "eu-west-2", "eu-west-3", "eu-north-1", "ap-southeast-1", "ap-southeast-2", "ap-northeast-1",
	"ap-northeast-2", "ap-northeast-3", "ap-south-1", "sa-east-1"}

func awsKnownRegion(r string) bool {
	for _, x := range awsRegions {
		if x == r {
			return true
		}
	}
	return false
}

// awsID is a stable resource id: prefix-<17 hex digits> derived from parts.
func awsID(prefix string, parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "/")))
	return prefix + "-" + hex.EncodeToString(sum[:])[:17]
}

type awsVPC struct {
	id, cidr, name string
	isDefault      bool
}

type awsSubnet struct {
	id, vpc, az, cidr, name string
	mapPublic, defaultForAz bool
}

type awsRoute struct{ dest, gateway, nat string }

type awsRouteTable struct {
	id, vpc string
	main    bool
	subnets []string
	routes  []awsRoute
}

type awsNet struct {
	vpcs    []awsVPC
	subnets []awsSubnet
	tables  []awsRouteTable
}

var (
	awsNetsOnce sync.Once
	awsNets     map[string]*awsNet
)

// awsZoneID is the zone id AWS gives a zone, e.g. use1-az1 for us-east-1a.
func awsZoneID(region string, i int) string {
	parts := strings.Split(region, "-")
	dir := map[string]string{"east": "e", "west": "w", "north": "n", "south": "s", "central": "c",
		"southeast": "se", "northeast": "ne"}[parts[1]]
	return fmt.Sprintf("%s%s%s-az%d", parts[0], dir, parts[2], i+1)
}

func awsNetwork(region string) *awsNet {
	awsNetsOnce.Do(func() {
		awsNets = map[string]*awsNet{}
		for _, r := range awsRegions {
			awsNets[r] = buildAWSNet(r)
		}
	})
	return awsNets[region]
}

func buildAWSNet(region string) *awsNet {
	n := &awsNet{}
	igw := func(vpc string) awsRoute { return awsRoute{dest: "0.0.0.0/0", gateway: awsID("igw", region, vpc)} }
	nat := func(vpc string) awsRoute { return awsRoute{dest: "0.0.0.0/0", nat: awsID("nat", region, vpc)} }
	local := func(cidr string) awsRoute { return awsRoute{dest: cidr, gateway: "local"} }
	// twoTier adds a VPC with a public subnet in zone a and a private one behind NAT in zone b.
	twoTier := func(id, name, cidr16 string) {
		cidr := cidr16 + ".0.0/16"
		n.vpcs = append(n.vpcs, awsVPC{id: id, cidr: cidr, name: name})
		pub := awsSubnet{id: awsID("subnet", region, id, "public"), vpc: id, az: region + "a", cidr: cidr16 + ".0.0/24", name: name + "-public", mapPublic: true}
		priv := awsSubnet{id: awsID("subnet", region, id, "private"), vpc: id, az: region + "b", cidr: cidr16 + ".1.0/24", name: name + "-private"}
		n.subnets = append(n.subnets, pub, priv)
		n.tables = append(n.tables,
			awsRouteTable{id: awsID("rtb", region, id, "main"), vpc: id, main: true, routes: []awsRoute{local(cidr)}},
			awsRouteTable{id: awsID("rtb", region, id, "public"), vpc: id, subnets: []string{pub.id}, routes: []awsRoute{local(cidr), igw(id)}},
			awsRouteTable{id: awsID("rtb", region, id, "private"), vpc: id, subnets: []string{priv.id}, routes: []awsRoute{local(cidr), nat(id)}})
	}
	if region != awsNoDefaultVPC {
		id := awsID("vpc", region, "default")
		n.vpcs = append(n.vpcs, awsVPC{id: id, cidr: "172.31.0.0/16", isDefault: true})
		for i, z := range "abc" {
			n.subnets = append(n.subnets, awsSubnet{id: awsID("subnet", region, "default", string(z)), vpc: id, az: region + string(z),
				cidr: fmt.Sprintf("172.31.%d.0/20", 16*i), mapPublic: true, defaultForAz: true})
		}
		priv := awsSubnet{id: awsID("subnet", region, "default", "private"), vpc: id, az: region + "a", cidr: "172.31.128.0/20", name: "default-private"}
		n.subnets = append(n.subnets, priv)
		n.tables = append(n.tables,
			awsRouteTable{id: awsID("rtb", region, id, "main"), vpc: id, main: true, routes: []awsRoute{local("172.31.0.0/16"), igw(id)}},
			awsRouteTable{id: awsID("rtb", region, id, "private"), vpc: id, subnets: []string{priv.id}, routes: []awsRoute{local("172.31.0.0/16"), nat(id)}})
	}
	twoTier(awsID("vpc", region, "my-vpc"), "my-vpc", "10.10")
	if docs := map[string]string{"us-east-1": "vpc-0a2b3c4d5e6f7g8h", "us-east-2": "vpc-9i8h7g6f5e4d3c2b",
		"us-west-1": "vpc-4d3c2b1a0f9e8d7"}[region]; docs != "" {
		twoTier(docs, "docs-example", "10.30")
	}
	if region == "us-east-1" {
		id := awsID("vpc", region, "public-only")
		n.vpcs = append(n.vpcs, awsVPC{id: id, cidr: "10.20.0.0/16", name: "public-only"})
		n.subnets = append(n.subnets, awsSubnet{id: awsID("subnet", region, id), vpc: id, az: region + "a", cidr: "10.20.0.0/24", mapPublic: true})
		n.tables = append(n.tables, awsRouteTable{id: awsID("rtb", region, id, "main"), vpc: id, main: true, routes: []awsRoute{local("10.20.0.0/16"), igw(id)}})
		id = awsID("vpc", region, "isolated")
		n.vpcs = append(n.vpcs, awsVPC{id: id, cidr: "10.40.0.0/16", name: "isolated"})
		n.subnets = append(n.subnets, awsSubnet{id: awsID("subnet", region, id), vpc: id, az: region + "b", cidr: "10.40.0.0/24"})
		n.tables = append(n.tables, awsRouteTable{id: awsID("rtb", region, id, "main"), vpc: id, main: true, routes: []awsRoute{local("10.40.0.0/16")}})
	}
	return n
}

func (n *awsNet) vpc(id string) *awsVPC {
	for i := range n.vpcs {
		if n.vpcs[i].id == id {
			return &n.vpcs[i]
		}
	}
	return nil
}

func (n *awsNet) subnet(id string) *awsSubnet {
	for i := range n.subnets {
		if n.subnets[i].id == id {
			return &n.subnets[i]
		}
	}
	return nil
}

type awsImage struct {
	name, owner, created, state string
	gpu, public                 bool
}

var awsImages = []awsImage{
	{"dstack-0.7", awsDstackOwner, "2025-03-01T10:00:00.000Z", "available", false, true},
	{"dstack-0.7", awsDstackOwner, "2025-01-15T10:00:00.000Z", "available", false, true},
	{"dstack-cuda-0.7", awsDstackOwner, "2025-03-01T11:00:00.000Z", "available", true, true},
	{"dstack-cuda-0.7", awsDstackOwner, "2025-01-15T11:00:00.000Z", "available", true, true},
	{"dstack-0.6", awsDstackOwner, "2024-09-01T10:00:00.000Z", "available", false, true},
	{"my-ami-for-cpu-instances", awsAccount, "2025-02-01T09:00:00.000Z", "available", false, false},
	{"my-ami-for-cpu-instances", awsAccount, "2025-04-01T09:00:00.000Z", "pending", false, false},
	{"Some ThirdParty CUDA image", awsThirdParty, "2025-02-10T09:00:00.000Z", "available", true, true},
}

func awsImageID(region string, im awsImage) string {
	return awsID("ami", region, im.owner, im.name, im.created)
}

// awsType is an instance type the simulation sells, with its catalog rows.
type awsType struct {
	name         string
	cpu, mem     int
	gpus         int
	gpuName      string
	gpuMem       float64
	price        float64 // on-demand, us-east-1
	spot         float64 // 0: no spot
	regions      []string
	capacityZone string // "": every zone; else the only zone with capacity
}

var awsTypes = []awsType{
	{"m5.large", 2, 8, 0, "", 0, 0.096, 0.0384, []string{"us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "eu-central-1", "eu-north-1", "ap-northeast-3"}, ""},
	{"c5.xlarge", 4, 8, 0, "", 0, 0.17, 0.068, []string{"us-east-1", "us-east-2", "us-west-2", "eu-west-1"}, ""},
	{"g4dn.xlarge", 4, 16, 1, "T4", 16, 0.526, 0.2104, []string{"us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "eu-central-1", "eu-north-1", "ap-northeast-3"}, ""},
	{"g5.xlarge", 4, 16, 1, "A10G", 24, 1.006, 0.4024, []string{"us-east-1", "us-east-2", "us-west-2", "eu-west-1"}, ""},
	{"p3.2xlarge", 8, 61, 1, "V100", 16, 3.06, 0.918, []string{"us-east-1", "us-west-2", "eu-west-1"}, ""},
	{"p4d.24xlarge", 96, 1152, 8, "A100", 40, 32.7726, 0, []string{"us-east-1", "us-west-2"}, "us-east-1c"},
	{"t3.micro", 2, 1, 0, "", 0, 0.0104, 0, nil, ""}, // launchable, not in the catalog
}

// awsPrice is a type's price in a region (Europe and Asia a tenth dearer).
func awsPrice(t awsType, region string, spot bool) float64 {
	p := t.price
	if spot {
		p = t.spot
	}
	if !strings.HasPrefix(region, "us-") {
		p = float64(int64(p*1.1*10000+0.5)) / 10000
	}
	return p
}

func awsTypeByName(name string) *awsType {
	for i := range awsTypes {
		if awsTypes[i].name == name {
			return &awsTypes[i]
		}
	}
	return nil
}

func awsCatalog() []catalogRow {
	var rows []catalogRow
	for _, t := range awsTypes {
		for _, r := range t.regions {
			row := catalogRow{name: t.name, location: r, price: awsPrice(t, r, false), cpu: t.cpu, memory: t.mem,
				gpus: t.gpus, gpuName: t.gpuName, gpuMem: t.gpuMem}
			rows = append(rows, row)
			if t.spot > 0 {
				row.price, row.spot = awsPrice(t, r, true), true
				rows = append(rows, row)
			}
		}
	}
	return rows
}

// awsQuota is one EC2 quota of the simulation.
type awsQuota struct {
	code, name, class string
	value             float64
}

func awsQuotas(region string) []awsQuota {
	g, p, pSpot := 64.0, 0.0, 0.0
	if region == "eu-north-1" {
		g = 0
	}
	if region == "us-east-1" {
		p, pSpot = 192, 96
	}
	return []awsQuota{
		{"L-1216C47A", "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", "Standard/OnDemand", 640},
		{"L-DB2E81BA", "Running On-Demand G and VT instances", "G/OnDemand", g},
		{"L-417A185B", "Running On-Demand P instances", "P/OnDemand", p},
		{"L-1945791B", "Running On-Demand Inf instances", "Inf/OnDemand", 0},
		{"L-34B43A08", "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests", "Standard/Spot", 640},
		{"L-3819A6DF", "All G and VT Spot Instance Requests", "G/Spot", g},
		{"L-7212CCBC", "All P Spot Instance Requests", "P/Spot", pSpot},
	}
}

var awsInstanceProfiles = []string{"dstack-instance-profile"}

// awsSG is a security group created through the simulation (each VPC's default group is implied).
type awsSG struct {
	id, name, desc, vpc, region string
	tags                        map[string]string
	ingress                     []awsPerm
}

type awsPerm struct {
	proto      string
	from, to   int
	cidr, peer string
	ruleID     string
}

// awsReq is one request being served.
type awsReq struct {
	s      *Sim
	w      http.ResponseWriter
	r      *http.Request
	svc    string // ec2, sts, iam, servicequotas
	region string
	action string
	form   qform
	reqID  string
}

func (q *awsReq) fail(status int, code, msg string) { awsErr(q.w, q.svc, status, code, msg, q.reqID) }

// bad answers a malformed request (400 with code) and returns it as a miss.
func (q *awsReq) bad(code, msg string) string {
	q.fail(http.StatusBadRequest, code, msg)
	return fmt.Sprintf("%s %s: %s: %s", q.svc, q.action, code, msg)
}

func (q *awsReq) ok(body string) { awsXML(q.w, q.svc, q.action, body, q.reqID) }

// awsService tells which API a request calls without reading its body: Service Quotas and ACM by
// their X-Amz-Target, the Query APIs by the service of the signature's scope (EC2 when unsigned).
func awsService(r *http.Request) string {
	switch target := r.Header.Get("X-Amz-Target"); {
	case strings.HasPrefix(target, sqTarget):
		return "servicequotas"
	case strings.HasPrefix(target, acmTarget):
		return "acm"
	}
	if a, why := parseSigV4(r.Header.Get("Authorization")); why == "" {
		switch a.service {
		case "sts", "iam", "servicequotas", "elasticloadbalancing", "acm":
			return a.service
		}
	}
	return "ec2"
}

func awsFailure(w http.ResponseWriter, r *http.Request, kind string) {
	svc := awsService(r)
	reqID := newRequestID()
	switch kind {
	case FaultThrottle:
		switch svc {
		case "ec2":
			awsErr(w, svc, http.StatusServiceUnavailable, "RequestLimitExceeded", "Request limit exceeded.", reqID)
		case "servicequotas":
			awsErr(w, svc, http.StatusBadRequest, "TooManyRequestsException", "Rate exceeded", reqID)
		case "acm":
			awsErr(w, svc, http.StatusBadRequest, "ThrottlingException", "Rate exceeded", reqID)
		default:
			awsErr(w, svc, http.StatusBadRequest, "Throttling", "Rate exceeded", reqID)
		}
	case FaultTimeout:
		awsErr(w, svc, http.StatusGatewayTimeout, awsInternalCode(svc), "The request timed out.", reqID)
	default:
		awsErr(w, svc, http.StatusInternalServerError, awsInternalCode(svc), "An internal error has occurred", reqID)
	}
}

func awsInternalCode(svc string) string {
	switch svc {
	case "ec2":
		return "InternalError"
	case "servicequotas":
		return "ServiceException"
	}
	return "InternalFailure"
}

var reqSeq struct {
	sync.Mutex
	n int
}

// newRequestID returns a request id shaped like AWS's (a UUID).
func newRequestID() string {
	reqSeq.Lock()
	reqSeq.n++
	n := reqSeq.n
	reqSeq.Unlock()
	h := hex.EncodeToString(func() []byte { s := sha256.Sum256([]byte(strconv.Itoa(n) + time.Now().String())); return s[:] }())
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}

// awsLaunch reports whether a request is EC2 RunInstances (capacity faults apply to it alone).
func awsLaunch(r *http.Request) bool {
	if r.Header.Get("X-Amz-Target") != "" {
		return false
	}
	body, err := readBody(r)
	if err != nil {
		return false
	}
	v, _ := url.ParseQuery(string(body))
	return v.Get("Action") == "RunInstances"
}

func init() {
	creds := func(key, secret string) map[string]any {
		return map[string]any{"type": "access_key", "access_key": key, "secret_key": secret}
	}
	register("aws", &provider{
		prefix: "",
		good:   map[string]any{"regions": []any{"us-east-1"}, "creds": creds(awsGoodKey, awsGoodSecret)},
		bad:    map[string]any{"regions": []any{"us-east-1"}, "creds": creds(awsBadKey, awsBadSecret)},
		capacity: func(w http.ResponseWriter) {
			awsErr(w, "ec2", http.StatusInternalServerError, "InsufficientInstanceCapacity",
				"We currently do not have sufficient capacity in the Availability Zone you requested. Our system will be working on provisioning additional capacity.",
				newRequestID())
		},
		failure: awsFailure,
		notFound: func(w http.ResponseWriter) {
			awsErr(w, "ec2", http.StatusBadRequest, "InvalidAction", "The action or operation requested is invalid.", newRequestID())
		},
		newID:   func(s *Sim, _ int) string { return "i-" + s.hexID(17) },
		catalog: awsCatalog,
		env: func(u string) []string {
			return []string{"AWS_ENDPOINT_URL=" + u, "AWS_ACCESS_KEY_ID=" + awsGoodKey, "AWS_SECRET_ACCESS_KEY=" + awsGoodSecret,
				"AWS_EC2_METADATA_DISABLED=true"}
		},
		routes: []route{{pattern: "POST /{$}", launchIf: awsLaunch, serve: awsServe}},
	})
}

func awsServe(s *Sim, w http.ResponseWriter, r *http.Request) string {
	body, err := readBody(r)
	q := &awsReq{s: s, w: w, r: r, reqID: newRequestID()}
	if err != nil {
		q.svc = "ec2"
		q.fail(http.StatusBadRequest, "InvalidRequest", "The request body could not be read.")
		return "body: " + err.Error()
	}
	if target := r.Header.Get("X-Amz-Target"); target != "" {
		q.svc = awsService(r)
		prefix := map[string]string{"servicequotas": sqTarget, "acm": acmTarget}[q.svc]
		q.action, _ = strings.CutPrefix(target, prefix)
		if prefix == "" {
			q.svc = "servicequotas"
			q.fail(http.StatusBadRequest, "UnknownOperationException", "")
			return "X-Amz-Target " + target + " is not a Service Quotas or ACM operation"
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
			q.fail(http.StatusBadRequest, "SerializationException", "")
			return "Content-Type " + ct + ", want application/x-amz-json-1.1"
		}
		if why, ok := awsAuth(q, body); !ok {
			return why
		}
		if q.svc == "acm" {
			return serveACM(q, body)
		}
		return serveQuotas(q, body)
	}
	if ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); ct != "application/x-www-form-urlencoded" {
		q.svc = "ec2"
		q.fail(http.StatusBadRequest, "MissingAction", "The request must contain the parameter Action.")
		return "Content-Type " + ct + ", want application/x-www-form-urlencoded"
	}
	v, err := url.ParseQuery(string(body))
	if err != nil {
		q.svc = "ec2"
		q.fail(http.StatusBadRequest, "MalformedQueryString", err.Error())
		return "form: " + err.Error()
	}
	q.form = qform{v}
	q.action = v.Get("Action")
	switch version := v.Get("Version"); version {
	case ec2Version:
		q.svc = "ec2"
	case stsVersion:
		q.svc = "sts"
	case iamVersion:
		q.svc = "iam"
	case elbVersion:
		q.svc = "elasticloadbalancing"
	default:
		q.svc = awsService(r)
		q.fail(http.StatusBadRequest, "NoSuchVersion", fmt.Sprintf("An invalid or out-of-range value '%s' was supplied for the Version parameter.", version))
		return "Version " + version + " is not one of EC2's, STS's, IAM's or ELBv2's"
	}
	if q.action == "" {
		q.fail(http.StatusBadRequest, "MissingAction", "The request must contain the parameter Action.")
		return "no Action"
	}
	if why, ok := awsAuth(q, body); !ok {
		return why
	}
	switch q.svc {
	case "sts":
		if q.action != "GetCallerIdentity" {
			return q.bad("InvalidAction", fmt.Sprintf("Could not find operation %s for version %s", q.action, stsVersion))
		}
		if p := q.form.unknown(); p != "" {
			return q.bad("InvalidParameter", "The parameter "+p+" is not recognized")
		}
		q.ok("<Arn>arn:aws:iam::" + awsAccount + ":user/dstack</Arn><UserId>AIDASIMULATEDUSER0001</UserId><Account>" + awsAccount + "</Account>")
		return ""
	case "iam":
		if q.action != "GetInstanceProfile" {
			return q.bad("InvalidAction", fmt.Sprintf("Could not find operation %s for version %s", q.action, iamVersion))
		}
		return iamGetInstanceProfile(q)
	case "elasticloadbalancing":
		return serveELB(q)
	}
	h, ok := ec2Actions[q.action]
	if !ok {
		return q.bad("InvalidAction", fmt.Sprintf("The action %s is not valid for this web service.", q.action))
	}
	if p := q.form.unknown(h.params...); p != "" {
		return q.bad("UnknownParameter", fmt.Sprintf("The parameter %s is not recognized", p))
	}
	if q.form.Get("DryRun") == "true" {
		q.fail(http.StatusPreconditionFailed, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
		return ""
	}
	return h.serve(q)
}

// awsAuth checks the request's signature; on refusal it has answered. It sets q.region.
func awsAuth(q *awsReq, body []byte) (string, bool) {
	h := q.r.Header.Get("Authorization")
	invalidKey := map[string][2]string{
		"ec2":                  {"AuthFailure", "AWS was not able to validate the provided access credentials"},
		"sts":                  {"InvalidClientTokenId", "The security token included in the request is invalid."},
		"iam":                  {"InvalidClientTokenId", "The security token included in the request is invalid."},
		"servicequotas":        {"UnrecognizedClientException", "The security token included in the request is invalid."},
		"elasticloadbalancing": {"InvalidClientTokenId", "The security token included in the request is invalid."},
		"acm":                  {"UnrecognizedClientException", "The security token included in the request is invalid."},
	}[q.svc]
	keyStatus := map[string]int{"ec2": http.StatusUnauthorized, "servicequotas": http.StatusBadRequest, "acm": http.StatusBadRequest}[q.svc]
	if keyStatus == 0 {
		keyStatus = http.StatusForbidden
	}
	if h == "" {
		code := map[bool]string{true: "MissingAuthenticationTokenException", false: "MissingAuthenticationToken"}[awsJSONService(q.svc)]
		q.fail(map[bool]int{true: http.StatusUnauthorized, false: http.StatusForbidden}[q.svc == "ec2"], code, "Request is missing Authentication Token")
		return "no SigV4 Authorization header", false
	}
	a, why := parseSigV4(h)
	if why != "" {
		q.fail(http.StatusBadRequest, map[bool]string{true: "IncompleteSignatureException", false: "IncompleteSignature"}[awsJSONService(q.svc)], why)
		return why, false
	}
	if a.service != q.svc {
		msg := fmt.Sprintf("Credential should be scoped to correct service: '%s'.", q.svc)
		q.fail(http.StatusForbidden, map[bool]string{true: "InvalidSignatureException", false: "SignatureDoesNotMatch"}[awsJSONService(q.svc)], msg)
		return fmt.Sprintf("signed for service %s, sent to %s", a.service, q.svc), false
	}
	q.region = a.region
	if !q.s.credOK("access_key", a.accessKey) {
		q.fail(keyStatus, invalidKey[0], invalidKey[1])
		return "", false
	}
	wrongSecret := false
	switch {
	case a.accessKey == awsGoodKey:
		wrongSecret = !a.verify(q.r, body, awsGoodSecret)
	case q.s.opts.Auth == Lenient:
		// The secret does not travel; recognise one set to `invalid` by its signature.
		for _, bad := range []string{"invalid", "INVALID", "Invalid"} {
			wrongSecret = wrongSecret || a.verify(q.r, body, bad)
		}
	}
	if wrongSecret {
		switch q.svc {
		case "ec2":
			q.fail(http.StatusUnauthorized, "AuthFailure", "AWS was not able to validate the provided access credentials")
		default:
			msg := "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
			q.fail(http.StatusForbidden, map[bool]string{true: "InvalidSignatureException", false: "SignatureDoesNotMatch"}[awsJSONService(q.svc)], msg)
		}
		return "", false
	}
	if t, err := time.Parse("20060102T150405Z", q.r.Header.Get("X-Amz-Date")); err != nil || time.Since(t) > 15*time.Minute || time.Until(t) > 15*time.Minute {
		if q.svc == "ec2" {
			q.fail(http.StatusBadRequest, "RequestExpired", "Request has expired.")
		} else {
			q.fail(http.StatusForbidden, map[bool]string{true: "InvalidSignatureException", false: "SignatureDoesNotMatch"}[awsJSONService(q.svc)], "Signature expired or X-Amz-Date missing.")
		}
		return "X-Amz-Date missing or more than 15 minutes off", false
	}
	if q.svc != "sts" && q.svc != "iam" && !awsKnownRegion(a.region) {
		// A region the account has not enabled answers as if the key were unknown there.
		q.fail(keyStatus, invalidKey[0], invalidKey[1])
		return "", false
	}
	return "", true
}

func iamGetInstanceProfile(q *awsReq) string {
	if p := q.form.unknown("InstanceProfileName"); p != "" {
		return q.bad("InvalidParameter", "The parameter "+p+" is not recognized")
	}
	name := q.form.Get("InstanceProfileName")
	if name == "" {
		return q.bad("ValidationError", "1 validation error detected: Value null at 'instanceProfileName' failed to satisfy constraint: Member must not be null")
	}
	for _, p := range awsInstanceProfiles {
		if p != name {
			continue
		}
		var w xw
		w.open("InstanceProfile")
		w.el("Path", "/")
		w.el("InstanceProfileName", p)
		w.el("InstanceProfileId", strings.ToUpper("AIPA"+awsID("x", p)[2:16]))
		w.el("Arn", "arn:aws:iam::"+awsAccount+":instance-profile/"+p)
		w.el("CreateDate", "2024-06-01T12:00:00Z")
		w.open("Roles")
		w.open("member")
		w.el("Path", "/")
		w.el("RoleName", p+"-role")
		w.el("RoleId", strings.ToUpper("AROA"+awsID("x", p, "role")[2:16]))
		w.el("Arn", "arn:aws:iam::"+awsAccount+":role/"+p+"-role")
		w.el("CreateDate", "2024-06-01T12:00:00Z")
		w.close("member")
		w.close("Roles")
		w.close("InstanceProfile")
		q.ok(w.String())
		return ""
	}
	q.fail(http.StatusNotFound, "NoSuchEntity", "Instance Profile "+name+" cannot be found.")
	return ""
}

func serveQuotas(q *awsReq, body []byte) string {
	var req struct {
		ServiceCode         string `json:"ServiceCode"`
		QuotaCode           string `json:"QuotaCode"`
		NextToken           string `json:"NextToken"`
		MaxResults          int    `json:"MaxResults"`
		QuotaAppliedAtLevel string `json:"QuotaAppliedAtLevel"`
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		q.fail(http.StatusBadRequest, "SerializationException", "")
		return "body: " + err.Error()
	}
	quotaJSON := func(qq awsQuota) map[string]any {
		return map[string]any{"ServiceCode": "ec2", "ServiceName": "Amazon Elastic Compute Cloud (Amazon EC2)",
			"QuotaArn": "arn:aws:servicequotas:" + q.region + ":" + awsAccount + ":ec2/" + qq.code, "QuotaCode": qq.code,
			"QuotaName": qq.name, "Value": qq.value, "Unit": "None", "Adjustable": true, "GlobalQuota": false,
			"QuotaAppliedAtLevel": "ACCOUNT",
			"UsageMetric": map[string]any{"MetricNamespace": "AWS/Usage", "MetricName": "ResourceCount",
				"MetricDimensions":              map[string]string{"Class": qq.class, "Resource": "vCPU", "Service": "EC2", "Type": "Resource"},
				"MetricStatisticRecommendation": "Maximum"}}
	}
	answer := func(v any) {
		q.w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		q.w.Header().Set("X-Amzn-RequestId", q.reqID)
		q.w.WriteHeader(http.StatusOK)
		_ = json.NewEncoder(q.w).Encode(v)
	}
	if req.ServiceCode == "" {
		q.fail(http.StatusBadRequest, "ValidationException", "1 validation error detected: Value null at 'serviceCode' failed to satisfy constraint: Member must not be null")
		return "no ServiceCode"
	}
	switch q.action {
	case "ListServiceQuotas":
		if req.MaxResults < 0 || req.MaxResults > 100 {
			q.fail(http.StatusBadRequest, "ValidationException", "MaxResults must be between 1 and 100")
			return "MaxResults out of range"
		}
		if req.ServiceCode != "ec2" {
			q.fail(http.StatusBadRequest, "NoSuchResourceException", "The request failed because the specified service does not exist.")
			return ""
		}
		var all []awsQuota
		for _, qq := range awsQuotas(q.region) {
			if strings.HasSuffix(qq.class, "/Spot") && q.region != "us-east-1" {
				continue // no applied value: GetServiceQuota answers it
			}
			all = append(all, qq)
		}
		start := 0
		if req.NextToken != "" {
			n, err := strconv.Atoi(req.NextToken)
			if err != nil || n < 0 || n > len(all) {
				q.fail(http.StatusBadRequest, "InvalidPaginationTokenException", "Invalid pagination token")
				return "NextToken " + req.NextToken
			}
			start = n
		}
		size := req.MaxResults
		if size == 0 {
			size = 100
		}
		out := map[string]any{"Quotas": []any{}}
		list := []any{}
		for i := start; i < len(all) && i < start+size; i++ {
			list = append(list, quotaJSON(all[i]))
		}
		out["Quotas"] = list
		if start+size < len(all) {
			out["NextToken"] = strconv.Itoa(start + size)
		}
		answer(out)
		return ""
	case "GetServiceQuota":
		for _, qq := range awsQuotas(q.region) {
			if req.ServiceCode == "ec2" && qq.code == req.QuotaCode {
				answer(map[string]any{"Quota": quotaJSON(qq)})
				return ""
			}
		}
		if req.QuotaCode == "" {
			q.fail(http.StatusBadRequest, "ValidationException", "1 validation error detected: Value null at 'quotaCode' failed to satisfy constraint: Member must not be null")
			return "no QuotaCode"
		}
		q.fail(http.StatusBadRequest, "NoSuchResourceException", "The request failed because the specified resource does not exist.")
		return ""
	}
	q.fail(http.StatusBadRequest, "UnknownOperationException", "")
	return "Service Quotas operation " + q.action + " is not one the aws backend calls"
}

// ec2Action is one EC2 action: the parameters it takes and how it is served.
type ec2Action struct {
	params []string
	serve  func(q *awsReq) string
}

var ec2Actions map[string]ec2Action

func init() {
	ec2Actions = map[string]ec2Action{
		"DescribeAvailabilityZones":     {[]string{"AllAvailabilityZones", "Filter", "ZoneId", "ZoneName"}, ec2DescribeZones},
		"DescribeVpcs":                  {[]string{"Filter", "MaxResults", "NextToken", "VpcId"}, ec2DescribeVpcs},
		"DescribeSubnets":               {[]string{"Filter", "MaxResults", "NextToken", "SubnetId"}, ec2DescribeSubnets},
		"DescribeRouteTables":           {[]string{"Filter", "MaxResults", "NextToken", "RouteTableId"}, ec2DescribeRouteTables},
		"DescribeSecurityGroups":        {[]string{"Filter", "GroupId", "GroupName", "MaxResults", "NextToken"}, ec2DescribeSecurityGroups},
		"CreateSecurityGroup":           {[]string{"GroupDescription", "GroupName", "TagSpecification", "VpcId"}, ec2CreateSecurityGroup},
		"AuthorizeSecurityGroupIngress": {[]string{"GroupId", "IpPermissions", "TagSpecification"}, ec2AuthorizeIngress},
		"DescribeImages":                {[]string{"ExecutableBy", "Filter", "ImageId", "IncludeDeprecated", "IncludeDisabled", "MaxResults", "NextToken", "Owner"}, ec2DescribeImages},
		"RunInstances": {[]string{"BlockDeviceMapping", "ClientToken", "IamInstanceProfile", "ImageId", "InstanceMarketOptions",
			"InstanceType", "MaxCount", "MetadataOptions", "MinCount", "NetworkInterface", "SecurityGroupId", "SubnetId",
			"TagSpecification", "UserData"}, ec2RunInstances},
		"DescribeInstances":  {[]string{"Filter", "InstanceId", "MaxResults", "NextToken"}, ec2DescribeInstances},
		"TerminateInstances": {[]string{"InstanceId"}, ec2TerminateInstances},
		"CreateVolume": {[]string{"AvailabilityZone", "ClientToken", "Encrypted", "Iops", "Size", "SnapshotId",
			"TagSpecification", "Throughput", "VolumeType"}, ec2CreateVolume},
		"DescribeVolumes": {[]string{"Filter", "MaxResults", "NextToken", "VolumeId"}, ec2DescribeVolumes},
		"DeleteVolume":    {[]string{"VolumeId"}, ec2DeleteVolume},
		"AttachVolume":    {[]string{"Device", "InstanceId", "VolumeId"}, ec2AttachVolume},
		"DetachVolume":    {[]string{"Device", "Force", "InstanceId", "VolumeId"}, ec2DetachVolume},
	}
}

// checkFilters refuses filter names an action does not know, as EC2 does.
func (q *awsReq) checkFilters(known ...string) (map[string][]string, string) {
	f := q.form.filters()
	for name := range f {
		ok := strings.HasPrefix(name, "tag:") || name == "tag-key"
		for _, k := range known {
			ok = ok || k == name
		}
		if !ok {
			return nil, q.bad("InvalidParameterValue", fmt.Sprintf("The filter '%s' is invalid", name))
		}
	}
	return f, ""
}

// keep applies filters to one resource: values maps a filter name to the resource's values for it.
func keep(f map[string][]string, values map[string][]string, tags map[string]string) bool {
	for name, want := range f {
		if k, ok := strings.CutPrefix(name, "tag:"); ok {
			v, has := tags[k]
			if !has || !matchAny(want, v) {
				return false
			}
			continue
		}
		if name == "tag-key" {
			found := false
			for k := range tags {
				found = found || matchAny(want, k)
			}
			if !found {
				return false
			}
			continue
		}
		found := false
		for _, v := range values[name] {
			found = found || matchAny(want, v)
		}
		if !found {
			return false
		}
	}
	return true
}

func nameTag(name string) map[string]string {
	if name == "" {
		return nil
	}
	return map[string]string{"Name": name}
}

func ec2DescribeZones(q *awsReq) string {
	f, miss := q.checkFilters("zone-name", "zone-id", "region-name", "state", "zone-type", "opt-in-status", "group-name")
	if miss != "" {
		return miss
	}
	names, ids := q.form.list("ZoneName"), q.form.list("ZoneId")
	var w xw
	w.open("availabilityZoneInfo")
	for i, z := range "abc" {
		name, id := q.region+string(z), awsZoneID(q.region, i)
		if len(names) > 0 && !contains(names, name) || len(ids) > 0 && !contains(ids, id) {
			continue
		}
		if !keep(f, map[string][]string{"zone-name": {name}, "zone-id": {id}, "region-name": {q.region}, "state": {"available"},
			"zone-type": {"availability-zone"}, "opt-in-status": {"opt-in-not-required"}, "group-name": {q.region}}, nil) {
			continue
		}
		w.open("item")
		w.el("zoneName", name)
		w.el("zoneId", id)
		w.el("zoneState", "available")
		w.el("regionName", q.region)
		w.el("optInStatus", "opt-in-not-required")
		w.el("groupName", q.region)
		w.el("networkBorderGroup", q.region)
		w.el("zoneType", "availability-zone")
		w.WriteString("<messageSet/>")
		w.close("item")
	}
	w.close("availabilityZoneInfo")
	q.ok(w.String())
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

var vpcIDRe = regexp.MustCompile(`^vpc-[0-9a-z]+$`)

func ec2DescribeVpcs(q *awsReq) string {
	f, miss := q.checkFilters("vpc-id", "is-default", "state", "cidr", "cidr-block-association.cidr-block", "owner-id")
	if miss != "" {
		return miss
	}
	n := awsNetwork(q.region)
	ids := q.form.list("VpcId")
	for _, id := range ids {
		if !vpcIDRe.MatchString(id) {
			q.fail(http.StatusBadRequest, "InvalidVpcID.Malformed", fmt.Sprintf("Invalid id: %q", id))
			return ""
		}
		if n.vpc(id) == nil {
			q.fail(http.StatusBadRequest, "InvalidVpcID.NotFound", fmt.Sprintf("The vpc ID '%s' does not exist", id))
			return ""
		}
	}
	var w xw
	w.open("vpcSet")
	for _, v := range n.vpcs {
		if len(ids) > 0 && !contains(ids, v.id) {
			continue
		}
		if !keep(f, map[string][]string{"vpc-id": {v.id}, "is-default": {strconv.FormatBool(v.isDefault)}, "state": {"available"},
			"cidr": {v.cidr}, "cidr-block-association.cidr-block": {v.cidr}, "owner-id": {awsAccount}}, nameTag(v.name)) {
			continue
		}
		w.open("item")
		w.el("vpcId", v.id)
		w.el("ownerId", awsAccount)
		w.el("state", "available")
		w.el("cidrBlock", v.cidr)
		w.open("cidrBlockAssociationSet")
		w.open("item")
		w.el("cidrBlock", v.cidr)
		w.el("associationId", awsID("vpc-cidr-assoc", v.id))
		w.WriteString("<cidrBlockState><state>associated</state></cidrBlockState>")
		w.close("item")
		w.close("cidrBlockAssociationSet")
		w.el("dhcpOptionsId", awsID("dopt", q.region))
		w.el("instanceTenancy", "default")
		w.el("isDefault", v.isDefault)
		if v.name != "" {
			w.tags("tagSet", nameTag(v.name))
		}
		w.close("item")
	}
	w.close("vpcSet")
	q.ok(w.String())
	return ""
}

func ec2DescribeSubnets(q *awsReq) string {
	f, miss := q.checkFilters("vpc-id", "subnet-id", "availability-zone", "availability-zone-id", "default-for-az", "state",
		"map-public-ip-on-launch", "cidr-block")
	if miss != "" {
		return miss
	}
	n := awsNetwork(q.region)
	ids := q.form.list("SubnetId")
	for _, id := range ids {
		if n.subnet(id) == nil {
			q.fail(http.StatusBadRequest, "InvalidSubnetID.NotFound", fmt.Sprintf("The subnet ID '%s' does not exist", id))
			return ""
		}
	}
	var w xw
	w.open("subnetSet")
	for _, sn := range n.subnets {
		if len(ids) > 0 && !contains(ids, sn.id) {
			continue
		}
		zi := int(sn.az[len(sn.az)-1] - 'a')
		if !keep(f, map[string][]string{"vpc-id": {sn.vpc}, "subnet-id": {sn.id}, "availability-zone": {sn.az},
			"availability-zone-id": {awsZoneID(q.region, zi)}, "default-for-az": {strconv.FormatBool(sn.defaultForAz)},
			"state": {"available"}, "map-public-ip-on-launch": {strconv.FormatBool(sn.mapPublic)}, "cidr-block": {sn.cidr}}, nameTag(sn.name)) {
			continue
		}
		w.open("item")
		w.el("subnetId", sn.id)
		w.el("subnetArn", "arn:aws:ec2:"+q.region+":"+awsAccount+":subnet/"+sn.id)
		w.el("state", "available")
		w.el("ownerId", awsAccount)
		w.el("vpcId", sn.vpc)
		w.el("cidrBlock", sn.cidr)
		w.el("availableIpAddressCount", 4091)
		w.el("availabilityZone", sn.az)
		w.el("availabilityZoneId", awsZoneID(q.region, zi))
		w.el("defaultForAz", sn.defaultForAz)
		w.el("mapPublicIpOnLaunch", sn.mapPublic)
		w.el("assignIpv6AddressOnCreation", false)
		if sn.name != "" {
			w.tags("tagSet", nameTag(sn.name))
		}
		w.close("item")
	}
	w.close("subnetSet")
	q.ok(w.String())
	return ""
}

func ec2DescribeRouteTables(q *awsReq) string {
	f, miss := q.checkFilters("vpc-id", "route-table-id", "association.subnet-id", "association.main",
		"association.route-table-association-id")
	if miss != "" {
		return miss
	}
	n := awsNetwork(q.region)
	ids := q.form.list("RouteTableId")
	var w xw
	w.open("routeTableSet")
	for _, t := range n.tables {
		if len(ids) > 0 && !contains(ids, t.id) {
			continue
		}
		vals := map[string][]string{"vpc-id": {t.vpc}, "route-table-id": {t.id}, "association.subnet-id": t.subnets,
			"association.main": {strconv.FormatBool(t.main)}}
		if !t.main && len(t.subnets) == 0 {
			vals["association.main"] = nil
		}
		if !keep(f, vals, nil) {
			continue
		}
		w.open("item")
		w.el("routeTableId", t.id)
		w.el("vpcId", t.vpc)
		w.el("ownerId", awsAccount)
		w.open("routeSet")
		for _, rt := range t.routes {
			w.open("item")
			w.el("destinationCidrBlock", rt.dest)
			w.el("gatewayId", rt.gateway)
			w.el("natGatewayId", rt.nat)
			w.el("state", "active")
			w.el("origin", map[bool]string{true: "CreateRouteTable", false: "CreateRoute"}[rt.gateway == "local"])
			w.close("item")
		}
		w.close("routeSet")
		w.open("associationSet")
		if t.main {
			w.open("item")
			w.el("routeTableAssociationId", awsID("rtbassoc", t.id, "main"))
			w.el("routeTableId", t.id)
			w.el("main", true)
			w.WriteString("<associationState><state>associated</state></associationState>")
			w.close("item")
		}
		for _, sn := range t.subnets {
			w.open("item")
			w.el("routeTableAssociationId", awsID("rtbassoc", t.id, sn))
			w.el("routeTableId", t.id)
			w.el("subnetId", sn)
			w.el("main", false)
			w.WriteString("<associationState><state>associated</state></associationState>")
			w.close("item")
		}
		w.close("associationSet")
		w.WriteString("<propagatingVgwSet/><tagSet/>")
		w.close("item")
	}
	w.close("routeTableSet")
	q.ok(w.String())
	return ""
}

// securityGroups lists the region's groups: each VPC's default group and those created.
func (q *awsReq) securityGroups() []*awsSG {
	var out []*awsSG
	for _, v := range awsNetwork(q.region).vpcs {
		out = append(out, &awsSG{id: awsID("sg", q.region, v.id, "default"), name: "default", desc: "default VPC security group",
			vpc: v.id, region: q.region})
	}
	q.s.mu.Lock()
	var created []*awsSG
	for _, o := range q.s.objects["security-groups"] {
		if sg := o.(*awsSG); sg.region == q.region {
			c := *sg
			c.ingress = append([]awsPerm(nil), sg.ingress...)
			created = append(created, &c)
		}
	}
	q.s.mu.Unlock()
	sort.Slice(created, func(i, j int) bool { return created[i].id < created[j].id })
	return append(out, created...)
}

func ec2DescribeSecurityGroups(q *awsReq) string {
	f, miss := q.checkFilters("group-name", "group-id", "vpc-id", "owner-id", "description")
	if miss != "" {
		return miss
	}
	ids := q.form.list("GroupId")
	names := q.form.list("GroupName")
	all := q.securityGroups()
	for _, id := range ids {
		found := false
		for _, sg := range all {
			found = found || sg.id == id
		}
		if !found {
			q.fail(http.StatusBadRequest, "InvalidGroup.NotFound", fmt.Sprintf("The security group '%s' does not exist", id))
			return ""
		}
	}
	var w xw
	w.open("securityGroupInfo")
	for _, sg := range all {
		if len(ids) > 0 && !contains(ids, sg.id) || len(names) > 0 && !contains(names, sg.name) {
			continue
		}
		if !keep(f, map[string][]string{"group-name": {sg.name}, "group-id": {sg.id}, "vpc-id": {sg.vpc}, "owner-id": {awsAccount},
			"description": {sg.desc}}, sg.tags) {
			continue
		}
		w.open("item")
		w.el("ownerId", awsAccount)
		w.el("groupId", sg.id)
		w.el("groupName", sg.name)
		w.el("groupDescription", sg.desc)
		w.el("vpcId", sg.vpc)
		w.el("securityGroupArn", "arn:aws:ec2:"+sg.region+":"+awsAccount+":security-group/"+sg.id)
		w.open("ipPermissions")
		for _, p := range sg.ingress {
			writePerm(&w, p)
		}
		w.close("ipPermissions")
		w.open("ipPermissionsEgress")
		writePerm(&w, awsPerm{proto: "-1", cidr: "0.0.0.0/0"})
		w.close("ipPermissionsEgress")
		w.tags("tagSet", sg.tags)
		w.close("item")
	}
	w.close("securityGroupInfo")
	q.ok(w.String())
	return ""
}

func writePerm(w *xw, p awsPerm) {
	w.open("item")
	w.el("ipProtocol", p.proto)
	if p.proto != "-1" {
		w.el("fromPort", p.from)
		w.el("toPort", p.to)
	}
	w.open("groups")
	if p.peer != "" {
		w.open("item")
		w.el("userId", awsAccount)
		w.el("groupId", p.peer)
		w.close("item")
	}
	w.close("groups")
	w.open("ipRanges")
	if p.cidr != "" {
		w.open("item")
		w.el("cidrIp", p.cidr)
		w.close("item")
	}
	w.close("ipRanges")
	w.WriteString("<ipv6Ranges/><prefixListIds/>")
	w.close("item")
}

// tagSpecs reads TagSpecification.N.ResourceType and .Tag.M.Key/Value.
func (q *awsReq) tagSpecs() (map[string]map[string]string, string) {
	out := map[string]map[string]string{}
	for _, i := range q.form.indexes("TagSpecification") {
		spec := q.form.sub("TagSpecification", i)
		typ := spec.Get("ResourceType")
		if typ == "" {
			return nil, q.bad("InvalidParameterValue", "Tag specification resource type must have a value")
		}
		if out[typ] != nil {
			return nil, q.bad("InvalidParameterValue", "The same resource type may not be specified more than once in tag specifications")
		}
		tags := map[string]string{}
		for _, j := range spec.indexes("Tag") {
			t := spec.sub("Tag", j)
			k := t.Get("Key")
			switch {
			case k == "" || len(k) > 128 || len(t.Get("Value")) > 256:
				return nil, q.bad("InvalidParameterValue", fmt.Sprintf("Tag key %q or its value is empty or too long", k))
			case strings.HasPrefix(strings.ToLower(k), "aws:"):
				return nil, q.bad("InvalidParameterValue", "Tag keys starting with 'aws:' are reserved for internal use")
			}
			tags[k] = t.Get("Value")
		}
		if len(tags) > 50 {
			return nil, q.bad("TagLimitExceeded", "The maximum number of tags for a resource is 50")
		}
		out[typ] = tags
	}
	return out, ""
}

func ec2CreateSecurityGroup(q *awsReq) string {
	name, desc, vpcID := q.form.Get("GroupName"), q.form.Get("GroupDescription"), q.form.Get("VpcId")
	switch {
	case name == "":
		return q.bad("MissingParameter", "The request must contain the parameter groupName")
	case desc == "":
		return q.bad("MissingParameter", "The request must contain the parameter groupDescription")
	case strings.HasPrefix(name, "sg-") || len(name) > 255:
		return q.bad("InvalidParameterValue", "Invalid value '"+name+"' for groupName. ")
	}
	n := awsNetwork(q.region)
	if vpcID == "" {
		for _, v := range n.vpcs {
			if v.isDefault {
				vpcID = v.id
			}
		}
		if vpcID == "" {
			q.fail(http.StatusBadRequest, "VPCIdNotSpecified", "No default VPC for this user")
			return ""
		}
	}
	if n.vpc(vpcID) == nil {
		q.fail(http.StatusBadRequest, "InvalidVpcID.NotFound", fmt.Sprintf("The vpc ID '%s' does not exist", vpcID))
		return ""
	}
	specs, miss := q.tagSpecs()
	if miss != "" {
		return miss
	}
	for typ := range specs {
		if typ != "security-group" {
			return q.bad("InvalidParameterValue", "'"+typ+"' is not a valid taggable resource type for this operation.")
		}
	}
	q.s.launchMu.Lock()
	defer q.s.launchMu.Unlock()
	for _, sg := range q.securityGroups() {
		if sg.vpc == vpcID && sg.name == name {
			q.fail(http.StatusBadRequest, "InvalidGroup.Duplicate", fmt.Sprintf("The security group '%s' already exists for VPC '%s'", name, vpcID))
			return ""
		}
	}
	sg := &awsSG{id: "sg-" + q.s.hexID(17), name: name, desc: desc, vpc: vpcID, region: q.region, tags: specs["security-group"]}
	q.s.putObject("security-groups", sg.id, sg)
	var w xw
	w.el("return", true)
	w.el("groupId", sg.id)
	w.el("securityGroupArn", "arn:aws:ec2:"+q.region+":"+awsAccount+":security-group/"+sg.id)
	if len(sg.tags) > 0 {
		w.tags("tagSet", sg.tags)
	}
	q.ok(w.String())
	return ""
}

func ec2AuthorizeIngress(q *awsReq) string {
	id := q.form.Get("GroupId")
	if id == "" {
		return q.bad("MissingParameter", "The request must contain the parameter groupId")
	}
	var perms []awsPerm
	for _, i := range q.form.indexes("IpPermissions") {
		p := q.form.sub("IpPermissions", i)
		proto := p.Get("IpProtocol")
		if proto == "" {
			return q.bad("MissingParameter", "The request must contain the parameter ipPermissions.ipProtocol")
		}
		from, _ := strconv.Atoi(p.Get("FromPort"))
		to, _ := strconv.Atoi(p.Get("ToPort"))
		if proto != "-1" && (p.Get("FromPort") == "" || p.Get("ToPort") == "" || from > to) {
			return q.bad("InvalidParameterValue", "Invalid port range for protocol "+proto)
		}
		if proto == "-1" {
			from, to = 0, 0
		}
		base := awsPerm{proto: proto, from: from, to: to}
		for _, j := range p.indexes("IpRanges") {
			c := base
			c.cidr = p.sub("IpRanges", j).Get("CidrIp")
			perms = append(perms, c)
		}
		for _, j := range p.indexes("Groups") {
			c := base
			c.peer = p.sub("Groups", j).Get("GroupId")
			perms = append(perms, c)
		}
	}
	if len(perms) == 0 {
		return q.bad("MissingParameter", "The request must contain the parameter ipPermissions")
	}
	q.s.mu.Lock()
	defer q.s.mu.Unlock()
	o, ok := q.s.objects["security-groups"][id]
	if !ok || o.(*awsSG).region != q.region {
		q.fail(http.StatusBadRequest, "InvalidGroup.NotFound", fmt.Sprintf("The security group '%s' does not exist", id))
		return ""
	}
	sg := o.(*awsSG)
	for _, p := range perms {
		for _, have := range sg.ingress {
			if have.proto == p.proto && have.from == p.from && have.to == p.to && have.cidr == p.cidr && have.peer == p.peer {
				peer := p.cidr
				if peer == "" {
					peer = p.peer
				}
				q.fail(http.StatusBadRequest, "InvalidPermission.Duplicate",
					fmt.Sprintf("the specified rule \"peer: %s, %s, from port: %d, to port: %d, ALLOW\" already exists", peer, strings.ToUpper(p.proto), p.from, p.to))
				return ""
			}
		}
	}
	var w xw
	w.el("return", true)
	w.open("securityGroupRuleSet")
	for _, p := range perms {
		p.ruleID = awsID("sgr", id, p.proto, strconv.Itoa(p.from), p.cidr, p.peer)
		sg.ingress = append(sg.ingress, p)
		w.open("item")
		w.el("securityGroupRuleId", p.ruleID)
		w.el("groupId", id)
		w.el("groupOwnerId", awsAccount)
		w.el("isEgress", false)
		w.el("ipProtocol", p.proto)
		w.el("fromPort", p.from)
		w.el("toPort", p.to)
		w.el("cidrIpv4", p.cidr)
		w.close("item")
	}
	w.close("securityGroupRuleSet")
	q.ok(w.String())
	return ""
}

func ec2DescribeImages(q *awsReq) string {
	f, miss := q.checkFilters("name", "state", "architecture", "image-id", "owner-id", "is-public", "root-device-type", "virtualization-type")
	if miss != "" {
		return miss
	}
	owners := q.form.list("Owner")
	ids := q.form.list("ImageId")
	var w xw
	w.open("imagesSet")
	for _, im := range awsImages {
		id := awsImageID(q.region, im)
		if len(ids) > 0 && !contains(ids, id) {
			continue
		}
		if !im.public && im.owner != awsAccount {
			continue
		}
		if len(owners) > 0 {
			ok := false
			for _, o := range owners {
				ok = ok || o == im.owner || o == "self" && im.owner == awsAccount
			}
			if !ok {
				continue
			}
		}
		if !keep(f, map[string][]string{"name": {im.name}, "state": {im.state}, "architecture": {"x86_64"}, "image-id": {id},
			"owner-id": {im.owner}, "is-public": {strconv.FormatBool(im.public)}, "root-device-type": {"ebs"},
			"virtualization-type": {"hvm"}}, nil) {
			continue
		}
		w.open("item")
		w.el("imageId", id)
		w.el("imageLocation", im.owner+"/"+im.name)
		w.el("imageState", im.state)
		w.el("imageOwnerId", im.owner)
		w.el("creationDate", im.created)
		w.el("isPublic", im.public)
		w.el("architecture", "x86_64")
		w.el("imageType", "machine")
		w.el("name", im.name)
		w.el("rootDeviceType", "ebs")
		w.el("rootDeviceName", "/dev/sda1")
		w.open("blockDeviceMapping")
		w.open("item")
		w.el("deviceName", "/dev/sda1")
		w.open("ebs")
		w.el("snapshotId", awsID("snap", id))
		w.el("volumeSize", 50)
		w.el("deleteOnTermination", true)
		w.el("volumeType", "gp3")
		w.close("ebs")
		w.close("item")
		w.close("blockDeviceMapping")
		w.el("virtualizationType", "hvm")
		w.el("hypervisor", "xen")
		w.el("enaSupport", true)
		w.close("item")
	}
	w.close("imagesSet")
	q.ok(w.String())
	return ""
}

func awsImageByID(region, id string) *awsImage {
	for i := range awsImages {
		if awsImageID(region, awsImages[i]) == id {
			return &awsImages[i]
		}
	}
	return nil
}

// awsInstance is what RunInstances recorded in a Machine's Extra.
type awsInstance struct {
	AZ, Subnet, VPC, Reservation, ClientToken, Profile, RootDevice string
	// Params are the launch's parameters but ClientToken, to refuse a token reused with others.
	Params string `json:"-"`
	Groups []string
	Public bool
	RootGB int
	TagMap map[string]string
}

func instanceOf(m Machine) awsInstance {
	a, _ := m.Extra["aws"].(awsInstance)
	return a
}

func ec2RunInstances(q *awsReq) string {
	f := q.form
	switch {
	case f.Get("ImageId") == "":
		return q.bad("MissingParameter", "The request must contain the parameter ImageId")
	case f.Get("MinCount") == "" || f.Get("MaxCount") == "":
		return q.bad("MissingParameter", "The request must contain the parameters MinCount and MaxCount")
	case f.Get("MinCount") != "1" || f.Get("MaxCount") != "1":
		return q.bad("InvalidParameterValue", "the simulation launches one instance a call (MinCount=MaxCount=1)")
	}
	nis := f.indexes("NetworkInterface")
	if len(nis) > 0 && f.Get("SubnetId") != "" {
		return q.bad("InvalidParameterCombination", "Network interfaces and an instance-level subnet ID may not be specified on the same request")
	}
	if len(nis) > 0 && len(f.list("SecurityGroupId")) > 0 {
		return q.bad("InvalidParameterCombination", "Network interfaces and an instance-level security groups may not be specified on the same request")
	}
	if len(nis) > 1 {
		return q.bad("InvalidParameterValue", "the simulation takes one network interface")
	}
	subnetID, groups, public := f.Get("SubnetId"), f.list("SecurityGroupId"), false
	n := awsNetwork(q.region)
	if len(nis) == 1 {
		ni := f.sub("NetworkInterface", nis[0])
		if ni.Get("DeviceIndex") != "0" {
			return q.bad("InvalidParameterValue", "Each network interface requires a device index.")
		}
		subnetID, groups, public = ni.Get("SubnetId"), ni.list("SecurityGroupId"), ni.Get("AssociatePublicIpAddress") == "true"
		if ni.Get("AssociatePublicIpAddress") == "" && subnetID != "" {
			if sn := n.subnet(subnetID); sn != nil {
				public = sn.mapPublic
			}
		}
	}
	if subnetID == "" {
		for _, sn := range n.subnets {
			if sn.defaultForAz && subnetID == "" {
				subnetID, public = sn.id, true
			}
		}
		if subnetID == "" {
			q.fail(http.StatusBadRequest, "VPCIdNotSpecified", "No default VPC for this user. GroupName is only supported for EC2-Classic and default VPC.")
			return ""
		}
	} else if len(nis) == 0 {
		if sn := n.subnet(subnetID); sn != nil {
			public = sn.mapPublic
		}
	}
	sn := n.subnet(subnetID)
	if sn == nil {
		q.fail(http.StatusBadRequest, "InvalidSubnetID.NotFound", fmt.Sprintf("The subnet ID '%s' does not exist", subnetID))
		return ""
	}
	all := q.securityGroups()
	if len(groups) == 0 {
		groups = []string{awsID("sg", q.region, sn.vpc, "default")}
	}
	for _, g := range groups {
		var found *awsSG
		for _, sg := range all {
			if sg.id == g {
				found = sg
			}
		}
		if found == nil {
			q.fail(http.StatusBadRequest, "InvalidGroup.NotFound", fmt.Sprintf("The security group '%s' does not exist in VPC '%s'", g, sn.vpc))
			return ""
		}
		if found.vpc != sn.vpc {
			q.fail(http.StatusBadRequest, "InvalidParameter", fmt.Sprintf("Security group %s and subnet %s belong to different networks.", g, subnetID))
			return ""
		}
	}
	imageID := f.Get("ImageId")
	im := awsImageByID(q.region, imageID)
	if im == nil || !im.public && im.owner != awsAccount {
		q.fail(http.StatusBadRequest, "InvalidAMIID.NotFound", fmt.Sprintf("The image id '[%s]' does not exist", imageID))
		return ""
	}
	if im.state != "available" {
		q.fail(http.StatusBadRequest, "InvalidAMIID.Unavailable", fmt.Sprintf("AMI '%s' is pending, and cannot be run", imageID))
		return ""
	}
	typeName := f.Get("InstanceType")
	if typeName == "" {
		typeName = "m1.small"
	}
	it := awsTypeByName(typeName)
	if it == nil {
		q.fail(http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("Invalid value '%s' for InstanceType.", typeName))
		return ""
	}
	userData := ""
	if ud := f.Get("UserData"); ud != "" {
		b, err := base64.StdEncoding.DecodeString(ud)
		if err != nil {
			return q.bad("InvalidParameterValue", "Invalid BASE64 encoding of user data.")
		}
		if len(b) > 16384 {
			return q.bad("InvalidParameterValue", "User data is limited to 16384 bytes")
		}
		userData = string(b)
	}
	rootGB := 50
	for _, i := range f.indexes("BlockDeviceMapping") {
		bd := f.sub("BlockDeviceMapping", i)
		if bd.Get("DeviceName") == "" {
			return q.bad("MissingParameter", "The request must contain the parameter BlockDeviceMapping.DeviceName")
		}
		if bd.Get("DeviceName") != "/dev/sda1" {
			continue
		}
		if s := bd.Get("Ebs.VolumeSize"); s != "" {
			gb, err := strconv.Atoi(s)
			if err != nil || gb < 50 || gb > 16384 {
				q.fail(http.StatusBadRequest, "InvalidBlockDeviceMapping", fmt.Sprintf("Volume of size %sGB is smaller than snapshot, expect size >= 50GB or larger than 16384GB", s))
				return ""
			}
			rootGB = gb
		}
		if vt := bd.Get("Ebs.VolumeType"); vt != "" && !contains([]string{"gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"}, vt) {
			return q.bad("InvalidParameterValue", "Value ("+vt+") for parameter volumeType is invalid.")
		}
	}
	specs, miss := q.tagSpecs()
	if miss != "" {
		return miss
	}
	for typ := range specs {
		if !contains([]string{"instance", "volume", "network-interface", "spot-instances-request"}, typ) {
			return q.bad("InvalidParameterValue", "'"+typ+"' is not a valid taggable resource type for this operation.")
		}
	}
	spot := false
	if mt := f.Get("InstanceMarketOptions.MarketType"); mt != "" {
		if mt != "spot" && mt != "capacity-block" {
			return q.bad("InvalidParameterValue", "Value ("+mt+") for parameter marketType is invalid.")
		}
		spot = mt == "spot"
		if spot && it.spot == 0 {
			q.fail(http.StatusBadRequest, "Unsupported", fmt.Sprintf("The requested configuration is currently not supported. %s is not available as Spot.", typeName))
			return ""
		}
	}
	profile := f.Get("IamInstanceProfile.Name")
	if profile != "" && !contains(awsInstanceProfiles, profile) {
		return q.bad("InvalidParameterValue", fmt.Sprintf("Value (%s) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name", profile))
	}

	params := url.Values{}
	for k, v := range f.Values {
		if k != "ClientToken" {
			params[k] = v
		}
	}
	q.s.launchMu.Lock()
	defer q.s.launchMu.Unlock()
	token := f.Get("ClientToken")
	if token != "" {
		if len(token) > 64 {
			return q.bad("InvalidParameterValue", "ClientToken is longer than 64 characters")
		}
		if same := q.s.list(func(m *Machine) bool { return m.Region == q.region && instanceOf(*m).ClientToken == token }); len(same) > 0 {
			if instanceOf(same[0]).Params != params.Encode() {
				return q.bad("IdempotentParameterMismatch", "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).")
			}
			return q.runAnswer(same[0])
		}
	}
	if it.capacityZone != "" && it.capacityZone != sn.az {
		q.fail(http.StatusInternalServerError, "InsufficientInstanceCapacity",
			fmt.Sprintf("We currently do not have sufficient %s capacity in the Availability Zone you requested (%s). Our system will be working on provisioning additional capacity. You can currently get %s capacity by not specifying an Availability Zone in your request or choosing %s.",
				typeName, sn.az, typeName, it.capacityZone))
		return ""
	}
	inst := awsInstance{AZ: sn.az, Subnet: sn.id, VPC: sn.vpc, Reservation: awsID("r", q.reqID), ClientToken: token,
		Profile: profile, RootDevice: "/dev/sda1", Params: params.Encode(), Groups: groups, Public: public, RootGB: rootGB, TagMap: specs["instance"]}
	var tags []string
	for _, k := range sortedTagKeys(inst.TagMap) {
		tags = append(tags, k+"="+inst.TagMap[k])
	}
	m := &Machine{Name: inst.TagMap["Name"], Type: typeName, Region: q.region, Spot: spot, Price: awsPrice(*it, q.region, spot),
		GPUs: it.gpus, Image: imageID, UserData: userData, Tags: tags, Extra: map[string]any{"aws": inst, "public": public}}
	if keys := cloudConfigKeys(userData); len(keys) > 0 {
		m.SSHKeys = keys
		m.Extra["public_key"] = keys[0]
	}
	q.s.launch(m)
	snap, _ := q.s.snapshot(m.ID)
	return q.runAnswer(snap)
}

// cloudConfigKeys returns the ssh_authorized_keys of #cloud-config user data.
func cloudConfigKeys(userData string) []string {
	var keys []string
	in := false
	for _, line := range strings.Split(userData, "\n") {
		switch {
		case strings.HasPrefix(line, "ssh_authorized_keys:"):
			in = true
		case in && strings.HasPrefix(strings.TrimSpace(line), "- "):
			k := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "- "))
			if uq, err := strconv.Unquote(k); err == nil {
				k = uq
			}
			keys = append(keys, k)
		case in && !strings.HasPrefix(line, " "):
			in = false
		}
	}
	return keys
}

// sortedTagKeys returns a map's keys in order.
func sortedTagKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (q *awsReq) runAnswer(m Machine) string {
	inst := instanceOf(m)
	var w xw
	w.el("reservationId", inst.Reservation)
	w.el("ownerId", awsAccount)
	w.open("groupSet")
	w.close("groupSet")
	w.open("instancesSet")
	q.writeInstance(&w, m)
	w.close("instancesSet")
	q.ok(w.String())
	return ""
}

// awsState is an instance's EC2 state: pending until it boots, running, then terminated (a machine
// whose host failed is terminated by EC2 with Server.InternalError).
func awsState(m Machine) (code int, name, reason string) {
	switch m.Status {
	case StatusBooting:
		return 0, "pending", ""
	case StatusActive:
		return 16, "running", ""
	case StatusFailed:
		return 48, "terminated", "Server.InternalError"
	}
	return 48, "terminated", "Client.UserInitiatedShutdown"
}

func (q *awsReq) writeInstance(w *xw, m Machine) {
	inst := instanceOf(m)
	code, state, reason := awsState(m)
	w.open("item")
	w.el("instanceId", m.ID)
	w.el("imageId", m.Image)
	w.WriteString(fmt.Sprintf("<instanceState><code>%d</code><name>%s</name></instanceState>", code, state))
	ip := strings.ReplaceAll(m.PrivateIP, ".", "-")
	running := state == "running"
	if m.PrivateIP != "" && state != "terminated" {
		w.el("privateDnsName", "ip-"+ip+"."+q.region+".compute.internal")
	} else {
		w.WriteString("<privateDnsName/>")
	}
	if running && inst.Public && m.IP != "" {
		w.el("dnsName", "ec2-"+strings.ReplaceAll(m.IP, ".", "-")+".compute-1.amazonaws.com")
	} else {
		w.WriteString("<dnsName/>")
	}
	if reason != "" {
		w.el("reason", reason)
	}
	w.el("amiLaunchIndex", 0)
	w.WriteString("<productCodes/>")
	w.el("instanceType", m.Type)
	w.el("launchTime", amzTime(m.Created))
	w.WriteString("<placement><availabilityZone>" + inst.AZ + "</availabilityZone><groupName/><tenancy>default</tenancy></placement>")
	w.WriteString("<monitoring><state>disabled</state></monitoring>")
	if state != "terminated" {
		w.el("subnetId", inst.Subnet)
		w.el("vpcId", inst.VPC)
		w.el("privateIpAddress", m.PrivateIP)
	}
	if running && inst.Public {
		w.el("ipAddress", m.IP)
	}
	w.el("sourceDestCheck", true)
	w.open("groupSet")
	for _, g := range inst.Groups {
		w.open("item")
		w.el("groupId", g)
		w.close("item")
	}
	w.close("groupSet")
	if reason != "" {
		w.WriteString("<stateReason><code>" + reason + "</code><message>" + reason + ": " +
			map[bool]string{true: "Internal error on launch", false: "User initiated shutdown"}[reason == "Server.InternalError"] +
			"</message></stateReason>")
	}
	w.el("architecture", "x86_64")
	w.el("rootDeviceType", "ebs")
	w.el("rootDeviceName", inst.RootDevice)
	w.open("blockDeviceMapping")
	if state != "terminated" {
		w.open("item")
		w.el("deviceName", inst.RootDevice)
		w.WriteString("<ebs><volumeId>" + awsID("vol", m.ID) + "</volumeId><status>attached</status><attachTime>" + amzTime(m.Created) +
			"</attachTime><deleteOnTermination>true</deleteOnTermination></ebs>")
		w.close("item")
	}
	w.close("blockDeviceMapping")
	if m.Spot {
		w.el("instanceLifecycle", "spot")
		w.el("spotInstanceRequestId", awsID("sir", m.ID))
	}
	if inst.Profile != "" {
		w.WriteString("<iamInstanceProfile><arn>arn:aws:iam::" + awsAccount + ":instance-profile/" + inst.Profile + "</arn><id>" +
			strings.ToUpper("AIPA"+awsID("x", inst.Profile)[2:16]) + "</id></iamInstanceProfile>")
	}
	if inst.ClientToken != "" {
		w.el("clientToken", inst.ClientToken)
	}
	if len(inst.TagMap) > 0 {
		w.tags("tagSet", inst.TagMap)
	}
	w.el("virtualizationType", "hvm")
	w.el("hypervisor", "xen")
	w.el("ebsOptimized", false)
	w.el("enaSupport", true)
	w.close("item")
}

var instanceIDRe = regexp.MustCompile(`^i-([0-9a-f]{8}|[0-9a-f]{17})$`)

// instances returns the named instances of the region; on a bad or unknown id it has answered.
func (q *awsReq) instances(ids []string) ([]Machine, bool) {
	var out []Machine
	var missing []string
	for _, id := range ids {
		if !instanceIDRe.MatchString(id) {
			q.fail(http.StatusBadRequest, "InvalidInstanceID.Malformed", fmt.Sprintf("Invalid id: %q", id))
			return nil, false
		}
		m, ok := q.s.snapshot(id)
		if !ok || m.Region != q.region {
			missing = append(missing, id)
			continue
		}
		out = append(out, m)
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("The instance ID '%s' does not exist", missing[0])
		if len(missing) > 1 {
			msg = fmt.Sprintf("The instance IDs '%s' do not exist", strings.Join(missing, ", "))
		}
		q.fail(http.StatusBadRequest, "InvalidInstanceID.NotFound", msg)
		return nil, false
	}
	return out, true
}

func ec2DescribeInstances(q *awsReq) string {
	f, miss := q.checkFilters("instance-id", "instance-state-name", "instance-type", "availability-zone", "vpc-id", "subnet-id",
		"image-id", "instance-lifecycle", "client-token")
	if miss != "" {
		return miss
	}
	ids := q.form.list("InstanceId")
	maxResults := 0
	if s := q.form.Get("MaxResults"); s != "" {
		if len(ids) > 0 {
			return q.bad("InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults")
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 5 || n > 1000 {
			return q.bad("InvalidParameterValue", "Value ( "+s+" ) for parameter maxResults is invalid. Expecting a value between 5 and 1000.")
		}
		maxResults = n
	}
	var list []Machine
	if len(ids) > 0 {
		var ok bool
		if list, ok = q.instances(ids); !ok {
			return ""
		}
	} else {
		list = q.s.list(func(m *Machine) bool { return m.Region == q.region })
	}
	start := 0
	if tok := q.form.Get("NextToken"); tok != "" {
		n, err := strconv.Atoi(tok)
		if err != nil || n < 0 || n > len(list) {
			return q.bad("InvalidNextToken", "The specified NextToken is not valid.")
		}
		start = n
	}
	var w xw
	w.open("reservationSet")
	shown, next := 0, ""
	for i := start; i < len(list); i++ {
		m := list[i]
		inst := instanceOf(m)
		_, state, _ := awsState(m)
		lifecycle := ""
		if m.Spot {
			lifecycle = "spot"
		}
		if !keep(f, map[string][]string{"instance-id": {m.ID}, "instance-state-name": {state}, "instance-type": {m.Type},
			"availability-zone": {inst.AZ}, "vpc-id": {inst.VPC}, "subnet-id": {inst.Subnet}, "image-id": {m.Image},
			"instance-lifecycle": {lifecycle}, "client-token": {inst.ClientToken}}, inst.TagMap) {
			continue
		}
		if maxResults > 0 && shown == maxResults {
			next = strconv.Itoa(i)
			break
		}
		shown++
		w.open("item")
		w.el("reservationId", inst.Reservation)
		w.el("ownerId", awsAccount)
		w.WriteString("<groupSet/>")
		w.open("instancesSet")
		q.writeInstance(&w, m)
		w.close("instancesSet")
		w.close("item")
	}
	w.close("reservationSet")
	w.el("nextToken", next)
	q.ok(w.String())
	return ""
}

func ec2TerminateInstances(q *awsReq) string {
	ids := q.form.list("InstanceId")
	if len(ids) == 0 {
		return q.bad("MissingParameter", "The request must contain the parameter InstanceId")
	}
	list, ok := q.instances(ids)
	if !ok {
		return ""
	}
	var w xw
	w.open("instancesSet")
	for _, m := range list {
		pc, pn, _ := awsState(m)
		q.s.terminate(m.ID)
		w.open("item")
		w.el("instanceId", m.ID)
		if pn == "terminated" {
			w.WriteString("<currentState><code>48</code><name>terminated</name></currentState>")
		} else {
			w.WriteString("<currentState><code>32</code><name>shutting-down</name></currentState>")
		}
		w.WriteString(fmt.Sprintf("<previousState><code>%d</code><name>%s</name></previousState>", pc, pn))
		w.close("item")
	}
	w.close("instancesSet")
	q.ok(w.String())
	return ""
}
