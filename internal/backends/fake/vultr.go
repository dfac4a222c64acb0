package fake

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Vultr API v2 (https://www.vultr.com/api/): `Authorization: Bearer <token>`; the simulation's URL is
// the server root (the govultr SDK adds /v2). Errors are {"error": <message>, "status": <code>}.
//
// Calls: GET /v2/ssh-keys (the credential check), GET /v2/plans (?type, per_page, cursor: cloud
// plans; GPU plans have gpu_type and gpu_vram_gb), GET /v2/plans-metal, POST /v2/instances (202
// {"instance"}; region, plan and one of os_id/image_id/app_id/snapshot_id/iso_id required; user_data
// base64), GET/DELETE /v2/instances/{id}, POST /v2/bare-metals (202 {"bare_metal"}),
// GET/DELETE /v2/bare-metals/{id}. A plan has capacity in the regions of its `locations`; a create
// elsewhere is refused as not available. Instances are "pending" with main_ip 0.0.0.0 until active.

type vultrPlan struct {
	id, kind            string // kind: vc2, vcg, vbm
	vcpu, ramMB, diskGB int
	monthly             float64
	gpuType             string
	vramGB              int
	locations           []string
}

var vultrPlans = []vultrPlan{
	{"vc2-2c-4gb", "vc2", 2, 4096, 80, 20, "", 0, []string{"ewr", "ord", "fra"}},
	{"vcg-a16-2c-8g-2vram", "vcg", 2, 8192, 50, 43, "NVIDIA_A16", 2, []string{"ewr"}}, // a fraction of a GPU
	{"vcg-a40-24c-120g-96vram", "vcg", 24, 122880, 1400, 1533, "NVIDIA_A40", 96, []string{"ewr", "fra"}},
	{"vcg-a100-12c-120g-80vram", "vcg", 12, 122880, 1400, 1825, "NVIDIA_A100", 80, []string{"ewr", "lax"}},
	{"vcg-l40s-16c-180g-48vram", "vcg", 16, 184320, 1200, 1226, "NVIDIA_L40S", 48, nil}, // sold out
	{"vbm-112c-2048gb-8-a100-gpu", "vbm", 112, 2097152, 1920, 11680, "", 0, []string{"ewr"}},
	{"vbm-256c-2048gb-8-h100-gpu", "vbm", 256, 2097152, 3840, 17520, "", 0, []string{"lax"}},
}

func vultrErr(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": msg, "status": status})
}

func vultrInstanceJSON(m Machine, metal bool) map[string]any {
	status, power, server, ip := "pending", "stopped", "none", "0.0.0.0"
	switch m.Status {
	case StatusActive:
		status, power, server, ip = "active", "running", "ok", m.IP
	case StatusFailed:
		status, power, server = "active", "stopped", "locked"
	}
	out := map[string]any{"id": m.ID, "os": "Ubuntu 22.04 LTS x64", "os_id": 1743, "plan": m.Type, "main_ip": ip,
		"region": m.Region, "status": status, "power_status": power, "label": m.Name, "tags": m.Tags,
		"date_created": m.Created.UTC().Format(time.RFC3339), "features": []string{}, "netmask_v4": "255.255.254.0",
		"gateway_v4": "0.0.0.0", "v6_network": "", "v6_main_ip": "", "v6_network_size": 0, "app_id": 0, "image_id": "",
		"snapshot_id": "", "user_scheme": "root"}
	var plan vultrPlan
	for _, p := range vultrPlans {
		if p.id == m.Type {
			plan = p
		}
	}
	if metal {
		out["cpu_count"], out["ram"], out["disk"], out["mac_address"] = plan.vcpu, fmt.Sprintf("%d MB", plan.ramMB), fmt.Sprintf("%d GB", plan.diskGB), 0
	} else {
		out["vcpu_count"], out["ram"], out["disk"], out["server_status"], out["internal_ip"] = plan.vcpu, plan.ramMB, plan.diskGB, server, ""
		out["hostname"], out["allowed_bandwidth"], out["kvm"], out["vpc_only"] = m.Name, 1000, "", false
		if m.Status == StatusActive {
			out["internal_ip"] = m.PrivateIP
		}
		if plan.gpuType != "" {
			out["gpu_type"], out["gpu_vram_gb"] = plan.gpuType, plan.vramGB
		}
	}
	return out
}

func init() {
	const good = "SECRETVULTRGOOD7F2Q4K9Z1XW3"
	authed := func(h func(s *Sim, w http.ResponseWriter, r *http.Request) string) func(s *Sim, w http.ResponseWriter, r *http.Request) string {
		return func(s *Sim, w http.ResponseWriter, r *http.Request) string {
			key := bearer(r)
			if !s.credOK("api_key", key) {
				vultrErr(w, http.StatusUnauthorized, "Invalid API token.")
				if key == "" {
					return "no Authorization: Bearer header"
				}
				return ""
			}
			return h(s, w, r)
		}
	}
	get := func(metal bool) func(s *Sim, w http.ResponseWriter, r *http.Request) string {
		return authed(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
			m, ok := s.snapshot(r.PathValue("id"))
			if !ok || m.Status == StatusTerminated || (m.Extra["metal"] == true) != metal {
				vultrErr(w, http.StatusNotFound, map[bool]string{false: "Invalid instance-id.", true: "Invalid bare metal ID."}[metal])
				return ""
			}
			key := map[bool]string{false: "instance", true: "bare_metal"}[metal]
			writeJSON(w, http.StatusOK, map[string]any{key: vultrInstanceJSON(m, metal)})
			return ""
		})
	}
	del := func(metal bool) func(s *Sim, w http.ResponseWriter, r *http.Request) string {
		return authed(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
			id := r.PathValue("id")
			m, ok := s.snapshot(id)
			if !ok || m.Status == StatusTerminated || (m.Extra["metal"] == true) != metal {
				vultrErr(w, http.StatusNotFound, map[bool]string{false: "Invalid instance-id.", true: "Invalid bare metal ID."}[metal])
				return ""
			}
			s.terminate(id)
			w.WriteHeader(http.StatusNoContent)
			return ""
		})
	}
	register("vultr", &provider{
		prefix:       "",
		good:         map[string]any{"regions": []any{"ewr"}, "creds": apiKeyCreds(good)},
		bad:          map[string]any{"regions": []any{"ewr"}, "creds": apiKeyCreds("SECRETVULTRBAD0A8B6C5D4E3F2")},
		failBody:     `{"error":"An internal error occurred.","status":500}`,
		throttleBody: `{"error":"Rate limit reached - please try your request again later.","status":429}`,
		capacity: func(w http.ResponseWriter) {
			vultrErr(w, http.StatusBadRequest, "Unable to create server: Plan is not available in the selected location.")
		},
		notFound: func(w http.ResponseWriter) { vultrErr(w, http.StatusNotFound, "Not found.") },
		newID:    func(s *Sim, _ int) string { return s.uuid() },
		routes: []route{
			{pattern: "GET /v2/ssh-keys", serve: authed(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				writeJSON(w, http.StatusOK, `{"ssh_keys":[{"id":"3b8066a7-b438-455a-9688-44afc9a3597f",`+
					`"date_created":"2020-10-10T01:56:20+00:00","name":"dstack","ssh_key":"ssh-ed25519 AAAA dstack"}],`+
					`"meta":{"total":1,"links":{"next":"","prev":""}}}`)
				return ""
			})},
			{pattern: "GET /v2/plans", serve: authed(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				t := r.URL.Query().Get("type")
				list := []any{}
				for _, p := range vultrPlans {
					if p.kind == "vbm" || (t != "" && t != "all" && t != p.kind) {
						continue
					}
					item := map[string]any{"id": p.id, "vcpu_count": p.vcpu, "ram": p.ramMB, "disk": p.diskGB, "disk_count": 1,
						"bandwidth": 1000, "monthly_cost": p.monthly, "type": p.kind, "locations": nonNil(p.locations)}
					if p.gpuType != "" {
						item["gpu_type"], item["gpu_vram_gb"] = p.gpuType, p.vramGB
					}
					list = append(list, item)
				}
				writeJSON(w, http.StatusOK, map[string]any{"plans": list, "meta": map[string]any{"total": len(list), "links": map[string]any{"next": "", "prev": ""}}})
				return vultrListOptions(r)
			})},
			{pattern: "GET /v2/plans-metal", serve: authed(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				list := []any{}
				for _, p := range vultrPlans {
					if p.kind != "vbm" {
						continue
					}
					list = append(list, map[string]any{"id": p.id, "cpu_count": p.vcpu / 2, "cpu_threads": p.vcpu, "cpu_model": "EPYC",
						"ram": p.ramMB, "disk": p.diskGB / 2, "disk_count": 2, "bandwidth": 10000, "monthly_cost": p.monthly,
						"type": "SSD", "locations": nonNil(p.locations)})
				}
				writeJSON(w, http.StatusOK, map[string]any{"plans_metal": list, "meta": map[string]any{"total": len(list), "links": map[string]any{"next": "", "prev": ""}}})
				return vultrListOptions(r)
			})},
			{pattern: "POST /v2/instances", launch: true, serve: authed(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				return vultrCreate(s, w, r, false)
			})},
			{pattern: "POST /v2/bare-metals", launch: true, serve: authed(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				return vultrCreate(s, w, r, true)
			})},
			{pattern: "GET /v2/instances/{id}", serve: get(false)},
			{pattern: "GET /v2/bare-metals/{id}", serve: get(true)},
			{pattern: "DELETE /v2/instances/{id}", serve: del(false)},
			{pattern: "DELETE /v2/bare-metals/{id}", serve: del(true)},
		},
	})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func vultrListOptions(r *http.Request) string {
	if pp := r.URL.Query().Get("per_page"); pp != "" {
		if n, err := strconv.Atoi(pp); err != nil || n < 1 || n > 500 {
			return "per_page " + pp + " is not 1..500"
		}
	}
	return ""
}

