package conformance_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	_ "github.com/dstackgo/dstack/internal/backends/all"
	"github.com/dstackgo/dstack/internal/backends/fake"
	"github.com/dstackgo/dstack/internal/schema"
)

// registeredTypes is how many backend types this build registers.
const registeredTypes = 13

// TestCredentialChecks runs every check that has a fake against it: good and bad credentials, a
// failing provider, a hung one and an unreachable one.
func TestCredentialChecks(t *testing.T) {
	for _, typ := range backends.Types() {
		d, _ := backends.Lookup(typ)
		if !fake.Has(typ) {
			if d.Check != nil {
				t.Logf("%s has a credential check but no fake; it is not exercised here", typ)
			}
			continue
		}
		if d.Check == nil {
			t.Errorf("%s has a fake but no credential check", typ)
			continue
		}
		t.Run(typ, func(t *testing.T) { checkConformance(t, d) })
	}
	for _, typ := range fake.Types() {
		if _, ok := backends.Lookup(typ); !ok {
			t.Errorf("fake for %s, which is not a registered backend type", typ)
		}
	}
}

func checkConformance(t *testing.T, d *backends.Driver) {
	typ := d.Type

	t.Run("good credentials", func(t *testing.T) {
		srv := fake.Use(t, typ)
		if got := backends.APIURL(typ, d.DefaultAPIURL); got != srv.URL {
			t.Fatalf("APIURL = %s, want the fake at %s", got, srv.URL)
		}
		if _, issues := backends.Validate(srv.Good.Values, &schema.Context{}); len(issues) > 0 {
			t.Fatalf("the fake's good config does not pass the schema: %v", issues)
		}
		if err := d.Check(ctx(t, 10*time.Second), srv.Good); err != nil {
			t.Fatalf("Check(good) = %v, want nil", err)
		}
		if srv.Hits() == 0 {
			t.Fatalf("Check(good) passed without reaching the fake through %s", backends.EnvAPIURL(typ))
		}
		noMisses(t, srv)
	})

	t.Run("bad credentials", func(t *testing.T) {
		srv := fake.Use(t, typ)
		err := d.Check(ctx(t, 10*time.Second), srv.Bad)
		var ce *backends.CredentialsError
		if !errors.As(err, &ce) {
			t.Fatalf("Check(bad) = %v (%T), want *backends.CredentialsError", err, err)
		}
		if ce.Msg == "" {
			t.Errorf("CredentialsError has no message")
		}
		if len(ce.Fields) == 0 {
			t.Errorf("CredentialsError names no fields")
		}
		for _, f := range ce.Fields {
			if len(f) == 0 || f[0] != "creds" {
				t.Errorf("field %v does not start with creds", f)
			}
			if !resolves(d.Fields, srv.Bad.Values, f) {
				t.Errorf("field %v is not in the %s schema", f, typ)
			}
		}
		noSecrets(t, srv, err)
		if srv.Hits() == 0 {
			t.Errorf("Check(bad) did not reach the fake")
		}
		noMisses(t, srv)
	})

	t.Run("provider fails", func(t *testing.T) {
		srv := fake.Use(t, typ)
		srv.Fail()
		err := d.Check(ctx(t, 10*time.Second), srv.Good)
		notVerdict(t, srv, err)
		if srv.Hits() != 1 {
			t.Errorf("the check called the failing provider %d times, want once", srv.Hits())
		}
	})

	t.Run("provider hangs", func(t *testing.T) {
		srv := fake.Use(t, typ)
		srv.Hang()
		c, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := d.Check(c, srv.Good)
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("Check took %v against a hung provider with a 200ms deadline", took)
		}
		notVerdict(t, srv, err)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Check = %v, want an error that unwraps to context.DeadlineExceeded", err)
		}
	})

	t.Run("provider unreachable", func(t *testing.T) {
		srv := fake.Start(t, typ)
		dead := httptest.NewServer(nil)
		u, _ := url.Parse(srv.URL)
		deadURL := dead.URL + u.Path
		dead.Close()
		t.Setenv(backends.EnvAPIURL(typ), deadURL)
		err := d.Check(ctx(t, 10*time.Second), srv.Good)
		var ce *backends.CredentialsError
		if err == nil || errors.As(err, &ce) {
			t.Fatalf("Check against a closed port = %v, want a plain error", err)
		}
		if !strings.Contains(err.Error(), strings.TrimPrefix(dead.URL, "http://")) {
			t.Errorf("error %q does not say which URL failed (%s)", err, dead.URL)
		}
		noSecrets(t, srv, err)
	})
}

