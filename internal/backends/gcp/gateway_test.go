package gcp_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/compute/v1"
	"google.golang.org/api/option"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/backendtest"
	"github.com/dstackgo/dstack/internal/backends/fake"
	gcpb "github.com/dstackgo/dstack/internal/backends/gcp"
)

func gatewayConfig(name, region string) backends.GatewayConfig {
	return backends.GatewayConfig{ProjectName: "main", Name: name, Region: region, PublicIP: true,
		SSHPublicKeys: []string{backendtest.TestKey},
		Tags:          map[string]string{"dstack_project": "main", "dstack_server": "srv1", "dstack_gateway": name}}
}

func gateways(t *testing.T, cfg backends.Config) backends.GatewayCompute {
	t.Helper()
	gw, ok := newCompute(t, cfg).(backends.GatewayCompute)
	if !ok {
		t.Fatal("the gcp compute is not a GatewayCompute")
	}
	return gw
}

// waitGatewayIP polls the gateway until it has an address; the test fails after 10 seconds.
func waitGatewayIP(t *testing.T, gw backends.GatewayCompute, gpd *backends.GatewayProvisioningData) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); gpd.IPAddress == ""; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no gateway IP after 10s")
		}
		if err := gw.UpdateGateway(backendtest.Ctx(t), gpd); err != nil {
			t.Fatalf("UpdateGateway: %v", err)
		}
	}
}

// computeAPI is a Compute Engine client of the simulation with its service account, for what the
// test reads and does as a user would (gcloud); it names itself as dstack does, as the simulation
// wants.
func computeAPI(t *testing.T, srv *fake.Server) *compute.Service {
	t.Helper()
	ctx := context.WithValue(backendtest.Ctx(t), oauth2.HTTPClient, &http.Client{Transport: userAgent{http.DefaultTransport}})
	creds, err := google.CredentialsFromJSONWithType(ctx, []byte(fake.GCPKeyJSON(srv.URL)), google.ServiceAccount, compute.CloudPlatformScope)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := compute.NewService(ctx, option.WithHTTPClient(oauth2.NewClient(ctx, creds.TokenSource)), option.WithEndpoint(srv.URL+"/compute/v1/"))
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

type userAgent struct{ base http.RoundTripper }

func (u userAgent) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", backends.UserAgent)
	return u.base.RoundTrip(r)
}

