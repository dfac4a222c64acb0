-- Samples of the runner's /api/metrics for running jobs, kept for DSTACK_SERVER_METRICS_TTL_SECONDS.
-- They live in the database (not in the collecting replica's memory) so that any replica answers
-- GET /metrics/job/{run_name}. Times are Unix microseconds, as the runner reports them.

-- +goose Up
CREATE TABLE job_metrics_points (
    job_id                   TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    timestamp_micro          BIGINT NOT NULL,
    cpu_usage_micro          BIGINT NOT NULL,
    memory_usage_bytes       BIGINT NOT NULL,
    memory_working_set_bytes BIGINT NOT NULL,
    gpus_memory_usage_bytes  TEXT NOT NULL,
    gpus_util_percent        TEXT NOT NULL,
    PRIMARY KEY (job_id, timestamp_micro)
);
CREATE INDEX job_metrics_points_timestamp ON job_metrics_points (timestamp_micro);

-- +goose Down
DROP TABLE job_metrics_points;
