package offers

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/catalog"
	"github.com/dstackgo/dstack/internal/resources"
	"github.com/dstackgo/dstack/internal/testutil"
)

var (
	snapOnce sync.Once
	snap     *catalog.Snapshot
	snapErr  error
)

// sharedSources serves the shared gpuhunt catalogs as the project's backends.
func sharedSources(t *testing.T) map[string]Source {
	t.Helper()
	dir := filepath.Join(testutil.SharedDir(t), "data", "catalogs", "gpuhunt-v2")
	snapOnce.Do(func() { snap, snapErr = catalog.LoadDir(dir) })
	if snapErr != nil {
		t.Fatal(snapErr)
	}
	out := map[string]Source{}
	for _, b := range []string{"runpod", "lambda", "oci", "datacrunch", "cudo", "nebius", "vastai"} {
		out[b] = NewCatalogSource(b, snap, DefaultCatalogConfig(b))
	}
	return out
}

func gpu(t *testing.T, spec string) *resources.GPUSpec {
	t.Helper()
	g, err := resources.ParseGPU(spec)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func query(t *testing.T, gpuSpec string) Query {
	q := Query{Requirements: Requirements{Resources: resources.Default(), Spot: OnDemand.Spot()}}
	if gpuSpec != "" {
		q.Resources.GPU = gpu(t, gpuSpec)
	}
	return q
}

func plan(t *testing.T, sources map[string]Source, q Query, max int) PlanResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return Plan(ctx, sources, q, max)
}

func note(res PlanResult, backend string) BackendNote {
	for _, n := range res.Notes {
		if n.Backend == backend {
			return n
		}
	}
	return BackendNote{}
}

func checkPriceOrder(t *testing.T, offers []Offer) {
	t.Helper()
	seenUnavailable := false
	for i, o := range offers {
		if !o.Availability.IsAvailable() {
			seenUnavailable = true
		} else if seenUnavailable {
			t.Fatalf("available offer %d after an unavailable one", i)
		}
		if i > 0 && offers[i-1].Availability.IsAvailable() == o.Availability.IsAvailable() && offers[i-1].Price > o.Price {
			t.Fatalf("offer %d (%v) cheaper than the one before (%v)", i, o.Price, offers[i-1].Price)
		}
	}
}

func TestPlanGPUFilters(t *testing.T) {
	src := sharedSources(t)
	res := plan(t, src, query(t, "A100:80GB:8"), 0)
	if res.Total == 0 || len(res.Offers) != res.Total {
		t.Fatalf("total %d, %d offers", res.Total, len(res.Offers))
	}
	backends := map[string]bool{}
	for _, o := range res.Offers {
		g := o.Instance.Resources.GPUs
		if len(g) != 8 || g[0].Name != "A100" || g[0].MemoryMiB != 81920 || g[0].Vendor != "nvidia" || o.Instance.Resources.Spot {
			t.Fatalf("offer does not match A100:80GB:8: %+v", o)
		}
		backends[o.Backend] = true
	}
	if len(backends) < 3 {
		t.Errorf("8xA100 80GB from only %v", backends)
	}
	checkPriceOrder(t, res.Offers)
	if res.MaxPrice != res.Offers[len(res.Offers)-1].Price {
		t.Errorf("MaxPrice %v, last %v", res.MaxPrice, res.Offers[len(res.Offers)-1].Price)
	}

	amd := plan(t, src, query(t, "amd:1.."), 0)
	for _, o := range amd.Offers {
		if o.Instance.Resources.GPUs[0].Vendor != "amd" {
			t.Fatalf("amd filter let %v through", o.Instance.Resources.GPUs[0])
		}
	}
	if amd.Total == 0 {
		t.Error("no AMD offers")
	}

	q := query(t, "24GB..:2")
	q.Resources.CPU = resources.CPUSpec{Count: resources.AtLeast(16)}
	q.Resources.Memory = resources.AtLeast[resources.Memory](64)
	for _, o := range plan(t, src, q, 0).Offers {
		r := o.Instance.Resources
		if len(r.GPUs) != 2 || r.GPUs[0].MemoryMiB < 24*1024 || r.CPUs < 16 || r.MemoryMiB < 64*1024 {
			t.Fatalf("24GB..:2 cpu 16.. mem 64GB.. let %+v through", r)
		}
	}

	cpuOnly := query(t, "")
	cpuOnly.Resources.GPU = gpu(t, "0")
	res = plan(t, src, cpuOnly, 10)
	if res.Total == 0 || len(res.Offers[0].Instance.Resources.GPUs) != 0 {
		t.Fatalf("gpu: 0 → %v", res.Offers)
	}
}

