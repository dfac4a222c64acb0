package fake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// Vast.ai REST API v0 (https://console.vast.ai/api/v0, as the vastai CLI calls it): the key travels
// in the api_key query parameter or as `Authorization: Bearer <key>`; errors are
// {"success": false, "error": <code>, "msg": ...}.
//
// Calls: GET /instances (the credential check; the caller's instances), GET /bundles?q=<json>
// (marketplace search: filters {"field": {"gte"|"gt"|"lte"|"lt"|"eq"|"neq"|"in": v}}, "order",
// "limit", "type"), PUT /asks/{id}/ (rent an offer: {"client_id": "me", "image", "disk", "label",
// "env", "onstart", "runtype", "args", ...} → {"success": true, "new_contract": id}; an offer taken
// already answers no_such_ask), GET /instances/{id}/ ({"instances": {...}} or {"instances": null}),
// DELETE /instances/{id}/. Rented offers leave the search until their instance is destroyed.

type vastAsk struct {
	ID          int     `json:"id"`
	MachineID   int     `json:"machine_id"`
	GPUName     string  `json:"gpu_name"`
	NumGPUs     int     `json:"num_gpus"`
	GPURAM      float64 `json:"gpu_ram"` // MB per GPU
	CPUCores    float64 `json:"cpu_cores_effective"`
	CPURAM      float64 `json:"cpu_ram"`    // MB
	DiskSpace   float64 `json:"disk_space"` // GB
	DPHTotal    float64 `json:"dph_total"`
	Geolocation string  `json:"geolocation"`
	Reliability float64 `json:"reliability2"`
	DirectPorts int     `json:"direct_port_count"`
	CUDAMaxGood float64 `json:"cuda_max_good"`
	Verified    bool    `json:"verified"`
	Rentable    bool    `json:"rentable"`
	Rented      bool    `json:"rented"`
	InetDown    float64 `json:"inet_down"`
	ComputeCap  int     `json:"compute_cap"`
}

// vastAsks is the marketplace; some offers fail dstack's filters (reliability, ports, CUDA,
// verification) so that the search's filters matter.
var vastAsks = []vastAsk{
	{1001, 501, "RTX 3090", 1, 24576, 8, 32768, 200, 0.18, "Texas, US", 0.99, 10, 12.4, true, true, false, 800, 860},
	{1002, 502, "RTX 4090", 1, 24564, 16, 65536, 400, 0.35, "Quebec, CA", 0.98, 20, 12.4, true, true, false, 900, 890},
	{1003, 503, "RTX 4090", 2, 24564, 32, 131072, 800, 0.69, "Norway, NO", 0.995, 40, 12.2, true, true, false, 1000, 890},
	{1004, 504, "A100 SXM4", 1, 81920, 30, 225280, 500, 1.10, "Utah, US", 0.97, 12, 12.2, true, true, false, 2000, 800},
	{1005, 505, "H100 SXM", 8, 81559, 192, 2064384, 2000, 17.6, "Finland, FI", 0.99, 100, 12.4, true, true, false, 5000, 900},
	{1006, 506, "RTX 3060", 1, 12288, 4, 16384, 50, 0.06, "Poland, PL", 0.70, 5, 12.2, true, true, false, 300, 860},    // unreliable
	{1007, 507, "RTX 3080", 1, 10240, 8, 32768, 100, 0.09, "Spain, ES", 0.99, 0, 12.2, true, true, false, 500, 860},    // no open ports
	{1008, 508, "RTX A6000", 1, 49140, 16, 65536, 300, 0.40, "Oregon, US", 0.98, 8, 11.8, true, true, false, 700, 860}, // old CUDA
	{1009, 509, "RTX 4080", 1, 16376, 12, 32768, 200, 0.20, "Texas, US", 0.99, 6, 12.4, false, true, false, 700, 890},  // unverified
}

var vastFields = map[string]bool{}

func init() {
	b, _ := json.Marshal(vastAsk{})
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	for k := range m {
		vastFields[k] = true
	}
	vastFields["type"], vastFields["order"], vastFields["limit"], vastFields["allocated_storage"] = true, true, true, true
}

// vastRentedAsks returns the ask ids of the machines alive: those offers are taken.
func vastRentedAsks(s *Sim) map[int]bool {
	out := map[int]bool{}
	for _, m := range s.list(func(m *Machine) bool { return m.Status != StatusTerminated }) {
		if id, ok := m.Extra["ask_id"].(int); ok {
			out[id] = true
		}
	}
	return out
}

func vastAuth(s *Sim, w http.ResponseWriter, r *http.Request) (bool, string) {
	q, b := r.URL.Query().Get("api_key"), bearer(r)
	key := q
	if key == "" {
		key = b
	}
	if !s.credOK("api_key", key) || (q != "" && b != "" && q != b) {
		writeJSON(w, http.StatusUnauthorized, `{"success":false,"error":"invalid_user_key","msg":"Invalid user key"}`)
		if key == "" {
			return false, "no api_key query parameter nor bearer token"
		}
		return false, ""
	}
	return true, ""
}

