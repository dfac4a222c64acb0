package tensordock

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/bootstrap"
	"github.com/dstackgo/dstack/internal/catalog"
	"github.com/dstackgo/dstack/internal/offers"
)

// Machines and offers follow the TensorDock Marketplace API v0 (the same document as the check):
//
//   - offers: GET /client/deploy/hostnodes, live: every online hostnode offers 1, 2, 4 or 8 of each
//     GPU model it has free, with vCPUs (4 a GPU) and RAM (twice the GPU memory) within what it has
//     free, priced from its per-unit prices with 100 GB of storage. The instance name is the
//     hostnode id, the region its country; the model id (geforcertx4090-pcie-24gb) travels in the
//     offer's backend data.
//   - create: POST /client/deploy/single (form: api_key, api_token, hostnode, gpu_model, gpu_count,
//     vcpus, ram, storage, operating_system "Ubuntu 22.04 LTS", name dstack-<project>-<instance>, a
//     random password, internal_ports {22} and one of the hostnode's external ports, and
//     cloudinit_script = bootstrap.CloudConfig for the user `user`). Username "user", Dockerized true.
//   - poll: POST /client/get/single → the ip and the external port forwarded to 22 once Running.
//   - terminate: POST /client/delete/single; "no virtual machine found" is success.
//
// Answers are {"success": false, "error"} on failure, with HTTP 200: a refused key is a
// *backends.CredentialsError, a hostnode without the resources a *backends.NoCapacityError.
// On-demand only.

// OS is the operating system of the VMs.
const OS = "Ubuntu 22.04 LTS"

// Username is the SSH user of TensorDock's Ubuntu image.
const Username = "user"

var (
	capacityError = regexp.MustCompile(`(?i)not enough|no available|insufficient|unavailable|out of stock|not available|no capacity`)
	authError     = regexp.MustCompile(`(?i)authori[sz]ation|api[_ ]?(key|token)|unauthori[sz]ed|forbidden`)
	goneError     = regexp.MustCompile(`(?i)no virtual machine|not found|does not exist`)
)

type client struct {
	rest       backends.RESTClient
	key, token string
}

func newClient(cfg backends.Config) (*client, error) {
	key, token := cfg.String("creds", "api_key"), cfg.String("creds", "api_token")
	if key == "" || token == "" {
		return nil, &backends.CredentialsError{Msg: "no API key or token", Fields: fields}
	}
	return &client{key: key, token: token, rest: backends.RESTClient{
		Provider: "TensorDock",
		Base:     backends.APIURL(typ, defaultURL),
		Secrets:  []string{key, token},
		Check:    checkAnswer,
	}}, nil
}

// checkAnswer maps an answer to its error: a status other than 2xx, or {"success": false, "error"}
// with HTTP 200.
func checkAnswer(a *backends.Answer) error {
	var res struct {
		Success *bool  `json:"success"`
		Error   string `json:"error"`
	}
	jsonErr := json.Unmarshal(a.Body, &res)
	msg := a.Message(res.Error)
	switch {
	case a.Status == http.StatusUnauthorized || a.Status == http.StatusForbidden:
		return &backends.CredentialsError{Msg: msg, Fields: fields}
	case !a.OK():
		return a.APIError("", res.Error)
	case jsonErr != nil || res.Success == nil:
		return fmt.Errorf("%s: the answer has no `success`", a.Where)
	case !*res.Success && authError.MatchString(msg) && !capacityError.MatchString(msg):
		return &backends.CredentialsError{Msg: msg, Fields: fields}
	case !*res.Success && capacityError.MatchString(msg):
		return &backends.NoCapacityError{Msg: "TensorDock: " + msg}
	case !*res.Success:
		return a.APIError("", res.Error)
	}
	return nil
}

// do sends a request (a form with the credentials when form is not nil) and decodes a successful
// answer into out.
func (c *client) do(ctx context.Context, method, path string, form url.Values, out any) error {
	var body []byte
	if form != nil {
		form.Set("api_key", c.key)
		form.Set("api_token", c.token)
		body = []byte(form.Encode())
	}
	data, err := c.rest.Send(ctx, method, path, body, "application/x-www-form-urlencoded")
	if err != nil || out == nil {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("TensorDock API %s %s: %w", method, backends.ShowURL(c.rest.Base+path), err)
	}
	return nil
}

