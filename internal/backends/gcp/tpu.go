package gcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	tpuapi "google.golang.org/api/tpu/v2"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/bootstrap"
	"github.com/dstackgo/dstack/internal/offers"
)

// TPU VMs, through the Cloud TPU API v2 (google.golang.org/api/tpu/v2,
// https://cloud.google.com/tpu/docs/reference/rest/v2). An offer whose accelerator is Google's
// (vendor google, the catalog's tpu-<type> rows) is a TPU slice:
//
//   - Only single-host slices are offered and provisioned: v2, v3, v4, v5p (TensorCores) and v5e
//     (v5litepod), v6e (chips) of at most 8. A multi-host slice (v4-16, v5litepod-16 and up) is
//     several VMs that dstack would have to run as one multi-node job; it is not supported.
//   - CreateInstance is nodes.create in the offer's zones in turn, nodeId the instance name: the
//     acceleratorType is the TPU's name, the runtimeVersion its generation's TPU software version
//     (tpuRuntimes), the VPC's subnet of the region with an external IP unless public_ips is
//     false, the network tag the SSH firewall rule targets, metadata ssh-keys for ubuntu and a
//     startup-script that starts dstack-shim privileged with PJRT_DEVICE=TPU, labels as for VMs,
//     Spot scheduling for spot offers and vm_service_account. The create's Operation is watched
//     for tpuCapacityWait at most (not until the node is READY, which takes minutes): a stockout
//     (operation error RESOURCE_EXHAUSTED "There is no more capacity in the zone", or UNAVAILABLE)
//     or a 429 for TPU quota moves on to the next zone; when every zone refuses, the result is a
//     *backends.NoCapacityError.
//   - UpdateProvisioningData is nodes.get: READY gives the first network endpoint's external IP
//     (its internal one without public IPs); CREATING and other transient states nothing yet;
//     PREEMPTED, TERMINATED, STOPPED and the like a *backends.ProvisioningError, as is a node that
//     is gone (with the create's operation error when it failed late, e.g. a stockout).
//   - TerminateInstance is nodes.delete, not waited for; 404 is success.
//   - ListInstances also lists the nodes of the TPU locations (locations.list) in the configured
//     regions that carry a dstack_server label; a project that has not enabled the Cloud TPU API
//     has none.
//
// The provisioning data's backend data says {"zone", "is_tpu": true, "tpu_operation"}. TPU quotas
// live in the Cloud TPU API's quota service, not in regions.get, so TPU offers keep an unknown
// availability.

// tpuCapacityWait is how long CreateInstance watches a create's operation for a stockout, which
// the TPU API reports within about 20 to 30 seconds; a node that is still being created after it
// is handed over.
const tpuCapacityWait = 20 * time.Second

// tpuPollMax bounds the interval between two looks at the operation.
const tpuPollMax = 2 * time.Second

// tpuEndpoint is Google's Cloud TPU endpoint.
const tpuEndpoint = "https://tpu.googleapis.com"

// tpuRuntimes are the TPU software versions (runtimeVersion) of each generation, as
// https://cloud.google.com/tpu/docs/runtimes recommends them for PyTorch and JAX.
var tpuRuntimes = map[string]string{
	"v2":        "tpu-ubuntu2204-base",
	"v3":        "tpu-ubuntu2204-base",
	"v4":        "tpu-ubuntu2204-base",
	"v5litepod": "v2-alpha-tpuv5-lite",
	"v5p":       "v2-alpha-tpuv5",
	"v6e":       "v2-alpha-tpuv6e",
}

// maxSingleHost is the largest slice (the number after the generation: TensorCores of v2-v5p,
// chips of v5e and v6e) that one TPU VM holds.
const maxSingleHost = 8

// tpuType is the TPU slice of a TPU offer: its accelerator's name, e.g. v5litepod-8.
func tpuType(o offers.Offer) string { return o.Instance.Resources.GPUs[0].Name }

