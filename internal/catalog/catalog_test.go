package catalog

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/dstackgo/dstack/internal/resources"
	"github.com/dstackgo/dstack/internal/testutil"
)

const header = "instance_name,location,price,cpu,memory,gpu_count,gpu_name,gpu_memory,spot,disk_size,gpu_vendor,flags,cpu_arch\n"

func sharedDir(t *testing.T) string {
	return filepath.Join(testutil.SharedDir(t), "data", "catalogs", "gpuhunt-v2")
}

func mustParse(t *testing.T, provider, body string) *Table {
	t.Helper()
	tab, err := Parse(provider, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func TestRowIsCompact(t *testing.T) {
	if n := unsafe.Sizeof(Row{}); n > 40 {
		t.Errorf("Row is %d bytes, want <= 40", n)
	}
}

func TestParseChecksRows(t *testing.T) {
	body := strings.ReplaceAll(header+
		"a,r1,1.5,4,16,0,,,False,,,,x86\n"+
		"b,r1,0,4,16,0,,,False,,,,\n"+ // price 0
		"c,r1,1,0,16,0,,,False,,,,\n"+ // cpu 0
		"d,r1,1,4,0,0,,,False,,,,\n"+ // memory 0
		"e,r1,1,4,16,2,,80,False,,,,\n"+ // GPUs without a name
		"f,r1,1,4,16,0,A100,,False,,,,\n"+ // a name without GPUs
		"g,r2,0.5,8,64,2,A100,80,True,200,,,\n"+ // vendor defaults to nvidia
		"h,r2,2,8,64,8,tpu-v5litepod-8,16,False,,,,\n"+ // TPU
		"i,r2,3,8,64,1,MI300X,192,False,,amd,,arm\n"+
		"j,r2,0.1,8,64,0,,,False,,,oci-spot,\n"+
		"k,r2,x,8,64,0,,,False,,,,\n"+
		"l,r3,5,1,1,0,,,False,,,,\n"+
		"m,r3,6,1,1,0,,,False,,,,\n", "\n", "\r\n")
	tab := mustParse(t, "p", body)
	if tab.Len() != 7 || tab.RejectedTotal() != 6 {
		t.Fatalf("rows=%d rejected=%v", tab.Len(), tab.Rejected())
	}
	if tab.Rejected()["price not > 0"] != 2 || tab.Rejected()["gpu_count > 0 without gpu_name and gpu_memory > 0"] != 1 {
		t.Errorf("reasons %v", tab.Rejected())
	}
	var got []string
	for i := range tab.Len() {
		r := tab.Row(i)
		got = append(got, tab.Name(r)+"/"+r.Vendor.String()+"/"+tab.GPUName(r)+"/"+r.Arch.String()+"/"+tab.Flags(r))
	}
	want := []string{"j///x86/oci-spot", "g/nvidia/A100/x86/", "a///x86/", "h/google/v5litepod-8/x86/", "i/amd/MI300X/arm/", "l///x86/", "m///x86/"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("rows in price order:\n got %v\nwant %v", got, want)
	}
	g := tab.Row(1)
	if !g.Spot || g.Disk != 200 || g.GPUCount != 2 || g.GPUMemory != 80 || g.Price != 0.5 || tab.Location(g) != "r2" {
		t.Errorf("row g = %+v", *g)
	}
}

func TestParseRefuses(t *testing.T) {
	cases := map[string]string{
		"":                         "header",
		"instance_name,location\n": `no "price" column`,
		header:                     "no usable rows",
		header + "a,r,1,1,1,0,,,False,,,,\nb,r,0,1,1,0,,,False,,,,\nc,r,0,1,1,0,,,False,,,,\n": "2 of 3 rows rejected",
	}
	for body, want := range cases {
		_, err := Parse("p", strings.NewReader(body))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want %q", body, err, want)
		}
	}
	// v1 files have neither flags nor cpu_arch.
	v1 := "instance_name,location,price,cpu,memory,gpu_count,gpu_name,gpu_memory,spot,disk_size,gpu_vendor\na,r,1,2,8,1,T4,16,False,,\n"
	if tab := mustParse(t, "p", v1); tab.Len() != 1 || tab.Row(0).Vendor != NVIDIA {
		t.Error("v1 file")
	}
}

func TestSharedCatalogs(t *testing.T) {
	snap, err := LoadDir(sharedDir(t))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"cudo": 156, "datacrunch": 55, "lambdalabs": 408, "nebius": 69, "oci": 5324, "runpod": 3488, "vastai": 67}
	for p, n := range want {
		tab := snap.Table(p)
		if tab == nil || tab.Len() != n || tab.RejectedTotal() != 0 {
			t.Errorf("%s: %v", p, tab)
			continue
		}
		for i := 1; i < tab.Len(); i++ {
			if tab.Row(i).Price < tab.Row(i-1).Price {
				t.Fatalf("%s not sorted by price at %d", p, i)
			}
		}
	}
	if tab, err := snap.TableFor("lambda"); err != nil || tab.Provider != "lambdalabs" {
		t.Errorf("lambda → %v %v", tab, err)
	}
	if tab, err := snap.TableFor("verda"); err != nil || tab.Provider != "datacrunch" {
		t.Errorf("verda → %v %v", tab, err)
	}
	if _, err := snap.TableFor("aws"); !errors.Is(err, ErrNoProvider) {
		t.Errorf("aws: %v", err)
	}
	if _, err := NewSnapshot().TableFor("aws"); !errors.Is(err, ErrNotLoaded) {
		t.Errorf("empty: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestQuery(t *testing.T) {
	snap, err := LoadDir(sharedDir(t))
	if err != nil {
		t.Fatal(err)
	}
	oci := snap.Table("oci")
	collect := func(f Filter) []*Row {
		var out []*Row
		oci.Query(&f, func(r *Row) bool { out = append(out, r); return true })
		return out
	}
	a100 := collect(Filter{GPUNames: []string{"a100"}, GPUCount: resources.Exact(8), Spot: ptr(false)})
	if len(a100) == 0 {
		t.Fatal("no 8xA100 on-demand in oci")
	}
	for _, r := range a100 {
		if oci.GPUName(r) != "A100" || r.GPUCount != 8 || r.Spot {
			t.Fatalf("bad match %+v", r)
		}
	}
	cheap := collect(Filter{Price: resources.Range[float64]{Max: ptr(0.05)}, Locations: []string{"US-ASHBURN-1"}})
	for _, r := range cheap {
		if r.Price > 0.05 || oci.Location(r) != "us-ashburn-1" {
			t.Fatalf("bad match %+v in %s", r, oci.Location(r))
		}
	}
	if len(cheap) == 0 {
		t.Fatal("no cheap rows in us-ashburn-1")
	}
	cc := collect(Filter{MinComputeCapability: &resources.ComputeCapability{Major: 9}})
	if len(cc) == 0 {
		t.Fatal("no GPU of compute capability 9.0 in oci")
	}
	for _, r := range cc {
		if lookupCC(r.Vendor, oci.GPUName(r)) < 90 {
			t.Fatalf("compute capability 9.0 matched %s", oci.GPUName(r))
		}
	}
	amd := collect(Filter{GPUVendor: "amd", GPUCount: resources.AtLeast(1)})
	for _, r := range amd {
		if r.Vendor != AMD {
			t.Fatal("vendor filter")
		}
	}
	mem := collect(Filter{GPUMemory: resources.AtLeast[resources.Memory](80), TotalGPUMemory: resources.AtLeast[resources.Memory](640)})
	for _, r := range mem {
		if r.GPUCount == 0 || r.GPUMemory < 80 || float32(r.GPUCount)*r.GPUMemory < 640 {
			t.Fatal("memory filter")
		}
	}
	n := 0
	oci.Query(&Filter{}, func(*Row) bool { n++; return n < 3 })
	if n != 3 {
		t.Errorf("Query did not stop: %d", n)
	}
}

func TestFlagsAndFunnel(t *testing.T) {
	tab := mustParse(t, "oci", header+
		"a,r1,1,4,16,0,,,True,,,oci-spot,\n"+
		"b,r1,2,4,16,1,A100,80,False,,,,\n"+
		"c,r2,3,4,16,8,A100,80,False,,,,\n"+
		"d,r2,4,4,16,8,H100,80,False,,,,\n")
	count := func(f Filter) int {
		n := 0
		tab.Query(&f, func(*Row) bool { n++; return true })
		return n
	}
	if count(Filter{}) != 3 || count(Filter{AllowedFlags: []string{"oci-spot"}}) != 4 {
		t.Error("flagged rows not hidden by default")
	}
	f := Filter{GPUNames: []string{"A100"}, GPUCount: resources.Exact(8), Price: resources.Range[float64]{Max: ptr(2.5)}}
	got := map[Stage]int{}
	for _, s := range tab.Funnel(&f) {
		got[s.Stage] = s.Remaining
	}
	if got[StageFlags] != 3 || got[StageGPU] != 2 || got[StageGPUCount] != 1 || got[StagePrice] != 0 || got[StageLocation] != 0 {
		t.Errorf("funnel %v", got)
	}
}

func zipOf(t *testing.T, files map[string]string) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// fakeGpuhunt serves {base}/version and {base}/{version}/catalog.zip.
type fakeGpuhunt struct {
	version atomic.Value
	zips    map[string][]byte
	hits    atomic.Int32
}

func (f *fakeGpuhunt) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	v := f.version.Load().(string)
	switch r.URL.Path {
	case "/v2/version":
		w.Write([]byte(v + "\n"))
	case "/v2/" + v + "/catalog.zip":
		w.Write(f.zips[v])
	default:
		http.NotFound(w, r)
	}
}

func TestSourceHTTP(t *testing.T) {
	good := header + "a,r1,1,4,16,0,,,False,,,,\nb,r2,2,4,16,1,A100,80,False,,,,\n"
	fake := &fakeGpuhunt{zips: map[string][]byte{
		"1": zipOf(t, map[string]string{"runpod.csv": good, "lambdalabs.csv": good}),
		// In version 2 the runpod CSV is broken and lambdalabs gains a row.
		"2": zipOf(t, map[string]string{"runpod.csv": header + "a,r1,0,4,16,0,,,False,,,,\n",
			"lambdalabs.csv": good + "c,r3,3,4,16,0,,,False,,,,\n"}),
	}}
	fake.version.Store("1")
	srv := httptest.NewServer(fake)
	defer srv.Close()
	cache := t.TempDir()
	src := New(Options{URL: srv.URL + "/v2", CacheDir: cache})

	if _, err := src.TableFor("runpod"); !errors.Is(err, ErrNotLoaded) {
		t.Fatalf("before load: %v", err)
	}
	ctx := context.Background()
	if err := src.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if tab, err := src.TableFor("lambda"); err != nil || tab.Len() != 2 || tab.Version != "1" {
		t.Fatalf("lambda: %v %v", tab, err)
	}
	hits := fake.hits.Load()
	if err := src.Load(ctx); err != nil || fake.hits.Load() != hits+1 {
		t.Errorf("same version downloaded again: %v, %d hits", err, fake.hits.Load()-hits)
	}

	fake.version.Store("2")
	err := src.Load(ctx)
	if err == nil || !strings.Contains(err.Error(), "runpod") {
		t.Errorf("broken runpod CSV not reported: %v", err)
	}
	if tab, _ := src.TableFor("runpod"); tab == nil || tab.Len() != 2 || tab.Version != "1" {
		t.Errorf("runpod did not keep version 1: %v", tab)
	}
	if tab, _ := src.TableFor("lambda"); tab == nil || tab.Len() != 3 || tab.Version != "2" {
		t.Errorf("lambda not swapped: %v", tab)
	}
	st := src.Status()
	if st.Version != "2" || len(st.Providers) != 2 || st.Providers[1].Provider != "runpod" ||
		!strings.Contains(st.Providers[1].LastError, "integrity") || st.Providers[1].Rows != 2 || st.Providers[0].LastError != "" {
		t.Errorf("status %+v", st)
	}

	// A fresh source serves the cached zip before it can reach the server. Version 2 was not cached
	// since one of its CSVs failed: a restart then keeps runpod's good table from version 1.
	srv.Close()
	again := New(Options{URL: srv.URL + "/v2", CacheDir: cache})
	ctx2, cancel := context.WithCancel(ctx)
	cancel()
	again.Run(ctx2)
	if tab, err := again.TableFor("runpod"); err != nil || tab.Len() != 2 || again.Status().Version != "1" {
		t.Errorf("cached zip not used: %v %v", tab, err)
	}
}

func TestSourceDirAndEnv(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "nebius.csv"), []byte(header+"a,eu-north1,1,4,16,0,,,False,,,,\n"), 0o644)
	t.Setenv(EnvURL, dir)
	src := New(Options{})
	if err := src.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if tab, err := src.TableFor("nebius"); err != nil || tab.Len() != 1 {
		t.Errorf("dir source: %v %v", tab, err)
	}

	bad := New(Options{URL: filepath.Join(dir, "missing")})
	if err := bad.Load(context.Background()); err == nil {
		t.Fatal("missing dir loaded")
	}
	_, err := bad.TableFor("nebius")
	if !errors.Is(err, ErrNotLoaded) || !strings.Contains(err.Error(), "no <provider>.csv") {
		t.Errorf("not-loaded error does not say why: %v", err)
	}
}