type hostnode struct {
	Location struct {
		Country string `json:"country"`
		City    string `json:"city"`
	} `json:"location"`
	Specs struct {
		CPU struct {
			Amount int     `json:"amount"`
			Price  float64 `json:"price"`
		} `json:"cpu"`
		RAM struct {
			Amount int     `json:"amount"`
			Price  float64 `json:"price"`
		} `json:"ram"`
		Storage struct {
			Amount int     `json:"amount"`
			Price  float64 `json:"price"`
		} `json:"storage"`
		GPU map[string]struct {
			Amount int     `json:"amount"`
			Price  float64 `json:"price"`
		} `json:"gpu"`
	} `json:"specs"`
	Status struct {
		Online bool `json:"online"`
	} `json:"status"`
	Networking struct {
		Ports []int `json:"ports"`
	} `json:"networking"`
}

func (c *client) hostnodes(ctx context.Context) (map[string]hostnode, error) {
	var res struct {
		Hostnodes map[string]hostnode `json:"hostnodes"`
	}
	if err := c.do(ctx, http.MethodGet, "/client/deploy/hostnodes", nil, &res); err != nil {
		return nil, err
	}
	return res.Hostnodes, nil
}

var modelRe = regexp.MustCompile(`^(?:geforce)?([a-z0-9]+)-[a-z0-9]+-([0-9]+)gb$`)

// gpuOf turns a TensorDock model id into gpuhunt's name and the memory of one GPU:
// geforcertx4090-pcie-24gb → RTX4090, 24.
func gpuOf(model string) (string, int, bool) {
	m := modelRe.FindStringSubmatch(model)
	if m == nil {
		return "", 0, false
	}
	mem, _ := strconv.Atoi(m[2])
	return strings.ToUpper(m[1]), mem, true
}

type compute struct{ c *client }

func newCompute(cfg backends.Config) (backends.Compute, error) {
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	return &compute{c: c}, nil
}