// tpuRuntime is the runtimeVersion of a single-host slice; false for a multi-host slice or a
// generation this build does not know.
func tpuRuntime(acceleratorType string) (string, bool) {
	gen, size, ok := strings.Cut(acceleratorType, "-")
	n, err := strconv.Atoi(size)
	runtime, known := tpuRuntimes[gen]
	if !ok || err != nil || n < 1 || n > maxSingleHost || !known {
		return "", false
	}
	return runtime, true
}

// offerableTPU reports whether a TPU offer can be provisioned: a single-host slice of a known
// generation.
func offerableTPU(o offers.Offer) bool {
	_, ok := tpuRuntime(tpuType(o))
	return ok
}

// sshKeysMetadata is the ssh-keys metadata of the image's user: one user:key line per key.
func sshKeysMetadata(cfg backends.InstanceConfig) string {
	var keys []string
	for _, k := range cfg.SSHPublicKeys {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, Username+":"+k)
		}
	}
	return strings.Join(keys, "\n")
}

// tpuShimConfig is cfg with the shim's TPU settings: job containers run privileged (they need the
// TPU devices under /dev) and PJRT_DEVICE=TPU, which dstack passes as --privileged
// --pjrt-device=TPU (the shim reads both from its environment).
func tpuShimConfig(cfg backends.InstanceConfig) backends.InstanceConfig {
	env := maps.Clone(cfg.ShimEnv)
	if env == nil {
		env = map[string]string{}
	}
	env["DSTACK_DOCKER_PRIVILEGED"] = "true"
	env["PJRT_DEVICE"] = "TPU"
	cfg.ShimEnv = env
	return cfg
}

func (c *gcpCompute) tpuNode(offer offers.Offer, cfg backends.InstanceConfig, runtime, network, subnet string) *tpuapi.Node {
	script := bootstrap.ShimScript(tpuShimConfig(cfg), Username)
	node := &tpuapi.Node{
		AcceleratorType: tpuType(offer),
		RuntimeVersion:  runtime,
		Labels:          c.labels(cfg),
		Metadata:        map[string]string{"ssh-keys": sshKeysMetadata(cfg), "startup-script": script},
		Tags:            []string{RunnerTag},
		NetworkConfig:   &tpuapi.NetworkConfig{Network: network, Subnetwork: subnet, EnableExternalIps: c.publicIPs()},
	}
	if offer.Instance.Resources.Spot {
		node.SchedulingConfig = &tpuapi.SchedulingConfig{Spot: true}
	}
	if sa := c.cfg.String("vm_service_account"); sa != "" {
		node.ServiceAccount = &tpuapi.ServiceAccount{Email: sa, Scope: []string{scope}}
	}
	return node
}

func tpuLocation(project, zone string) string { return "projects/" + project + "/locations/" + zone }

func tpuNodeName(project, zone, id string) string { return tpuLocation(project, zone) + "/nodes/" + id }

