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

const volumeCols = `id, project_id, user_id, name, configuration, external, status, status_message, provisioning_data,
	created_at, last_processed_at, deleted, deleted_at, delete_requested`

// CreateVolume inserts v, due for processing at once. A live volume of the same name in the project
// is ErrExists.
func (s *Store) CreateVolume(ctx context.Context, v *models.Volume) error {
	conf, err := json.Marshal(v.Configuration)
	if err != nil {
		return err
	}
	if v.ID == "" {
		v.ID = uuid.NewString()
	}
	v.CreatedAt = stamp(v.CreatedAt)
	v.LastProcessedAt = v.CreatedAt
	n := now()
	_, err = s.exec(ctx, `INSERT INTO volumes (id, project_id, user_id, name, configuration, external, status, status_message,
		created_at, last_processed_at, due_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		v.ID, v.ProjectID, v.UserID, v.Name, string(conf), v.External, v.Status, v.StatusMessage,
		s.timeArg(&v.CreatedAt), s.timeArg(&v.LastProcessedAt), s.timeArg(&n))
	if isUniqueViolation(err) {
		return fmt.Errorf("volume %q: %w", v.Name, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create volume %q: %w", v.Name, err)
	}
	return nil
}

// GetVolume finds a live (not deleted) volume of the project by name.
func (s *Store) GetVolume(ctx context.Context, projectID, name string) (*models.Volume, error) {
	v, err := scanVolume(s.queryRow(ctx, `SELECT `+volumeCols+` FROM volumes WHERE project_id = ? AND name = ? AND NOT deleted`, projectID, name))
	return v, notFound(err, fmt.Sprintf("volume %q", name))
}

// GetVolumeByID finds a volume by id, deleted ones included.
func (s *Store) GetVolumeByID(ctx context.Context, id string) (*models.Volume, error) {
	v, err := scanVolume(s.queryRow(ctx, `SELECT `+volumeCols+` FROM volumes WHERE id = ?`, id))
	return v, notFound(err, fmt.Sprintf("volume with id %q", id))
}

// ListVolumes returns the live volumes of the projects (nil: every project), newest first.
func (s *Store) ListVolumes(ctx context.Context, projectIDs []string) ([]*models.Volume, error) {
	where, args := []string{"NOT deleted"}, []any{}
	if projectIDs != nil {
		if len(projectIDs) == 0 {
			return nil, nil
		}
		where = append(where, "project_id IN ("+placeholders(len(projectIDs))+")")
		args = append(args, stringArgs(projectIDs)...)
	}
	q, args := Page{}.apply(s, "created_at", where, args)
	rows, err := s.query(ctx, `SELECT `+volumeCols+` FROM volumes`+q, args...)
	return collect(rows, err, scanVolume)
}

// RequestVolumeDeletion marks volumes for deletion and wakes them.
func (s *Store) RequestVolumeDeletion(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	n := now()
	_, err := s.exec(ctx, `UPDATE volumes SET delete_requested = TRUE, due_at = ? WHERE id IN (`+placeholders(len(ids))+`)`,
		append([]any{s.timeArg(&n)}, stringArgs(ids)...)...)
	return err
}

// SaveVolumeState records the volumes pipeline's outcome (status, message, provisioning data and
// deletion) under its lease.
func (s *Store) SaveVolumeState(ctx context.Context, l Lease, v *models.Volume) error {
	var pd any
	if v.PD != nil {
		data, err := json.Marshal(v.PD)
		if err != nil {
			return err
		}
		pd = string(data)
	}
	n := now()
	v.LastProcessedAt = n
	if v.Deleted && v.DeletedAt == nil {
		v.DeletedAt = &n
	}
	return s.guarded(ctx, l, `UPDATE volumes SET status = ?, status_message = ?, provisioning_data = ?, last_processed_at = ?,
		deleted = ?, deleted_at = ? WHERE id = ? AND lease_token = ?`,
		v.Status, v.StatusMessage, pd, s.timeArg(&n), v.Deleted, s.timeArg(v.DeletedAt), l.ID, l.Token)
}

// AddVolumeAttachment records that a volume is attached to an instance (again: the data is updated).
func (s *Store) AddVolumeAttachment(ctx context.Context, a models.VolumeAttachment) error {
	var data any
	if a.Data != nil {
		b, _ := json.Marshal(a.Data)
		data = string(b)
	}
	_, err := s.exec(ctx, `INSERT INTO volume_attachments (volume_id, instance_id, attachment_data) VALUES (?, ?, ?)
		ON CONFLICT (volume_id, instance_id) DO UPDATE SET attachment_data = excluded.attachment_data`, a.VolumeID, a.InstanceID, data)
	return err
}

// RemoveVolumeAttachment forgets an attachment; one that is not recorded is no error.
func (s *Store) RemoveVolumeAttachment(ctx context.Context, volumeID, instanceID string) error {
	_, err := s.exec(ctx, `DELETE FROM volume_attachments WHERE volume_id = ? AND instance_id = ?`, volumeID, instanceID)
	return err
}

// VolumeAttachments lists the attachments of a volume ("" for every volume) or of an instance ("" for
// every instance).
func (s *Store) VolumeAttachments(ctx context.Context, volumeID, instanceID string) ([]models.VolumeAttachment, error) {
	rows, err := s.query(ctx, `SELECT volume_id, instance_id, attachment_data FROM volume_attachments
		WHERE (? = '' OR volume_id = ?) AND (? = '' OR instance_id = ?) ORDER BY volume_id, instance_id`,
		volumeID, volumeID, instanceID, instanceID)
	return collect(rows, err, func(r scanner) (models.VolumeAttachment, error) {
		var a models.VolumeAttachment
		var data sql.NullString
		if err := r.Scan(&a.VolumeID, &a.InstanceID, &data); err != nil {
			return a, err
		}
		if data.Valid {
			a.Data = &backends.VolumeAttachmentData{}
			if err := json.Unmarshal([]byte(data.String), a.Data); err != nil {
				return a, fmt.Errorf("volume attachment %s/%s: %w", a.VolumeID, a.InstanceID, err)
			}
		}
		return a, nil
	})
}

func scanVolume(row scanner) (*models.Volume, error) {
	var (
		v                     models.Volume
		conf                  string
		pd                    sql.NullString
		created, processed, d dbTime
	)
	if err := row.Scan(&v.ID, &v.ProjectID, &v.UserID, &v.Name, &conf, &v.External, &v.Status, &v.StatusMessage, &pd,
		&created, &processed, &v.Deleted, &d, &v.DeleteRequested); err != nil {
		return nil, err
	}
	v.CreatedAt, v.LastProcessedAt, v.DeletedAt = created.t, processed.t, d.ptr()
	if err := json.Unmarshal([]byte(conf), &v.Configuration); err != nil {
		return nil, fmt.Errorf("volume %s: configuration: %w", v.ID, err)
	}
	if pd.Valid {
		v.PD = &backends.VolumeProvisioningData{}
		if err := json.Unmarshal([]byte(pd.String), v.PD); err != nil {
			return nil, fmt.Errorf("volume %s: provisioning data: %w", v.ID, err)
		}
	}
	return &v, nil
}
