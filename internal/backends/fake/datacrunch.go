package fake

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"
)

// DataCrunch (Verda) public API v1 (https://api.datacrunch.io/v1, "DataCrunch Public API" document):
// POST /oauth2/token with the JSON body {"grant_type": "client_credentials", "client_id",
// "client_secret"} gives a bearer token for every other call; a refused client gets 401
// {"code": "unauthorized_request", "message"}. Errors are {"code", "message"}.
//
// Calls: GET /instance-availability (?is_spot: [{"location_code", "availabilities": [types]}]),
// GET /instance-availability/{type} (?is_spot, location_code: true|false), GET/POST /sshkeys
// (POST answers the new id as text), DELETE /sshkeys/{id}, POST /scripts (id as text),
// DELETE /scripts/{id}, POST /instances (deploy: instance_type, image, hostname, description,
// location_code, ssh_key_ids, startup_script_id, os_volume {name, size}, is_spot; the id as text),
// GET /instances/{id}, PUT /instances {"action": "delete", "id"}. A type without availability in the
// location is refused as out of stock.

type dcType struct {
	name                 string
	cpu, mem, gpus       int
	gpuName              string
	gpuMem               int
	price, spotPrice     float64
	available, spotAvail []string // locations with capacity
	listed               []string // locations in the catalog
}

var dcTypes = []dcType{
	{"CPU.4V.16G", 4, 16, 0, "", 0, 0.0279, 0.0098, []string{"FIN-01", "FIN-02"}, []string{"FIN-01"}, []string{"FIN-01", "FIN-02", "FIN-03"}},
	{"1V100.6V", 6, 23, 1, "V100", 16, 0.1381, 0.0486, []string{"FIN-01"}, nil, []string{"FIN-01", "FIN-02"}},
	{"1A100.22V", 22, 120, 1, "A100", 80, 1.29, 0.4515, []string{"FIN-01"}, []string{"FIN-01", "FIN-03"}, []string{"FIN-01", "FIN-03"}},
	{"1H100.80S.32V", 32, 185, 1, "H100", 80, 2.29, 0.8015, []string{"FIN-02"}, []string{"FIN-02"}, []string{"FIN-02"}},
	{"8H100.80S.176V", 176, 1480, 8, "H100", 80, 18.32, 6.412, nil, nil, []string{"FIN-02", "FIN-03"}},
}

func dcErr(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"code": code, "message": msg})
}

func dcText(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(text))
}

