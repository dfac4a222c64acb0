package server

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/store"
)

type metricJSON struct {
	Name       string   `json:"name"`
	Timestamps []string `json:"timestamps"`
	Values     []any    `json:"values"`
}

type jobMetricsJSON struct {
	Metrics []metricJSON `json:"metrics"`
}

// getJobMetrics answers GET /api/project/{p}/metrics/job/{run_name}?run_id&replica_num&job_num&limit&
// after&before with the samples of the latest submission of the job, latest first, as dstack
// computes them: CPU usage is the difference of two consecutive samples, so limit samples take
// limit+1 points and a job with fewer than two has no metrics.
func (s *Server) getJobMetrics(r *request) (any, *apiError) {
	q := r.URL.Query()
	var items []validationItem
	intParam := func(name string, def int) int {
		v := q.Get(name)
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			items = append(items, validationItem{Type: "int_parsing", Loc: []any{"query", name},
				Msg: "Input should be a valid integer, unable to parse string as an integer", Input: v})
		}
		return n
	}
	timeParam := func(name string) time.Time {
		v := q.Get(name)
		if v == "" {
			return time.Time{}
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			if t, err = time.Parse("2006-01-02T15:04:05.999999", v); err == nil {
				return t
			}
			items = append(items, validationItem{Type: "datetime_from_date_parsing", Loc: []any{"query", name},
				Msg: "Input should be a valid datetime", Input: v})
		}
		return t
	}
	replica, jobNum, limit := intParam("replica_num", 0), intParam("job_num", 0), intParam("limit", 1)
	after, before := timeParam("after"), timeParam("before")
	if len(items) > 0 {
		return nil, unprocessable(items...)
	}
	var runID *string
	if v := q.Get("run_id"); v != "" {
		runID = &v
	}
	name := r.PathValue("run_name")
	run, e := s.findRun(r, &name, runID)
	noJob := clientError(codeResourceNotExists, "Found no job with given parameters")
	if e != nil {
		return nil, noJob
	}
	jobs, err := s.store.ListJobs(r.Context(), run.ID)
	if err != nil {
		return nil, s.internal(err)
	}
	var job *models.Job
	for _, j := range jobs { // ordered by submission number: the last one wins
		if j.ReplicaNum == replica && j.JobNum == jobNum {
			job = j
		}
	}
	if job == nil {
		return nil, noJob
	}
	fetch := 0
	if limit > 0 {
		fetch = limit + 1
	}
	points, err := s.store.ListMetricsPoints(r.Context(), job.ID, fetch, after, before)
	if err != nil {
		return nil, s.internal(err)
	}
	return jobMetrics(job, points), nil
}

// jobMetrics turns samples, latest first, into dstack's JobMetrics.
func jobMetrics(job *models.Job, points []store.MetricsPoint) jobMetricsJSON {
	out := jobMetricsJSON{Metrics: []metricJSON{}}
	if len(points) < 2 {
		return out
	}
	var ts []string
	var cpu, mem, ws []any
	gpuMem, gpuUtil := map[int][]any{}, map[int][]any{}
	gpus := -1
	for i := 0; i+1 < len(points); i++ {
		p, prev := points[i], points[i+1]
		ts = append(ts, apiTime(time.UnixMicro(p.TimestampMicro)))
		usage := 0.0
		if window := p.TimestampMicro - prev.TimestampMicro; window > 0 {
			usage = float64(p.CPUUsageMicro-prev.CPUUsageMicro) / float64(window) * 100
		}
		cpu = append(cpu, int64(math.Round(max(usage, 0))))
		mem = append(mem, p.MemoryUsageBytes)
		ws = append(ws, p.MemoryWorkingSetBytes)
		if gpus < 0 {
			gpus = min(len(p.GPUsMemoryUsageBytes), len(p.GPUsUtilPercent))
		}
		for g := range gpus {
			var m, u int64
			if g < len(p.GPUsMemoryUsageBytes) {
				m = p.GPUsMemoryUsageBytes[g]
			}
			if g < len(p.GPUsUtilPercent) {
				u = p.GPUsUtilPercent[g]
			}
			gpuMem[g], gpuUtil[g] = append(gpuMem[g], m), append(gpuUtil[g], u)
		}
	}
	constant := func(name string, v any) metricJSON {
		vals := make([]any, len(ts))
		for i := range vals {
			vals[i] = v
		}
		return metricJSON{Name: name, Timestamps: ts, Values: vals}
	}
	out.Metrics = append(out.Metrics,
		metricJSON{Name: "cpu_usage_percent", Timestamps: ts, Values: cpu},
		metricJSON{Name: "memory_usage_bytes", Timestamps: ts, Values: mem},
		metricJSON{Name: "memory_working_set_bytes", Timestamps: ts, Values: ws})
	// The job's share of its instance: the runtime data of a job on a block of an instance, else the
	// whole instance type.
	if job.JPD != nil {
		res := job.JPD.InstanceType.Resources
		cpus, memBytes := float64(res.CPUs), float64(res.MemoryMiB)*(1<<20)
		if jrd := job.JRD; jrd != nil {
			if jrd.CPU != nil {
				cpus = *jrd.CPU
			}
			if jrd.Memory != nil {
				memBytes = *jrd.Memory * (1 << 30)
			}
		}
		out.Metrics = append(out.Metrics, constant("cpus_detected_num", number(cpus)), constant("memory_total_bytes", number(memBytes)))
		if len(res.Gpus) > 0 {
			out.Metrics = append(out.Metrics, constant("gpu_memory_total_bytes", int64(res.Gpus[0].MemoryMiB)<<20))
		}
	}
	out.Metrics = append(out.Metrics, constant("gpus_detected_num", max(gpus, 0)))
	for g := range max(gpus, 0) {
		out.Metrics = append(out.Metrics, metricJSON{Name: fmt.Sprintf("gpu_memory_usage_bytes_gpu%d", g), Timestamps: ts, Values: gpuMem[g]})
	}
	for g := range max(gpus, 0) {
		out.Metrics = append(out.Metrics, metricJSON{Name: fmt.Sprintf("gpu_util_percent_gpu%d", g), Timestamps: ts, Values: gpuUtil[g]})
	}
	return out
}

// number is v as an integer when it is one.
func number(v float64) any {
	if v == math.Trunc(v) {
		return int64(v)
	}
	return v
}