func vastInstanceJSON(m Machine) map[string]any {
	status := map[string]any{StatusBooting: "loading", StatusActive: "running", StatusFailed: "exited"}[m.Status]
	out := map[string]any{"id": m.ID, "label": m.Name, "actual_status": status, "intended_status": "running",
		"cur_state": "running", "image_uuid": m.Image, "num_gpus": m.GPUs, "dph_total": m.Price, "geolocation": m.Region,
		"gpu_name": m.Type, "ssh_host": nil, "ssh_port": nil, "public_ipaddr": nil, "ports": map[string]any{}}
	if m.Status == StatusActive {
		ports := map[string]any{}
		for priv, pub := range m.Ports {
			ports[fmt.Sprintf("%d/tcp", priv)] = []any{map[string]any{"HostIp": "0.0.0.0", "HostPort": strconv.Itoa(pub)}}
		}
		out["ports"], out["public_ipaddr"] = ports, m.IP
		out["ssh_host"], out["ssh_port"] = "ssh"+m.ID[len(m.ID)-1:]+".vast.ai", 10000+len(m.ID)
	}
	return out
}

func init() {
	const good = "secret_vastai_good_c0ffee42"
	authed := func(h func(s *Sim, w http.ResponseWriter, r *http.Request) string) func(s *Sim, w http.ResponseWriter, r *http.Request) string {
		return func(s *Sim, w http.ResponseWriter, r *http.Request) string {
			if ok, why := vastAuth(s, w, r); !ok {
				return why
			}
			return h(s, w, r)
		}
	}
	getInstance := authed(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
		m, ok := s.snapshot(r.PathValue("id"))
		if !ok || m.Status == StatusTerminated {
			writeJSON(w, http.StatusOK, `{"instances":null}`)
			return ""
		}
		writeJSON(w, http.StatusOK, map[string]any{"instances": vastInstanceJSON(m)})
		return ""
	})
	deleteInstance := authed(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
		id := r.PathValue("id")
		m, ok := s.snapshot(id)
		if !ok || m.Status == StatusTerminated {
			writeJSON(w, http.StatusNotFound, `{"success":false,"error":"no_such_instance","msg":"Instance not found."}`)
			return ""
		}
		s.terminate(id)
		writeJSON(w, http.StatusOK, `{"success":true}`)
		return ""
	})
	search := authed(vastSearch)
	register("vastai", &provider{
		prefix:       "/api/v0",
		good:         map[string]any{"creds": apiKeyCreds(good)},
		bad:          map[string]any{"creds": apiKeyCreds("secret_vastai_bad_deadbeef")},
		failBody:     `{"success":false,"error":"server_error","msg":"Internal server error"}`,
		throttleBody: `{"success":false,"error":"rate_limited","msg":"API requests too frequent, please slow down."}`,
		capacity: func(w http.ResponseWriter) {
			writeJSON(w, http.StatusBadRequest, `{"success":false,"error":"no_such_ask","msg":"Instance type no longer available."}`)
		},
		notFound: func(w http.ResponseWriter) {
			writeJSON(w, http.StatusNotFound, `{"success":false,"error":"not_found","msg":"Not found."}`)
		},
		newID:     func(s *Sim, n int) string { return strconv.Itoa(7000000 + n) },
		container: true,
		routes: []route{
			{pattern: "GET /api/v0/instances", serve: authed(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				list := []any{}
				for _, m := range s.list(func(m *Machine) bool { return m.Status != StatusTerminated }) {
					list = append(list, vastInstanceJSON(m))
				}
				writeJSON(w, http.StatusOK, map[string]any{"instances": list})
				return ""
			})},
			{pattern: "GET /api/v0/bundles", serve: search},
			{pattern: "GET /api/v0/bundles/", serve: search},
			{pattern: "PUT /api/v0/asks/{id}/", launch: true, serve: authed(vastRent)},
			{pattern: "GET /api/v0/instances/{id}/", serve: getInstance},
			{pattern: "DELETE /api/v0/instances/{id}/", serve: deleteInstance},
		},
	})
}

func vastSearch(s *Sim, w http.ResponseWriter, r *http.Request) string {
	raw := r.URL.Query().Get("q")
	var q map[string]any
	if raw == "" || json.Unmarshal([]byte(raw), &q) != nil {
		writeJSON(w, http.StatusBadRequest, `{"success":false,"error":"invalid_args","msg":"q must be a JSON search query"}`)
		return "bundles without a JSON q"
	}
	var why string
	match := func(a vastAsk) bool {
		b, _ := json.Marshal(a)
		var fields map[string]any
		_ = json.Unmarshal(b, &fields)
		for k, cond := range q {
			if k == "type" || k == "order" || k == "limit" || k == "allocated_storage" {
				continue
			}
			if !vastFields[k] {
				why = "unknown search field " + k
				continue
			}
			ops, ok := cond.(map[string]any)
			if !ok {
				why = fmt.Sprintf("search field %s: %v is not {op: value}", k, cond)
				continue
			}
			for op, want := range ops {
				if !vastCompare(fields[k], op, want) {
					return false
				}
			}
		}
		return true
	}
	rented := vastRentedAsks(s)
	offers := []vastAsk{}
	for _, a := range vastAsks {
		if rented[a.ID] {
			a.Rented, a.Rentable = true, false
		}
		if match(a) {
			offers = append(offers, a)
		}
	}
	sort.SliceStable(offers, func(i, j int) bool { return offers[i].DPHTotal < offers[j].DPHTotal })
	if l, ok := q["limit"].(float64); ok && int(l) < len(offers) {
		offers = offers[:int(l)]
	}
	writeJSON(w, http.StatusOK, map[string]any{"offers": offers})
	return why
}

