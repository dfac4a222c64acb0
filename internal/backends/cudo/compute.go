package cudo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/bootstrap"
	"github.com/dstackgo/dstack/internal/catalog"
	"github.com/dstackgo/dstack/internal/offers"
)

// Machines and offers follow the CUDO Compute REST API v1 (the same document as the check):
//
//   - offers: GET /vms/machine-types-2, live: per data center and machine type, with what is free
//     now. Like gpuhunt's CUDO provider, each GPU machine type gives balanced offers for 1, 2, 4 and 8
//     GPUs that fit (memory twice the GPU memory, vCPUs within the type's per-GPU and per-GiB
//     limits), CPU-only types 2 to 32 vCPUs with 4 GiB each; the price is the sum of the vCPU,
//     memory, GPU, 100 GB of storage and IPv4 prices. The instance name is the machine type.
//   - create: POST /projects/{project_id}/vm with vmId dstack-<project>-<instance> (lowercase, 30
//     characters at most), the offer's data center, machine type, vCPUs, memory and GPUs, an Ubuntu
//     22.04 image with NVIDIA drivers and Docker, customSshKeys and startScript =
//     bootstrap.ShimScript. Username "root", Dockerized true.
//   - poll: GET /projects/{project_id}/vms/{id} → externalIpAddress once state is ACTIVE.
//   - terminate: POST /projects/{project_id}/vms/{id}/terminate; 404 (code 5) is success.
//
// Code 9 or a message about insufficient resources is a *backends.NoCapacityError; 401/403 (code
// 16, 7) a *backends.CredentialsError.

// BootImage is the VM image: Ubuntu 22.04 with NVIDIA drivers and Docker.
const BootImage = "ubuntu-2204-nvidia-535-docker-v20240214"

// Username is the SSH user of CUDO's images.
const Username = "root"

// maxVMID is the longest vmId CUDO takes.
const maxVMID = 30

var capacityError = regexp.MustCompile(`(?i)insufficient|not enough|no capacity|unavailable|out of stock`)

// APIError is an answer of the CUDO API that is not a success.
type APIError struct {
	Status, Code int
	Message      string
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("CUDO API: HTTP %d (code %d): %s", e.Status, e.Code, msg)
}

var field = []string{"creds", "api_key"}

type client struct {
	rest    backends.RESTClient
	project string
}

func newClient(cfg backends.Config) (*client, error) {
	key := cfg.String("creds", "api_key")
	if key == "" {
		return nil, &backends.CredentialsError{Msg: "no API key", Fields: [][]string{field}}
	}
	return &client{project: cfg.String("project_id"), rest: backends.RESTClient{
		Provider: "CUDO",
		Base:     backends.APIURL(typ, defaultURL),
		Auth:     func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+key) },
		Secrets:  []string{key},
		Check:    checkAnswer,
	}}, nil
}

// checkAnswer maps an answer other than 2xx (a gRPC gateway error, {"code", "message"}) to its error.
func checkAnswer(a *backends.Answer) error {
	if a.OK() {
		return nil
	}
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(a.Body, &e)
	ae := &APIError{Status: a.Status, Code: e.Code, Message: a.Message(e.Message)}
	switch {
	case ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden || ae.Code == 16 || ae.Code == 7:
		return &backends.CredentialsError{Msg: ae.Message, Fields: [][]string{field}}
	case ae.Status < 500 && ae.Status != http.StatusTooManyRequests && (ae.Code == 9 || capacityError.MatchString(ae.Message)):
		return &backends.NoCapacityError{Msg: "CUDO: " + ae.Message}
	}
	return ae
}

type compute struct{ c *client }

func newCompute(cfg backends.Config) (backends.Compute, error) {
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	if c.project == "" {
		return nil, errors.New("cudo: project_id is required")
	}
	return &compute{c: c}, nil
}

var notID = regexp.MustCompile(`[^a-z0-9-]+`)

// vmID is dstack-<project>-<instance> in CUDO's vmId alphabet, at most 30 characters.
func vmID(project, instance string) string {
	id := bootstrap.ResourceName(notID.ReplaceAllString(strings.ToLower(project), "-"), notID.ReplaceAllString(strings.ToLower(instance), "-"), maxVMID)
	return strings.Trim(id, "-")
}

func (c *compute) projectPath() string { return "/projects/" + url.PathEscape(c.c.project) }