func (c *gcpCompute) createTPU(ctx context.Context, s *session, offer offers.Offer, cfg backends.InstanceConfig) (*backends.ProvisioningData, error) {
	runtime, ok := tpuRuntime(tpuType(offer))
	if !ok {
		return nil, fmt.Errorf("GCP TPU %s is not supported: dstack provisions single-host slices (at most %d) of %s",
			tpuType(offer), maxSingleHost, strings.Join(bootstrap.SortedKeys(tpuRuntimes), ", "))
	}
	region := offer.Region
	zones := offer.AvailabilityZones
	var err error
	if len(zones) == 0 {
		if zones, err = zonesOf(ctx, s, region); err != nil {
			return nil, err
		}
	}
	if err := c.ensureFirewall(ctx, s); err != nil {
		return nil, err
	}
	vpc, vpcProject := c.vpc(s)
	subnet, err := c.subnet(ctx, s, region, vpc, "vpc_name")
	if err != nil {
		return nil, err
	}
	name := instanceName(cfg)
	node := c.tpuNode(offer, cfg, runtime, networkPath(vpcProject, vpc), subnet)
	created := func(zone, op string) *backends.ProvisioningData {
		data, _ := json.Marshal(backendData{Zone: zone, IsTPU: true, TPUOperation: op})
		return &backends.ProvisioningData{
			Backend:          typ,
			InstanceType:     offer.Instance,
			InstanceID:       name,
			PublicIPEnabled:  c.publicIPs(),
			Region:           region,
			AvailabilityZone: &zone,
			Price:            offer.Price,
			Username:         Username,
			Dockerized:       true,
			BackendData:      string(data),
		}
	}
	var refusals []string
	for _, zone := range zones {
		var op *tpuapi.Operation
		attempts := 0
		err := s.do(ctx, func() error {
			attempts++
			var err error
			op, err = s.tpu.Projects.Locations.Nodes.Create(tpuLocation(s.project, zone), node).NodeId(name).Context(ctx).Do()
			return err
		})
		if ge := apiError(err); ge != nil && ge.Code == http.StatusConflict && attempts > 1 {
			// nodes.create takes no request id: a retry finds what the attempt that seemed to fail made.
			return created(zone, ""), nil
		}
		if err == nil && !op.Done {
			done, werr := c.watchTPU(ctx, s, op)
			if werr != nil {
				// The create was accepted, so the node may exist: hand it over rather than lose
				// track of it; polling reports it failed if its operation did.
				return created(zone, op.Name), nil
			}
			op = done
		}
		switch {
		case err != nil && tpuRefused(err):
			refusals = append(refusals, zone+": "+apiError(err).Message)
			continue
		case err != nil:
			return nil, s.tpuError("nodes.create "+name+" in "+zone, err)
		case op.Done && op.Error != nil:
			if tpuStockout(op.Error) {
				refusals = append(refusals, zone+": "+op.Error.Message)
				continue
			}
			return nil, fmt.Errorf("GCP TPU nodes.create of %s in %s failed: %s", name, zone, tpuStatusText(op.Error))
		}
		return created(zone, op.Name), nil
	}
	return nil, &backends.NoCapacityError{Msg: fmt.Sprintf("GCP %s TPU %s: %s", region, tpuType(offer), strings.Join(refusals, "; "))}
}

