package server

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dstackgo/dstack/internal/backends/fake"
	"github.com/dstackgo/dstack/internal/catalog"
	"github.com/dstackgo/dstack/internal/config"
	"github.com/dstackgo/dstack/internal/offers"
	"github.com/dstackgo/dstack/internal/resources"
	"github.com/dstackgo/dstack/internal/testutil"
)

func TestPlanOffersOverSharedCatalogs(t *testing.T) {
	snap, err := catalog.LoadDir(filepath.Join(testutil.SharedDir(t), "data", "catalogs", "gpuhunt-v2"))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.srv.SetCatalog(snap)
	runpod := fake.Use(t, "runpod").Good.String("creds", "api_key")
	lambda := fake.Use(t, "lambda").Bad.String("creds", "api_key")
	cfg, err := config.Parse("config.yml", []byte(fmt.Sprintf(`projects:
  - name: main
    backends:
      - type: runpod
        community_cloud: false
        creds: {type: api_key, api_key: %s}
      - type: lambda
        creds: {type: api_key, api_key: %s}
`, runpod, lambda)), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	admin, _ := e.st.GetUserByName(context.Background(), "admin")
	if err := e.srv.ApplyConfig(context.Background(), cfg, admin); err != nil {
		t.Fatal(err)
	}
	e.srv.WaitChecks()
	main, _ := e.st.GetProject(context.Background(), "main")

	spec, err := resources.Parse(map[string]any{"gpu": "A100:80GB:2"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.srv.PlanOffers(context.Background(), main.ID, offers.Query{Requirements: offers.Requirements{Resources: spec}}, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Offers) == 0 || res.Total < len(res.Offers) {
		t.Fatalf("offers %d of %d; notes %v %s", len(res.Offers), res.Total, res.Notes, res.Explanation)
	}
	for i, o := range res.Offers {
		if o.Backend != "runpod" || !secureCloud(o) {
			t.Fatalf("offer %d: %s %s; want runpod Secure Cloud only", i, o.Backend, o.Region)
		}
		if len(o.Instance.Resources.GPUs) != 2 || !strings.Contains(o.Instance.Resources.GPUs[0].Name, "A100") {
			t.Fatalf("offer %d has %v", i, o.Instance.Resources.GPUs)
		}
		if i > 0 && o.Price < res.Offers[i-1].Price {
			t.Fatalf("not sorted by price at %d", i)
		}
	}
	var lambdaNote string
	for _, n := range res.Notes {
		if n.Backend == "lambda" {
			lambdaNote = n.Message
		}
	}
	if !strings.Contains(lambdaNote, "credentials are invalid") {
		t.Fatalf("the invalid backend is not explained: %v", res.Notes)
	}
}
