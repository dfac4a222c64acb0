-- Timestamps are TIMESTAMPTZ (microsecond precision), written in UTC.
-- IDs are UUID strings kept as TEXT, so a malformed ID is simply not found rather than a type error.
-- Secret columns (users.token, *.ssh_private_key, backends.auth) hold secrets.Keyring ciphertext.

-- +goose Up
CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    username        TEXT NOT NULL,
    global_role     TEXT NOT NULL,
    email           TEXT,
    active          BOOLEAN NOT NULL DEFAULT TRUE,
    created_at      TIMESTAMPTZ NOT NULL,
    token_hash      TEXT NOT NULL UNIQUE,
    token           TEXT NOT NULL,
    ssh_public_key  TEXT NOT NULL DEFAULT '',
    ssh_private_key TEXT NOT NULL DEFAULT '',
    deleted         BOOLEAN NOT NULL DEFAULT FALSE
);
-- Names are unique ignoring case among live rows, so a deleted user's or project's name can be reused.
CREATE UNIQUE INDEX users_username_key ON users (lower(username)) WHERE NOT deleted;

CREATE TABLE projects (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    owner_id        TEXT NOT NULL REFERENCES users (id),
    created_at      TIMESTAMPTZ NOT NULL,
    ssh_public_key  TEXT NOT NULL DEFAULT '',
    ssh_private_key TEXT NOT NULL DEFAULT '',
    is_public       BOOLEAN NOT NULL DEFAULT FALSE,
    deleted         BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE UNIQUE INDEX projects_name_key ON projects (lower(name)) WHERE NOT deleted;

CREATE TABLE members (
    project_id   TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_role TEXT NOT NULL,
    member_num   INTEGER NOT NULL, -- position in the list the members were set from
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX members_user_id ON members (user_id);

CREATE TABLE backends (
    id             TEXT PRIMARY KEY,
    project_id     TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    type           TEXT NOT NULL,
    config         TEXT NOT NULL,
    auth           TEXT NOT NULL,
    status         TEXT NOT NULL,
    status_message TEXT NOT NULL DEFAULT '',
    checked_at     TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    UNIQUE (project_id, type)
);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- +goose Down
DROP TABLE settings;
DROP TABLE backends;
DROP TABLE members;
DROP TABLE projects;
DROP TABLE users;