// watchTPU looks at an operation until it is done or tpuCapacityWait passed, at growing
// intervals; it returns the last look.
func (c *gcpCompute) watchTPU(ctx context.Context, s *session, op *tpuapi.Operation) (*tpuapi.Operation, error) {
	deadline := time.Now().Add(tpuCapacityWait)
	wait := 100 * time.Millisecond
	for !op.Done && time.Now().Before(deadline) {
		t := time.NewTimer(min(wait, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, tpuPollMax)
		var next *tpuapi.Operation
		err := s.do(ctx, func() error {
			var err error
			next, err = s.tpu.Projects.Locations.Operations.Get(op.Name).Context(ctx).Do()
			return err
		})
		if err != nil {
			return nil, err
		}
		op = next
	}
	return op, nil
}

// tpuStockout reports an operation error for want of capacity in the zone: RESOURCE_EXHAUSTED
// (code 8: no capacity, no quota, no reservation), or UNAVAILABLE (code 14), which the TPU API
// answers when the zone cannot serve the request now.
func tpuStockout(st *tpuapi.Status) bool {
	msg := strings.ToLower(st.Message)
	return st.Code == 8 || st.Code == 14 || strings.Contains(msg, "no more capacity") || strings.Contains(msg, "stockout")
}

// tpuRefused reports a synchronous refusal of nodes.create that another zone may not give: the
// project's TPU quota (429 RESOURCE_EXHAUSTED, which is not a rate limit), or a slice the zone
// does not sell.
func tpuRefused(err error) bool {
	ge := apiError(err)
	if ge == nil {
		return false
	}
	msg := strings.ToLower(ge.Message)
	switch ge.Code {
	case http.StatusTooManyRequests:
		reason := reasonOf(ge)
		return strings.Contains(msg, "quota") && reason != "rateLimitExceeded" && reason != "userRateLimitExceeded"
	case http.StatusBadRequest:
		return strings.Contains(msg, "accelerator_type") || strings.Contains(msg, "acceleratortype")
	}
	return false
}

func tpuStatusText(st *tpuapi.Status) string {
	return fmt.Sprintf("code %d: %s", st.Code, st.Message)
}

// serviceDisabled reports a 403 because the project has not enabled the Cloud TPU API.
func serviceDisabled(err error) bool {
	ge := apiError(err)
	if ge == nil || ge.Code != http.StatusForbidden {
		return false
	}
	for _, d := range ge.Details {
		if m, ok := d.(map[string]any); ok && (m["reason"] == "SERVICE_DISABLED") {
			return true
		}
	}
	return reasonOf(ge) == "accessNotConfigured"
}

// tpuError is mapError for the Cloud TPU API: it names the TPU endpoint and says how to enable
// the API.
func (s *session) tpuError(what string, err error) error {
	if serviceDisabled(err) {
		return fmt.Errorf("GCP TPU %s: %w in project %s; enable it with `gcloud services enable tpu.googleapis.com --project %s`",
			what, errTPUDisabled, s.project, s.project)
	}
	if ge := apiError(err); ge != nil && ge.Code != http.StatusUnauthorized {
		return fmt.Errorf("GCP TPU %s at %s: %w", what, s.tpuShownURL(), backends.Redact(err, s.secrets))
	}
	return s.mapError("TPU "+what, err)
}

func (s *session) tpuShownURL() string {
	if s.endpoint != "" {
		return backends.ShowURL(s.endpoint)
	}
	return tpuEndpoint
}

// parseBackendData reads the backend data of the provisioning data; zero when there is none.
func parseBackendData(s string) backendData {
	var bd backendData
	_ = json.Unmarshal([]byte(s), &bd)
	return bd
}

func (c *gcpCompute) updateTPU(ctx context.Context, s *session, pd *backends.ProvisioningData, zone, createOp string) error {
	var node *tpuapi.Node
	err := s.do(ctx, func() error {
		var err error
		node, err = s.tpu.Projects.Locations.Nodes.Get(tpuNodeName(s.project, zone, pd.InstanceID)).Context(ctx).Do()
		return err
	})
	if isNotFound(err) {
		return c.tpuGone(ctx, s, pd.InstanceID, zone, createOp)
	}
	if err != nil {
		return s.tpuError("nodes.get "+pd.InstanceID, err)
	}
	switch node.State {
	case "READY":
	case "", "STATE_UNSPECIFIED", "CREATING", "STARTING", "RESTARTING", "REIMAGING", "REPAIRING":
		return nil
	default:
		msg := fmt.Sprintf("GCP TPU %s in %s is %s", pd.InstanceID, zone, node.State)
		if node.HealthDescription != "" {
			msg += ": " + node.HealthDescription
		}
		return &backends.ProvisioningError{Msg: msg}
	}
	z := zone
	pd.AvailabilityZone = &z
	if len(node.NetworkEndpoints) == 0 {
		return nil
	}
	ep := node.NetworkEndpoints[0]
	if ep.IpAddress != "" {
		ip := ep.IpAddress
		pd.InternalIP = &ip
	}
	host := ep.IpAddress
	if pd.PublicIPEnabled {
		host = ""
		if ep.AccessConfig != nil {
			host = ep.AccessConfig.ExternalIp
		}
	}
	if host != "" {
		port := 22
		pd.Hostname, pd.SSHPort = &host, &port
	}
	return nil
}

// tpuGone judges a node that nodes.get does not find: still being created while its operation
// runs; else failed, with the operation's error when it has one.
func (c *gcpCompute) tpuGone(ctx context.Context, s *session, id, zone, createOp string) error {
	if createOp != "" {
		var op *tpuapi.Operation
		err := s.do(ctx, func() error {
			var err error
			op, err = s.tpu.Projects.Locations.Operations.Get(createOp).Context(ctx).Do()
			return err
		})
		switch {
		case err != nil && !isNotFound(err):
			return s.tpuError("operations.get of "+id, err)
		case err == nil && !op.Done:
			return nil
		case err == nil && op.Error != nil:
			return &backends.ProvisioningError{Msg: fmt.Sprintf("GCP TPU %s in %s was not created: %s", id, zone, tpuStatusText(op.Error))}
		}
	}
	return &backends.ProvisioningError{Msg: fmt.Sprintf("GCP TPU %s in %s no longer exists (deleted, or a preempted spot TPU)", id, zone)}
}

// deleteTPU deletes a node without waiting; a node already gone is success.
func (c *gcpCompute) deleteTPU(ctx context.Context, s *session, id, zone string) error {
	err := s.do(ctx, func() error {
		_, err := s.tpu.Projects.Locations.Nodes.Delete(tpuNodeName(s.project, zone, id)).Context(ctx).Do()
		return err
	})
	if err != nil && !isNotFound(err) {
		return s.tpuError("nodes.delete "+id+" in "+zone, err)
	}
	return nil
}

// deleteTPUAnywhere deletes a node of that id in any of zones, for a termination without backend
// data (the orphan reconciler's), which cannot tell a TPU from a VM; a project without the Cloud
// TPU API has no node to delete.
func (c *gcpCompute) deleteTPUAnywhere(ctx context.Context, s *session, id string, zones []string) error {
	for _, zone := range zones {
		if err := c.deleteTPU(ctx, s, id, zone); err != nil {
			if errors.Is(err, errTPUDisabled) {
				return nil
			}
			return err
		}
	}
	return nil
}

// errTPUDisabled marks the errors of a project that has not enabled the Cloud TPU API.
var errTPUDisabled = errors.New("the Cloud TPU API is not enabled")

// listTPU lists the TPU nodes of the configured regions that carry a dstack_server label.
func (c *gcpCompute) listTPU(ctx context.Context, s *session, wanted map[string]bool) ([]backends.Tagged, error) {
	var zones []string
	err := s.do(ctx, func() error {
		zones = zones[:0]
		return s.tpu.Projects.Locations.List("projects/"+s.project).Context(ctx).Pages(ctx, func(l *tpuapi.ListLocationsResponse) error {
			for _, loc := range l.Locations {
				zone := loc.LocationId
				if zone == "" {
					zone = path.Base(loc.Name)
				}
				if wanted[regionOfZone(zone)] {
					zones = append(zones, zone)
				}
			}
			return nil
		})
	})
	if serviceDisabled(err) {
		return nil, nil // no TPU API, no TPU nodes
	}
	if err != nil {
		return nil, s.tpuError("locations.list", err)
	}
	sort.Strings(zones)
	return backends.ListEachRegion(zones, func(zone string) ([]backends.Tagged, error) {
		var out []backends.Tagged
		err := s.do(ctx, func() error {
			out = out[:0]
			return s.tpu.Projects.Locations.Nodes.List(tpuLocation(s.project, zone)).Context(ctx).Pages(ctx, func(l *tpuapi.ListNodesResponse) error {
				for _, n := range l.Nodes {
					if n.Labels["dstack_server"] == "" {
						continue
					}
					id := path.Base(n.Name)
					t := backends.Tagged{Backend: typ, InstanceID: id, Region: regionOfZone(zone), Name: id,
						State: strings.ToLower(n.State), Tags: maps.Clone(n.Labels)}
					if ts, err := time.Parse(time.RFC3339Nano, n.CreateTime); err == nil {
						t.LaunchedAt = ts
					}
					out = append(out, t)
				}
				return nil
			})
		})
		if err != nil {
			return nil, s.tpuError("nodes.list in "+zone, err)
		}
		return out, nil
	})
}
