// Command offers measures the offer planner over a synthetic catalog of over 100,000 rows, built
// deterministically by replicating the shared gpuhunt catalogs into more regions: the heap bytes
// held per catalog row, and Plan latency over varied requirement sets.
//
//	go run ./bench/offers [-catalogs DIR] [-replicas 11] [-plans 500]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dstackgo/dstack/internal/catalog"
	"github.com/dstackgo/dstack/internal/offers"
	"github.com/dstackgo/dstack/internal/resources"
)

func main() {
	dir := flag.String("catalogs", "", "directory of gpuhunt v2 CSVs (default: shared/data/catalogs/gpuhunt-v2 beside the checkout)")
	replicas := flag.Int("replicas", 11, "copies of each catalog, each in its own set of regions")
	plans := flag.Int("plans", 500, "number of Plan calls to time")
	flag.Parse()
	if err := run(*dir, *replicas, *plans); err != nil {
		fmt.Fprintln(os.Stderr, "bench/offers:", err)
		os.Exit(1)
	}
}

func run(dir string, replicas, plans int) error {
	if dir == "" {
		var err error
		if dir, err = findCatalogs(); err != nil {
			return err
		}
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*.csv"))
	if err != nil || len(paths) == 0 {
		return fmt.Errorf("no CSVs in %s", dir)
	}

	before := heapInUse()
	var tables []*catalog.Table
	for _, p := range paths {
		provider := strings.TrimSuffix(filepath.Base(p), ".csv")
		data, err := replicate(p, replicas)
		if err != nil {
			return err
		}
		t, err := catalog.Parse(provider, bytes.NewReader(data))
		if err != nil {
			return err
		}
		tables = append(tables, t)
	}
	snap := catalog.NewSnapshot(tables...)
	after := heapInUse()
	rows := snap.Rows()

	sources := map[string]offers.Source{}
	for _, p := range snap.Providers() {
		backend := p
		if p == "lambdalabs" {
			backend = "lambda"
		}
		sources[backend] = offers.NewCatalogSource(backend, snap, offers.DefaultCatalogConfig(backend))
	}
	queries := queries(plans, snap)
	ctx := context.Background()
	offers.Plan(ctx, sources, queries[0], 50) // warm up
	times := make([]time.Duration, len(queries))
	totals := 0
	for i, q := range queries {
		start := time.Now()
		res := offers.Plan(ctx, sources, q, 50)
		times[i] = time.Since(start)
		totals += res.Total
	}
	slices.Sort(times)
	broad := offers.Query{Requirements: offers.Requirements{Resources: resources.Default(), Spot: offers.SpotAuto.Spot()}}
	start := time.Now()
	broadRes := offers.Plan(ctx, sources, broad, 50)
	broadTime := time.Since(start)
	// All offers at once, as `dstack offer --group-by` needs them.
	start = time.Now()
	offers.Plan(ctx, sources, broad, 0)
	allTime := time.Since(start)
	runtime.KeepAlive(snap)

	fmt.Printf("catalog_rows=%d bytes_per_row=%.1f plans=%d plan_p50_ms=%.2f plan_p99_ms=%.2f plan_max_ms=%.2f mean_total_offers=%d broadest_plan_ms=%.2f broadest_total_offers=%d broadest_all_offers_ms=%.2f gomaxprocs=%d\n",
		rows, float64(after-before)/float64(rows), len(times), ms(times[len(times)/2]), ms(times[len(times)*99/100]),
		ms(times[len(times)-1]), totals/len(times), ms(broadTime), broadRes.Total, ms(allTime), runtime.GOMAXPROCS(0))
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// findCatalogs looks for shared/data/catalogs/gpuhunt-v2 in $DSTACK_SHARED_DIR or beside a parent
// of the working directory.
func findCatalogs() (string, error) {
	sub := filepath.Join("data", "catalogs", "gpuhunt-v2")
	if d := os.Getenv("DSTACK_SHARED_DIR"); d != "" {
		return filepath.Join(d, sub), nil
	}
	dir, _ := os.Getwd()
	for {
		cand := filepath.Join(dir, "shared", sub)
		if st, err := os.Stat(cand); err == nil && st.IsDir() {
			return cand, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no shared/data/catalogs/gpuhunt-v2 found; pass -catalogs or set DSTACK_SHARED_DIR")
		}
		dir = parent
	}
}

// replicate returns a CSV with n copies of every row of the file at path: copy 0 as it is, copy k
// in regions suffixed "-k" with prices raised by k percent (rounded to 4 decimals, as gpuhunt
// prices are).
func replicate(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReader(f))
	header, err := r.Read()
	if err != nil {
		return nil, err
	}
	loc, price := slices.Index(header, "location"), slices.Index(header, "price")
	if loc < 0 || price < 0 {
		return nil, fmt.Errorf("%s: no location or price column", path)
	}
	recs, err := r.ReadAll()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write(header)
	for k := range n {
		for _, rec := range recs {
			out := slices.Clone(rec)
			if k > 0 {
				out[loc] = fmt.Sprintf("%s-%d", rec[loc], k)
				p, _ := strconv.ParseFloat(rec[price], 64)
				out[price] = strconv.FormatFloat(float64(int64(p*(1+float64(k)/100)*10000+0.5))/10000, 'f', -1, 64)
			}
			w.Write(out)
		}
	}
	w.Flush()
	return buf.Bytes(), w.Error()
}

// queries returns n requirement sets from a fixed seed: GPU names, counts and memory, CPU and
// memory minimums, spot policies, price caps and, now and then, regions and backends.
func queries(n int, snap *catalog.Snapshot) []offers.Query {
	rng := rand.New(rand.NewPCG(1, 2))
	gpus := []string{"", "", "A100", "H100", "H200", "L4", "A10", "RTX4090", "V100", "MI300X", "A100:80GB",
		"24GB..", "nvidia:1..8", "H100,H200:8", "A100:2..4", "L40S:1", "B200:8", "GH200"}
	var regions []string
	if t := snap.Table("oci"); t != nil {
		regions = t.Locations()
	}
	policies := []offers.SpotPolicy{offers.OnDemand, offers.OnDemand, offers.SpotAuto, offers.SpotOnly}
	backends := []string{"runpod", "oci", "lambda", "datacrunch"}
	out := make([]offers.Query, n)
	for i := range out {
		res := resources.Default()
		if g := gpus[rng.IntN(len(gpus))]; g != "" {
			res.GPU, _ = resources.ParseGPU(g)
		}
		res.CPU.Count = resources.AtLeast([]int{1, 2, 4, 8, 16}[rng.IntN(5)])
		res.Memory = resources.AtLeast([]resources.Memory{0, 8, 16, 64}[rng.IntN(4)])
		q := offers.Query{Requirements: offers.Requirements{Resources: res, Spot: policies[rng.IntN(len(policies))].Spot()}}
		if rng.IntN(3) == 0 {
			q.MaxPrice = new([]float64{0.5, 2, 10, 40}[rng.IntN(4)])
		}
		if rng.IntN(5) == 0 && len(regions) > 0 {
			q.Regions = []string{regions[rng.IntN(len(regions))], "CA", "US"}
		}
		if rng.IntN(6) == 0 {
			q.Backends = []string{backends[rng.IntN(len(backends))]}
		}
		out[i] = q
	}
	return out
}
