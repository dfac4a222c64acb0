package azure_test

import (
	"encoding/base64"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/dstackgo/dstack/internal/backends"
	_ "github.com/dstackgo/dstack/internal/backends/azure"
	"github.com/dstackgo/dstack/internal/backends/backendtest"
	"github.com/dstackgo/dstack/internal/backends/fake"
	"github.com/dstackgo/dstack/internal/offers"
	"github.com/dstackgo/dstack/internal/schema"
)

func noSecrets(t *testing.T, srv *fake.Server, err error) {
	t.Helper()
	for _, s := range srv.Secrets {
		if err != nil && strings.Contains(err.Error(), s) {
			t.Errorf("error %q contains the secret %q", err, s)
		}
	}
}

func creds(id, secret string, extra ...string) map[string]any {
	c := map[string]any{"type": "client", "client_id": id, "client_secret": secret}
	if len(extra) == 1 {
		c["tenant_id"] = extra[0]
	}
	return c
}

func TestCheck(t *testing.T) {
	srv := fake.Use(t, "azure")
	d := backendtest.Driver(t, "azure")
	good := srv.Good.Values["creds"].(map[string]any)
	id, secret := good["client_id"].(string), good["client_secret"].(string)
	for _, tc := range []struct {
		name        string
		extra       map[string]any
		field, want string // "" field: the check passes
	}{
		{"good", nil, "", ""},
		{"tenant by domain in creds", map[string]any{"creds": creds(id, secret, "dstacksim.onmicrosoft.com")}, "", ""},
		{"unknown client", map[string]any{"creds": creds("11111111-2222-3333-4444-555555555555", secret)}, "creds.client_id", "AADSTS700016"},
		{"wrong secret", map[string]any{"creds": creds(id, "not-the-secret")}, "creds.client_secret", "AADSTS7000215"},
		{"unknown tenant", map[string]any{"tenant_id": "00000000-0000-0000-0000-000000000000"}, "tenant_id", "AADSTS90002"},
		{"unknown creds tenant", map[string]any{"creds": creds(id, secret, "00000000-0000-0000-0000-000000000000")}, "creds.tenant_id", "Invalid tenant_id"},
		{"malformed tenant", map[string]any{"tenant_id": "not a tenant!"}, "tenant_id", "Invalid tenant_id"},
		{"unknown subscription", map[string]any{"subscription_id": "99999999-0000-0000-0000-000000000000"}, "subscription_id", "SubscriptionNotFound"},
		{"resource group", map[string]any{"resource_group": "existing-rg"}, "", ""},
		{"missing resource group", map[string]any{"resource_group": "nope"}, "resource_group", "Resource group nope not found"},
		{"managed identity", map[string]any{"vm_managed_identity": "dstack-identities/dstack-vm-identity"}, "", ""},
		{"missing managed identity", map[string]any{"vm_managed_identity": "dstack-identities/nope"}, "vm_managed_identity", "managed identity dstack-identities/nope not found"},
		{"vpc_ids", map[string]any{"regions": []any{"westeurope", "eastus"}, "vpc_ids": map[string]any{
			"westeurope": "myNetworkResourceGroup/myNetworkName", "eastus": "myNetworkResourceGroup/eastus-network"}}, "", ""},
		{"vpc_ids missing network", map[string]any{"regions": []any{"eastus"}, "vpc_ids": map[string]any{"eastus": "myNetworkResourceGroup/nope"}},
			"vpc_ids.eastus", "virtual network myNetworkResourceGroup/nope not found"},
		{"vpc_ids in another location", map[string]any{"regions": []any{"eastus"}, "vpc_ids": map[string]any{"eastus": "myNetworkResourceGroup/myNetworkName"}},
			"vpc_ids.eastus", "is in location westeurope"},
		{"vpc_ids without subnet", map[string]any{"regions": []any{"eastus"}, "vpc_ids": map[string]any{"eastus": "myNetworkResourceGroup/empty-network"}},
			"vpc_ids.eastus", "has no subnet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := d.Check(backendtest.Ctx(t), backendtest.Config(t, "azure", tc.extra))
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			backendtest.FieldError(t, err, tc.field, tc.want)
			noSecrets(t, srv, err)
		})
	}
	backendtest.NoMisses(t, srv)
}