func vultrCreate(s *Sim, w http.ResponseWriter, r *http.Request, metal bool) string {
	var req struct {
		Region       string   `json:"region"`
		Plan         string   `json:"plan"`
		Label        string   `json:"label"`
		Hostname     string   `json:"hostname"`
		Tags         []string `json:"tags"`
		OsID         int      `json:"os_id"`
		ImageID      string   `json:"image_id"`
		AppID        int      `json:"app_id"`
		SnapshotID   string   `json:"snapshot_id"`
		ISOID        string   `json:"iso_id"`
		UserData     string   `json:"user_data"`
		SSHKeys      []string `json:"sshkey_id"`
		EnableIPv6   *bool    `json:"enable_ipv6"`
		ScriptID     string   `json:"script_id"`
		Backups      string   `json:"backups"`
		BlockDevices []any    `json:"block_devices"`
		Activation   *bool    `json:"activation_email"`
		DisablePub   *bool    `json:"disable_public_ipv4"`
		DDOS         *bool    `json:"ddos_protection"`
		UserScheme   string   `json:"user_scheme"`
		MdiskMode    string   `json:"mdisk_mode"`
	}
	if err := readJSON(r, &req, true); err != nil {
		vultrErr(w, http.StatusBadRequest, "Invalid JSON: "+err.Error())
		return "create body: " + err.Error()
	}
	sources := 0
	for _, set := range []bool{req.OsID != 0, req.ImageID != "", req.AppID != 0, req.SnapshotID != "", req.ISOID != ""} {
		if set {
			sources++
		}
	}
	var why string
	switch {
	case req.Region == "":
		why = "Invalid region."
	case req.Plan == "":
		why = "Invalid plan."
	case sources != 1:
		why = "Exactly one of os_id, image_id, app_id, snapshot_id or iso_id is required."
	case len(req.Label) > 255:
		why = "Label too long."
	}
	userData := ""
	if why == "" && req.UserData != "" {
		b, err := base64.StdEncoding.DecodeString(req.UserData)
		if err != nil {
			why = "Invalid user_data: it must be base64."
		}
		userData = string(b)
	}
	if why != "" {
		vultrErr(w, http.StatusBadRequest, why)
		return "create: " + why
	}
	var plan *vultrPlan
	for i := range vultrPlans {
		if vultrPlans[i].id == req.Plan && (vultrPlans[i].kind == "vbm") == metal {
			plan = &vultrPlans[i]
		}
	}
	if plan == nil {
		vultrErr(w, http.StatusBadRequest, "Invalid plan.")
		return ""
	}
	known := map[string]bool{"ewr": true, "ord": true, "lax": true, "fra": true, "nrt": true, "ams": true, "sjc": true}
	if !known[req.Region] {
		vultrErr(w, http.StatusBadRequest, "Invalid region.")
		return ""
	}
	has := false
	for _, l := range plan.locations {
		has = has || l == req.Region
	}
	if !has {
		vultrErr(w, http.StatusBadRequest, "Unable to create server: Plan is not available in the selected location.")
		return ""
	}
	m := &Machine{Name: req.Label, Type: plan.id, Region: req.Region, Tags: req.Tags, UserData: userData,
		Price: plan.monthly / 730, Extra: map[string]any{"metal": metal, "os_id": req.OsID}}
	s.launch(m)
	snap, _ := s.snapshot(m.ID)
	key := map[bool]string{false: "instance", true: "bare_metal"}[metal]
	writeJSON(w, http.StatusAccepted, map[string]any{key: vultrInstanceJSON(snap, metal)})
	return ""
}
