package fake

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// CUDO Compute REST API v1 (https://rest.compute.cudo.org/v1, the public OpenAPI document
// "cudo-compute" v1): `Authorization: Bearer <key>`; errors in the gRPC gateway shape
// {"code": <grpc code>, "message", "details": []}.
//
// Calls: GET /v1/auth (the credential check), GET /v1/vms/machine-types-2 (machine types per data
// center with the free vCPUs, memory, GPUs and storage, and their prices), POST
// /v1/projects/{projectId}/vm (CreateVMBody: vmId, dataCenterId, machineType, vcpus, memoryGib, gpus,
// bootDiskImageId, bootDisk {sizeGib}, sshKeySource, customSshKeys, startScript, metadata),
// GET /v1/projects/{projectId}/vms/{id} ({"VM": {state, externalIpAddress, ...}}),
// POST /v1/projects/{projectId}/vms/{id}/terminate. A VM larger than what is free is refused with
// code 9 (insufficient resources).

type cudoMachineType struct {
	dc, machineType, gpuModel, gpuModelID    string
	vcpuFree, memFree, gpuFree, storageFree  int
	vcpuPrice, memPrice, gpuPrice, diskPrice string
	minVcpuPerMem, maxVcpuPerMem             float64
	minVcpuPerGPU, maxVcpuPerGPU             int
}

var cudoMachineTypes = []cudoMachineType{
	{"no-luster-1", "epyc-milan-rtx-a4000", "RTX A4000", "rtx-a4000", 48, 256, 4, 2000, "0.0022", "0.0029", "0.1", "0.00011", 0.25, 1, 1, 16},
	{"gb-bournemouth-1", "epyc-rome-rtx-a5000", "RTX A5000", "rtx-a5000", 32, 192, 2, 1000, "0.0025", "0.0032", "0.24", "0.00011", 0.25, 1, 1, 16},
	{"se-smedjebacken-1", "ice-lake-a40", "NVIDIA A40", "a40", 64, 512, 8, 4000, "0.0022", "0.0029", "0.39", "0.00011", 0.25, 1, 1, 16},
	{"in-hyderabad-1", "cascade-lake-v100", "NVIDIA V100", "v100", 16, 64, 2, 500, "0.002", "0.003", "0.2", "0.0001", 0.25, 1, 1, 8},
	{"no-luster-1", "epyc-milan", "", "", 64, 256, 0, 2000, "0.0022", "0.0029", "0", "0.00011", 0.125, 1, 0, 0},
}