func TestPlanTruncatesAndCounts(t *testing.T) {
	src := sharedSources(t)
	all := plan(t, src, query(t, ""), 0)
	top := plan(t, src, query(t, ""), 5)
	if len(top.Offers) != 5 || top.Total != all.Total || top.MaxPrice != all.MaxPrice || all.Total < 1000 {
		t.Fatalf("top: %d offers of %d (all %d), max %v vs %v", len(top.Offers), top.Total, all.Total, top.MaxPrice, all.MaxPrice)
	}
	for i := range top.Offers {
		if top.Offers[i].Price != all.Offers[i].Price || top.Offers[i].Instance.Name != all.Offers[i].Instance.Name {
			t.Fatalf("top offer %d differs from the full plan's", i)
		}
	}
	checkPriceOrder(t, all.Offers)
	// The top offers a catalog source picks itself (TopSource) are those of the full list, with the
	// profile's filters applied in both paths.
	for _, edit := range []func(*Query){
		func(q *Query) { q.Regions = []string{"eu-frankfurt-1", "SE"} },
		func(q *Query) { q.InstanceTypes = []string{"gpu_8x_a100_80gb_sxm4", "BM.GPU.A100-v2.8"} },
		func(q *Query) { q.AvailabilityZones = []string{"zone-a"}; q.Spot = SpotAuto.Spot() },
	} {
		q := query(t, "")
		edit(&q)
		full, top := plan(t, src, q, 0), plan(t, src, q, 3)
		if full.Total == 0 || top.Total != full.Total || top.MaxPrice != full.MaxPrice || len(top.Offers) != min(3, full.Total) {
			t.Fatalf("%+v: top %d/%v, full %d/%v", q, top.Total, top.MaxPrice, full.Total, full.MaxPrice)
		}
		for i := range top.Offers {
			a, b := top.Offers[i], full.Offers[i]
			if a.Price != b.Price || a.Instance.Name != b.Instance.Name || a.Region != b.Region {
				t.Fatalf("%+v: offer %d: %+v vs %+v", q, i, a, b)
			}
		}
	}
	for _, o := range all.Offers {
		r := o.Instance.Resources
		if r.CPUs < 2 || r.MemoryMiB < 8*1024 || r.Spot {
			t.Fatalf("default requirements let %+v through", o)
		}
	}
}

func TestPlanSpotPolicies(t *testing.T) {
	src := sharedSources(t)
	counts := map[SpotPolicy][2]int{}
	for _, p := range []SpotPolicy{SpotOnly, OnDemand, SpotAuto} {
		q := query(t, "")
		q.Spot = p.Spot()
		res := plan(t, src, q, 0)
		var c [2]int
		for _, o := range res.Offers {
			if o.Instance.Resources.Spot {
				c[1]++
			} else {
				c[0]++
			}
		}
		counts[p] = c
		if p == SpotOnly {
			for _, b := range []string{"vastai", "lambda", "cudo"} {
				if n := note(res, b); n.Kind != NoteNoOffers {
					t.Errorf("spot on %s: note %+v", b, n)
				}
			}
		}
	}
	if counts[SpotOnly][0] != 0 || counts[SpotOnly][1] == 0 || counts[OnDemand][1] != 0 || counts[OnDemand][0] == 0 ||
		counts[SpotAuto][0] != counts[OnDemand][0] || counts[SpotAuto][1] != counts[SpotOnly][1] {
		t.Errorf("on-demand/spot counts: %v", counts)
	}
	if p, err := ParseSpotPolicy(""); err != nil || p != OnDemand {
		t.Error("default spot policy")
	}
	if _, err := ParseSpotPolicy("sometimes"); err == nil {
		t.Error("bad spot policy accepted")
	}
}

