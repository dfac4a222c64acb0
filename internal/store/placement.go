package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/models"
)

// PlacementGroup is a placement group a backend made for a cluster fleet (see migration 00006).
type PlacementGroup struct {
	ID, ProjectID, FleetID, Name string
	Data                         backends.PlacementGroupData
	CreatedAt                    time.Time
	// DeleteRequested: no machine will join the group any more; it is deleted at the backend once
	// none is in it.
	DeleteRequested bool
	Deleted         bool
	DeletedAt       *time.Time
}

const placementGroupCols = `id, project_id, fleet_id, name, data, created_at, delete_requested, deleted, deleted_at`

// CreatePlacementGroup records a group the backend has made. A fleet that has a live group (not
// deleted nor to be deleted) already is ErrExists: a fleet's machines share one group.
func (s *Store) CreatePlacementGroup(ctx context.Context, pg *PlacementGroup) error {
	data, err := json.Marshal(pg.Data)
	if err != nil {
		return err
	}
	if pg.ID == "" {
		pg.ID = uuid.NewString()
	}
	pg.CreatedAt = stamp(pg.CreatedAt)
	_, err = s.exec(ctx, `INSERT INTO placement_groups (id, project_id, fleet_id, name, backend, region, data, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, pg.ID, pg.ProjectID, pg.FleetID, pg.Name, pg.Data.Backend, pg.Data.Region,
		string(data), s.timeArg(&pg.CreatedAt))
	if isUniqueViolation(err) {
		return fmt.Errorf("placement group %s: the fleet has a placement group already: %w", pg.Name, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create placement group %s: %w", pg.Name, err)
	}
	return nil
}

// ListPlacementGroups returns the groups of a fleet that the backend has not deleted, oldest first.
func (s *Store) ListPlacementGroups(ctx context.Context, fleetID string) ([]*PlacementGroup, error) {
	rows, err := s.query(ctx, `SELECT `+placementGroupCols+` FROM placement_groups WHERE fleet_id = ? AND NOT deleted
		ORDER BY created_at, id`, fleetID)
	return collect(rows, err, scanPlacementGroup)
}

// RequestPlacementGroupDeletion marks groups that no machine will join; the fleets pipeline deletes
// them at their backend.
func (s *Store) RequestPlacementGroupDeletion(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := s.exec(ctx, `UPDATE placement_groups SET delete_requested = TRUE WHERE id IN (`+placeholders(len(ids))+`)`,
		stringArgs(ids)...)
	return err
}

// SetPlacementGroupDeleted records that the backend has deleted a group.
func (s *Store) SetPlacementGroupDeleted(ctx context.Context, id string) error {
	n := now()
	return s.execOne(ctx, "placement group "+id, `UPDATE placement_groups SET delete_requested = TRUE, deleted = TRUE, deleted_at = ?
		WHERE id = ?`, s.timeArg(&n), id)
}

// RecordNodeMachine records the machine a backend has just created for a pending instance of a
// cloud fleet (inst's backend, region, price, instance type and provisioning data): the instance
// is provisioning from here on. It is ErrLeaseLost when the lease on the instance is gone, or the
// instance is no longer pending or is to be terminated; the caller must then give the machine back.
func (s *Store) RecordNodeMachine(ctx context.Context, l Lease, inst *models.Instance) error {
	it, err := json.Marshal(inst.InstanceType)
	if err != nil {
		return err
	}
	jpd, err := jsonOrNull(inst.JPD)
	if err != nil {
		return err
	}
	return s.guarded(ctx, l, `UPDATE instances SET status = 'provisioning', status_message = ?, backend = ?, region = ?,
		price = ?, instance_type = ?, job_provisioning_data = ?
		WHERE id = ? AND lease_token = ? AND status = 'pending' AND NOT terminate_requested`,
		inst.StatusMessage, inst.Backend, inst.Region, inst.Price, string(it), jpd, l.ID, l.Token)
}

func scanPlacementGroup(row scanner) (*PlacementGroup, error) {
	var (
		pg               PlacementGroup
		data             string
		created, deleted dbTime
	)
	if err := row.Scan(&pg.ID, &pg.ProjectID, &pg.FleetID, &pg.Name, &data, &created, &pg.DeleteRequested, &pg.Deleted, &deleted); err != nil {
		return nil, err
	}
	pg.CreatedAt, pg.DeletedAt = created.t, deleted.ptr()
	if err := json.Unmarshal([]byte(data), &pg.Data); err != nil {
		return nil, fmt.Errorf("placement group %s: data: %w", pg.ID, err)
	}
	return &pg, nil
}
