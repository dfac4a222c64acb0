package server

import (
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/store"
)

// TestJobMetricsShape computes dstack's JobMetrics from samples, latest first: CPU usage from
// consecutive samples, the totals of the job's instance, one series per GPU.
func TestJobMetricsShape(t *testing.T) {
	job := &models.Job{JPD: &models.JobProvisioningData{InstanceType: models.InstanceType{Resources: models.InstanceResources{
		CPUs: 4, MemoryMiB: 2048, Gpus: []models.Gpu{{Name: "A100", MemoryMiB: 40960}, {Name: "A100", MemoryMiB: 40960}}}}}}
	if got := jobMetrics(job, []store.MetricsPoint{{TimestampMicro: 1}}); len(got.Metrics) != 0 {
		t.Fatalf("one sample: %+v", got)
	}
	base := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC).UnixMicro()
	pts := []store.MetricsPoint{
		{TimestampMicro: base + 2_000_000, CPUUsageMicro: 3_000_000, MemoryUsageBytes: 300, MemoryWorkingSetBytes: 200,
			GPUsMemoryUsageBytes: []int64{10, 20}, GPUsUtilPercent: []int64{50, 60}},
		{TimestampMicro: base + 1_000_000, CPUUsageMicro: 1_500_000, MemoryUsageBytes: 100, MemoryWorkingSetBytes: 90,
			GPUsMemoryUsageBytes: []int64{1, 2}, GPUsUtilPercent: []int64{5, 6}},
		{TimestampMicro: base, CPUUsageMicro: 1_000_000, GPUsMemoryUsageBytes: []int64{0, 0}, GPUsUtilPercent: []int64{0, 0}},
	}
	got := map[string][]any{}
	var names []string
	for _, m := range jobMetrics(job, pts).Metrics {
		if len(m.Timestamps) != 2 || m.Timestamps[0] != "2026-11-26T12:00:02.000000Z" {
			t.Fatalf("%s: timestamps %v", m.Name, m.Timestamps)
		}
		names = append(names, m.Name)
		got[m.Name] = m.Values
	}
	want := map[string][]any{
		"cpu_usage_percent": {int64(150), int64(50)}, "memory_usage_bytes": {int64(300), int64(100)},
		"memory_working_set_bytes": {int64(200), int64(90)}, "cpus_detected_num": {int64(4), int64(4)},
		"memory_total_bytes": {int64(2 << 30), int64(2 << 30)}, "gpu_memory_total_bytes": {int64(40 << 30), int64(40 << 30)},
		"gpus_detected_num": {2, 2}, "gpu_memory_usage_bytes_gpu0": {int64(10), int64(1)}, "gpu_memory_usage_bytes_gpu1": {int64(20), int64(2)},
		"gpu_util_percent_gpu0": {int64(50), int64(5)}, "gpu_util_percent_gpu1": {int64(60), int64(6)},
	}
	if len(got) != len(want) {
		t.Fatalf("metrics %v", names)
	}
	for name, w := range want {
		if g := got[name]; len(g) != 2 || g[0] != w[0] || g[1] != w[1] {
			t.Errorf("%s: %v, want %v", name, g, w)
		}
	}
}

func TestWorkOptionsFromEnv(t *testing.T) {
	t.Setenv("DSTACK_SERVER_INSTANCE_TERMINATION_DEADLINE_SECONDS", "3")
	t.Setenv("DSTACK_SERVER_METRICS_TTL_SECONDS", "60")
	t.Setenv("DSTACK_SERVER_METRICS_INTERVAL_SECONDS", "0.5")
	o := WorkOptionsFromEnv(t.TempDir())
	if o.UnreachableGrace != 3*time.Second || o.MetricsTTL != time.Minute || o.MetricsInterval != 500*time.Millisecond {
		t.Fatalf("%+v", o)
	}
}
