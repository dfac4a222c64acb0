package gcp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/api/compute/v1"
	"google.golang.org/api/googleapi"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/bootstrap"
	"github.com/dstackgo/dstack/internal/offers"
)

// Machines on Compute Engine (spec §5):
//
//   - CreateInstance makes sure the VPC (vpc_name, default `default`) lets SSH in to instances
//     tagged dstack-runner-instance (firewalls.get, then firewalls.insert when missing; not for a
//     Shared VPC, whose host project's admins own its rules), finds the region's subnet of the VPC
//     (subnetworks.list of vpc_project_id, or the project), and inserts the instance in the offer's
//     zones in turn: the offer's machine type (N1 types get their GPUs as guestAccelerators; A2, A3,
//     G2 types imply theirs), an Ubuntu boot disk of the offer's size, a startup-script that
//     installs and starts dstack-shim (bootstrap.ShimScript), ssh-keys for ubuntu, the network tag
//     dstack-runner-instance, labels (the config's tags and InstanceConfig.Tags, sanitised to GCP's
//     rules), a public IP unless public_ips is false, vm_service_account, and Spot scheduling for
//     spot offers. A3 types (a3-highgpu-8g, a3-edgegpu-8g, a3-megagpu-8g) get one more gVNIC
//     interface per extra VPC (extra_vpcs, see network.go), in the VPC's subnet of the region. The insert's operation is waited for (zoneOperations.wait, at most opWait), as
//     capacity refusals arrive in it: ZONE_RESOURCE_POOL_EXHAUSTED(_WITH_DETAILS), QUOTA_EXCEEDED
//     and stockouts move on to the next zone; when every zone refuses, the result is a
//     *backends.NoCapacityError. A requestId derived from the instance and zone makes retries
//     idempotent.
//   - UpdateProvisioningData is instances.get: RUNNING instances get the public IP (or the
//     internal one without public_ips) as hostname, port 22; PROVISIONING and STAGING ones nothing
//     yet; others (and a 404: a spot instance deleted when preempted) a *backends.ProvisioningError.
//   - TerminateInstance is instances.delete in the zone of the backend data; 404 is success.
//   - ListInstances (backends.InstanceLister) is instances.aggregatedList filtered by the
//     dstack_server label, in the configured regions.
//
// TPU offers go to the Cloud TPU API instead (tpu.go); their backend data has is_tpu.
//
// Throttling and 5xx are retried (4 attempts, jittered backoff up to 4 s); credential refusals are
// a *backends.CredentialsError.

// Username is the SSH user of the Ubuntu images.
const Username = "ubuntu"

// RunnerTag is the network tag of dstack's instances, which the SSH firewall rule targets.
const RunnerTag = "dstack-runner-instance"

// Image is the boot image: Ubuntu 22.04 LTS, the newest of its family.
const Image = "projects/ubuntu-os-cloud/global/images/family/ubuntu-2204-lts"

// opWait bounds how long a call waits for its operation.
const opWait = 90 * time.Second

// backendData is what TerminateInstance needs besides the instance id, as dstack stores it.
type backendData struct {
	Zone  string `json:"zone"`
	IsTPU bool   `json:"is_tpu"`
	// TPUOperation is a TPU node's create operation, which says why a node that is gone failed.
	TPUOperation string `json:"tpu_operation,omitempty"`
}

type gcpCompute struct {
	cfg backends.Config

	sess backends.Lazy[*session]

	mu        sync.Mutex
	firewalls map[string]bool   // network -> rule present
	subnets   map[string]string // vpcProject/region/vpc -> subnetwork
}

func newCompute(cfg backends.Config) (backends.Compute, error) {
	return &gcpCompute{cfg: cfg, firewalls: map[string]bool{}, subnets: map[string]string{}}, nil
}

func (c *gcpCompute) session(ctx context.Context) (*session, error) {
	return c.sess.Get(func() (*session, error) { return newSession(ctx, c.cfg, true) })
}

func (c *gcpCompute) vpc(s *session) (name, project string) { return vpcOf(c.cfg, s.project) }

func (c *gcpCompute) publicIPs() bool { return publicIPsOf(c.cfg) }

