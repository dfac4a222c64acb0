package ui_test

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/fake"
	ocib "github.com/dstackgo/dstack/internal/backends/oci"
	"github.com/dstackgo/dstack/internal/testutil"
)

// useOCIWorld points OCI backends at the OCI simulation (checked with default credentials from an
// OCI config file under a temporary HOME), in a world as large as the shared gpuhunt catalog the
// pages show: the tenancy is subscribed to every region dstack supports, each with one
// availability domain that lists every shape of the catalog, and every compartment exists. The UI tests are about the pages, so
// every catalog offer is available, as they expect.
func useOCIWorld(t *testing.T) {
	t.Helper()
	sim, err := fake.New("oci", fake.Options{Auth: fake.Lenient})
	if err != nil {
		t.Fatal(err)
	}
	shapes := catalogShapes(t)
	page := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("opc-request-id", "UITEST")
		_ = json.NewEncoder(w).Encode(v)
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		region := strings.Split(r.Host, ".")[1] // iaas.<region>.oraclecloud.com, identity.<region>.oci.oraclecloud.com
		switch {
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/regionSubscriptions"):
			var out []map[string]any
			for _, name := range ocib.Regions {
				out = append(out, map[string]any{"regionKey": strings.ToUpper(name[:3]), "regionName": name, "status": "READY",
					"isHomeRegion": name == "eu-frankfurt-1"})
			}
			page(w, out)
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/availabilityDomains"):
			page(w, []map[string]any{{"name": "Simx:" + strings.ToUpper(region) + "-AD-1", "id": "ocid1.availabilitydomain." + region}})
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/shapes"):
			var out []map[string]any
			for _, s := range shapes {
				out = append(out, map[string]any{"shape": s})
			}
			page(w, out)
		case r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/compartments/ocid1.compartment."):
			// Every compartment the pages name exists.
			id := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
			page(w, map[string]any{"id": id, "compartmentId": "ocid1.tenancy.oc1..uitest", "name": "ui", "description": "ui",
				"lifecycleState": "ACTIVE", "timeCreated": "2026-11-27T00:00:00.000Z"})
		default:
			sim.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(func() { ts.Close(); sim.Close() })
	t.Setenv(backends.EnvAPIURL("oci"), ts.URL+fake.Prefix("oci"))
	fake.UseHome(t, "oci")
}

// catalogShapes lists the shapes of the shared OCI catalog.
func catalogShapes(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(testutil.SharedDir(t), "data", "catalogs", "gpuhunt-v2", "oci.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var out []string
	for _, row := range rows[1:] {
		if !seen[row[0]] {
			seen[row[0]] = true
			out = append(out, row[0])
		}
	}
	if len(out) == 0 {
		t.Fatal(fmt.Errorf("no shapes in the OCI catalog"))
	}
	return out
}
