package gcp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/api/compute/v1"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/bootstrap"
)

// Gateways on Compute Engine (backends.GatewayCompute), as dstack makes them:
//
//   - CreateGateway first makes sure SSH, HTTP and HTTPS reach instances tagged
//     dstack-gateway-instance: the rule dstack-gateway-in-all-<network> (tcp 22, 80 and 443 from
//     anywhere) is created when missing (firewalls.get, firewalls.insert). A Shared VPC's rules
//     belong to its host project's admins, so there dstack only looks (firewalls.list of
//     vpc_project_id) and refuses the gateway, naming the rule to add, when no enabled INGRESS rule
//     of the VPC that applies to the tag lets those ports in. Then it inserts the instance
//     dstack-<project>-<gateway>-<random> in the region's zones in turn, moving on when a zone has
//     no capacity (as CreateInstance does): machine type instance_type or e2-small, a 10 GB Ubuntu
//     boot disk, ssh-keys for ubuntu and no startup script (the server installs dstack-gateway over
//     SSH), the network tag, labels (the config's tags and the gateway's), vm_service_account, and
//     an external IP unless the gateway's public_ip is false.
//   - UpdateGateway is instances.get: RUNNING gives the external IP (the internal one when the
//     instance has none), PROVISIONING and STAGING nothing yet, any other state or a 404 a
//     *backends.ProvisioningError.
//   - TerminateGateway is TerminateInstance's instances.delete, 404 success. The firewall rule
//     stays: it serves every gateway of the VPC.

// GatewayTag is the network tag of gateways, which their firewall rule targets.
const GatewayTag = "dstack-gateway-instance"

// GatewayMachineType is a gateway's machine type when the configuration names none.
const GatewayMachineType = "e2-small"

// gatewayDiskGB is the size of a gateway's boot disk.
const gatewayDiskGB = 10

// gatewayPorts are what a gateway's firewall rule lets in: SSH for the server, HTTP and HTTPS for
// everyone.
var gatewayPorts = []string{"22", "80", "443"}

var _ backends.GatewayCompute = (*gcpCompute)(nil)

// GatewayFirewallRuleName is the gateway rule of a VPC, named as dstack names it.
func GatewayFirewallRuleName(vpc string) string {
	return sanitizeName("dstack-gateway-in-all-" + strings.ReplaceAll("global/networks/"+vpc, "/", "-"))
}

// gatewayInstanceName is dstack-<project>-<gateway>-<8 hex>: the suffix lets a gateway be made
// again under its name while the last instance is still being deleted.
func gatewayInstanceName(cfg backends.GatewayConfig) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := strings.ToLower(cfg.Name) + "-" + hex.EncodeToString(b[:])
	return sanitizeName(bootstrap.ResourceName(strings.ToLower(cfg.ProjectName), name, 63))
}

// ensureGatewayFirewall makes sure the VPC lets SSH, HTTP and HTTPS in to gateways: it creates
// dstack's rule when missing or, in a Shared VPC, checks that its admins made one.
func (c *gcpCompute) ensureGatewayFirewall(ctx context.Context, s *session) error {
	vpc, project := c.vpc(s)
	network := networkPath(project, vpc)
	key := "gateway " + network
	c.mu.Lock()
	ok := c.firewalls[key]
	c.mu.Unlock()
	if ok {
		return nil
	}
	var err error
	if c.cfg.String("vpc_project_id") != "" {
		err = c.checkSharedGatewayFirewall(ctx, s, project, vpc)
	} else {
		err = c.createGatewayFirewall(ctx, s, project, vpc)
	}
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.firewalls[key] = true
	c.mu.Unlock()
	return nil
}

func (c *gcpCompute) createGatewayFirewall(ctx context.Context, s *session, project, vpc string) error {
	name := GatewayFirewallRuleName(vpc)
	err := s.do(ctx, func() error {
		_, err := s.svc.Firewalls.Get(project, name).Context(ctx).Do()
		return err
	})
	if isNotFound(err) {
		rule := &compute.Firewall{Name: name, Network: networkPath(project, vpc), Direction: "INGRESS",
			Description: "SSH, HTTP and HTTPS to dstack gateways",
			Allowed:     []*compute.FirewallAllowed{{IPProtocol: "tcp", Ports: gatewayPorts}}, SourceRanges: []string{"0.0.0.0/0"},
			TargetTags: []string{GatewayTag}}
		var op *compute.Operation
		rid := newRequestID()
		err = s.do(ctx, func() error {
			var err error
			op, err = s.svc.Firewalls.Insert(project, rule).RequestId(rid).Context(ctx).Do()
			return err
		})
		if ge := apiError(err); ge != nil && ge.Code == http.StatusConflict {
			err = nil // created meanwhile by a concurrent gateway
		} else if err == nil {
			op, err = c.waitGlobal(ctx, s, project, op)
			if err == nil && op.Error != nil {
				err = fmt.Errorf("GCP firewall rule %s: %s", name, opErrorText(op))
			}
		}
	}
	return s.mapError("firewall rule "+name+" of VPC "+vpc, err)
}