func TestGatewayLifecycle(t *testing.T) {
	srv := fake.Use(t, "gcp")
	cfg := config(t, srv, map[string]any{"tags": map[string]any{"Team": "ML"}, "vm_service_account": "gw@sim-project.iam.gserviceaccount.com"})
	gw := gateways(t, cfg)
	gpd, err := gw.CreateGateway(backendtest.Ctx(t), gatewayConfig("gw", "us-east1"))
	if err != nil {
		t.Fatal(err)
	}
	if gpd.Backend != "gcp" || gpd.Region != "us-east1" || gpd.AvailabilityZone != "us-east1-b" || gpd.Username != "ubuntu" || gpd.SSHPort != 22 ||
		!strings.HasPrefix(gpd.InstanceID, "dstack-main-gw-") || !strings.Contains(gpd.BackendData, `"zone":"us-east1-b"`) || gpd.IPAddress != "" {
		t.Errorf("gateway provisioning data %+v", gpd)
	}
	m, ok := srv.Machine(gpd.InstanceID)
	if !ok {
		t.Fatalf("no machine %s", gpd.InstanceID)
	}
	if m.Type != "e2-small" || m.UserData != "" || m.Extra["tags"] != gcpb.GatewayTag || m.Extra["public"] != true ||
		m.Extra["service_account"] != "gw@sim-project.iam.gserviceaccount.com" || !slices.Contains(m.SSHKeys, backendtest.TestKey) {
		t.Errorf("machine %+v", m)
	}
	for _, label := range []string{"dstack_gateway=gw", "dstack_server=srv1", "team=ml"} {
		if !slices.Contains(m.Tags, label) {
			t.Errorf("labels %v lack %s", m.Tags, label)
		}
	}
	waitGatewayIP(t, gw, gpd)
	if m, _ = srv.Machine(gpd.InstanceID); gpd.IPAddress != m.IP {
		t.Errorf("gateway IP %s, want the external %s", gpd.IPAddress, m.IP)
	}

	// The VPC lets SSH, HTTP and HTTPS in to gateways, as Compute Engine reports the rule.
	rule, err := computeAPI(t, srv).Firewalls.Get("sim-project", gcpb.GatewayFirewallRuleName("default")).Context(backendtest.Ctx(t)).Do()
	if err != nil {
		t.Fatalf("the gateway firewall rule: %v", err)
	}
	if len(rule.Allowed) != 1 || rule.Allowed[0].IPProtocol != "tcp" || !slices.Equal(rule.Allowed[0].Ports, []string{"22", "80", "443"}) ||
		!slices.Equal(rule.TargetTags, []string{gcpb.GatewayTag}) || !slices.Equal(rule.SourceRanges, []string{"0.0.0.0/0"}) ||
		rule.Direction != "INGRESS" || !strings.HasSuffix(rule.Network, "projects/sim-project/global/networks/default") {
		t.Errorf("gateway rule %+v (allowed %+v)", rule, rule.Allowed)
	}
	// Another gateway, by a fresh compute: the rule is found, not made twice.
	gpd2, err := gateways(t, cfg).CreateGateway(backendtest.Ctx(t), gatewayConfig("gw2", "us-east1"))
	if err != nil {
		t.Fatal(err)
	}
	if rules := srv.Objects("gcp-firewalls"); len(rules) != 1 {
		t.Errorf("firewall rules %v, want only %s", rules, gcpb.GatewayFirewallRuleName("default"))
	}

	for _, g := range []*backends.GatewayProvisioningData{gpd, gpd2} {
		for i := 0; i < 2; i++ {
			if err := gw.TerminateGateway(backendtest.Ctx(t), *g); err != nil {
				t.Fatalf("TerminateGateway #%d = %v", i+1, err)
			}
		}
	}
	if alive := srv.Alive(); len(alive) != 0 {
		t.Errorf("alive after terminate: %+v", alive)
	}
	if len(srv.Objects("gcp-firewalls")) != 1 {
		t.Errorf("the gateway firewall rule went with the gateways")
	}
	var pe *backends.ProvisioningError
	if err := gw.UpdateGateway(backendtest.Ctx(t), gpd); !errors.As(err, &pe) {
		t.Errorf("UpdateGateway of a deleted gateway = %v, want a ProvisioningError", err)
	}
	backendtest.NoMisses(t, srv)
}

// TestGatewayZones: us-central1-a has no e2-small capacity, so the gateway lands in the next zone;
// a machine type no zone of the region sells is no capacity.
func TestGatewayZones(t *testing.T) {
	srv := fake.Use(t, "gcp")
	gw := gateways(t, config(t, srv, nil))
	gpd, err := gw.CreateGateway(backendtest.Ctx(t), gatewayConfig("gw", "us-central1"))
	if err != nil {
		t.Fatal(err)
	}
	if gpd.AvailabilityZone != "us-central1-b" || !strings.Contains(gpd.BackendData, `"zone":"us-central1-b"`) {
		t.Errorf("zone %s, backend data %s; want us-central1-b, after the exhausted us-central1-a", gpd.AvailabilityZone, gpd.BackendData)
	}
	// The configuration's instance type, in the first zone that has it.
	medium := gatewayConfig("medium", "us-central1")
	medium.InstanceType = "e2-medium"
	gpd, err = gw.CreateGateway(backendtest.Ctx(t), medium)
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := srv.Machine(gpd.InstanceID); m.Type != "e2-medium" || gpd.AvailabilityZone != "us-central1-a" {
		t.Errorf("machine type %s in %s, want e2-medium in us-central1-a", m.Type, gpd.AvailabilityZone)
	}
	gpu := gatewayConfig("t4", "asia-east1")
	gpu.InstanceType = "n1-standard-4"
	if _, err := gw.CreateGateway(backendtest.Ctx(t), gpu); !backends.IsNoCapacity(err) || !strings.Contains(err.Error(), "asia-east1-c") {
		t.Errorf("CreateGateway of a type no zone sells = %v, want a NoCapacityError naming the zones", err)
	}
	if len(srv.Alive()) != 2 {
		t.Errorf("alive: %+v", srv.Alive())
	}
	backendtest.NoMisses(t, srv)
}

