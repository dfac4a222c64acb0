package runpod

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/bootstrap"
	"github.com/dstackgo/dstack/internal/offers"
)

// Pods follow the RunPod GraphQL API spec (graphql-spec.runpod.io): the mutations
// podFindAndDeployOnDemand (on-demand) and podRentInterruptable (spot, with bidPerGpu = the offer's
// price divided by its GPU count: the bid is per GPU, issue #1890) take their input as the $input
// variable; pod(input: {podId}) gives the runtime ports, podTerminate removes the pod; gpuTypes maps
// the catalog's GPU names to RunPod's gpuTypeId; myself { pods } lists the pods (ListInstances).
// Network volumes (volumes.go): a pod mounts InstanceConfig.Volumes (at most one) through
// networkVolumeId and volumeMountPath in the deploy input, and only in the volume's data center.
//
// RunPod is a container backend: the pod runs the job's image with the command overridden
// (dockerArgs) to download dstack-runner and start it with its own SSH server on port 10022, which
// the pod exposes ("10022/tcp"); the provisioning data says Username "root", Dockerized false, and
// the SSH address is the public IP and port mapped to 10022. InstanceConfig.ShimEnv becomes the
// container's environment, except EnvJobImage, which names the image (DefaultImage when unset); the
// SSH keys go in DSTACK_PUBLIC_SSH_KEY. Pods are named dstack-<project>-<instance>.
//
// Errors: "There are no longer any instances available..." (and RunPod's other no-machine answers)
// are *backends.NoCapacityError; 401/403 and authentication errors a *backends.CredentialsError;
// podTerminate of an unknown pod is success.

// EnvJobImage in InstanceConfig.ShimEnv names the image of the pod (the job's image).
const EnvJobImage = bootstrap.EnvJobImage

// DefaultImage is the pod's image when the config names none.
const DefaultImage = bootstrap.DefaultImage

// Username is the SSH user of dstack-runner's SSH server in a pod.
const Username = "root"

// Ports of dstack-runner in the container.
const runnerSSHPort = bootstrap.RunnerSSHPort

var capacityError = regexp.MustCompile(`(?i)no longer any instances available|no instances (currently )?available|not enough free|does not have the resources|no available machines|insufficient capacity`)

var notFoundError = regexp.MustCompile(`(?i)not found|does not exist|no pod`)

// APIError is an answer of the RunPod API that is not a success: an HTTP error or GraphQL errors.
type APIError struct {
	Status   int
	Messages []string
}

func (e *APIError) Error() string {
	if len(e.Messages) == 0 {
		return fmt.Sprintf("RunPod API: HTTP %d %s", e.Status, http.StatusText(e.Status))
	}
	return fmt.Sprintf("RunPod API: HTTP %d: %s", e.Status, strings.Join(e.Messages, "; "))
}

type client struct{ rest backends.RESTClient }

func newClient(cfg backends.Config) (*client, error) {
	key := cfg.String("creds", "api_key")
	if key == "" {
		return nil, &backends.CredentialsError{Msg: "no API key", Fields: [][]string{field}}
	}
	return &client{rest: backends.RESTClient{
		Provider: "RunPod",
		Base:     backends.APIURL(typ, defaultURL),
		Auth: func(r *http.Request) {
			q := r.URL.Query()
			q.Set("api_key", key)
			r.URL.RawQuery = q.Encode()
		},
		Secrets: []string{key},
		Check:   checkAnswer,
	}}, nil
}

// do runs one GraphQL operation; out receives `data`.
func (c *client) do(ctx context.Context, query string, vars map[string]any, out any) error {
	var res struct {
		Data json.RawMessage `json:"data"`
	}
	if err := c.rest.Do(ctx, http.MethodPost, "", map[string]any{"query": query, "variables": vars}, &res); err != nil {
		return err
	}
	if out != nil {
		if err := json.Unmarshal(res.Data, out); err != nil {
			return fmt.Errorf("RunPod API: %w", err)
		}
	}
	return nil
}

