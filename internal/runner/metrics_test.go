package runner

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/hostinfo"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMetricsCgroupV2(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"cgroup.controllers": "cpuset cpu io memory pids\n",
		"cpu.stat":           "usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\n",
		"memory.current":     "1048576000\n",
		"memory.stat":        "anon 500000000\nfile 500000000\ninactive_file 48576000\nactive_file 1000\n",
	})
	m := metricsSource{cgroupRoot: root, procRoot: root, gpus: func(context.Context) []hostinfo.GPUUsage {
		return []hostinfo.GPUUsage{{MemoryUsedMiB: 2, UtilPercent: 50}}
	}}
	got := m.collect(context.Background())
	if got.CPUUsageMicro != 123456 || got.MemoryUsageBytes != 1048576000 || got.MemoryWorkingSetBytes != 1000000000 {
		t.Errorf("%+v", got)
	}
	if len(got.GPUs) != 1 || got.GPUs[0].GPUMemoryUsageBytes != 2<<20 || got.GPUs[0].GPUUtilPercent != 50 {
		t.Errorf("gpus %+v", got.GPUs)
	}
	if time.Since(time.UnixMicro(got.TimestampMicro)) > time.Minute {
		t.Errorf("timestamp %d", got.TimestampMicro)
	}
}

func TestMetricsCgroupV1(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"cpuacct/cpuacct.usage":        "5000000\n",
		"memory/memory.usage_in_bytes": "2000\n",
		"memory/memory.stat":           "cache 100\ntotal_inactive_file 500\n",
	})
	got := metricsSource{cgroupRoot: root, procRoot: root}.collect(context.Background())
	if got.CPUUsageMicro != 5000 || got.MemoryUsageBytes != 2000 || got.MemoryWorkingSetBytes != 1500 || got.GPUs == nil {
		t.Errorf("%+v", got)
	}
}

func TestMetricsProcFallback(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"proc/stat":    "cpu  100 0 50 9999 7 1 2 3 40 0\ncpu0 100 0 50 9999 7 1 2 3 0 0\n",
		"proc/meminfo": "MemTotal:       16000 kB\nMemFree:         1000 kB\nMemAvailable:    6000 kB\n",
	})
	got := metricsSource{cgroupRoot: filepath.Join(root, "none"), procRoot: filepath.Join(root, "proc")}.collect(context.Background())
	if got.CPUUsageMicro != (100+50+1+2+3)*10000 || got.MemoryUsageBytes != 10000*1024 {
		t.Errorf("%+v", got)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	tr := newTestRunner(t, nil)
	m, err := tr.client.Metrics(context.Background())
	if err != nil || m.TimestampMicro == 0 || m.GPUs == nil {
		t.Fatalf("%+v %v", m, err)
	}
}

func TestConnTracker(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ct := newConnTracker(t0)
	if got := ct.noConnectionsSecs(t0.Add(30 * time.Second)); got != 30 {
		t.Errorf("no connections: %d", got)
	}
	// A short (server) connection does not count.
	id := ct.open(t0.Add(31 * time.Second))
	if got := ct.noConnectionsSecs(t0.Add(32 * time.Second)); got != 32 {
		t.Errorf("short connection open: %d", got)
	}
	ct.close(id, t0.Add(33*time.Second))
	if got := ct.noConnectionsSecs(t0.Add(40 * time.Second)); got != 40 {
		t.Errorf("after a short connection: %d", got)
	}
	// A long one does, and resets the count when it closes.
	id = ct.open(t0.Add(50 * time.Second))
	if got := ct.noConnectionsSecs(t0.Add(65 * time.Second)); got != 0 {
		t.Errorf("long connection open: %d", got)
	}
	ct.close(id, t0.Add(70*time.Second))
	if got := ct.noConnectionsSecs(t0.Add(75 * time.Second)); got != 5 {
		t.Errorf("after a long connection: %d", got)
	}
}