func TestCheckLenientAndDefault(t *testing.T) {
	d := backendtest.Driver(t, "azure")
	lenient := fake.StartWith(t, "azure", fake.Options{Auth: fake.Lenient})
	t.Setenv(backends.EnvAPIURL("azure"), lenient.URL)
	path, err := fake.CertFile()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSL_CERT_FILE", path)
	plausible := creds("acf3f73a-597b-46b6-98d9-748d75018ed0", "1Kb8Q~o3Q2hdEvrul9yaj5DJDFkuL3RG7lger2VQ")
	if err := d.Check(backendtest.Ctx(t), backendtest.Config(t, "azure", map[string]any{"creds": plausible})); err != nil {
		t.Fatalf("lenient Check = %v", err)
	}
	for _, k := range []string{"client_id", "client_secret"} {
		c := creds("acf3f73a-597b-46b6-98d9-748d75018ed0", "1Kb8Q~o3Q2hdEvrul9yaj5DJDFkuL3RG7lger2VQ")
		c[k] = "invalid"
		backendtest.FieldError(t, d.Check(backendtest.Ctx(t), backendtest.Config(t, "azure", map[string]any{"creds": c})), "creds."+k, "Invalid "+k)
	}

	// The default chain: the environment credential, as the simulator exports it.
	t.Setenv("AZURE_TOKEN_CREDENTIALS", "EnvironmentCredential")
	def := backendtest.Config(t, "azure", map[string]any{"creds": map[string]any{"type": "default"}})
	t.Setenv("AZURE_CLIENT_ID", "")
	t.Setenv("AZURE_CLIENT_SECRET", "")
	t.Setenv("AZURE_TENANT_ID", "")
	backendtest.FieldError(t, d.Check(backendtest.Ctx(t), def), "creds", "default Azure credential chain")
	t.Setenv("AZURE_CLIENT_ID", "acf3f73a-597b-46b6-98d9-748d75018ed0")
	t.Setenv("AZURE_CLIENT_SECRET", "1Kb8Q~o3Q2hdEvrul9yaj5DJDFkuL3RG7lger2VQ")
	t.Setenv("AZURE_TENANT_ID", "f84a7584-88e4-4fd2-8e97-623f0a715ee1")
	if err := d.Check(backendtest.Ctx(t), def); err != nil {
		t.Fatalf("Check with the default chain = %v", err)
	}
	t.Setenv("AZURE_CLIENT_SECRET", "invalid")
	backendtest.FieldError(t, d.Check(backendtest.Ctx(t), def), "creds", "AADSTS7000215")

	// Default credentials are refused where the server disables them.
	_, issues := backends.Validate(def.Values, &schema.Context{Getenv: func(k string) string {
		return map[string]string{"DSTACK_DEFAULT_CREDS_DISABLED": "1"}[k]
	}})
	if len(issues) == 0 {
		t.Errorf("creds: {type: default} passes with DSTACK_DEFAULT_CREDS_DISABLED")
	}
	backendtest.NoMisses(t, lenient)
}

func TestEndpoints(t *testing.T) {
	d := backendtest.Driver(t, "azure")
	srv := fake.Start(t, "azure")
	// http cannot carry Azure's tokens: a plain error naming the URL, no verdict on the credentials.
	t.Setenv(backends.EnvAPIURL("azure"), "http://127.0.0.1:9")
	err := d.Check(backendtest.Ctx(t), srv.Good)
	var ce *backends.CredentialsError
	if err == nil || errors.As(err, &ce) || !strings.Contains(err.Error(), "must be an https URL") {
		t.Errorf("Check against http = %v", err)
	}
	// An https endpoint nobody listens on.
	dead := httptest.NewTLSServer(nil)
	deadURL := dead.URL
	dead.Close()
	t.Setenv(backends.EnvAPIURL("azure"), deadURL)
	err = d.Check(backendtest.Ctx(t), srv.Good)
	if err == nil || errors.As(err, &ce) || !strings.Contains(err.Error(), strings.TrimPrefix(deadURL, "https://")) {
		t.Errorf("Check against a closed port = %v", err)
	}
}

