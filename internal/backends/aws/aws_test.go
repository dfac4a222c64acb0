package aws_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/dstackgo/dstack/internal/backends"
	awsb "github.com/dstackgo/dstack/internal/backends/aws"
	"github.com/dstackgo/dstack/internal/backends/backendtest"
	"github.com/dstackgo/dstack/internal/backends/fake"
	"github.com/dstackgo/dstack/internal/offers"
	"github.com/dstackgo/dstack/internal/schema"
)

func TestCheckNetworks(t *testing.T) {
	srv := fake.Use(t, "aws")
	d := backendtest.Driver(t, "aws")
	regions := func(r ...string) []any {
		out := []any{}
		for _, x := range r {
			out = append(out, x)
		}
		return out
	}
	for _, tc := range []struct {
		name        string
		extra       map[string]any
		field, want string // "" field: the check passes
	}{
		{"default VPCs in the default regions", map[string]any{"regions": nil}, "", ""},
		{"vpc_name in every region", map[string]any{"vpc_name": "my-vpc", "regions": regions("us-east-1", "eu-west-1", "ap-northeast-3")}, "", ""},
		{"vpc_name missing in one region", map[string]any{"vpc_name": "public-only", "regions": regions("us-east-1", "us-east-2")},
			"vpc_name", "no VPC named public-only in region us-east-2"},
		{"vpc_name without a public subnet", map[string]any{"vpc_name": "isolated"}, "vpc_name", "has no public subnet"},
		{"public_ips false needs a private subnet", map[string]any{"vpc_name": "public-only", "public_ips": false},
			"public_ips", "no private subnet with internet egress"},
		{"public_ips false needs egress", map[string]any{"vpc_name": "isolated", "public_ips": false}, "public_ips", "no private subnet"},
		{"public_ips false in default VPCs", map[string]any{"public_ips": false, "regions": regions("us-east-1", "eu-north-1")}, "", ""},
		{"public_ips false in a named VPC", map[string]any{"public_ips": false, "vpc_name": "my-vpc"}, "", ""},
		{"vpc_ids with default VPCs elsewhere", map[string]any{"vpc_ids": map[string]any{"us-east-1": "vpc-0a2b3c4d5e6f7g8h"},
			"regions": regions("us-east-1", "us-west-2")}, "", ""},
		{"vpc_ids without default VPCs", map[string]any{"vpc_ids": map[string]any{"us-east-1": "vpc-0a2b3c4d5e6f7g8h"},
			"default_vpcs": false, "regions": regions("us-east-1", "us-west-2")}, "vpc_ids", "no VPC for region us-west-2"},
		{"vpc_ids covering every region", map[string]any{"vpc_ids": map[string]any{"us-east-1": "vpc-0a2b3c4d5e6f7g8h", "us-east-2": "vpc-9i8h7g6f5e4d3c2b"},
			"default_vpcs": false, "regions": regions("us-east-1", "us-east-2")}, "", ""},
		{"vpc_ids unknown", map[string]any{"vpc_ids": map[string]any{"us-east-1": "vpc-00000000000000000"}}, "vpc_ids",
			"VPC vpc-00000000000000000 not found in region us-east-1"},
		{"vpc_ids in another region", map[string]any{"vpc_ids": map[string]any{"us-east-1": "vpc-9i8h7g6f5e4d3c2b"}}, "vpc_ids", "not found"},
		{"no default VPC", map[string]any{"regions": regions("ap-northeast-3")}, "regions", "no default VPC in region ap-northeast-3"},
		{"iam_instance_profile", map[string]any{"iam_instance_profile": "dstack-instance-profile"}, "", ""},
		{"iam_instance_profile missing", map[string]any{"iam_instance_profile": "nope"}, "iam_instance_profile",
			"IAM instance profile nope not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := d.Check(backendtest.Ctx(t), backendtest.Config(t, "aws", tc.extra))
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
			} else {
				backendtest.FieldError(t, err, tc.field, tc.want)
			}
		})
	}
	backendtest.NoMisses(t, srv)
}

