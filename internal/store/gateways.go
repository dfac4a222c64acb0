package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/models"
)

const gatewayCols = `id, project_id, name, configuration, status, status_message, wildcard_domain, is_default,
	provisioning_data, host_key, created_at, last_processed_at, deleted, delete_requested`

// CreateGateway inserts g, due for processing at once. A live gateway of the same name in the project
// is ErrExists. A default gateway takes the default from the project's other gateways.
func (s *Store) CreateGateway(ctx context.Context, g *models.Gateway) error {
	conf, err := json.Marshal(g.Configuration)
	if err != nil {
		return err
	}
	if g.ID == "" {
		g.ID = uuid.NewString()
	}
	g.CreatedAt = stamp(g.CreatedAt)
	g.LastProcessedAt = g.CreatedAt
	n := now()
	return s.WithTx(ctx, func(tx *Store) error {
		if g.Default {
			if _, err := tx.exec(ctx, `UPDATE gateways SET is_default = FALSE WHERE project_id = ?`, g.ProjectID); err != nil {
				return err
			}
		}
		_, err := tx.exec(ctx, `INSERT INTO gateways (id, project_id, name, configuration, status, status_message, wildcard_domain,
			is_default, created_at, last_processed_at, due_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			g.ID, g.ProjectID, g.Name, string(conf), g.Status, g.StatusMessage, g.WildcardDomain, g.Default,
			tx.timeArg(&g.CreatedAt), tx.timeArg(&g.LastProcessedAt), tx.timeArg(&n))
		if isUniqueViolation(err) {
			return fmt.Errorf("gateway %q: %w", g.Name, ErrExists)
		}
		if err != nil {
			return fmt.Errorf("create gateway %q: %w", g.Name, err)
		}
		return nil
	})
}

// GetGateway finds a live (not deleted) gateway of the project by name.
func (s *Store) GetGateway(ctx context.Context, projectID, name string) (*models.Gateway, error) {
	g, err := scanGateway(s.queryRow(ctx, `SELECT `+gatewayCols+` FROM gateways WHERE project_id = ? AND name = ? AND NOT deleted`, projectID, name))
	return g, notFound(err, fmt.Sprintf("gateway %q", name))
}

// GetGatewayByID finds a gateway by id, deleted ones included.
func (s *Store) GetGatewayByID(ctx context.Context, id string) (*models.Gateway, error) {
	g, err := scanGateway(s.queryRow(ctx, `SELECT `+gatewayCols+` FROM gateways WHERE id = ?`, id))
	return g, notFound(err, fmt.Sprintf("gateway with id %q", id))
}

// DefaultGateway finds the project's live default gateway.
func (s *Store) DefaultGateway(ctx context.Context, projectID string) (*models.Gateway, error) {
	g, err := scanGateway(s.queryRow(ctx, `SELECT `+gatewayCols+` FROM gateways WHERE project_id = ? AND is_default AND NOT deleted`, projectID))
	return g, notFound(err, "default gateway")
}

// ListGateways returns the live gateways of the projects (nil: every project), oldest first.
func (s *Store) ListGateways(ctx context.Context, projectIDs []string) ([]*models.Gateway, error) {
	where, args := "NOT deleted", []any{}
	if projectIDs != nil {
		if len(projectIDs) == 0 {
			return nil, nil
		}
		where += " AND project_id IN (" + placeholders(len(projectIDs)) + ")"
		args = stringArgs(projectIDs)
	}
	rows, err := s.query(ctx, `SELECT `+gatewayCols+` FROM gateways WHERE `+where+` ORDER BY created_at, name`, args...)
	return collect(rows, err, scanGateway)
}

// SetDefaultGateway makes the gateway its project's only default.
func (s *Store) SetDefaultGateway(ctx context.Context, projectID, id string) error {
	return s.WithTx(ctx, func(tx *Store) error {
		if _, err := tx.exec(ctx, `UPDATE gateways SET is_default = (id = ?) WHERE project_id = ? AND NOT deleted`, id, projectID); err != nil {
			return err
		}
		return tx.WakeRow(ctx, TableGateways, id)
	})
}

// SetGatewayDomain changes a gateway's wildcard domain and wakes it, so that its routes follow.
func (s *Store) SetGatewayDomain(ctx context.Context, id, domain string) error {
	if _, err := s.exec(ctx, `UPDATE gateways SET wildcard_domain = ? WHERE id = ?`, domain, id); err != nil {
		return err
	}
	return s.WakeRow(ctx, TableGateways, id)
}

// RequestGatewayDeletion marks gateways for deletion (they stop being the default) and wakes them.
func (s *Store) RequestGatewayDeletion(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	n := now()
	_, err := s.exec(ctx, `UPDATE gateways SET delete_requested = TRUE, is_default = FALSE, due_at = ? WHERE id IN (`+placeholders(len(ids))+`)`,
		append([]any{s.timeArg(&n)}, stringArgs(ids)...)...)
	return err
}

// SaveGatewayState records the gateways pipeline's outcome (status, message, provisioning data, host
// key and deletion) under its lease.
func (s *Store) SaveGatewayState(ctx context.Context, l Lease, g *models.Gateway) error {
	var pd any
	if g.PD != nil {
		data, err := json.Marshal(g.PD)
		if err != nil {
			return err
		}
		pd = string(data)
	}
	n := now()
	g.LastProcessedAt = n
	return s.guarded(ctx, l, `UPDATE gateways SET status = ?, status_message = ?, provisioning_data = ?, host_key = ?,
		last_processed_at = ?, deleted = ? WHERE id = ? AND lease_token = ?`,
		g.Status, g.StatusMessage, pd, g.HostKey, s.timeArg(&n), g.Deleted, l.ID, l.Token)
}

func scanGateway(row scanner) (*models.Gateway, error) {
	var (
		g                  models.Gateway
		conf               string
		pd                 sql.NullString
		created, processed dbTime
	)
	if err := row.Scan(&g.ID, &g.ProjectID, &g.Name, &conf, &g.Status, &g.StatusMessage, &g.WildcardDomain, &g.Default, &pd,
		&g.HostKey, &created, &processed, &g.Deleted, &g.DeleteRequested); err != nil {
		return nil, err
	}
	g.CreatedAt, g.LastProcessedAt = created.t, processed.t
	if err := json.Unmarshal([]byte(conf), &g.Configuration); err != nil {
		return nil, fmt.Errorf("gateway %s: configuration: %w", g.ID, err)
	}
	if pd.Valid {
		g.PD = &backends.GatewayProvisioningData{}
		if err := json.Unmarshal([]byte(pd.String), g.PD); err != nil {
			return nil, fmt.Errorf("gateway %s: provisioning data: %w", g.ID, err)
		}
	}
	return &g, nil
}