func TestOffers(t *testing.T) {
	srv := fake.Use(t, "azure")
	list := backendtest.Offers(t, "azure", backendtest.Config(t, "azure", map[string]any{"regions": []any{"eastus", "westeurope", "northeurope"}}))
	for _, tc := range []struct {
		name, region string
		spot         bool
		want         offers.Availability
	}{
		{"Standard_NC4as_T4_v3", "eastus", false, offers.Unknown},     // zone-restricted only
		{"Standard_NC4as_T4_v3", "eastus", true, offers.Unknown},      // spot rows are kept
		{"Standard_NC24ads_A100_v4", "eastus", false, offers.Unknown}, // no restriction
		{"Standard_NC24ads_A100_v4", "westeurope", false, offers.NotAvailable},
		{"Standard_NC24ads_A100_v4", "westeurope", true, offers.NotAvailable},
		{"Standard_NV36ads_A10_v5", "northeurope", false, offers.NotAvailable}, // not in the SKU list
		{"Standard_NV36ads_A10_v5", "westeurope", false, offers.Unknown},
	} {
		o := backendtest.Find(list, tc.name, tc.region, tc.spot)
		if o == nil {
			t.Errorf("no offer %s in %s (spot %v)", tc.name, tc.region, tc.spot)
			continue
		}
		if o.Availability != tc.want {
			t.Errorf("%s in %s (spot %v): availability %q, want %q", tc.name, tc.region, tc.spot, o.Availability, tc.want)
		}
	}
	for _, o := range list {
		if o.Region != "eastus" && o.Region != "westeurope" && o.Region != "northeurope" {
			t.Errorf("offer in %s, outside regions", o.Region)
		}
	}
	// The SKU list is cached: a second call of the same source asks nothing.
	src := backendtest.Driver(t, "azure").NewOffers(backendtest.Config(t, "azure", nil), fake.Tables())
	if _, err := src.Offers(backendtest.Ctx(t), offers.Requirements{}); err != nil {
		t.Fatal(err)
	}
	hits := srv.Hits()
	if _, err := src.Offers(backendtest.Ctx(t), offers.Requirements{}); err != nil {
		t.Fatal(err)
	}
	if srv.Hits() != hits {
		t.Errorf("the second Offers made %d requests, want 0 (cached)", srv.Hits()-hits)
	}
	backendtest.NoMisses(t, srv)
}

// launch creates an instance of the offer and polls it until it has an address.
func launch(t *testing.T, comp backends.Compute, o offers.Offer, name string) *backends.ProvisioningData {
	t.Helper()
	pd, err := comp.CreateInstance(backendtest.Ctx(t), o, backendtest.InstanceConfig(name, "srv-1"))
	if err != nil {
		t.Fatalf("CreateInstance(%s %s spot=%v) = %v", o.Instance.Name, o.Region, o.Instance.Resources.Spot, err)
	}
	backendtest.WaitHostname(t, comp, pd)
	return pd
}

