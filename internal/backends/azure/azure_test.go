package azure_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	_ "github.com/dstackgo/dstack/internal/backends/azure"
	"github.com/dstackgo/dstack/internal/backends/fake"
	"github.com/dstackgo/dstack/internal/offers"
	"github.com/dstackgo/dstack/internal/schema"
)

const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl dstack-project"

func driver(t *testing.T) *backends.Driver {
	t.Helper()
	d, ok := backends.Lookup("azure")
	if !ok {
		t.Fatal("azure is not registered")
	}
	return d
}

// config is the simulation's good config with extra keys (nil deletes), through the schema.
func config(t *testing.T, extra map[string]any) backends.Config {
	t.Helper()
	v := fake.GoodConfig("azure").Values
	for k, x := range extra {
		if x == nil {
			delete(v, k)
			continue
		}
		v[k] = x
	}
	cfg, issues := backends.Validate(v, &schema.Context{Getenv: func(string) string { return "" }})
	if len(issues) > 0 {
		t.Fatalf("config %v does not pass the schema: %v", extra, issues)
	}
	return cfg
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func noMisses(t *testing.T, srv *fake.Server) {
	t.Helper()
	for _, m := range srv.Misses() {
		t.Errorf("the simulation refused a request as malformed: %s", m)
	}
}

// fieldError wants a CredentialsError naming exactly field and saying want.
func fieldError(t *testing.T, err error, field, want string) {
	t.Helper()
	var ce *backends.CredentialsError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v (%T), want a CredentialsError on %s", err, err, field)
	}
	if len(ce.Fields) != 1 || strings.Join(ce.Fields[0], ".") != field {
		t.Errorf("fields %v, want [%s] (%s)", ce.Fields, field, ce.Msg)
	}
	if !strings.Contains(ce.Msg, want) {
		t.Errorf("message %q does not say %q", ce.Msg, want)
	}
}

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
	d := driver(t)
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
			err := d.Check(ctx(t), config(t, tc.extra))
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			fieldError(t, err, tc.field, tc.want)
			noSecrets(t, srv, err)
		})
	}
	noMisses(t, srv)
}

func TestCheckLenientAndDefault(t *testing.T) {
	d := driver(t)
	lenient := fake.StartWith(t, "azure", fake.Options{Auth: fake.Lenient})
	t.Setenv(backends.EnvAPIURL("azure"), lenient.URL)
	path, err := fake.CertFile()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSL_CERT_FILE", path)
	plausible := creds("acf3f73a-597b-46b6-98d9-748d75018ed0", "1Kb8Q~o3Q2hdEvrul9yaj5DJDFkuL3RG7lger2VQ")
	if err := d.Check(ctx(t), config(t, map[string]any{"creds": plausible})); err != nil {
		t.Fatalf("lenient Check = %v", err)
	}
	for _, k := range []string{"client_id", "client_secret"} {
		c := creds("acf3f73a-597b-46b6-98d9-748d75018ed0", "1Kb8Q~o3Q2hdEvrul9yaj5DJDFkuL3RG7lger2VQ")
		c[k] = "invalid"
		fieldError(t, d.Check(ctx(t), config(t, map[string]any{"creds": c})), "creds."+k, "Invalid "+k)
	}

	// The default chain: the environment credential, as the simulator exports it.
	t.Setenv("AZURE_TOKEN_CREDENTIALS", "EnvironmentCredential")
	def := config(t, map[string]any{"creds": map[string]any{"type": "default"}})
	t.Setenv("AZURE_CLIENT_ID", "")
	t.Setenv("AZURE_CLIENT_SECRET", "")
	t.Setenv("AZURE_TENANT_ID", "")
	fieldError(t, d.Check(ctx(t), def), "creds", "default Azure credential chain")
	t.Setenv("AZURE_CLIENT_ID", "acf3f73a-597b-46b6-98d9-748d75018ed0")
	t.Setenv("AZURE_CLIENT_SECRET", "1Kb8Q~o3Q2hdEvrul9yaj5DJDFkuL3RG7lger2VQ")
	t.Setenv("AZURE_TENANT_ID", "f84a7584-88e4-4fd2-8e97-623f0a715ee1")
	if err := d.Check(ctx(t), def); err != nil {
		t.Fatalf("Check with the default chain = %v", err)
	}
	t.Setenv("AZURE_CLIENT_SECRET", "invalid")
	fieldError(t, d.Check(ctx(t), def), "creds", "AADSTS7000215")

	// Default credentials are refused where the server disables them.
	_, issues := backends.Validate(def.Values, &schema.Context{Getenv: func(k string) string {
		return map[string]string{"DSTACK_DEFAULT_CREDS_DISABLED": "1"}[k]
	}})
	if len(issues) == 0 {
		t.Errorf("creds: {type: default} passes with DSTACK_DEFAULT_CREDS_DISABLED")
	}
	noMisses(t, lenient)
}

