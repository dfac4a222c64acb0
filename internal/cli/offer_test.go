package cli

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/backends/fake"
	"github.com/dstackgo/dstack/internal/cliconfig"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/server"
	"github.com/dstackgo/dstack/internal/testutil"
)

// catalogServer serves the shared gpuhunt CSVs in gpuhunt's layout: /version, then /<version>/catalog.zip.
func catalogServer(t *testing.T) *httptest.Server {
	dir := filepath.Join(testutil.SharedDir(t), "data", "catalogs", "gpuhunt-v2")
	files, _ := filepath.Glob(filepath.Join(dir, "*.csv"))
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		w, _ := zw.Create(filepath.Base(f))
		w.Write(data)
	}
	zw.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("/v2/version", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "20261126-test") })
	mux.HandleFunc("/v2/20261126-test/catalog.zip", func(w http.ResponseWriter, _ *http.Request) { w.Write(buf.Bytes()) })
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts
}

// TestOfferEndToEnd: a running server whose catalog comes from a local HTTP server, and
// `dstack offer --gpu A100:80GB:2 --json` lists matching offers in price order.
func TestOfferEndToEnd(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("DSTACK_CATALOG_URL", catalogServer(t).URL+"/v2")
	key := fake.Use(t, "runpod").Good.String("creds", "api_key")
	dir := t.TempDir()
	os.WriteFile(server.ConfigPath(dir), []byte(fmt.Sprintf(
		"projects:\n  - name: main\n    backends:\n      - type: runpod\n        creds: {type: api_key, api_key: %s}\n", key)), 0o600)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.Options{Dir: dir, Host: "127.0.0.1", Ready: func(url string, admin *models.User) {
			c, _ := cliconfig.Load()
			c.Upsert(cliconfig.Project{Name: "main", URL: url, Token: admin.Token}, true)
			if err := c.Save(); err != nil {
				t.Error(err)
			}
			ready <- url
		}})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	}

	var got struct {
		Offers []struct {
			Backend   string  `json:"backend"`
			Price     float64 `json:"price"`
			Resources struct {
				GPUs []struct {
					Name      string `json:"name"`
					MemoryMiB int    `json:"memory_mib"`
				} `json:"gpus"`
			} `json:"resources"`
		} `json:"offers"`
		TotalOffers int `json:"total_offers"`
	}
	// The catalog loads in the background: a request never waits on it, so poll.
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, code := runRoot(t, "offer", "--gpu", "A100:80GB:2", "--json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, out)
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if len(got.Offers) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(got.Offers) == 0 || got.TotalOffers < len(got.Offers) {
		t.Fatalf("no offers: %+v", got)
	}
	for i, o := range got.Offers {
		if o.Backend != "runpod" || len(o.Resources.GPUs) != 2 || o.Resources.GPUs[0].Name != "A100" || o.Resources.GPUs[0].MemoryMiB != 80*1024 {
			t.Fatalf("offer %d does not match A100:80GB:2: %+v", i, o)
		}
		if i > 0 && o.Price < got.Offers[i-1].Price {
			t.Fatalf("offers not in price order at %d", i)
		}
	}
	// The table form has dstack's columns and footer.
	out, code := runRoot(t, "offer", "--gpu", "A100:80GB:2", "--max-offers", "3")
	if code != 0 || !bytes.Contains([]byte(out), []byte("BACKEND")) || !bytes.Contains([]byte(out), []byte("Shown 3 of ")) {
		t.Fatalf("table: exit %d\n%s", code, out)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