func dcHas(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func dcInstanceJSON(m Machine) map[string]any {
	status := map[string]string{StatusBooting: "provisioning", StatusActive: "running", StatusFailed: "error"}[m.Status]
	out := map[string]any{"id": m.ID, "instance_type": m.Type, "image": m.Image, "hostname": m.Name,
		"description": m.Extra["description"], "status": status, "location": m.Region, "is_spot": m.Spot,
		"price_per_hour": m.Price, "ssh_key_ids": m.SSHKeys, "created_at": m.Created.UTC().Format(time.RFC3339),
		"os_volume_id": m.Extra["os_volume_id"], "ip": nil}
	if m.Status == StatusActive {
		out["ip"] = m.IP
	}
	return out
}

func init() {
	const goodID, goodSecret = "secret_dc_good_id_1f2e", "secret_dc_good_secret_3d4c"
	authed := func(h func(s *Sim, w http.ResponseWriter, r *http.Request) string) func(s *Sim, w http.ResponseWriter, r *http.Request) string {
		return func(s *Sim, w http.ResponseWriter, r *http.Request) string {
			tok := bearer(r)
			if _, ok := s.Objects("tokens")[tok]; !ok || tok == "" {
				dcErr(w, http.StatusUnauthorized, "unauthorized_request", "Access token is missing, invalid or expired")
				if tok == "" {
					return "no Authorization: Bearer header"
				}
				return ""
			}
			return h(s, w, r)
		}
	}
	jsonBody := func(r *http.Request, v any) string {
		if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
			return "Content-Type " + r.Header.Get("Content-Type") + ", want application/json"
		}
		if err := readJSON(r, v, true); err != nil {
			return "body: " + err.Error()
		}
		return ""
	}
	register("datacrunch", &provider{
		prefix: "/v1",
		good: map[string]any{"regions": []any{"FIN-01"}, "creds": map[string]any{"type": "api_key",
			"client_id": goodID, "client_secret": goodSecret}},
		bad: map[string]any{"regions": []any{"FIN-01"}, "creds": map[string]any{"type": "api_key",
			"client_id": "secret_dc_bad_id_5b6a", "client_secret": "secret_dc_bad_secret_7987"}},
		failBody:     `{"code":"internal_error","message":"Internal server error"}`,
		throttleBody: `{"code":"too_many_requests","message":"Too many requests, please try again later"}`,
		capacity: func(w http.ResponseWriter) {
			dcErr(w, http.StatusBadRequest, "insufficient_resources", "Not enough resources are available to deploy this instance type in this location")
		},
		notFound: func(w http.ResponseWriter) { dcErr(w, http.StatusNotFound, "not_found", "Not found") },
		newID:    func(s *Sim, _ int) string { return s.uuid() },
		catalog: func() []catalogRow {
			var rows []catalogRow
			for _, t := range dcTypes {
				for _, loc := range t.listed {
					r := catalogRow{name: t.name, location: loc, price: t.price, cpu: t.cpu, memory: t.mem, gpus: t.gpus,
						gpuName: t.gpuName, gpuMem: float64(t.gpuMem)}
					rows = append(rows, r)
					r.spot, r.price = true, t.spotPrice
					rows = append(rows, r)
				}
			}
			return rows
		},
		routes: []route{
			{pattern: "POST /v1/oauth2/token", serve: func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
					dcErr(w, http.StatusBadRequest, "invalid_request", "Content-Type must be application/json")
					return "Content-Type " + r.Header.Get("Content-Type") + ", want application/json"
				}
				var req struct {
					GrantType    string `json:"grant_type"`
					ClientID     string `json:"client_id"`
					ClientSecret string `json:"client_secret"`
					RefreshToken string `json:"refresh_token"`
				}
				if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.GrantType != "client_credentials" {
					dcErr(w, http.StatusBadRequest, "invalid_request", "grant_type must be client_credentials")
					return "body is not a client_credentials grant"
				}
				if req.ClientID == "" || req.ClientSecret == "" {
					dcErr(w, http.StatusBadRequest, "invalid_request", "client_id and client_secret are required")
					return "no client_id or client_secret"
				}
				if !s.credOK("client_id", req.ClientID) || !s.credOK("client_secret", req.ClientSecret) {
					dcErr(w, http.StatusUnauthorized, "unauthorized_request", "Invalid client credentials")
					return ""
				}
				tok := "dc_" + s.hexID(40)
				s.putObject("tokens", tok, true)
				writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "refresh_token": "dc_r_" + s.hexID(40),
					"scope": "cloud-api-v1", "token_type": "Bearer", "expires_in": 3600})
				return ""
			}},
			{pattern: "GET /v1/instance-availability", serve: authed(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				spot, why := dcSpot(r)
				byLoc := map[string][]string{}
				for _, t := range dcTypes {
					locs := t.available
					if spot {
						locs = t.spotAvail
					}
					for _, l := range locs {
						byLoc[l] = append(byLoc[l], t.name)
					}
				}
				out := []any{}
				for _, l := range []string{"FIN-01", "FIN-02", "FIN-03", "ICE-01"} {
					out = append(out, map[string]any{"location_code": l, "availabilities": nonNil(byLoc[l])})
				}
				writeJSON(w, http.StatusOK, out)
				return why
			})},
			{pattern: "GET /v1/instance-availability/{type}", serve: authed(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				spot, why := dcSpot(r)
				loc := r.URL.Query().Get("location_code")
				ok := false
				for _, t := range dcTypes {
					if t.name == r.PathValue("type") {
						locs := t.available
						if spot {
							locs = t.spotAvail
						}
						ok = loc == "" && len(locs) > 0 || dcHas(locs, loc)
					}
				}
				writeJSON(w, http.StatusOK, ok)
				return why
			})},
			{pattern: "GET /v1/sshkeys", serve: authed(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				writeJSON(w, http.StatusOK, nonNilAny(sortedObjects(s, "ssh-keys")))
				return ""
			})},
			{pattern: "POST /v1/sshkeys", serve: authed(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				var req struct {
					Name string `json:"name"`
					Key  string `json:"key"`
				}
				if why := jsonBody(r, &req); why != "" || req.Name == "" || !strings.HasPrefix(req.Key, "ssh-") && !strings.HasPrefix(req.Key, "ecdsa-") {
					dcErr(w, http.StatusBadRequest, "invalid_request", "name and a valid public key are required")
					return "sshkeys: " + why + " (name and an OpenSSH key are required)"
				}
				id := s.uuid()
				s.putObject("ssh-keys", id, map[string]any{"id": id, "name": req.Name, "key": req.Key})
				dcText(w, http.StatusCreated, id)
				return ""
			})},
			{pattern: "DELETE /v1/sshkeys/{id}", serve: authed(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				if !s.deleteObject("ssh-keys", r.PathValue("id")) {
					dcErr(w, http.StatusNotFound, "not_found", "SSH key not found")
					return ""
				}
				w.WriteHeader(http.StatusOK)
				return ""
			})},
			{pattern: "POST /v1/scripts", serve: authed(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				var req struct {
					Name   string `json:"name"`
					Script string `json:"script"`
				}
				if why := jsonBody(r, &req); why != "" || req.Name == "" || !strings.HasPrefix(req.Script, "#!") {
					dcErr(w, http.StatusBadRequest, "invalid_request", "name and a script starting with #! are required")
					return "scripts: " + why + " (name and a #! script are required)"
				}
				id := s.uuid()
				s.putObject("scripts", id, map[string]any{"id": id, "name": req.Name, "script": req.Script})
				dcText(w, http.StatusCreated, id)
				return ""
			})},
			{pattern: "DELETE /v1/scripts/{id}", serve: authed(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				if !s.deleteObject("scripts", r.PathValue("id")) {
					dcErr(w, http.StatusNotFound, "not_found", "Startup script not found")
					return ""
				}
				w.WriteHeader(http.StatusOK)
				return ""
			})},
			{pattern: "POST /v1/instances", launch: true, serve: authed(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				var req struct {
					InstanceType    string   `json:"instance_type"`
					Image           string   `json:"image"`
					Hostname        string   `json:"hostname"`
					Description     string   `json:"description"`
					LocationCode    string   `json:"location_code"`
					SSHKeyIDs       []string `json:"ssh_key_ids"`
					StartupScriptID string   `json:"startup_script_id"`
					OSVolume        *struct {
						Name string `json:"name"`
						Size int    `json:"size"`
					} `json:"os_volume"`
					IsSpot          bool     `json:"is_spot"`
					Contract        string   `json:"contract"`
					Pricing         string   `json:"pricing"`
					Coupon          string   `json:"coupon"`
					Volumes         []any    `json:"volumes"`
					ExistingVolumes []string `json:"existing_volumes"`
				}
				if why := jsonBody(r, &req); why != "" {
					dcErr(w, http.StatusBadRequest, "invalid_request", why)
					return "deploy: " + why
				}
				var why string
				switch {
				case req.InstanceType == "" || req.Image == "" || req.Hostname == "" || req.Description == "":
					why = "instance_type, image, hostname and description are required"
				case len(req.Hostname) > 60:
					why = "hostname is longer than 60 characters"
				case req.OSVolume != nil && req.OSVolume.Size < 50:
					why = "os_volume.size must be at least 50 GB"
				}
				if why != "" {
					dcErr(w, http.StatusBadRequest, "invalid_request", why)
					return "deploy: " + why
				}
				keys := s.Objects("ssh-keys")
				for _, k := range req.SSHKeyIDs {
					if _, ok := keys[k]; !ok {
						dcErr(w, http.StatusBadRequest, "invalid_request", "SSH key "+k+" does not exist")
						return ""
					}
				}
				script := ""
				if req.StartupScriptID != "" {
					sc, ok := s.Objects("scripts")[req.StartupScriptID]
					if !ok {
						dcErr(w, http.StatusBadRequest, "invalid_request", "Startup script "+req.StartupScriptID+" does not exist")
						return ""
					}
					script, _ = sc.(map[string]any)["script"].(string)
				}
				var typ *dcType
				for i := range dcTypes {
					if dcTypes[i].name == req.InstanceType {
						typ = &dcTypes[i]
					}
				}
				if typ == nil {
					dcErr(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("Invalid instance type %s", req.InstanceType))
					return ""
				}
				loc := req.LocationCode
				if loc == "" {
					loc = "FIN-01"
				}
				avail, price := typ.available, typ.price
				if req.IsSpot {
					avail, price = typ.spotAvail, typ.spotPrice
				}
				if !dcHas(avail, loc) {
					dcErr(w, http.StatusBadRequest, "insufficient_resources", "Not enough resources are available to deploy this instance type in this location")
					return ""
				}
				m := &Machine{Name: req.Hostname, Type: typ.name, Region: loc, Spot: req.IsSpot, Price: price, GPUs: typ.gpus,
					Image: req.Image, UserData: script, SSHKeys: req.SSHKeyIDs,
					Extra: map[string]any{"description": req.Description, "os_volume_id": s.uuid()}}
				s.launch(m)
				dcText(w, http.StatusAccepted, m.ID)
				return ""
			})},
			{pattern: "GET /v1/instances/{id}", serve: authed(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				m, ok := s.snapshot(r.PathValue("id"))
				if !ok || m.Status == StatusTerminated {
					dcErr(w, http.StatusNotFound, "not_found", "Instance not found")
					return ""
				}
				writeJSON(w, http.StatusOK, dcInstanceJSON(m))
				return ""
			})},
			{pattern: "PUT /v1/instances", serve: authed(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				var req struct {
					Action    string   `json:"action"`
					ID        any      `json:"id"`
					VolumeIDs []string `json:"volume_ids"`
				}
				if why := jsonBody(r, &req); why != "" {
					dcErr(w, http.StatusBadRequest, "invalid_request", why)
					return "action: " + why
				}
				var ids []string
				switch v := req.ID.(type) {
				case string:
					ids = []string{v}
				case []any:
					for _, x := range v {
						if s, ok := x.(string); ok {
							ids = append(ids, s)
						}
					}
				}
				switch req.Action {
				case "boot", "start", "shutdown", "delete", "discontinue", "hibernate", "restore":
				default:
					dcErr(w, http.StatusBadRequest, "invalid_request", "Invalid action "+req.Action)
					return "unknown action " + req.Action
				}
				if len(ids) == 0 {
					dcErr(w, http.StatusBadRequest, "invalid_request", "id is required")
					return "action without id"
				}
				for _, id := range ids {
					if m, ok := s.snapshot(id); !ok || m.Status == StatusTerminated {
						dcErr(w, http.StatusNotFound, "not_found", "Instance "+id+" not found")
						return ""
					}
				}
				if req.Action == "delete" || req.Action == "discontinue" {
					for _, id := range ids {
						s.terminate(id)
					}
				}
				w.WriteHeader(http.StatusAccepted)
				return ""
			})},
		},
	})
}

func dcSpot(r *http.Request) (bool, string) {
	switch v := r.URL.Query().Get("is_spot"); v {
	case "", "false":
		return false, ""
	case "true":
		return true, ""
	default:
		return false, "is_spot " + v + " is not true or false"
	}
}

func nonNilAny(s []any) []any {
	if s == nil {
		return []any{}
	}
	return s
}