func vastCompare(have any, op string, want any) bool {
	switch op {
	case "eq":
		return fmt.Sprint(have) == fmt.Sprint(want)
	case "neq":
		return fmt.Sprint(have) != fmt.Sprint(want)
	case "in":
		list, _ := want.([]any)
		for _, x := range list {
			if fmt.Sprint(have) == fmt.Sprint(x) {
				return true
			}
		}
		return false
	}
	h, ok1 := have.(float64)
	v, ok2 := want.(float64)
	if !ok1 || !ok2 {
		return false
	}
	switch op {
	case "gte":
		return h >= v
	case "gt":
		return h > v
	case "lte":
		return h <= v
	case "lt":
		return h < v
	}
	return false
}

func vastRent(s *Sim, w http.ResponseWriter, r *http.Request) string {
	askID, err := strconv.Atoi(r.PathValue("id"))
	var req struct {
		ClientID   string            `json:"client_id"`
		Image      string            `json:"image"`
		Disk       float64           `json:"disk"`
		Label      string            `json:"label"`
		Env        map[string]string `json:"env"`
		Onstart    *string           `json:"onstart"`
		Runtype    string            `json:"runtype"`
		Args       []string          `json:"args"`
		ImageLogin *string           `json:"image_login"`
		Price      *float64          `json:"price"`
		Python     *bool             `json:"python_utf8"`
		Lang       *bool             `json:"lang_utf8"`
		Jupyter    *bool             `json:"use_jupyter_lab"`
		JupyterD   *string           `json:"jupyter_dir"`
		Force      *bool             `json:"force"`
		Cancel     *bool             `json:"cancel_unavail"`
	}
	if decErr := readJSON(r, &req, true); err != nil || decErr != nil {
		writeJSON(w, http.StatusBadRequest, `{"success":false,"error":"invalid_args","msg":"Invalid request."}`)
		return fmt.Sprintf("rent: ask id %q or body invalid: %v", r.PathValue("id"), decErr)
	}
	var why string
	switch {
	case req.ClientID != "me":
		why = "client_id must be \"me\""
	case req.Image == "":
		why = "image is required"
	case req.Disk <= 0:
		why = "disk must be a positive number of GB"
	case req.Runtype != "" && req.Runtype != "ssh" && req.Runtype != "jupyter" && req.Runtype != "args" && req.Runtype != "ssh_direc ssh_proxy":
		why = "runtype " + req.Runtype + " is not ssh, jupyter or args"
	case req.Runtype == "args" && len(req.Args) == 0 && req.Onstart == nil:
		why = "runtype args without args"
	}
	if why != "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "error": "invalid_args", "msg": why})
		return "rent: " + why
	}
	var ask *vastAsk
	for i := range vastAsks {
		if vastAsks[i].ID == askID {
			ask = &vastAsks[i]
		}
	}
	if ask == nil {
		writeJSON(w, http.StatusBadRequest, `{"success":false,"error":"no_such_ask","msg":"Instance type no longer available."}`)
		return ""
	}
	if req.Disk > ask.DiskSpace {
		writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "error": "invalid_args",
			"msg": fmt.Sprintf("Requested disk %.0f GB exceeds the %.0f GB available.", req.Disk, ask.DiskSpace)})
		return ""
	}
	s.launchMu.Lock()
	defer s.launchMu.Unlock()
	if vastRentedAsks(s)[askID] {
		writeJSON(w, http.StatusBadRequest, `{"success":false,"error":"no_such_ask","msg":"Instance type no longer available."}`)
		return ""
	}
	env := map[string]string{}
	ports := []string{}
	for k, v := range req.Env {
		if strings.HasPrefix(k, "-p ") {
			ports = append(ports, strings.TrimPrefix(k, "-p "))
			continue
		}
		env[k] = v
	}
	cmd := ""
	if req.Onstart != nil {
		cmd = *req.Onstart
	}
	if len(req.Args) > 0 {
		cmd = strings.Join(req.Args, " ")
	}
	m := &Machine{Name: req.Label, Type: ask.GPUName, Region: ask.Geolocation, GPUs: ask.NumGPUs, Price: ask.DPHTotal,
		Image: req.Image, Command: cmd, Env: env, Extra: map[string]any{"ask_id": askID, "disk_gb": req.Disk, "ports": ports,
			"args": req.Args, "runtype": req.Runtype}}
	s.launch(m)
	id, _ := strconv.Atoi(m.ID)
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "new_contract": id})
	return ""
}