// FirewallRuleName is the SSH rule of a VPC, named as dstack names it.
func FirewallRuleName(vpc string) string {
	return sanitizeName("dstack-ssh-in-" + strings.ReplaceAll("global/networks/"+vpc, "/", "-"))
}

// ensureFirewall creates the rule that lets SSH in to dstack's instances of the VPC when missing.
func (c *gcpCompute) ensureFirewall(ctx context.Context, s *session) error {
	vpc, project := c.vpc(s)
	if c.cfg.String("vpc_project_id") != "" {
		return nil // a Shared VPC's rules belong to its host project's admins (see the docs)
	}
	network := "projects/" + project + "/global/networks/" + vpc
	c.mu.Lock()
	ok := c.firewalls[network]
	c.mu.Unlock()
	if ok {
		return nil
	}
	name := FirewallRuleName(vpc)
	err := s.do(ctx, func() error {
		_, err := s.svc.Firewalls.Get(project, name).Context(ctx).Do()
		return err
	})
	if isNotFound(err) {
		rule := &compute.Firewall{Name: name, Network: network, Direction: "INGRESS", Description: "SSH to dstack instances",
			Allowed: []*compute.FirewallAllowed{{IPProtocol: "tcp", Ports: []string{"22"}}}, SourceRanges: []string{"0.0.0.0/0"},
			TargetTags: []string{RunnerTag}}
		var op *compute.Operation
		rid := newRequestID()
		err = s.do(ctx, func() error {
			var err error
			op, err = s.svc.Firewalls.Insert(project, rule).RequestId(rid).Context(ctx).Do()
			return err
		})
		if ge := apiError(err); ge != nil && ge.Code == http.StatusConflict {
			err = nil // created meanwhile by a concurrent launch
		} else if err == nil {
			op, err = c.waitGlobal(ctx, s, project, op)
			if err == nil && op.Error != nil {
				err = fmt.Errorf("GCP firewall rule %s: %s", name, opErrorText(op))
			}
		}
	}
	if err != nil {
		return s.mapError("firewall rule "+name+" of VPC "+vpc, err)
	}
	c.mu.Lock()
	c.firewalls[network] = true
	c.mu.Unlock()
	return nil
}

// subnet finds a VPC's subnetwork in a region, cached; field is the config key that names the
// VPC, for the error when it has none.
func (c *gcpCompute) subnet(ctx context.Context, s *session, region, vpc, field string) (string, error) {
	_, project := c.vpc(s)
	key := project + "/" + region + "/" + vpc
	c.mu.Lock()
	sn := c.subnets[key]
	c.mu.Unlock()
	if sn != "" {
		return sn, nil
	}
	sn, err := subnetOf(ctx, s, project, vpc, region)
	if err != nil {
		return "", s.mapError("subnetworks of VPC "+vpc+" in "+region, err)
	}
	if sn == "" {
		return "", &backends.ProvisioningError{Msg: fmt.Sprintf("GCP VPC %s of project %s (%s) has no subnet in %s; create one there or change %s", vpc, project, field, region, field)}
	}
	c.mu.Lock()
	c.subnets[key] = sn
	c.mu.Unlock()
	return sn, nil
}

// nic is one network interface of an instance: the VPC and its subnet in the instance's region.
type nic struct{ network, subnet string }

// extraInterfaces are the GPUDirect interfaces of a machine type: the subnets of the first
// extraNICs(type) of extra_vpcs in the region, in order; none for other types.
func (c *gcpCompute) extraInterfaces(ctx context.Context, s *session, region, machineType string) ([]nic, error) {
	extras := c.cfg.Strings("extra_vpcs")
	n := min(extraNICs(machineType), len(extras))
	_, project := c.vpc(s)
	var out []nic
	for _, vpc := range extras[:n] {
		sn, err := c.subnet(ctx, s, region, vpc, "extra_vpcs")
		if err != nil {
			return nil, err
		}
		out = append(out, nic{network: networkPath(project, vpc), subnet: sn})
	}
	return out, nil
}

