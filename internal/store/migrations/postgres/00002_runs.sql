-- Fleets, instances, runs, job submissions and repos.
-- Background work is leased per row: lease_token and lease_expiry mark the server replica working on
-- the row (see leases.go), due_at is when the row needs processing next (NULL: nothing to do).
-- Only the pipeline holding a row's lease writes its state; API requests and other pipelines record
-- intents (fleets.delete_requested, instances.terminate_requested, runs.stop_reason,
-- jobs.stop_reason) that the pipeline acts on, so that no write is lost between them.
-- JSON columns hold the API models; instances.remote holds keyring ciphertext (it carries SSH keys).

-- +goose Up
CREATE TABLE fleets (
    id             TEXT PRIMARY KEY,
    project_id     TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    status         TEXT NOT NULL,
    status_message TEXT NOT NULL DEFAULT '',
    spec           TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    deleted        BOOLEAN NOT NULL DEFAULT FALSE,
    delete_requested BOOLEAN NOT NULL DEFAULT FALSE,
    lease_token    TEXT,
    lease_expiry   TIMESTAMPTZ,
    due_at         TIMESTAMPTZ
);
CREATE UNIQUE INDEX fleets_name_key ON fleets (project_id, name) WHERE NOT deleted;
CREATE INDEX fleets_due_at ON fleets (due_at) WHERE due_at IS NOT NULL;

CREATE TABLE instances (
    id                         TEXT PRIMARY KEY,
    project_id                 TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    fleet_id                   TEXT REFERENCES fleets (id),
    name                       TEXT NOT NULL,
    instance_num               INTEGER NOT NULL,
    status                     TEXT NOT NULL,
    unreachable                BOOLEAN NOT NULL DEFAULT FALSE,
    unreachable_since          TIMESTAMPTZ,
    termination_reason         TEXT NOT NULL DEFAULT '',
    termination_reason_message TEXT NOT NULL DEFAULT '',
    status_message             TEXT NOT NULL DEFAULT '',
    created_at                 TIMESTAMPTZ NOT NULL,
    finished_at                TIMESTAMPTZ,
    backend                    TEXT NOT NULL,
    region                     TEXT NOT NULL DEFAULT '',
    price                      DOUBLE PRECISION NOT NULL DEFAULT 0,
    hostname                   TEXT NOT NULL DEFAULT '',
    instance_type              TEXT NOT NULL,
    job_provisioning_data      TEXT,
    remote                     TEXT NOT NULL DEFAULT '',
    host_key                   TEXT NOT NULL DEFAULT '',
    total_blocks               INTEGER NOT NULL DEFAULT 1,
    busy_blocks                INTEGER NOT NULL DEFAULT 0,
    job_id                     TEXT NOT NULL DEFAULT '',
    idle_since                 TIMESTAMPTZ,
    terminate_requested        BOOLEAN NOT NULL DEFAULT FALSE,
    deleted                    BOOLEAN NOT NULL DEFAULT FALSE,
    lease_token                TEXT,
    lease_expiry               TIMESTAMPTZ,
    due_at                     TIMESTAMPTZ
);
CREATE INDEX instances_fleet_id ON instances (fleet_id);
CREATE INDEX instances_project_status ON instances (project_id, status);
CREATE INDEX instances_due_at ON instances (due_at) WHERE due_at IS NOT NULL;

CREATE TABLE runs (
    id                 TEXT PRIMARY KEY,
    project_id         TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id            TEXT NOT NULL REFERENCES users (id),
    run_name           TEXT NOT NULL,
    status             TEXT NOT NULL,
    status_message     TEXT NOT NULL DEFAULT '',
    termination_reason TEXT NOT NULL DEFAULT '',
    submitted_at       TIMESTAMPTZ NOT NULL,
    last_processed_at  TIMESTAMPTZ NOT NULL,
    run_spec           TEXT NOT NULL,
    fleet_id           TEXT NOT NULL DEFAULT '',
    deployment_num     INTEGER NOT NULL DEFAULT 0,
    resubmit_at        TIMESTAMPTZ,
    error              TEXT NOT NULL DEFAULT '',
    stop_reason        TEXT NOT NULL DEFAULT '',
    deleted            BOOLEAN NOT NULL DEFAULT FALSE,
    lease_token        TEXT,
    lease_expiry       TIMESTAMPTZ,
    due_at             TIMESTAMPTZ
);
CREATE INDEX runs_project_name ON runs (project_id, run_name);
CREATE INDEX runs_submitted_at ON runs (submitted_at);
CREATE INDEX runs_due_at ON runs (due_at) WHERE due_at IS NOT NULL;

CREATE TABLE jobs (
    id                         TEXT PRIMARY KEY,
    run_id                     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    project_id                 TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    run_name                   TEXT NOT NULL,
    job_num                    INTEGER NOT NULL,
    replica_num                INTEGER NOT NULL,
    submission_num             INTEGER NOT NULL,
    job_name                   TEXT NOT NULL,
    job_spec                   TEXT NOT NULL,
    status                     TEXT NOT NULL,
    status_message             TEXT NOT NULL DEFAULT '',
    termination_reason         TEXT NOT NULL DEFAULT '',
    termination_reason_message TEXT NOT NULL DEFAULT '',
    exit_status                INTEGER,
    submitted_at               TIMESTAMPTZ NOT NULL,
    last_processed_at          TIMESTAMPTZ NOT NULL,
    finished_at                TIMESTAMPTZ,
    started_at                 TIMESTAMPTZ,
    instance_id                TEXT NOT NULL DEFAULT '',
    job_provisioning_data      TEXT,
    job_runtime_data           TEXT,
    runner_timestamp           BIGINT NOT NULL DEFAULT 0,
    stop_reason                TEXT NOT NULL DEFAULT '',
    error                      TEXT NOT NULL DEFAULT '',
    lease_token                TEXT,
    lease_expiry               TIMESTAMPTZ,
    due_at                     TIMESTAMPTZ,
    UNIQUE (run_id, replica_num, job_num, submission_num)
);
CREATE INDEX jobs_run_id ON jobs (run_id);
CREATE INDEX jobs_due_at ON jobs (due_at) WHERE due_at IS NOT NULL;

CREATE TABLE repos (
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    repo_id    TEXT NOT NULL,
    info       TEXT NOT NULL,
    creds      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (project_id, repo_id)
);

-- +goose Down
DROP TABLE repos;
DROP TABLE jobs;
DROP TABLE runs;
DROP TABLE instances;
DROP TABLE fleets;
