package azure_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/azure"
	"github.com/dstackgo/dstack/internal/backends/backendtest"
	"github.com/dstackgo/dstack/internal/backends/fake"
)

func gatewayConfig(name, region string) backends.GatewayConfig {
	return backends.GatewayConfig{ProjectName: "main", Name: name, Region: region, PublicIP: true,
		SSHPublicKeys: []string{backendtest.TestKey},
		Tags:          map[string]string{"dstack_project": "main", "dstack_server": "srv-1", "dstack_gateway": name}}
}

func gateways(t *testing.T, cfg backends.Config) backends.GatewayCompute {
	t.Helper()
	comp, err := backendtest.Driver(t, "azure").NewCompute(cfg)
	if err != nil {
		t.Fatal(err)
	}
	gw, ok := comp.(backends.GatewayCompute)
	if !ok {
		t.Fatal("the azure compute is not a GatewayCompute")
	}
	return gw
}

// inboundTCP is what a security group's rules let in: "port" for each inbound TCP allow rule.
func inboundTCP(t *testing.T, srv *fake.Server, id string) []string {
	t.Helper()
	props, ok := srv.AzureProperties(id)
	if !ok {
		t.Fatalf("no security group %s", id)
	}
	var ports []string
	for _, r := range props["securityRules"].([]any) {
		p := r.(map[string]any)["properties"].(map[string]any)
		if p["direction"] == "Inbound" && p["access"] == "Allow" && p["protocol"] == "Tcp" && p["sourceAddressPrefix"] == "*" {
			ports = append(ports, p["destinationPortRange"].(string))
		}
	}
	return ports
}

// leftovers are the VMs, NICs, public IPs and disks among the resources.
func leftovers(srv *fake.Server) []string {
	var out []string
	for id := range srv.AzureResources() {
		if strings.Contains(id, "/virtualmachines/") || strings.Contains(id, "/networkinterfaces/") ||
			strings.Contains(id, "/publicipaddresses/") || strings.Contains(id, "/disks/") {
			out = append(out, id)
		}
	}
	return out
}

