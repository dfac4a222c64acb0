package azure

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v7"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/bootstrap"
	"github.com/dstackgo/dstack/internal/offers"
)

// Machines on Azure (spec §5), through Azure Resource Manager:
//
//   - CreateInstance, in the offer's location: the resource group (resource_group, else
//     dstack-<project> in eastus, created when missing); the network (vpc_ids' virtual network
//     and its first subnet, else dstack-<location> 10.0.0.0/16 with subnet default 10.0.0.0/20,
//     created when missing) and the network security group dstack-<location>-ssh allowing SSH (22)
//     in; a Standard static public IP unless public_ips is false; a NIC; then the VM: the offer's
//     instance name as the size, dstack's community gallery image (dstack-<v> or dstack-cuda-<v>),
//     the OS disk sized to the offer's disk, admin user ubuntu with the SSH keys, custom data =
//     bootstrap.CloudConfig (starts dstack-shim), vm_managed_identity, spot as Priority Spot +
//     EvictionPolicy Delete + MaxPrice -1, and NIC, public IP and OS disk marked deleteOption
//     Delete so that deleting the VM deletes them. Every resource carries the config's tags and
//     dstack's (the shared ones: dstack_project and dstack_server; the instance's: all of
//     InstanceConfig.Tags). Network operations are awaited (they take seconds); the VM's is not:
//     CreateInstance returns once ARM accepted it, after one look at the operation so that a
//     refusal ARM reports at once is seen at once. Capacity refusals (SkuNotAvailable,
//     AllocationFailed, ZonalAllocationFailed, OverconstrainedAllocationRequest, QuotaExceeded,
//     OperationNotAllowed for a quota) are a *backends.NoCapacityError, and what was made for the
//     VM is deleted.
//   - UpdateProvisioningData reads the VM (with its instance view), then its NIC and public IP.
//   - TerminateInstance deletes the VM (which deletes its NIC, public IP and OS disk), or, when
//     the VM is gone, whatever of those is left; 404 is success.
//   - ListInstances lists the VMs tagged dstack_server in the configured locations.
//
// The instance id is the VM's ARM resource id, so that an orphan found by ListInstances can be
// terminated without backend data.

// Username is the admin user of dstack's images.
const Username = "ubuntu"

// ImageVersion is the version of dstack's images: dstack-<v> and dstack-cuda-<v>.
const ImageVersion = "0.7"

// ImageGallery is the community gallery that publishes dstack's images (Gen2).
const ImageGallery = "dstack-ebac134d-04b9-4c2b-8b6c-ad3e73904aa7"

// MainLocation is where dstack creates its resource group.
const MainLocation = "eastus"

// networkTTL is how long a location's network is remembered.
const networkTTL = 10 * time.Minute

// pollInterval paces the polling of network operations (they end within seconds).
const pollInterval = 500 * time.Millisecond

type compute struct {
	cs  cachedSession
	cfg backends.Config

	mu       sync.Mutex
	groups   map[string]bool             // resource groups known to exist
	networks map[string]cached[*network] // resourceGroup/location -> network
}

type cached[T any] struct {
	v  T
	at time.Time
}

// network is where a location's NICs go.
type network struct{ subnetID, nsgID string }

// backendData is what ProvisioningData.BackendData carries.
type backendData struct {
	ResourceGroup string `json:"resource_group"`
}

func newCompute(cfg backends.Config) (backends.Compute, error) {
	return &compute{cs: cachedSession{cfg: cfg}, cfg: cfg, groups: map[string]bool{}, networks: map[string]cached[*network]{}}, nil
}

// ResourceGroupName is the resource group dstack creates for a project.
func ResourceGroupName(project string) string { return "dstack-" + project }

var nameUnsafe = regexp.MustCompile(`[^A-Za-z0-9-]+`)

// vmName is the VM (and computer) name of an instance: at most 64 letters, digits and hyphens,
// not ending with a hyphen.
func vmName(project, instance string) string {
	n := nameUnsafe.ReplaceAllString(bootstrap.ResourceName(project, instance, 64), "-")
	return strings.TrimRight(n, "-")
}