// TestGatewayPrivate: without a public IP the gateway is reached at its internal address.
func TestGatewayPrivate(t *testing.T) {
	srv := fake.Use(t, "gcp")
	gw := gateways(t, config(t, srv, nil))
	private := gatewayConfig("private", "us-east1")
	private.PublicIP = false
	gpd, err := gw.CreateGateway(backendtest.Ctx(t), private)
	if err != nil {
		t.Fatal(err)
	}
	waitGatewayIP(t, gw, gpd)
	if m, _ := srv.Machine(gpd.InstanceID); m.Extra["public"] != false || gpd.IPAddress != m.PrivateIP {
		t.Errorf("gateway IP %s, public %v; want the internal %s", gpd.IPAddress, m.Extra["public"], m.PrivateIP)
	}
	backendtest.NoMisses(t, srv)
}

// TestGatewaySharedVPC: dstack makes no firewall rules in a Shared VPC; it refuses a gateway until
// the host project's rules let 22, 80 and 443 in to it, and says which rule to add.
func TestGatewaySharedVPC(t *testing.T) {
	srv := fake.Use(t, "gcp")
	shared := config(t, srv, map[string]any{"vpc_name": "my-custom-vpc", "vpc_project_id": "another-project-id"})
	gw := gateways(t, shared)
	create := func() error {
		_, err := gw.CreateGateway(backendtest.Ctx(t), gatewayConfig("gw", "us-central1"))
		return err
	}
	var pe *backends.ProvisioningError
	err := create()
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "--network my-custom-vpc") || !strings.Contains(err.Error(), "--project another-project-id") ||
		!strings.Contains(err.Error(), "tcp:22,tcp:80,tcp:443") || !strings.Contains(err.Error(), "--target-tags "+gcpb.GatewayTag) {
		t.Errorf("CreateGateway without the rule = %v, want a ProvisioningError naming the rule to add", err)
	}
	if len(srv.Objects("gcp-firewalls")) != 0 || len(srv.Alive()) != 0 {
		t.Errorf("rules %v, machines %v after a refused gateway", srv.Objects("gcp-firewalls"), srv.Alive())
	}

	// The host project's admins open SSH to every instance of the VPC: 80 and 443 are still shut.
	api := computeAPI(t, srv)
	network := "projects/another-project-id/global/networks/my-custom-vpc"
	insert := func(rule *compute.Firewall) {
		t.Helper()
		rule.Network, rule.Direction, rule.SourceRanges = network, "INGRESS", []string{"0.0.0.0/0"}
		if _, err := api.Firewalls.Insert("another-project-id", rule).Context(backendtest.Ctx(t)).Do(); err != nil {
			t.Fatal(err)
		}
	}
	insert(&compute.Firewall{Name: "allow-ssh", Allowed: []*compute.FirewallAllowed{{IPProtocol: "tcp", Ports: []string{"22"}}}})
	// A rule of gateways' ports for other instances changes nothing.
	insert(&compute.Firewall{Name: "web-servers", Allowed: []*compute.FirewallAllowed{{IPProtocol: "tcp", Ports: []string{"80", "443"}}},
		TargetTags: []string{"http-server"}})
	if err := create(); !errors.As(err, &pe) || !strings.Contains(err.Error(), "TCP 80, 443") {
		t.Errorf("CreateGateway with SSH only = %v, want a ProvisioningError about 80 and 443", err)
	}
	// Then 80 to 443 for gateways.
	insert(&compute.Firewall{Name: "gateways-web", Allowed: []*compute.FirewallAllowed{{IPProtocol: "tcp", Ports: []string{"80-443"}}},
		TargetTags: []string{gcpb.GatewayTag}})
	if err := create(); err != nil {
		t.Fatalf("CreateGateway with the rules = %v", err)
	}
	alive := srv.Alive()
	if len(alive) != 1 || alive[0].Extra["network"] != network {
		t.Errorf("machines %+v, want the gateway in %s", alive, network)
	}
	if len(srv.Objects("gcp-firewalls")) != 3 {
		t.Errorf("firewall rules %v: dstack added one to the Shared VPC", srv.Objects("gcp-firewalls"))
	}
	backendtest.NoMisses(t, srv)
}
