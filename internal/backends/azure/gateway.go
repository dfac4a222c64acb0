package azure

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v7"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"

	"github.com/dstackgo/dstack/internal/backends"
)

// Gateways on Azure (backends.GatewayCompute), as dstack makes them:
//
//   - CreateGateway, in the gateway's location: the resource group and the network as
//     CreateInstance finds or makes them; the network security group dstack-<location>-gateway
//     allowing TCP 22 (the server's SSH), 80 and 443 in, created when missing; a Standard static
//     public IP (Azure gateways are always public: the backend has no private gateways, so
//     public_ip: false is refused); a NIC in that security group; then the VM
//     dstack-<project>-<gateway>-<random>: size instance_type or Standard_B1s, Canonical's Ubuntu
//     22.04 LTS (Gen2) platform image, a 30 GB OS disk, admin user ubuntu with the SSH keys and no
//     custom data (the server installs dstack-gateway over SSH). NIC, public IP and OS disk are
//     deleted with the VM. Every resource carries the config's tags and the gateway's. As in
//     CreateInstance, a refusal ARM reports at once (no capacity) deletes what was made.
//   - UpdateGateway is UpdateProvisioningData: once the VM is provisioned and running, the public
//     IP resource's address.
//   - TerminateGateway is TerminateInstance: the VM with what it deletes, or what is left of it.
//     The security group stays: it serves every gateway of the location.

// GatewaySize is a gateway's VM size when the configuration names none.
const GatewaySize = "Standard_B1s"

// gatewayOSDiskGB is the size of a gateway's OS disk (Azure's smallest for the image).
const gatewayOSDiskGB = 30

// gatewayImage is Canonical's Ubuntu 22.04 LTS, Gen2, newest version.
var gatewayImage = armcompute.ImageReference{Publisher: to.Ptr("Canonical"), Offer: to.Ptr("0001-com-ubuntu-server-jammy"),
	SKU: to.Ptr("22_04-lts-gen2"), Version: to.Ptr("latest")}

// gatewayPorts are the inbound TCP ports of gateways: SSH for the server, HTTP and HTTPS for
// everyone, with the names of their security rules.
var gatewayPorts = []struct{ name, port string }{{"ssh", "22"}, {"http", "80"}, {"https", "443"}}

var _ backends.GatewayCompute = (*compute)(nil)

// GatewaySecurityGroupName is the network security group of a location's gateways.
func GatewaySecurityGroupName(loc string) string { return "dstack-" + loc + "-gateway" }

// gatewayVMName is dstack-<project>-<gateway>-<8 hex>: the suffix lets a gateway be made again
// under its name while the last VM is still being deleted.
func gatewayVMName(cfg backends.GatewayConfig) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return vmName(cfg.ProjectName, cfg.Name+"-"+hex.EncodeToString(b[:]))
}

