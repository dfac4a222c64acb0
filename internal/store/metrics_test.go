package store

import (
	"testing"
	"time"
)

func testMetricsPoints(t *testing.T, dbURL string) {
	s := openNew(t, dbURL)
	u := mkUser(t, s, "alice")
	p := mkProject(t, s, "p", u)
	_, j := mkRun(t, s, p, u, "hello")
	base := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for i := range 5 {
		pt := MetricsPoint{JobID: j.ID, TimestampMicro: base.Add(time.Duration(i) * time.Second).UnixMicro(),
			CPUUsageMicro: int64(i) * 500_000, MemoryUsageBytes: 100 + int64(i), MemoryWorkingSetBytes: 50,
			GPUsMemoryUsageBytes: []int64{1 << 30}, GPUsUtilPercent: []int64{int64(10 * i)}}
		must(t, s.AddMetricsPoint(ctx, pt))
		must(t, s.AddMetricsPoint(ctx, pt)) // a second replica's copy of the same sample
	}
	all, err := s.ListMetricsPoints(ctx, j.ID, 0, time.Time{}, time.Time{})
	must(t, err)
	if len(all) != 5 || all[0].MemoryUsageBytes != 104 || all[4].MemoryUsageBytes != 100 || all[0].GPUsUtilPercent[0] != 40 || all[0].GPUsMemoryUsageBytes[0] != 1<<30 {
		t.Fatalf("all: %+v", all)
	}
	some, err := s.ListMetricsPoints(ctx, j.ID, 2, base, base.Add(4*time.Second))
	must(t, err)
	if len(some) != 2 || some[0].MemoryUsageBytes != 103 || some[1].MemoryUsageBytes != 102 {
		t.Fatalf("limit 2 after/before: %+v", some)
	}
	must(t, s.DeleteMetricsPointsBefore(ctx, base.Add(3*time.Second)))
	left, err := s.ListMetricsPoints(ctx, j.ID, 0, time.Time{}, time.Time{})
	must(t, err)
	if len(left) != 2 {
		t.Fatalf("after the TTL: %d points", len(left))
	}
}
