package vastai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/bootstrap"
	"github.com/dstackgo/dstack/internal/catalog"
	"github.com/dstackgo/dstack/internal/offers"
)

// Machines and offers follow the same REST API v0 as the vastai CLI:
//
//   - offers: GET /bundles?q=<json>, the marketplace search, with dstack's filters: verified,
//     rentable, not rented, on-demand, reliability2 ≥ 0.9, direct_port_count ≥ 1, inet_down > 128,
//     cuda_max_good ≥ 12.1, compute_cap ≥ 600. Each ask is one offer named by its id, in its
//     geolocation, price dph_total, runtime runner, available; asks with less disk than wanted are
//     left out.
//   - create: PUT /asks/{id}/ {"client_id": "me", "image", "disk", "label", "env", "runtype": "args",
//     "args": ["/bin/sh", "-c", <runner command>]}; env holds the container's variables and
//     "-p 10022:10022" to publish dstack-runner's SSH port. Answer {"success": true, "new_contract"}.
//   - poll: GET /instances/{id}/ → {"instances": {actual_status, public_ipaddr, ports:
//     {"10022/tcp": [{"HostPort"}]}}}; null when gone.
//   - terminate: DELETE /instances/{id}/; 404 (no_such_instance) is success.
//
// A container backend like RunPod: the job's image runs dstack-runner (bootstrap.RunnerCommand),
// Username "root", Dockerized false. An ask rented meanwhile answers no_such_ask: a
// *backends.NoCapacityError. On-demand only.

var field = []string{"creds", "api_key"}

// Username is the SSH user of dstack-runner's SSH server in the container.
const Username = "root"

type client struct{ rest backends.RESTClient }

func newClient(cfg backends.Config) (*client, error) {
	key := cfg.String("creds", "api_key")
	if key == "" {
		return nil, &backends.CredentialsError{Msg: "no API key", Fields: [][]string{field}}
	}
	return &client{rest: backends.RESTClient{
		Provider: "Vast.ai",
		Base:     backends.APIURL(typ, defaultURL),
		Auth: func(r *http.Request) {
			q := r.URL.Query()
			q.Set("api_key", key)
			r.URL.RawQuery = q.Encode()
			r.Header.Set("Authorization", "Bearer "+key)
		},
		Secrets: []string{key},
		Check:   checkAnswer,
		MaxBody: 16 << 20,
	}}, nil
}

// checkAnswer maps an answer other than 2xx, or {"success": false, "error", "msg"}, to its error.
func checkAnswer(a *backends.Answer) error {
	var e struct {
		Success *bool  `json:"success"`
		Error   string `json:"error"`
		Msg     string `json:"msg"`
	}
	_ = json.Unmarshal(a.Body, &e)
	if a.OK() && (e.Success == nil || *e.Success) {
		return nil
	}
	ae := a.APIError(e.Error, e.Msg)
	if e.Msg == "" && ae.Code != "" {
		ae.Message = "" // the code says it all
	}
	switch {
	case ae.Code == "no_such_ask" || strings.Contains(strings.ToLower(ae.Message), "no longer available"):
		return &backends.NoCapacityError{Msg: "Vast.ai: " + ae.Message}
	case ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden || ae.Code == "invalid_user_key":
		return &backends.CredentialsError{Msg: ae.Message, Fields: [][]string{field}}
	}
	return ae
}

// do sends one call with query (and the key) in the query string.
func (c *client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	if len(query) > 0 {
		path += "?" + query.Encode()
	}
	return c.rest.Do(ctx, method, path, in, out)
}

type compute struct{ c *client }

func newCompute(cfg backends.Config) (backends.Compute, error) {
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	return &compute{c: c}, nil
}

func (c *compute) CreateInstance(ctx context.Context, offer offers.Offer, cfg backends.InstanceConfig) (*backends.ProvisioningData, error) {
	if _, err := strconv.Atoi(offer.Instance.Name); err != nil {
		return nil, fmt.Errorf("vastai: offer %q is not a marketplace offer id", offer.Instance.Name)
	}
	image, env := bootstrap.ContainerEnv(cfg, bootstrap.DefaultImage)
	envMap := map[string]string{fmt.Sprintf("-p %d:%d", bootstrap.RunnerSSHPort, bootstrap.RunnerSSHPort): "1"}
	for k, v := range env {
		envMap[k] = v
	}
	req := map[string]any{
		"client_id": "me",
		"image":     image,
		"disk":      math.Max(1, math.Ceil(float64(offer.Instance.Resources.Disk.SizeMiB)/1024)),
		"label":     bootstrap.ResourceName(cfg.ProjectName, cfg.InstanceName, 60),
		"env":       envMap,
		"runtype":   "args",
		"args":      []string{"/bin/sh", "-c", bootstrap.RunnerCommand(cfg)},
	}
	var res struct {
		NewContract int64 `json:"new_contract"`
	}
	if err := c.c.do(ctx, http.MethodPut, "/asks/"+offer.Instance.Name+"/", nil, req, &res); err != nil {
		return nil, err
	}
	if res.NewContract == 0 {
		return nil, errors.New("vastai: the rent answered no new_contract")
	}
	return &backends.ProvisioningData{
		Backend:         typ,
		InstanceType:    offer.Instance,
		InstanceID:      strconv.FormatInt(res.NewContract, 10),
		PublicIPEnabled: true,
		Region:          offer.Region,
		Price:           offer.Price,
		Username:        Username,
		Dockerized:      false,
	}, nil
}

