package fake

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"sort"
	"strings"
)

// RunPod GraphQL API (https://api.runpod.io/graphql, the schema documented at graphql-spec.runpod.io):
// POST /graphql?api_key=<key> with a JSON body {"query", "variables"}. The simulation answers the
// operations the backend sends: `myself` (the credential check; with `pods`, the account's pods),
// `gpuTypes`, the mutations
// `podFindAndDeployOnDemand` and `podRentInterruptable` (input variables are checked against the
// input types' fields, as GraphQL coerces variables), `pod(input: {podId})` with its runtime ports,
// and `podTerminate`. A refused key gets HTTP 401 with a GraphQL error list; GraphQL-level failures
// (no capacity, unknown pod) come with HTTP 200 and `errors`.
//
// Network volumes (Secure Cloud storage in one data center): `createNetworkVolume(input:
// CreateNetworkVolumeInput! {name, size, dataCenterId})` gives a NetworkVolume {id name size
// dataCenterId}; `deleteNetworkVolume(input: DeleteNetworkVolumeInput! {id})` returns a scalar (a
// selection set on it is refused, as GraphQL validation does); `myself { networkVolumes }` lists
// them. A deploy mutation with networkVolumeId must name the volume's data center as dataCenterId.
// Deleting an unknown volume, or one a live pod mounts, is a GraphQL error. The volumes are the
// simulation's "network-volumes" objects (Objects), each {id name size dataCenterId}.

type runpodGPU struct {
	id, display string
	memGB       int
	secure      float64 // on-demand price per GPU, Secure Cloud
	community   float64
	spot        float64 // minimum bid per GPU
	maxCount    int
}

var runpodGPUs = []runpodGPU{
	{"NVIDIA RTX 2000 Ada Generation", "RTX 2000 Ada", 16, 0.24, 0.14, 0.12, 8},
	{"NVIDIA RTX A4000", "RTX A4000", 16, 0.32, 0.17, 0.10, 8},
	{"NVIDIA RTX A5000", "RTX A5000", 24, 0.36, 0.22, 0.12, 8},
	{"NVIDIA GeForce RTX 4090", "RTX 4090", 24, 0.69, 0.34, 0.20, 8},
	{"NVIDIA L4", "L4", 24, 0.43, 0.28, 0.19, 8},
	{"NVIDIA A40", "A40", 48, 0.40, 0.35, 0.24, 8},
	{"NVIDIA RTX A6000", "RTX A6000", 48, 0.49, 0.33, 0.25, 8},
	{"NVIDIA RTX 6000 Ada Generation", "RTX 6000 Ada", 48, 0.77, 0.74, 0.50, 8},
	{"NVIDIA L40S", "L40S", 48, 0.86, 0.79, 0.53, 8},
	{"NVIDIA A100 80GB PCIe", "A100 PCIe", 80, 1.64, 1.19, 0.82, 8},
	{"NVIDIA A100-SXM4-80GB", "A100 SXM", 80, 1.89, 1.39, 0.95, 8},
	{"NVIDIA H100 80GB HBM3", "H100 SXM", 80, 2.99, 2.69, 1.75, 8},
	{"NVIDIA H100 PCIe", "H100 PCIe", 80, 2.39, 1.99, 1.25, 8},
	{"NVIDIA H100 NVL", "H100 NVL", 94, 2.79, 2.59, 1.40, 8},
}

// runpodInputFields are the fields of the deploy mutations' input types.
var runpodInputFields = map[string]bool{}

func init() {
	for _, f := range strings.Fields(`aiApiId cloudType containerDiskInGb countryCode deployCost dockerArgs env
		gpuCount gpuTypeId gpuTypeIdList minCudaVersion minDisk minDownload minMemoryInGb minUpload minVcpuCount
		name networkVolumeId port ports startJupyter startSsh stopAfter supportPublicIp templateId terminateAfter
		volumeInGb volumeKey volumeMountPath dataCenterId savingsPlan cudaVersion allowedCudaVersions imageName
		containerRegistryAuthId computeType bidPerGpu`) {
		runpodInputFields[f] = true
	}
}

