-- Network volumes (`type: volume`) and their attachments to instances. A volume row is processed by
-- the volumes pipeline under a lease like fleets (see 00002): it is created or registered on the
-- backend, and deleted there when delete_requested is set and no job uses it. configuration and
-- provisioning_data hold the API models as JSON.

-- +goose Up
CREATE TABLE volumes (
    id                TEXT PRIMARY KEY,
    project_id        TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id           TEXT NOT NULL,
    name              TEXT NOT NULL,
    configuration     TEXT NOT NULL,
    external          BOOLEAN NOT NULL DEFAULT FALSE,
    status            TEXT NOT NULL,
    status_message    TEXT NOT NULL DEFAULT '',
    provisioning_data TEXT,
    created_at        TIMESTAMPTZ NOT NULL,
    last_processed_at TIMESTAMPTZ NOT NULL,
    deleted           BOOLEAN NOT NULL DEFAULT FALSE,
    deleted_at        TIMESTAMPTZ,
    delete_requested  BOOLEAN NOT NULL DEFAULT FALSE,
    lease_token       TEXT,
    lease_expiry      TIMESTAMPTZ,
    due_at            TIMESTAMPTZ
);
CREATE UNIQUE INDEX volumes_name_key ON volumes (project_id, name) WHERE NOT deleted;
CREATE INDEX volumes_due_at ON volumes (due_at) WHERE due_at IS NOT NULL;

-- One row per volume attached to an instance; attachment_data is the device it appears as.
CREATE TABLE volume_attachments (
    volume_id       TEXT NOT NULL REFERENCES volumes (id) ON DELETE CASCADE,
    instance_id     TEXT NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    attachment_data TEXT,
    PRIMARY KEY (volume_id, instance_id)
);

-- +goose Down
DROP TABLE volume_attachments;
DROP TABLE volumes;
