package cloudsim_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	_ "github.com/dstackgo/dstack/internal/backends/all"
	"github.com/dstackgo/dstack/internal/backends/fake"
	"github.com/dstackgo/dstack/internal/cloudsim"
	"github.com/dstackgo/dstack/internal/config"
	"github.com/dstackgo/dstack/internal/offers"
	"github.com/dstackgo/dstack/internal/schema"
	"github.com/dstackgo/dstack/internal/testutil"
)

const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl dstack-project"

// start runs a simulator for the test and points every DSTACK_<TYPE>_API_URL at it.
func start(t *testing.T, cfg cloudsim.Config) *cloudsim.Cloud {
	t.Helper()
	if cfg.BootDelay == 0 {
		cfg.BootDelay = 20 * time.Millisecond
	}
	cloud, err := cloudsim.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cloud.Close)
	for _, kv := range cloud.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return cloud
}

func ctx(t *testing.T, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return c
}

func source(d *backends.Driver, cfg backends.Config) offers.Source {
	if d.NewOffers != nil {
		return d.NewOffers(cfg, fake.Tables())
	}
	return offers.NewCatalogSource(d.Type, fake.Tables(), offers.DefaultCatalogConfig(d.Type))
}

// availableOffer is the cheapest available offer with a GPU.
func availableOffer(t *testing.T, d *backends.Driver, cfg backends.Config) offers.Offer {
	t.Helper()
	list, err := source(d, cfg).Offers(ctx(t, 10*time.Second), offers.Requirements{})
	if err != nil {
		t.Fatalf("%s offers: %v", d.Type, err)
	}
	for _, o := range list {
		if o.Availability.IsAvailable() && len(o.Instance.Resources.GPUs) > 0 {
			return o
		}
	}
	t.Fatalf("%s: no available GPU offer among %d", d.Type, len(list))
	return offers.Offer{}
}

func instanceConfig(name string) backends.InstanceConfig {
	return backends.InstanceConfig{ProjectName: "main", InstanceName: name, SSHPublicKeys: []string{testKey},
		ShimURL: "http://127.0.0.1:3000/api/agents/dstack-shim-linux-amd64"}
}

func TestExports(t *testing.T) {
	cloud := start(t, cloudsim.Config{})
	out := cloud.Exports()
	for _, typ := range fake.Types() {
		scheme := "http"
		if fake.TLS(typ) {
			scheme = "https"
		}
		re := regexp.MustCompile(`(?m)^export ` + backends.EnvAPIURL(typ) + `=` + scheme + `://127\.0\.0\.1:\d+` + regexp.QuoteMeta(fake.Prefix(typ)) + `$`)
		if !re.MatchString(out) {
			t.Errorf("exports lack %s:\n%s", typ, out)
		}
		d, _ := backends.Lookup(typ)
		if got := backends.APIURL(typ, d.DefaultAPIURL); !strings.HasPrefix(got, scheme+"://127.0.0.1:") {
			t.Errorf("%s resolves to %s", typ, got)
		}
	}
	if !strings.Contains(out, "export "+cloudsim.EnvControlURL+"=http://127.0.0.1:") {
		t.Errorf("exports lack the control URL:\n%s", out)
	}
	// The AWS SDK's own settings: the endpoint, and credentials for `creds: {type: default}`.
	for _, k := range []string{"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_EC2_METADATA_DISABLED"} {
		if os.Getenv(k) == "" {
			t.Errorf("exports lack %s:\n%s", k, out)
		}
	}
	if os.Getenv("AWS_ENDPOINT_URL") != os.Getenv(backends.EnvAPIURL("aws")) {
		t.Errorf("AWS_ENDPOINT_URL %s, DSTACK_AWS_API_URL %s", os.Getenv("AWS_ENDPOINT_URL"), os.Getenv(backends.EnvAPIURL("aws")))
	}
}