// checkAnswer maps an HTTP error or GraphQL errors to the call's error.
func checkAnswer(a *backends.Answer) error {
	var res struct {
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	jsonErr := json.Unmarshal(a.Body, &res)
	ae := &APIError{Status: a.Status}
	for _, e := range res.Errors {
		ae.Messages = append(ae.Messages, a.Redact(e.Message))
	}
	if len(ae.Messages) == 0 && !a.OK() {
		if m := a.Message(""); m != "" {
			ae.Messages = []string{m}
		}
	}
	joined := strings.Join(ae.Messages, "\n")
	switch {
	case a.Status == http.StatusUnauthorized || a.Status == http.StatusForbidden,
		len(ae.Messages) > 0 && a.Status < 500 && authError.MatchString(joined) && !capacityError.MatchString(joined):
		msg := joined
		if msg == "" {
			msg = fmt.Sprintf("RunPod answered HTTP %d", a.Status)
		}
		return &backends.CredentialsError{Msg: msg, Fields: [][]string{field}}
	case capacityError.MatchString(joined) && a.Status < 500:
		return &backends.NoCapacityError{Msg: "RunPod: " + joined}
	case len(ae.Messages) > 0 || !a.OK():
		return ae
	case jsonErr != nil:
		return fmt.Errorf("%s: the answer is not a GraphQL response", a.Where)
	}
	return nil
}

type gpuType struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	MemoryInGb  int    `json:"memoryInGb"`
}

type compute struct {
	c *client

	mu       sync.Mutex
	gpuTypes []gpuType
}

func newCompute(cfg backends.Config) (backends.Compute, error) {
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	return &compute{c: c}, nil
}

func (c *compute) listGPUTypes(ctx context.Context) ([]gpuType, error) {
	c.mu.Lock()
	cached := c.gpuTypes
	c.mu.Unlock()
	if cached != nil {
		return cached, nil
	}
	var res struct {
		GPUTypes []gpuType `json:"gpuTypes"`
	}
	if err := c.c.do(ctx, `query GpuTypes { gpuTypes { id displayName memoryInGb } }`, nil, &res); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.gpuTypes = res.GPUTypes
	c.mu.Unlock()
	return res.GPUTypes, nil
}