// tags are the config's tags with dstack's over them.
func (c *compute) tags(extra map[string]string) map[string]*string {
	out := map[string]*string{}
	for k, v := range backends.StringMap(c.cfg.Values["tags"]) {
		out[k] = to.Ptr(v)
	}
	for k, v := range extra {
		out[k] = to.Ptr(v)
	}
	return out
}

// sharedTags go on resources that serve every instance of a project.
func (c *compute) sharedTags(cfg backends.InstanceConfig) map[string]*string {
	t := map[string]string{"dstack_project": cfg.ProjectName}
	if v := cfg.Tags["dstack_server"]; v != "" {
		t["dstack_server"] = v
	}
	return c.tags(t)
}

func (c *compute) instanceTags(cfg backends.InstanceConfig, name string) map[string]*string {
	t := map[string]string{"Name": name, "dstack_project": cfg.ProjectName, "dstack_instance": cfg.InstanceName}
	for k, v := range cfg.Tags {
		t[k] = v
	}
	return c.tags(t)
}

// wait polls a network operation until it ends, bounded by ctx.
func wait[T any](ctx context.Context, p *runtime.Poller[T]) (T, error) {
	for !p.Done() {
		if _, err := p.Poll(ctx); err != nil {
			var zero T
			return zero, err
		}
		if p.Done() {
			break
		}
		select {
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		case <-time.After(pollInterval):
		}
	}
	return p.Result(ctx)
}

// resourceGroup makes sure the instance's resource group exists.
func (c *compute) resourceGroup(ctx context.Context, s *session, cfg backends.InstanceConfig) (string, error) {
	rg := c.cfg.String("resource_group")
	given := rg != ""
	if !given {
		rg = ResourceGroupName(cfg.ProjectName)
	}
	c.mu.Lock()
	known := c.groups[rg]
	c.mu.Unlock()
	if known {
		return rg, nil
	}
	_, err := s.groups.Get(ctx, rg, nil)
	switch {
	case errorCode(err) == "ResourceGroupNotFound" && given:
		return "", &backends.ProvisioningError{Msg: fmt.Sprintf("Azure: resource group %s (resource_group) not found in subscription %s", rg, s.sub)}
	case errorCode(err) == "ResourceGroupNotFound":
		_, err = s.groups.CreateOrUpdate(ctx, rg, armresources.ResourceGroup{Location: to.Ptr(MainLocation), Tags: c.sharedTags(cfg)}, nil)
		if err != nil {
			return "", s.mapError(ctx, "resource group "+rg, err)
		}
	case err != nil:
		return "", s.mapError(ctx, "resource group "+rg, err)
	}
	c.mu.Lock()
	c.groups[rg] = true
	c.mu.Unlock()
	return rg, nil
}

// customNetwork resolves vpc_ids' network of a location: its first subnet. Config problems are
// configErrors naming vpc_ids.<location>.
func (s *session) customNetwork(ctx context.Context, cfg backends.Config, loc string) (string, error) {
	ref := backends.StringMap(cfg.Values["vpc_ids"])[loc]
	rg, name, _ := strings.Cut(ref, "/")
	vnet, err := s.vnets.Get(ctx, rg, name, nil)
	switch c := errorCode(err); {
	case c == "ResourceNotFound" || c == "ResourceGroupNotFound" || httpStatus(err) == 404:
		return "", configError([]string{"vpc_ids", loc}, "virtual network %s not found in subscription %s", ref, s.sub)
	case err != nil:
		return "", err
	}
	if l := normLocation(deref(vnet.Location, "")); l != loc {
		return "", configError([]string{"vpc_ids", loc}, "virtual network %s is in location %s, not %s", ref, l, loc)
	}
	if vnet.Properties != nil {
		for _, sn := range vnet.Properties.Subnets {
			if sn != nil && sn.ID != nil {
				return *sn.ID, nil
			}
		}
	}
	return "", configError([]string{"vpc_ids", loc}, "virtual network %s has no subnet; add one", ref)
}

func normLocation(l string) string { return strings.ToLower(strings.ReplaceAll(l, " ", "")) }

