package runner

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dstackgo/dstack/internal/agentapi"
	"github.com/dstackgo/dstack/internal/hostinfo"
)

// metricsSource reads the container's usage from cgroup v2, else cgroup v1, else /proc.
type metricsSource struct {
	cgroupRoot string // /sys/fs/cgroup
	procRoot   string // /proc
	gpus       func(context.Context) []hostinfo.GPUUsage
}

func defaultMetricsSource() metricsSource {
	return metricsSource{cgroupRoot: "/sys/fs/cgroup", procRoot: "/proc", gpus: hostinfo.GPUUsageNow}
}

func (m metricsSource) collect(ctx context.Context) agentapi.MetricsResponse {
	resp := agentapi.MetricsResponse{TimestampMicro: time.Now().UnixMicro(), GPUs: []agentapi.GPUMetrics{}}
	switch {
	case fileExists(filepath.Join(m.cgroupRoot, "cgroup.controllers")):
		stat := readKeyValues(filepath.Join(m.cgroupRoot, "cpu.stat"))
		resp.CPUUsageMicro = stat["usage_usec"]
		resp.MemoryUsageBytes = readUint(filepath.Join(m.cgroupRoot, "memory.current"))
		mem := readKeyValues(filepath.Join(m.cgroupRoot, "memory.stat"))
		resp.MemoryWorkingSetBytes = sub(resp.MemoryUsageBytes, mem["inactive_file"])
	case fileExists(filepath.Join(m.cgroupRoot, "memory", "memory.usage_in_bytes")):
		resp.CPUUsageMicro = readUint(filepath.Join(m.cgroupRoot, "cpuacct", "cpuacct.usage")) / 1000
		resp.MemoryUsageBytes = readUint(filepath.Join(m.cgroupRoot, "memory", "memory.usage_in_bytes"))
		mem := readKeyValues(filepath.Join(m.cgroupRoot, "memory", "memory.stat"))
		resp.MemoryWorkingSetBytes = sub(resp.MemoryUsageBytes, mem["total_inactive_file"])
	default:
		resp.CPUUsageMicro = procCPUMicro(filepath.Join(m.procRoot, "stat"))
		mem := readKeyValues(filepath.Join(m.procRoot, "meminfo"))
		used := sub(mem["MemTotal:"], mem["MemAvailable:"]) * 1024
		resp.MemoryUsageBytes, resp.MemoryWorkingSetBytes = used, used
	}
	if m.gpus != nil {
		for _, g := range m.gpus(ctx) {
			resp.GPUs = append(resp.GPUs, agentapi.GPUMetrics{GPUMemoryUsageBytes: g.MemoryUsedMiB << 20, GPUUtilPercent: g.UtilPercent})
		}
	}
	return resp
}

func sub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func readUint(p string) uint64 {
	data, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	return n
}

// readKeyValues reads "key value" lines (cpu.stat, memory.stat, meminfo).
func readKeyValues(p string) map[string]uint64 {
	out := map[string]uint64{}
	f, err := os.Open(p)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 {
			if n, err := strconv.ParseUint(fields[1], 10, 64); err == nil {
				out[fields[0]] = n
			}
		}
	}
	return out
}

// procCPUMicro sums the busy time of the machine's "cpu" line in /proc/stat (USER_HZ = 100).
func procCPUMicro(p string) uint64 {
	f, err := os.Open(p)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || fields[0] != "cpu" {
			continue
		}
		var ticks uint64
		for i, v := range fields[1:] {
			if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is already in user
				continue
			}
			n, _ := strconv.ParseUint(v, 10, 64)
			ticks += n
		}
		return ticks * 10000
	}
	return 0
}
