package nebius_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/fake"
	"github.com/dstackgo/dstack/internal/backends/nebius"
	"github.com/dstackgo/dstack/internal/schema"
	"github.com/dstackgo/dstack/internal/testutil"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// driver is the nebius driver with its check (not registered yet: see nebius.go).
func driver(t *testing.T) *backends.Driver {
	d, ok := backends.Lookup("nebius")
	if !ok {
		t.Fatal("nebius is not registered")
	}
	withCheck := *d
	withCheck.Check = nebius.Check
	return &withCheck
}

func noMisses(t *testing.T, srv *fake.NebiusServer) {
	t.Helper()
	for _, m := range srv.Misses() {
		t.Errorf("the fake did not take a call as Nebius's: %s", m)
	}
}

func credErr(t *testing.T, err error, field ...string) *backends.CredentialsError {
	t.Helper()
	var ce *backends.CredentialsError
	if !errors.As(err, &ce) {
		t.Fatalf("Check = %v (%T), want *backends.CredentialsError", err, err)
	}
	if want := [][]string{field}; !reflect.DeepEqual(ce.Fields, want) {
		t.Errorf("fields %v, want %v (%s)", ce.Fields, want, ce.Msg)
	}
	if ce.Msg == "" {
		t.Errorf("CredentialsError has no message")
	}
	return ce
}

func with(cfg backends.Config, key string, v any) backends.Config {
	out := backends.Config{Type: cfg.Type, Values: map[string]any{}}
	for k, x := range cfg.Values {
		out.Values[k] = x
	}
	out.Values[key] = v
	return out
}

func TestCheckGood(t *testing.T) {
	srv := fake.UseNebius(t)
	if _, issues := backends.Validate(srv.Good.Values, &schema.Context{}); len(issues) > 0 {
		t.Fatalf("the fake's good config does not pass the schema: %v", issues)
	}
	if err := driver(t).Check(ctx(t), srv.Good); err != nil {
		t.Fatalf("Check(good) = %v", err)
	}
	if srv.Hits() != 3 {
		t.Errorf("hits = %d, want 3 (exchange, tenants, projects)", srv.Hits())
	}
	noMisses(t, srv)
}

func TestCheckBadKeys(t *testing.T) {
	srv := fake.UseNebius(t)
	err := driver(t).Check(ctx(t), srv.Bad)
	credErr(t, err, "creds")
	for _, s := range srv.Secrets {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q contains a secret", err)
		}
	}

	unknown := srv.Good
	creds := map[string]any{}
	for k, v := range srv.Good.Values["creds"].(map[string]any) {
		creds[k] = v
	}
	creds["public_key_id"] = "publickey-e00unknown000000000"
	credErr(t, driver(t).Check(ctx(t), with(unknown, "creds", creds)), "creds")

	creds["public_key_id"] = fake.NebiusPublicKeyID
	creds["service_account_id"] = "serviceaccount-e00someoneelse0000"
	credErr(t, driver(t).Check(ctx(t), with(unknown, "creds", creds)), "creds")

	creds["service_account_id"] = fake.NebiusServiceAccountID
	creds["private_key_content"] = "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n"
	credErr(t, driver(t).Check(ctx(t), with(unknown, "creds", creds)), "creds")
	noMisses(t, srv)
}

func TestCheckProjectsAndRegions(t *testing.T) {
	srv := fake.UseNebius(t)
	d := driver(t)
	good := srv.Good

	// eu-north1 has two projects, one named default-project-…: it is the default.
	if err := d.Check(ctx(t), with(good, "regions", []any{"eu-north1"})); err != nil {
		t.Errorf("Check(regions: [eu-north1]) = %v", err)
	}
	credErr(t, d.Check(ctx(t), with(good, "regions", []any{"us-central1"})), "regions")

	srv.SetProjects(
		fake.NebiusProject{ID: "project-e00a", Name: "alpha", Region: "eu-north1"},
		fake.NebiusProject{ID: "project-e00b", Name: "beta", Region: "eu-north1"},
	)
	ce := credErr(t, d.Check(ctx(t), good), "regions")
	if !strings.Contains(ce.Msg, "default project in region eu-north1") {
		t.Errorf("message %q", ce.Msg)
	}
	if err := d.Check(ctx(t), with(good, "projects", []any{"project-e00b"})); err != nil {
		t.Errorf("Check(projects: [project-e00b]) = %v", err)
	}
	credErr(t, d.Check(ctx(t), with(good, "projects", []any{"project-e00a", "project-e00b"})), "projects")
	credErr(t, d.Check(ctx(t), with(good, "projects", []any{"project-e00zzz"})), "projects")

	srv.SetProjects(fake.NebiusDefaultProjects...)
	credErr(t, d.Check(ctx(t), with(good, "fabrics", []any{"fabric-2", "fabric-99"})), "fabrics")
	if err := d.Check(ctx(t), with(good, "fabrics", []any{"fabric-2"})); err != nil {
		t.Errorf("Check(fabrics: [fabric-2]) = %v", err)
	}

	srv.SetTenants("tenant-a", "tenant-b")
	credErr(t, d.Check(ctx(t), good), "creds")
	noMisses(t, srv)
}