// gatewaySecurityGroup finds or creates a location's gateway security group, cached as the
// networks are.
func (c *compute) gatewaySecurityGroup(ctx context.Context, s *session, rg, loc string, owner backends.InstanceConfig) (string, error) {
	key := rg + "/" + loc + "/gateway"
	c.mu.Lock()
	n, ok := c.networks[key]
	c.mu.Unlock()
	if ok && time.Since(n.at) < networkTTL {
		return n.v.nsgID, nil
	}
	name := GatewaySecurityGroupName(loc)
	nsg, err := s.nsgs.Get(ctx, rg, name, nil)
	if httpStatus(err) == 404 {
		var rules []*armnetwork.SecurityRule
		for i, p := range gatewayPorts {
			rules = append(rules, &armnetwork.SecurityRule{Name: to.Ptr(p.name), Properties: &armnetwork.SecurityRulePropertiesFormat{
				Protocol: to.Ptr(armnetwork.SecurityRuleProtocolTCP), Access: to.Ptr(armnetwork.SecurityRuleAccessAllow),
				Direction: to.Ptr(armnetwork.SecurityRuleDirectionInbound), Priority: to.Ptr(int32(100 + i)),
				SourceAddressPrefix: to.Ptr("*"), SourcePortRange: to.Ptr("*"),
				DestinationAddressPrefix: to.Ptr("*"), DestinationPortRange: to.Ptr(p.port),
			}})
		}
		var p *runtime.Poller[armnetwork.SecurityGroupsClientCreateOrUpdateResponse]
		p, err = s.nsgs.BeginCreateOrUpdate(ctx, rg, name, armnetwork.SecurityGroup{Location: to.Ptr(loc), Tags: c.sharedTags(owner),
			Properties: &armnetwork.SecurityGroupPropertiesFormat{SecurityRules: rules}}, nil)
		if err == nil {
			var created armnetwork.SecurityGroupsClientCreateOrUpdateResponse
			created, err = wait(ctx, p)
			nsg.SecurityGroup = created.SecurityGroup
		}
	}
	if err != nil {
		return "", s.mapError(ctx, loc+" network security group "+name, err)
	}
	id := deref(nsg.ID, "")
	c.mu.Lock()
	c.networks[key] = cached[*network]{&network{nsgID: id}, time.Now()}
	c.mu.Unlock()
	return id, nil
}