// zonesOf lists a region's zones in order.
func zonesOf(ctx context.Context, s *session, region string) ([]string, error) {
	ri, err := fetchRegion(ctx, s, region)
	if err != nil {
		return nil, err
	}
	var zones []string
	for z := range ri.zones {
		zones = append(zones, z)
	}
	sort.Strings(zones)
	return zones, nil
}

// impliedGPUs are the machine families whose GPUs come with the machine type.
var impliedGPUs = []string{"a2-", "a3-", "a4-", "g2-", "g4-"}

// acceleratorTypes are the GPUs attached to N1 machines.
var acceleratorTypes = map[string]string{"T4": "nvidia-tesla-t4", "V100": "nvidia-tesla-v100", "P100": "nvidia-tesla-p100",
	"P4": "nvidia-tesla-p4", "L4": "nvidia-l4", "K80": "nvidia-tesla-k80"}

// instanceName is the instance's name: dstack-<project>-<name>, as GCP allows names.
func instanceName(cfg backends.InstanceConfig) string {
	return sanitizeName(bootstrap.ResourceName(strings.ToLower(cfg.ProjectName), strings.ToLower(cfg.InstanceName), 63))
}

// sanitizeName makes a resource name GCP accepts: [a-z]([-a-z0-9]{0,61}[a-z0-9])?.
func sanitizeName(s string) string {
	b := []byte(strings.ToLower(s))
	for i, ch := range b {
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-') {
			b[i] = '-'
		}
	}
	out := string(b)
	if out == "" || out[0] < 'a' || out[0] > 'z' {
		out = "d" + out
	}
	if len(out) > 63 {
		out = out[len(out)-63:]
		if out[0] < 'a' || out[0] > 'z' {
			out = "d" + out[1:]
		}
	}
	return strings.TrimRight(out, "-")
}

// sanitizeLabel makes a label key or value GCP accepts: lowercase letters, digits, _ and -, at
// most 63 characters; keys start with a letter.
func sanitizeLabel(s string, key bool) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	out := b.String()
	if key && (out == "" || out[0] < 'a' || out[0] > 'z') {
		out = "l" + out
	}
	if len(out) > 63 {
		out = out[:63]
	}
	return out
}

// Labels are the labels of an instance or disk: the config's tags, then dstack's over them,
// sanitised.
func Labels(configTags map[string]any, own map[string]string) map[string]string {
	out := map[string]string{}
	keys := make([]string, 0, len(configTags))
	for k := range configTags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out[sanitizeLabel(k, true)] = sanitizeLabel(fmt.Sprint(configTags[k]), false)
	}
	for _, k := range bootstrap.SortedKeys(own) {
		out[sanitizeLabel(k, true)] = sanitizeLabel(own[k], false)
	}
	return out
}

func (c *gcpCompute) labels(cfg backends.InstanceConfig) map[string]string {
	own := map[string]string{"dstack_project": cfg.ProjectName, "dstack_instance": cfg.InstanceName}
	for k, v := range cfg.Tags {
		own[k] = v
	}
	tags, _ := c.cfg.Values["tags"].(map[string]any)
	return Labels(tags, own)
}

// newRequestID is the requestId of one mutation: its retries carry the same one, so that Compute
// Engine answers the first attempt's operation rather than doing it twice.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}