// network finds or creates a location's subnet and security group.
func (c *compute) network(ctx context.Context, s *session, rg, loc string, cfg backends.InstanceConfig) (*network, error) {
	key := rg + "/" + loc
	c.mu.Lock()
	n, ok := c.networks[key]
	c.mu.Unlock()
	if ok && time.Since(n.at) < networkTTL {
		return n.v, nil
	}
	net := &network{}
	if _, custom := backends.StringMap(c.cfg.Values["vpc_ids"])[loc]; custom {
		id, err := s.customNetwork(ctx, c.cfg, loc)
		if err != nil {
			var ce *backends.CredentialsError
			if errors.As(err, &ce) {
				return nil, &backends.ProvisioningError{Msg: "Azure " + loc + ": " + ce.Msg}
			}
			return nil, s.mapError(ctx, loc, err)
		}
		net.subnetID = id
	} else {
		name := "dstack-" + loc
		vnet, err := s.vnets.Get(ctx, rg, name, nil)
		if httpStatus(err) == 404 {
			var p *runtime.Poller[armnetwork.VirtualNetworksClientCreateOrUpdateResponse]
			p, err = s.vnets.BeginCreateOrUpdate(ctx, rg, name, armnetwork.VirtualNetwork{
				Location: to.Ptr(loc), Tags: c.sharedTags(cfg),
				Properties: &armnetwork.VirtualNetworkPropertiesFormat{
					AddressSpace: &armnetwork.AddressSpace{AddressPrefixes: []*string{to.Ptr("10.0.0.0/16")}},
					Subnets: []*armnetwork.Subnet{{Name: to.Ptr("default"),
						Properties: &armnetwork.SubnetPropertiesFormat{AddressPrefix: to.Ptr("10.0.0.0/20")}}},
				}}, nil)
			if err == nil {
				var created armnetwork.VirtualNetworksClientCreateOrUpdateResponse
				created, err = wait(ctx, p)
				vnet.VirtualNetwork = created.VirtualNetwork
			}
		}
		if err != nil {
			return nil, s.mapError(ctx, loc+" virtual network "+name, err)
		}
		if vnet.Properties != nil && len(vnet.Properties.Subnets) > 0 && vnet.Properties.Subnets[0].ID != nil {
			net.subnetID = *vnet.Properties.Subnets[0].ID
		} else {
			return nil, &backends.ProvisioningError{Msg: fmt.Sprintf("Azure %s: virtual network %s/%s has no subnet", loc, rg, name)}
		}
	}
	nsgName := "dstack-" + loc + "-ssh"
	nsg, err := s.nsgs.Get(ctx, rg, nsgName, nil)
	if httpStatus(err) == 404 {
		var p *runtime.Poller[armnetwork.SecurityGroupsClientCreateOrUpdateResponse]
		p, err = s.nsgs.BeginCreateOrUpdate(ctx, rg, nsgName, armnetwork.SecurityGroup{
			Location: to.Ptr(loc), Tags: c.sharedTags(cfg),
			Properties: &armnetwork.SecurityGroupPropertiesFormat{SecurityRules: []*armnetwork.SecurityRule{{
				Name: to.Ptr("ssh"),
				Properties: &armnetwork.SecurityRulePropertiesFormat{
					Protocol: to.Ptr(armnetwork.SecurityRuleProtocolTCP), Access: to.Ptr(armnetwork.SecurityRuleAccessAllow),
					Direction: to.Ptr(armnetwork.SecurityRuleDirectionInbound), Priority: to.Ptr[int32](100),
					SourceAddressPrefix: to.Ptr("*"), SourcePortRange: to.Ptr("*"),
					DestinationAddressPrefix: to.Ptr("*"), DestinationPortRange: to.Ptr("22"),
				}}}}}, nil)
		if err == nil {
			var created armnetwork.SecurityGroupsClientCreateOrUpdateResponse
			created, err = wait(ctx, p)
			nsg.SecurityGroup = created.SecurityGroup
		}
	}
	if err != nil {
		return nil, s.mapError(ctx, loc+" network security group "+nsgName, err)
	}
	net.nsgID = deref(nsg.ID, "")
	c.mu.Lock()
	c.networks[key] = cached[*network]{net, time.Now()}
	c.mu.Unlock()
	return net, nil
}

// forget drops what CreateInstance remembers about a location, after ARM said a reference is gone.
func (c *compute) forget(rg, loc string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.networks, rg+"/"+loc)
	delete(c.groups, rg)
}

func (c *compute) publicIPs() bool {
	b, ok := c.cfg.Values["public_ips"].(bool)
	return !ok || b
}