func (c *compute) CreateInstance(ctx context.Context, offer offers.Offer, cfg backends.InstanceConfig) (*backends.ProvisioningData, error) {
	res := offer.Instance.Resources
	id := vmID(cfg.ProjectName, cfg.InstanceName)
	keys := make([]string, 0, len(cfg.SSHPublicKeys))
	for _, k := range cfg.SSHPublicKeys {
		keys = append(keys, strings.TrimSpace(k))
	}
	req := map[string]any{
		"vmId":            id,
		"dataCenterId":    offer.Region,
		"machineType":     offer.Instance.Name,
		"vcpus":           res.CPUs,
		"memoryGib":       res.MemoryMiB / 1024,
		"gpus":            len(res.GPUs),
		"bootDiskImageId": BootImage,
		"bootDisk":        map[string]any{"storageClass": "STORAGE_CLASS_NETWORK", "sizeGib": max(1, (res.Disk.SizeMiB+1023)/1024)},
		"sshKeySource":    "SSH_KEY_SOURCE_NONE",
		"customSshKeys":   keys,
		"startScript":     bootstrap.ShimScript(cfg, Username),
		"metadata":        cfg.Tags,
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := c.c.rest.Do(ctx, http.MethodPost, c.projectPath()+"/vm", req, &out); err != nil {
		return nil, err
	}
	if out.ID == "" {
		out.ID = id
	}
	return &backends.ProvisioningData{
		Backend:         typ,
		InstanceType:    offer.Instance,
		InstanceID:      out.ID,
		PublicIPEnabled: true,
		Region:          offer.Region,
		Price:           offer.Price,
		Username:        Username,
		Dockerized:      true,
	}, nil
}

func isNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Code == 5)
}

func (c *compute) UpdateProvisioningData(ctx context.Context, pd *backends.ProvisioningData) error {
	var out struct {
		VM struct {
			State    string `json:"state"`
			External string `json:"externalIpAddress"`
			Internal string `json:"internalIpAddress"`
		} `json:"VM"`
	}
	err := c.c.rest.Do(ctx, http.MethodGet, c.projectPath()+"/vms/"+url.PathEscape(pd.InstanceID), nil, &out)
	if isNotFound(err) {
		return &backends.ProvisioningError{Msg: "CUDO VM " + pd.InstanceID + " no longer exists"}
	}
	if err != nil {
		return err
	}
	switch out.VM.State {
	case "FAILED", "DELETING", "DELETED", "SUSPENDED":
		return &backends.ProvisioningError{Msg: "CUDO VM " + pd.InstanceID + " is " + out.VM.State}
	case "ACTIVE":
		if out.VM.External != "" {
			ip, port := out.VM.External, 22
			pd.Hostname, pd.SSHPort = &ip, &port
		}
		if out.VM.Internal != "" {
			in := out.VM.Internal
			pd.InternalIP = &in
		}
	}
	return nil
}

func (c *compute) TerminateInstance(ctx context.Context, instanceID, region, backendData string) error {
	err := c.c.rest.Do(ctx, http.MethodPost, c.projectPath()+"/vms/"+url.PathEscape(instanceID)+"/terminate", map[string]any{}, nil)
	if err == nil || isNotFound(err) {
		return nil
	}
	return err
}

type price struct {
	Value string `json:"value"`
}

func (p price) float() float64 { f, _ := strconv.ParseFloat(p.Value, 64); return f }

type machineType struct {
	DataCenterID  string  `json:"dataCenterId"`
	MachineType   string  `json:"machineType"`
	GPUModel      string  `json:"gpuModel"`
	GPUModelID    string  `json:"gpuModelId"`
	VcpuFree      int     `json:"maxVcpuFree"`
	MemFree       int     `json:"maxMemoryGibFree"`
	GPUFree       int     `json:"maxGpuFree"`
	StorageFree   int     `json:"maxStorageGibFree"`
	MinVcpuPerMem float64 `json:"minVcpuPerMemoryGib"`
	MaxVcpuPerMem float64 `json:"maxVcpuPerMemoryGib"`
	MinVcpuPerGPU int     `json:"minVcpuPerGpu"`
	MaxVcpuPerGPU int     `json:"maxVcpuPerGpu"`
	VcpuPrice     price   `json:"vcpuPriceHr"`
	MemPrice      price   `json:"memoryGibPriceHr"`
	GPUPrice      price   `json:"gpuPriceHr"`
	DiskPrice     price   `json:"minStorageGibPriceHr"`
	IPv4Price     price   `json:"ipv4PriceHr"`
}