func TestRegionProjectsPaging(t *testing.T) {
	srv := fake.UseNebius(t)
	var ps []fake.NebiusProject
	for _, r := range []string{"r01", "r02", "r03", "r04", "r05", "r06", "r07", "r08", "r09", "r10", "r11", "r12"} {
		ps = append(ps, fake.NebiusProject{ID: "project-" + r, Name: "p", Region: r})
	}
	srv.SetProjects(ps...)
	if err := driver(t).Check(ctx(t), with(srv.Good, "regions", []any{"r12"})); err != nil {
		t.Fatalf("Check = %v", err)
	}
	got, err := nebius.RegionProjects([]nebius.Project{{"p1", "default-project-x", "r"}, {"p2", "y", "r"}, {"p3", "z", "s"}}, nil, nil, false)
	if err != nil || !reflect.DeepEqual(got, map[string]string{"r": "p1", "s": "p3"}) {
		t.Errorf("RegionProjects = %v, %v", got, err)
	}
	got, err = nebius.RegionProjects([]nebius.Project{{"p1", "a", "r"}, {"p3", "z", "s"}}, []string{"s"}, []string{"p1", "p3"}, true)
	if err != nil || !reflect.DeepEqual(got, map[string]string{"s": "p3"}) {
		t.Errorf("RegionProjects(configured) = %v, %v", got, err)
	}
}

func TestCheckProviderFailures(t *testing.T) {
	d := driver(t)
	srv := fake.UseNebius(t)
	srv.Fail()
	err := d.Check(ctx(t), srv.Good)
	var ce *backends.CredentialsError
	if err == nil || errors.As(err, &ce) || !strings.Contains(err.Error(), srv.Addr) {
		t.Errorf("Check against a failing provider = %v, want a plain error naming %s", err, srv.Addr)
	}
	if srv.Hits() != 1 {
		t.Errorf("hits = %d, want 1", srv.Hits())
	}

	srv.Hang()
	c, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = d.Check(c, srv.Good)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Check took %v against a hung provider", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ce) {
		t.Errorf("Check against a hung provider = %v, want a deadline error", err)
	}

	srv.OK()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	_ = l.Close()
	t.Setenv(backends.EnvAPIURL("nebius"), "http://"+dead)
	err = d.Check(ctx(t), srv.Good)
	if err == nil || errors.As(err, &ce) || !strings.Contains(err.Error(), dead) {
		t.Errorf("Check against a closed port = %v, want a plain error naming %s", err, dead)
	}
}

// TestSeedExamples: the seed's Nebius examples validate and, with their ids accepted by the fake and
// a throwaway key in place of theirs, pass the check.
func TestSeedExamples(t *testing.T) {
	md, err := os.ReadFile(filepath.Join(testutil.SharedDir(t), "seed", "backends.md"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := fake.NebiusKeyPEM(key)
	home := t.TempDir()
	t.Setenv("HOME", home)
	if err := os.MkdirAll(filepath.Join(home, "path", "to"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "path", "to", "key.pem"), []byte(pemKey), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := fake.UseNebius(t)
	srv.AddKey("serviceaccount-e00dhnv9ftgb3cqmej", "publickey-e00ngaex668htswqy4", &key.PublicKey)
	srv.SetProjects(
		fake.NebiusProject{ID: "project-e00jt6t095t1ahrg4re30", Name: "default-project-eu-north1", Region: "eu-north1"},
		fake.NebiusProject{ID: "project-e01iahuh3cklave4ao1nv", Name: "default-project-eu-west1", Region: "eu-west1"},
		fake.NebiusProject{ID: "project-e00other0000000000000", Name: "research", Region: "eu-north1"},
	)
	n := 0
	for _, b := range testutil.YAMLBlocks(string(md)) {
		if !strings.Contains(b.Text, "type: nebius") {
			continue
		}
		doc, issues := schema.ParseYAML("seed", []byte(b.Text))
		if issues != nil {
			t.Fatalf("block at line %d: %v", b.Line, issues)
		}
		entries := nebiusEntries(doc.Value)
		if len(entries) == 0 {
			t.Errorf("block at line %d: no nebius entry found", b.Line)
		}
		for _, e := range entries {
			n++
			if creds, ok := e["creds"].(map[string]any); ok {
				if _, inline := creds["private_key_content"]; inline {
					creds["private_key_content"] = pemKey // the seed's key is elided ("[...]")
				}
			}
			cfg, issues := backends.Validate(e, &schema.Context{ReadFiles: true})
			if len(issues) > 0 {
				t.Errorf("block at line %d: %v", b.Line, issues)
				continue
			}
			if err := driver(t).Check(ctx(t), cfg); err != nil {
				t.Errorf("block at line %d: Check = %v", b.Line, err)
			}
		}
	}
	if n != 3 {
		t.Errorf("found %d nebius examples in the seed, want 3", n)
	}
	noMisses(t, srv)
}

// nebiusEntries finds the `type: nebius` mappings of a decoded document: the document itself, or
// the backends of its projects.
func nebiusEntries(v any) []map[string]any {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	if m["type"] == "nebius" {
		return []map[string]any{m}
	}
	var out []map[string]any
	projects, _ := m["projects"].([]any)
	for _, p := range projects {
		pm, _ := p.(map[string]any)
		bs, _ := pm["backends"].([]any)
		for _, b := range bs {
			out = append(out, nebiusEntries(b)...)
		}
	}
	return out
}
