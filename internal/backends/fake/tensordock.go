package fake

import (
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// TensorDock Marketplace API v0 (https://marketplace.tensordock.com/api/v0, "TensorDock Marketplace
// API" documentation): calls that act on the account take the form fields api_key and api_token;
// answers are {"success": true, ...} or, with HTTP 200 too, {"success": false, "error"}.
//
// Calls: POST /auth/test (the credential check), GET /client/deploy/hostnodes (public: hostnodes
// with their free GPUs, vCPUs, RAM and storage and prices), POST /client/deploy/single (form:
// hostnode, gpu_model, gpu_count, vcpus, ram, storage, operating_system, name, password,
// external_ports, internal_ports, cloudinit_script → {"success", "server", "ip", "port_forwards"}),
// POST /client/get/single (server → {"virtualmachines": {...}}), POST /client/delete/single. A VM
// larger than what the hostnode has free is refused ("Not enough resources").

type tdGPU struct {
	model  string
	amount int
	price  float64
}

type tdHost struct {
	id, country, city  string
	gpus               []tdGPU
	cpu, ram, storage  int
	cpuPrice, ramPrice float64
	storagePrice       float64
	online             bool
}

var tdHosts = []tdHost{
	{"1b6a3e1c-8c2a-4b44-9a1a-7f0e2d6b9c01", "United States", "Orlando", []tdGPU{{"geforcertx4090-pcie-24gb", 4, 0.35}}, 64, 256, 2000, 0.003, 0.002, 0.00005, true},
	{"2c7b4f2d-9d3b-4c55-8b2b-8a1f3e7c0d12", "Canada", "Montreal", []tdGPU{{"a100-pcie-80gb", 2, 1.2}, {"rtxa6000-pcie-48gb", 2, 0.45}}, 48, 384, 4000, 0.003, 0.002, 0.00005, true},
	{"3d8c5a3e-0e4c-4d66-9c3c-9b2a4f8d1e23", "Germany", "Frankfurt", []tdGPU{{"h100-sxm5-80gb", 8, 2.25}}, 128, 1024, 8000, 0.003, 0.002, 0.00005, false}, // offline
}

var tdPorts = regexp.MustCompile(`^\{\d+(,\s*\d+)*\}$`)

var tdGPUModel = regexp.MustCompile(`^[a-z0-9]+-(pcie|sxm[0-9]?)-[0-9]+gb$`)

func tdFail(w http.ResponseWriter, msg string) {
	writeJSON(w, http.StatusOK, map[string]any{"success": false, "error": msg})
}

// tdUsed sums what the VMs alive take from each hostnode: GPUs per model, vCPUs, RAM.
func tdUsed(s *Sim) map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, m := range s.list(func(m *Machine) bool { return m.Status != StatusTerminated }) {
		host := m.Extra["hostnode"].(string)
		if out[host] == nil {
			out[host] = map[string]int{}
		}
		out[host]["gpu:"+m.Type] += m.GPUs
		out[host]["cpu"] += m.Extra["vcpus"].(int)
		out[host]["ram"] += m.Extra["ram"].(int)
	}
	return out
}

func tdVMJSON(m Machine) map[string]any {
	status := map[string]string{StatusBooting: "Starting", StatusActive: "Running", StatusFailed: "Failed"}[m.Status]
	vm := map[string]any{"name": m.Name, "status": status, "ip": "", "port_forwards": map[string]string{},
		"hostnode": m.Extra["hostnode"], "gpu_model": m.Type, "gpu_count": m.GPUs}
	if m.Status == StatusActive {
		forwards := map[string]string{}
		for priv, pub := range m.Ports {
			forwards[strconv.Itoa(priv)] = strconv.Itoa(pub)
		}
		if len(forwards) == 0 {
			forwards["22"] = strconv.Itoa(m.SSHPort)
		}
		vm["ip"], vm["port_forwards"] = m.IP, forwards
	}
	return vm
}