func imageID(gpu bool) string {
	name := "dstack-" + ImageVersion
	if gpu {
		name = "dstack-cuda-" + ImageVersion
	}
	return "/CommunityGalleries/" + ImageGallery + "/Images/" + name + "/Versions/latest"
}

func (c *compute) CreateInstance(ctx context.Context, offer offers.Offer, cfg backends.InstanceConfig) (*backends.ProvisioningData, error) {
	s, err := c.cs.get()
	if err != nil {
		return nil, err
	}
	loc := offer.Region
	rg, err := c.resourceGroup(ctx, s, cfg)
	if err != nil {
		return nil, err
	}
	net, err := c.network(ctx, s, rg, loc, cfg)
	if err != nil {
		return nil, err
	}
	name := vmName(cfg.ProjectName, cfg.InstanceName)
	tags := c.instanceTags(cfg, name)
	public := c.publicIPs()
	made := created{rg: rg}

	ipConfig := &armnetwork.InterfaceIPConfigurationPropertiesFormat{Subnet: &armnetwork.Subnet{ID: to.Ptr(net.subnetID)},
		PrivateIPAllocationMethod: to.Ptr(armnetwork.IPAllocationMethodDynamic), Primary: to.Ptr(true)}
	if public {
		p, err := s.pips.BeginCreateOrUpdate(ctx, rg, name+"-ip", armnetwork.PublicIPAddress{Location: to.Ptr(loc), Tags: tags,
			SKU:        &armnetwork.PublicIPAddressSKU{Name: to.Ptr(armnetwork.PublicIPAddressSKUNameStandard)},
			Properties: &armnetwork.PublicIPAddressPropertiesFormat{PublicIPAllocationMethod: to.Ptr(armnetwork.IPAllocationMethodStatic)}}, nil)
		var pip armnetwork.PublicIPAddressesClientCreateOrUpdateResponse
		if err == nil {
			pip, err = wait(ctx, p)
		}
		if err != nil {
			return nil, c.failed(ctx, s, made, loc, "public IP "+name+"-ip", err)
		}
		made.pip = name + "-ip"
		ipConfig.PublicIPAddress = &armnetwork.PublicIPAddress{ID: pip.ID,
			Properties: &armnetwork.PublicIPAddressPropertiesFormat{DeleteOption: to.Ptr(armnetwork.DeleteOptionsDelete)}}
	}
	np, err := s.nics.BeginCreateOrUpdate(ctx, rg, name+"-nic", armnetwork.Interface{Location: to.Ptr(loc), Tags: tags,
		Properties: &armnetwork.InterfacePropertiesFormat{
			NetworkSecurityGroup: &armnetwork.SecurityGroup{ID: to.Ptr(net.nsgID)},
			IPConfigurations:     []*armnetwork.InterfaceIPConfiguration{{Name: to.Ptr("ipconfig"), Properties: ipConfig}},
		}}, nil)
	var nic armnetwork.InterfacesClientCreateOrUpdateResponse
	if err == nil {
		nic, err = wait(ctx, np)
	}
	if err != nil {
		if code := errorCode(err); code == "InvalidResourceReference" || code == "ResourceNotFound" {
			made.stale = true // the cached subnet or security group is gone; look again next time
		}
		return nil, c.failed(ctx, s, made, loc, "network interface "+name+"-nic", err)
	}
	made.nic = name + "-nic"

	diskGB := int32((offer.Instance.Resources.Disk.SizeMiB + 1023) / 1024)
	if diskGB == 0 {
		diskGB = int32(offers.DefaultDiskMiB / 1024)
	}
	diskGB = max(diskGB, 30)
	var keys []*armcompute.SSHPublicKey
	for _, k := range cfg.SSHPublicKeys {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, &armcompute.SSHPublicKey{Path: to.Ptr("/home/" + Username + "/.ssh/authorized_keys"), KeyData: to.Ptr(k)})
		}
	}
	vm := armcompute.VirtualMachine{
		Location: to.Ptr(loc),
		Tags:     tags,
		Properties: &armcompute.VirtualMachineProperties{
			HardwareProfile: &armcompute.HardwareProfile{VMSize: to.Ptr(armcompute.VirtualMachineSizeTypes(offer.Instance.Name))},
			StorageProfile: &armcompute.StorageProfile{
				ImageReference: &armcompute.ImageReference{CommunityGalleryImageID: to.Ptr(imageID(len(offer.Instance.Resources.GPUs) > 0))},
				OSDisk: &armcompute.OSDisk{Name: to.Ptr(name + "-osdisk"), CreateOption: to.Ptr(armcompute.DiskCreateOptionTypesFromImage),
					DiskSizeGB: to.Ptr(diskGB), DeleteOption: to.Ptr(armcompute.DiskDeleteOptionTypesDelete),
					ManagedDisk: &armcompute.ManagedDiskParameters{StorageAccountType: to.Ptr(armcompute.StorageAccountTypesStandardSSDLRS)}},
			},
			OSProfile: &armcompute.OSProfile{
				ComputerName:  to.Ptr(name),
				AdminUsername: to.Ptr(Username),
				CustomData:    to.Ptr(base64.StdEncoding.EncodeToString([]byte(bootstrap.CloudConfig(cfg, Username)))),
				LinuxConfiguration: &armcompute.LinuxConfiguration{DisablePasswordAuthentication: to.Ptr(true),
					SSH: &armcompute.SSHConfiguration{PublicKeys: keys}},
			},
			NetworkProfile: &armcompute.NetworkProfile{NetworkInterfaces: []*armcompute.NetworkInterfaceReference{{ID: nic.ID,
				Properties: &armcompute.NetworkInterfaceReferenceProperties{Primary: to.Ptr(true), DeleteOption: to.Ptr(armcompute.DeleteOptionsDelete)}}}},
		},
	}
	if offer.Instance.Resources.Spot {
		vm.Properties.Priority = to.Ptr(armcompute.VirtualMachinePriorityTypesSpot)
		vm.Properties.EvictionPolicy = to.Ptr(armcompute.VirtualMachineEvictionPolicyTypesDelete)
		vm.Properties.BillingProfile = &armcompute.BillingProfile{MaxPrice: to.Ptr[float64](-1)} // pay up to the on-demand price
	}
	if mi := c.cfg.String("vm_managed_identity"); mi != "" {
		mrg, mname, _ := strings.Cut(mi, "/")
		id := fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.ManagedIdentity/userAssignedIdentities/%s", s.sub, mrg, mname)
		vm.Identity = &armcompute.VirtualMachineIdentity{Type: to.Ptr(armcompute.ResourceIdentityTypeUserAssigned),
			UserAssignedIdentities: map[string]*armcompute.UserAssignedIdentitiesValue{id: {}}}
	}
	poller, err := s.vms.BeginCreateOrUpdate(ctx, rg, name, vm, nil)
	if err != nil {
		return nil, c.failed(ctx, s, made, loc, "VM "+name, err)
	}
	made.vm = name
	// One look at the operation: a refusal ARM has already decided (an allocation failure) is
	// reported now rather than on the next poll. A failed look changes nothing: the VM was accepted.
	if _, perr := poller.Poll(ctx); perr == nil && poller.Done() {
		if _, rerr := poller.Result(ctx); rerr != nil {
			return nil, c.failed(ctx, s, made, loc, "VM "+name, rerr)
		}
	}
	data, _ := json.Marshal(backendData{ResourceGroup: rg})
	pd := &backends.ProvisioningData{
		Backend:         typ,
		InstanceType:    offer.Instance,
		InstanceID:      vmID(s.sub, rg, name),
		PublicIPEnabled: public,
		Region:          loc,
		Price:           offer.Price,
		Username:        Username,
		Dockerized:      true,
		BackendData:     string(data),
	}
	if nic.Properties != nil && len(nic.Properties.IPConfigurations) > 0 && nic.Properties.IPConfigurations[0].Properties != nil {
		if ip := deref(nic.Properties.IPConfigurations[0].Properties.PrivateIPAddress, ""); ip != "" {
			pd.InternalIP = &ip
		}
	}
	return pd, nil
}

