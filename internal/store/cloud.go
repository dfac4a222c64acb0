package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/dstackgo/dstack/internal/models"
)

// NextInstanceNum is the number the next instance of a project's live fleet of that name gets (0
// when there is no such fleet).
func (s *Store) NextInstanceNum(ctx context.Context, projectID, fleetName string) (int, error) {
	var n int
	err := s.queryRow(ctx, `SELECT COALESCE(MAX(i.instance_num) + 1, 0) FROM instances i JOIN fleets f ON f.id = i.fleet_id
		WHERE f.project_id = ? AND f.name = ? AND NOT f.deleted`, projectID, fleetName).Scan(&n)
	return n, err
}

// RecordCloudInstance records a machine a backend has just created for a job, in one transaction:
// the instance (in the live fleet of fleet's name, which is created from fleet when there is none),
// and the job's new state (guarded by the job's lease l). On any error nothing is recorded, and the
// caller must give the machine back to the provider.
func (s *Store) RecordCloudInstance(ctx context.Context, l Lease, j *models.Job, fleet *models.Fleet, inst *models.Instance) error {
	return s.WithTx(ctx, func(tx *Store) error {
		f, err := tx.GetFleet(ctx, inst.ProjectID, fleet.Name)
		switch {
		case errors.Is(err, ErrNotFound):
			f = fleet
			f.ID, f.ProjectID = uuid.NewString(), inst.ProjectID
			f.CreatedAt = stamp(f.CreatedAt)
			spec, err := json.Marshal(f.Spec)
			if err != nil {
				return err
			}
			if _, err := tx.exec(ctx, `INSERT INTO fleets (id, project_id, name, status, status_message, spec, created_at)
				VALUES (?, ?, ?, ?, ?, ?, ?)`, f.ID, f.ProjectID, f.Name, f.Status, f.StatusMessage, string(spec),
				tx.timeArg(&f.CreatedAt)); err != nil {
				return fmt.Errorf("create fleet %q: %w", f.Name, err)
			}
		case err != nil:
			return err
		case f.DeleteRequested:
			return fmt.Errorf("fleet %q is being deleted", f.Name)
		}
		inst.FleetID = f.ID
		if err := tx.CreateInstance(ctx, inst); err != nil {
			return err
		}
		j.InstanceID = inst.ID
		return tx.UpdateJobState(ctx, l, j)
	})
}

// DeleteFleetIfEmpty marks a leased fleet terminated and deleted when none of its instances is
// left; it reports whether it did.
func (s *Store) DeleteFleetIfEmpty(ctx context.Context, l Lease) (bool, error) {
	res, err := s.exec(ctx, `UPDATE fleets SET status = 'terminated', deleted = TRUE WHERE id = ? AND lease_token = ?
		AND NOT EXISTS (SELECT 1 FROM instances WHERE fleet_id = ? AND status <> 'terminated')`, l.ID, l.Token, l.ID)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// settingServerID is the settings key of ServerID.
const settingServerID = "server_id"

// ServerID is an identifier of this server's database, made on first use: replicas of one server
// share it, other servers have their own. Resources a server creates at providers carry it, so
// that it never takes another server's machines for its own orphans.
func (s *Store) ServerID(ctx context.Context) (string, error) {
	if id, ok, err := s.GetSetting(ctx, settingServerID); err != nil || ok {
		return id, err
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	_, err := s.exec(ctx, `INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, settingServerID, hex.EncodeToString(b[:]))
	if err != nil {
		return "", err
	}
	id, _, err := s.GetSetting(ctx, settingServerID)
	return id, err
}