func (c *compute) UpdateProvisioningData(ctx context.Context, pd *backends.ProvisioningData) error {
	var res struct {
		Instance *struct {
			ActualStatus *string `json:"actual_status"`
			PublicIP     *string `json:"public_ipaddr"`
			Ports        map[string][]struct {
				HostIP   string `json:"HostIp"`
				HostPort string `json:"HostPort"`
			} `json:"ports"`
		} `json:"instances"`
	}
	if err := c.c.do(ctx, http.MethodGet, "/instances/"+pd.InstanceID+"/", nil, nil, &res); err != nil {
		return err
	}
	inst := res.Instance
	if inst == nil {
		return &backends.ProvisioningError{Msg: "Vast.ai instance " + pd.InstanceID + " no longer exists"}
	}
	if inst.ActualStatus != nil && (*inst.ActualStatus == "exited" || *inst.ActualStatus == "offline") {
		return &backends.ProvisioningError{Msg: "Vast.ai instance " + pd.InstanceID + " is " + *inst.ActualStatus}
	}
	if inst.ActualStatus == nil || *inst.ActualStatus != "running" || inst.PublicIP == nil {
		return nil
	}
	for _, b := range inst.Ports[fmt.Sprintf("%d/tcp", bootstrap.RunnerSSHPort)] {
		if port, err := strconv.Atoi(b.HostPort); err == nil {
			ip := strings.TrimSpace(*inst.PublicIP)
			pd.Hostname, pd.SSHPort = &ip, &port
			return nil
		}
	}
	return nil
}

func (c *compute) TerminateInstance(ctx context.Context, instanceID, region, backendData string) error {
	err := c.c.do(ctx, http.MethodDelete, "/instances/"+instanceID+"/", nil, nil, nil)
	var ae *backends.APIError
	if err == nil || errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Code == "no_such_instance") {
		return nil
	}
	return err
}

// searchQuery is dstack's marketplace filter (spec §4.4).
func searchQuery() map[string]any {
	return map[string]any{
		"verified":          map[string]any{"eq": true},
		"rentable":          map[string]any{"eq": true},
		"rented":            map[string]any{"eq": false},
		"reliability2":      map[string]any{"gte": 0.9},
		"direct_port_count": map[string]any{"gte": 1},
		"inet_down":         map[string]any{"gt": 128},
		"cuda_max_good":     map[string]any{"gte": 12.1},
		"compute_cap":       map[string]any{"gte": 600},
		"type":              "on-demand",
		"order":             [][]string{{"dph_total", "asc"}},
		"limit":             1000,
	}
}

type ask struct {
	ID          int64   `json:"id"`
	GPUName     string  `json:"gpu_name"`
	NumGPUs     int     `json:"num_gpus"`
	GPURAM      float64 `json:"gpu_ram"`
	CPUCores    float64 `json:"cpu_cores_effective"`
	CPURAM      float64 `json:"cpu_ram"`
	DiskSpace   float64 `json:"disk_space"`
	DPHTotal    float64 `json:"dph_total"`
	Geolocation string  `json:"geolocation"`
}

// gpuName turns Vast.ai's GPU names into gpuhunt's: "RTX 4090" → RTX4090, "A100 SXM4" → A100,
// "RTX A6000" → RTXA6000, "H100 NVL" → H100NVL.
func gpuName(s string) string {
	var out []string
	for _, f := range strings.Fields(s) {
		switch strings.ToUpper(f) {
		case "SXM", "SXM4", "SXM5", "PCIE":
			continue
		}
		out = append(out, f)
	}
	return strings.Join(out, "")
}

type liveOffers struct{ cfg backends.Config }

func newOffers(cfg backends.Config, _ offers.Tables) offers.Source { return &liveOffers{cfg: cfg} }

func (s *liveOffers) Offers(ctx context.Context, req offers.Requirements) ([]offers.Offer, error) {
	c, err := newClient(s.cfg)
	if err != nil {
		return nil, err
	}
	q, _ := json.Marshal(searchQuery())
	var res struct {
		Offers []ask `json:"offers"`
	}
	if err := c.do(ctx, http.MethodGet, "/bundles", url.Values{"q": {string(q)}}, nil, &res); err != nil {
		return nil, err
	}
	var csv strings.Builder
	csv.WriteString("instance_name,location,price,cpu,memory,gpu_count,gpu_name,gpu_memory,spot,disk_size,gpu_vendor,flags,cpu_arch\n")
	disk := map[string]float64{}
	for _, a := range res.Offers {
		cpu, mem := math.Floor(a.CPUCores), math.Floor(a.CPURAM/1024)
		if a.NumGPUs < 1 || cpu < 1 || mem < 1 || a.DPHTotal <= 0 {
			continue
		}
		name := strconv.FormatInt(a.ID, 10)
		disk[name] = a.DiskSpace
		fmt.Fprintf(&csv, "%s,%q,%g,%g,%g,%d,%s,%g,False,,nvidia,,x86\n", name, a.Geolocation, a.DPHTotal, cpu, mem,
			a.NumGPUs, gpuName(a.GPUName), math.Round(a.GPURAM/1024))
	}
	if len(disk) == 0 {
		return nil, nil
	}
	table, err := catalog.Parse("vastai", strings.NewReader(csv.String()))
	if err != nil {
		return nil, fmt.Errorf("Vast.ai offers: %w", err)
	}
	cc := offers.DefaultCatalogConfig(typ)
	list, err := offers.NewCatalogSource(typ, catalog.NewSnapshot(table), cc).Offers(ctx, req)
	if err != nil {
		return nil, err
	}
	out := make([]offers.Offer, 0, len(list))
	for _, o := range list {
		if float64(o.Instance.Resources.Disk.SizeMiB) > disk[o.Instance.Name]*1024 {
			continue
		}
		o.BackendData = map[string]any{"ask_id": o.Instance.Name}
		out = append(out, o)
	}
	return out, nil
}
