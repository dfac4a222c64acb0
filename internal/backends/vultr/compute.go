package vultr

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strings"

	"github.com/vultr/govultr/v3"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/bootstrap"
	"github.com/dstackgo/dstack/internal/catalog"
	"github.com/dstackgo/dstack/internal/offers"
)

// Machines and offers follow the Vultr API v2 through govultr/v3:
//
//   - offers: GET /v2/plans?type=all and GET /v2/plans-metal, live: a plan is offered in each region
//     of its `locations` (where Vultr has it now), at monthly_cost/730 per hour. Cloud GPU plans
//     (vcg-*) carry gpu_type and gpu_vram_gb (plans with a fraction of a GPU are left out); bare-metal
//     GPU plans say their GPUs in the id (vbm-256c-2048gb-8-h100-gpu: 8 H100).
//   - create: POST /v2/instances, or POST /v2/bare-metals for vbm-* plans, with Ubuntu 22.04
//     (os_id 1743), the label dstack-<project>-<instance>, tags dstack-<project> and
//     dstack-instance-<instance>, and cloud-init user data that authorizes the keys and starts
//     dstack-shim (bootstrap.CloudConfig). Username "root", Dockerized true.
//   - poll: GET /v2/instances/{id} (or bare-metals): the address once status is active and main_ip is
//     not 0.0.0.0.
//   - terminate: DELETE; 404 is success.
//
// A plan not available in the region is a *backends.NoCapacityError; 401/403 a
// *backends.CredentialsError. The SDK's retries are off: throttling and 5xx come back as errors at
// once, for the caller's back-off.

// OSUbuntu2204 is Vultr's os_id of Ubuntu 22.04 LTS x64.
const OSUbuntu2204 = 1743

// Username is the SSH user of Vultr's Ubuntu images.
const Username = "root"

var capacityError = regexp.MustCompile(`(?i)not available|out of stock|sold out|insufficient|no capacity|unavailable`)

// call runs fn with a fresh SDK client and maps the outcome: the SDK's errors carry neither status
// nor body, so a transport keeps them.
func call(ctx context.Context, cfg backends.Config, fn func(ctx context.Context, c *govultr.Client) error) error {
	key := cfg.String("creds", "api_key")
	if key == "" {
		return &backends.CredentialsError{Msg: "no API key", Fields: [][]string{field}}
	}
	secrets := []string{key}
	client, tr, err := newSDK(key)
	if err != nil {
		return err
	}
	ctx, cancel := backends.WithDefaultDeadline(ctx)
	defer cancel()
	err = fn(ctx, client)
	status, body := tr.result()
	msg := backends.ProviderMessage(body, secrets...)
	switch {
	case status == 0 && err != nil:
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return fmt.Errorf("Vultr API at %s: %w", backends.ShowURL(client.BaseURL.String()), backends.Redact(err, secrets))
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		if msg == "" {
			msg = fmt.Sprintf("Vultr answered HTTP %d %s", status, http.StatusText(status))
		}
		return &backends.CredentialsError{Msg: msg, Fields: [][]string{field}}
	case status >= 300:
		if status < 500 && status != http.StatusTooManyRequests && capacityError.MatchString(msg) {
			return &backends.NoCapacityError{Msg: "Vultr: " + msg}
		}
		return &backends.APIError{Provider: provider, Status: status, Message: msg}
	case err != nil:
		return fmt.Errorf("Vultr API: %w", backends.Redact(err, secrets))
	}
	return nil
}

type compute struct{ cfg backends.Config }

func newCompute(cfg backends.Config) (backends.Compute, error) {
	if cfg.String("creds", "api_key") == "" {
		return nil, &backends.CredentialsError{Msg: "no API key", Fields: [][]string{field}}
	}
	return &compute{cfg: cfg}, nil
}

type backendData struct {
	BareMetal bool `json:"bare_metal,omitempty"`
}

func parseBackendData(s string) backendData {
	var d backendData
	_ = json.Unmarshal([]byte(s), &d)
	return d
}

func isBareMetal(plan string) bool { return strings.HasPrefix(plan, "vbm-") }