func init() {
	const goodKey, goodToken = "secret_td_good_key_41aa", "secret_td_good_token_93bb"
	// form parses the form and checks the credentials; on refusal it has answered.
	form := func(h func(s *Sim, w http.ResponseWriter, r *http.Request) string) func(s *Sim, w http.ResponseWriter, r *http.Request) string {
		return func(s *Sim, w http.ResponseWriter, r *http.Request) string {
			ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if ct != "application/x-www-form-urlencoded" && ct != "multipart/form-data" {
				tdFail(w, "Missing api_key or api_token")
				return "Content-Type " + r.Header.Get("Content-Type") + ", want a form"
			}
			key, token := r.PostFormValue("api_key"), r.PostFormValue("api_token")
			if key == "" || token == "" {
				tdFail(w, "Missing api_key or api_token")
				return "form lacks api_key or api_token"
			}
			if !s.credOK("api_key", key) || !s.credOK("api_token", token) {
				tdFail(w, "Invalid authorization key or token")
				return ""
			}
			return h(s, w, r)
		}
	}
	register("tensordock", &provider{
		prefix: "/api/v0",
		good: map[string]any{"creds": map[string]any{"type": "api_key",
			"api_key": goodKey, "api_token": goodToken}},
		bad: map[string]any{"creds": map[string]any{"type": "api_key",
			"api_key": "secret_td_bad_key_07cc", "api_token": "secret_td_bad_token_58dd"}},
		failBody:     `{"success":false,"error":"Internal server error"}`,
		throttleBody: `{"success":false,"error":"Too many requests, please slow down"}`,
		capacity: func(w http.ResponseWriter) {
			tdFail(w, "Not enough resources available on this hostnode")
		},
		notFound: func(w http.ResponseWriter) {
			writeJSON(w, http.StatusNotFound, `{"success":false,"error":"Not found"}`)
		},
		newID: func(s *Sim, _ int) string { return s.uuid() },
		routes: []route{
			{pattern: "POST /api/v0/auth/test", serve: form(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				writeJSON(w, http.StatusOK, `{"success":true}`)
				return ""
			})},
			{pattern: "GET /api/v0/client/deploy/hostnodes", serve: func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				used := tdUsed(s)
				nodes := map[string]any{}
				for _, h := range tdHosts {
					u := used[h.id]
					gpus := map[string]any{}
					for _, g := range h.gpus {
						gpus[g.model] = map[string]any{"amount": g.amount - u["gpu:"+g.model], "price": g.price}
					}
					nodes[h.id] = map[string]any{
						"location": map[string]any{"country": h.country, "city": h.city, "region": h.city},
						"specs": map[string]any{"cpu": map[string]any{"amount": h.cpu - u["cpu"], "price": h.cpuPrice, "type": "EPYC"},
							"ram": map[string]any{"amount": h.ram - u["ram"], "price": h.ramPrice}, "storage": map[string]any{"amount": h.storage, "price": h.storagePrice},
							"gpu": gpus},
						"status":     map[string]any{"online": h.online, "reserved": false},
						"networking": map[string]any{"ports": []int{20000, 20001, 20002}, "receive": 1000, "send": 1000},
					}
				}
				writeJSON(w, http.StatusOK, map[string]any{"success": true, "hostnodes": nodes})
				return ""
			}},
			{pattern: "POST /api/v0/client/deploy/single", launch: true, serve: form(tdDeploy)},
			{pattern: "POST /api/v0/client/get/single", serve: form(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				id := r.PostFormValue("server")
				m, ok := s.snapshot(id)
				if id == "" || !ok || m.Status == StatusTerminated {
					tdFail(w, "No virtual machine found with that id")
					if id == "" {
						return "get without server"
					}
					return ""
				}
				writeJSON(w, http.StatusOK, map[string]any{"success": true, "virtualmachines": tdVMJSON(m)})
				return ""
			})},
			{pattern: "POST /api/v0/client/delete/single", serve: form(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				id := r.PostFormValue("server")
				m, ok := s.snapshot(id)
				if id == "" || !ok || m.Status == StatusTerminated {
					tdFail(w, "No virtual machine found with that id")
					if id == "" {
						return "delete without server"
					}
					return ""
				}
				s.terminate(id)
				writeJSON(w, http.StatusOK, `{"success":true}`)
				return ""
			})},
		},
	})
}

func tdDeploy(s *Sim, w http.ResponseWriter, r *http.Request) string {
	f := r.PostFormValue
	atoi := func(k string) int {
		n, err := strconv.Atoi(f(k))
		if err != nil {
			return -1
		}
		return n
	}
	var why string
	gpuCount, vcpus, ram, storage := atoi("gpu_count"), atoi("vcpus"), atoi("ram"), atoi("storage")
	switch {
	case f("hostnode") == "" || f("name") == "" || f("operating_system") == "" || f("password") == "":
		why = "hostnode, name, operating_system and password are required"
	case gpuCount < 0 || vcpus < 1 || ram < 1 || storage < 20:
		why = "gpu_count, vcpus, ram and storage (at least 20) must be numbers"
	case gpuCount > 0 && !tdGPUModel.MatchString(f("gpu_model")):
		why = "gpu_model " + f("gpu_model") + " is not a model id such as geforcertx4090-pcie-24gb"
	case f("external_ports") != "" && !tdPorts.MatchString(f("external_ports")):
		why = "external_ports must be a set such as {20000}"
	case f("internal_ports") != "" && !tdPorts.MatchString(f("internal_ports")):
		why = "internal_ports must be a set such as {22}"
	}
	if why != "" {
		tdFail(w, why)
		return "deploy: " + why
	}
	var host *tdHost
	for i := range tdHosts {
		if tdHosts[i].id == f("hostnode") {
			host = &tdHosts[i]
		}
	}
	if host == nil || !host.online {
		tdFail(w, "Hostnode is not available")
		return ""
	}
	s.launchMu.Lock()
	defer s.launchMu.Unlock()
	u := tdUsed(s)[host.id]
	var gpu *tdGPU
	for i := range host.gpus {
		if host.gpus[i].model == f("gpu_model") {
			gpu = &host.gpus[i]
		}
	}
	if gpuCount > 0 && (gpu == nil || gpuCount > gpu.amount-u["gpu:"+gpu.model]) || vcpus > host.cpu-u["cpu"] || ram > host.ram-u["ram"] || storage > host.storage {
		tdFail(w, "Not enough resources available on this hostnode")
		return ""
	}
	price := float64(vcpus)*host.cpuPrice + float64(ram)*host.ramPrice + float64(storage)*host.storagePrice
	if gpu != nil {
		price += float64(gpuCount) * gpu.price
	}
	m := &Machine{Name: f("name"), Type: f("gpu_model"), Region: strings.ToLower(host.country), GPUs: gpuCount, Price: price,
		Image: f("operating_system"), UserData: f("cloudinit_script"),
		Extra: map[string]any{"hostnode": host.id, "vcpus": vcpus, "ram": ram, "storage": storage,
			"external_ports": f("external_ports"), "internal_ports": f("internal_ports")}}
	s.launch(m)
	snap, _ := s.snapshot(m.ID)
	out := map[string]any{"success": true, "server": m.ID, "cost": map[string]any{"total_price": fmt.Sprintf("%.4f", price)}}
	if snap.IP != "" {
		out["ip"], out["port_forwards"] = snap.IP, map[string]string{"22": strconv.Itoa(snap.SSHPort)}
	}
	writeJSON(w, http.StatusOK, out)
	return ""
}
