package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/dstackgo/dstack/internal/models"
)

const fleetCols = "id, project_id, name, status, status_message, spec, created_at, delete_requested, deleted"

// CreateFleet inserts f and its instances in one transaction; every row is due for processing at
// once. A live fleet of the same name in the project is ErrExists.
func (s *Store) CreateFleet(ctx context.Context, f *models.Fleet, instances []*models.Instance) error {
	spec, err := json.Marshal(f.Spec)
	if err != nil {
		return err
	}
	return s.WithTx(ctx, func(tx *Store) error {
		if f.ID == "" {
			f.ID = uuid.NewString()
		}
		f.CreatedAt = stamp(f.CreatedAt)
		n := now()
		_, err := tx.exec(ctx, `INSERT INTO fleets (id, project_id, name, status, status_message, spec, created_at, due_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, f.ID, f.ProjectID, f.Name, f.Status, f.StatusMessage, string(spec),
			tx.timeArg(&f.CreatedAt), tx.timeArg(&n))
		if isUniqueViolation(err) {
			return fmt.Errorf("fleet %q: %w", f.Name, ErrExists)
		}
		if err != nil {
			return fmt.Errorf("create fleet %q: %w", f.Name, err)
		}
		for _, inst := range instances {
			inst.FleetID = f.ID
			if err := tx.CreateInstance(ctx, inst); err != nil {
				return err
			}
		}
		return nil
	})
}

// UpdateFleetSpec replaces the spec of a fleet (an in-place update by apply).
func (s *Store) UpdateFleetSpec(ctx context.Context, id string, spec models.FleetSpec) error {
	data, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	return s.execOne(ctx, "fleet "+id, `UPDATE fleets SET spec = ? WHERE id = ?`, string(data), id)
}

// GetFleet finds a live (not deleted) fleet of the project by name.
func (s *Store) GetFleet(ctx context.Context, projectID, name string) (*models.Fleet, error) {
	f, err := scanFleet(s.queryRow(ctx, `SELECT `+fleetCols+` FROM fleets WHERE project_id = ? AND name = ? AND NOT deleted`, projectID, name))
	return f, notFound(err, fmt.Sprintf("fleet %q", name))
}

// GetFleetByID finds a fleet by id, deleted ones included.
func (s *Store) GetFleetByID(ctx context.Context, id string) (*models.Fleet, error) {
	f, err := scanFleet(s.queryRow(ctx, `SELECT `+fleetCols+` FROM fleets WHERE id = ?`, id))
	return f, notFound(err, fmt.Sprintf("fleet with id %q", id))
}

// FleetFilter selects fleets (and, with Page, a keyset page of them by creation time).
type FleetFilter struct {
	ProjectIDs     []string // nil: every project
	OnlyActive     bool     // not terminating, terminated or failed
	IncludeDeleted bool
	Page
}

// Page is keyset pagination by a timestamp and id, newest first unless Ascending.
type Page struct {
	PrevTime  *time.Time
	PrevID    string
	Limit     int // 0: no limit
	Ascending bool
}

func (p Page) apply(s *Store, col string, where []string, args []any) (string, []any) {
	dir, cmp := "DESC", "<"
	if p.Ascending {
		dir, cmp = "ASC", ">"
	}
	if p.PrevTime != nil {
		where = append(where, fmt.Sprintf("(%s %s ? OR (%s = ? AND id %s ?))", col, cmp, col, cmp))
		args = append(args, s.timeArg(p.PrevTime), s.timeArg(p.PrevTime), p.PrevID)
	}
	q := ""
	if len(where) > 0 {
		q = " WHERE " + strings.Join(where, " AND ")
	}
	q += fmt.Sprintf(" ORDER BY %s %s, id %s", col, dir, dir)
	if p.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, p.Limit)
	}
	return q, args
}

// ListFleets returns the fleets matching f.
func (s *Store) ListFleets(ctx context.Context, f FleetFilter) ([]*models.Fleet, error) {
	var where []string
	var args []any
	if f.ProjectIDs != nil {
		if len(f.ProjectIDs) == 0 {
			return nil, nil
		}
		where = append(where, "project_id IN ("+placeholders(len(f.ProjectIDs))+")")
		args = append(args, stringArgs(f.ProjectIDs)...)
	}
	if !f.IncludeDeleted {
		where = append(where, "NOT deleted")
	}
	if f.OnlyActive {
		where = append(where, "status NOT IN ('terminating', 'terminated', 'failed') AND NOT delete_requested")
	}
	q, args := f.Page.apply(s, "created_at", where, args)
	rows, err := s.query(ctx, `SELECT `+fleetCols+` FROM fleets`+q, args...)
	return collect(rows, err, scanFleet)
}

// RequestFleetDeletion marks fleets for deletion and wakes them.
func (s *Store) RequestFleetDeletion(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	n := now()
	_, err := s.exec(ctx, `UPDATE fleets SET delete_requested = TRUE, due_at = ? WHERE id IN (`+placeholders(len(ids))+`)`,
		append([]any{s.timeArg(&n)}, stringArgs(ids)...)...)
	return err
}

// SetFleetStatus records the fleet pipeline's outcome; deleted hides the fleet from lookups by name.
func (s *Store) SetFleetStatus(ctx context.Context, l Lease, status, message string, deleted bool) error {
	return s.guarded(ctx, l, `UPDATE fleets SET status = ?, status_message = ?, deleted = ? WHERE id = ? AND lease_token = ?`,
		status, message, deleted, l.ID, l.Token)
}

func scanFleet(row scanner) (*models.Fleet, error) {
	var (
		f         models.Fleet
		spec      string
		createdAt dbTime
	)
	if err := row.Scan(&f.ID, &f.ProjectID, &f.Name, &f.Status, &f.StatusMessage, &spec, &createdAt, &f.DeleteRequested, &f.Deleted); err != nil {
		return nil, err
	}
	f.CreatedAt = createdAt.t
	if err := json.Unmarshal([]byte(spec), &f.Spec); err != nil {
		return nil, fmt.Errorf("fleet %s: spec: %w", f.ID, err)
	}
	return &f, nil
}