var cudoVMID = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,28}[a-z0-9])?$`)

func cudoErr(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, map[string]any{"code": code, "message": msg, "details": []any{}})
}

func cudoVMJSON(m Machine) map[string]any {
	state := map[string]string{StatusBooting: "PENDING", StatusActive: "ACTIVE", StatusFailed: "FAILED"}[m.Status]
	vm := map[string]any{"id": m.ID, "projectId": m.Extra["project"], "datacenterId": m.Region, "machineType": m.Type,
		"state": state, "shortState": state, "vcpus": m.Extra["vcpus"], "memoryGib": m.Extra["memoryGib"], "gpuQuantity": m.GPUs,
		"bootDiskSizeGib": m.Extra["disk"], "priceHr": fmt.Sprintf("%.4f", m.Price), "createTime": m.Created.UTC().Format(time.RFC3339),
		"externalIpAddress": "", "internalIpAddress": "", "metadata": m.Extra["metadata"]}
	if m.Status == StatusActive {
		vm["externalIpAddress"], vm["internalIpAddress"] = m.IP, m.PrivateIP
	}
	return vm
}

func init() {
	const good = "secret_cudo_good_e5d6c7"
	authed := func(h func(s *Sim, w http.ResponseWriter, r *http.Request) string) func(s *Sim, w http.ResponseWriter, r *http.Request) string {
		return func(s *Sim, w http.ResponseWriter, r *http.Request) string {
			key := bearer(r)
			if !s.credOK("api_key", key) {
				cudoErr(w, http.StatusUnauthorized, 16, "invalid api key")
				if key == "" {
					return "no Authorization: Bearer header"
				}
				return ""
			}
			if p := r.PathValue("projectId"); p != "" && !cudoProjectOK(s, p) {
				cudoErr(w, http.StatusNotFound, 5, "project "+p+" not found")
				return ""
			}
			return h(s, w, r)
		}
	}
	register("cudo", &provider{
		prefix:       "/v1",
		good:         map[string]any{"project_id": "dstack-test", "creds": apiKeyCreds(good)},
		bad:          map[string]any{"project_id": "dstack-test", "creds": apiKeyCreds("secret_cudo_bad_a1b2c3")},
		failBody:     `{"code":13,"message":"internal error","details":[]}`,
		throttleBody: `{"code":8,"message":"rate limit exceeded","details":[]}`,
		capacity: func(w http.ResponseWriter) {
			cudoErr(w, http.StatusBadRequest, 9, "insufficient resources available in the data center")
		},
		notFound: func(w http.ResponseWriter) { cudoErr(w, http.StatusNotFound, 5, "Not Found") },
		newID:    func(s *Sim, n int) string { return fmt.Sprintf("vm-%d", n) },
		routes: []route{
			{pattern: "GET /v1/auth", serve: authed(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				writeJSON(w, http.StatusOK, `{"id":"fake-user","email":"dev@example.com","createTime":"2024-01-01T00:00:00Z"}`)
				return ""
			})},
			{pattern: "GET /v1/vms/machine-types-2", serve: authed(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				used := cudoUsed(s)
				list := []any{}
				for _, t := range cudoMachineTypes {
					u := used[t.dc+"/"+t.machineType]
					price := func(v string) map[string]any { return map[string]any{"value": v} }
					list = append(list, map[string]any{"dataCenterId": t.dc, "machineType": t.machineType, "cpuModel": "EPYC",
						"gpuModel": t.gpuModel, "gpuModelId": t.gpuModelID, "maxVcpuFree": t.vcpuFree - u[0],
						"maxMemoryGibFree": t.memFree - u[1], "maxGpuFree": t.gpuFree - u[2], "maxStorageGibFree": t.storageFree,
						"totalVcpuFree": t.vcpuFree - u[0], "totalMemoryGibFree": t.memFree - u[1], "totalGpuFree": t.gpuFree - u[2],
						"minVcpuPerMemoryGib": t.minVcpuPerMem, "maxVcpuPerMemoryGib": t.maxVcpuPerMem,
						"minVcpuPerGpu": t.minVcpuPerGPU, "maxVcpuPerGpu": t.maxVcpuPerGPU,
						"vcpuPriceHr": price(t.vcpuPrice), "memoryGibPriceHr": price(t.memPrice), "gpuPriceHr": price(t.gpuPrice),
						"minStorageGibPriceHr": price(t.diskPrice), "ipv4PriceHr": price("0.005")})
				}
				writeJSON(w, http.StatusOK, map[string]any{"machineTypes": list})
				return ""
			})},
			{pattern: "POST /v1/projects/{projectId}/vm", launch: true, serve: authed(cudoCreate)},
			{pattern: "GET /v1/projects/{projectId}/vms/{id}", serve: authed(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				m, ok := s.snapshot(r.PathValue("id"))
				if !ok || m.Status == StatusTerminated || m.Extra["project"] != r.PathValue("projectId") {
					cudoErr(w, http.StatusNotFound, 5, "vm not found")
					return ""
				}
				writeJSON(w, http.StatusOK, map[string]any{"VM": cudoVMJSON(m)})
				return ""
			})},
			{pattern: "POST /v1/projects/{projectId}/vms/{id}/terminate", serve: authed(func(s *Sim, w http.ResponseWriter, r *http.Request) string {
				id := r.PathValue("id")
				m, ok := s.snapshot(id)
				if !ok || m.Status == StatusTerminated || m.Extra["project"] != r.PathValue("projectId") {
					cudoErr(w, http.StatusNotFound, 5, "vm not found")
					return ""
				}
				s.terminate(id)
				writeJSON(w, http.StatusOK, `{}`)
				return ""
			})},
		},
	})
}

// cudoProjectOK accepts the good config's project (Strict) or any project without "invalid".
func cudoProjectOK(s *Sim, p string) bool {
	if s.opts.Auth == Lenient {
		return p != "" && !strings.Contains(strings.ToLower(p), "invalid")
	}
	return p == s.p.good["project_id"]
}

// cudoUsed sums the vCPUs, memory and GPUs of the VMs alive per data center and machine type.
func cudoUsed(s *Sim) map[string][3]int {
	out := map[string][3]int{}
	for _, m := range s.list(func(m *Machine) bool { return m.Status != StatusTerminated }) {
		k := m.Region + "/" + m.Type
		u := out[k]
		u[0] += m.Extra["vcpus"].(int)
		u[1] += m.Extra["memoryGib"].(int)
		u[2] += m.GPUs
		out[k] = u
	}
	return out
}

func cudoCreate(s *Sim, w http.ResponseWriter, r *http.Request) string {
	var req struct {
		VMID            string `json:"vmId"`
		DataCenterID    string `json:"dataCenterId"`
		MachineType     string `json:"machineType"`
		Vcpus           int    `json:"vcpus"`
		MemoryGib       int    `json:"memoryGib"`
		Gpus            int    `json:"gpus"`
		BootDiskImageID string `json:"bootDiskImageId"`
		BootDisk        *struct {
			StorageClass string `json:"storageClass"`
			SizeGib      int    `json:"sizeGib"`
			ID           string `json:"id"`
		} `json:"bootDisk"`
		SSHKeySource     string            `json:"sshKeySource"`
		CustomSSHKeys    []string          `json:"customSshKeys"`
		StartScript      string            `json:"startScript"`
		Password         string            `json:"password"`
		Metadata         map[string]string `json:"metadata"`
		CPUModel         string            `json:"cpuModel"`
		GPUModel         string            `json:"gpuModel"`
		SecurityGroupIDs []string          `json:"securityGroupIds"`
	}
	if err := readJSON(r, &req, true); err != nil {
		cudoErr(w, http.StatusBadRequest, 3, "invalid request body: "+err.Error())
		return "create VM body: " + err.Error()
	}
	var why string
	switch {
	case !cudoVMID.MatchString(req.VMID):
		why = "vmId " + strconv.Quote(req.VMID) + " must be 1-30 lowercase letters, digits and dashes, starting with a letter"
	case req.DataCenterID == "" || req.MachineType == "" || req.BootDiskImageID == "":
		why = "dataCenterId, machineType and bootDiskImageId are required"
	case req.Vcpus < 1 || req.MemoryGib < 1 || req.Gpus < 0:
		why = "vcpus and memoryGib must be positive"
	case req.BootDisk == nil || req.BootDisk.SizeGib < 1:
		why = "bootDisk.sizeGib is required"
	}
	switch req.SSHKeySource {
	case "", "SSH_KEY_SOURCE_PROJECT", "SSH_KEY_SOURCE_USER", "SSH_KEY_SOURCE_NONE":
	default:
		why = "sshKeySource " + req.SSHKeySource + " is not a known value"
	}
	if why != "" {
		cudoErr(w, http.StatusBadRequest, 3, why)
		return "create VM: " + why
	}
	var t *cudoMachineType
	for i := range cudoMachineTypes {
		if cudoMachineTypes[i].dc == req.DataCenterID && cudoMachineTypes[i].machineType == req.MachineType {
			t = &cudoMachineTypes[i]
		}
	}
	if t == nil {
		cudoErr(w, http.StatusNotFound, 5, fmt.Sprintf("machine type %s not found in data center %s", req.MachineType, req.DataCenterID))
		return ""
	}
	s.launchMu.Lock()
	defer s.launchMu.Unlock()
	for _, m := range s.list(nil) {
		if m.ID == req.VMID && m.Status != StatusTerminated {
			cudoErr(w, http.StatusConflict, 6, "vm "+req.VMID+" already exists")
			return ""
		}
	}
	u := cudoUsed(s)[t.dc+"/"+t.machineType]
	if req.Vcpus > t.vcpuFree-u[0] || req.MemoryGib > t.memFree-u[1] || req.Gpus > t.gpuFree-u[2] || req.BootDisk.SizeGib > t.storageFree {
		cudoErr(w, http.StatusBadRequest, 9, "insufficient resources available in the data center")
		return ""
	}
	f := func(v string) float64 { x, _ := strconv.ParseFloat(v, 64); return x }
	price := f(t.vcpuPrice)*float64(req.Vcpus) + f(t.memPrice)*float64(req.MemoryGib) + f(t.gpuPrice)*float64(req.Gpus) +
		f(t.diskPrice)*float64(req.BootDisk.SizeGib) + 0.005
	m := &Machine{ID: req.VMID, Name: req.VMID, Type: t.machineType, Region: t.dc, GPUs: req.Gpus, Price: price,
		Image: req.BootDiskImageID, UserData: req.StartScript, SSHKeys: req.CustomSSHKeys,
		Extra: map[string]any{"project": r.PathValue("projectId"), "vcpus": req.Vcpus, "memoryGib": req.MemoryGib,
			"disk": req.BootDisk.SizeGib, "metadata": req.Metadata}}
	s.launch(m)
	snap, _ := s.snapshot(m.ID)
	writeJSON(w, http.StatusOK, map[string]any{"id": m.ID, "vm": cudoVMJSON(snap)})
	return ""
}