func TestGatewayLifecycle(t *testing.T) {
	srv := fake.Use(t, "azure")
	gw := gateways(t, backendtest.Config(t, "azure", map[string]any{"tags": map[string]any{"team": "ml"}}))
	gpd, err := gw.CreateGateway(backendtest.Ctx(t), gatewayConfig("gw", "eastus"))
	if err != nil {
		t.Fatal(err)
	}
	sub := srv.Good.String("subscription_id")
	rgID := "/subscriptions/" + sub + "/resourceGroups/dstack-main"
	if gpd.Backend != "azure" || gpd.Region != "eastus" || gpd.Username != "ubuntu" || gpd.SSHPort != 22 || gpd.IPAddress != "" ||
		!strings.HasPrefix(gpd.InstanceID, rgID+"/providers/Microsoft.Compute/virtualMachines/dstack-main-gw-") ||
		gpd.BackendData != `{"resource_group":"dstack-main"}` {
		t.Errorf("gateway provisioning data %+v", gpd)
	}
	m, ok := srv.Machine(gpd.InstanceID)
	if !ok {
		t.Fatalf("no machine %s", gpd.InstanceID)
	}
	if m.Type != "Standard_B1s" || m.Image != "Canonical:0001-com-ubuntu-server-jammy:22_04-lts-gen2:latest" || m.UserData != "" ||
		m.Extra["admin_username"] != "ubuntu" || !slices.Contains(m.SSHKeys, backendtest.TestKey) || m.Extra["public_key"] != backendtest.TestKey {
		t.Errorf("machine %+v", m)
	}
	for deadline := time.Now().Add(10 * time.Second); gpd.IPAddress == ""; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no gateway IP after 10s")
		}
		if err := gw.UpdateGateway(backendtest.Ctx(t), gpd); err != nil {
			t.Fatalf("UpdateGateway: %v", err)
		}
	}
	if m, _ = srv.Machine(gpd.InstanceID); gpd.IPAddress != m.IP {
		t.Errorf("gateway IP %s, want the public %s", gpd.IPAddress, m.IP)
	}

	// The gateway's NIC is in the gateway security group, which lets 22, 80 and 443 in.
	nsgID := rgID + "/providers/Microsoft.Network/networkSecurityGroups/" + azure.GatewaySecurityGroupName("eastus")
	if got := inboundTCP(t, srv, nsgID); !slices.Equal(got, []string{"22", "80", "443"}) {
		t.Errorf("gateway security group lets TCP %v in, want 22, 80, 443", got)
	}
	name := gpd.InstanceID[strings.LastIndex(gpd.InstanceID, "/")+1:]
	nic, _ := srv.AzureProperties(rgID + "/providers/Microsoft.Network/networkInterfaces/" + name + "-nic")
	if got, _ := nic["networkSecurityGroup"].(map[string]any)["id"].(string); !strings.EqualFold(got, nsgID) {
		t.Errorf("the gateway NIC is in security group %q, want %s", got, nsgID)
	}
	// Tags on what was made for the gateway: the config's and the gateway's.
	for id, tags := range srv.AzureResources() {
		if strings.Contains(id, strings.ToLower(name)) && !strings.Contains(id, "/disks/") &&
			(tags["team"] != "ml" || tags["dstack_gateway"] != "gw" || tags["dstack_server"] != "srv-1") {
			t.Errorf("%s has tags %v", id, tags)
		}
	}

	for i := 0; i < 2; i++ {
		if err := gw.TerminateGateway(backendtest.Ctx(t), *gpd); err != nil {
			t.Fatalf("TerminateGateway #%d = %v", i+1, err)
		}
	}
	if alive := srv.Alive(); len(alive) != 0 {
		t.Errorf("alive after terminate: %+v", alive)
	}
	if left := leftovers(srv); len(left) != 0 {
		t.Errorf("left after terminate: %v", left)
	}
	if _, ok := srv.AzureProperties(nsgID); !ok {
		t.Errorf("the gateway security group went with the gateway")
	}
	var pe *backends.ProvisioningError
	if err := gw.UpdateGateway(backendtest.Ctx(t), gpd); !errors.As(err, &pe) {
		t.Errorf("UpdateGateway of a deleted gateway = %v, want a ProvisioningError", err)
	}
	backendtest.NoMisses(t, srv)
}

// TestGatewayPrivate: Azure has no private gateways; nothing is made for one.
func TestGatewayPrivate(t *testing.T) {
	srv := fake.Use(t, "azure")
	private := gatewayConfig("private", "eastus")
	private.PublicIP = false
	_, err := gateways(t, srv.Good).CreateGateway(backendtest.Ctx(t), private)
	if err == nil || !strings.Contains(err.Error(), "public_ip: false") {
		t.Errorf("CreateGateway of a private gateway = %v, want a refusal naming public_ip: false", err)
	}
	if res := srv.AzureResources(); len(res) != 0 || srv.Hits() != 0 {
		t.Errorf("%d requests made %v for a refused gateway", srv.Hits(), res)
	}
}

// TestGatewayCapacity: a size the location cannot allocate is no capacity, and the public IP and
// NIC made for it are deleted.
func TestGatewayCapacity(t *testing.T) {
	srv := fake.Use(t, "azure")
	big := gatewayConfig("big", "eastus")
	big.InstanceType = "Standard_ND96asr_v4"
	_, err := gateways(t, srv.Good).CreateGateway(backendtest.Ctx(t), big)
	if !backends.IsNoCapacity(err) || !strings.Contains(err.Error(), "AllocationFailed") {
		t.Errorf("CreateGateway without capacity = %v, want a NoCapacityError", err)
	}
	if left := leftovers(srv); len(left) != 0 {
		t.Errorf("left after a refused gateway: %v", left)
	}
	backendtest.NoMisses(t, srv)
}