func TestEndpoints(t *testing.T) {
	d := driver(t)
	srv := fake.Start(t, "azure")
	// http cannot carry Azure's tokens: a plain error naming the URL, no verdict on the credentials.
	t.Setenv(backends.EnvAPIURL("azure"), "http://127.0.0.1:9")
	err := d.Check(ctx(t), srv.Good)
	var ce *backends.CredentialsError
	if err == nil || errors.As(err, &ce) || !strings.Contains(err.Error(), "must be an https URL") {
		t.Errorf("Check against http = %v", err)
	}
	// An https endpoint nobody listens on.
	dead := httptest.NewTLSServer(nil)
	deadURL := dead.URL
	dead.Close()
	t.Setenv(backends.EnvAPIURL("azure"), deadURL)
	err = d.Check(ctx(t), srv.Good)
	if err == nil || errors.As(err, &ce) || !strings.Contains(err.Error(), strings.TrimPrefix(deadURL, "https://")) {
		t.Errorf("Check against a closed port = %v", err)
	}
}

func offerList(t *testing.T, cfg backends.Config) []offers.Offer {
	t.Helper()
	list, err := driver(t).NewOffers(cfg, fake.Tables()).Offers(ctx(t), offers.Requirements{})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func find(list []offers.Offer, name, region string, spot bool) *offers.Offer {
	for i := range list {
		o := &list[i]
		if o.Instance.Name == name && o.Region == region && o.Instance.Resources.Spot == spot {
			return o
		}
	}
	return nil
}

func TestOffers(t *testing.T) {
	srv := fake.Use(t, "azure")
	list := offerList(t, config(t, map[string]any{"regions": []any{"eastus", "westeurope", "northeurope"}}))
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
		o := find(list, tc.name, tc.region, tc.spot)
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
	src := driver(t).NewOffers(config(t, nil), fake.Tables())
	if _, err := src.Offers(ctx(t), offers.Requirements{}); err != nil {
		t.Fatal(err)
	}
	hits := srv.Hits()
	if _, err := src.Offers(ctx(t), offers.Requirements{}); err != nil {
		t.Fatal(err)
	}
	if srv.Hits() != hits {
		t.Errorf("the second Offers made %d requests, want 0 (cached)", srv.Hits()-hits)
	}
	noMisses(t, srv)
}

func instanceConfig(name string) backends.InstanceConfig {
	return backends.InstanceConfig{ProjectName: "main", InstanceName: name, SSHPublicKeys: []string{testKey},
		ShimURL: "http://127.0.0.1:3000/api/agents/dstack-shim-linux-amd64",
		Tags:    map[string]string{"dstack_project": "main", "dstack_server": "srv-1", "dstack_instance": name}}
}

// launch creates an instance of the offer and polls it until it has an address.
func launch(t *testing.T, comp backends.Compute, o offers.Offer, name string) *backends.ProvisioningData {
	t.Helper()
	pd, err := comp.CreateInstance(ctx(t), o, instanceConfig(name))
	if err != nil {
		t.Fatalf("CreateInstance(%s %s spot=%v) = %v", o.Instance.Name, o.Region, o.Instance.Resources.Spot, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for pd.Hostname == nil {
		if time.Now().After(deadline) {
			t.Fatal("no hostname after 10s")
		}
		if err := comp.UpdateProvisioningData(ctx(t), pd); err != nil {
			t.Fatalf("UpdateProvisioningData = %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return pd
}

func TestLifecycle(t *testing.T) {
	srv := fake.Use(t, "azure")
	cfg := config(t, map[string]any{"tags": map[string]any{"team": "ml", "cost-center": "42"}})
	comp, err := driver(t).NewCompute(cfg)
	if err != nil {
		t.Fatal(err)
	}
	list := offerList(t, cfg)
	onDemand, spot := find(list, "Standard_NC4as_T4_v3", "eastus", false), find(list, "Standard_NC4as_T4_v3", "eastus", true)
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
	if !strings.Contains(m.UserData, "dstack-shim") || !slices.Contains(m.SSHKeys, testKey) {
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
	found, err := lister.ListInstances(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 2 || found[0].InstanceID != pd.InstanceID || found[1].InstanceID != pd2.InstanceID ||
		found[0].Tags["dstack_instance"] != "life-0" || found[0].Region != "eastus" || found[0].Name != "dstack-main-life-0" {
		t.Errorf("ListInstances = %+v", found)
	}

	for _, p := range []*backends.ProvisioningData{pd, pd2} {
		for i := 0; i < 2; i++ {
			if err := comp.TerminateInstance(ctx(t), p.InstanceID, p.Region, p.BackendData); err != nil {
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
	if found, err := lister.ListInstances(ctx(t)); err != nil || len(found) != 0 {
		t.Errorf("ListInstances after terminate = %v, %v", found, err)
	}
	noMisses(t, srv)
}

func TestPrivateNetwork(t *testing.T) {
	srv := fake.Use(t, "azure")
	cfg := config(t, map[string]any{"regions": []any{"westeurope"}, "public_ips": false, "resource_group": "existing-rg",
		"vm_managed_identity": "dstack-identities/dstack-vm-identity",
		"vpc_ids":             map[string]any{"westeurope": "myNetworkResourceGroup/myNetworkName"}})
	comp, _ := driver(t).NewCompute(cfg)
	o := find(offerList(t, cfg), "Standard_D4s_v3", "westeurope", false)
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
	if err := comp.TerminateInstance(ctx(t), pd.InstanceID, pd.Region, pd.BackendData); err != nil {
		t.Fatal(err)
	}
	noMisses(t, srv)
}

func TestCapacity(t *testing.T) {
	srv := fake.Use(t, "azure")
	cfg := config(t, map[string]any{"regions": []any{"eastus", "westeurope"}})
	comp, _ := driver(t).NewCompute(cfg)
	list := offerList(t, cfg)

	// Refused at once: SkuNotAvailable.
	srv.SetNoCapacity(true)
	_, err := comp.CreateInstance(ctx(t), *find(list, "Standard_D4s_v3", "eastus", false), instanceConfig("cap-0"))
	if !backends.IsNoCapacity(err) || !strings.Contains(err.Error(), "SkuNotAvailable") {
		t.Errorf("CreateInstance without capacity = %v", err)
	}
	srv.SetNoCapacity(false)
	// Refused by the operation: AllocationFailed.
	_, err = comp.CreateInstance(ctx(t), *find(list, "Standard_ND96asr_v4", "eastus", false), instanceConfig("cap-1"))
	if !backends.IsNoCapacity(err) || !strings.Contains(err.Error(), "AllocationFailed") {
		t.Errorf("CreateInstance with an allocation failure = %v", err)
	}
	// A size restricted in the location (an offer taken despite not_available).
	_, err = comp.CreateInstance(ctx(t), *find(list, "Standard_NC24ads_A100_v4", "westeurope", false), instanceConfig("cap-2"))
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
	noMisses(t, srv)
}

func TestCustomDataIsCloudConfig(t *testing.T) {
	srv := fake.Use(t, "azure")
	comp, _ := driver(t).NewCompute(srv.Good)
	o := find(offerList(t, srv.Good), "Standard_D4s_v3", "eastus", false)
	pd, err := comp.CreateInstance(ctx(t), *o, instanceConfig("cd-0"))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := srv.Machine(pd.InstanceID)
	if !strings.HasPrefix(m.UserData, "#cloud-config\n") || m.Extra["public_key"] != testKey {
		t.Errorf("custom data %q", m.UserData)
	}
	if strings.Contains(m.UserData, base64.StdEncoding.EncodeToString([]byte("#cloud-config"))) {
		t.Errorf("custom data is encoded twice")
	}
	noMisses(t, srv)
}