func (c *compute) CreateInstance(ctx context.Context, offer offers.Offer, cfg backends.InstanceConfig) (*backends.ProvisioningData, error) {
	label := bootstrap.ResourceName(cfg.ProjectName, cfg.InstanceName, 60)
	tags := []string{"dstack-" + cfg.ProjectName, "dstack-instance-" + cfg.InstanceName}
	userData := base64.StdEncoding.EncodeToString([]byte(bootstrap.CloudConfig(cfg, Username)))
	metal := isBareMetal(offer.Instance.Name)
	var id string
	err := call(ctx, c.cfg, func(ctx context.Context, client *govultr.Client) error {
		if metal {
			bm, _, err := client.BareMetalServer.Create(ctx, &govultr.BareMetalCreate{Region: offer.Region, Plan: offer.Instance.Name,
				OsID: OSUbuntu2204, Label: label, Hostname: label, Tags: tags, UserData: userData})
			if bm != nil {
				id = bm.ID
			}
			return err
		}
		inst, _, err := client.Instance.Create(ctx, &govultr.InstanceCreateReq{Region: offer.Region, Plan: offer.Instance.Name,
			OsID: OSUbuntu2204, Label: label, Hostname: label, Tags: tags, UserData: userData})
		if inst != nil {
			id = inst.ID
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if id == "" {
		return nil, errors.New("vultr: the create answered no id")
	}
	bd, _ := json.Marshal(backendData{BareMetal: metal})
	return &backends.ProvisioningData{
		Backend:         typ,
		InstanceType:    offer.Instance,
		InstanceID:      id,
		PublicIPEnabled: true,
		Region:          offer.Region,
		Price:           offer.Price,
		Username:        Username,
		Dockerized:      true,
		BackendData:     string(bd),
	}, nil
}

func (c *compute) UpdateProvisioningData(ctx context.Context, pd *backends.ProvisioningData) error {
	var status, ip, internal string
	err := call(ctx, c.cfg, func(ctx context.Context, client *govultr.Client) error {
		if parseBackendData(pd.BackendData).BareMetal {
			bm, _, err := client.BareMetalServer.Get(ctx, pd.InstanceID)
			if bm != nil {
				status, ip = bm.Status, bm.MainIP
			}
			return err
		}
		inst, _, err := client.Instance.Get(ctx, pd.InstanceID)
		if inst != nil {
			status, ip, internal = inst.Status, inst.MainIP, inst.InternalIP
		}
		return err
	})
	var ae *backends.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return &backends.ProvisioningError{Msg: "Vultr instance " + pd.InstanceID + " no longer exists"}
	}
	if err != nil {
		return err
	}
	if status == "active" && ip != "" && ip != "0.0.0.0" {
		port := 22
		pd.Hostname, pd.SSHPort = &ip, &port
		if internal != "" {
			pd.InternalIP = &internal
		}
	}
	return nil
}

func (c *compute) TerminateInstance(ctx context.Context, instanceID, region, backendData string) error {
	err := call(ctx, c.cfg, func(ctx context.Context, client *govultr.Client) error {
		if parseBackendData(backendData).BareMetal {
			return client.BareMetalServer.Delete(ctx, instanceID)
		}
		return client.Instance.Delete(ctx, instanceID)
	})
	var ae *backends.APIError
	if err == nil || errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return nil
	}
	return err
}

// gpuMemory is the memory (GB) of one GPU of each model Vultr sells, to count a plan's GPUs from
// its gpu_vram_gb.
var gpuMemory = map[string]int{"A100": 80, "A40": 48, "A16": 16, "L40S": 48, "H100": 80, "H200": 141, "B200": 192,
	"MI300X": 192, "MI325X": 256, "A10": 24, "L40": 48, "GH200": 96}

var metalGPU = regexp.MustCompile(`-(\d+)-([a-z0-9]+)-gpu$`)

type liveOffers struct{ cfg backends.Config }

func newOffers(cfg backends.Config, _ offers.Tables) offers.Source { return &liveOffers{cfg: cfg} }

func (s *liveOffers) Offers(ctx context.Context, req offers.Requirements) ([]offers.Offer, error) {
	var plans []govultr.Plan
	var metal []govultr.BareMetalPlan
	err := call(ctx, s.cfg, func(ctx context.Context, client *govultr.Client) error {
		opts := &govultr.ListOptions{PerPage: 500}
		for {
			page, meta, _, err := client.Plan.List(ctx, "all", opts)
			if err != nil {
				return err
			}
			plans = append(plans, page...)
			if meta == nil || meta.Links == nil || meta.Links.Next == "" {
				break
			}
			opts.Cursor = meta.Links.Next
		}
		opts = &govultr.ListOptions{PerPage: 500}
		for {
			page, meta, _, err := client.Plan.ListBareMetal(ctx, opts)
			if err != nil {
				return err
			}
			metal = append(metal, page...)
			if meta == nil || meta.Links == nil || meta.Links.Next == "" {
				break
			}
			opts.Cursor = meta.Links.Next
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var csv strings.Builder
	csv.WriteString("instance_name,location,price,cpu,memory,gpu_count,gpu_name,gpu_memory,spot,disk_size,gpu_vendor,flags,cpu_arch\n")
	rows := 0
	row := func(id string, locations []string, monthly float64, cpu, ramMB, diskGB, gpus int, gpu string, gpuMem int) {
		price := math.Round(monthly/730*10000) / 10000
		if price <= 0 || cpu <= 0 || ramMB <= 0 {
			return
		}
		gpuName, gpuMemory, vendor := "", "", ""
		if gpus > 0 {
			gpuName, gpuMemory, vendor = gpu, fmt.Sprint(gpuMem), "nvidia"
			if strings.HasPrefix(gpu, "MI") {
				vendor = "amd"
			}
		}
		for _, loc := range locations {
			fmt.Fprintf(&csv, "%s,%s,%g,%d,%g,%d,%s,%s,False,%d,%s,,x86\n", id, loc, price, cpu, float64(ramMB)/1024,
				gpus, gpuName, gpuMemory, diskGB, vendor)
			rows++
		}
	}
	for _, p := range plans {
		if p.GPUType == "" {
			row(p.ID, p.Locations, float64(p.MonthlyCost), p.VCPUCount, p.RAM, p.Disk*max(1, p.DiskCount), 0, "", 0)
			continue
		}
		name := strings.ReplaceAll(strings.TrimPrefix(p.GPUType, "NVIDIA_"), "_", "")
		name = strings.TrimPrefix(name, "AMD")
		per := gpuMemory[name]
		if per == 0 || p.GPUVRAM < per || p.GPUVRAM%per != 0 {
			continue // an unknown model, or a fraction of a GPU
		}
		row(p.ID, p.Locations, float64(p.MonthlyCost), p.VCPUCount, p.RAM, p.Disk*max(1, p.DiskCount), p.GPUVRAM/per, name, per)
	}
	for _, p := range metal {
		cpu := p.CPUThreads
		if cpu == 0 {
			cpu = p.CPUCount
		}
		disk := p.Disk * max(1, p.DiskCount)
		if m := metalGPU.FindStringSubmatch(p.ID); m != nil {
			var n int
			fmt.Sscan(m[1], &n)
			name := strings.ToUpper(m[2])
			if per := gpuMemory[name]; per > 0 && n > 0 {
				row(p.ID, p.Locations, float64(p.MonthlyCost), cpu, p.RAM, disk, n, name, per)
			}
			continue
		}
		row(p.ID, p.Locations, float64(p.MonthlyCost), cpu, p.RAM, disk, 0, "", 0)
	}
	if rows == 0 {
		return nil, nil
	}
	table, err := catalog.Parse("vultr", strings.NewReader(csv.String()))
	if err != nil {
		return nil, fmt.Errorf("Vultr offers: %w", err)
	}
	cc := offers.DefaultCatalogConfig(typ)
	cc.Regions = s.cfg.Strings("regions")
	return offers.NewCatalogSource(typ, catalog.NewSnapshot(table), cc).Offers(ctx, req)
}