// checkSharedGatewayFirewall lists the rules of a Shared VPC's host project and wants those that
// apply to gateways to let 22, 80 and 443 in together. A refusal to list them (403: the service
// project's account may not read the host project's rules) leaves it to the admins: the gateway
// is made, as dstack makes it without looking.
func (c *gcpCompute) checkSharedGatewayFirewall(ctx context.Context, s *session, project, vpc string) error {
	var rules []*compute.Firewall
	err := s.do(ctx, func() error {
		rules = rules[:0]
		return s.svc.Firewalls.List(project).Context(ctx).Pages(ctx, func(l *compute.FirewallList) error {
			rules = append(rules, l.Items...)
			return nil
		})
	})
	if ge := apiError(err); ge != nil && ge.Code == http.StatusForbidden {
		return nil
	}
	if err != nil {
		return s.mapError("firewalls.list of project "+project, err)
	}
	missing := uncoveredPorts(rules, networkPath(project, vpc), GatewayTag, gatewayPorts)
	if len(missing) == 0 {
		return nil
	}
	return &backends.ProvisioningError{Msg: fmt.Sprintf("GCP Shared VPC %s of project %s lets no TCP %s in to gateways, and dstack does not create firewall rules in a Shared VPC; "+
		"ask its admins for an INGRESS rule allowing tcp 22, 80 and 443 from 0.0.0.0/0 to the target tag %s, e.g. "+
		"`gcloud compute firewall-rules create %s --project %s --network %s --direction INGRESS --allow tcp:22,tcp:80,tcp:443 --source-ranges 0.0.0.0/0 --target-tags %s`",
		vpc, project, strings.Join(missing, ", "), GatewayTag, GatewayFirewallRuleName(vpc), project, vpc, GatewayTag)}
}

// uncoveredPorts are the ports of want that no enabled INGRESS allow rule of the network lets in
// to instances with tag (rules without targets apply to every instance; rules targeting service
// accounts are not counted).
func uncoveredPorts(rules []*compute.Firewall, network, tag string, want []string) []string {
	covered := map[string]bool{}
	for _, r := range rules {
		if r.Disabled || r.Direction != "" && r.Direction != "INGRESS" || !strings.HasSuffix(r.Network, network) ||
			len(r.TargetServiceAccounts) > 0 || len(r.TargetTags) > 0 && !slices.Contains(r.TargetTags, tag) {
			continue
		}
		for _, a := range r.Allowed {
			if a.IPProtocol != "tcp" && a.IPProtocol != "6" && a.IPProtocol != "all" {
				continue
			}
			for _, p := range want {
				if portAllowed(a.Ports, p) {
					covered[p] = true
				}
			}
		}
	}
	var missing []string
	for _, p := range want {
		if !covered[p] {
			missing = append(missing, p)
		}
	}
	return missing
}

// portAllowed reports whether a rule's ports ("22", "80-443"; none: all) include port.
func portAllowed(ports []string, port string) bool {
	if len(ports) == 0 {
		return true
	}
	n, _ := strconv.Atoi(port)
	for _, p := range ports {
		lo, hi, isRange := strings.Cut(p, "-")
		if !isRange {
			hi = lo
		}
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if err1 == nil && err2 == nil && a <= n && n <= b {
			return true
		}
	}
	return false
}

func (c *gcpCompute) gatewayInstance(cfg backends.GatewayConfig, name, zone, machineType string, n nic) *compute.Instance {
	var keys []string
	for _, k := range cfg.SSHPublicKeys {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, Username+":"+k)
		}
	}
	sshKeys := strings.Join(keys, "\n")
	own := map[string]string{"dstack_project": cfg.ProjectName, "dstack_gateway": cfg.Name}
	for k, v := range cfg.Tags {
		own[k] = v
	}
	tags, _ := c.cfg.Values["tags"].(map[string]any)
	labels := Labels(tags, own)
	inst := &compute.Instance{
		Name:        name,
		MachineType: "zones/" + zone + "/machineTypes/" + machineType,
		Labels:      labels,
		Tags:        &compute.Tags{Items: []string{GatewayTag}},
		Metadata:    &compute.Metadata{Items: []*compute.MetadataItems{{Key: "ssh-keys", Value: &sshKeys}}},
		Disks: []*compute.AttachedDisk{{Boot: true, AutoDelete: true, Type: "PERSISTENT", InitializeParams: &compute.AttachedDiskInitializeParams{
			SourceImage: Image, DiskSizeGb: gatewayDiskGB, DiskType: "zones/" + zone + "/diskTypes/pd-balanced", Labels: labels}}},
		NetworkInterfaces: []*compute.NetworkInterface{{Network: n.network, Subnetwork: n.subnet}},
	}
	if cfg.PublicIP {
		inst.NetworkInterfaces[0].AccessConfigs = []*compute.AccessConfig{{Type: "ONE_TO_ONE_NAT", Name: "External NAT"}}
	}
	if sa := c.cfg.String("vm_service_account"); sa != "" {
		inst.ServiceAccounts = []*compute.ServiceAccount{{Email: sa, Scopes: []string{compute.CloudPlatformScope}}}
	}
	return inst
}

