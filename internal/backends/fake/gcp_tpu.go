package fake

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Google Cloud TPU: the Cloud TPU API v2 (REST, https://cloud.google.com/tpu/docs/reference/rest/v2)
// at /v2/projects/{project}/locations/..., as google.golang.org/api/tpu/v2 calls it when its
// endpoint is the simulation's URL + "/":
//
//   - locations.list: the zones that sell TPUs (gcpTPUTypes);
//   - nodes.create (?nodeId=), nodes.get, nodes.delete, nodes.list (pageSize, pageToken);
//   - operations.get.
//
// Calls carry the Bearer tokens of the Compute Engine simulation. Errors are google.rpc.Status
// JSON, {"error": {"code", "message", "status", "details"}}: INVALID_ARGUMENT (400) for a malformed
// node, an acceleratorType the zone does not sell or a runtimeVersion the generation does not run;
// PERMISSION_DENIED (403) for an unknown project, and for another-project-id, which has not enabled
// the API (ErrorInfo SERVICE_DISABLED); NOT_FOUND (404); ALREADY_EXISTS (409) for a nodeId in use.
//
// A node is a simulated machine like any instance (a Host can back it; Sim.Alive counts it): it is
// CREATING until the boot delay passed, then READY with a network endpoint (internal IP, and the
// external one with enableExternalIps). nodes.create and nodes.delete answer a long-running
// Operation, not done; operations.get says done once the node left CREATING (with the node as its
// response) and at once for a delete. A zone out of capacity (gcpTPUTypes' exhausted zones) makes
// no node: the operation ends with code 8 (RESOURCE_EXHAUSTED) "There is no more capacity in the
// zone ...", as the TPU API reports a stockout; capacity faults and SetNoCapacity answer the
// create with that operation already done.

// gcpTPUType is a TPU slice the simulation sells: its host's vCPUs and memory (GB), its chips
// and their HBM (GB, all chips), and the on-demand and spot prices of the whole slice, per hour.
type gcpTPUType struct {
	name        string
	cpu, mem    int
	hbm         float64
	chips       int
	price, spot float64
	zones       []string
	exhausted   []string // zones whose creates end in a stockout
}

// gcpTPUTypes: prices are Google's list prices per chip-hour times the chips (v5e $1.20, v4
// $3.22, v3 $2.00 in us-central1 and $2.20 in europe-west4, v2 $1.125 and $1.2375); spot prices are
// the published spot (v5e, v4) and preemptible (v3, v2) rates. The zones are the simulation's
// (v4 is really sold in us-central2-b, which the simulation does not have).
var gcpTPUTypes = []gcpTPUType{
	{name: "v5litepod-1", cpu: 24, mem: 48, hbm: 16, chips: 1, price: 1.2, spot: 0.48,
		zones: []string{"us-central1-a", "us-central1-b", "us-west4-a", "europe-west4-b"}},
	{name: "v5litepod-4", cpu: 112, mem: 192, hbm: 64, chips: 4, price: 4.8, spot: 1.92,
		zones: []string{"us-central1-a", "us-central1-b", "us-west4-a", "europe-west4-b"}},
	{name: "v5litepod-8", cpu: 224, mem: 384, hbm: 128, chips: 8, price: 9.6, spot: 3.84,
		zones: []string{"us-central1-a", "us-central1-b", "us-west4-a", "europe-west4-b"}, exhausted: []string{"us-central1-a"}},
	// Two hosts of eight chips: a multi-host slice, which dstack does not offer.
	{name: "v5litepod-16", cpu: 224, mem: 384, hbm: 256, chips: 16, price: 19.2, spot: 7.68,
		zones: []string{"us-central1-a", "us-west4-a"}},
	{name: "v4-8", cpu: 240, mem: 407, hbm: 128, chips: 4, price: 12.88, spot: 3.864,
		zones: []string{"us-central1-b", "us-central1-f"}},
	{name: "v3-8", cpu: 96, mem: 340, hbm: 128, chips: 4, price: 8, spot: 2.4, zones: []string{"us-central1-a"}},
	{name: "v3-8", cpu: 96, mem: 340, hbm: 128, chips: 4, price: 8.8, spot: 2.64, zones: []string{"europe-west4-a"}},
	{name: "v2-8", cpu: 96, mem: 334, hbm: 64, chips: 4, price: 4.5, spot: 1.35, zones: []string{"us-central1-b", "us-central1-c", "us-central1-f"}},
	{name: "v2-8", cpu: 96, mem: 334, hbm: 64, chips: 4, price: 4.95, spot: 1.485, zones: []string{"europe-west4-a"}},
}

// gcpTPURuntimes are the runtimeVersions each generation runs (Google's TPU software versions).
var gcpTPURuntimes = map[string][]string{
	"v2":        {"tpu-ubuntu2204-base", "tpu-vm-base"},
	"v3":        {"tpu-ubuntu2204-base", "tpu-vm-base"},
	"v4":        {"tpu-ubuntu2204-base", "tpu-vm-v4-base"},
	"v5litepod": {"v2-alpha-tpuv5-lite"},
	"v5p":       {"v2-alpha-tpuv5"},
	"v6e":       {"v2-alpha-tpuv6e"},
}

// gcpTPUDisabled are the projects that have not enabled the Cloud TPU API.
var gcpTPUDisabled = map[string]bool{"another-project-id": true}

func gcpTPUTypeFor(name, zone string) *gcpTPUType {
	for i := range gcpTPUTypes {
		if t := &gcpTPUTypes[i]; t.name == name && contains(t.zones, zone) {
			return t
		}
	}
	return nil
}

// gcpTPUZones are the TPU API's locations: the zones that sell a TPU, sorted.
func gcpTPUZones() []string {
	var out []string
	for _, t := range gcpTPUTypes {
		for _, z := range t.zones {
			if !contains(out, z) {
				out = append(out, z)
			}
		}
	}
	sort.Strings(out)
	return out
}

// gcpTPUCatalog lists the TPUs as gpuhunt does: one accelerator named tpu-<type> (vendor google)
// with the slice's HBM, on a host of fixed 100 GB boot disk.
func gcpTPUCatalog() []catalogRow {
	var rows []catalogRow
	for _, t := range gcpTPUTypes {
		for _, z := range t.zones {
			row := catalogRow{name: t.name, location: z, price: t.price, cpu: t.cpu, memory: t.mem, gpus: 1, gpuName: "tpu-" + t.name,
				gpuMem: t.hbm, disk: 100, vendor: "google"}
			rows = append(rows, row)
			row.price, row.spot = t.spot, true
			rows = append(rows, row)
		}
	}
	return rows
}

// gcpTPUNode is what the simulation keeps of a node beyond Machine.
type gcpTPUNode struct {
	Project, Zone, NumID            string
	AcceleratorType, Runtime        string
	VPCProject, Network             string
	Public                          bool
	Labels, Metadata                map[string]string
	Tags                            []string
	Spot, Preemptible               bool
	ServiceAccount                  string
	ServiceAccountScopes            []string
	Created                         time.Time
	CreateOperation, NodeID, Parent string
}

// gcpTPUOp is a long-running operation of the TPU API.
type gcpTPUOp struct {
	Name, Verb, Target, MachineID string
	ErrCode                       int // google.rpc.Code of a failure; 0 for none
	ErrMsg                        string
	// AtOnce makes the answer of the call that started it done already (with ErrCode).
	AtOnce  bool
	Created time.Time
}

// tpuStatus names the google.rpc.Code of an HTTP status, as Google's APIs write it.
var tpuStatus = map[int]string{400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
	409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}

func tpuError(w http.ResponseWriter, code int, msg string, details ...any) {
	e := map[string]any{"code": code, "message": msg, "status": tpuStatus[code]}
	if len(details) > 0 {
		e["details"] = details
	}
	writeJSON(w, code, map[string]any{"error": e})
}

// tpuReq is one Cloud TPU request being served.
type tpuReq struct {
	s       *Sim
	w       http.ResponseWriter
	r       *http.Request
	project string
}

func (q *tpuReq) ok(v any) { writeJSON(q.w, http.StatusOK, v) }

// bad answers INVALID_ARGUMENT and returns msg as the miss.
func (q *tpuReq) bad(msg string) string {
	tpuError(q.w, http.StatusBadRequest, msg)
	return msg
}

func (q *tpuReq) notFound(resource string) {
	tpuError(q.w, http.StatusNotFound, fmt.Sprintf("Resource '%s' was not found", resource),
		map[string]any{"@type": "type.googleapis.com/google.rpc.ResourceInfo", "resourceName": resource})
}

func (q *tpuReq) location() string {
	return "projects/" + q.project + "/locations/" + q.r.PathValue("zone")
}

// zone checks the {zone} of the path is a TPU location; false means it answered.
func (q *tpuReq) zone() (string, bool) {
	z := q.r.PathValue("zone")
	if !contains(gcpTPUZones(), z) {
		tpuError(q.w, http.StatusNotFound, fmt.Sprintf("Location %s is not found or access is unauthorized.", q.location()))
		return "", false
	}
	return z, true
}

// tpuRoute serves one Cloud TPU call: the Bearer token, then the project and whether it enabled
// the API.
func tpuRoute(pattern string, launch bool, serve func(q *tpuReq) string) route {
	return route{pattern: pattern, launch: launch, serve: func(s *Sim, w http.ResponseWriter, r *http.Request) string {
		if why, ok := gcpAuth(s, w, r); !ok {
			return why
		}
		q := &tpuReq{s: s, w: w, r: r, project: r.PathValue("project")}
		if _, ok := gcpProjects[q.project]; !ok {
			tpuError(w, http.StatusForbidden, fmt.Sprintf("Permission denied on resource project %s.", q.project),
				map[string]any{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "CONSUMER_INVALID", "domain": "googleapis.com",
					"metadata": map[string]string{"service": "tpu.googleapis.com", "consumer": "projects/" + q.project}})
			return ""
		}
		if gcpTPUDisabled[q.project] {
			tpuError(w, http.StatusForbidden, fmt.Sprintf("Cloud TPU API has not been used in project %s before or it is disabled. Enable it by visiting https://console.developers.google.com/apis/api/tpu.googleapis.com/overview?project=%s then retry.", q.project, q.project),
				map[string]any{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "SERVICE_DISABLED", "domain": "googleapis.com",
					"metadata": map[string]string{"service": "tpu.googleapis.com", "consumer": "projects/" + q.project}})
			return ""
		}
		if alt := r.URL.Query().Get("alt"); alt != "" && alt != "json" {
			return q.bad("alt=" + alt + " is not supported")
		}
		return serve(q)
	}}
}

func gcpTPURoutes() []route {
	const p = "/v2/projects/{project}/locations"
	create := tpuRoute("POST "+p+"/{zone}/nodes", true, tpuCreateNode)
	create.capacity = tpuStockout
	return []route{
		tpuRoute("GET "+p, false, tpuLocations),
		create,
		tpuRoute("GET "+p+"/{zone}/nodes", false, tpuListNodes),
		tpuRoute("GET "+p+"/{zone}/nodes/{node}", false, tpuGetNode),
		tpuRoute("DELETE "+p+"/{zone}/nodes/{node}", false, tpuDeleteNode),
		tpuRoute("GET "+p+"/{zone}/operations/{op}", false, tpuGetOperation),
	}
}

// tpuStockoutMsg is the TPU API's error of a zone without capacity.
func tpuStockoutMsg(zone string) string {
	return fmt.Sprintf("There is no more capacity in the zone %q; you can try in another zone where Cloud TPU Nodes are offered (see https://cloud.google.com/tpu/docs/regions) [EID: 0x1f6d2c4b8a9e7d3c]", zone)
}

// tpuStockout answers a create refused for capacity (a fault, or SetNoCapacity): its operation,
// already done with the stockout.
func tpuStockout(w http.ResponseWriter, r *http.Request) {
	loc := "projects/" + r.PathValue("project") + "/locations/" + r.PathValue("zone")
	now := time.Now()
	op := gcpTPUOp{Name: fmt.Sprintf("%s/operations/operation-%d-stockout", loc, now.UnixMilli()), Verb: "create",
		Target: loc + "/nodes/" + r.URL.Query().Get("nodeId"), ErrCode: 8, ErrMsg: tpuStockoutMsg(r.PathValue("zone")), AtOnce: true, Created: now}
	writeJSON(w, http.StatusOK, tpuOpJSON(op, nil))
}

// --- locations ---

func tpuLocations(q *tpuReq) string {
	var items []any
	for _, z := range gcpTPUZones() {
		items = append(items, map[string]any{"name": "projects/" + q.project + "/locations/" + z, "locationId": z})
	}
	page, next, why := q.page(items)
	if why != "" {
		return why
	}
	out := map[string]any{"locations": page}
	if next != "" {
		out["nextPageToken"] = next
	}
	q.ok(out)
	return ""
}

// page cuts a list by pageSize (default tpuPageSize, at most 1000) and pageToken; why is the miss
// when it answered a bad token.
func (q *tpuReq) page(items []any) (page []any, next, why string) {
	size := tpuPageSize
	if v := q.r.URL.Query().Get("pageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, "", q.bad("Invalid value for field 'page_size': " + v)
		}
		if n > 0 {
			size = min(n, 1000)
		}
	}
	start := 0
	if tok := q.r.URL.Query().Get("pageToken"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		n, err2 := strconv.Atoi(strings.TrimPrefix(string(b), "offset:"))
		if err != nil || err2 != nil || !strings.HasPrefix(string(b), "offset:") || n < 0 || n > len(items) {
			return nil, "", q.bad("Invalid page token: " + tok)
		}
		start = n
	}
	end := min(start+size, len(items))
	if end < len(items) {
		next = base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(end)))
	}
	return items[start:end], next, ""
}

