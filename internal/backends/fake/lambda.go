package fake

import (
	"fmt"
	"net/http"
	"strings"
)

// Lambda Cloud API v1 (https://cloud.lambdalabs.com/api/v1, the public OpenAPI document "Lambda
// Cloud API" v1.5): every call is authenticated by `Authorization: Bearer <key>` (or HTTP basic auth
// with the key as user name). Errors are {"error": {"code", "message", "suggestion"}} with codes such
// as global/invalid-api-key (401), global/invalid-parameters (400), global/object-does-not-exist
// (404) and instance-operations/launch/insufficient-capacity (400).
//
// Calls: GET /instance-types (types with regions_with_capacity_available), GET /instances,
// GET /instances/{id}, POST /instance-operations/launch, POST /instance-operations/terminate,
// GET /ssh-keys, POST /ssh-keys, DELETE /ssh-keys/{id}. Terminated instances disappear (404).

type lambdaType struct {
	name, desc, gpuDesc      string
	gpuName                  string // gpuhunt's name
	gpuMem                   int    // GB per GPU
	cents                    int
	vcpus, mem, storage, gpu int
	capacity                 []string // regions with capacity
}

// lambdaTypes is the simulated inventory: catalog names (gpuhunt's lambdalabs rows), with capacity
// in a few regions; gpu_8x_h100_sxm5 has none anywhere.
var lambdaTypes = []lambdaType{
	{"cpu_4x_general", "4x CPU (general)", "", "", 0, 20, 4, 16, 200, 0, []string{"us-east-1", "us-west-1"}},
	{"gpu_1x_rtx6000", "1x RTX 6000 (24 GB)", "RTX 6000 (24 GB)", "RTX6000", 24, 69, 14, 46, 512, 1, []string{"us-east-1"}},
	{"gpu_1x_a6000", "1x A6000 (48 GB)", "A6000 (48 GB)", "A6000", 48, 109, 14, 100, 512, 1, []string{"us-west-1"}},
	{"gpu_1x_a10", "1x A10 (24 GB PCIe)", "A10 (24 GB PCIe)", "A10", 24, 129, 30, 200, 1400, 1, []string{"us-east-1", "us-west-1"}},
	{"gpu_1x_a100_sxm4", "1x A100 (40 GB SXM4)", "A100 (40 GB SXM4)", "A100", 40, 199, 30, 200, 512, 1, []string{"us-east-1"}},
	{"gpu_1x_h100_pcie", "1x H100 (80 GB PCIe)", "H100 (80 GB PCIe)", "H100", 80, 329, 26, 200, 1024, 1, []string{"us-west-3"}},
	{"gpu_8x_h100_sxm5", "8x H100 (80 GB SXM5)", "H100 (80 GB SXM5)", "H100", 80, 3192, 208, 1800, 24780, 8, nil},
}

var lambdaRegions = map[string]string{
	"us-east-1": "Virginia, USA", "us-east-2": "Washington DC, USA", "us-east-3": "Washington DC, USA",
	"us-west-1": "California, USA", "us-west-2": "Arizona, USA", "us-west-3": "Utah, USA",
	"us-south-1": "Texas, USA", "us-south-2": "North Texas, USA", "us-south-3": "Central Texas, USA",
	"us-midwest-1": "Illinois, USA", "europe-central-1": "Germany", "asia-south-1": "India",
	"asia-northeast-1": "Tokyo, Japan", "asia-northeast-2": "Osaka, Japan", "me-west-1": "Israel",
	"australia-east-1": "Sydney, Australia", "europe-south-1": "Italy",
}

func lambdaError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": msg, "suggestion": nil}})
}

// lambdaAuth checks the key; on refusal it has answered.
func lambdaAuth(s *Sim, w http.ResponseWriter, r *http.Request) (ok bool, why string) {
	key := bearer(r)
	if key == "" {
		key, _, _ = r.BasicAuth()
	}
	if !s.credOK("api_key", key) {
		writeJSON(w, http.StatusUnauthorized, `{"error":{"code":"global/invalid-api-key",`+
			`"message":"API key was invalid, expired, or deleted.",`+
			`"suggestion":"Check your API key or create a new one, then try again."}}`)
		if key == "" {
			return false, "no API key (want Authorization: Bearer <key>)"
		}
		return false, ""
	}
	return true, ""
}