func norm(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// gpuTypeID finds RunPod's id of the offer's GPU: the offer's backend data gpu_type_id, an instance
// name that is an id, or the gpuTypes entry whose display name is the catalog's GPU name (exactly,
// or as a prefix with the same memory: A100 80GB is "A100 PCIe" or "A100 SXM", the instance name
// telling which).
func (c *compute) gpuTypeID(ctx context.Context, offer offers.Offer) (string, error) {
	if id, ok := offer.BackendData["gpu_type_id"].(string); ok && id != "" {
		return id, nil
	}
	gpus := offer.Instance.Resources.GPUs
	if len(gpus) == 0 {
		return "", fmt.Errorf("runpod: offer %s has no GPU; CPU pods are not supported", offer.Instance.Name)
	}
	types, err := c.listGPUTypes(ctx)
	if err != nil {
		return "", err
	}
	for _, t := range types {
		if t.ID == offer.Instance.Name {
			return t.ID, nil
		}
	}
	name, memGB := norm(gpus[0].Name), (gpus[0].MemoryMiB+512)/1024
	var cands []gpuType
	for _, t := range types {
		d := norm(t.DisplayName)
		if d == name && (t.MemoryInGb == memGB || memGB == 0) {
			return t.ID, nil
		}
		if strings.HasPrefix(d, name) && t.MemoryInGb == memGB {
			cands = append(cands, t)
		}
	}
	if len(cands) == 0 {
		return "", fmt.Errorf("runpod: no GPU type matches %s %dGB", gpus[0].Name, memGB)
	}
	inst := norm(offer.Instance.Name)
	sort.SliceStable(cands, func(i, j int) bool {
		return strings.Contains(inst, strings.TrimPrefix(norm(cands[i].DisplayName), name)) &&
			!strings.Contains(inst, strings.TrimPrefix(norm(cands[j].DisplayName), name))
	})
	return cands[0].ID, nil
}

// cloudType is SECURE or COMMUNITY by the catalog's instance name suffix, else by the region (Secure
// Cloud regions are data center ids such as CA-MTL-3), else ALL.
func cloudType(offer offers.Offer) string {
	name := strings.ToUpper(offer.Instance.Name)
	switch {
	case strings.HasSuffix(name, "_SECURE"):
		return "SECURE"
	case strings.HasSuffix(name, "_COMMUNITY"):
		return "COMMUNITY"
	case strings.Contains(offer.Region, "-"):
		return "SECURE"
	}
	return "ALL"
}

const podFields = `id desiredStatus imageName costPerHr machineId runtime { uptimeInSeconds ports { ip isIpPublic privatePort publicPort type } }`

type pod struct {
	ID            string  `json:"id"`
	DesiredStatus string  `json:"desiredStatus"`
	CostPerHr     float64 `json:"costPerHr"`
	Runtime       *struct {
		Ports []struct {
			IP          string `json:"ip"`
			IsIPPublic  bool   `json:"isIpPublic"`
			PrivatePort int    `json:"privatePort"`
			PublicPort  int    `json:"publicPort"`
			Type        string `json:"type"`
		} `json:"ports"`
	} `json:"runtime"`
}

func (c *compute) CreateInstance(ctx context.Context, offer offers.Offer, cfg backends.InstanceConfig) (*backends.ProvisioningData, error) {
	// Checked before any call: RunPod gets no pod that cannot mount its volume.
	volumeID, mountPath, err := podVolume(offer.Instance.Name, offer.Region, cfg.Volumes)
	if err != nil {
		return nil, err
	}
	gpuTypeID, err := c.gpuTypeID(ctx, offer)
	if err != nil {
		return nil, err
	}
	res := offer.Instance.Resources
	gpuCount := len(res.GPUs)
	image, env := bootstrap.ContainerEnv(cfg, DefaultImage)
	envList := []map[string]string{}
	for _, k := range bootstrap.SortedKeys(env) {
		envList = append(envList, map[string]string{"key": k, "value": env[k]})
	}
	dockerArgs, err := json.Marshal(map[string]any{"cmd": []string{bootstrap.RunnerCommand(cfg)}, "entrypoint": []string{"/bin/sh", "-c"}})
	if err != nil {
		return nil, err
	}
	input := map[string]any{
		"name":              bootstrap.ResourceName(cfg.ProjectName, cfg.InstanceName, 60),
		"imageName":         image,
		"gpuTypeId":         gpuTypeID,
		"gpuCount":          gpuCount,
		"cloudType":         cloudType(offer),
		"containerDiskInGb": max(1, (res.Disk.SizeMiB+1023)/1024),
		"volumeInGb":        0,
		"minVcpuCount":      res.CPUs,
		"minMemoryInGb":     res.MemoryMiB / 1024,
		"dockerArgs":        string(dockerArgs),
		"ports":             fmt.Sprintf("%d/tcp", runnerSSHPort),
		"supportPublicIp":   true,
		"env":               envList,
	}
	if strings.Contains(offer.Region, "-") {
		input["dataCenterId"] = offer.Region
	} else if offer.Region != "" {
		input["countryCode"] = offer.Region
	}
	if volumeID != "" {
		input["networkVolumeId"], input["volumeMountPath"] = volumeID, mountPath
	}
	op, inputType := "podFindAndDeployOnDemand", "PodFindAndDeployOnDemandInput"
	if res.Spot {
		// The bid is per GPU: the offer's price is for all of them (issue #1890).
		op, inputType = "podRentInterruptable", "PodRentInterruptableInput!"
		input["bidPerGpu"] = offer.Price / float64(gpuCount)
	}
	query := fmt.Sprintf(`mutation Deploy($input: %s) { %s(input: $input) { id desiredStatus imageName machineId costPerHr } }`, inputType, op)
	var out map[string]*pod
	if err := c.c.do(ctx, query, map[string]any{"input": input}, &out); err != nil {
		return nil, err
	}
	p := out[op]
	if p == nil || p.ID == "" {
		return nil, &backends.NoCapacityError{Msg: "RunPod deployed no pod"}
	}
	return &backends.ProvisioningData{
		Backend:         typ,
		InstanceType:    offer.Instance,
		InstanceID:      p.ID,
		PublicIPEnabled: true,
		Region:          offer.Region,
		Price:           offer.Price,
		Username:        Username,
		Dockerized:      false,
	}, nil
}

func (c *compute) UpdateProvisioningData(ctx context.Context, pd *backends.ProvisioningData) error {
	var out struct {
		Pod *pod `json:"pod"`
	}
	q := `query Pod($input: PodFilter) { pod(input: $input) { ` + podFields + ` } }`
	if err := c.c.do(ctx, q, map[string]any{"input": map[string]any{"podId": pd.InstanceID}}, &out); err != nil {
		return err
	}
	if out.Pod == nil {
		return &backends.ProvisioningError{Msg: "RunPod pod " + pd.InstanceID + " no longer exists"}
	}
	switch out.Pod.DesiredStatus {
	case "EXITED", "TERMINATED":
		return &backends.ProvisioningError{Msg: "RunPod pod " + pd.InstanceID + " is " + out.Pod.DesiredStatus}
	}
	if out.Pod.Runtime == nil {
		return nil
	}
	for _, p := range out.Pod.Runtime.Ports {
		if p.PrivatePort != runnerSSHPort {
			continue
		}
		ip, port := p.IP, p.PublicPort
		if p.IsIPPublic {
			pd.Hostname, pd.SSHPort = &ip, &port
		} else {
			pd.InternalIP = &ip
		}
	}
	return nil
}

// ListInstances lists the pods dstack created on the account (`myself { pods }`; names start with
// dstack-), except terminated ones. RunPod has no tags: the orphan reconciler goes by the name
// (see backends.InstanceLister).
func (c *compute) ListInstances(ctx context.Context) ([]backends.Tagged, error) {
	var out struct {
		Myself *struct {
			Pods []struct {
				ID            string `json:"id"`
				Name          string `json:"name"`
				DesiredStatus string `json:"desiredStatus"`
			} `json:"pods"`
		} `json:"myself"`
	}
	if err := c.c.do(ctx, `query Pods { myself { pods { id name desiredStatus } } }`, nil, &out); err != nil {
		return nil, err
	}
	if out.Myself == nil {
		return nil, errors.New("RunPod API: the answer has no myself")
	}
	var list []backends.Tagged
	for _, p := range out.Myself.Pods {
		if !strings.HasPrefix(p.Name, "dstack-") || p.DesiredStatus == "TERMINATED" {
			continue
		}
		list = append(list, backends.Tagged{Backend: typ, InstanceID: p.ID, Name: p.Name, State: strings.ToLower(p.DesiredStatus)})
	}
	return list, nil
}

func (c *compute) TerminateInstance(ctx context.Context, instanceID, region, backendData string) error {
	q := `mutation Terminate($input: PodTerminateInput!) { podTerminate(input: $input) }`
	err := c.c.do(ctx, q, map[string]any{"input": map[string]any{"podId": instanceID}}, nil)
	var ae *APIError
	if err == nil || errors.As(err, &ae) && ae.Status < 500 && notFoundError.MatchString(strings.Join(ae.Messages, "\n")) {
		return nil
	}
	return err
}
