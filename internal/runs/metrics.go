package runs

import (
	"context"
	"sync"
	"time"

	"github.com/dstackgo/dstack/internal/agentapi"
	"github.com/dstackgo/dstack/internal/store"
)

// Defaults of metrics collection: dstack samples running jobs every 10 s and keeps the samples
// for DSTACK_SERVER_METRICS_TTL_SECONDS (3600).
const (
	DefaultMetricsInterval = 10 * time.Second
	DefaultMetricsTTL      = time.Hour
)

// metricsClock remembers when each job was last sampled by this replica, and when old samples were
// last removed. Another replica sampling the same job at the same time stores nothing twice (the
// samples are keyed by job and runner timestamp).
type metricsClock struct {
	mu      sync.Mutex
	last    map[string]time.Time
	cleaned time.Time
}

func (s *Service) metricsInterval() time.Duration {
	if s.MetricsInterval > 0 {
		return s.MetricsInterval
	}
	return DefaultMetricsInterval
}

func (s *Service) metricsTTL() time.Duration {
	if s.MetricsTTL > 0 {
		return s.MetricsTTL
	}
	return DefaultMetricsTTL
}

// metricsDue reports whether the job is due for a sample now, and if so counts it as taken.
func (s *Service) metricsDue(jobID string) bool {
	c := &s.metrics
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		c.last = map[string]time.Time{}
	}
	if t, ok := c.last[jobID]; ok && time.Since(t) < s.metricsInterval() {
		return false
	}
	c.last[jobID] = time.Now()
	return true
}

// forgetMetrics drops the job's sampling clock (the job has finished).
func (s *Service) forgetMetrics(jobID string) {
	s.metrics.mu.Lock()
	delete(s.metrics.last, jobID)
	s.metrics.mu.Unlock()
}

// sampleMetrics stores a sample of the runner's /api/metrics for a running job, at most once per
// metrics interval, and now and then removes the samples older than the TTL. Failures are logged
// only: metrics never hold a job up.
func (p *job) sampleMetrics(ctx context.Context, runner *agentapi.RunnerClient) {
	if !p.metricsDue(p.j.ID) {
		return
	}
	mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := runner.Metrics(mctx)
	if err != nil {
		p.log().Debug("cannot read job metrics", "job", p.j.JobName, "err", err)
		return
	}
	pt := store.MetricsPoint{JobID: p.j.ID, TimestampMicro: m.TimestampMicro, CPUUsageMicro: int64(m.CPUUsageMicro),
		MemoryUsageBytes: int64(m.MemoryUsageBytes), MemoryWorkingSetBytes: int64(m.MemoryWorkingSetBytes),
		GPUsMemoryUsageBytes: []int64{}, GPUsUtilPercent: []int64{}}
	for _, g := range m.GPUs {
		pt.GPUsMemoryUsageBytes = append(pt.GPUsMemoryUsageBytes, int64(g.GPUMemoryUsageBytes))
		pt.GPUsUtilPercent = append(pt.GPUsUtilPercent, int64(g.GPUUtilPercent))
	}
	if err := p.Store.AddMetricsPoint(mctx, pt); err != nil {
		p.log().Warn("cannot store job metrics", "job", p.j.JobName, "err", err)
	}
	p.metrics.mu.Lock()
	clean := time.Since(p.metrics.cleaned) > time.Minute
	if clean {
		p.metrics.cleaned = time.Now()
	}
	p.metrics.mu.Unlock()
	if clean {
		if err := p.Store.DeleteMetricsPointsBefore(mctx, time.Now().Add(-p.metricsTTL())); err != nil {
			p.log().Warn("cannot remove old job metrics", "err", err)
		}
	}
}
