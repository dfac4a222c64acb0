package fake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Google Cloud: the Compute Engine API v1 (REST, https://cloud.google.com/compute/docs/reference/rest/v1)
// at /compute/v1/projects/{project}/..., as the google.golang.org/api/compute/v1 client calls it
// when its endpoint is the simulation's URL + /compute/v1/, and Google's OAuth 2.0 token endpoint at
// /token (the token_uri of the simulation's service-account keys):
//
//   - regions.list, regions.get (zones and quotas with their usage), zones.list;
//   - instances.insert, get, delete, attachDisk, detachDisk, aggregatedList (filter
//     labels.<key>:* only);
//   - disks.insert, get, delete; firewalls.get, list, insert;
//   - networks.get, subnetworks.list (aggregated per region), routers.list (Cloud NAT);
//   - zoneOperations.get, wait and globalOperations.get, wait;
//   - the Cloud TPU API v2 beside it, at /v2/projects/{project}/locations/... (gcp_tpu.go).
//
// Every call needs a Bearer access token that the token endpoint issued (401 authError otherwise).
// Mutations answer an Operation, RUNNING; get and wait answer it DONE, with its error when the
// request failed late (ZONE_RESOURCE_POOL_EXHAUSTED). A requestId makes a repeated mutation answer
// the first one's operation. Errors are Google's {"error": {"code", "message", "errors": [{"reason"}]}}:
// notFound (404), alreadyExists (409), invalid (400), resourceInUseByAnotherResource (400),
// quotaExceeded (403), rateLimitExceeded (429), backendError (500).
//
// The world: projects sim-project (the keys' own), gcp-project-id and another-project-id (the
// seed's examples); each has a network `default`, the last two also my-custom-vpc, and sim-project
// the GPUDirect VPCs gpudirect-1..4 and gpudirect-eu. A network has one subnet per region, named as
// the network, in the regions of gcpSubnetRegions (every region when not listed there). Cloud
// Routers are gcpRouters: sim-project's default network has a Cloud NAT in every region;
// gcp-project-id's only in some (see there), with a router without NAT in us-east1. Regions are the
// 35 of dstack's default list, with zones a, b and c (us-central1 a, b, c and f; us-east1 and
// europe-west1 b, c and d). Machine types are gcpTypes, sold in the zones listed there;
// a2-highgpu-1g has capacity only in us-central1-c (ZONE_RESOURCE_POOL_EXHAUSTED elsewhere); the
// shared-core types of gateways are gcpSmallTypes (gcp_gateway.go). GPU
// quotas (NVIDIA_*_GPUS, PREEMPTIBLE_NVIDIA_*_GPUS) are gcpQuotas, their usage the GPUs of the
// instances alive in the region; a launch beyond them is refused with quotaExceeded. Boot images
// are the public ubuntu-os-cloud families. An instance takes up to gcpMaxNICs network interfaces,
// each in a distinct network with a subnet in the instance's region.

const gcpSelfBase = "https://www.googleapis.com/compute/v1/"

var gcpProjects = map[string][]string{ // project -> networks
	gcpProject:           {"default", "gpudirect-1", "gpudirect-2", "gpudirect-3", "gpudirect-4", "gpudirect-eu"},
	"gcp-project-id":     {"default", "my-custom-vpc"},
	"another-project-id": {"default", "my-custom-vpc"},
}

// gcpSubnetRegions are the regions where a network ("project/network") has its subnet; networks
// not listed have one in every region (auto mode).
var gcpSubnetRegions = map[string][]string{
	gcpProject + "/gpudirect-1":  {"us-central1", "us-east4"},
	gcpProject + "/gpudirect-2":  {"us-central1", "us-east4"},
	gcpProject + "/gpudirect-3":  {"us-central1", "us-east4"},
	gcpProject + "/gpudirect-4":  {"us-central1", "us-east4"},
	gcpProject + "/gpudirect-eu": {"europe-west4"},
}

// gcpHasSubnet reports whether a network of a project has a subnet in a region.
func gcpHasSubnet(project, network, region string) bool {
	if !contains(gcpProjects[project], network) || !gcpKnownRegion(region) {
		return false
	}
	regions, listed := gcpSubnetRegions[project+"/"+network]
	return !listed || contains(regions, region)
}

// gcpRouter is a Cloud Router; nat says whether it has a Cloud NAT gateway.
type gcpRouter struct {
	name, network string
	nat           bool
}

// gcpRouters are a project's Cloud Routers in a region.
func gcpRouters(project, region string) []gcpRouter {
	switch project {
	case gcpProject:
		return []gcpRouter{{"nat-router", "default", true}}
	case "gcp-project-id":
		// default: Cloud NAT in us-central1, us-east1 and europe-west4 only; my-custom-vpc: in
		// us-central1, and in us-east1 a router (for a VPN's BGP) without NAT.
		switch region {
		case "us-central1":
			return []gcpRouter{{"nat-router", "default", true}, {"custom-nat-router", "my-custom-vpc", true}}
		case "us-east1":
			return []gcpRouter{{"vpn-router", "my-custom-vpc", false}, {"nat-router", "default", true}}
		case "europe-west4":
			return []gcpRouter{{"nat-router", "default", true}}
		}
	case "another-project-id":
		if region == "us-central1" {
			return []gcpRouter{{"shared-nat-router", "my-custom-vpc", true}}
		}
	}
	return nil
}

// gcpMaxNICs is how many network interfaces an instance of a machine type takes: A3 High one
// plus four GPU NICs, A3 Mega one plus eight; other types one per vCPU, at least 2, at most 8.
func gcpMaxNICs(t *gcpType) int {
	switch t.name {
	case "a3-highgpu-8g":
		return 5
	case "a3-megagpu-8g":
		return 9
	}
	return min(max(t.cpu, 2), 8)
}

// gcpRegions are dstack's default GCP regions.
var gcpRegions = []string{"northamerica-northeast1", "northamerica-northeast2", "us-central1", "us-east1", "us-east4",
	"us-east5", "us-south1", "us-west1", "us-west2", "us-west3", "us-west4", "southamerica-east1", "southamerica-west1",
	"europe-central2", "europe-north1", "europe-southwest1", "europe-west1", "europe-west2", "europe-west3", "europe-west4",
	"europe-west6", "europe-west8", "europe-west9", "asia-east1", "asia-east2", "asia-northeast1", "asia-northeast2",
	"asia-northeast3", "asia-south1", "asia-south2", "asia-southeast1", "asia-southeast2", "me-west1",
	"australia-southeast1", "australia-southeast2"}

func gcpZones(region string) []string {
	letters := "abc"
	switch region {
	case "us-central1":
		letters = "abcf"
	case "us-east1", "europe-west1":
		letters = "bcd"
	}
	var out []string
	for _, l := range letters {
		out = append(out, region+"-"+string(l))
	}
	return out
}

func gcpKnownRegion(r string) bool {
	for _, x := range gcpRegions {
		if x == r {
			return true
		}
	}
	return false
}

// gcpRegionOf is the region of a zone (us-central1-a → us-central1), "" when not a known zone.
func gcpRegionOf(zone string) string {
	i := strings.LastIndex(zone, "-")
	if i < 0 || !gcpKnownRegion(zone[:i]) {
		return ""
	}
	for _, z := range gcpZones(zone[:i]) {
		if z == zone {
			return zone[:i]
		}
	}
	return ""
}

// gcpType is a machine type (with its GPUs) the simulation sells.
type gcpType struct {
	name        string
	cpu, mem    int
	gpus        int
	gpu         string
	gpuMem      float64
	price, spot float64
	accel       string   // the acceleratorType to attach (N1); "" when implied by the machine type or none
	zones       []string // where it is sold
	capacity    string   // "": every zone; else the only zone with capacity
}

func gcpZonesOf(regions ...string) []string {
	var out []string
	for _, r := range regions {
		out = append(out, gcpZones(r)...)
	}
	return out
}

var gcpTypes = []gcpType{
	{name: "e2-standard-4", cpu: 4, mem: 16, price: 0.134, spot: 0.0402, zones: gcpZonesOf("us-central1", "us-east1", "europe-west4")},
	{name: "n1-standard-4", cpu: 4, mem: 15, price: 0.19, spot: 0.04, zones: gcpZonesOf("us-central1", "us-east1", "europe-west4")},
	{name: "n1-standard-4", cpu: 4, mem: 15, gpus: 1, gpu: "T4", gpuMem: 16, price: 0.54, spot: 0.18, accel: "nvidia-tesla-t4",
		zones: []string{"us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f", "us-east1-c", "us-east1-d", "europe-west4-a", "europe-west4-b", "europe-west4-c"}},
	{name: "g2-standard-4", cpu: 4, mem: 16, gpus: 1, gpu: "L4", gpuMem: 24, price: 0.7069, spot: 0.2828,
		zones: []string{"us-central1-a", "us-central1-b", "us-central1-c", "europe-west4-a", "europe-west4-b", "europe-west4-c"}},
	{name: "a2-highgpu-1g", cpu: 12, mem: 85, gpus: 1, gpu: "A100", gpuMem: 40, price: 3.6731, spot: 1.1,
		zones: gcpZones("us-central1"), capacity: "us-central1-c"},
	{name: "a3-highgpu-8g", cpu: 208, mem: 1872, gpus: 8, gpu: "H100", gpuMem: 80, price: 88.2522,
		zones: []string{"us-central1-a", "us-central1-b", "us-central1-c", "us-east4-a", "us-east4-b", "us-east4-c"}},
	{name: "a3-megagpu-8g", cpu: 208, mem: 1872, gpus: 8, gpu: "H100", gpuMem: 80, price: 94.9954,
		zones: []string{"us-east4-a", "us-east4-b", "us-east4-c"}},
}

// gcpAccelerators maps acceleratorType names to the catalog's GPU names.
var gcpAccelerators = map[string]string{"nvidia-tesla-t4": "T4", "nvidia-tesla-v100": "V100", "nvidia-tesla-p100": "P100",
	"nvidia-l4": "L4", "nvidia-tesla-p4": "P4"}

func gcpTypeFor(name, accel string, count int64, zone string) *gcpType {
	for i := range gcpTypes {
		t := &gcpTypes[i]
		if t.name != name || t.accel != accel || t.accel != "" && int64(t.gpus) != count || !contains(t.zones, zone) {
			continue
		}
		return t
	}
	return gcpSmallType(name, accel, zone)
}

func gcpCatalog() []catalogRow {
	var rows []catalogRow
	for _, t := range gcpTypes {
		for _, z := range t.zones {
			row := catalogRow{name: t.name, location: z, price: t.price, cpu: t.cpu, memory: t.mem, gpus: t.gpus, gpuName: t.gpu, gpuMem: t.gpuMem}
			rows = append(rows, row)
			if t.spot > 0 {
				row.price, row.spot = t.spot, true
				rows = append(rows, row)
			}
		}
	}
	return append(rows, gcpTPUCatalog()...)
}

// gcpQuotaMetric is the region quota that GPUs count against.
func gcpQuotaMetric(gpu string, gpuMem float64, spot bool) string {
	m := "NVIDIA_" + gpu + "_GPUS"
	if gpu == "A100" && gpuMem == 80 {
		m = "NVIDIA_A100_80GB_GPUS"
	}
	if spot {
		m = "PREEMPTIBLE_" + m
	}
	return m
}

// gcpQuotas are the region quota limits.
func gcpQuotas(region string) map[string]float64 {
	q := map[string]float64{"CPUS": 24, "PREEMPTIBLE_CPUS": 24, "INSTANCES": 100, "DISKS_TOTAL_GB": 4096, "SSD_TOTAL_GB": 500}
	switch region {
	case "us-central1":
		q["CPUS"] = 512
		for k, v := range map[string]float64{"NVIDIA_T4_GPUS": 4, "PREEMPTIBLE_NVIDIA_T4_GPUS": 4, "NVIDIA_L4_GPUS": 8,
			"PREEMPTIBLE_NVIDIA_L4_GPUS": 0, "NVIDIA_A100_GPUS": 8, "PREEMPTIBLE_NVIDIA_A100_GPUS": 0, "NVIDIA_H100_GPUS": 0} {
			q[k] = v
		}
	case "us-east1":
		q["NVIDIA_T4_GPUS"], q["PREEMPTIBLE_NVIDIA_T4_GPUS"] = 1, 1
	case "europe-west4":
		q["NVIDIA_L4_GPUS"], q["PREEMPTIBLE_NVIDIA_L4_GPUS"], q["NVIDIA_T4_GPUS"] = 2, 2, 0
	case "us-east4":
		q["CPUS"], q["NVIDIA_H100_GPUS"] = 512, 16
	}
	return q
}

// gcpInst is what the simulation keeps of an instance beyond Machine.
type gcpInst struct {
	Project, Zone, NumID, MachineType string
	Network, VPCProject               string // of nic0
	NICs                              []gcpNIC
	Public                            bool
	Labels                            map[string]string
	NetTags                           []string
	Metadata                          map[string]string
	Disks                             []gcpAttached
	Accel                             string
	AccelCount                        int64
	Scheduling                        map[string]any
	ServiceAccount                    string
	GPU                               string
	GPUMem                            float64
	Created                           time.Time
}

// gcpNIC is one network interface of an instance, in order (nic0 first).
type gcpNIC struct {
	VPCProject, Network, NicType string
}

type gcpAttached struct {
	DeviceName, Source string
	Boot               bool
	SizeGB             int64
}

type gcpDisk struct {
	Project, Zone, Name, NumID, Type string
	SizeGB                           int64
	Labels                           map[string]string
	Users                            []string
	Created                          time.Time
}

type gcpFirewall struct {
	Name, NumID, Network, Direction string
	Allowed                         []map[string]any
	SourceRanges, TargetTags        []string
	Created                         time.Time
}

type gcpOp struct {
	Name, Project, Zone, Type, Target, TargetID string
	ErrCode, ErrMsg                             string
	HTTPStatus                                  int
	Created                                     time.Time
}

// gcpReq is one Compute Engine request being served.
type gcpReq struct {
	s       *Sim
	w       http.ResponseWriter
	r       *http.Request
	project string
}

func (q *gcpReq) fail(code int, reason, msg string) { gcpError(q.w, code, reason, msg) }

// bad answers a malformed request as Google does (400 invalid) and returns it as a miss.
func (q *gcpReq) bad(msg string) string {
	q.fail(http.StatusBadRequest, "invalid", msg)
	return msg
}

func (q *gcpReq) ok(v any) { writeJSON(q.w, http.StatusOK, v) }

func (q *gcpReq) notFound(what string) {
	q.fail(http.StatusNotFound, "notFound", fmt.Sprintf("The resource '%s' was not found", what))
}

// gcpRoute serves one Compute Engine call: the Bearer token, then the project.
func gcpRoute(pattern string, launch bool, serve func(q *gcpReq) string) route {
	return route{pattern: pattern, launch: launch, serve: func(s *Sim, w http.ResponseWriter, r *http.Request) string {
		if why, ok := gcpAuth(s, w, r); !ok {
			return why
		}
		q := &gcpReq{s: s, w: w, r: r, project: r.PathValue("project")}
		if _, ok := gcpProjects[q.project]; !ok {
			q.notFound("projects/" + q.project)
			return ""
		}
		if alt := r.URL.Query().Get("alt"); alt != "" && alt != "json" {
			return q.bad("alt=" + alt + " is not supported")
		}
		return serve(q)
	}}
}

func init() {
	const p = "/compute/v1/projects/{project}/"
	register("gcp", &provider{
		prefix: "",
		// GoodConfig and BadConfig without a URL: Application Default Credentials (gcpEnv writes the
		// key they find) and a key whose client_email is refused.
		good: map[string]any{"regions": []any{"us-central1"}, "creds": map[string]any{"type": "default"}},
		bad: func() map[string]any {
			_, b := gcpEntries("https://oauth2.googleapis.com")
			return b
		}(),
		at:           gcpEntries,
		env:          gcpEnv,
		failBody:     gcpErrorBody(500, "backendError", "Internal error. Please try again or contact Google Support.", "INTERNAL"),
		throttleBody: `{"error":{"code":429,"message":"Rate Limit Exceeded","status":"RESOURCE_EXHAUSTED","errors":[{"message":"Rate Limit Exceeded","domain":"usageLimits","reason":"rateLimitExceeded"}]}}`,
		capacity: func(w http.ResponseWriter) {
			// A stockout shows in the insert's operation, which is DONE with the error.
			writeJSON(w, http.StatusOK, map[string]any{"kind": "compute#operation", "id": "7001", "name": "operation-stockout-7001",
				"operationType": "insert", "status": "DONE", "progress": 100, "httpErrorStatusCode": 503, "httpErrorMessage": "SERVICE UNAVAILABLE",
				"error": map[string]any{"errors": []any{map[string]any{"code": "ZONE_RESOURCE_POOL_EXHAUSTED",
					"message": "The zone does not have enough resources available to fulfill the request.  Try a different zone, or try again later."}}}})
		},
		notFound: func(w http.ResponseWriter) {
			gcpError(w, http.StatusNotFound, "notFound", "The requested URL was not found on this server.")
		},
		newID:   func(s *Sim, n int) string { return fmt.Sprintf("sim-%d", n) },
		catalog: gcpCatalog,
		routes: []route{
			{pattern: "POST " + gcpTokenPath, serve: gcpToken},
			gcpRoute("GET "+p+"regions", false, gcpRegionsList),
			gcpRoute("GET "+p+"regions/{region}", false, gcpRegionGet),
			gcpRoute("GET "+p+"zones", false, gcpZonesList),
			gcpRoute("GET "+p+"regions/{region}/subnetworks", false, gcpSubnetworksList),
			gcpRoute("GET "+p+"regions/{region}/routers", false, gcpRoutersList),
			gcpRoute("GET "+p+"global/networks/{name}", false, gcpGetNetwork),
			gcpRoute("POST "+p+"zones/{zone}/instances", true, gcpInsertInstance),
			gcpRoute("GET "+p+"zones/{zone}/instances/{name}", false, gcpGetInstance),
			gcpRoute("DELETE "+p+"zones/{zone}/instances/{name}", false, gcpDeleteInstance),
			gcpRoute("POST "+p+"zones/{zone}/instances/{name}/attachDisk", false, gcpAttachDisk),
			gcpRoute("POST "+p+"zones/{zone}/instances/{name}/detachDisk", false, gcpDetachDisk),
			gcpRoute("GET "+p+"aggregated/instances", false, gcpAggregatedInstances),
			gcpRoute("POST "+p+"zones/{zone}/disks", false, gcpInsertDisk),
			gcpRoute("GET "+p+"zones/{zone}/disks/{name}", false, gcpGetDisk),
			gcpRoute("DELETE "+p+"zones/{zone}/disks/{name}", false, gcpDeleteDisk),
			gcpRoute("GET "+p+"global/firewalls", false, gcpListFirewalls),
			gcpRoute("GET "+p+"global/firewalls/{name}", false, gcpGetFirewall),
			gcpRoute("POST "+p+"global/firewalls", false, gcpInsertFirewall),
			gcpRoute("GET "+p+"zones/{zone}/operations/{op}", false, gcpGetOperation),
			gcpRoute("POST "+p+"zones/{zone}/operations/{op}/wait", false, gcpGetOperation),
			gcpRoute("GET "+p+"global/operations/{op}", false, gcpGetOperation),
			gcpRoute("POST "+p+"global/operations/{op}/wait", false, gcpGetOperation),
		},
	})
	// The Cloud TPU API v2 (gcp_tpu.go), served beside Compute Engine.
	providers["gcp"].routes = append(providers["gcp"].routes, gcpTPURoutes()...)
}

// --- regions and zones ---

func (q *gcpReq) regionJSON(region string) map[string]any {
	var zones []string
	for _, z := range gcpZones(region) {
		zones = append(zones, gcpSelfBase+"projects/"+q.project+"/zones/"+z)
	}
	usage := map[string]float64{}
	for _, m := range q.s.list(func(m *Machine) bool { return m.Status != StatusTerminated && m.Region == region }) {
		gi, _ := m.Extra["gcp"].(gcpInst)
		if gi.Project != q.project {
			continue
		}
		if m.GPUs > 0 {
			usage[gcpQuotaMetric(gi.GPU, gi.GPUMem, m.Spot)] += float64(m.GPUs)
		}
	}
	quotas := gcpQuotas(region)
	var qs []any
	for _, k := range sortedKeysF(quotas) {
		qs = append(qs, map[string]any{"metric": k, "limit": quotas[k], "usage": usage[k]})
	}
	return map[string]any{"kind": "compute#region", "id": fmt.Sprint(1000 + len(region)), "name": region,
		"description": region, "status": "UP", "zones": zones, "quotas": qs,
		"selfLink": gcpSelfBase + "projects/" + q.project + "/regions/" + region}
}

func sortedKeysF(m map[string]float64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func gcpRegionsList(q *gcpReq) string {
	var items []any
	for _, r := range gcpRegions {
		items = append(items, q.regionJSON(r))
	}
	q.ok(map[string]any{"kind": "compute#regionList", "id": "projects/" + q.project + "/regions", "items": items,
		"selfLink": gcpSelfBase + "projects/" + q.project + "/regions"})
	return ""
}

func gcpRegionGet(q *gcpReq) string {
	region := q.r.PathValue("region")
	if !gcpKnownRegion(region) {
		q.notFound("projects/" + q.project + "/regions/" + region)
		return ""
	}
	q.ok(q.regionJSON(region))
	return ""
}

func gcpZonesList(q *gcpReq) string {
	var items []any
	for _, r := range gcpRegions {
		for _, z := range gcpZones(r) {
			items = append(items, map[string]any{"kind": "compute#zone", "name": z, "status": "UP",
				"region": gcpSelfBase + "projects/" + q.project + "/regions/" + r, "selfLink": gcpSelfBase + "projects/" + q.project + "/zones/" + z})
		}
	}
	q.ok(map[string]any{"kind": "compute#zoneList", "items": items})
	return ""
}

// gcpSubnetworksList lists the subnets of a region: each network of the project with a subnet
// there (gcpHasSubnet) has one, named as the network.
func gcpSubnetworksList(q *gcpReq) string {
	region := q.r.PathValue("region")
	if !gcpKnownRegion(region) {
		q.notFound("projects/" + q.project + "/regions/" + region)
		return ""
	}
	var items []any
	for i, n := range gcpProjects[q.project] {
		if !gcpHasSubnet(q.project, n, region) {
			continue
		}
		items = append(items, map[string]any{"kind": "compute#subnetwork", "name": n, "region": gcpSelfBase + "projects/" + q.project + "/regions/" + region,
			"network": gcpSelfBase + "projects/" + q.project + "/global/networks/" + n, "ipCidrRange": fmt.Sprintf("10.%d.0.0/20", 128+i),
			"selfLink": gcpSelfBase + "projects/" + q.project + "/regions/" + region + "/subnetworks/" + n})
	}
	q.ok(map[string]any{"kind": "compute#subnetworkList", "items": items})
	return ""
}

// gcpGetNetwork serves networks.get: the project's VPC network with the links of its subnets.
func gcpGetNetwork(q *gcpReq) string {
	name := q.r.PathValue("name")
	idx := -1
	for i, n := range gcpProjects[q.project] {
		if n == name {
			idx = i
		}
	}
	if idx < 0 {
		q.notFound("projects/" + q.project + "/global/networks/" + name)
		return ""
	}
	_, custom := gcpSubnetRegions[q.project+"/"+name]
	var subnets []string
	for _, r := range gcpRegions {
		if gcpHasSubnet(q.project, name, r) {
			subnets = append(subnets, gcpSelfBase+"projects/"+q.project+"/regions/"+r+"/subnetworks/"+name)
		}
	}
	q.ok(map[string]any{"kind": "compute#network", "id": fmt.Sprint(7000000000000000000 + idx + 1000*len(q.project)), "name": name,
		"autoCreateSubnetworks": !custom, "subnetworks": subnets, "routingConfig": map[string]any{"routingMode": "REGIONAL"},
		"mtu": 1460, "networkFirewallPolicyEnforcementOrder": "AFTER_CLASSIC_FIREWALL", "creationTimestamp": "2024-01-15T09:30:00.000-08:00",
		"selfLink": gcpSelfBase + "projects/" + q.project + "/global/networks/" + name})
	return ""
}

// gcpRoutersList serves routers.list of a region: Router resources, whose nats list the Cloud NAT
// gateways (empty for a router that only does BGP).
func gcpRoutersList(q *gcpReq) string {
	region := q.r.PathValue("region")
	if !gcpKnownRegion(region) {
		q.notFound("projects/" + q.project + "/regions/" + region)
		return ""
	}
	if f := q.r.URL.Query().Get("filter"); f != "" {
		return q.bad("Invalid list filter expression '" + f + "'. The simulation lists routers without a filter.")
	}
	regionURL := gcpSelfBase + "projects/" + q.project + "/regions/" + region
	items := []any{}
	for i, rt := range gcpRouters(q.project, region) {
		router := map[string]any{"kind": "compute#router", "id": fmt.Sprint(8000000000000000000 + i + 100*len(region)), "name": rt.name,
			"region": regionURL, "network": gcpSelfBase + "projects/" + q.project + "/global/networks/" + rt.network,
			"bgp":               map[string]any{"asn": 64514 + i, "advertiseMode": "DEFAULT", "keepaliveInterval": 20},
			"creationTimestamp": "2024-01-15T09:45:00.000-08:00", "selfLink": regionURL + "/routers/" + rt.name,
			"encryptedInterconnectRouter": false}
		if rt.nat {
			router["nats"] = []any{map[string]any{"name": rt.name + "-nat", "natIpAllocateOption": "AUTO_ONLY",
				"sourceSubnetworkIpRangesToNat": "ALL_SUBNETWORKS_ALL_IP_RANGES", "enableEndpointIndependentMapping": false,
				"endpointTypes": []string{"ENDPOINT_TYPE_VM"}, "logConfig": map[string]any{"enable": false, "filter": "ALL"}}}
		}
		items = append(items, router)
	}
	q.ok(map[string]any{"kind": "compute#routerList", "id": "projects/" + q.project + "/regions/" + region + "/routers", "items": items,
		"selfLink": regionURL + "/routers"})
	return ""
}

// zone checks the {zone} of the path; false means it answered.
func (q *gcpReq) zone() (string, bool) {
	z := q.r.PathValue("zone")
	if gcpRegionOf(z) == "" {
		q.notFound("projects/" + q.project + "/zones/" + z)
		return "", false
	}
	return z, true
}

// --- operations ---

// operation records a mutation's operation and answers it, RUNNING.
func (q *gcpReq) operation(zone, typ, target, targetID string, errCode, errMsg string, httpStatus int) {
	op := gcpOp{Name: "operation-" + fmt.Sprint(time.Now().UnixMilli()) + "-" + q.s.hexID(13), Project: q.project, Zone: zone,
		Type: typ, Target: target, TargetID: targetID, ErrCode: errCode, ErrMsg: errMsg, HTTPStatus: httpStatus, Created: time.Now()}
	q.s.putObject("gcp-ops", q.project+"/"+op.Name, op)
	if id := q.r.URL.Query().Get("requestId"); id != "" {
		q.s.putObject("gcp-requests", q.project+"/"+id, op.Name)
	}
	q.ok(q.opJSON(op, false))
}

// repeated answers the operation of an earlier request with the same requestId; true means it did.
func (q *gcpReq) repeated() bool {
	id := q.r.URL.Query().Get("requestId")
	if id == "" {
		return false
	}
	name, ok := q.s.Objects("gcp-requests")[q.project+"/"+id].(string)
	if !ok {
		return false
	}
	op, _ := q.s.Objects("gcp-ops")[q.project+"/"+name].(gcpOp)
	q.ok(q.opJSON(op, false))
	return true
}

func (q *gcpReq) opJSON(op gcpOp, done bool) map[string]any {
	scope := "global"
	if op.Zone != "" {
		scope = "zones/" + op.Zone
	}
	out := map[string]any{"kind": "compute#operation", "id": fmt.Sprint(op.Created.UnixNano()), "name": op.Name,
		"operationType": op.Type, "targetLink": op.Target, "status": "RUNNING", "progress": 0,
		"user": gcpGoodEmail, "insertTime": op.Created.Format(time.RFC3339), "startTime": op.Created.Format(time.RFC3339),
		"selfLink": gcpSelfBase + "projects/" + op.Project + "/" + scope + "/operations/" + op.Name}
	if op.TargetID != "" {
		out["targetId"] = op.TargetID
	}
	if op.Zone != "" {
		out["zone"] = gcpSelfBase + "projects/" + op.Project + "/zones/" + op.Zone
	}
	if done {
		out["status"], out["progress"], out["endTime"] = "DONE", 100, time.Now().Format(time.RFC3339)
		if op.ErrCode != "" {
			out["error"] = map[string]any{"errors": []any{map[string]any{"code": op.ErrCode, "message": op.ErrMsg}}}
			out["httpErrorStatusCode"] = op.HTTPStatus
			out["httpErrorMessage"] = strings.ToUpper(http.StatusText(op.HTTPStatus))
		}
	}
	return out
}

func gcpGetOperation(q *gcpReq) string {
	name := q.r.PathValue("op")
	op, ok := q.s.Objects("gcp-ops")[q.project+"/"+name].(gcpOp)
	zone := q.r.PathValue("zone")
	if !ok || op.Zone != zone {
		scope := "global"
		if zone != "" {
			scope = "zones/" + zone
		}
		q.notFound("projects/" + q.project + "/" + scope + "/operations/" + name)
		return ""
	}
	q.ok(q.opJSON(op, true))
	return ""
}

// --- resource names ---

var (
	gcpNameRe     = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)
	gcpLabelKeyRe = regexp.MustCompile(`^[\p{Ll}\p{Lo}][\p{Ll}\p{Lo}\p{N}_-]{0,62}$`)
	gcpLabelValRe = regexp.MustCompile(`^[\p{Ll}\p{Lo}\p{N}_-]{0,63}$`)
)

// relative turns a resource URL (full or partial) into its path after compute/v1/.
func relative(u string) string {
	for _, p := range []string{gcpSelfBase, "https://compute.googleapis.com/compute/v1/"} {
		u = strings.TrimPrefix(u, p)
	}
	return strings.TrimPrefix(u, "/")
}

func checkLabels(labels map[string]string) string {
	if len(labels) > 64 {
		return "Invalid value for field 'resource.labels': more than 64 labels"
	}
	for k, v := range labels {
		if !gcpLabelKeyRe.MatchString(k) || !gcpLabelValRe.MatchString(v) {
			return fmt.Sprintf("Invalid value for field 'resource.labels': '%s'. Label keys must start with a lowercase letter; keys and values may contain only lowercase letters, digits, underscores and dashes, at most 63 characters.", k)
		}
	}
	return ""
}

// --- instances ---

type gcpInstanceBody struct {
	Name        string                    `json:"name"`
	MachineType string                    `json:"machineType"`
	Labels      map[string]string         `json:"labels"`
	Tags        *struct{ Items []string } `json:"tags"`
	Metadata    *struct {
		Items []struct{ Key, Value string }
	} `json:"metadata"`
	Disks []struct {
		Boot             bool   `json:"boot"`
		AutoDelete       bool   `json:"autoDelete"`
		Type             string `json:"type"`
		Source           string `json:"source"`
		DeviceName       string `json:"deviceName"`
		InitializeParams *struct {
			SourceImage string            `json:"sourceImage"`
			DiskSizeGb  json.RawMessage   `json:"diskSizeGb"`
			DiskType    string            `json:"diskType"`
			Labels      map[string]string `json:"labels"`
		} `json:"initializeParams"`
	} `json:"disks"`
	NetworkInterfaces []struct {
		Network       string `json:"network"`
		Subnetwork    string `json:"subnetwork"`
		NicType       string `json:"nicType"`
		AccessConfigs []struct {
			Type, Name, NetworkTier string
		} `json:"accessConfigs"`
	} `json:"networkInterfaces"`
	GuestAccelerators []struct {
		AcceleratorType  string `json:"acceleratorType"`
		AcceleratorCount int64  `json:"acceleratorCount"`
	} `json:"guestAccelerators"`
	Scheduling *struct {
		ProvisioningModel         string `json:"provisioningModel"`
		InstanceTerminationAction string `json:"instanceTerminationAction"`
		OnHostMaintenance         string `json:"onHostMaintenance"`
		AutomaticRestart          *bool  `json:"automaticRestart"`
		Preemptible               bool   `json:"preemptible"`
	} `json:"scheduling"`
	ServiceAccounts []struct {
		Email  string   `json:"email"`
		Scopes []string `json:"scopes"`
	} `json:"serviceAccounts"`
}

// gcpImages are the boot images the simulation has: the public Ubuntu families.
var gcpImages = map[string]bool{
	"projects/ubuntu-os-cloud/global/images/family/ubuntu-2204-lts":       true,
	"projects/ubuntu-os-cloud/global/images/family/ubuntu-2404-lts-amd64": true,
}

// gcpNetwork resolves a network reference of a project: (project, name), or "" when unknown.
func gcpNetwork(project, ref string) (string, string) {
	rel := relative(ref)
	if strings.HasPrefix(rel, "global/") {
		rel = "projects/" + project + "/" + rel
	}
	parts := strings.Split(rel, "/")
	if len(parts) != 5 || parts[0] != "projects" || parts[2] != "global" || parts[3] != "networks" || !contains(gcpProjects[parts[1]], parts[4]) {
		return "", ""
	}
	return parts[1], parts[4]
}

func gcpInsertInstance(q *gcpReq) string {
	zone, ok := q.zone()
	if !ok {
		return ""
	}
	if q.repeated() {
		return ""
	}
	var in gcpInstanceBody
	if err := readJSON(q.r, &in, false); err != nil {
		return q.bad("Invalid JSON payload received. " + err.Error())
	}
	if !gcpNameRe.MatchString(in.Name) {
		return q.bad(fmt.Sprintf("Invalid value for field 'resource.name': '%s'. Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'", in.Name))
	}
	mt := relative(in.MachineType)
	prefix := "zones/" + zone + "/machineTypes/"
	if i := strings.Index(mt, "zones/"); i >= 0 {
		mt = mt[i:]
	}
	if !strings.HasPrefix(mt, prefix) {
		return q.bad(fmt.Sprintf("Invalid value for field 'resource.machineType': '%s'. Machine type must be in zone %s.", in.MachineType, zone))
	}
	mtName := strings.TrimPrefix(mt, prefix)
	accel, count := "", int64(0)
	if len(in.GuestAccelerators) > 1 {
		return q.bad("Invalid value for field 'resource.guestAccelerators': only one accelerator type per instance")
	}
	if len(in.GuestAccelerators) == 1 {
		ga := in.GuestAccelerators[0]
		at := relative(ga.AcceleratorType)
		if i := strings.Index(at, "zones/"); i >= 0 {
			at = at[i:]
		}
		accel = strings.TrimPrefix(at, "zones/"+zone+"/acceleratorTypes/")
		if accel == at || gcpAccelerators[accel] == "" {
			return q.bad(fmt.Sprintf("Invalid value for field 'resource.guestAccelerators[0].acceleratorType': '%s'. Accelerator type must be one of zone %s.", ga.AcceleratorType, zone))
		}
		count = ga.AcceleratorCount
		if count < 1 {
			return q.bad("Invalid value for field 'resource.guestAccelerators[0].acceleratorCount': must be at least 1")
		}
	}
	it := gcpTypeFor(mtName, accel, count, zone)
	if it == nil {
		if accel != "" {
			return q.bad(fmt.Sprintf("Invalid value for field 'resource.guestAccelerators': %s x%d cannot be attached to machine type %s in zone %s", accel, count, mtName, zone))
		}
		q.fail(http.StatusNotFound, "notFound", fmt.Sprintf("The resource 'projects/%s/zones/%s/machineTypes/%s' was not found", q.project, zone, mtName))
		return ""
	}
	spot := false
	if s := in.Scheduling; s != nil {
		spot = s.ProvisioningModel == "SPOT" || s.Preemptible
		if s.ProvisioningModel != "" && s.ProvisioningModel != "SPOT" && s.ProvisioningModel != "STANDARD" {
			return q.bad("Invalid value for field 'resource.scheduling.provisioningModel': '" + s.ProvisioningModel + "'")
		}
		if s.ProvisioningModel == "SPOT" && s.AutomaticRestart != nil && *s.AutomaticRestart {
			return q.bad("Invalid value for field 'resource.scheduling.automaticRestart': 'true'. Spot VMs cannot be restarted automatically.")
		}
	}
	if it.gpus > 0 && (in.Scheduling == nil || in.Scheduling.OnHostMaintenance != "TERMINATE") {
		return q.bad("Instances with guest accelerators do not support live migration.")
	}
	if spot && it.spot == 0 {
		return q.bad(fmt.Sprintf("Invalid value for field 'resource.scheduling': machine type %s is not available as a Spot VM", mtName))
	}
	if msg := checkLabels(in.Labels); msg != "" {
		return q.bad(msg)
	}
	// One boot disk from a known image.
	var boot *gcpAttached
	for _, d := range in.Disks {
		if !d.Boot {
			continue
		}
		if boot != nil || d.InitializeParams == nil {
			return q.bad("Invalid value for field 'resource.disks': one boot disk with initializeParams is required")
		}
		img := relative(d.InitializeParams.SourceImage)
		if !gcpImages[img] {
			q.fail(http.StatusNotFound, "notFound", fmt.Sprintf("The resource '%s' was not found", img))
			return ""
		}
		size, ok := gcpInt(d.InitializeParams.DiskSizeGb)
		if !ok || size < 10 || size > 65536 {
			return q.bad(fmt.Sprintf("Invalid value for field 'resource.disks[0].initializeParams.diskSizeGb': '%s'. Disk size must be between 10 GB and 64 TB.", string(d.InitializeParams.DiskSizeGb)))
		}
		boot = &gcpAttached{DeviceName: in.Name, Source: gcpSelfBase + "projects/" + q.project + "/zones/" + zone + "/disks/" + in.Name, Boot: true, SizeGB: size}
	}
	if boot == nil {
		return q.bad("Invalid value for field 'resource.disks': a boot disk is required")
	}
	if len(in.NetworkInterfaces) == 0 {
		return q.bad("Invalid value for field 'resource.networkInterfaces': at least one network interface is required")
	}
	if n := gcpMaxNICs(it); len(in.NetworkInterfaces) > n {
		return q.bad(fmt.Sprintf("Invalid value for field 'resource.networkInterfaces': %d. Machine type %s supports at most %d network interfaces.", len(in.NetworkInterfaces), mtName, n))
	}
	var nics []gcpNIC
	public := false
	for i, ni := range in.NetworkInterfaces {
		field := fmt.Sprintf("resource.networkInterfaces[%d]", i)
		netProject, netName := gcpNetwork(q.project, ni.Network)
		if netName == "" {
			q.fail(http.StatusNotFound, "notFound", fmt.Sprintf("The resource '%s' was not found", relative(ni.Network)))
			return ""
		}
		if !gcpHasSubnet(netProject, netName, gcpRegionOf(zone)) {
			return q.bad(fmt.Sprintf("Invalid value for field '%s.network': '%s'. The network has no subnetwork in region %s.", field, ni.Network, gcpRegionOf(zone)))
		}
		if ni.Subnetwork != "" {
			want := "projects/" + netProject + "/regions/" + gcpRegionOf(zone) + "/subnetworks/" + netName
			if relative(ni.Subnetwork) != want {
				return q.bad(fmt.Sprintf("Invalid value for field '%s.subnetwork': '%s'. The subnetwork must be %s's in the instance's region.", field, ni.Subnetwork, netName))
			}
		}
		for _, prev := range nics {
			if prev.VPCProject == netProject && prev.Network == netName {
				return q.bad(fmt.Sprintf("Invalid value for field '%s.network': '%s'. Networks must be distinct for NICs attached to a VM.", field, ni.Network))
			}
		}
		if ni.NicType != "" && ni.NicType != "GVNIC" && ni.NicType != "VIRTIO_NET" {
			return q.bad(fmt.Sprintf("Invalid value for field '%s.nicType': '%s'", field, ni.NicType))
		}
		for _, ac := range ni.AccessConfigs {
			if ac.Type != "ONE_TO_ONE_NAT" {
				return q.bad(fmt.Sprintf("Invalid value for field '%s.accessConfigs[0].type': '%s'", field, ac.Type))
			}
			if i > 0 {
				return q.bad(fmt.Sprintf("Invalid value for field '%s.accessConfigs': the simulation gives external IPs on nic0 only", field))
			}
			public = true
		}
		nics = append(nics, gcpNIC{VPCProject: netProject, Network: netName, NicType: ni.NicType})
	}
	netProject, netName := nics[0].VPCProject, nics[0].Network
	meta := map[string]string{}
	if in.Metadata != nil {
		for _, it := range in.Metadata.Items {
			meta[it.Key] = it.Value
		}
	}
	var keys []string
	for _, line := range strings.Split(meta["ssh-keys"], "\n") {
		if user, key, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && user != "" && key != "" {
			keys = append(keys, key)
		} else if strings.TrimSpace(line) != "" {
			return q.bad("Invalid value for field 'resource.metadata': ssh-keys lines are <user>:<public key>")
		}
	}
	var netTags []string
	if in.Tags != nil {
		for _, t := range in.Tags.Items {
			if !gcpNameRe.MatchString(t) {
				return q.bad(fmt.Sprintf("Invalid value for field 'resource.tags.items[0]': '%s'. Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'", t))
			}
			netTags = append(netTags, t)
		}
	}
	sa := ""
	for _, a := range in.ServiceAccounts {
		if !strings.Contains(a.Email, "@") && a.Email != "default" {
			return q.bad("Invalid value for field 'resource.serviceAccounts[0].email': '" + a.Email + "'")
		}
		sa = a.Email
	}
	region := gcpRegionOf(zone)
	q.s.launchMu.Lock()
	defer q.s.launchMu.Unlock()
	for _, m := range q.s.list(func(m *Machine) bool { return m.Status != StatusTerminated && m.ID == in.Name }) {
		q.fail(http.StatusConflict, "alreadyExists", fmt.Sprintf("The resource 'projects/%s/zones/%s/instances/%s' already exists", q.project, m.Extra["zone"], in.Name))
		return ""
	}
	target := gcpSelfBase + "projects/" + q.project + "/zones/" + zone + "/instances/" + in.Name
	if it.capacity != "" && it.capacity != zone || contains(gcpExhausted[mtName], zone) {
		q.operation(zone, "insert", target, "", "ZONE_RESOURCE_POOL_EXHAUSTED",
			fmt.Sprintf("The zone 'projects/%s/zones/%s' does not have enough resources available to fulfill the request.  Try a different zone, or try again later.", q.project, zone), 503)
		return ""
	}
	if it.gpus > 0 {
		metric := gcpQuotaMetric(it.gpu, it.gpuMem, spot)
		used := 0
		for _, m := range q.s.list(func(m *Machine) bool { return m.Status != StatusTerminated && m.Region == region }) {
			if gi, _ := m.Extra["gcp"].(gcpInst); gi.Project == q.project && gcpQuotaMetric(gi.GPU, gi.GPUMem, m.Spot) == metric {
				used += m.GPUs
			}
		}
		if limit := gcpQuotas(region)[metric]; float64(used+it.gpus) > limit {
			q.fail(http.StatusForbidden, "quotaExceeded", fmt.Sprintf("Quota '%s' exceeded.  Limit: %.1f in region %s.", metric, limit, region))
			return ""
		}
	}
	var labelTags []string
	for _, k := range sortedTagKeys(in.Labels) {
		labelTags = append(labelTags, k+"="+in.Labels[k])
	}
	sched := map[string]any{"onHostMaintenance": "MIGRATE", "automaticRestart": true, "provisioningModel": "STANDARD"}
	if s := in.Scheduling; s != nil {
		if s.OnHostMaintenance != "" {
			sched["onHostMaintenance"] = s.OnHostMaintenance
		}
		if s.AutomaticRestart != nil {
			sched["automaticRestart"] = *s.AutomaticRestart
		}
		if spot {
			sched["provisioningModel"], sched["preemptible"], sched["automaticRestart"] = "SPOT", true, false
			if s.InstanceTerminationAction != "" {
				sched["instanceTerminationAction"] = s.InstanceTerminationAction
			}
		}
	}
	numID := fmt.Sprint(4000000000000000000 + q.s.nextSeq())
	gi := gcpInst{Project: q.project, Zone: zone, NumID: numID, MachineType: mtName, Network: netName, VPCProject: netProject,
		NICs: nics, Public: public, Labels: in.Labels, NetTags: netTags, Metadata: meta, Disks: []gcpAttached{*boot}, Accel: accel,
		AccelCount: count, Scheduling: sched, ServiceAccount: sa, GPU: it.gpu, GPUMem: it.gpuMem, Created: time.Now()}
	price := it.price
	if spot {
		price = it.spot
	}
	m := &Machine{ID: in.Name, Name: in.Name, Type: mtName, Region: region, Spot: spot, Price: price, GPUs: it.gpus,
		Image: relative(in.Disks[0].InitializeParams.SourceImage), UserData: meta["startup-script"], SSHKeys: keys, Tags: labelTags,
		Extra: map[string]any{"gcp": gi, "zone": zone, "public": public, "network": "projects/" + netProject + "/global/networks/" + netName,
			"service_account": sa, "accelerator": accel, "tags": strings.Join(netTags, ","), "nics": gcpNICPaths(nics)}}
	if len(keys) > 0 {
		m.Extra["public_key"] = keys[0]
	}
	q.s.launch(m)
	q.operation(zone, "insert", target, numID, "", "", 0)
	return ""
}

// instance finds an alive instance of the path's zone and name; false means it answered 404.
func (q *gcpReq) instance() (Machine, gcpInst, bool) {
	zone, name := q.r.PathValue("zone"), q.r.PathValue("name")
	m, ok := q.s.snapshot(name)
	gi, _ := m.Extra["gcp"].(gcpInst)
	if !ok || m.Status == StatusTerminated || gi.Zone != zone || gi.Project != q.project {
		q.notFound(fmt.Sprintf("projects/%s/zones/%s/instances/%s", q.project, zone, name))
		return Machine{}, gcpInst{}, false
	}
	return m, gi, true
}

func gcpStatus(m Machine) string {
	switch m.Status {
	case StatusActive:
		return "RUNNING"
	case StatusFailed:
		return "TERMINATED"
	}
	if time.Since(m.Created) < 10*time.Millisecond {
		return "PROVISIONING"
	}
	return "STAGING"
}

// gcpNICPaths are the "network|subnetwork" paths of an instance's interfaces in order, as the
// tests read them from Machine.Extra["nics"].
func gcpNICPaths(nics []gcpNIC) []string {
	var out []string
	for _, n := range nics {
		out = append(out, "projects/"+n.VPCProject+"/global/networks/"+n.Network+"|"+n.NicType)
	}
	return out
}

func (q *gcpReq) instanceJSON(m Machine, gi gcpInst) map[string]any {
	zoneURL := gcpSelfBase + "projects/" + gi.Project + "/zones/" + gi.Zone
	nics := gi.NICs
	if len(nics) == 0 {
		nics = []gcpNIC{{VPCProject: gi.VPCProject, Network: gi.Network}}
	}
	var nicsJSON []any
	for i, n := range nics {
		nic := map[string]any{"kind": "compute#networkInterface", "name": fmt.Sprintf("nic%d", i),
			"network":    gcpSelfBase + "projects/" + n.VPCProject + "/global/networks/" + n.Network,
			"subnetwork": gcpSelfBase + "projects/" + n.VPCProject + "/regions/" + m.Region + "/subnetworks/" + n.Network}
		if n.NicType != "" {
			nic["nicType"] = n.NicType
		}
		if m.Status == StatusActive {
			if i == 0 {
				nic["networkIP"] = m.PrivateIP
				if gi.Public {
					nic["accessConfigs"] = []any{map[string]any{"kind": "compute#accessConfig", "type": "ONE_TO_ONE_NAT", "name": "External NAT",
						"natIP": m.IP, "networkTier": "PREMIUM"}}
				}
			} else {
				// Made-up addresses: only nic0's (the machine's private IP) is ever dialled.
				nic["networkIP"] = fmt.Sprintf("10.%d.0.%d", 200+i, 2+len(m.Name)%200)
			}
		}
		nicsJSON = append(nicsJSON, nic)
	}
	var disks []any
	for i, d := range gi.Disks {
		disks = append(disks, map[string]any{"kind": "compute#attachedDisk", "index": i, "deviceName": d.DeviceName, "source": d.Source,
			"boot": d.Boot, "autoDelete": d.Boot, "mode": "READ_WRITE", "type": "PERSISTENT", "diskSizeGb": fmt.Sprint(d.SizeGB)})
	}
	var meta []any
	keys := make([]string, 0, len(gi.Metadata))
	for k := range gi.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		meta = append(meta, map[string]any{"key": k, "value": gi.Metadata[k]})
	}
	out := map[string]any{"kind": "compute#instance", "id": gi.NumID, "name": m.Name, "zone": zoneURL,
		"machineType": zoneURL + "/machineTypes/" + gi.MachineType, "status": gcpStatus(m), "labels": gi.Labels,
		"creationTimestamp": gi.Created.Format("2006-01-02T15:04:05.000-07:00"), "networkInterfaces": nicsJSON, "disks": disks,
		"metadata": map[string]any{"kind": "compute#metadata", "items": meta, "fingerprint": "c2ltLWZw"},
		"tags":     map[string]any{"items": gi.NetTags}, "scheduling": gi.Scheduling, "selfLink": zoneURL + "/instances/" + m.Name}
	if m.Status == StatusFailed {
		out["statusMessage"] = m.Error
	}
	if gi.Accel != "" {
		out["guestAccelerators"] = []any{map[string]any{"acceleratorType": zoneURL + "/acceleratorTypes/" + gi.Accel, "acceleratorCount": gi.AccelCount}}
	}
	if gi.ServiceAccount != "" {
		out["serviceAccounts"] = []any{map[string]any{"email": gi.ServiceAccount, "scopes": []string{"https://www.googleapis.com/auth/cloud-platform"}}}
	}
	return out
}

