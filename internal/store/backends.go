package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/dstackgo/dstack/internal/models"
)

const backendCols = "id, project_id, type, config, auth, status, status_message, checked_at, created_at, updated_at"

// CreateBackend inserts b into its (live) project, filling ID, CreatedAt and UpdatedAt when empty.
// A project has at most one backend per type; a second is ErrExists.
func (s *Store) CreateBackend(ctx context.Context, b *models.Backend) error {
	auth, err := s.encrypt(b.Auth)
	if err != nil {
		return fmt.Errorf("create backend %q: %w", b.Type, err)
	}
	return s.WithTx(ctx, func(tx *Store) error {
		if err := tx.checkLiveProject(ctx, b.ProjectID); err != nil {
			return fmt.Errorf("create backend %q: %w", b.Type, err)
		}
		if b.ID == "" {
			b.ID = uuid.NewString()
		}
		b.CreatedAt = stamp(b.CreatedAt)
		if b.UpdatedAt.IsZero() {
			b.UpdatedAt = b.CreatedAt
		}
		b.UpdatedAt = stamp(b.UpdatedAt)
		b.CheckedAt = stampPtr(b.CheckedAt)
		_, err := tx.exec(ctx, `INSERT INTO backends (`+backendCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			b.ID, b.ProjectID, b.Type, b.Config, auth, b.Status, b.StatusMessage,
			tx.timeArg(b.CheckedAt), tx.timeArg(&b.CreatedAt), tx.timeArg(&b.UpdatedAt))
		if isUniqueViolation(err) {
			return fmt.Errorf("backend %q: %w", b.Type, ErrExists)
		}
		return err
	})
}

// UpdateBackend saves b's config, credentials and status over the project's backend of b.Type,
// sets UpdatedAt to now and fills ID and CreatedAt from the stored row. A missing backend is ErrNotFound.
func (s *Store) UpdateBackend(ctx context.Context, b *models.Backend) error {
	auth, err := s.encrypt(b.Auth)
	if err != nil {
		return fmt.Errorf("update backend %q: %w", b.Type, err)
	}
	b.UpdatedAt = now()
	b.CheckedAt = stampPtr(b.CheckedAt)
	var createdAt dbTime
	err = s.queryRow(ctx, `UPDATE backends SET config = ?, auth = ?, status = ?, status_message = ?, checked_at = ?, updated_at = ?
		WHERE project_id = ? AND type = ? RETURNING id, created_at`,
		b.Config, auth, b.Status, b.StatusMessage, s.timeArg(b.CheckedAt), s.timeArg(&b.UpdatedAt),
		b.ProjectID, b.Type).Scan(&b.ID, &createdAt)
	if err != nil {
		return notFound(err, fmt.Sprintf("backend %q", b.Type))
	}
	b.CreatedAt = createdAt.t
	return nil
}

// GetBackend returns the project's backend of type typ.
func (s *Store) GetBackend(ctx context.Context, projectID, typ string) (*models.Backend, error) {
	b, err := s.scanBackend(s.queryRow(ctx, `SELECT `+backendCols+` FROM backends WHERE project_id = ? AND type = ?`, projectID, typ))
	return b, notFound(err, fmt.Sprintf("backend %q", typ))
}

// ListBackends returns the project's backends ordered by type.
func (s *Store) ListBackends(ctx context.Context, projectID string) ([]*models.Backend, error) {
	rows, err := s.query(ctx, `SELECT `+backendCols+` FROM backends WHERE project_id = ? ORDER BY type`, projectID)
	return collect(rows, err, s.scanBackend)
}

// DeleteBackends deletes the project's backends of the given types. If any type has no backend,
// nothing is deleted and the error (ErrNotFound) lists the missing types.
func (s *Store) DeleteBackends(ctx context.Context, projectID string, types []string) error {
	if len(types) == 0 {
		return nil
	}
	return s.WithTx(ctx, func(tx *Store) error {
		args := append([]any{projectID}, stringArgs(types)...)
		rows, err := tx.query(ctx, `SELECT type FROM backends WHERE project_id = ? AND type IN (`+placeholders(len(types))+`)`, args...)
		found, err := collect(rows, err, func(r scanner) (string, error) {
			var t string
			return t, r.Scan(&t)
		})
		if err != nil {
			return err
		}
		have := map[string]bool{}
		for _, t := range found {
			have[t] = true
		}
		var missing []string
		for _, t := range types {
			if !have[t] {
				missing = append(missing, t)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("backends %s: %w", quoteList(missing), ErrNotFound)
		}
		_, err = tx.exec(ctx, `DELETE FROM backends WHERE project_id = ? AND type IN (`+placeholders(len(types))+`)`, args...)
		return err
	})
}

// SetBackendStatus records the outcome of a credential check on the backend with the given ID.
func (s *Store) SetBackendStatus(ctx context.Context, id, status, msg string, checkedAt time.Time) error {
	checkedAt = stamp(checkedAt)
	return s.execOne(ctx, fmt.Sprintf("backend with id %q", id),
		`UPDATE backends SET status = ?, status_message = ?, checked_at = ? WHERE id = ?`,
		status, msg, s.timeArg(&checkedAt), id)
}

// scanBackend decrypts the credentials; if that fails the backend is still returned, marked invalid
// with the reason, so one unreadable row does not break listing the rest.
func (s *Store) scanBackend(row scanner) (*models.Backend, error) {
	var (
		b                               models.Backend
		auth                            string
		checkedAt, createdAt, updatedAt dbTime
	)
	if err := row.Scan(&b.ID, &b.ProjectID, &b.Type, &b.Config, &auth, &b.Status, &b.StatusMessage,
		&checkedAt, &createdAt, &updatedAt); err != nil {
		return nil, err
	}
	b.CheckedAt, b.CreatedAt, b.UpdatedAt = checkedAt.ptr(), createdAt.t, updatedAt.t
	plain, err := s.kr.Decrypt(auth)
	if err != nil {
		b.Status = models.BackendInvalid
		b.StatusMessage = "failed to decrypt credentials: " + err.Error()
		return &b, nil
	}
	b.Auth = plain
	return &b, nil
}

func stampPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	st := stamp(*t)
	return &st
}