func (c *compute) CreateGateway(ctx context.Context, cfg backends.GatewayConfig) (*backends.GatewayProvisioningData, error) {
	if !cfg.PublicIP {
		return nil, fmt.Errorf("Azure gateway %s: the azure backend has no private gateways; remove `public_ip: false` from the gateway configuration (Azure gateways always get a public IP)", cfg.Name)
	}
	s, err := c.cs.get()
	if err != nil {
		return nil, err
	}
	loc := cfg.Region
	owner := backends.InstanceConfig{ProjectName: cfg.ProjectName, Tags: cfg.Tags}
	rg, err := c.resourceGroup(ctx, s, owner)
	if err != nil {
		return nil, err
	}
	net, err := c.network(ctx, s, rg, loc, owner)
	if err != nil {
		return nil, err
	}
	nsgID, err := c.gatewaySecurityGroup(ctx, s, rg, loc, owner)
	if err != nil {
		return nil, err
	}
	name := gatewayVMName(cfg)
	t := map[string]string{"Name": name, "dstack_project": cfg.ProjectName, "dstack_gateway": cfg.Name}
	for k, v := range cfg.Tags {
		t[k] = v
	}
	tags := c.tags(t)
	made := created{rg: rg}

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
	np, err := s.nics.BeginCreateOrUpdate(ctx, rg, name+"-nic", armnetwork.Interface{Location: to.Ptr(loc), Tags: tags,
		Properties: &armnetwork.InterfacePropertiesFormat{
			NetworkSecurityGroup: &armnetwork.SecurityGroup{ID: to.Ptr(nsgID)},
			IPConfigurations: []*armnetwork.InterfaceIPConfiguration{{Name: to.Ptr("ipconfig"), Properties: &armnetwork.InterfaceIPConfigurationPropertiesFormat{
				Subnet: &armnetwork.Subnet{ID: to.Ptr(net.subnetID)}, PrivateIPAllocationMethod: to.Ptr(armnetwork.IPAllocationMethodDynamic), Primary: to.Ptr(true),
				PublicIPAddress: &armnetwork.PublicIPAddress{ID: pip.ID,
					Properties: &armnetwork.PublicIPAddressPropertiesFormat{DeleteOption: to.Ptr(armnetwork.DeleteOptionsDelete)}},
			}}},
		}}, nil)
	var nic armnetwork.InterfacesClientCreateOrUpdateResponse
	if err == nil {
		nic, err = wait(ctx, np)
	}
	if err != nil {
		if code := errorCode(err); code == "InvalidResourceReference" || code == "ResourceNotFound" {
			// A cached subnet or security group is gone; look again next time.
			made.stale = true
			c.mu.Lock()
			delete(c.networks, rg+"/"+loc+"/gateway")
			c.mu.Unlock()
		}
		return nil, c.failed(ctx, s, made, loc, "network interface "+name+"-nic", err)
	}
	made.nic = name + "-nic"

	size := cfg.InstanceType
	if size == "" {
		size = GatewaySize
	}
	var keys []*armcompute.SSHPublicKey
	for _, k := range cfg.SSHPublicKeys {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, &armcompute.SSHPublicKey{Path: to.Ptr("/home/" + Username + "/.ssh/authorized_keys"), KeyData: to.Ptr(k)})
		}
	}
	image := gatewayImage
	vm := armcompute.VirtualMachine{
		Location: to.Ptr(loc),
		Tags:     tags,
		Properties: &armcompute.VirtualMachineProperties{
			HardwareProfile: &armcompute.HardwareProfile{VMSize: to.Ptr(armcompute.VirtualMachineSizeTypes(size))},
			StorageProfile: &armcompute.StorageProfile{
				ImageReference: &image,
				OSDisk: &armcompute.OSDisk{Name: to.Ptr(name + "-osdisk"), CreateOption: to.Ptr(armcompute.DiskCreateOptionTypesFromImage),
					DiskSizeGB: to.Ptr[int32](gatewayOSDiskGB), DeleteOption: to.Ptr(armcompute.DiskDeleteOptionTypesDelete),
					ManagedDisk: &armcompute.ManagedDiskParameters{StorageAccountType: to.Ptr(armcompute.StorageAccountTypesStandardSSDLRS)}},
			},
			OSProfile: &armcompute.OSProfile{
				ComputerName:  to.Ptr(name),
				AdminUsername: to.Ptr(Username),
				LinuxConfiguration: &armcompute.LinuxConfiguration{DisablePasswordAuthentication: to.Ptr(true),
					SSH: &armcompute.SSHConfiguration{PublicKeys: keys}},
			},
			NetworkProfile: &armcompute.NetworkProfile{NetworkInterfaces: []*armcompute.NetworkInterfaceReference{{ID: nic.ID,
				Properties: &armcompute.NetworkInterfaceReferenceProperties{Primary: to.Ptr(true), DeleteOption: to.Ptr(armcompute.DeleteOptionsDelete)}}}},
		},
	}
	poller, err := s.vms.BeginCreateOrUpdate(ctx, rg, name, vm, nil)
	if err != nil {
		return nil, c.failed(ctx, s, made, loc, "gateway VM "+name, err)
	}
	made.vm = name
	// One look at the operation, as CreateInstance takes: a refusal ARM already decided shows now.
	if _, perr := poller.Poll(ctx); perr == nil && poller.Done() {
		if _, rerr := poller.Result(ctx); rerr != nil {
			return nil, c.failed(ctx, s, made, loc, "gateway VM "+name, rerr)
		}
	}
	data, _ := json.Marshal(backendData{ResourceGroup: rg})
	return &backends.GatewayProvisioningData{Backend: typ, InstanceID: vmID(s.sub, rg, name), Region: loc,
		Username: Username, SSHPort: 22, BackendData: string(data)}, nil
}

func (c *compute) UpdateGateway(ctx context.Context, gpd *backends.GatewayProvisioningData) error {
	pd := &backends.ProvisioningData{Backend: typ, InstanceID: gpd.InstanceID, Region: gpd.Region, PublicIPEnabled: true, BackendData: gpd.BackendData}
	if err := c.UpdateProvisioningData(ctx, pd); err != nil {
		return err
	}
	if pd.Hostname != nil {
		gpd.IPAddress = *pd.Hostname
	}
	return nil
}

func (c *compute) TerminateGateway(ctx context.Context, gpd backends.GatewayProvisioningData) error {
	return c.TerminateInstance(ctx, gpd.InstanceID, gpd.Region, gpd.BackendData)
}