func TestPlanProfileFilters(t *testing.T) {
	src := sharedSources(t)
	q := query(t, "")
	q.MaxPrice = new(0.5)
	q.Regions = []string{"US-ASHBURN-1", "ca"}
	res := plan(t, src, q, 0)
	regions := map[string]bool{}
	for _, o := range res.Offers {
		if o.Price > 0.5 || !containsFold(q.Regions, o.Region) {
			t.Fatalf("offer %s in %s at %v", o.Instance.Name, o.Region, o.Price)
		}
		regions[o.Backend+"/"+o.Region] = true
	}
	if !regions["oci/us-ashburn-1"] || !regions["runpod/CA"] || len(regions) != 2 {
		t.Errorf("regions %v", regions)
	}

	q = query(t, "")
	q.Backends = []string{"lambda", "aws"}
	q.InstanceTypes = []string{"GPU_1X_A10"}
	res = plan(t, src, q, 0)
	for _, o := range res.Offers {
		if o.Backend != "lambda" || !strings.EqualFold(o.Instance.Name, "gpu_1x_a10") {
			t.Fatalf("filtered plan has %s/%s", o.Backend, o.Instance.Name)
		}
	}
	if res.Total == 0 || note(res, "oci").Kind != NoteExcluded || note(res, "aws").Kind != NoteNotConfigured {
		t.Errorf("total %d, notes %+v", res.Total, res.Notes)
	}

	// A lone "dstack" in backends is ignored.
	q = query(t, "H100")
	q.Backends = []string{"dstack"}
	if res := plan(t, src, q, 0); res.Total == 0 || note(res, "oci").Kind == NoteExcluded {
		t.Errorf("backends [dstack]: %d offers, notes %+v", res.Total, res.Notes)
	}

	// Configured regions of a backend.
	cfg := DefaultCatalogConfig("oci")
	cfg.Regions = []string{"EU-FRANKFURT-1"}
	only := map[string]Source{"oci": NewCatalogSource("oci", snap, cfg)}
	for _, o := range plan(t, only, query(t, ""), 0).Offers {
		if o.Region != "eu-frankfurt-1" {
			t.Fatalf("configured regions let %s through", o.Region)
		}
	}
}