// created is what CreateInstance made for a VM, to delete when the VM is refused.
type created struct {
	rg, vm, nic, pip string
	stale            bool
}

// failed maps a CreateInstance error and deletes what was made for the VM (best effort, with a
// context of its own: the caller's may be what ran out).
func (c *compute) failed(ctx context.Context, s *session, made created, loc, what string, err error) error {
	mapped := s.mapError(ctx, loc+" "+what, err)
	if made.stale {
		c.forget(made.rg, loc)
	}
	if made.vm != "" || made.nic != "" || made.pip != "" {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if cerr := c.deleteAll(cctx, s, made.rg, made.vm, made.nic, made.pip, ""); cerr != nil {
			mapped = fmt.Errorf("%w (and cleaning up after it failed: %v)", mapped, cerr)
			if backends.IsNoCapacity(mapped) {
				mapped = &backends.NoCapacityError{Msg: mapped.Error()}
			}
		}
	}
	return mapped
}

// deleteAll deletes a VM (which deletes what it was created to delete), then whatever NIC, public
// IP and OS disk of that name is left; every 404 is success. It waits for the NIC deletion, as a
// public IP cannot be deleted while a NIC holds it.
func (c *compute) deleteAll(ctx context.Context, s *session, rg, vm, nic, pip, disk string) error {
	ignore := func(err error) error {
		if err == nil || httpStatus(err) == 404 {
			return nil
		}
		return err
	}
	if vm != "" {
		p, err := s.vms.BeginDelete(ctx, rg, vm, nil)
		if err = ignore(err); err != nil {
			return s.mapError(ctx, "deleting VM "+vm, err)
		}
		if p != nil && !p.Done() {
			// The VM takes its NIC, public IP and disk with it; they are not ours to delete meanwhile.
			return nil
		}
	}
	if nic != "" {
		p, err := s.nics.BeginDelete(ctx, rg, nic, nil)
		if err == nil {
			_, err = wait(ctx, p)
		}
		if err = ignore(err); err != nil {
			return s.mapError(ctx, "deleting network interface "+nic, err)
		}
	}
	if pip != "" {
		p, err := s.pips.BeginDelete(ctx, rg, pip, nil)
		if err == nil {
			_, err = wait(ctx, p)
		}
		if err = ignore(err); err != nil {
			return s.mapError(ctx, "deleting public IP "+pip, err)
		}
	}
	if disk != "" {
		p, err := s.disks.BeginDelete(ctx, rg, disk, nil)
		if err == nil && p != nil && p.Done() {
			_, err = p.Result(ctx)
		}
		if err = ignore(err); err != nil {
			return s.mapError(ctx, "deleting disk "+disk, err)
		}
	}
	return nil
}