func TestLifecycle(t *testing.T) {
	srv := fake.Use(t, "azure")
	cfg := backendtest.Config(t, "azure", map[string]any{"tags": map[string]any{"team": "ml", "cost-center": "42"}})
	comp, err := backendtest.Driver(t, "azure").NewCompute(cfg)
	if err != nil {
		t.Fatal(err)
	}
	list := backendtest.Offers(t, "azure", cfg)
	onDemand, spot := backendtest.Find(list, "Standard_NC4as_T4_v3", "eastus", false), backendtest.Find(list, "Standard_NC4as_T4_v3", "eastus", true)
	pd := launch(t, comp, *onDemand, "life-0")
	if pd.Username != "ubuntu" || !pd.Dockerized || !pd.PublicIPEnabled || pd.Region != "eastus" || *pd.SSHPort != 22 {
		t.Errorf("provisioning data %+v", pd)
	}
	m, ok := srv.Machine(pd.InstanceID)
	if !ok {
		t.Fatalf("no machine %s", pd.InstanceID)
	}
	if *pd.Hostname != m.IP || pd.InternalIP == nil || *pd.InternalIP != m.PrivateIP {
		t.Errorf("hostname %s internal %v, want %s %s", *pd.Hostname, pd.InternalIP, m.IP, m.PrivateIP)
	}
	if m.Name != "dstack-main-life-0" || m.Type != "Standard_NC4as_T4_v3" || m.Image != "dstack-cuda-0.7" || m.Spot ||
		m.Extra["admin_username"] != "ubuntu" || m.Extra["os_disk_gb"] != float64(100) {
		t.Errorf("machine %+v", m)
	}
	if !strings.Contains(m.UserData, "dstack-shim") || !slices.Contains(m.SSHKeys, backendtest.TestKey) {
		t.Errorf("user data %q, keys %v", m.UserData, m.SSHKeys)
	}

	// Tags on every resource dstack made: the config's, and dstack's.
	res := srv.AzureResources()
	kinds := map[string]bool{}
	for id, tags := range res {
		kind := id[strings.LastIndex(id[:strings.LastIndex(id, "/")], "/")+1 : strings.LastIndex(id, "/")]
		if strings.Contains(id, "/resourcegroups/") && !strings.Contains(id, "/providers/") {
			kind = "resourcegroups"
		}
		kinds[kind] = true
		if kind == "disks" {
			continue // ARM puts no tags on a VM's OS disk
		}
		if tags["team"] != "ml" || tags["cost-center"] != "42" || tags["dstack_project"] != "main" || tags["dstack_server"] != "srv-1" {
			t.Errorf("%s has tags %v", id, tags)
		}
	}
	for _, k := range []string{"resourcegroups", "virtualnetworks", "networksecuritygroups", "publicipaddresses", "networkinterfaces", "virtualmachines", "disks"} {
		if !kinds[k] {
			t.Errorf("no %s among %v", k, kinds)
		}
	}

	// Spot.
	pd2 := launch(t, comp, *spot, "life-1")
	if m2, _ := srv.Machine(pd2.InstanceID); !m2.Spot || m2.Price != spot.Price {
		t.Errorf("spot machine %+v", m2)
	}

	// The orphan listing sees both, with their tags.
	lister := comp.(backends.InstanceLister)
	found, err := lister.ListInstances(backendtest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 2 || found[0].InstanceID != pd.InstanceID || found[1].InstanceID != pd2.InstanceID ||
		found[0].Tags["dstack_instance"] != "life-0" || found[0].Region != "eastus" || found[0].Name != "dstack-main-life-0" {
		t.Errorf("ListInstances = %+v", found)
	}

	for _, p := range []*backends.ProvisioningData{pd, pd2} {
		for i := 0; i < 2; i++ {
			if err := comp.TerminateInstance(backendtest.Ctx(t), p.InstanceID, p.Region, p.BackendData); err != nil {
				t.Fatalf("TerminateInstance #%d = %v", i+1, err)
			}
		}
	}
	if alive := srv.Alive(); len(alive) != 0 {
		t.Errorf("alive after terminate: %+v", alive)
	}
	for id := range srv.AzureResources() {
		if strings.Contains(id, "/virtualmachines/") || strings.Contains(id, "/networkinterfaces/") ||
			strings.Contains(id, "/publicipaddresses/") || strings.Contains(id, "/disks/") {
			t.Errorf("%s left after terminate", id)
		}
	}
	if found, err := lister.ListInstances(backendtest.Ctx(t)); err != nil || len(found) != 0 {
		t.Errorf("ListInstances after terminate = %v, %v", found, err)
	}
	backendtest.NoMisses(t, srv)
}

func TestPrivateNetwork(t *testing.T) {
	srv := fake.Use(t, "azure")
	cfg := backendtest.Config(t, "azure", map[string]any{"regions": []any{"westeurope"}, "public_ips": false, "resource_group": "existing-rg",
		"vm_managed_identity": "dstack-identities/dstack-vm-identity",
		"vpc_ids":             map[string]any{"westeurope": "myNetworkResourceGroup/myNetworkName"}})
	comp, _ := backendtest.Driver(t, "azure").NewCompute(cfg)
	o := backendtest.Find(backendtest.Offers(t, "azure", cfg), "Standard_D4s_v3", "westeurope", false)
	pd := launch(t, comp, *o, "private-0")
	m, _ := srv.Machine(pd.InstanceID)
	if pd.PublicIPEnabled || *pd.Hostname != m.PrivateIP {
		t.Errorf("hostname %s, want the private %s", *pd.Hostname, m.PrivateIP)
	}
	if !strings.Contains(pd.InstanceID, "/resourceGroups/existing-rg/") || m.Image != "dstack-0.7" || m.Extra["identity"] == nil {
		t.Errorf("instance %s, machine %+v", pd.InstanceID, m)
	}
	for id := range srv.AzureResources() {
		if strings.Contains(id, "/publicipaddresses/") || strings.Contains(id, "/virtualnetworks/") || strings.Contains(id, "/resourcegroups/dstack-main") {
			t.Errorf("%s was created with vpc_ids, public_ips false and resource_group", id)
		}
	}
	if err := comp.TerminateInstance(backendtest.Ctx(t), pd.InstanceID, pd.Region, pd.BackendData); err != nil {
		t.Fatal(err)
	}
	backendtest.NoMisses(t, srv)
}

func TestCapacity(t *testing.T) {
	srv := fake.Use(t, "azure")
	cfg := backendtest.Config(t, "azure", map[string]any{"regions": []any{"eastus", "westeurope"}})
	comp, _ := backendtest.Driver(t, "azure").NewCompute(cfg)
	list := backendtest.Offers(t, "azure", cfg)

	// Refused at once: SkuNotAvailable.
	srv.SetNoCapacity(true)
	_, err := comp.CreateInstance(backendtest.Ctx(t), *backendtest.Find(list, "Standard_D4s_v3", "eastus", false), backendtest.InstanceConfig("cap-0", "srv-1"))
	if !backends.IsNoCapacity(err) || !strings.Contains(err.Error(), "SkuNotAvailable") {
		t.Errorf("CreateInstance without capacity = %v", err)
	}
	srv.SetNoCapacity(false)
	// Refused by the operation: AllocationFailed.
	_, err = comp.CreateInstance(backendtest.Ctx(t), *backendtest.Find(list, "Standard_ND96asr_v4", "eastus", false), backendtest.InstanceConfig("cap-1", "srv-1"))
	if !backends.IsNoCapacity(err) || !strings.Contains(err.Error(), "AllocationFailed") {
		t.Errorf("CreateInstance with an allocation failure = %v", err)
	}
	// A size restricted in the location (an offer taken despite not_available).
	_, err = comp.CreateInstance(backendtest.Ctx(t), *backendtest.Find(list, "Standard_NC24ads_A100_v4", "westeurope", false), backendtest.InstanceConfig("cap-2", "srv-1"))
	if !backends.IsNoCapacity(err) {
		t.Errorf("CreateInstance of a restricted size = %v", err)
	}
	// Nothing is left of the refused launches but the shared network.
	for id := range srv.AzureResources() {
		if strings.Contains(id, "/virtualmachines/") || strings.Contains(id, "/networkinterfaces/") ||
			strings.Contains(id, "/publicipaddresses/") || strings.Contains(id, "/disks/") {
			t.Errorf("%s left after a refused launch", id)
		}
	}
	if alive := srv.Alive(); len(alive) != 0 {
		t.Errorf("alive after refused launches: %+v", alive)
	}
	backendtest.NoMisses(t, srv)
}

func TestCustomDataIsCloudConfig(t *testing.T) {
	srv := fake.Use(t, "azure")
	comp, _ := backendtest.Driver(t, "azure").NewCompute(srv.Good)
	o := backendtest.Find(backendtest.Offers(t, "azure", srv.Good), "Standard_D4s_v3", "eastus", false)
	pd, err := comp.CreateInstance(backendtest.Ctx(t), *o, backendtest.InstanceConfig("cd-0", "srv-1"))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := srv.Machine(pd.InstanceID)
	if !strings.HasPrefix(m.UserData, "#cloud-config\n") || m.Extra["public_key"] != backendtest.TestKey {
		t.Errorf("custom data %q", m.UserData)
	}
	if strings.Contains(m.UserData, base64.StdEncoding.EncodeToString([]byte("#cloud-config"))) {
		t.Errorf("custom data is encoded twice")
	}
	backendtest.NoMisses(t, srv)
}
