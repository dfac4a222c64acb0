package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"

	"github.com/dstackgo/dstack/internal/models"
)

const jobCols = `id, run_id, project_id, run_name, job_num, replica_num, submission_num, job_name, job_spec, status,
	status_message, termination_reason, termination_reason_message, exit_status, submitted_at, last_processed_at,
	finished_at, started_at, instance_id, job_provisioning_data, job_runtime_data, runner_timestamp, stop_reason, error`

// CreateJob inserts a job submission, due at once.
func (s *Store) CreateJob(ctx context.Context, j *models.Job) error {
	if j.ID == "" {
		j.ID = uuid.NewString()
	}
	j.SubmittedAt = stamp(j.SubmittedAt)
	j.LastProcessedAt = j.SubmittedAt
	spec, err := json.Marshal(j.Spec)
	if err != nil {
		return err
	}
	jpd, err := jsonOrNull(j.JPD)
	if err != nil {
		return err
	}
	jrd, err := jsonOrNull(j.JRD)
	if err != nil {
		return err
	}
	_, err = s.exec(ctx, `INSERT INTO jobs (`+jobCols+`, due_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		j.ID, j.RunID, j.ProjectID, j.RunName, j.JobNum, j.ReplicaNum, j.SubmissionNum, j.JobName, string(spec), j.Status,
		j.StatusMessage, j.TerminationReason, j.TerminationReasonMessage, j.ExitStatus, s.timeArg(&j.SubmittedAt),
		s.timeArg(&j.LastProcessedAt), s.timeArg(j.FinishedAt), s.timeArg(j.StartedAt), j.InstanceID, jpd, jrd,
		j.RunnerTimestamp, j.StopReason, j.Error, s.timeArg(&j.SubmittedAt))
	if err != nil {
		return fmt.Errorf("create job %s: %w", j.JobName, err)
	}
	return nil
}

// GetJob finds a job submission by id.
func (s *Store) GetJob(ctx context.Context, id string) (*models.Job, error) {
	j, err := scanJob(s.queryRow(ctx, `SELECT `+jobCols+` FROM jobs WHERE id = ?`, id))
	return j, notFound(err, fmt.Sprintf("job submission %q", id))
}

// ListJobs returns the job submissions of the runs, by run, replica, job and submission number.
func (s *Store) ListJobs(ctx context.Context, runIDs ...string) ([]*models.Job, error) {
	if len(runIDs) == 0 {
		return nil, nil
	}
	rows, err := s.query(ctx, `SELECT `+jobCols+` FROM jobs WHERE run_id IN (`+placeholders(len(runIDs))+`)
		ORDER BY run_id, replica_num, job_num, submission_num`, stringArgs(runIDs)...)
	return collect(rows, err, scanJob)
}

// UpdateJobState writes what the job pipeline decided (everything but the spec and stop requests).
func (s *Store) UpdateJobState(ctx context.Context, l Lease, j *models.Job) error {
	j.LastProcessedAt = now()
	jpd, err := jsonOrNull(j.JPD)
	if err != nil {
		return err
	}
	jrd, err := jsonOrNull(j.JRD)
	if err != nil {
		return err
	}
	return s.guarded(ctx, l, `UPDATE jobs SET status = ?, status_message = ?, termination_reason = ?,
		termination_reason_message = ?, exit_status = ?, last_processed_at = ?, finished_at = ?, started_at = ?,
		instance_id = ?, job_provisioning_data = ?, job_runtime_data = ?, runner_timestamp = ?, error = ?
		WHERE id = ? AND lease_token = ?`,
		j.Status, j.StatusMessage, j.TerminationReason, j.TerminationReasonMessage, j.ExitStatus,
		s.timeArg(&j.LastProcessedAt), s.timeArg(j.FinishedAt), s.timeArg(j.StartedAt), j.InstanceID, jpd, jrd,
		j.RunnerTimestamp, j.Error, l.ID, l.Token)
}

// RequestJobStop asks the job pipeline to terminate the unfinished jobs among ids with reason (a
// JobTerminationReason), and wakes them. An abort overrides an earlier graceful request.
func (s *Store) RequestJobStop(ctx context.Context, ids []string, reason string) error {
	if len(ids) == 0 {
		return nil
	}
	n := now()
	cond := "stop_reason = ''"
	args := []any{reason, s.timeArg(&n)}
	if reason == models.JobAbortedByUser {
		cond = "stop_reason <> ?"
		args = append(args, reason)
	}
	_, err := s.exec(ctx, `UPDATE jobs SET stop_reason = ?, due_at = ? WHERE `+cond+`
		AND status NOT IN ('terminated', 'aborted', 'failed', 'done') AND id IN (`+placeholders(len(ids))+`)`,
		append(args, stringArgs(ids)...)...)
	return err
}

func scanJob(row scanner) (*models.Job, error) {
	var (
		j                                       models.Job
		spec                                    string
		jpd, jrd                                sql.NullString
		exit                                    sql.NullInt64
		submitted, processed, finished, started dbTime
	)
	err := row.Scan(&j.ID, &j.RunID, &j.ProjectID, &j.RunName, &j.JobNum, &j.ReplicaNum, &j.SubmissionNum, &j.JobName,
		&spec, &j.Status, &j.StatusMessage, &j.TerminationReason, &j.TerminationReasonMessage, &exit, &submitted,
		&processed, &finished, &started, &j.InstanceID, &jpd, &jrd, &j.RunnerTimestamp, &j.StopReason, &j.Error)
	if err != nil {
		return nil, err
	}
	j.SubmittedAt, j.LastProcessedAt, j.FinishedAt, j.StartedAt = submitted.t, processed.t, finished.ptr(), started.ptr()
	if exit.Valid {
		e := int(exit.Int64)
		j.ExitStatus = &e
	}
	if err := json.Unmarshal([]byte(spec), &j.Spec); err != nil {
		return nil, fmt.Errorf("job %s: job_spec: %w", j.ID, err)
	}
	if jpd.Valid {
		j.JPD = &models.JobProvisioningData{}
		if err := json.Unmarshal([]byte(jpd.String), j.JPD); err != nil {
			return nil, fmt.Errorf("job %s: job_provisioning_data: %w", j.ID, err)
		}
	}
	if jrd.Valid {
		j.JRD = &models.JobRuntimeData{}
		if err := json.Unmarshal([]byte(jrd.String), j.JRD); err != nil {
			return nil, fmt.Errorf("job %s: job_runtime_data: %w", j.ID, err)
		}
	}
	return &j, nil
}

// WakeWaitingJobs makes the project's submitted jobs due now (an instance became free for them).
func (s *Store) WakeWaitingJobs(ctx context.Context, projectID string) error {
	n := now()
	_, err := s.exec(ctx, `UPDATE jobs SET due_at = ? WHERE project_id = ? AND status = 'submitted' AND (due_at IS NULL OR due_at > ?)`,
		s.timeArg(&n), projectID, s.timeArg(&n))
	return err
}