func TestCheckCredentials(t *testing.T) {
	srv := fake.Use(t, "aws")
	d := backendtest.Driver(t, "aws")
	creds := func(key, secret string) map[string]any {
		return map[string]any{"type": "access_key", "access_key": key, "secret_key": secret}
	}
	good := srv.Good.Values["creds"].(map[string]any)
	both := "creds.access_key creds.secret_key"
	for _, tc := range []struct {
		name  string
		creds map[string]any
		want  string
	}{
		{"unknown key", creds("AKIAUNKNOWNKEY000000", "whatever"), "InvalidClientTokenId"},
		{"wrong secret", creds(good["access_key"].(string), "not-the-secret"), "SignatureDoesNotMatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := d.Check(backendtest.Ctx(t), backendtest.Config(t, "aws", map[string]any{"creds": tc.creds}))
			var ce *backends.CredentialsError
			if !errors.As(err, &ce) {
				t.Fatalf("Check = %v, want a CredentialsError", err)
			}
			var fields []string
			for _, f := range ce.Fields {
				fields = append(fields, strings.Join(f, "."))
			}
			if strings.Join(fields, " ") != both || !strings.Contains(ce.Msg, tc.want) {
				t.Errorf("CredentialsError %q on %v, want %s on %s", ce.Msg, fields, tc.want, both)
			}
		})
	}

	// The simulator (lenient) takes any key, and refuses a secret set to `invalid` by its signature.
	lenient := fake.StartWith(t, "aws", fake.Options{Auth: fake.Lenient})
	t.Setenv(backends.EnvAPIURL("aws"), lenient.URL)
	if err := d.Check(backendtest.Ctx(t), backendtest.Config(t, "aws", map[string]any{"creds": creds("KKAAUKLIZ5EHKICAOASV", "pn158lMqSBJiySwpQ9ubwmI6VUU3/W2fdJdFwfgO")})); err != nil {
		t.Errorf("lenient Check of a plausible key = %v", err)
	}
	err := d.Check(backendtest.Ctx(t), backendtest.Config(t, "aws", map[string]any{"creds": creds("KKAAUKLIZ5EHKICAOASV", "invalid")}))
	if ce := (*backends.CredentialsError)(nil); !errors.As(err, &ce) || !strings.Contains(ce.Msg, "SignatureDoesNotMatch") {
		t.Errorf("lenient Check of secret_key: invalid = %v", err)
	}
	backendtest.NoMisses(t, srv)
	backendtest.NoMisses(t, lenient)
}

func TestCheckDefaultCredentials(t *testing.T) {
	srv := fake.Use(t, "aws")
	d := backendtest.Driver(t, "aws")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "")
	t.Setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "")
	t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "")
	good := srv.Good.Values["creds"].(map[string]any)
	cfg := backendtest.Config(t, "aws", map[string]any{"creds": map[string]any{"type": "default"}})

	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	err := d.Check(backendtest.Ctx(t), cfg)
	backendtest.FieldError(t, err, "creds", "default credential chain")

	t.Setenv("AWS_ACCESS_KEY_ID", good["access_key"].(string))
	t.Setenv("AWS_SECRET_ACCESS_KEY", good["secret_key"].(string))
	if err := d.Check(backendtest.Ctx(t), cfg); err != nil {
		t.Fatalf("Check with the default chain = %v", err)
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
	backendtest.FieldError(t, d.Check(backendtest.Ctx(t), cfg), "creds", "SignatureDoesNotMatch")

	// The server refuses `default` when DSTACK_DEFAULT_CREDS_DISABLED is set.
	v := fake.GoodConfig("aws").Values
	v["creds"] = map[string]any{"type": "default"}
	if _, issues := backends.Validate(v, &schema.Context{Getenv: func(k string) string {
		return map[string]string{"DSTACK_DEFAULT_CREDS_DISABLED": "1"}[k]
	}}); len(issues) == 0 {
		t.Errorf("default credentials accepted with DSTACK_DEFAULT_CREDS_DISABLED")
	}
	backendtest.NoMisses(t, srv)
}

