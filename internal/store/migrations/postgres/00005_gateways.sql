-- Gateways (`type: gateway`): a machine in front of a project's services. A gateway row is processed
-- by the gateways pipeline under a lease like volumes (see 00004): the backend creates the machine,
-- the server installs dstack-gateway on it over SSH and keeps its routes in step with the project's
-- services; delete_requested makes it terminate the machine. configuration and provisioning_data
-- hold the API models as JSON; host_key is the machine's SSH host key, trusted on first use.

-- +goose Up
CREATE TABLE gateways (
    id                TEXT PRIMARY KEY,
    project_id        TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name              TEXT NOT NULL,
    configuration     TEXT NOT NULL,
    status            TEXT NOT NULL,
    status_message    TEXT NOT NULL DEFAULT '',
    wildcard_domain   TEXT NOT NULL DEFAULT '',
    is_default        BOOLEAN NOT NULL DEFAULT FALSE,
    provisioning_data TEXT,
    host_key          TEXT NOT NULL DEFAULT '',
    created_at        TIMESTAMPTZ NOT NULL,
    last_processed_at TIMESTAMPTZ NOT NULL,
    deleted           BOOLEAN NOT NULL DEFAULT FALSE,
    delete_requested  BOOLEAN NOT NULL DEFAULT FALSE,
    lease_token       TEXT,
    lease_expiry      TIMESTAMPTZ,
    due_at            TIMESTAMPTZ
);
CREATE UNIQUE INDEX gateways_name_key ON gateways (project_id, name) WHERE NOT deleted;
CREATE INDEX gateways_due_at ON gateways (due_at) WHERE due_at IS NOT NULL;

-- +goose Down
DROP TABLE gateways;