// tpuPageSize is the page of a list without pageSize: small, so that clients page.
const tpuPageSize = 5

// --- nodes ---

type tpuNodeBody struct {
	AcceleratorType string            `json:"acceleratorType"`
	RuntimeVersion  string            `json:"runtimeVersion"`
	Description     string            `json:"description"`
	Labels          map[string]string `json:"labels"`
	Metadata        map[string]string `json:"metadata"`
	Tags            []string          `json:"tags"`
	NetworkConfig   *struct {
		Network           string `json:"network"`
		Subnetwork        string `json:"subnetwork"`
		EnableExternalIps bool   `json:"enableExternalIps"`
	} `json:"networkConfig"`
	SchedulingConfig *struct {
		Preemptible bool `json:"preemptible"`
		Spot        bool `json:"spot"`
		Reserved    bool `json:"reserved"`
	} `json:"schedulingConfig"`
	ServiceAccount *struct {
		Email string   `json:"email"`
		Scope []string `json:"scope"`
	} `json:"serviceAccount"`
}

// tpuGeneration is the generation of an acceleratorType: v5litepod-8 → v5litepod.
func tpuGeneration(acceleratorType string) string {
	gen, _, _ := strings.Cut(acceleratorType, "-")
	return gen
}

func tpuCreateNode(q *tpuReq) string {
	zone, ok := q.zone()
	if !ok {
		return ""
	}
	id := q.r.URL.Query().Get("nodeId")
	if !gcpNameRe.MatchString(id) {
		return q.bad(fmt.Sprintf("Invalid value for field 'node_id': '%s'. Must be a match of regex '[a-z]([-a-z0-9]*[a-z0-9])?' of at most 63 characters.", id))
	}
	var in tpuNodeBody
	if err := readJSON(q.r, &in, false); err != nil {
		return q.bad("Invalid JSON payload received. " + err.Error())
	}
	if in.AcceleratorType == "" {
		return q.bad("Field 'node.accelerator_type' is required.")
	}
	t := gcpTPUTypeFor(in.AcceleratorType, zone)
	if t == nil {
		return q.bad(fmt.Sprintf("Invalid value for field 'node.accelerator_type': '%s'. The accelerator type is not available in zone %s.", in.AcceleratorType, zone))
	}
	if !contains(gcpTPURuntimes[tpuGeneration(t.name)], in.RuntimeVersion) {
		return q.bad(fmt.Sprintf("Invalid value for field 'node.runtime_version': '%s'. It is not a runtime version of %s.", in.RuntimeVersion, t.name))
	}
	region := gcpRegionOf(zone)
	netRef, subRef, public := "default", "", false
	if nc := in.NetworkConfig; nc != nil {
		if nc.Network != "" {
			netRef = nc.Network
		}
		subRef, public = nc.Subnetwork, nc.EnableExternalIps
	}
	if !strings.Contains(netRef, "/") {
		netRef = "global/networks/" + netRef
	}
	netProject, netName := gcpNetwork(q.project, netRef)
	if netName == "" || !gcpHasSubnet(netProject, netName, region) {
		return q.bad(fmt.Sprintf("Invalid value for field 'node.network_config.network': '%s'. The network does not exist or has no subnetwork in %s.", netRef, region))
	}
	if subRef != "" {
		if want := "projects/" + netProject + "/regions/" + region + "/subnetworks/" + netName; relative(subRef) != want {
			return q.bad(fmt.Sprintf("Invalid value for field 'node.network_config.subnetwork': '%s'. The subnetwork must be %s's in %s.", subRef, netName, region))
		}
	}
	var spot, preemptible bool
	if sc := in.SchedulingConfig; sc != nil {
		spot, preemptible = sc.Spot, sc.Preemptible
		if spot && preemptible {
			return q.bad("Invalid value for field 'node.scheduling_config': spot and preemptible are exclusive.")
		}
		if sc.Reserved {
			return q.bad("Invalid value for field 'node.scheduling_config.reserved': the project has no TPU reservation.")
		}
	}
	if msg := checkLabels(in.Labels); msg != "" {
		return q.bad(strings.ReplaceAll(msg, "resource.labels", "node.labels"))
	}
	var keys []string
	for _, line := range strings.Split(in.Metadata["ssh-keys"], "\n") {
		if user, key, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && user != "" && key != "" {
			keys = append(keys, key)
		} else if strings.TrimSpace(line) != "" {
			return q.bad("Invalid value for field 'node.metadata': ssh-keys lines are <user>:<public key>")
		}
	}
	for _, tag := range in.Tags {
		if !gcpNameRe.MatchString(tag) {
			return q.bad(fmt.Sprintf("Invalid value for field 'node.tags': '%s'. Must be a match of regex '[a-z]([-a-z0-9]*[a-z0-9])?'", tag))
		}
	}
	sa := ""
	var scopes []string
	if in.ServiceAccount != nil {
		if sa = in.ServiceAccount.Email; !strings.Contains(sa, "@") {
			return q.bad("Invalid value for field 'node.service_account.email': '" + sa + "'")
		}
		scopes = in.ServiceAccount.Scope
	}

	q.s.launchMu.Lock()
	defer q.s.launchMu.Unlock()
	name := q.location() + "/nodes/" + id
	for range q.s.list(func(m *Machine) bool { return m.Status != StatusTerminated && m.ID == id }) {
		tpuError(q.w, http.StatusConflict, fmt.Sprintf("Resource '%s' already exists", name),
			map[string]any{"@type": "type.googleapis.com/google.rpc.ResourceInfo", "resourceName": name})
		return ""
	}
	now := time.Now()
	op := gcpTPUOp{Name: fmt.Sprintf("%s/operations/operation-%d-%s", q.location(), now.UnixMilli(), q.s.hexID(24)), Verb: "create",
		Target: name, Created: now}
	if contains(t.exhausted, zone) {
		op.ErrCode, op.ErrMsg = 8, tpuStockoutMsg(zone)
		q.s.putObject("gcp-tpu-ops", op.Name, op)
		q.ok(tpuOpJSON(op, nil))
		return ""
	}
	price := t.price
	if spot || preemptible {
		price = t.spot
	}
	var labelTags []string
	for _, k := range sortedTagKeys(in.Labels) {
		labelTags = append(labelTags, k+"="+in.Labels[k])
	}
	n := gcpTPUNode{Project: q.project, Zone: zone, NumID: fmt.Sprint(8000000000000000000 + q.s.nextSeq()), AcceleratorType: t.name,
		Runtime: in.RuntimeVersion, VPCProject: netProject, Network: netName, Public: public, Labels: in.Labels, Metadata: in.Metadata,
		Tags: in.Tags, Spot: spot, Preemptible: preemptible, ServiceAccount: sa, ServiceAccountScopes: scopes, Created: now,
		CreateOperation: op.Name, NodeID: id, Parent: q.location()}
	sched := ""
	switch {
	case spot:
		sched = "spot"
	case preemptible:
		sched = "preemptible"
	}
	m := &Machine{ID: id, Name: id, Type: t.name, Region: region, Spot: spot || preemptible, Price: price, GPUs: t.chips,
		Image: in.RuntimeVersion, UserData: in.Metadata["startup-script"], SSHKeys: keys, Tags: labelTags,
		Extra: map[string]any{"gcp-tpu": n, "tpu": true, "zone": zone, "public": public, "network": "projects/" + netProject + "/global/networks/" + netName,
			"service_account": sa, "accelerator_type": t.name, "runtime_version": in.RuntimeVersion, "scheduling": sched,
			"tags": strings.Join(in.Tags, ",")}}
	if len(keys) > 0 {
		m.Extra["public_key"] = keys[0]
	}
	q.s.launch(m)
	op.MachineID = id
	q.s.putObject("gcp-tpu-ops", op.Name, op)
	q.ok(tpuOpJSON(op, nil))
	return ""
}