func (c *gcpCompute) instance(offer offers.Offer, cfg backends.InstanceConfig, name, zone string, nics []nic) *compute.Instance {
	res := offer.Instance.Resources
	diskGB := int64((res.Disk.SizeMiB + 1023) / 1024)
	if diskGB == 0 {
		diskGB = offers.DefaultDiskMiB / 1024
	}
	script := bootstrap.ShimScript(cfg, Username)
	sshKeys := sshKeysMetadata(cfg)
	labels := c.labels(cfg)
	inst := &compute.Instance{
		Name:        name,
		MachineType: "zones/" + zone + "/machineTypes/" + offer.Instance.Name,
		Labels:      labels,
		Tags:        &compute.Tags{Items: []string{RunnerTag}},
		Metadata: &compute.Metadata{Items: []*compute.MetadataItems{
			{Key: "startup-script", Value: &script},
			{Key: "ssh-keys", Value: &sshKeys},
		}},
		Disks: []*compute.AttachedDisk{{Boot: true, AutoDelete: true, Type: "PERSISTENT", InitializeParams: &compute.AttachedDiskInitializeParams{
			SourceImage: Image, DiskSizeGb: diskGB, DiskType: "zones/" + zone + "/diskTypes/pd-balanced", Labels: labels}}},
		Scheduling: &compute.Scheduling{},
	}
	for _, n := range nics {
		ni := &compute.NetworkInterface{Network: n.network, Subnetwork: n.subnet}
		if len(nics) > 1 {
			ni.NicType = "GVNIC" // GPUDirect-TCPX(O) runs over gVNIC only, on every interface of an A3
		}
		inst.NetworkInterfaces = append(inst.NetworkInterfaces, ni)
	}
	if c.publicIPs() {
		inst.NetworkInterfaces[0].AccessConfigs = []*compute.AccessConfig{{Type: "ONE_TO_ONE_NAT", Name: "External NAT"}}
	}
	if len(res.GPUs) > 0 {
		inst.Scheduling.OnHostMaintenance = "TERMINATE" // VMs with GPUs cannot live-migrate
		implied := false
		for _, f := range impliedGPUs {
			implied = implied || strings.HasPrefix(offer.Instance.Name, f)
		}
		if at := acceleratorTypes[strings.ToUpper(res.GPUs[0].Name)]; !implied && at != "" {
			inst.GuestAccelerators = []*compute.AcceleratorConfig{{AcceleratorType: "zones/" + zone + "/acceleratorTypes/" + at,
				AcceleratorCount: int64(len(res.GPUs))}}
		}
	}
	if res.Spot {
		inst.Scheduling.ProvisioningModel = "SPOT"
		inst.Scheduling.InstanceTerminationAction = "DELETE"
		inst.Scheduling.OnHostMaintenance = "TERMINATE"
		inst.Scheduling.AutomaticRestart = googleapi.Bool(false)
	}
	if sa := c.cfg.String("vm_service_account"); sa != "" {
		inst.ServiceAccounts = []*compute.ServiceAccount{{Email: sa, Scopes: []string{compute.CloudPlatformScope}}}
	}
	return inst
}

func (c *gcpCompute) CreateInstance(ctx context.Context, offer offers.Offer, cfg backends.InstanceConfig) (*backends.ProvisioningData, error) {
	s, err := c.session(ctx)
	if err != nil {
		return nil, err
	}
	if isTPU(offer) {
		return c.createTPU(ctx, s, offer, cfg)
	}
	region := offer.Region
	zones := offer.AvailabilityZones
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
	extra, err := c.extraInterfaces(ctx, s, region, offer.Instance.Name)
	if err != nil {
		return nil, err
	}
	nics := append([]nic{{network: networkPath(vpcProject, vpc), subnet: subnet}}, extra...)
	name := instanceName(cfg)
	created := func(zone string) *backends.ProvisioningData {
		data, _ := json.Marshal(backendData{Zone: zone})
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
		inst := c.instance(offer, cfg, name, zone, nics)
		var op *compute.Operation
		rid := newRequestID()
		err := s.do(ctx, func() error {
			var err error
			op, err = s.svc.Instances.Insert(s.project, zone, inst).RequestId(rid).Context(ctx).Do()
			return err
		})
		if err == nil {
			done, werr := c.waitZone(ctx, s, zone, op)
			if werr != nil {
				// The insert was accepted, so the machine exists: hand it over rather than lose track
				// of it; polling reports it failed if the operation did (e.g. a stockout).
				return created(zone), nil
			}
			op = done
		}
		switch {
		case err != nil && (isCapacity(err) || isNotFound(err) && strings.Contains(apiError(err).Message, "Type")):
			// No quota, or the type is not sold in this zone: the next zone may have it.
			refusals = append(refusals, zone+": "+apiError(err).Message)
			continue
		case err != nil:
			return nil, s.mapError("instances.insert in "+zone, err)
		case op.Error != nil:
			if opCapacity(op) {
				refusals = append(refusals, zone+": "+opErrorText(op))
				continue
			}
			return nil, fmt.Errorf("GCP instances.insert of %s in %s failed: %s", name, zone, opErrorText(op))
		}
		return created(zone), nil
	}
	return nil, &backends.NoCapacityError{Msg: fmt.Sprintf("GCP %s %s: %s", region, offer.Instance.Name, strings.Join(refusals, "; "))}
}