func vmID(sub, rg, name string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/%s", sub, rg, name)
}

// parseInstance reads the resource group and VM name of an instance id (a VM's resource id, or a
// bare VM name with the resource group in the backend data or the config).
func (c *compute) parseInstance(id, data string) (rg, name string, err error) {
	parts := strings.Split(strings.Trim(id, "/"), "/")
	if len(parts) == 8 && strings.EqualFold(parts[2], "resourceGroups") && strings.EqualFold(parts[6], "virtualMachines") {
		return parts[3], parts[7], nil
	}
	var bd backendData
	_ = json.Unmarshal([]byte(data), &bd)
	rg = bd.ResourceGroup
	if rg == "" {
		rg = c.cfg.String("resource_group")
	}
	if rg == "" || strings.Contains(id, "/") {
		return "", "", fmt.Errorf("Azure: %q is not a VM resource id and no resource group is known for it", id)
	}
	return rg, id, nil
}

func (c *compute) UpdateProvisioningData(ctx context.Context, pd *backends.ProvisioningData) error {
	s, err := c.cs.get()
	if err != nil {
		return err
	}
	rg, name, err := c.parseInstance(pd.InstanceID, pd.BackendData)
	if err != nil {
		return err
	}
	vm, err := s.vms.Get(ctx, rg, name, &armcompute.VirtualMachinesClientGetOptions{Expand: to.Ptr(armcompute.InstanceViewTypesInstanceView)})
	if httpStatus(err) == 404 {
		return &backends.ProvisioningError{Msg: fmt.Sprintf("Azure VM %s is gone (deleted or evicted)", name)}
	}
	if err != nil {
		return s.mapError(ctx, pd.Region+" VM "+name, err)
	}
	if vm.Properties == nil {
		return nil
	}
	state := deref(vm.Properties.ProvisioningState, "")
	switch state {
	case "Succeeded":
	case "Failed":
		msg := fmt.Sprintf("Azure VM %s failed to provision", name)
		if iv := vm.Properties.InstanceView; iv != nil {
			for _, st := range iv.Statuses {
				if st != nil && strings.HasPrefix(deref(st.Code, ""), "ProvisioningState/failed") {
					msg += ": " + deref(st.Message, deref(st.Code, ""))
				}
			}
		}
		return &backends.ProvisioningError{Msg: msg}
	case "Deleting":
		return &backends.ProvisioningError{Msg: fmt.Sprintf("Azure VM %s is being deleted", name)}
	default:
		return nil // Creating, Updating: not up yet
	}
	if iv := vm.Properties.InstanceView; iv != nil {
		for _, st := range iv.Statuses {
			code := deref(st.Code, "")
			if strings.HasPrefix(code, "PowerState/") && code != "PowerState/running" && code != "PowerState/starting" {
				return &backends.ProvisioningError{Msg: fmt.Sprintf("Azure VM %s is %s", name, strings.TrimPrefix(code, "PowerState/"))}
			}
		}
	}
	nic, err := s.nics.Get(ctx, rg, name+"-nic", nil)
	if err != nil {
		return s.mapError(ctx, pd.Region+" network interface "+name+"-nic", err)
	}
	var private string
	if nic.Properties != nil && len(nic.Properties.IPConfigurations) > 0 && nic.Properties.IPConfigurations[0].Properties != nil {
		private = deref(nic.Properties.IPConfigurations[0].Properties.PrivateIPAddress, "")
	}
	if private != "" {
		pd.InternalIP = &private
	}
	host := private
	if pd.PublicIPEnabled {
		pip, err := s.pips.Get(ctx, rg, name+"-ip", nil)
		if err != nil {
			return s.mapError(ctx, pd.Region+" public IP "+name+"-ip", err)
		}
		host = ""
		if pip.Properties != nil {
			host = deref(pip.Properties.IPAddress, "")
		}
	}
	if host != "" {
		port := 22
		pd.Hostname, pd.SSHPort = &host, &port
	}
	return nil
}