func password() string {
	const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func (c *compute) CreateInstance(ctx context.Context, offer offers.Offer, cfg backends.InstanceConfig) (*backends.ProvisioningData, error) {
	res := offer.Instance.Resources
	nodes, err := c.c.hostnodes(ctx)
	if err != nil {
		return nil, err
	}
	node, ok := nodes[offer.Instance.Name]
	if !ok || !node.Status.Online {
		return nil, &backends.NoCapacityError{Msg: "TensorDock hostnode " + offer.Instance.Name + " is not available"}
	}
	model, _ := offer.BackendData["gpu_model"].(string)
	if model == "" && len(res.GPUs) > 0 {
		for id := range node.Specs.GPU {
			if name, _, ok := gpuOf(id); ok && strings.EqualFold(name, res.GPUs[0].Name) {
				model = id
			}
		}
		if model == "" {
			return nil, &backends.NoCapacityError{Msg: "TensorDock hostnode " + offer.Instance.Name + " has no " + res.GPUs[0].Name}
		}
	}
	if len(node.Networking.Ports) == 0 {
		return nil, &backends.NoCapacityError{Msg: "TensorDock hostnode " + offer.Instance.Name + " has no free port"}
	}
	form := url.Values{
		"hostnode":         {offer.Instance.Name},
		"gpu_count":        {strconv.Itoa(len(res.GPUs))},
		"vcpus":            {strconv.Itoa(res.CPUs)},
		"ram":              {strconv.Itoa(res.MemoryMiB / 1024)},
		"storage":          {strconv.Itoa(max(20, (res.Disk.SizeMiB+1023)/1024))},
		"operating_system": {OS},
		"name":             {bootstrap.ResourceName(cfg.ProjectName, cfg.InstanceName, 60)},
		"password":         {password()},
		"internal_ports":   {"{22}"},
		"external_ports":   {fmt.Sprintf("{%d}", node.Networking.Ports[0])},
		"cloudinit_script": {bootstrap.CloudConfig(cfg, Username)},
	}
	if model != "" {
		form.Set("gpu_model", model)
	}
	var out struct {
		Server string `json:"server"`
	}
	if err := c.c.do(ctx, http.MethodPost, "/client/deploy/single", form, &out); err != nil {
		return nil, err
	}
	if out.Server == "" {
		return nil, errors.New("tensordock: the deploy answered no server id")
	}
	return &backends.ProvisioningData{
		Backend:         typ,
		InstanceType:    offer.Instance,
		InstanceID:      out.Server,
		PublicIPEnabled: true,
		Region:          offer.Region,
		Price:           offer.Price,
		Username:        Username,
		Dockerized:      true,
	}, nil
}

func (c *compute) UpdateProvisioningData(ctx context.Context, pd *backends.ProvisioningData) error {
	var out struct {
		VM struct {
			Status       string            `json:"status"`
			IP           string            `json:"ip"`
			PortForwards map[string]string `json:"port_forwards"`
		} `json:"virtualmachines"`
	}
	err := c.c.do(ctx, http.MethodPost, "/client/get/single", url.Values{"server": {pd.InstanceID}}, &out)
	var ae *backends.APIError
	if errors.As(err, &ae) && goneError.MatchString(ae.Message) {
		return &backends.ProvisioningError{Msg: "TensorDock VM " + pd.InstanceID + " no longer exists"}
	}
	if err != nil {
		return err
	}
	switch strings.ToLower(out.VM.Status) {
	case "failed", "error", "deleted":
		return &backends.ProvisioningError{Msg: "TensorDock VM " + pd.InstanceID + " is " + out.VM.Status}
	case "running":
		if out.VM.IP == "" {
			return nil
		}
		for k, v := range out.VM.PortForwards {
			ext := ""
			switch {
			case k == "22":
				ext = v
			case v == "22":
				ext = k
			}
			if port, err := strconv.Atoi(ext); err == nil {
				ip := out.VM.IP
				pd.Hostname, pd.SSHPort = &ip, &port
			}
		}
	}
	return nil
}

func (c *compute) TerminateInstance(ctx context.Context, instanceID, region, backendData string) error {
	err := c.c.do(ctx, http.MethodPost, "/client/delete/single", url.Values{"server": {instanceID}}, nil)
	var ae *backends.APIError
	if err == nil || errors.As(err, &ae) && ae.Status < 500 && goneError.MatchString(ae.Message) {
		return nil
	}
	return err
}

// offerDisk is the storage priced into an offer.
const offerDisk = 100

type liveOffers struct{ cfg backends.Config }

func newOffers(cfg backends.Config, _ offers.Tables) offers.Source { return &liveOffers{cfg: cfg} }

func (s *liveOffers) Offers(ctx context.Context, req offers.Requirements) ([]offers.Offer, error) {
	c, err := newClient(s.cfg)
	if err != nil {
		return nil, err
	}
	nodes, err := c.hostnodes(ctx)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(nodes))
	for id := range nodes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var csv strings.Builder
	csv.WriteString("instance_name,location,price,cpu,memory,gpu_count,gpu_name,gpu_memory,spot,disk_size,gpu_vendor,flags,cpu_arch\n")
	models := map[string]string{} // hostnode/gpu name -> model id
	rows := 0
	for _, id := range ids {
		n := nodes[id]
		if !n.Status.Online || len(n.Networking.Ports) == 0 {
			continue
		}
		for model, g := range n.Specs.GPU {
			name, mem, ok := gpuOf(model)
			if !ok {
				continue
			}
			models[id+"/"+name] = model
			for _, count := range []int{1, 2, 4, 8} {
				cpu, ram := max(2, 4*count), max(8, 2*mem*count)
				if count > g.Amount || cpu > n.Specs.CPU.Amount || ram > n.Specs.RAM.Amount {
					continue
				}
				price := g.Price*float64(count) + n.Specs.CPU.Price*float64(cpu) + n.Specs.RAM.Price*float64(ram) + n.Specs.Storage.Price*offerDisk
				fmt.Fprintf(&csv, "%s,%q,%g,%d,%d,%d,%s,%d,False,,nvidia,,x86\n", id, strings.ToLower(n.Location.Country),
					math.Round(price*10000)/10000, cpu, ram, count, name, mem)
				rows++
			}
		}
	}
	if rows == 0 {
		return nil, nil
	}
	table, err := catalog.Parse("tensordock", strings.NewReader(csv.String()))
	if err != nil {
		return nil, fmt.Errorf("TensorDock offers: %w", err)
	}
	list, err := offers.NewCatalogSource(typ, catalog.NewSnapshot(table), offers.DefaultCatalogConfig(typ)).Offers(ctx, req)
	if err != nil {
		return nil, err
	}
	out := make([]offers.Offer, len(list))
	for i, o := range list {
		if gpus := o.Instance.Resources.GPUs; len(gpus) > 0 {
			o.BackendData = map[string]any{"gpu_model": models[o.Instance.Name+"/"+gpus[0].Name]}
		}
		out[i] = o
	}
	return out, nil
}