func opCapacity(op *compute.Operation) bool {
	if op.Error == nil {
		return false
	}
	for _, e := range op.Error.Errors {
		if capacityCodes[e.Code] || strings.Contains(strings.ToLower(e.Message), "stockout") {
			return true
		}
	}
	return false
}

func opErrorText(op *compute.Operation) string {
	var parts []string
	for _, e := range op.Error.Errors {
		parts = append(parts, e.Code+": "+e.Message)
	}
	return strings.Join(parts, "; ")
}

// waitZone waits for a zone operation to be DONE, at most opWait.
func (c *gcpCompute) waitZone(ctx context.Context, s *session, zone string, op *compute.Operation) (*compute.Operation, error) {
	return waitOp(ctx, s, op, func(ctx context.Context) (*compute.Operation, error) {
		return s.svc.ZoneOperations.Wait(s.project, zone, op.Name).Context(ctx).Do()
	})
}

func (c *gcpCompute) waitGlobal(ctx context.Context, s *session, project string, op *compute.Operation) (*compute.Operation, error) {
	return waitOp(ctx, s, op, func(ctx context.Context) (*compute.Operation, error) {
		return s.svc.GlobalOperations.Wait(project, op.Name).Context(ctx).Do()
	})
}

func waitOp(ctx context.Context, s *session, op *compute.Operation, wait func(context.Context) (*compute.Operation, error)) (*compute.Operation, error) {
	deadline := time.Now().Add(opWait)
	for op.Status != "DONE" && time.Now().Before(deadline) {
		var next *compute.Operation
		err := s.do(ctx, func() error {
			var err error
			next, err = wait(ctx)
			return err
		})
		if err != nil {
			return nil, err
		}
		op = next
	}
	return op, nil
}

// zoneOf is the instance's zone: the backend data's, else the provisioning data's.
func zoneOf(backendDataJSON string, az *string) string {
	var bd backendData
	if json.Unmarshal([]byte(backendDataJSON), &bd) == nil && bd.Zone != "" {
		return bd.Zone
	}
	if az != nil {
		return *az
	}
	return ""
}

// runningInstance gets an instance: nil while it is still being made, a *backends.ProvisioningError
// when it is gone or in any state but RUNNING. what names it in messages; gone says why it may be gone.
func runningInstance(ctx context.Context, s *session, zone, id, what, gone string) (*compute.Instance, error) {
	var inst *compute.Instance
	err := s.do(ctx, func() error {
		var err error
		inst, err = s.svc.Instances.Get(s.project, zone, id).Context(ctx).Do()
		return err
	})
	if isNotFound(err) {
		return nil, &backends.ProvisioningError{Msg: fmt.Sprintf("%s %s in %s no longer exists%s", what, id, zone, gone)}
	}
	if err != nil {
		return nil, s.mapError("instances.get "+id, err)
	}
	switch inst.Status {
	case "PROVISIONING", "STAGING", "":
		return nil, nil
	case "RUNNING":
		return inst, nil
	}
	msg := fmt.Sprintf("%s %s is %s", what, id, inst.Status)
	if inst.StatusMessage != "" {
		msg += ": " + inst.StatusMessage
	}
	return nil, &backends.ProvisioningError{Msg: msg}
}