func lambdaTypeJSON(t lambdaType) map[string]any {
	return map[string]any{"name": t.name, "description": t.desc, "gpu_description": t.gpuDesc,
		"price_cents_per_hour": t.cents,
		"specs":                map[string]any{"vcpus": t.vcpus, "memory_gib": t.mem, "storage_gib": t.storage, "gpus": t.gpu}}
}

func lambdaInstanceJSON(m Machine) map[string]any {
	status := map[string]string{StatusBooting: "booting", StatusActive: "active", StatusFailed: "unhealthy",
		StatusTerminated: "terminated"}[m.Status]
	out := map[string]any{
		"id": m.ID, "name": m.Name, "status": status, "ssh_key_names": m.SSHKeys, "file_system_names": []string{},
		"region":      map[string]any{"name": m.Region, "description": lambdaRegions[m.Region]},
		"is_reserved": false,
	}
	for _, t := range lambdaTypes {
		if t.name == m.Type {
			out["instance_type"] = lambdaTypeJSON(t)
		}
	}
	if m.Status == StatusActive {
		out["ip"], out["private_ip"] = m.IP, m.PrivateIP
		out["hostname"] = strings.ReplaceAll(m.IP, ".", "-") + ".cloud.lambdalabs.com"
		out["jupyter_url"] = "https://jupyter-" + m.ID + ".lambdaspaces.com/?token=simulated"
	}
	return out
}