// node finds an alive node of the path's zone and name; false means it answered 404.
func (q *tpuReq) node() (Machine, gcpTPUNode, bool) {
	id := q.r.PathValue("node")
	m, ok := q.s.snapshot(id)
	n, _ := m.Extra["gcp-tpu"].(gcpTPUNode)
	if !ok || m.Status == StatusTerminated || n.Project != q.project || n.Zone != q.r.PathValue("zone") {
		q.notFound(q.location() + "/nodes/" + id)
		return Machine{}, gcpTPUNode{}, false
	}
	return m, n, true
}

func tpuState(m Machine) string {
	switch m.Status {
	case StatusActive:
		return "READY"
	case StatusFailed:
		return "TERMINATED"
	case StatusTerminated:
		return "DELETING"
	}
	return "CREATING"
}

func tpuNodeJSON(m Machine, n gcpTPUNode) map[string]any {
	netProject := n.VPCProject
	region := gcpRegionOf(n.Zone)
	out := map[string]any{"name": n.Parent + "/nodes/" + n.NodeID, "id": n.NumID, "acceleratorType": n.AcceleratorType,
		"runtimeVersion": n.Runtime, "state": tpuState(m), "apiVersion": "V2", "createTime": n.Created.UTC().Format(time.RFC3339Nano),
		"networkConfig": map[string]any{"network": "projects/" + netProject + "/global/networks/" + n.Network,
			"subnetwork": "projects/" + netProject + "/regions/" + region + "/subnetworks/" + n.Network, "enableExternalIps": n.Public},
		"cidrBlock": "10.128.0.0/20", "labels": n.Labels, "metadata": n.Metadata, "tags": n.Tags,
		"schedulingConfig":       map[string]any{"spot": n.Spot, "preemptible": n.Preemptible},
		"shieldedInstanceConfig": map[string]any{"enableSecureBoot": false}}
	if n.ServiceAccount != "" {
		out["serviceAccount"] = map[string]any{"email": n.ServiceAccount, "scope": n.ServiceAccountScopes}
	}
	switch m.Status {
	case StatusActive:
		ep := map[string]any{"ipAddress": m.PrivateIP, "port": 8470}
		if n.Public {
			ep["accessConfig"] = map[string]any{"externalIp": m.IP}
		}
		out["networkEndpoints"] = []any{ep}
		out["health"] = "HEALTHY"
	case StatusFailed:
		out["health"], out["healthDescription"] = "UNHEALTHY_MAINTENANCE", m.Error
	}
	return out
}