func (c *gcpCompute) UpdateProvisioningData(ctx context.Context, pd *backends.ProvisioningData) error {
	s, err := c.session(ctx)
	if err != nil {
		return err
	}
	zone := zoneOf(pd.BackendData, pd.AvailabilityZone)
	if zone == "" {
		return &backends.ProvisioningError{Msg: "GCP instance " + pd.InstanceID + " has no zone in its provisioning data"}
	}
	if bd := parseBackendData(pd.BackendData); bd.IsTPU {
		return c.updateTPU(ctx, s, pd, zone, bd.TPUOperation)
	}
	inst, err := runningInstance(ctx, s, zone, pd.InstanceID, "GCP instance", " (deleted, or a preempted spot instance)")
	if inst == nil || err != nil {
		return err
	}
	z := zone
	pd.AvailabilityZone = &z
	if len(inst.NetworkInterfaces) == 0 {
		return nil
	}
	ni := inst.NetworkInterfaces[0]
	if ni.NetworkIP != "" {
		ip := ni.NetworkIP
		pd.InternalIP = &ip
	}
	host := ni.NetworkIP
	if pd.PublicIPEnabled {
		host = ""
		for _, ac := range ni.AccessConfigs {
			if ac.NatIP != "" {
				host = ac.NatIP
			}
		}
	}
	if host != "" {
		port := 22
		pd.Hostname, pd.SSHPort = &host, &port
	}
	return nil
}

func (c *gcpCompute) TerminateInstance(ctx context.Context, instanceID, region, backendDataJSON string) error {
	s, err := c.session(ctx)
	if err != nil {
		return err
	}
	if bd := parseBackendData(backendDataJSON); bd.IsTPU && bd.Zone != "" {
		return c.deleteTPU(ctx, s, instanceID, bd.Zone)
	}
	var zones []string
	switch zone := zoneOf(backendDataJSON, nil); {
	case zone != "":
		zones = []string{zone}
	case strings.Count(region, "-") == 2: // old provisioning data kept the zone as the region
		zones = []string{region}
	case region != "":
		if zones, err = zonesOf(ctx, s, region); err != nil {
			return err
		}
	default:
		return fmt.Errorf("GCP: cannot terminate %s: no zone or region", instanceID)
	}
	for _, zone := range zones {
		rid := newRequestID()
		err := s.do(ctx, func() error {
			_, err := s.svc.Instances.Delete(s.project, zone, instanceID).RequestId(rid).Context(ctx).Do()
			return err
		})
		if err != nil && !isNotFound(err) {
			return s.mapError("instances.delete "+instanceID+" in "+zone, err)
		}
	}
	if zoneOf(backendDataJSON, nil) == "" {
		// Without backend data (the orphan reconciler) the machine may as well be a TPU node.
		return c.deleteTPUAnywhere(ctx, s, instanceID, zones)
	}
	return nil
}

// ListInstances lists the instances and TPU nodes of the configured regions that carry a
// dstack_server label (of any server: the caller compares it with its own id), with their labels.
// It implements backends.InstanceLister for the orphan reconciler.
func (c *gcpCompute) ListInstances(ctx context.Context) ([]backends.Tagged, error) {
	s, err := c.session(ctx)
	if err != nil {
		return nil, err
	}
	wanted := map[string]bool{}
	for _, r := range regionsOf(c.cfg) {
		wanted[r] = true
	}
	var out []backends.Tagged
	err = s.do(ctx, func() error {
		out = out[:0]
		return s.svc.Instances.AggregatedList(s.project).Filter("labels.dstack_server:*").Context(ctx).Pages(ctx,
			func(l *compute.InstanceAggregatedList) error {
				for _, scoped := range l.Items {
					for _, inst := range scoped.Instances {
						zone := path.Base(inst.Zone)
						region := regionOfZone(zone)
						if !wanted[region] || inst.Labels["dstack_server"] == "" {
							continue
						}
						t := backends.Tagged{Backend: typ, InstanceID: inst.Name, Region: region, Name: inst.Name,
							State: strings.ToLower(inst.Status), Tags: map[string]string{}}
						for k, v := range inst.Labels {
							t.Tags[k] = v
						}
						if ts, err := time.Parse(time.RFC3339, inst.CreationTimestamp); err == nil {
							t.LaunchedAt = ts
						}
						out = append(out, t)
					}
				}
				return nil
			})
	})
	if err != nil {
		return nil, s.mapError("instances.aggregatedList", err)
	}
	nodes, err := c.listTPU(ctx, s, wanted)
	if err != nil {
		return nil, err
	}
	out = append(out, nodes...)
	sort.Slice(out, func(i, j int) bool { return out[i].InstanceID < out[j].InstanceID })
	return out, nil
}

var _ backends.InstanceLister = (*gcpCompute)(nil)