func TestPlanDisk(t *testing.T) {
	src := sharedSources(t)
	sizeOf := func(backend string, disk *resources.DiskSpec) (int, int) {
		q := query(t, "")
		q.Resources.Disk = disk
		q.Backends = []string{backend}
		res := plan(t, src, q, 0)
		if res.Total == 0 {
			return 0, 0
		}
		return res.Total, res.Offers[0].Instance.Resources.Disk.SizeMiB
	}
	disk := func(r resources.Range[resources.Memory]) *resources.DiskSpec { return &resources.DiskSpec{Size: r} }
	if _, mib := sizeOf("oci", nil); mib != 100*1024 {
		t.Errorf("oci default disk %d MiB", mib)
	}
	if _, mib := sizeOf("oci", disk(resources.AtLeast[resources.Memory](20))); mib != 50*1024 {
		t.Errorf("oci 20GB.. → %d MiB, want the 50GB minimum", mib)
	}
	if n, _ := sizeOf("oci", disk(resources.Range[resources.Memory]{Max: new(resources.Memory(40))})); n != 0 {
		t.Errorf("oci ..40GB gave %d offers", n)
	}
	if _, mib := sizeOf("runpod", disk(resources.Exact[resources.Memory](500))); mib != 500*1024 {
		t.Errorf("runpod 500GB → %d MiB", mib)
	}
	if n, _ := sizeOf("runpod", disk(resources.Exact[resources.Memory](0.5))); n != 0 {
		t.Errorf("runpod 0.5GB (below its 1GB minimum) gave %d offers", n)
	}
	if n, _ := sizeOf("nebius", disk(resources.AtLeast[resources.Memory](9000))); n != 0 {
		t.Errorf("nebius 9000GB.. gave %d offers", n)
	}

	tab, err := catalog.Parse("lambdalabs", strings.NewReader(
		"instance_name,location,price,cpu,memory,gpu_count,gpu_name,gpu_memory,spot,disk_size,gpu_vendor,flags,cpu_arch\n"+
			"small,r,1,8,32,1,A10,24,False,512,,,\nbig,r,2,8,32,1,A10,24,False,2048,,,\n"))
	if err != nil {
		t.Fatal(err)
	}
	fixed := map[string]Source{"lambda": NewCatalogSource("lambda", catalog.NewSnapshot(tab), DefaultCatalogConfig("lambda"))}
	q := query(t, "")
	q.Resources.Disk = disk(resources.AtLeast[resources.Memory](1000))
	res := plan(t, fixed, q, 0)
	if res.Total != 1 || res.Offers[0].Instance.Name != "big" || res.Offers[0].Instance.Resources.Disk.SizeMiB != 2048*1024 {
		t.Errorf("fixed disks: %+v", res.Offers)
	}
}

// fakeSource answers with fixed offers or an error, after an optional delay.
type fakeSource struct {
	offers []Offer
	err    error
	delay  time.Duration
	calls  atomic.Int32
}