func gcpGetInstance(q *gcpReq) string {
	if _, ok := q.zone(); !ok {
		return ""
	}
	m, gi, ok := q.instance()
	if ok {
		q.ok(q.instanceJSON(m, gi))
	}
	return ""
}

func gcpDeleteInstance(q *gcpReq) string {
	if _, ok := q.zone(); !ok {
		return ""
	}
	if q.repeated() {
		return ""
	}
	q.s.launchMu.Lock()
	defer q.s.launchMu.Unlock()
	m, gi, ok := q.instance()
	if !ok {
		return ""
	}
	q.s.terminate(m.ID)
	// Data disks are detached; the boot disk (autoDelete) goes with the instance.
	self := gcpSelfBase + "projects/" + gi.Project + "/zones/" + gi.Zone + "/instances/" + m.Name
	for _, d := range q.s.Objects("gcp-disks") {
		disk := d.(*gcpDisk)
		disk.Users = removeString(disk.Users, self)
	}
	q.operation(gi.Zone, "delete", self, gi.NumID, "", "", 0)
	return ""
}

func removeString(list []string, s string) []string {
	var out []string
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

func gcpAggregatedInstances(q *gcpReq) string {
	filter := strings.TrimSpace(q.r.URL.Query().Get("filter"))
	label := ""
	if filter != "" {
		m := regexp.MustCompile(`^labels\.([a-z][a-z0-9_-]*):\*$`).FindStringSubmatch(filter)
		if m == nil {
			return q.bad("Invalid list filter expression '" + filter + "'. The simulation understands labels.<key>:* only.")
		}
		label = m[1]
	}
	items := map[string]any{}
	for _, m := range q.s.list(func(m *Machine) bool { return m.Status != StatusTerminated }) {
		gi, _ := m.Extra["gcp"].(gcpInst)
		if gi.Project != q.project {
			continue
		}
		if _, has := gi.Labels[label]; label != "" && !has {
			continue
		}
		key := "zones/" + gi.Zone
		scoped, _ := items[key].(map[string]any)
		if scoped == nil {
			scoped = map[string]any{"instances": []any{}}
			items[key] = scoped
		}
		scoped["instances"] = append(scoped["instances"].([]any), q.instanceJSON(m, gi))
	}
	q.ok(map[string]any{"kind": "compute#instanceAggregatedList", "id": "projects/" + q.project + "/aggregated/instances", "items": items,
		"selfLink": gcpSelfBase + "projects/" + q.project + "/aggregated/instances"})
	return ""
}

// --- disks ---

func (q *gcpReq) diskKey(zone, name string) string { return q.project + "/" + zone + "/" + name }

func (q *gcpReq) diskJSON(d *gcpDisk) map[string]any {
	zoneURL := gcpSelfBase + "projects/" + d.Project + "/zones/" + d.Zone
	out := map[string]any{"kind": "compute#disk", "id": d.NumID, "name": d.Name, "zone": zoneURL, "sizeGb": fmt.Sprint(d.SizeGB),
		"type": zoneURL + "/diskTypes/" + d.Type, "status": "READY", "labels": d.Labels,
		"creationTimestamp": d.Created.Format("2006-01-02T15:04:05.000-07:00"), "selfLink": zoneURL + "/disks/" + d.Name}
	if len(d.Users) > 0 {
		out["users"] = d.Users
	}
	return out
}

func gcpInsertDisk(q *gcpReq) string {
	zone, ok := q.zone()
	if !ok || q.repeated() {
		return ""
	}
	var in struct {
		Name   string            `json:"name"`
		SizeGb json.RawMessage   `json:"sizeGb"`
		Type   string            `json:"type"`
		Labels map[string]string `json:"labels"`
	}
	if err := readJSON(q.r, &in, false); err != nil {
		return q.bad("Invalid JSON payload received. " + err.Error())
	}
	if !gcpNameRe.MatchString(in.Name) {
		return q.bad(fmt.Sprintf("Invalid value for field 'resource.name': '%s'. Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'", in.Name))
	}
	size, ok := gcpInt(in.SizeGb)
	if !ok || size < 10 || size > 65536 {
		return q.bad(fmt.Sprintf("Invalid value for field 'resource.sizeGb': '%s'. Disk size must be between 10 GB and 64 TB.", string(in.SizeGb)))
	}
	typ := "pd-standard"
	if in.Type != "" {
		rel := relative(in.Type)
		if i := strings.Index(rel, "zones/"); i >= 0 {
			rel = rel[i:]
		}
		typ = strings.TrimPrefix(rel, "zones/"+zone+"/diskTypes/")
		if typ == rel || !contains([]string{"pd-standard", "pd-balanced", "pd-ssd", "pd-extreme"}, typ) {
			return q.bad(fmt.Sprintf("Invalid value for field 'resource.type': '%s'. Disk type must be one of zone %s.", in.Type, zone))
		}
	}
	if msg := checkLabels(in.Labels); msg != "" {
		return q.bad(msg)
	}
	q.s.launchMu.Lock()
	defer q.s.launchMu.Unlock()
	key := q.diskKey(zone, in.Name)
	if _, exists := q.s.Objects("gcp-disks")[key]; exists {
		q.fail(http.StatusConflict, "alreadyExists", fmt.Sprintf("The resource 'projects/%s/zones/%s/disks/%s' already exists", q.project, zone, in.Name))
		return ""
	}
	d := &gcpDisk{Project: q.project, Zone: zone, Name: in.Name, NumID: fmt.Sprint(5000000000000000000 + q.s.nextSeq()), Type: typ,
		SizeGB: size, Labels: in.Labels, Created: time.Now()}
	q.s.putObject("gcp-disks", key, d)
	q.operation(zone, "insert", gcpSelfBase+"projects/"+q.project+"/zones/"+zone+"/disks/"+in.Name, d.NumID, "", "", 0)
	return ""
}

func (q *gcpReq) disk(zone, name string) *gcpDisk {
	d, _ := q.s.Objects("gcp-disks")[q.diskKey(zone, name)].(*gcpDisk)
	return d
}

func gcpGetDisk(q *gcpReq) string {
	zone, ok := q.zone()
	if !ok {
		return ""
	}
	q.s.launchMu.Lock()
	defer q.s.launchMu.Unlock()
	d := q.disk(zone, q.r.PathValue("name"))
	if d == nil {
		q.notFound(fmt.Sprintf("projects/%s/zones/%s/disks/%s", q.project, zone, q.r.PathValue("name")))
		return ""
	}
	q.ok(q.diskJSON(d))
	return ""
}

func gcpDeleteDisk(q *gcpReq) string {
	zone, ok := q.zone()
	if !ok || q.repeated() {
		return ""
	}
	q.s.launchMu.Lock()
	defer q.s.launchMu.Unlock()
	name := q.r.PathValue("name")
	d := q.disk(zone, name)
	if d == nil {
		q.notFound(fmt.Sprintf("projects/%s/zones/%s/disks/%s", q.project, zone, name))
		return ""
	}
	if len(d.Users) > 0 {
		q.fail(http.StatusBadRequest, "resourceInUseByAnotherResource", fmt.Sprintf("The disk resource 'projects/%s/zones/%s/disks/%s' is already being used by '%s'", q.project, zone, name, relative(d.Users[0])))
		return ""
	}
	q.s.deleteObject("gcp-disks", q.diskKey(zone, name))
	q.operation(zone, "delete", gcpSelfBase+"projects/"+q.project+"/zones/"+zone+"/disks/"+name, d.NumID, "", "", 0)
	return ""
}

func gcpAttachDisk(q *gcpReq) string {
	zone, ok := q.zone()
	if !ok || q.repeated() {
		return ""
	}
	var in struct {
		Source, DeviceName, Mode string
		AutoDelete               bool
		Boot                     bool
	}
	if err := readJSON(q.r, &in, false); err != nil {
		return q.bad("Invalid JSON payload received. " + err.Error())
	}
	q.s.launchMu.Lock()
	defer q.s.launchMu.Unlock()
	m, gi, ok := q.instance()
	if !ok {
		return ""
	}
	src := relative(in.Source)
	parts := strings.Split(src, "/")
	if len(parts) != 6 || parts[0] != "projects" || parts[2] != "zones" || parts[4] != "disks" {
		return q.bad("Invalid value for field 'resource.source': '" + in.Source + "'")
	}
	if parts[1] != q.project || parts[3] != zone {
		return q.bad(fmt.Sprintf("Invalid value for field 'resource.source': '%s'. The disk must be in zone %s of project %s.", in.Source, zone, q.project))
	}
	d := q.disk(zone, parts[5])
	if d == nil {
		q.notFound(src)
		return ""
	}
	self := gcpSelfBase + "projects/" + q.project + "/zones/" + zone + "/instances/" + m.Name
	if len(d.Users) > 0 && (in.Mode != "READ_ONLY" || !contains(d.Users, self)) {
		q.fail(http.StatusBadRequest, "resourceInUseByAnotherResource", fmt.Sprintf("The disk resource '%s' is already being used by '%s'", src, relative(d.Users[0])))
		return ""
	}
	dev := in.DeviceName
	if dev == "" {
		dev = fmt.Sprintf("persistent-disk-%d", len(gi.Disks))
	}
	for _, a := range gi.Disks {
		if a.DeviceName == dev {
			return q.bad(fmt.Sprintf("Invalid value for field 'resource.deviceName': '%s'. A disk with this device name is already attached.", dev))
		}
	}
	d.Users = append(d.Users, self)
	q.s.mu.Lock()
	mm := q.s.machines[m.ID]
	gi.Disks = append(append([]gcpAttached(nil), gi.Disks...), gcpAttached{DeviceName: dev, Source: gcpSelfBase + src, SizeGB: d.SizeGB})
	mm.Extra["gcp"] = gi
	q.s.mu.Unlock()
	q.operation(zone, "attachDisk", self, gi.NumID, "", "", 0)
	return ""
}

func gcpDetachDisk(q *gcpReq) string {
	zone, ok := q.zone()
	if !ok || q.repeated() {
		return ""
	}
	dev := q.r.URL.Query().Get("deviceName")
	if dev == "" {
		return q.bad("Required field 'deviceName' not specified")
	}
	q.s.launchMu.Lock()
	defer q.s.launchMu.Unlock()
	m, gi, ok := q.instance()
	if !ok {
		return ""
	}
	var keep []gcpAttached
	var gone *gcpAttached
	for _, a := range gi.Disks {
		if a.DeviceName == dev && !a.Boot {
			gone = &a
			continue
		}
		keep = append(keep, a)
	}
	if gone == nil {
		q.fail(http.StatusBadRequest, "invalid", fmt.Sprintf("Invalid value for field 'deviceName': '%s'. No attached disk found with device name '%s'", dev, dev))
		return ""
	}
	self := gcpSelfBase + "projects/" + q.project + "/zones/" + zone + "/instances/" + m.Name
	parts := strings.Split(relative(gone.Source), "/")
	if d := q.disk(zone, parts[len(parts)-1]); d != nil {
		d.Users = removeString(d.Users, self)
	}
	q.s.mu.Lock()
	gi.Disks = keep
	q.s.machines[m.ID].Extra["gcp"] = gi
	q.s.mu.Unlock()
	q.operation(zone, "detachDisk", self, gi.NumID, "", "", 0)
	return ""
}

// --- firewalls ---

func gcpGetFirewall(q *gcpReq) string {
	name := q.r.PathValue("name")
	f, ok := q.s.Objects("gcp-firewalls")[q.project+"/"+name].(gcpFirewall)
	if !ok {
		q.notFound("projects/" + q.project + "/global/firewalls/" + name)
		return ""
	}
	q.ok(q.firewallJSON(f))
	return ""
}

func gcpInsertFirewall(q *gcpReq) string {
	if q.repeated() {
		return ""
	}
	var in struct {
		Name, Network, Direction string
		Allowed                  []map[string]any
		SourceRanges, TargetTags []string
	}
	if err := readJSON(q.r, &in, false); err != nil {
		return q.bad("Invalid JSON payload received. " + err.Error())
	}
	if !gcpNameRe.MatchString(in.Name) {
		return q.bad(fmt.Sprintf("Invalid value for field 'resource.name': '%s'. Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'", in.Name))
	}
	netProject, netName := gcpNetwork(q.project, in.Network)
	if netName == "" || netProject != q.project {
		q.fail(http.StatusNotFound, "notFound", fmt.Sprintf("The resource '%s' was not found", relative(in.Network)))
		return ""
	}
	if len(in.Allowed) == 0 {
		return q.bad("Invalid value for field 'resource.allowed': at least one rule is required")
	}
	for _, a := range in.Allowed {
		if a["IPProtocol"] == nil {
			return q.bad("Required field 'resource.allowed[0].IPProtocol' not specified")
		}
	}
	q.s.launchMu.Lock()
	defer q.s.launchMu.Unlock()
	key := q.project + "/" + in.Name
	if _, exists := q.s.Objects("gcp-firewalls")[key]; exists {
		q.fail(http.StatusConflict, "alreadyExists", fmt.Sprintf("The resource 'projects/%s/global/firewalls/%s' already exists", q.project, in.Name))
		return ""
	}
	dir := in.Direction
	if dir == "" {
		dir = "INGRESS"
	}
	f := gcpFirewall{Name: in.Name, NumID: fmt.Sprint(6000000000000000000 + q.s.nextSeq()), Network: gcpSelfBase + "projects/" + netProject + "/global/networks/" + netName,
		Direction: dir, Allowed: in.Allowed, SourceRanges: in.SourceRanges, TargetTags: in.TargetTags, Created: time.Now()}
	q.s.putObject("gcp-firewalls", key, f)
	q.operation("", "insert", gcpSelfBase+"projects/"+q.project+"/global/firewalls/"+in.Name, f.NumID, "", "", 0)
	return ""
}