// gpus maps CUDO's GPU model names to gpuhunt's, with the memory (GB) of one GPU.
var gpus = map[string]struct {
	name string
	mem  int
}{
	"RTX A4000": {"A4000", 16}, "RTX A4500": {"A4500", 20}, "RTX A5000": {"A5000", 24}, "RTX A6000": {"A6000", 48},
	"NVIDIA A40": {"A40", 48}, "NVIDIA V100": {"V100", 16}, "RTX 3080": {"RTX3080", 10}, "NVIDIA A100": {"A100", 80},
	"A100 80GB PCIe": {"A100", 80}, "NVIDIA H100": {"H100", 80}, "H100 NVL": {"H100NVL", 94}, "NVIDIA L40S": {"L40S", 48},
	"NVIDIA A800": {"A800", 80},
}

// offerDisk is the storage priced into an offer, as gpuhunt's CUDO provider does.
const offerDisk = 100

func (t machineType) fits(cpu, mem, gpu int) bool {
	c := float64(cpu)
	if cpu > t.VcpuFree || mem > t.MemFree || gpu > t.GPUFree || cpu < 1 || mem < 1 {
		return false
	}
	if t.MaxVcpuPerMem > 0 && (c < float64(mem)*t.MinVcpuPerMem || c > float64(mem)*t.MaxVcpuPerMem) {
		return false
	}
	if gpu > 0 && t.MaxVcpuPerGPU > 0 && (cpu < gpu*t.MinVcpuPerGPU || cpu > gpu*t.MaxVcpuPerGPU) {
		return false
	}
	return true
}

type liveOffers struct{ cfg backends.Config }

func newOffers(cfg backends.Config, _ offers.Tables) offers.Source { return &liveOffers{cfg: cfg} }

func (s *liveOffers) Offers(ctx context.Context, req offers.Requirements) ([]offers.Offer, error) {
	c, err := newClient(s.cfg)
	if err != nil {
		return nil, err
	}
	var out struct {
		MachineTypes []machineType `json:"machineTypes"`
	}
	if err := c.rest.Do(ctx, http.MethodGet, "/vms/machine-types-2", nil, &out); err != nil {
		return nil, err
	}
	var csv strings.Builder
	csv.WriteString("instance_name,location,price,cpu,memory,gpu_count,gpu_name,gpu_memory,spot,disk_size,gpu_vendor,flags,cpu_arch\n")
	rows := 0
	add := func(t machineType, cpu, mem, n int, gpu string, gpuMem int) {
		p := t.VcpuPrice.float()*float64(cpu) + t.MemPrice.float()*float64(mem) + t.GPUPrice.float()*float64(n) +
			t.DiskPrice.float()*offerDisk + t.IPv4Price.float()
		p = math.Round(p*100000) / 100000
		if p <= 0 {
			return
		}
		g := fmt.Sprintf("%d,,", n)
		if n > 0 {
			g = fmt.Sprintf("%d,%s,%d", n, gpu, gpuMem)
		}
		vendor := ""
		if n > 0 {
			vendor = "nvidia"
		}
		fmt.Fprintf(&csv, "%s,%s,%g,%d,%d,%s,False,,%s,,x86\n", t.MachineType, t.DataCenterID, p, cpu, mem, g, vendor)
		rows++
	}
	for _, t := range out.MachineTypes {
		if t.GPUModelID == "" {
			for _, cpu := range []int{2, 4, 8, 16, 32} {
				if mem := 4 * cpu; t.fits(cpu, mem, 0) {
					add(t, cpu, mem, 0, "", 0)
				}
			}
			continue
		}
		g, ok := gpus[t.GPUModel]
		if !ok {
			continue
		}
		for _, n := range []int{1, 2, 4, 8} {
			mem := min(t.MemFree, 2*g.mem*n)
			if t.MaxVcpuPerGPU > 0 && t.MinVcpuPerMem > 0 {
				// as much memory as the vCPUs allowed for n GPUs can go with
				mem = min(mem, int(float64(min(n*t.MaxVcpuPerGPU, t.VcpuFree))/t.MinVcpuPerMem))
			}
			mem -= mem % 2
			cpu := max(2, n*t.MinVcpuPerGPU, int(math.Ceil(float64(mem)*t.MinVcpuPerMem)))
			cpu += cpu % 2
			if t.fits(cpu, mem, n) {
				add(t, cpu, mem, n, g.name, g.mem)
			}
		}
	}
	if rows == 0 {
		return nil, nil
	}
	table, err := catalog.Parse("cudo", strings.NewReader(csv.String()))
	if err != nil {
		return nil, fmt.Errorf("CUDO offers: %w", err)
	}
	cc := offers.DefaultCatalogConfig(typ)
	cc.Regions = s.cfg.Strings("regions")
	return offers.NewCatalogSource(typ, catalog.NewSnapshot(table), cc).Offers(ctx, req)
}