func init() {
	const good = "secret_lambda_good_5b1e2f"
	authed := func(h func(s *Sim, w http.ResponseWriter, r *http.Request) string) func(s *Sim, w http.ResponseWriter, r *http.Request) string {
		return func(s *Sim, w http.ResponseWriter, r *http.Request) string {
			if ok, why := lambdaAuth(s, w, r); !ok {
				return why
			}
			return h(s, w, r)
		}
	}
	register("lambda", &provider{
		prefix:       "/api/v1",
		good:         map[string]any{"regions": []any{"us-east-1"}, "creds": apiKeyCreds(good)},
		bad:          map[string]any{"regions": []any{"us-east-1"}, "creds": apiKeyCreds("secret_lambda_bad_0c77d1")},
		failBody:     `{"error":{"code":"global/unknown","message":"An unknown error occurred."}}`,
		throttleBody: `{"error":{"code":"global/too-many-requests","message":"Too many requests.","suggestion":"Wait a bit, then try again."}}`,
		capacity: func(w http.ResponseWriter) {
			lambdaError(w, http.StatusBadRequest, "instance-operations/launch/insufficient-capacity",
				"Not enough capacity to fulfill launch request.")
		},
		notFound: func(w http.ResponseWriter) {
			lambdaError(w, http.StatusNotFound, "global/not-found", "Not found.")
		},
		catalog: func() []catalogRow {
			var rows []catalogRow
			for _, t := range lambdaTypes {
				// Every type is listed in its capacity regions and in us-south-1, where none has capacity.
				for _, reg := range append(append([]string(nil), t.capacity...), "us-south-1") {
					rows = append(rows, catalogRow{name: t.name, location: reg, price: float64(t.cents) / 100,
						cpu: t.vcpus, memory: t.mem, gpus: t.gpu, gpuName: t.gpuName, gpuMem: float64(t.gpuMem)})
				}
			}
			return rows
		},
		newID: func(s *Sim, _ int) string { return s.hexID(32) },
		routes: []route{
			{pattern: "GET /api/v1/instance-types", serve: authed(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				data := map[string]any{}
				for _, t := range lambdaTypes {
					regions := []any{}
					for _, reg := range t.capacity {
						regions = append(regions, map[string]any{"name": reg, "description": lambdaRegions[reg]})
					}
					data[t.name] = map[string]any{"instance_type": lambdaTypeJSON(t), "regions_with_capacity_available": regions}
				}
				writeJSON(w, http.StatusOK, map[string]any{"data": data})
				return ""
			})},
			{pattern: "GET /api/v1/instances", serve: authed(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				data := []any{}
				for _, m := range s.list(func(m *Machine) bool { return m.Status != StatusTerminated }) {
					data = append(data, lambdaInstanceJSON(m))
				}
				writeJSON(w, http.StatusOK, map[string]any{"data": data})
				return ""
			})},
			{pattern: "GET /api/v1/instances/{id}", serve: authed(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				m, ok := s.snapshot(r.PathValue("id"))
				if !ok || m.Status == StatusTerminated {
					lambdaError(w, http.StatusNotFound, "global/object-does-not-exist", "Specified instance does not exist.")
					return ""
				}
				writeJSON(w, http.StatusOK, map[string]any{"data": lambdaInstanceJSON(m)})
				return ""
			})},
			{pattern: "POST /api/v1/instance-operations/launch", launch: true, serve: authed(lambdaLaunch)},
			{pattern: "POST /api/v1/instance-operations/terminate", serve: authed(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				var req struct {
					InstanceIDs []string `json:"instance_ids"`
				}
				if err := readJSON(r, &req, true); err != nil || len(req.InstanceIDs) == 0 {
					lambdaError(w, http.StatusBadRequest, "global/invalid-parameters", "instance_ids: a non-empty list of instance ids is required.")
					return "terminate body is not {instance_ids: [...]}"
				}
				for _, id := range req.InstanceIDs {
					if m, ok := s.snapshot(id); !ok || m.Status == StatusTerminated {
						lambdaError(w, http.StatusNotFound, "global/object-does-not-exist", "Specified instance does not exist.")
						return ""
					}
				}
				out := []any{}
				for _, id := range req.InstanceIDs {
					s.terminate(id)
					m, _ := s.snapshot(id)
					out = append(out, lambdaInstanceJSON(m))
				}
				writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"terminated_instances": out}})
				return ""
			})},
			{pattern: "GET /api/v1/ssh-keys", serve: authed(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				data := []any{}
				for _, v := range sortedObjects(s, "ssh-keys") {
					data = append(data, v)
				}
				writeJSON(w, http.StatusOK, map[string]any{"data": data})
				return ""
			})},
			{pattern: "POST /api/v1/ssh-keys", serve: authed(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				var req struct {
					Name      string `json:"name"`
					PublicKey string `json:"public_key"`
				}
				if err := readJSON(r, &req, true); err != nil || req.Name == "" || len(req.Name) > 64 {
					lambdaError(w, http.StatusBadRequest, "global/invalid-parameters", "name: a name of at most 64 characters is required.")
					return "ssh-key body is not {name, public_key}"
				}
				if req.PublicKey == "" {
					// Lambda generates a key pair when public_key is left out; the backend never asks for that.
					lambdaError(w, http.StatusBadRequest, "global/invalid-parameters", "public_key: generating keys is not simulated.")
					return "ssh-key without public_key"
				}
				if !strings.HasPrefix(req.PublicKey, "ssh-") && !strings.HasPrefix(req.PublicKey, "ecdsa-") {
					lambdaError(w, http.StatusBadRequest, "global/invalid-parameters", "public_key: not a valid SSH public key.")
					return "public_key is not an OpenSSH public key"
				}
				for _, v := range s.Objects("ssh-keys") {
					if v.(map[string]any)["name"] == req.Name {
						lambdaError(w, http.StatusBadRequest, "global/invalid-parameters", "name: an SSH key with this name already exists.")
						return ""
					}
				}
				key := map[string]any{"id": s.hexID(32), "name": req.Name, "public_key": req.PublicKey}
				s.putObject("ssh-keys", key["id"].(string), key)
				writeJSON(w, http.StatusOK, map[string]any{"data": key})
				return ""
			})},
			{pattern: "DELETE /api/v1/ssh-keys/{id}", serve: authed(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				if !s.deleteObject("ssh-keys", r.PathValue("id")) {
					lambdaError(w, http.StatusNotFound, "global/object-does-not-exist", "Specified SSH key does not exist.")
					return ""
				}
				writeJSON(w, http.StatusOK, `{"data":{}}`)
				return ""
			})},
		},
	})
}