func (c *compute) TerminateInstance(ctx context.Context, instanceID, region, data string) error {
	s, err := c.cs.get()
	if err != nil {
		return err
	}
	rg, name, err := c.parseInstance(instanceID, data)
	if err != nil {
		return err
	}
	_, err = s.vms.Get(ctx, rg, name, nil)
	switch {
	case err == nil:
		return c.deleteAll(ctx, s, rg, name, "", "", "")
	case httpStatus(err) == 404:
		// The VM is gone; so should be what it was created with, unless it never came to be.
		return c.deleteAll(ctx, s, rg, "", name+"-nic", name+"-ip", name+"-osdisk")
	}
	return s.mapError(ctx, region+" VM "+name, err)
}

// ListInstances lists, in every configured location, the VMs that carry a dstack_server tag (of
// any server: the caller compares it with its own id), with their tags. It implements
// backends.InstanceLister for the orphan reconciler.
func (c *compute) ListInstances(ctx context.Context) ([]backends.Tagged, error) {
	s, err := c.cs.get()
	if err != nil {
		return nil, err
	}
	out, err := backends.ListEachRegion(regionsOf(c.cfg), func(loc string) ([]backends.Tagged, error) {
		var out []backends.Tagged
		p := s.vms.NewListByLocationPager(loc, nil)
		for p.More() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, s.mapError(ctx, loc+" listing VMs", err)
			}
			for _, vm := range page.Value {
				if vm == nil || vm.Tags["dstack_server"] == nil {
					continue
				}
				t := backends.Tagged{Backend: typ, InstanceID: deref(vm.ID, ""), Region: loc, Name: deref(vm.Name, ""), Tags: map[string]string{}}
				for k, v := range vm.Tags {
					t.Tags[k] = deref(v, "")
				}
				if vm.Properties != nil {
					t.State = deref(vm.Properties.ProvisioningState, "")
					t.LaunchedAt = deref(vm.Properties.TimeCreated, time.Time{})
				}
				out = append(out, t)
			}
		}
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].LaunchedAt.Before(out[j].LaunchedAt) })
	return out, nil
}

var _ backends.InstanceLister = (*compute)(nil)