var (
	gqlRoot  = regexp.MustCompile(`^\s*(?:(query|mutation)\b\s*(?:\w+)?\s*(?:\([^)]*\))?\s*)?\{\s*(\w+)`)
	gqlPodID = regexp.MustCompile(`podId\s*:\s*"([^"]*)"`)
	portsRe  = regexp.MustCompile(`^\d{1,5}/(tcp|http)(,\d{1,5}/(tcp|http))*$`)
	// gqlInputType is the declared type of the $input variable.
	gqlInputType = regexp.MustCompile(`\$input\s*:\s*([A-Za-z_]\w*!?)`)
	// runpodDataCenter is a Secure Cloud data center id: CA-MTL-3, EU-RO-1, EUR-IS-1.
	runpodDataCenter = regexp.MustCompile(`^[A-Z]{2,3}-[A-Z]{2,3}-\d+$`)
)

func gqlErrors(w http.ResponseWriter, status int, root string, msg, code string) {
	e := map[string]any{"message": msg}
	if code != "" {
		e["extensions"] = map[string]any{"code": code}
	}
	body := map[string]any{"errors": []any{e}}
	if root != "" {
		e["path"] = []string{root}
		body["data"] = map[string]any{root: nil}
	}
	writeJSON(w, status, body)
}

func runpodPodJSON(m Machine) map[string]any {
	desired := "RUNNING"
	if m.Status == StatusFailed {
		desired = "EXITED"
	}
	pod := map[string]any{
		"id": m.ID, "name": m.Name, "desiredStatus": desired, "imageName": m.Image, "costPerHr": m.Price,
		"gpuCount": m.GPUs, "machineId": "m" + m.ID[:8], "dockerArgs": m.Command, "runtime": nil,
		"env": m.Env, "machine": map[string]any{"gpuDisplayName": m.Type, "podHostId": m.ID + "-64410c2b"},
	}
	if m.Status == StatusActive {
		ports := []any{
			map[string]any{"ip": m.IP, "isIpPublic": true, "privatePort": 10022, "publicPort": m.SSHPort, "type": "tcp"},
			map[string]any{"ip": m.PrivateIP, "isIpPublic": false, "privatePort": 10022, "publicPort": 10022, "type": "tcp"},
		}
		pod["runtime"] = map[string]any{"uptimeInSeconds": 1, "ports": ports, "gpus": []any{}}
	}
	return pod
}

func init() {
	const good = "secret_runpod_good_9d4c1a"
	register("runpod", &provider{
		prefix:       "/graphql",
		good:         map[string]any{"community_cloud": false, "creds": apiKeyCreds(good)},
		bad:          map[string]any{"community_cloud": false, "creds": apiKeyCreds("secret_runpod_bad_31f0be")},
		failBody:     `{"errors":[{"message":"Something went wrong. Please try again later or contact support.","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}`,
		throttleBody: `{"errors":[{"message":"Too many requests, please slow down.","extensions":{"code":"RATE_LIMITED"}}]}`,
		capacity: func(w http.ResponseWriter) {
			gqlErrors(w, http.StatusOK, "podFindAndDeployOnDemand",
				"There are no longer any instances available with the requested specifications. Please refresh and try again.", "")
		},
		newID:     func(s *Sim, _ int) string { return s.hexID(14) },
		container: true,
		catalog:   runpodCatalog,
		routes:    []route{{pattern: "POST /graphql", launch: false, serve: runpodServe}},
	})
}