func lambdaLaunch(s *Sim, w http.ResponseWriter, r *http.Request) string {
	var req struct {
		RegionName       string   `json:"region_name"`
		InstanceTypeName string   `json:"instance_type_name"`
		SSHKeyNames      []string `json:"ssh_key_names"`
		FileSystemNames  []string `json:"file_system_names"`
		Quantity         *int     `json:"quantity"`
		Name             *string  `json:"name"`
		Hostname         *string  `json:"hostname"`
		ImageID          any      `json:"image"`
		UserData         *string  `json:"user_data"`
		Tags             []any    `json:"tags"`
		FirewallRulesets []any    `json:"firewall_rulesets"`
	}
	if err := readJSON(r, &req, true); err != nil {
		lambdaError(w, http.StatusBadRequest, "global/invalid-parameters", "Invalid request body: "+err.Error())
		return "launch body does not decode: " + err.Error()
	}
	var field string
	switch {
	case req.RegionName == "":
		field = "region_name: required"
	case lambdaRegions[req.RegionName] == "":
		field = "region_name: unknown region " + req.RegionName
	case req.InstanceTypeName == "":
		field = "instance_type_name: required"
	case len(req.SSHKeyNames) != 1:
		field = "ssh_key_names: exactly one SSH key name is required"
	case req.Quantity != nil && (*req.Quantity < 1 || *req.Quantity > 1):
		field = "quantity: must be 1"
	case req.Name != nil && len(*req.Name) > 64:
		field = "name: at most 64 characters"
	}
	if field != "" {
		lambdaError(w, http.StatusBadRequest, "global/invalid-parameters", field)
		return "launch: " + field
	}
	var typ *lambdaType
	for i := range lambdaTypes {
		if lambdaTypes[i].name == req.InstanceTypeName {
			typ = &lambdaTypes[i]
		}
	}
	if typ == nil {
		lambdaError(w, http.StatusNotFound, "global/object-does-not-exist", fmt.Sprintf("Instance type %s does not exist.", req.InstanceTypeName))
		return ""
	}
	found := false
	for _, v := range s.Objects("ssh-keys") {
		if v.(map[string]any)["name"] == req.SSHKeyNames[0] {
			found = true
		}
	}
	if !found {
		lambdaError(w, http.StatusNotFound, "global/object-does-not-exist", fmt.Sprintf("SSH key %s does not exist.", req.SSHKeyNames[0]))
		return ""
	}
	has := false
	for _, reg := range typ.capacity {
		has = has || reg == req.RegionName
	}
	if !has {
		lambdaError(w, http.StatusBadRequest, "instance-operations/launch/insufficient-capacity", "Not enough capacity to fulfill launch request.")
		return ""
	}
	m := &Machine{Type: typ.name, Region: req.RegionName, SSHKeys: req.SSHKeyNames, Price: float64(typ.cents) / 100, GPUs: typ.gpu}
	if req.Name != nil {
		m.Name = *req.Name
	}
	if req.UserData != nil {
		m.UserData = *req.UserData
	}
	for _, v := range s.Objects("ssh-keys") {
		if k := v.(map[string]any); k["name"] == req.SSHKeyNames[0] {
			m.Extra = map[string]any{"public_key": k["public_key"]}
		}
	}
	s.launch(m)
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"instance_ids": []string{m.ID}}})
	return ""
}

// sortedObjects returns a simulation's objects of a kind ordered by id.
func sortedObjects(s *Sim, kind string) []any {
	objs := s.Objects(kind)
	ids := make([]string, 0, len(objs))
	for id := range objs {
		ids = append(ids, id)
	}
	sortStrings(ids)
	out := make([]any, 0, len(ids))
	for _, id := range ids {
		out = append(out, objs[id])
	}
	return out
}