func (f *fakeSource) Offers(ctx context.Context, _ Requirements) ([]Offer, error) {
	f.calls.Add(1)
	select {
	case <-time.After(f.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return f.offers, f.err
}

func offer(backend string, price float64, a Availability) Offer {
	return Offer{Backend: backend, Instance: InstanceType{Name: "x", Resources: Resources{CPUs: 2, MemoryMiB: 8192}},
		Region: "r", Price: price, Availability: a}
}

func TestPlanAvailableFirstAndMerge(t *testing.T) {
	src := map[string]Source{
		"a": &fakeSource{offers: []Offer{offer("a", 1, NotAvailable), offer("a", 2, Available), offer("a", 5, Unknown)}},
		// Not sorted: Plan sorts it.
		"b": &fakeSource{offers: []Offer{offer("b", 4, NoQuota), offer("b", 1, Available), offer("b", 3, Idle)}},
	}
	res := plan(t, src, Query{}, 0)
	var got []string
	for _, o := range res.Offers {
		got = append(got, o.Backend+":"+string(o.Availability))
	}
	want := "b:available a:available b:idle a:unknown a:not_available b:no_quota"
	if strings.Join(got, " ") != want || res.Total != 6 || res.MaxPrice != 5 {
		t.Errorf("got %v (total %d, max %v), want %s", got, res.Total, res.MaxPrice, want)
	}
	res = plan(t, src, Query{}, 5)
	if len(res.Offers) != 5 || res.Offers[4].Availability != NotAvailable || res.Total != 6 {
		t.Errorf("truncated: %+v", res.Offers)
	}
	res = plan(t, src, Query{}, 2)
	if len(res.Offers) != 2 || res.Offers[1].Backend != "a" || res.Offers[1].Price != 2 {
		t.Errorf("top 2: %+v", res.Offers)
	}
}

func TestPlanFailingAndHangingSources(t *testing.T) {
	src := sharedSources(t)
	src["aws"] = &fakeSource{err: errors.New("AuthFailure: credentials expired")}
	src["gcp"] = &fakeSource{delay: time.Hour}
	src["azure"] = Cached(&fakeSource{delay: time.Hour}, time.Minute, 50*time.Millisecond)
	src["vultr"] = &fakeSource{offers: []Offer{offer("vultr", 0.01, Available)}}
	src["tensordock"] = sourceFunc(func(context.Context, Requirements) ([]Offer, error) { panic("boom") })

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	res := Plan(ctx, src, query(t, "H100:8"), 3)
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("plan took %s", el)
	}
	if len(res.Offers) != 3 || res.Total < 3 {
		t.Errorf("healthy backends' offers lost: %d of %d", len(res.Offers), res.Total)
	}
	checks := map[string]NoteKind{"aws": NoteFailed, "gcp": NoteTimedOut, "azure": NoteTimedOut, "tensordock": NoteFailed, "vultr": ""}
	for b, kind := range checks {
		if n := note(res, b); n.Kind != kind {
			t.Errorf("%s: note %+v, want %q", b, n, kind)
		}
	}
	if !strings.Contains(note(res, "aws").Message, "credentials expired") || !strings.Contains(note(res, "tensordock").Message, "boom") {
		t.Errorf("notes lack the error text: %+v", res.Notes)
	}
	if res.Offers[0].Backend != "vultr" {
		t.Errorf("the fake vultr offer is the cheapest, got %+v first", res.Offers[0])
	}
}

type sourceFunc func(context.Context, Requirements) ([]Offer, error)

func (f sourceFunc) Offers(ctx context.Context, r Requirements) ([]Offer, error) { return f(ctx, r) }

func TestPlanNoCatalog(t *testing.T) {
	empty := catalog.New(catalog.Options{URL: t.TempDir()})
	src := map[string]Source{"runpod": NewCatalogSource("runpod", empty, DefaultCatalogConfig("runpod"))}
	res := plan(t, src, query(t, ""), 0)
	if n := note(res, "runpod"); n.Kind != NoteNoCatalog || !strings.Contains(n.Message, "no catalog loaded") {
		t.Errorf("note %+v", n)
	}
	if !strings.Contains(res.Explanation, "runpod no catalog") {
		t.Errorf("explanation %q", res.Explanation)
	}
	if res := plan(t, sharedSources(t), Query{Requirements: Requirements{Resources: resources.Default()}, Backends: []string{"aws"}}, 0); !strings.Contains(res.Explanation, "backends filter [aws]") {
		t.Errorf("explanation %q", res.Explanation)
	}
	if res := plan(t, nil, Query{}, 0); !strings.Contains(res.Explanation, "no backends") {
		t.Errorf("explanation %q", res.Explanation)
	}
}

func TestPlanExplains(t *testing.T) {
	src := sharedSources(t)
	cases := []struct {
		edit func(*Query)
		want string
	}{
		{func(q *Query) { q.Resources.GPU = gpu(t, "A100:8"); q.MaxPrice = new(0.5) }, "max_price 0.5 removed the last"},
		{func(q *Query) { q.Resources.GPU = gpu(t, "Z9000") }, "gpu Z9000 removed the last"},
		{func(q *Query) { q.Resources.GPU = gpu(t, "A100:64") }, "gpu count 64 removed the last"},
		{func(q *Query) { q.Resources.GPU = gpu(t, "A100:500GB..") }, "gpu memory 500GB.. removed the last"},
		{func(q *Query) { q.Resources.GPU = gpu(t, "A100:8"); q.Regions = []string{"mars-1"} }, "regions mars-1 removed the last"},
		{func(q *Query) { q.Resources.GPU = gpu(t, "A100:8"); q.InstanceTypes = []string{"nope"} }, "instance_types nope removed the last"},
		{func(q *Query) { q.Resources.Memory = resources.AtLeast[resources.Memory](100000) }, "memory 100000GB.. removed the last"},
		{func(q *Query) { q.Backends = []string{"vastai"}; q.Spot = new(true) }, "spot removed the last"},
	}
	for _, c := range cases {
		q := query(t, "")
		c.edit(&q)
		res := plan(t, src, q, 0)
		t.Log(res.Explanation)
		if res.Total != 0 || !strings.Contains(res.Explanation, c.want) {
			t.Errorf("total %d, explanation %q, want %q", res.Total, res.Explanation, c.want)
		}
	}
}

func TestCached(t *testing.T) {
	slow := &fakeSource{offers: []Offer{offer("x", 1, Available)}, delay: 100 * time.Millisecond}
	c := Cached(slow, 200*time.Millisecond, 20*time.Millisecond)
	ctx := context.Background()
	req := Requirements{Resources: resources.Default()}
	if _, err := c.Offers(ctx, req); !errors.Is(err, ErrTimeout) {
		t.Fatalf("first call: %v", err)
	}
	// The fetch went on in the background; a second caller shares it.
	if _, err := c.Offers(ctx, req); !errors.Is(err, ErrTimeout) || slow.calls.Load() != 1 {
		t.Fatalf("second call: %v, %d calls", err, slow.calls.Load())
	}
	time.Sleep(150 * time.Millisecond)
	start := time.Now()
	if got, err := c.Offers(ctx, req); err != nil || len(got) != 1 || time.Since(start) > 10*time.Millisecond {
		t.Fatalf("cached: %v %v", got, err)
	}
	// Past the TTL the old answer comes back at once while a refresh runs.
	time.Sleep(250 * time.Millisecond)
	start = time.Now()
	if got, err := c.Offers(ctx, req); err != nil || len(got) != 1 || time.Since(start) > 10*time.Millisecond {
		t.Fatalf("stale: %v %v", got, err)
	}
	time.Sleep(20 * time.Millisecond)
	if slow.calls.Load() != 2 {
		t.Errorf("no background refresh: %d calls", slow.calls.Load())
	}

	// A refresh that fails keeps the old offers and says so.
	flaky := &fakeSource{offers: []Offer{offer("x", 1, Available)}}
	c = Cached(flaky, 30*time.Millisecond, time.Second)
	if _, err := c.Offers(ctx, req); err != nil {
		t.Fatal(err)
	}
	flaky.err = errors.New("API down")
	flaky.offers = nil
	time.Sleep(40 * time.Millisecond)
	c.Offers(ctx, req) // starts the failing refresh
	time.Sleep(20 * time.Millisecond)
	got, err := c.Offers(ctx, req)
	var stale *StaleError
	if len(got) != 1 || !errors.As(err, &stale) || !strings.Contains(err.Error(), "API down") {
		t.Fatalf("after a failed refresh: %v %v", got, err)
	}
	res := Plan(ctx, map[string]Source{"x": c}, Query{Requirements: req}, 0)
	if res.Total != 1 || note(res, "x").Kind != NoteStale {
		t.Errorf("plan over stale offers: %+v", res)
	}

	// Different requirements are cached apart.
	counting := &fakeSource{}
	c = Cached(counting, time.Minute, time.Second)
	other := req
	other.MaxPrice = new(1.0)
	c.Offers(ctx, req)
	c.Offers(ctx, other)
	c.Offers(ctx, req)
	if n := counting.calls.Load(); n != 2 {
		t.Errorf("%d calls for two requirement sets", n)
	}
}

func TestOfferJSON(t *testing.T) {
	src := sharedSources(t)
	q := query(t, "H100:8")
	q.Backends = []string{"runpod"}
	res := plan(t, src, q, 1)
	if len(res.Offers) != 1 {
		t.Fatal("no runpod H100:8 offer")
	}
	b, err := json.Marshal(res.Offers[0])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	keys := func(m map[string]any) []string {
		var k []string
		for key := range m {
			k = append(k, key)
		}
		slices.Sort(k)
		return k
	}
	if got := strings.Join(keys(m), ","); got != "availability,availability_zones,backend,backend_data,blocks,instance,instance_runtime,price,region,total_blocks" {
		t.Errorf("offer keys %s", got)
	}
	inst := m["instance"].(map[string]any)
	r := inst["resources"].(map[string]any)
	if got := strings.Join(keys(r), ","); got != "cpu_arch,cpus,description,disk,gpus,memory_mib,spot" {
		t.Errorf("resources keys %s", got)
	}
	if m["instance_runtime"] != "runner" || m["availability"] != "available" || m["backend_data"] == nil ||
		len(r["gpus"].([]any)) != 8 || r["cpu_arch"] != "x86" || r["disk"].(map[string]any)["size_mib"] != 102400.0 {
		t.Errorf("offer JSON %s", b)
	}
	var back Offer
	if err := json.Unmarshal(b, &back); err != nil || back.Instance.Resources.GPUs[0] != res.Offers[0].Instance.Resources.GPUs[0] {
		t.Errorf("round trip: %v", err)
	}

	cpu, _ := json.Marshal(Offer{Backend: "x"})
	if !strings.Contains(string(cpu), `"gpus":[]`) || !strings.Contains(string(cpu), `"cpu_arch":null`) ||
		!strings.Contains(string(cpu), `"backend_data":{}`) || !strings.Contains(string(cpu), `"instance_runtime":"shim"`) ||
		!strings.Contains(string(cpu), `"blocks":1`) {
		t.Errorf("zero offer JSON %s", cpu)
	}
	var noDisk Resources
	json.Unmarshal([]byte(`{"cpus":2,"memory_mib":8,"gpus":[],"spot":false,"cpu_arch":null}`), &noDisk)
	if noDisk.Disk.SizeMiB != DefaultDiskMiB {
		t.Errorf("missing disk → %d", noDisk.Disk.SizeMiB)
	}
}

func TestGroupByGPU(t *testing.T) {
	src := sharedSources(t)
	q := query(t, "1..")
	q.Spot = SpotAuto.Spot()
	offers := plan(t, src, q, 0).Offers

	if _, err := ParseGroupBy([]string{"gpu", "region"}); err == nil {
		t.Error("region without backend accepted")
	}
	if _, err := ParseGroupBy([]string{"zone"}); err == nil {
		t.Error("unknown group_by accepted")
	}
	plain := GroupByGPU(offers, GroupBy{})
	names := map[string]bool{}
	for _, g := range plain {
		key := g.Name + "/" + g.Vendor + "/" + string(rune(g.MemoryMiB))
		if names[key] {
			t.Fatalf("group %s twice", key)
		}
		names[key] = true
		if g.Backend != nil || len(g.Backends) == 0 || *g.Price.Min > *g.Price.Max || *g.Count.Min > *g.Count.Max {
			t.Fatalf("group %+v", g)
		}
	}
	for i := 1; i < len(plain); i++ {
		if *plain[i].Price.Min < *plain[i-1].Price.Min {
			t.Fatal("groups not sorted by price")
		}
	}
	by, err := ParseGroupBy([]string{"gpu", "backend", "region", "count"})
	if err != nil {
		t.Fatal(err)
	}
	fine := GroupByGPU(offers, by)
	if len(fine) <= len(plain) {
		t.Errorf("%d fine groups vs %d", len(fine), len(plain))
	}
	total := 0
	for _, g := range fine {
		if g.Backend == nil || g.Region == nil || *g.Count.Min != *g.Count.Max || g.Backends != nil || g.Regions != nil {
			t.Fatalf("fine group %+v", g)
		}
		total++
	}
	a100 := 0
	for _, g := range plain {
		if g.Name == "A100" && g.MemoryMiB == 81920 {
			a100++
			if !slices.Contains(g.Spot, "spot") || !slices.Contains(g.Spot, "on-demand") || !slices.Contains(g.Backends, "oci") {
				t.Errorf("A100 80GB group %+v", g)
			}
		}
	}
	if a100 != 1 {
		t.Errorf("%d A100 80GB groups", a100)
	}
	b, _ := json.Marshal(plain[0])
	if !strings.Contains(string(b), `"count":{"min":`) || !strings.Contains(string(b), `"backend":null`) {
		t.Errorf("group JSON %s", b)
	}
}