func tpuGetNode(q *tpuReq) string {
	if _, ok := q.zone(); !ok {
		return ""
	}
	if m, n, ok := q.node(); ok {
		q.ok(tpuNodeJSON(m, n))
	}
	return ""
}

func tpuDeleteNode(q *tpuReq) string {
	if _, ok := q.zone(); !ok {
		return ""
	}
	q.s.launchMu.Lock()
	defer q.s.launchMu.Unlock()
	m, n, ok := q.node()
	if !ok {
		return ""
	}
	q.s.terminate(m.ID)
	now := time.Now()
	op := gcpTPUOp{Name: fmt.Sprintf("%s/operations/operation-%d-%s", n.Parent, now.UnixMilli(), q.s.hexID(24)), Verb: "delete",
		Target: n.Parent + "/nodes/" + n.NodeID, Created: now}
	q.s.putObject("gcp-tpu-ops", op.Name, op)
	q.ok(tpuOpJSON(op, nil))
	return ""
}

func tpuListNodes(q *tpuReq) string {
	zone, ok := q.zone()
	if !ok {
		return ""
	}
	if f := q.r.URL.Query().Get("filter"); f != "" {
		return q.bad("Invalid value for field 'filter': nodes.list takes none")
	}
	var items []any
	for _, m := range q.s.list(func(m *Machine) bool { return m.Status != StatusTerminated }) {
		if n, ok := m.Extra["gcp-tpu"].(gcpTPUNode); ok && n.Project == q.project && n.Zone == zone {
			items = append(items, tpuNodeJSON(m, n))
		}
	}
	page, next, why := q.page(items)
	if why != "" {
		return why
	}
	out := map[string]any{"nodes": page}
	if next != "" {
		out["nextPageToken"] = next
	}
	q.ok(out)
	return ""
}

