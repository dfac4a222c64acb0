package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/dstackgo/dstack/internal/models"
)

const runCols = `id, project_id, user_id, run_name, status, status_message, termination_reason, submitted_at,
	last_processed_at, run_spec, fleet_id, deployment_num, resubmit_at, error, stop_reason, deleted`

var finishedRun = `status IN ('terminated', 'failed', 'done')`

// CreateRun inserts a run and its first job submissions in one transaction, all due at once. A
// finished run of the same name is marked deleted (it stays listed), as dstack does when a name is
// reused; an active one is ErrExists.
func (s *Store) CreateRun(ctx context.Context, r *models.Run, jobs []*models.Job) error {
	spec, err := json.Marshal(r.Spec)
	if err != nil {
		return err
	}
	return s.WithTx(ctx, func(tx *Store) error {
		var active int
		if err := tx.queryRow(ctx, `SELECT COUNT(*) FROM runs WHERE project_id = ? AND run_name = ? AND NOT deleted AND NOT `+finishedRun,
			r.ProjectID, r.Name).Scan(&active); err != nil {
			return err
		}
		if active > 0 {
			return fmt.Errorf("run %q: %w", r.Name, ErrExists)
		}
		if _, err := tx.exec(ctx, `UPDATE runs SET deleted = TRUE WHERE project_id = ? AND run_name = ? AND NOT deleted`, r.ProjectID, r.Name); err != nil {
			return err
		}
		if r.ID == "" {
			r.ID = uuid.NewString()
		}
		r.SubmittedAt = stamp(r.SubmittedAt)
		r.LastProcessedAt = r.SubmittedAt
		_, err := tx.exec(ctx, `INSERT INTO runs (`+runCols+`, due_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.ID, r.ProjectID, r.UserID, r.Name, r.Status, r.StatusMessage, r.TerminationReason, tx.timeArg(&r.SubmittedAt),
			tx.timeArg(&r.LastProcessedAt), string(spec), r.FleetID, r.DeploymentNum, tx.timeArg(r.ResubmitAt), r.Error,
			r.StopReason, r.Deleted, tx.timeArg(&r.SubmittedAt))
		if err != nil {
			return fmt.Errorf("create run %q: %w", r.Name, err)
		}
		for _, j := range jobs {
			j.RunID, j.ProjectID, j.RunName = r.ID, r.ProjectID, r.Name
			if err := tx.CreateJob(ctx, j); err != nil {
				return err
			}
		}
		return nil
	})
}

// GetRun finds the project's non-deleted run of that name.
func (s *Store) GetRun(ctx context.Context, projectID, name string) (*models.Run, error) {
	r, err := scanRun(s.queryRow(ctx, `SELECT `+runCols+` FROM runs WHERE project_id = ? AND run_name = ? AND NOT deleted
		ORDER BY submitted_at DESC LIMIT 1`, projectID, name))
	return r, notFound(err, fmt.Sprintf("run %q", name))
}

// GetRunByID finds a run by id, deleted ones included.
func (s *Store) GetRunByID(ctx context.Context, id string) (*models.Run, error) {
	r, err := scanRun(s.queryRow(ctx, `SELECT `+runCols+` FROM runs WHERE id = ?`, id))
	return r, notFound(err, fmt.Sprintf("run with id %q", id))
}

// RunFilter selects runs (a keyset page by submission time).
type RunFilter struct {
	ProjectIDs []string // nil: every project
	UserID     string
	RepoID     string
	OnlyActive bool
	Page
}

// ListRuns returns the runs matching f, deleted ones included (the API shows them as deleted).
func (s *Store) ListRuns(ctx context.Context, f RunFilter) ([]*models.Run, error) {
	var where []string
	var args []any
	if f.ProjectIDs != nil {
		if len(f.ProjectIDs) == 0 {
			return nil, nil
		}
		where = append(where, "project_id IN ("+placeholders(len(f.ProjectIDs))+")")
		args = append(args, stringArgs(f.ProjectIDs)...)
	}
	if f.UserID != "" {
		where = append(where, "user_id = ?")
		args = append(args, f.UserID)
	}
	if f.OnlyActive {
		where = append(where, "NOT "+finishedRun)
	}
	q, args := f.Page.apply(s, "submitted_at", where, args)
	rows, err := s.query(ctx, `SELECT `+runCols+` FROM runs`+q, args...)
	runs, err := collect(rows, err, scanRun)
	if err != nil || f.RepoID == "" {
		return runs, err
	}
	var out []*models.Run
	for _, r := range runs {
		if r.Spec.RepoID != nil && *r.Spec.RepoID == f.RepoID {
			out = append(out, r)
		}
	}
	return out, nil
}

// RequestRunStop asks the pipeline to stop the active runs among ids with reason, and wakes them.
// A run already stopping keeps its first reason, except that an abort overrides a graceful stop.
func (s *Store) RequestRunStop(ctx context.Context, ids []string, reason string) error {
	if len(ids) == 0 {
		return nil
	}
	n := now()
	cond := "stop_reason = ''"
	if reason == models.RunAbortedByUser {
		cond = "stop_reason <> ?"
	}
	args := []any{reason, s.timeArg(&n)}
	if reason == models.RunAbortedByUser {
		args = append(args, reason)
	}
	_, err := s.exec(ctx, `UPDATE runs SET stop_reason = ?, due_at = ? WHERE `+cond+` AND NOT `+finishedRun+
		` AND id IN (`+placeholders(len(ids))+`)`, append(args, stringArgs(ids)...)...)
	return err
}

// DeleteRuns marks the project's finished runs of those names deleted. Unknown names are ignored;
// if any named run is active, nothing is deleted and its name is returned.
func (s *Store) DeleteRuns(ctx context.Context, projectID string, names []string) (active []string, err error) {
	if len(names) == 0 {
		return nil, nil
	}
	err = s.WithTx(ctx, func(tx *Store) error {
		rows, err := tx.query(ctx, `SELECT run_name FROM runs WHERE project_id = ? AND NOT deleted AND NOT `+finishedRun+
			` AND run_name IN (`+placeholders(len(names))+`)`, append([]any{projectID}, stringArgs(names)...)...)
		active, err = collect(rows, err, func(r scanner) (string, error) {
			var n string
			return n, r.Scan(&n)
		})
		if err != nil || len(active) > 0 {
			return err
		}
		_, err = tx.exec(ctx, `UPDATE runs SET deleted = TRUE WHERE project_id = ? AND run_name IN (`+placeholders(len(names))+`)`,
			append([]any{projectID}, stringArgs(names)...)...)
		return err
	})
	return active, err
}

// UpdateRunState writes what the run pipeline decided.
func (s *Store) UpdateRunState(ctx context.Context, l Lease, r *models.Run) error {
	r.LastProcessedAt = now()
	return s.guarded(ctx, l, `UPDATE runs SET status = ?, status_message = ?, termination_reason = ?, last_processed_at = ?,
		fleet_id = ?, resubmit_at = ?, error = ? WHERE id = ? AND lease_token = ?`,
		r.Status, r.StatusMessage, r.TerminationReason, s.timeArg(&r.LastProcessedAt), r.FleetID, s.timeArg(r.ResubmitAt),
		r.Error, l.ID, l.Token)
}

// ResubmitJobs writes the run's state and inserts new job submissions, in one transaction.
func (s *Store) ResubmitJobs(ctx context.Context, l Lease, r *models.Run, jobs []*models.Job) error {
	return s.WithTx(ctx, func(tx *Store) error {
		if err := tx.UpdateRunState(ctx, l, r); err != nil {
			return err
		}
		for _, j := range jobs {
			j.RunID, j.ProjectID, j.RunName = r.ID, r.ProjectID, r.Name
			if err := tx.CreateJob(ctx, j); err != nil {
				return err
			}
		}
		return nil
	})
}

// SaveRepo stores a repo's description and (encrypted) credentials.
func (s *Store) SaveRepo(ctx context.Context, projectID, repoID string, info, creds []byte) error {
	c, err := s.encrypt(strings.TrimSpace(string(creds)))
	if err != nil {
		return err
	}
	_, err = s.exec(ctx, `INSERT INTO repos (project_id, repo_id, info, creds) VALUES (?, ?, ?, ?)
		ON CONFLICT (project_id, repo_id) DO UPDATE SET info = excluded.info, creds = excluded.creds`,
		projectID, repoID, string(info), c)
	return err
}

func scanRun(row scanner) (*models.Run, error) {
	var (
		r                                models.Run
		spec                             string
		submitted, processed, resubmitAt dbTime
	)
	err := row.Scan(&r.ID, &r.ProjectID, &r.UserID, &r.Name, &r.Status, &r.StatusMessage, &r.TerminationReason, &submitted,
		&processed, &spec, &r.FleetID, &r.DeploymentNum, &resubmitAt, &r.Error, &r.StopReason, &r.Deleted)
	if err != nil {
		return nil, err
	}
	r.SubmittedAt, r.LastProcessedAt, r.ResubmitAt = submitted.t, processed.t, resubmitAt.ptr()
	if err := json.Unmarshal([]byte(spec), &r.Spec); err != nil {
		return nil, fmt.Errorf("run %s: run_spec: %w", r.ID, err)
	}
	return &r, nil
}
