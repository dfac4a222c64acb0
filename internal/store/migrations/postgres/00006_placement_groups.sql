-- Placement groups of cluster fleets (`placement: cluster`): what a backend made so that the
-- fleet's machines sit together (a Nebius GPU cluster). A group belongs to its fleet and is handled
-- under that fleet's lease (deleted by the fleets pipeline once no instance is left) or, while the
-- fleet's first machine is created, under that instance's lease. data is the backend's
-- PlacementGroupData as JSON. delete_requested marks a group no machine will join (the fleet is
-- deleted, or its first machine went elsewhere); deleted, one the backend has deleted. A fleet has
-- at most one live group.

-- +goose Up
CREATE TABLE placement_groups (
    id               TEXT PRIMARY KEY,
    project_id       TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    fleet_id         TEXT NOT NULL REFERENCES fleets (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    backend          TEXT NOT NULL,
    region           TEXT NOT NULL,
    data             TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    delete_requested BOOLEAN NOT NULL DEFAULT FALSE,
    deleted          BOOLEAN NOT NULL DEFAULT FALSE,
    deleted_at       TIMESTAMPTZ
);
CREATE INDEX placement_groups_fleet_id ON placement_groups (fleet_id) WHERE NOT deleted;
CREATE UNIQUE INDEX placement_groups_live_key ON placement_groups (fleet_id) WHERE NOT deleted AND NOT delete_requested;

-- +goose Down
DROP TABLE placement_groups;