// --- operations ---

// tpuOpJSON writes an operation as operations.get sees it in s, or, with s nil, as the call that
// started it answers it: not done, unless it failed at once.
func tpuOpJSON(op gcpTPUOp, s *Sim) map[string]any {
	out := map[string]any{"name": op.Name, "done": false, "metadata": map[string]any{
		"@type": "type.googleapis.com/google.cloud.common.OperationMetadata", "createTime": op.Created.UTC().Format(time.RFC3339Nano),
		"target": op.Target, "verb": op.Verb, "cancelRequested": false, "apiVersion": "v2"}}
	done, errCode, errMsg := op.AtOnce, op.ErrCode, op.ErrMsg
	var response map[string]any
	if s != nil {
		switch {
		case op.Verb == "delete" || op.ErrCode != 0:
			done = true
		default:
			if m, ok := s.snapshot(op.MachineID); ok {
				n, _ := m.Extra["gcp-tpu"].(gcpTPUNode)
				switch m.Status {
				case StatusActive:
					done, response = true, tpuNodeJSON(m, n)
				case StatusFailed:
					done, errCode, errMsg = true, 13, "The TPU node failed to start: "+m.Error
				case StatusTerminated:
					done = true
				}
			}
		}
	}
	if !done {
		return out
	}
	out["done"] = true
	out["metadata"].(map[string]any)["endTime"] = time.Now().UTC().Format(time.RFC3339Nano)
	switch {
	case errCode != 0:
		out["error"] = map[string]any{"code": errCode, "message": errMsg}
	case response != nil:
		response["@type"] = "type.googleapis.com/google.cloud.tpu.v2.Node"
		out["response"] = response
	default:
		out["response"] = map[string]any{"@type": "type.googleapis.com/google.protobuf.Empty"}
	}
	return out
}

func tpuGetOperation(q *tpuReq) string {
	if _, ok := q.zone(); !ok {
		return ""
	}
	name := q.location() + "/operations/" + q.r.PathValue("op")
	op, ok := q.s.Objects("gcp-tpu-ops")[name].(gcpTPUOp)
	if !ok {
		q.notFound(name)
		return ""
	}
	q.ok(tpuOpJSON(op, q.s))
	return ""
}
