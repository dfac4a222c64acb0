package store

import (
	"context"
	"encoding/json"
	"time"
)

// MetricsPoint is one sample of a job's resource usage, as the runner's /api/metrics reports it.
type MetricsPoint struct {
	JobID                 string
	TimestampMicro        int64
	CPUUsageMicro         int64
	MemoryUsageBytes      int64
	MemoryWorkingSetBytes int64
	GPUsMemoryUsageBytes  []int64
	GPUsUtilPercent       []int64
}

// AddMetricsPoint stores a sample; a sample already stored for the job and time is kept.
func (s *Store) AddMetricsPoint(ctx context.Context, p MetricsPoint) error {
	mem, err := json.Marshal(orEmpty(p.GPUsMemoryUsageBytes))
	if err != nil {
		return err
	}
	util, err := json.Marshal(orEmpty(p.GPUsUtilPercent))
	if err != nil {
		return err
	}
	_, err = s.exec(ctx, `INSERT INTO job_metrics_points (job_id, timestamp_micro, cpu_usage_micro, memory_usage_bytes,
		memory_working_set_bytes, gpus_memory_usage_bytes, gpus_util_percent) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (job_id, timestamp_micro) DO NOTHING`,
		p.JobID, p.TimestampMicro, p.CPUUsageMicro, p.MemoryUsageBytes, p.MemoryWorkingSetBytes, string(mem), string(util))
	return err
}

func orEmpty(v []int64) []int64 {
	if v == nil {
		return []int64{}
	}
	return v
}

// ListMetricsPoints returns a job's samples, latest first: at most limit (0: all) of those after and
// before the given times (zero: unbounded).
func (s *Store) ListMetricsPoints(ctx context.Context, jobID string, limit int, after, before time.Time) ([]MetricsPoint, error) {
	q := `SELECT job_id, timestamp_micro, cpu_usage_micro, memory_usage_bytes, memory_working_set_bytes,
		gpus_memory_usage_bytes, gpus_util_percent FROM job_metrics_points WHERE job_id = ?`
	args := []any{jobID}
	if !after.IsZero() {
		q += ` AND timestamp_micro > ?`
		args = append(args, after.UnixMicro())
	}
	if !before.IsZero() {
		q += ` AND timestamp_micro < ?`
		args = append(args, before.UnixMicro())
	}
	q += ` ORDER BY timestamp_micro DESC`
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	rows, err := s.query(ctx, q, args...)
	return collect(rows, err, func(r scanner) (MetricsPoint, error) {
		var p MetricsPoint
		var mem, util string
		if err := r.Scan(&p.JobID, &p.TimestampMicro, &p.CPUUsageMicro, &p.MemoryUsageBytes, &p.MemoryWorkingSetBytes, &mem, &util); err != nil {
			return p, err
		}
		if err := json.Unmarshal([]byte(mem), &p.GPUsMemoryUsageBytes); err != nil {
			return p, err
		}
		return p, json.Unmarshal([]byte(util), &p.GPUsUtilPercent)
	})
}

// DeleteMetricsPointsBefore removes the samples taken before t.
func (s *Store) DeleteMetricsPointsBefore(ctx context.Context, t time.Time) error {
	_, err := s.exec(ctx, `DELETE FROM job_metrics_points WHERE timestamp_micro < ?`, t.UnixMicro())
	return err
}