// TestLifecycle provisions one machine on every provider through the simulator, as a server would:
// check, offers, create, poll, terminate; the simulator then reports nothing alive.
func TestLifecycle(t *testing.T) {
	cloud := start(t, cloudsim.Config{})
	for _, typ := range fake.Types() {
		t.Run(typ, func(t *testing.T) {
			d, _ := backends.Lookup(typ)
			cfg := fake.GoodConfig(typ)
			// Any credential without "invalid" is accepted; a private key (OCI's key_content) stays
			// one, since the client signs with it.
			for k, v := range cfg.Values["creds"].(map[string]any) {
				if k != "type" && !strings.Contains(v.(string), "PRIVATE KEY") {
					cfg.Values["creds"].(map[string]any)[k] = "sim-" + v.(string)[len(v.(string))-4:]
				}
			}
			if err := d.Check(ctx(t, 10*time.Second), cfg); err != nil {
				t.Fatalf("Check = %v", err)
			}
			comp, err := d.NewCompute(cfg)
			if err != nil {
				t.Fatal(err)
			}
			offer := availableOffer(t, d, cfg)
			pd, err := comp.CreateInstance(ctx(t, 10*time.Second), offer, instanceConfig("sim-"+typ))
			if err != nil {
				t.Fatalf("CreateInstance(%s in %s) = %v", offer.Instance.Name, offer.Region, err)
			}
			for pd.Hostname == nil {
				if err := comp.UpdateProvisioningData(ctx(t, 5*time.Second), pd); err != nil {
					t.Fatal(err)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if err := comp.TerminateInstance(ctx(t, 10*time.Second), pd.InstanceID, pd.Region, pd.BackendData); err != nil {
				t.Fatal(err)
			}
		})
	}
	var alive struct {
		Count int `json:"count"`
	}
	getJSON(t, cloud.ControlURL+"/alive", &alive)
	if alive.Count != 0 {
		t.Errorf("GET /alive count = %d, want 0", alive.Count)
	}
	var all []fake.Machine
	getJSON(t, cloud.ControlURL+"/instances", &all)
	if len(all) != len(fake.Types()) {
		t.Errorf("GET /instances lists %d machines, want %d", len(all), len(fake.Types()))
	}
	if m := cloud.Misses(); len(m) > 0 {
		t.Errorf("malformed requests: %v", m)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func post(t *testing.T, url, body string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s", url, resp.Status)
	}
}

// TestControlAPI: capacity and faults set over HTTP reach the providers.
func TestControlAPI(t *testing.T) {
	cloud := start(t, cloudsim.Config{Providers: []string{"lambda", "runpod"}})
	d, _ := backends.Lookup("lambda")
	cfg := fake.GoodConfig("lambda")
	comp, _ := d.NewCompute(cfg)
	offer := availableOffer(t, d, cfg)

	post(t, cloud.ControlURL+"/capacity", `{"provider":"lambda","available":false}`)
	if _, err := comp.CreateInstance(ctx(t, 5*time.Second), offer, instanceConfig("ctl-0")); !backends.IsNoCapacity(err) {
		t.Errorf("CreateInstance without capacity = %v", err)
	}
	post(t, cloud.ControlURL+"/capacity", `{"provider":"lambda","available":true}`)

	post(t, cloud.ControlURL+"/faults", `{"rate":1,"kinds":["5xx"],"providers":["lambda"]}`)
	if _, err := comp.CreateInstance(ctx(t, 5*time.Second), offer, instanceConfig("ctl-1")); err == nil || backends.IsNoCapacity(err) {
		t.Errorf("CreateInstance with 5xx faults = %v", err)
	}
	var faults map[string]struct {
		Injected map[string]int `json:"injected"`
	}
	getJSON(t, cloud.ControlURL+"/faults", &faults)
	if faults["lambda"].Injected[fake.Fault5xx] == 0 || len(faults["runpod"].Injected) != 0 {
		t.Errorf("faults = %+v", faults)
	}
	post(t, cloud.ControlURL+"/faults", `{"rate":0}`)

	pd, err := comp.CreateInstance(ctx(t, 5*time.Second), offer, instanceConfig("ctl-2"))
	if err != nil {
		t.Fatal(err)
	}
	post(t, cloud.ControlURL+"/terminate", `{"provider":"lambda","id":"`+pd.InstanceID+`"}`)
	var alive []fake.Machine
	getJSON(t, cloud.ControlURL+"/instances?alive=1", &alive)
	if len(alive) != 0 {
		t.Errorf("alive after POST /terminate: %+v", alive)
	}
}

// TestFaultInjection provisions on every provider at a 30% fault rate (capacity, throttling, 5xx,
// timeouts): every attempt ends created or with an error, and after cleanup (terminate, retried
// until it succeeds) nothing is left alive.
func TestFaultInjection(t *testing.T) {
	faults := fake.Faults{Rate: 0.3, Hang: 50 * time.Millisecond}
	cloud := start(t, cloudsim.Config{Faults: faults, Seed: 7})
	type made struct {
		comp backends.Compute
		pd   *backends.ProvisioningData
	}
	var created []made
	failed := 0
	for _, typ := range fake.Types() {
		d, _ := backends.Lookup(typ)
		cfg := fake.GoodConfig(typ)
		comp, err := d.NewCompute(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var offer offers.Offer
		for try := 0; ; try++ { // offers themselves may fail; the server retries them too
			c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			list, err := source(d, cfg).Offers(c, offers.Requirements{})
			cancel()
			if err == nil {
				for _, o := range list {
					if o.Availability.IsAvailable() && len(o.Instance.Resources.GPUs) > 0 {
						offer = o
						break
					}
				}
				break
			}
			if try == 50 {
				t.Fatalf("%s: offers keep failing: %v", typ, err)
			}
		}
		for i := 0; i < 6; i++ {
			c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			pd, err := comp.CreateInstance(c, offer, instanceConfig(typ+"-fault-"+string(rune('a'+i))))
			cancel()
			if err != nil {
				failed++
				continue
			}
			created = append(created, made{comp, pd})
		}
	}
	for _, m := range created {
		deadline := time.Now().Add(20 * time.Second)
		for {
			c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err := m.comp.TerminateInstance(c, m.pd.InstanceID, m.pd.Region, m.pd.BackendData)
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("terminate %s %s keeps failing: %v", m.pd.Backend, m.pd.InstanceID, err)
			}
		}
	}
	injected := 0
	for _, p := range cloud.Providers {
		for _, n := range p.Sim.FaultsInjected() {
			injected += n
		}
	}
	t.Logf("%d created, %d failed, %d faults injected", len(created), failed, injected)
	if injected == 0 || failed == 0 || len(created) == 0 {
		t.Errorf("want both outcomes and injected faults: %d created, %d failed, %d faults", len(created), failed, injected)
	}
	if alive := cloud.Alive(); len(alive) != 0 {
		t.Errorf("%d machines left alive: %+v", len(alive), alive)
	}
}

var typeLine = regexp.MustCompile(`(?m)^\s*-\s+type:\s*(\S+)`)

// TestSeedExamples is the evidence: each seed example of these providers, loaded with
// config.Parse and pointed at the simulator, passes its credential check and yields offers; a
// credential field set to `invalid` is refused with that field's path.
func TestSeedExamples(t *testing.T) {
	md, err := os.ReadFile(filepath.Join(testutil.SharedDir(t), "seed", "backends.md"))
	if err != nil {
		t.Fatal(err)
	}
	cloud := start(t, cloudsim.Config{})
	seen := map[string]int{}
	for _, b := range testutil.YAMLBlocks(string(md)) {
		m := typeLine.FindStringSubmatch(b.Text)
		if m == nil || !fake.Has(m[1]) || !strings.Contains(b.Text, "projects:") {
			continue
		}
		typ := m[1]
		if missing := missingRequired(typ, b.Text); missing != "" {
			// An excerpt that shows one feature (Azure's vpc_ids and public_ips examples) and
			// leaves out the backend's required keys is not a config to load.
			t.Logf("%s example at line %d is an excerpt without %s; skipped", typ, b.Line, missing)
			continue
		}
		seen[typ]++
		t.Run(typ+"@"+itoa(b.Line), func(t *testing.T) {
			// Files the example reads from the server user's home (OCI's ~/.oci/config and key).
			fake.UseHome(t, typ)
			// Files the example names in a creds file reference (a GCP key's filename).
			d, _ := backends.Lookup(typ)
			refs := fileRefs(d)
			writeReferencedFiles(t, b.Text, typ, cloud, refs)
			srv, err := config.Parse("backends.md", []byte(b.Text), config.Options{Getenv: func(string) string { return "" }})
			if err != nil {
				t.Fatalf("the seed example does not load: %v", err)
			}
			cfg := srv.Projects[0].Backends[0]
			if err := d.Check(ctx(t, 10*time.Second), cfg); err != nil {
				t.Fatalf("Check = %v", err)
			}
			list, err := source(d, cfg).Offers(ctx(t, 10*time.Second), offers.Requirements{})
			if err != nil || len(list) == 0 {
				t.Fatalf("offers: %d, %v", len(list), err)
			}
			creds := cfg.Values["creds"].(map[string]any)
			for k := range creds {
				if k == "type" {
					continue
				}
				bad := cloneConfig(cfg)
				bad.Values["creds"].(map[string]any)[k] = "invalid"
				if to, ok := refs[k]; ok {
					// A file reference set to `invalid` names a file that does not exist, whose
					// contents the config then lacks.
					delete(bad.Values["creds"].(map[string]any), to)
				}
				err := d.Check(ctx(t, 10*time.Second), bad)
				var ce *backends.CredentialsError
				if !errors.As(err, &ce) {
					t.Fatalf("Check with creds.%s: invalid = %v (%T), want a CredentialsError", k, err, err)
				}
				found := false
				for _, f := range ce.Fields {
					found = found || strings.Join(f, ".") == "creds."+k
				}
				if !found {
					t.Errorf("Check with creds.%s: invalid names fields %v", k, ce.Fields)
				}
			}
		})
	}
	for _, typ := range fake.Types() {
		if seen[typ] == 0 {
			t.Errorf("no seed example for %s", typ)
		}
	}
}

// fileRefs maps the creds keys that name files to the keys their contents go to (gcp:
// filename → data).
func fileRefs(d *backends.Driver) map[string]string {
	out := map[string]string{}
	for _, f := range d.Fields {
		if f.Name != "creds" {
			continue
		}
		for _, v := range f.Variants {
			if v.FileRef != nil {
				out[v.FileRef.From] = v.FileRef.To
			}
		}
	}
	return out
}

var keyValueLine = regexp.MustCompile(`(?m)^\s*(\w+):\s*(\S+)\s*$`)

// writeReferencedFiles writes the files an example names in a creds file reference under a
// temporary home, with the contents of the simulation's good config (for gcp, a key whose
// token_uri is the simulator).
func writeReferencedFiles(t *testing.T, text, typ string, cloud *cloudsim.Cloud, refs map[string]string) {
	t.Helper()
	var url string
	for _, p := range cloud.Providers {
		if p.Type == typ {
			url = p.URL
		}
	}
	home := ""
	for _, m := range keyValueLine.FindAllStringSubmatch(text, -1) {
		to, ok := refs[m[1]]
		if !ok {
			continue
		}
		if home == "" {
			home = t.TempDir()
			t.Setenv("HOME", home)
		}
		content, _ := fake.GoodConfigAt(typ, url).Values["creds"].(map[string]any)[to].(string)
		path := schema.ExpandHome(m[2])
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func cloneConfig(c backends.Config) backends.Config {
	v := map[string]any{}
	for k, x := range c.Values {
		if m, ok := x.(map[string]any); ok {
			mm := map[string]any{}
			for kk, y := range m {
				mm[kk] = y
			}
			x = mm
		}
		v[k] = x
	}
	return backends.Config{Type: c.Type, Values: v}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// missingRequired names a required key of typ's schema (besides creds) that text does not set, ""
// when it sets them all.
func missingRequired(typ, text string) string {
	d, ok := backends.Lookup(typ)
	if !ok {
		return ""
	}
	for _, f := range d.Fields {
		if f.Required && f.Name != "creds" && !regexp.MustCompile(`(?m)^\s*`+regexp.QuoteMeta(f.Name)+`:`).MatchString(text) {
			return f.Name
		}
	}
	return ""
}