func TestTagsSchema(t *testing.T) {
	for _, tags := range []map[string]any{{"aws:owner": "x"}, {"": "x"}, {"k": strings.Repeat("v", 257)}, {"k#": "v"}} {
		v := fake.GoodConfig("aws").Values
		v["tags"] = tags
		if _, issues := backends.Validate(v, &schema.Context{}); len(issues) == 0 {
			t.Errorf("tags %v accepted", tags)
		}
	}
	backendtest.Config(t, "aws", map[string]any{"tags": map[string]any{"team": "ml research", "cost-center": "42/a:b=c+d@e"}})
}

// toJSON renders a value for a test's assertions.
func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestCreateInstance(t *testing.T) {
	srv := fake.Use(t, "aws")
	d := backendtest.Driver(t, "aws")
	cfg := backendtest.Config(t, "aws", map[string]any{"tags": map[string]any{"team": "ml"}, "iam_instance_profile": "dstack-instance-profile"})
	comp, err := d.NewCompute(cfg)
	if err != nil {
		t.Fatal(err)
	}
	offer := backendtest.OfferFor(t, "aws", cfg, "g4dn.xlarge", "us-east-1", true)
	if offer.Price != 0.2104 || !slices.Equal(offer.AvailabilityZones, []string{"us-east-1a", "us-east-1b", "us-east-1c"}) {
		t.Errorf("offer %+v", offer)
	}
	pd, err := comp.CreateInstance(backendtest.Ctx(t), offer, backendtest.InstanceConfig("task-0-abc", "srv-1"))
	if err != nil {
		t.Fatal(err)
	}
	if pd.Username != awsb.Username || !pd.Dockerized || !pd.PublicIPEnabled || pd.AvailabilityZone == nil || pd.InternalIP == nil {
		t.Errorf("provisioning data %+v", pd)
	}
	m, _ := srv.Machine(pd.InstanceID)
	if !m.Spot || m.Type != "g4dn.xlarge" || m.Region != "us-east-1" || m.Name != "dstack-main-task-0-abc" {
		t.Errorf("machine %+v", m)
	}
	for _, tag := range []string{"Name=dstack-main-task-0-abc", "dstack_project=main", "dstack_server=srv-1", "dstack_instance=task-0-abc", "team=ml"} {
		if !slices.Contains(m.Tags, tag) {
			t.Errorf("tags %v lack %s", m.Tags, tag)
		}
	}
	if !strings.HasPrefix(m.UserData, "#cloud-config\n") || !strings.Contains(m.UserData, "dstack-shim-linux-amd64") ||
		!slices.Equal(m.SSHKeys, []string{backendtest.TestKey}) {
		t.Errorf("user data:\n%s", m.UserData)
	}
	rec := m.Extra["aws"]
	if s := toJSON(rec); !strings.Contains(s, `"Profile":"dstack-instance-profile"`) || !strings.Contains(s, `"RootGB":100`) {
		t.Errorf("launch record %s", s)
	}
	groups := srv.Objects("security-groups")
	if len(groups) != 1 {
		t.Fatalf("security groups %v", groups)
	}
	for id := range groups {
		if s := toJSON(rec); !strings.Contains(s, `"Groups":["`+id+`"]`) || !strings.Contains(s, `"Public":true`) {
			t.Errorf("launch record %s, want group %s and a public IP", s, id)
		}
	}
	backendtest.WaitHostname(t, comp, pd)
	m, _ = srv.Machine(pd.InstanceID)
	if *pd.Hostname != m.IP || *pd.SSHPort != 22 || *pd.InternalIP != m.PrivateIP {
		t.Errorf("hostname %s:%d internal %s, want %s:22 %s", *pd.Hostname, *pd.SSHPort, *pd.InternalIP, m.IP, m.PrivateIP)
	}

	// The same launch again (a retry after a lost answer) is the same instance; another reuses the group.
	again, err := comp.CreateInstance(backendtest.Ctx(t), offer, backendtest.InstanceConfig("task-0-abc", "srv-1"))
	if err != nil || again.InstanceID != pd.InstanceID {
		t.Errorf("relaunch = %v, %v; want instance %s again", again, err, pd.InstanceID)
	}
	comp2, _ := d.NewCompute(cfg)
	other, err := comp2.CreateInstance(backendtest.Ctx(t), backendtest.OfferFor(t, "aws", cfg, "m5.large", "us-east-1", false), backendtest.InstanceConfig("task-1-def", "srv-1"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Objects("security-groups")); n != 1 {
		t.Errorf("%d security groups after a second launch, want 1", n)
	}
	if om, _ := srv.Machine(other.InstanceID); om.Spot || om.Image == m.Image {
		t.Errorf("the CPU instance %+v is spot or has the GPU image", om)
	}

	lister, ok := comp.(backends.InstanceLister)
	if !ok {
		t.Fatal("the aws compute is not an InstanceLister")
	}
	if err := comp.TerminateInstance(backendtest.Ctx(t), other.InstanceID, other.Region, ""); err != nil {
		t.Fatal(err)
	}
	listed, err := lister.ListInstances(backendtest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].InstanceID != pd.InstanceID || listed[0].Tags["dstack_server"] != "srv-1" ||
		listed[0].Name != "dstack-main-task-0-abc" || listed[0].Region != "us-east-1" || listed[0].LaunchedAt.IsZero() {
		t.Errorf("ListInstances = %+v", listed)
	}
	for i := 0; i < 2; i++ {
		if err := comp.TerminateInstance(backendtest.Ctx(t), pd.InstanceID, pd.Region, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := comp.TerminateInstance(backendtest.Ctx(t), "i-0123456789abcdef0", "us-east-1", ""); err != nil {
		t.Errorf("terminating an unknown instance = %v, want nil", err)
	}
	if alive := srv.Alive(); len(alive) != 0 {
		t.Errorf("alive: %+v", alive)
	}
	backendtest.NoMisses(t, srv)
}

func TestPrivateNetwork(t *testing.T) {
	srv := fake.Use(t, "aws")
	cfg := backendtest.Config(t, "aws", map[string]any{"vpc_name": "my-vpc", "public_ips": false})
	comp, _ := backendtest.Driver(t, "aws").NewCompute(cfg)
	pd, err := comp.CreateInstance(backendtest.Ctx(t), backendtest.OfferFor(t, "aws", cfg, "m5.large", "us-east-1", false), backendtest.InstanceConfig("private-0", "srv-1"))
	if err != nil {
		t.Fatal(err)
	}
	if pd.PublicIPEnabled {
		t.Errorf("public IP enabled")
	}
	backendtest.WaitHostname(t, comp, pd)
	m, _ := srv.Machine(pd.InstanceID)
	if *pd.Hostname != m.PrivateIP {
		t.Errorf("hostname %s, want the private IP %s", *pd.Hostname, m.PrivateIP)
	}
	if rec := toJSON(m.Extra["aws"]); !strings.Contains(rec, `"Public":false`) || !strings.Contains(rec, `"AZ":"us-east-1b"`) {
		t.Errorf("launched %s, want my-vpc's private subnet (zone b) without a public IP", rec)
	}
	backendtest.NoMisses(t, srv)
}

func TestOSImages(t *testing.T) {
	srv := fake.Use(t, "aws")
	d := backendtest.Driver(t, "aws")
	run := 0
	images := func(cfg backends.Config, names ...string) []string {
		run++
		comp, _ := d.NewCompute(cfg)
		var out []string
		for _, n := range names {
			o := backendtest.OfferFor(t, "aws", cfg, n, "us-east-1", false)
			pd, err := comp.CreateInstance(backendtest.Ctx(t), o, backendtest.InstanceConfig(fmt.Sprintf("img-%d-%s", run, strings.ReplaceAll(n, ".", "-")), "srv-1"))
			if err != nil {
				t.Fatalf("%s: %v", n, err)
			}
			m, _ := srv.Machine(pd.InstanceID)
			out = append(out, m.Image+" "+pd.Username)
			_ = comp.TerminateInstance(backendtest.Ctx(t), pd.InstanceID, pd.Region, "")
		}
		return out
	}
	def := images(backendtest.Config(t, "aws", nil), "m5.large", "g4dn.xlarge")
	custom := images(backendtest.Config(t, "aws", map[string]any{"os_images": map[string]any{
		"cpu":    map[string]any{"name": "my-ami-for-cpu-instances", "owner": "self", "user": "dstack"},
		"nvidia": map[string]any{"name": "Some ThirdParty CUDA image", "owner": 123456789012, "user": "ubuntu"},
	}}), "m5.large", "g4dn.xlarge")
	if def[0] == def[1] || custom[0] == custom[1] || def[0] == custom[0] || def[1] == custom[1] {
		t.Errorf("images: default %v, custom %v", def, custom)
	}
	if !strings.HasSuffix(def[0], " ubuntu") || !strings.HasSuffix(custom[0], " dstack") || !strings.HasSuffix(custom[1], " ubuntu") {
		t.Errorf("users: default %v, custom %v", def, custom)
	}

	// Only a cpu image: GPU offers are gone, and a GPU launch cannot start.
	cpuOnly := backendtest.Config(t, "aws", map[string]any{"os_images": map[string]any{"cpu": map[string]any{"name": "my-ami-for-cpu-instances", "user": "dstack"}}})
	list, err := d.NewOffers(cpuOnly, fake.Tables()).Offers(backendtest.Ctx(t), offers.Requirements{})
	if err != nil || len(list) == 0 {
		t.Fatalf("offers %d, %v", len(list), err)
	}
	for _, o := range list {
		if len(o.Instance.Resources.GPUs) > 0 {
			t.Errorf("GPU offer %s without an nvidia image", o.Instance.Name)
		}
	}
	comp, _ := d.NewCompute(cpuOnly)
	_, err = comp.CreateInstance(backendtest.Ctx(t), backendtest.OfferFor(t, "aws", backendtest.Config(t, "aws", nil), "g4dn.xlarge", "us-east-1", false), backendtest.InstanceConfig("nogpu", "srv-1"))
	var pe *backends.ProvisioningError
	if !errors.As(err, &pe) {
		t.Errorf("GPU launch without an nvidia image = %v", err)
	}

	// An image name that matches nothing.
	missing := backendtest.Config(t, "aws", map[string]any{"os_images": map[string]any{"cpu": map[string]any{"name": "no-such-ami", "owner": "self", "user": "u"}}})
	comp, _ = d.NewCompute(missing)
	if _, err := comp.CreateInstance(backendtest.Ctx(t), backendtest.OfferFor(t, "aws", missing, "m5.large", "us-east-1", false), backendtest.InstanceConfig("noami", "srv-1")); !errors.As(err, &pe) {
		t.Errorf("launch with a missing AMI = %v", err)
	}
	if alive := srv.Alive(); len(alive) != 0 {
		t.Errorf("alive: %+v", alive)
	}
	backendtest.NoMisses(t, srv)
}

func TestOffersQuotas(t *testing.T) {
	srv := fake.Use(t, "aws")
	cfg := backendtest.Config(t, "aws", map[string]any{"regions": []any{"us-east-1", "us-west-2", "eu-north-1"}})
	list, err := backendtest.Driver(t, "aws").NewOffers(cfg, fake.Tables()).Offers(backendtest.Ctx(t), offers.Requirements{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]offers.Availability{}
	for _, o := range list {
		key := o.Instance.Name + "@" + o.Region
		if o.Instance.Resources.Spot {
			key += "/spot"
		}
		got[key] = o.Availability
		if len(o.AvailabilityZones) != 3 || !strings.HasPrefix(o.AvailabilityZones[0], o.Region) {
			t.Errorf("%s zones %v", key, o.AvailabilityZones)
		}
	}
	for key, want := range map[string]offers.Availability{
		"g4dn.xlarge@us-east-1":      offers.Unknown,
		"g4dn.xlarge@us-west-2/spot": offers.Unknown, // G/Spot through GetServiceQuota
		"g4dn.xlarge@eu-north-1":     offers.NoQuota, // G quota 0
		"p3.2xlarge@us-east-1":       offers.Unknown,
		"p3.2xlarge@us-west-2":       offers.NoQuota, // P quota 0
		"p4d.24xlarge@us-east-1":     offers.Unknown, // 96 vCPUs within 192
		"m5.large@eu-north-1/spot":   offers.Unknown,
	} {
		if got[key] != want {
			t.Errorf("%s: %q, want %q", key, got[key], want)
		}
	}
	if _, ok := got["m5.large@ap-northeast-3"]; ok {
		t.Errorf("an offer outside the configured regions")
	}
	if awsb.QuotaClass("g4dn.xlarge", false) != "G/OnDemand" || awsb.QuotaClass("p4d.24xlarge", true) != "P/Spot" ||
		awsb.QuotaClass("inf2.xlarge", false) != "Inf/OnDemand" || awsb.QuotaClass("m5.large", false) != "Standard/OnDemand" {
		t.Errorf("quota classes")
	}
	backendtest.NoMisses(t, srv)
}

func TestCapacityZones(t *testing.T) {
	srv := fake.Use(t, "aws")
	cfg := backendtest.Config(t, "aws", nil)
	comp, _ := backendtest.Driver(t, "aws").NewCompute(cfg)
	// p4d.24xlarge has capacity in us-east-1c only: a and b refuse, c launches.
	pd, err := comp.CreateInstance(backendtest.Ctx(t), backendtest.OfferFor(t, "aws", cfg, "p4d.24xlarge", "us-east-1", false), backendtest.InstanceConfig("big-0", "srv-1"))
	if err != nil {
		t.Fatal(err)
	}
	if pd.AvailabilityZone == nil || *pd.AvailabilityZone != "us-east-1c" {
		t.Errorf("zone %v, want us-east-1c", pd.AvailabilityZone)
	}
	// An offer limited to zones without capacity is refused as no capacity.
	o := backendtest.OfferFor(t, "aws", cfg, "p4d.24xlarge", "us-east-1", false)
	o.AvailabilityZones = []string{"us-east-1a", "us-east-1b"}
	if _, err := comp.CreateInstance(backendtest.Ctx(t), o, backendtest.InstanceConfig("big-1", "srv-1")); !backends.IsNoCapacity(err) {
		t.Errorf("launch in zones without capacity = %v", err)
	}
	_ = comp.TerminateInstance(backendtest.Ctx(t), pd.InstanceID, pd.Region, "")
	if alive := srv.Alive(); len(alive) != 0 {
		t.Errorf("alive: %+v", alive)
	}
	backendtest.NoMisses(t, srv)
}

// TestRetries: throttling and 5xx are retried, so a launch at a fault rate goes through.
func TestRetries(t *testing.T) {
	srv := fake.StartWith(t, "aws", fake.Options{BootDelay: fake.DefaultTestBootDelay, Seed: 5,
		Faults: fake.Faults{Rate: 0.3, Kinds: []string{fake.Fault5xx, fake.FaultThrottle}}})
	t.Setenv(backends.EnvAPIURL("aws"), srv.URL)
	cfg := backendtest.Config(t, "aws", nil)
	comp, _ := backendtest.Driver(t, "aws").NewCompute(cfg)
	var offer offers.Offer
	for i := 0; ; i++ {
		list, err := backendtest.Driver(t, "aws").NewOffers(cfg, fake.Tables()).Offers(backendtest.Ctx(t), offers.Requirements{})
		if err == nil {
			offer = list[0]
			break
		}
		if i == 5 {
			t.Fatalf("offers keep failing: %v", err)
		}
	}
	for i := 0; i < 3; i++ {
		pd, err := comp.CreateInstance(backendtest.Ctx(t), offer, backendtest.InstanceConfig(fmt.Sprint("retry-", i), "srv-1"))
		if err != nil {
			t.Fatalf("CreateInstance at a 30%% fault rate = %v (faults %v)", err, srv.FaultsInjected())
		}
		if err := comp.TerminateInstance(backendtest.Ctx(t), pd.InstanceID, pd.Region, ""); err != nil {
			t.Fatalf("TerminateInstance at a 30%% fault rate = %v", err)
		}
	}
	if n := srv.FaultsInjected(); n[fake.Fault5xx] == 0 || n[fake.FaultThrottle] == 0 {
		t.Errorf("faults injected: %v, want both kinds", n)
	}
	if len(srv.Machines()) != 3 || len(srv.Alive()) != 0 {
		t.Errorf("%d machines, %d alive; want 3 and none (retried launches are idempotent)", len(srv.Machines()), len(srv.Alive()))
	}
}