// notVerdict wants an error that is not a CredentialsError, names the fake's address and leaks no
// secret.
func notVerdict(t *testing.T, srv *fake.Server, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("Check = nil, want an error")
	}
	var ce *backends.CredentialsError
	if errors.As(err, &ce) {
		t.Fatalf("Check = %v, a CredentialsError; a provider failure says nothing about the credentials", err)
	}
	u, _ := url.Parse(srv.URL)
	if !strings.Contains(err.Error(), u.Host) {
		t.Errorf("error %q does not say which URL failed (%s)", err, srv.URL)
	}
	noSecrets(t, srv, err)
}

func noSecrets(t *testing.T, srv *fake.Server, err error) {
	t.Helper()
	for _, s := range srv.Secrets {
		if strings.Contains(err.Error(), s) || strings.Contains(err.Error(), url.QueryEscape(s)) {
			t.Errorf("error %q contains a secret", err)
		}
	}
}

func noMisses(t *testing.T, srv *fake.Server) {
	t.Helper()
	for _, m := range srv.Misses() {
		t.Errorf("the fake %s did not take a request as the provider's call: %s", srv.Type, m)
	}
}

func ctx(t *testing.T, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return c
}

// resolves reports whether path names a field of the schema, following unions by the tag in values.
func resolves(fields []schema.Field, values map[string]any, path []string) bool {
	if len(path) == 0 {
		return true
	}
	for _, f := range fields {
		if f.Name != path[0] {
			continue
		}
		if len(path) == 1 {
			return true
		}
		sub, _ := values[f.Name].(map[string]any)
		switch {
		case f.Kind == schema.Union:
			tag := f.Tag
			if tag == "" {
				tag = "type"
			}
			for _, v := range f.Variants {
				if v.Name == sub[tag] {
					return resolves(v.Fields, sub, path[1:])
				}
			}
			return false
		case f.Kind == schema.Object:
			return resolves(f.Fields, sub, path[1:])
		}
		return false
	}
	return false
}

// TestSchemas checks every registered backend's schema: one required secret key holding the
// credentials, every secret under it, help on every field, and Split keeping secrets apart.
func TestSchemas(t *testing.T) {
	types := backends.Types()
	if len(types) != registeredTypes {
		t.Errorf("%d backend types registered (%v), want %d", len(types), types, registeredTypes)
	}
	for _, typ := range types {
		t.Run(typ, func(t *testing.T) {
			d, _ := backends.Lookup(typ)
			key := "creds"
			if typ == "kubernetes" {
				key = "kubeconfig"
			}
			var top *schema.Field
			for i := range d.Fields {
				if d.Fields[i].Name == key {
					top = &d.Fields[i]
				}
				if d.Fields[i].Name == "type" {
					t.Errorf("field `type` is declared; it is the union's tag")
				}
			}
			if top == nil {
				t.Fatalf("no `%s` field", key)
			}
			if !top.Required || !top.Secret {
				t.Errorf("`%s` is not a required secret (required=%v secret=%v)", key, top.Required, top.Secret)
			}
			for _, f := range d.Fields {
				walk(t, f, []string{f.Name}, f.Name == key)
			}

			values := map[string]any{"type": typ}
			for _, f := range d.Fields {
				values[f.Name] = "value of " + f.Name
			}
			public, secret := backends.Split(backends.Config{Type: typ, Values: values})
			if len(secret) != 1 || secret[key] == nil {
				t.Errorf("Split put %v in the secret half, want only %s", keys(secret), key)
			}
			if _, ok := public[key]; ok {
				t.Errorf("Split left %s in the public half", key)
			}
			if len(public)+len(secret) != len(values) {
				t.Errorf("Split lost keys: public %v, secret %v", keys(public), keys(secret))
			}
			joined := backends.Join(typ, public, secret)
			if len(joined.Values) != len(values) {
				t.Errorf("Join(Split) has %v, want %v", keys(joined.Values), keys(values))
			}
		})
	}
}

func walk(t *testing.T, f schema.Field, path []string, underSecret bool) {
	t.Helper()
	if strings.TrimSpace(f.Help) == "" {
		t.Errorf("%s has no help text", schema.PathString(path))
	}
	if f.Secret && !underSecret {
		t.Errorf("%s is secret but not under the credentials key", schema.PathString(path))
	}
	for _, sub := range f.Fields {
		walk(t, sub, append(append([]string(nil), path...), sub.Name), underSecret)
	}
	for _, v := range f.Variants {
		for _, sub := range v.Fields {
			walk(t, sub, append(append([]string(nil), path...), v.Name, sub.Name), underSecret)
		}
	}
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