// runpodServe answers one GraphQL request. Capacity faults and SetNoCapacity apply to the deploy
// mutations only, so they are checked here rather than by the route.
func runpodServe(s *Sim, w http.ResponseWriter, r *http.Request) string {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		writeJSON(w, http.StatusBadRequest, `{"errors":[{"message":"POST body missing, invalid Content-Type, or JSON object has no keys."}]}`)
		return "Content-Type " + r.Header.Get("Content-Type") + ", want application/json"
	}
	var req struct {
		Query         string         `json:"query"`
		Variables     map[string]any `json:"variables"`
		OperationName string         `json:"operationName"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || strings.TrimSpace(req.Query) == "" {
		writeJSON(w, http.StatusBadRequest, `{"errors":[{"message":"Must provide query string."}]}`)
		return "body is not a GraphQL request"
	}
	key := r.URL.Query().Get("api_key")
	if !s.credOK("api_key", key) {
		writeJSON(w, http.StatusUnauthorized, `{"errors":[{"message":"Unauthorized: invalid or missing API key","extensions":{"code":"UNAUTHENTICATED"}}]}`)
		if key == "" {
			return "no api_key query parameter"
		}
		return ""
	}
	m := gqlRoot.FindStringSubmatch(req.Query)
	if m == nil {
		gqlErrors(w, http.StatusBadRequest, "", "Syntax Error: Unexpected Name.", "GRAPHQL_PARSE_FAILED")
		return "query does not parse: " + req.Query
	}
	op, root := m[1], m[2]
	if strings.Count(req.Query, "{") != strings.Count(req.Query, "}") {
		gqlErrors(w, http.StatusBadRequest, "", "Syntax Error: Expected Name, found <EOF>.", "GRAPHQL_PARSE_FAILED")
		return "unbalanced braces in the query"
	}
	mutation := op == "mutation"
	input, _ := req.Variables["input"].(map[string]any)
	usesVar := strings.Contains(req.Query, "$input")
	if usesVar && input == nil {
		gqlErrors(w, http.StatusBadRequest, "", `Variable "$input" of required type was not provided.`, "BAD_USER_INPUT")
		return "the query uses $input but variables.input is missing"
	}
	switch {
	case root == "myself" && !mutation:
		me := map[string]any{"id": "user_2fakeRunPodUser"}
		if strings.Contains(req.Query, "pods") {
			// Terminated pods are gone from the account.
			pods := []any{}
			for _, pm := range s.list(func(m *Machine) bool { return m.Status != StatusTerminated }) {
				pods = append(pods, runpodPodJSON(pm))
			}
			me["pods"] = pods
		}
		if strings.Contains(req.Query, "networkVolumes") {
			me["networkVolumes"] = runpodVolumes(s)
		}
		writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"myself": me}})
	case root == "gpuTypes" && !mutation:
		list := []any{}
		for _, g := range runpodGPUs {
			list = append(list, map[string]any{"id": g.id, "displayName": g.display, "memoryInGb": g.memGB,
				"secureCloud": true, "communityCloud": true, "securePrice": g.secure, "communityPrice": g.community,
				"secureSpotPrice": g.spot, "communitySpotPrice": g.spot, "maxGpuCount": g.maxCount})
		}
		writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"gpuTypes": list}})
	case root == "pod" && !mutation:
		id := podID(req.Query, input)
		if id == "" {
			gqlErrors(w, http.StatusBadRequest, "", `Field "pod" argument "input" of type "PodFilter" requires podId.`, "BAD_USER_INPUT")
			return "pod query without podId"
		}
		pm, ok := s.snapshot(id)
		if !ok || pm.Status == StatusTerminated {
			writeJSON(w, http.StatusOK, `{"data":{"pod":null}}`)
			return ""
		}
		writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"pod": runpodPodJSON(pm)}})
	case root == "podTerminate" && mutation:
		id := podID(req.Query, input)
		if id == "" {
			gqlErrors(w, http.StatusBadRequest, "", `Field "PodTerminateInput.podId" of required type "String!" was not provided.`, "BAD_USER_INPUT")
			return "podTerminate without podId"
		}
		if found, already := s.terminate(id); !found || already {
			gqlErrors(w, http.StatusOK, "podTerminate", "Pod not found.", "")
			return ""
		}
		writeJSON(w, http.StatusOK, `{"data":{"podTerminate":null}}`)
	case (root == "podFindAndDeployOnDemand" || root == "podRentInterruptable") && mutation:
		return runpodDeploy(s, w, root, input)
	case root == "createNetworkVolume" && mutation:
		return runpodCreateVolume(s, w, req.Query, input)
	case root == "deleteNetworkVolume" && mutation:
		return runpodDeleteVolume(s, w, req.Query, input)
	default:
		gqlErrors(w, http.StatusBadRequest, "", fmt.Sprintf("Cannot query field %q on type %q.", root, map[bool]string{true: "Mutation", false: "Query"}[mutation]), "GRAPHQL_VALIDATION_FAILED")
		return "unknown operation " + root
	}
	return ""
}

func podID(query string, input map[string]any) string {
	if id, ok := input["podId"].(string); ok {
		return id
	}
	if m := gqlPodID.FindStringSubmatch(query); m != nil {
		return m[1]
	}
	return ""
}

func runpodDeploy(s *Sim, w http.ResponseWriter, root string, in map[string]any) string {
	typeName := "PodFindAndDeployOnDemandInput"
	if root == "podRentInterruptable" {
		typeName = "PodRentInterruptableInput"
	}
	bad := func(msg string) string {
		gqlErrors(w, http.StatusBadRequest, "", fmt.Sprintf(`Variable "$input" got invalid value; %s`, msg), "BAD_USER_INPUT")
		return msg
	}
	if in == nil {
		return bad("the deploy mutation must take its input as the variable $input")
	}
	var unknown []string
	for k := range in {
		if !runpodInputFields[k] || (k == "bidPerGpu" && root != "podRentInterruptable") {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	if len(unknown) > 0 {
		return bad(fmt.Sprintf(`Field %q is not defined by type %q.`, unknown[0], typeName))
	}
	num := func(k string) (float64, bool) { v, ok := in[k].(float64); return v, ok }
	str := func(k string) string { v, _ := in[k].(string); return v }
	gpuCount, ok := num("gpuCount")
	if !ok || gpuCount < 1 || gpuCount != float64(int(gpuCount)) {
		return bad(`Field "gpuCount" of required type "Int!" was not provided or is not a positive integer.`)
	}
	bid, hasBid := num("bidPerGpu")
	if root == "podRentInterruptable" && (!hasBid || bid <= 0) {
		return bad(`Field "bidPerGpu" of required type "Float!" was not provided or is not positive.`)
	}
	switch ct := str("cloudType"); ct {
	case "", "ALL", "SECURE", "COMMUNITY":
	default:
		return bad(fmt.Sprintf(`Value %q does not exist in "CloudTypeEnum" enum.`, ct))
	}
	if str("imageName") == "" && str("templateId") == "" {
		return bad(`one of imageName and templateId is required`)
	}
	if p := str("ports"); p != "" && !portsRe.MatchString(p) {
		return bad(fmt.Sprintf(`ports %q is not a list like "10022/tcp,8888/http"`, p))
	}
	if d, ok := in["dockerArgs"]; ok {
		if _, isStr := d.(string); !isStr {
			return bad(`Field "dockerArgs" is not a String.`)
		}
	}
	env := map[string]string{}
	if e, ok := in["env"]; ok {
		list, isList := e.([]any)
		if !isList {
			return bad(`Field "env" is not a list of {key, value}.`)
		}
		for _, item := range list {
			kv, _ := item.(map[string]any)
			k, _ := kv["key"].(string)
			v, okv := kv["value"].(string)
			if k == "" || !okv || len(kv) != 2 {
				return bad(`Field "env" items must be {key: String!, value: String!}.`)
			}
			env[k] = v
		}
	}
	if dc, cc := str("dataCenterId"), str("countryCode"); dc != "" && !strings.Contains(dc, "-") || cc != "" && len(cc) != 2 {
		return bad(fmt.Sprintf("dataCenterId %q / countryCode %q are not a data center id (CA-MTL-3) and a country code (CA)", dc, cc))
	}
	if p := str("volumeMountPath"); p != "" && !strings.HasPrefix(p, "/") {
		return bad(fmt.Sprintf(`volumeMountPath %q is not an absolute path`, p))
	}
	if id := str("networkVolumeId"); id != "" {
		vol, ok := s.Objects("network-volumes")[id].(map[string]any)
		if !ok {
			gqlErrors(w, http.StatusOK, root, fmt.Sprintf("Network volume %s not found.", id), "")
			return ""
		}
		// A pod mounts a network volume only in the volume's data center.
		if dc := str("dataCenterId"); dc != vol["dataCenterId"] {
			gqlErrors(w, http.StatusOK, root, fmt.Sprintf("Network volume %s is in data center %s; the pod must be deployed with dataCenterId %s, not %q.",
				id, vol["dataCenterId"], vol["dataCenterId"], dc), "")
			return ""
		}
	}
	s.mu.Lock()
	full := s.noCapacity
	s.mu.Unlock()
	if full || s.drawFault(true) == FaultCapacity {
		gqlErrors(w, http.StatusOK, root, "There are no longer any instances available with the requested specifications. Please refresh and try again.", "")
		return ""
	}
	var gpu *runpodGPU
	for i := range runpodGPUs {
		if runpodGPUs[i].id == str("gpuTypeId") {
			gpu = &runpodGPUs[i]
		}
	}
	if gpu == nil || int(gpuCount) > gpu.maxCount {
		gqlErrors(w, http.StatusOK, root, "There are no longer any instances available with the requested specifications. Please refresh and try again.", "")
		if gpu == nil {
			return fmt.Sprintf("unknown gpuTypeId %q", str("gpuTypeId"))
		}
		return ""
	}
	price := gpu.secure
	if str("cloudType") == "COMMUNITY" {
		price = gpu.community
	}
	m := &Machine{Name: str("name"), Type: gpu.id, GPUs: int(gpuCount), Image: str("imageName"), Command: str("dockerArgs"),
		Env: env, Region: str("dataCenterId") + str("countryCode"), Price: price * gpuCount,
		Extra: map[string]any{"cloud_type": str("cloudType"), "ports": str("ports"), "container_disk_gb": in["containerDiskInGb"],
			"min_vcpu": in["minVcpuCount"], "min_memory_gb": in["minMemoryInGb"], "support_public_ip": in["supportPublicIp"]}}
	if id := str("networkVolumeId"); id != "" {
		m.Extra["network_volume_id"], m.Extra["volume_mount_path"] = id, str("volumeMountPath")
	}
	if hasBid {
		m.Spot, m.Price = true, bid*gpuCount
		m.Extra["bid_per_gpu"] = bid
	}
	s.launch(m)
	pod := map[string]any{"id": m.ID, "imageName": m.Image, "desiredStatus": "RUNNING", "machineId": "m" + m.ID[:8],
		"lastStatusChange": "Rented by User: " + m.Created.UTC().Format("Mon Jan 02 2006 15:04:05 GMT+0000 (Coordinated Universal Time)"),
		"costPerHr":        m.Price, "machine": map[string]any{"podHostId": m.ID + "-64410c2b"}}
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{root: pod}})
	return ""
}

// runpodCatalog lists the GPU types as the shared gpuhunt-style catalog names them
// ("1x_A100-PCIe_SECURE" in a country), on-demand and spot, in Secure Cloud (US, and the data
// center CA-MTL-3) and Community Cloud (CA).
func runpodCatalog() []catalogRow {
	var rows []catalogRow
	for _, g := range runpodGPUs {
		name := strings.TrimSuffix(strings.TrimSuffix(g.display, " PCIe"), " SXM")
		name = strings.ReplaceAll(name, " ", "")
		for _, n := range []int{1, 2, 8} {
			for _, c := range []struct {
				cloud, region string
				price         float64
			}{{"SECURE", "US", g.secure}, {"SECURE", "CA-MTL-3", g.secure}, {"COMMUNITY", "CA", g.community}} {
				inst := fmt.Sprintf("%dx_%s_%s", n, strings.ReplaceAll(g.display, " ", "-"), c.cloud)
				row := catalogRow{name: inst, location: c.region, price: c.price * float64(n), cpu: 8 * n, memory: 31 * n,
					gpus: n, gpuName: name, gpuMem: float64(g.memGB)}
				rows = append(rows, row)
				row.spot, row.price = true, g.spot*float64(n)
				rows = append(rows, row)
			}
		}
	}
	return rows
}

// runpodVolumes lists the account's network volumes, by id.
func runpodVolumes(s *Sim) []any {
	objs := s.Objects("network-volumes")
	ids := make([]string, 0, len(objs))
	for id := range objs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := []any{}
	for _, id := range ids {
		out = append(out, objs[id])
	}
	return out
}

// runpodVolumeInput checks a volume mutation's $input: declared with the input type, carrying only
// its fields. It answers the error and returns why when the input is refused.
func runpodVolumeInput(w http.ResponseWriter, query, typeName string, in map[string]any, fields ...string) string {
	bad := func(msg string) string {
		gqlErrors(w, http.StatusBadRequest, "", msg, "BAD_USER_INPUT")
		return msg
	}
	m := gqlInputType.FindStringSubmatch(query)
	if in == nil || m == nil {
		return bad("the volume mutations must take their input as the variable $input")
	}
	if m[1] != typeName+"!" {
		return bad(fmt.Sprintf(`Variable "$input" of type %q used in position expecting type "%s!".`, m[1], typeName))
	}
	known := map[string]bool{}
	for _, f := range fields {
		known[f] = true
	}
	var unknown []string
	for k := range in {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	if len(unknown) > 0 {
		return bad(fmt.Sprintf(`Variable "$input" got invalid value; Field %q is not defined by type %q.`, unknown[0], typeName))
	}
	return ""
}

func runpodCreateVolume(s *Sim, w http.ResponseWriter, query string, in map[string]any) string {
	if why := runpodVolumeInput(w, query, "CreateNetworkVolumeInput", in, "name", "size", "dataCenterId"); why != "" {
		return why
	}
	bad := func(msg string) string {
		gqlErrors(w, http.StatusBadRequest, "", `Variable "$input" got invalid value; `+msg, "BAD_USER_INPUT")
		return msg
	}
	name, _ := in["name"].(string)
	dc, _ := in["dataCenterId"].(string)
	size, ok := in["size"].(float64)
	switch {
	case !ok || size != float64(int(size)):
		return bad(`Field "size" of required type "Int!" was not provided or is not an integer.`)
	case strings.TrimSpace(name) == "":
		return bad(`Field "name" of required type "String!" was not provided.`)
	case !runpodDataCenter.MatchString(dc):
		return bad(fmt.Sprintf(`Field "dataCenterId" of required type "String!" is %q, not a data center id such as CA-MTL-3.`, dc))
	}
	if size < 1 || size > 4000 {
		// A well-formed request the API refuses: the size limits are RunPod's (1 to 4000 GB).
		gqlErrors(w, http.StatusOK, "createNetworkVolume", fmt.Sprintf("Network volume size must be between 1 and 4000 GB, got %d.", int(size)), "")
		return ""
	}
	vol := map[string]any{"id": s.hexID(10), "name": name, "size": int(size), "dataCenterId": dc}
	s.putObject("network-volumes", vol["id"].(string), vol)
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"createNetworkVolume": vol}})
	return ""
}

var gqlScalarSelection = regexp.MustCompile(`deleteNetworkVolume\s*\([^)]*\)\s*\{`)

func runpodDeleteVolume(s *Sim, w http.ResponseWriter, query string, in map[string]any) string {
	if why := runpodVolumeInput(w, query, "DeleteNetworkVolumeInput", in, "id"); why != "" {
		return why
	}
	if gqlScalarSelection.MatchString(query) {
		gqlErrors(w, http.StatusBadRequest, "", `Field "deleteNetworkVolume" must not have a selection since its type has no subfields.`, "GRAPHQL_VALIDATION_FAILED")
		return "a selection set on deleteNetworkVolume, a scalar"
	}
	id, _ := in["id"].(string)
	if id == "" {
		gqlErrors(w, http.StatusBadRequest, "", `Variable "$input" got invalid value; Field "id" of required type "String!" was not provided.`, "BAD_USER_INPUT")
		return "deleteNetworkVolume without id"
	}
	if _, ok := s.Objects("network-volumes")[id]; !ok {
		gqlErrors(w, http.StatusOK, "deleteNetworkVolume", "Network volume not found.", "")
		return ""
	}
	if users := s.list(func(m *Machine) bool {
		return m.Status != StatusTerminated && m.Extra["network_volume_id"] == id
	}); len(users) > 0 {
		gqlErrors(w, http.StatusOK, "deleteNetworkVolume", fmt.Sprintf("Network volume %s is in use by pod %s; terminate the pod first.", id, users[0].ID), "")
		return ""
	}
	s.deleteObject("network-volumes", id)
	writeJSON(w, http.StatusOK, `{"data":{"deleteNetworkVolume":null}}`)
	return ""
}