func (c *gcpCompute) CreateGateway(ctx context.Context, cfg backends.GatewayConfig) (*backends.GatewayProvisioningData, error) {
	s, err := c.session(ctx)
	if err != nil {
		return nil, err
	}
	zones, err := zonesOf(ctx, s, cfg.Region)
	if err != nil {
		return nil, err
	}
	if len(zones) == 0 {
		return nil, fmt.Errorf("GCP region %s has no zones; choose another region for gateway %s", cfg.Region, cfg.Name)
	}
	if err := c.ensureGatewayFirewall(ctx, s); err != nil {
		return nil, err
	}
	vpc, vpcProject := c.vpc(s)
	subnet, err := c.subnet(ctx, s, cfg.Region, vpc, "vpc_name")
	if err != nil {
		return nil, err
	}
	machineType := cfg.InstanceType
	if machineType == "" {
		machineType = GatewayMachineType
	}
	name := gatewayInstanceName(cfg)
	created := func(zone string) *backends.GatewayProvisioningData {
		data, _ := json.Marshal(backendData{Zone: zone})
		return &backends.GatewayProvisioningData{Backend: typ, InstanceID: name, Region: cfg.Region, AvailabilityZone: zone,
			Username: Username, SSHPort: 22, BackendData: string(data)}
	}
	var refusals []string
	for _, zone := range zones {
		inst := c.gatewayInstance(cfg, name, zone, machineType, nic{network: networkPath(vpcProject, vpc), subnet: subnet})
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
				// Accepted, so the machine exists: UpdateGateway reports it if the operation failed.
				return created(zone), nil
			}
			op = done
		}
		switch {
		case err != nil && (isCapacity(err) || isNotFound(err) && strings.Contains(apiError(err).Message, "Type")):
			refusals = append(refusals, zone+": "+apiError(err).Message)
			continue
		case err != nil:
			return nil, s.mapError("instances.insert of gateway "+name+" in "+zone, err)
		case op.Error != nil:
			if opCapacity(op) {
				refusals = append(refusals, zone+": "+opErrorText(op))
				continue
			}
			return nil, fmt.Errorf("GCP instances.insert of gateway %s in %s failed: %s", name, zone, opErrorText(op))
		}
		return created(zone), nil
	}
	return nil, &backends.NoCapacityError{Msg: fmt.Sprintf("GCP %s %s for gateway %s: %s", cfg.Region, machineType, cfg.Name, strings.Join(refusals, "; "))}
}

func (c *gcpCompute) UpdateGateway(ctx context.Context, gpd *backends.GatewayProvisioningData) error {
	s, err := c.session(ctx)
	if err != nil {
		return err
	}
	zone := zoneOf(gpd.BackendData, &gpd.AvailabilityZone)
	if zone == "" {
		return &backends.ProvisioningError{Msg: "GCP gateway instance " + gpd.InstanceID + " has no zone in its provisioning data"}
	}
	inst, err := runningInstance(ctx, s, zone, gpd.InstanceID, "GCP gateway instance", "")
	if inst == nil || err != nil {
		return err
	}
	if len(inst.NetworkInterfaces) == 0 {
		return nil
	}
	ni := inst.NetworkInterfaces[0]
	ip := ""
	if len(ni.AccessConfigs) == 0 {
		ip = ni.NetworkIP // a private gateway
	}
	for _, ac := range ni.AccessConfigs {
		if ac.NatIP != "" {
			ip = ac.NatIP
		}
	}
	if ip != "" {
		gpd.IPAddress, gpd.AvailabilityZone = ip, zone
	}
	return nil
}

func (c *gcpCompute) TerminateGateway(ctx context.Context, gpd backends.GatewayProvisioningData) error {
	data := gpd.BackendData
	if zoneOf(data, nil) == "" && gpd.AvailabilityZone != "" {
		b, _ := json.Marshal(backendData{Zone: gpd.AvailabilityZone})
		data = string(b)
	}
	return c.TerminateInstance(ctx, gpd.InstanceID, gpd.Region, data)
}
