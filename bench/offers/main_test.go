package main

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/dstackgo/dstack/internal/catalog"
	"github.com/dstackgo/dstack/internal/offers"
	"github.com/dstackgo/dstack/internal/testutil"
)

func TestRunSmall(t *testing.T) {
	dir := filepath.Join(testutil.SharedDir(t), "data", "catalogs", "gpuhunt-v2")
	if err := run(dir, 1, 5); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkPlan times Plan over the replicated catalog: go test -bench Plan ./bench/offers
func BenchmarkPlan(b *testing.B) {
	dir := filepath.Join(testutil.SharedDir(b), "data", "catalogs", "gpuhunt-v2")
	paths, _ := filepath.Glob(filepath.Join(dir, "*.csv"))
	var tables []*catalog.Table
	for _, p := range paths {
		data, err := replicate(p, 11)
		if err != nil {
			b.Fatal(err)
		}
		provider := filepath.Base(p[:len(p)-len(".csv")])
		t, err := catalog.Parse(provider, bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		tables = append(tables, t)
	}
	snap := catalog.NewSnapshot(tables...)
	sources := map[string]offers.Source{}
	for _, p := range snap.Providers() {
		if p == "lambdalabs" {
			p = "lambda"
		}
		sources[p] = offers.NewCatalogSource(p, snap, offers.DefaultCatalogConfig(p))
	}
	qs := queries(500, snap)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		offers.Plan(context.Background(), sources, qs[i%len(qs)], 50)
	}
}
