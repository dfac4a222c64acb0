package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/dstackgo/dstack/internal/models"
)

const instanceCols = `id, project_id, fleet_id, name, instance_num, status, unreachable, unreachable_since,
	termination_reason, termination_reason_message, status_message, created_at, finished_at, backend, region,
	price, hostname, instance_type, job_provisioning_data, remote, host_key, total_blocks, busy_blocks, job_id,
	idle_since, terminate_requested, deleted`

// CreateInstance inserts inst, due for processing at once.
func (s *Store) CreateInstance(ctx context.Context, inst *models.Instance) error {
	if inst.ID == "" {
		inst.ID = uuid.NewString()
	}
	inst.CreatedAt = stamp(inst.CreatedAt)
	itype, err := json.Marshal(inst.InstanceType)
	if err != nil {
		return err
	}
	jpd, err := jsonOrNull(inst.JPD)
	if err != nil {
		return err
	}
	remote, err := s.encryptJSON(inst.Remote)
	if err != nil {
		return err
	}
	n := now()
	_, err = s.exec(ctx, `INSERT INTO instances (`+instanceCols+`, due_at) VALUES
		(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		inst.ID, inst.ProjectID, emptyNull(inst.FleetID), inst.Name, inst.InstanceNum, inst.Status, inst.Unreachable,
		s.timeArg(inst.UnreachableSince), inst.TerminationReason, inst.TerminationReasonMessage, inst.StatusMessage,
		s.timeArg(&inst.CreatedAt), s.timeArg(inst.FinishedAt), inst.Backend, inst.Region, inst.Price, inst.Hostname,
		string(itype), jpd, remote, inst.HostKey, inst.TotalBlocks, inst.BusyBlocks, inst.JobID, s.timeArg(inst.IdleSince),
		inst.TerminateRequested, inst.Deleted, s.timeArg(&n))
	if err != nil {
		return fmt.Errorf("create instance %s: %w", inst.Name, err)
	}
	return nil
}

// GetInstance finds an instance by id.
func (s *Store) GetInstance(ctx context.Context, id string) (*models.Instance, error) {
	inst, err := s.scanInstance(s.queryRow(ctx, `SELECT `+instanceCols+` FROM instances WHERE id = ?`, id))
	return inst, notFound(err, fmt.Sprintf("instance %q", id))
}

// InstanceFilter selects instances.
type InstanceFilter struct {
	ProjectIDs []string // nil: every project
	FleetIDs   []string // nil: every fleet
	Statuses   []string // nil: every status
	OnlyActive bool
	Page
}

// ListInstances returns the instances matching f.
func (s *Store) ListInstances(ctx context.Context, f InstanceFilter) ([]*models.Instance, error) {
	var where []string
	var args []any
	for _, in := range []struct {
		col  string
		vals []string
	}{{"project_id", f.ProjectIDs}, {"fleet_id", f.FleetIDs}, {"status", f.Statuses}} {
		if in.vals == nil {
			continue
		}
		if len(in.vals) == 0 {
			return nil, nil
		}
		where = append(where, in.col+" IN ("+placeholders(len(in.vals))+")")
		args = append(args, stringArgs(in.vals)...)
	}
	if f.OnlyActive {
		where = append(where, "status NOT IN ('terminating', 'terminated')")
	}
	q, args := f.Page.apply(s, "created_at", where, args)
	rows, err := s.query(ctx, `SELECT `+instanceCols+` FROM instances`+q, args...)
	return collect(rows, err, s.scanInstance)
}

// RequestInstanceTermination marks instances for termination and wakes them; their pipeline
// terminates them once they are not busy.
func (s *Store) RequestInstanceTermination(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	n := now()
	_, err := s.exec(ctx, `UPDATE instances SET terminate_requested = TRUE, due_at = ?
		WHERE status NOT IN ('terminated') AND id IN (`+placeholders(len(ids))+`)`,
		append([]any{s.timeArg(&n)}, stringArgs(ids)...)...)
	return err
}

// SetInstanceHostKey stores the host key trusted on first use.
func (s *Store) SetInstanceHostKey(ctx context.Context, id, key string) error {
	_, err := s.exec(ctx, `UPDATE instances SET host_key = ? WHERE id = ? AND host_key = ''`, key, id)
	return err
}

// SetInstanceProvisioning records progress (or the last failure, in message) of a pending or
// provisioning instance.
func (s *Store) SetInstanceProvisioning(ctx context.Context, l Lease, status, message string) error {
	return s.guarded(ctx, l, `UPDATE instances SET status = ?, status_message = ?
		WHERE id = ? AND lease_token = ? AND status IN ('pending', 'provisioning')`, status, message, l.ID, l.Token)
}

// SetInstanceReady turns a provisioned instance idle with what was found on the host.
func (s *Store) SetInstanceReady(ctx context.Context, l Lease, itype models.InstanceType, jpd *models.JobProvisioningData, totalBlocks int) error {
	it, err := json.Marshal(itype)
	if err != nil {
		return err
	}
	j, err := jsonOrNull(jpd)
	if err != nil {
		return err
	}
	n := now()
	// A cloud instance created for a job goes to that job (busy); any other becomes idle.
	return s.guarded(ctx, l, `UPDATE instances SET status = CASE WHEN job_id <> '' THEN 'busy' ELSE 'idle' END,
		status_message = '', instance_type = ?, job_provisioning_data = ?, total_blocks = ?,
		busy_blocks = CASE WHEN job_id <> '' THEN ? ELSE 0 END, idle_since = ?, unreachable = FALSE, unreachable_since = NULL
		WHERE id = ? AND lease_token = ? AND status IN ('pending', 'provisioning')`,
		string(it), j, totalBlocks, totalBlocks, s.timeArg(&n), l.ID, l.Token)
}

// SetInstanceAddress records what a cloud instance's provider says about it now (its provisioning
// data, with the address once it has one) and how the server reaches it over SSH (nil: not yet).
func (s *Store) SetInstanceAddress(ctx context.Context, l Lease, jpd *models.JobProvisioningData, remote *models.RemoteConnectionInfo, message string) error {
	j, err := jsonOrNull(jpd)
	if err != nil {
		return err
	}
	r, err := s.encryptJSON(remote)
	if err != nil {
		return err
	}
	host := ""
	if jpd != nil && jpd.Hostname != nil {
		host = *jpd.Hostname
	}
	return s.guarded(ctx, l, `UPDATE instances SET job_provisioning_data = ?, remote = ?, hostname = ?, status_message = ?
		WHERE id = ? AND lease_token = ? AND status IN ('pending', 'provisioning')`, j, r, host, message, l.ID, l.Token)
}

// SetInstanceMessage records why a leased instance is stuck (a failed termination call, say).
func (s *Store) SetInstanceMessage(ctx context.Context, l Lease, message string) error {
	return s.guarded(ctx, l, `UPDATE instances SET status_message = ? WHERE id = ? AND lease_token = ?`, message, l.ID, l.Token)
}

// SetInstanceHealth records whether a provisioned instance answers; since is when it stopped
// answering (nil when reachable).
func (s *Store) SetInstanceHealth(ctx context.Context, l Lease, unreachable bool, since *time.Time, message string) error {
	return s.guarded(ctx, l, `UPDATE instances SET unreachable = ?, unreachable_since = ?, status_message = ?
		WHERE id = ? AND lease_token = ?`, unreachable, s.timeArg(since), message, l.ID, l.Token)
}

// StartInstanceTermination moves an instance that is not busy to terminating. It reports false when
// the instance is busy (a job claimed it first).
func (s *Store) StartInstanceTermination(ctx context.Context, l Lease, reason, message string) (bool, error) {
	res, err := s.exec(ctx, `UPDATE instances SET status = 'terminating', termination_reason = ?, termination_reason_message = ?
		WHERE id = ? AND lease_token = ? AND status NOT IN ('busy', 'terminated')`, reason, message, l.ID, l.Token)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// FinishInstanceTermination moves a terminating instance to terminated.
func (s *Store) FinishInstanceTermination(ctx context.Context, l Lease) error {
	n := now()
	return s.guarded(ctx, l, `UPDATE instances SET status = 'terminated', finished_at = ?, busy_blocks = 0
		WHERE id = ? AND lease_token = ? AND status = 'terminating'`, s.timeArg(&n), l.ID, l.Token)
}

// ClaimInstance makes an idle, reachable instance busy with a job. It reports false when another job
// claimed it first or it is no longer usable.
func (s *Store) ClaimInstance(ctx context.Context, instanceID, jobID string) (bool, error) {
	res, err := s.exec(ctx, `UPDATE instances SET status = 'busy', busy_blocks = total_blocks, job_id = ?
		WHERE id = ? AND status = 'idle' AND NOT unreachable AND NOT terminate_requested`, jobID, instanceID)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// ReleaseInstance gives an instance back after its job (idempotent), and wakes it. A cloud instance
// still being provisioned for the job is detached from it: it becomes idle once it is up.
func (s *Store) ReleaseInstance(ctx context.Context, instanceID, jobID string) error {
	n := now()
	_, err := s.exec(ctx, `UPDATE instances SET status = CASE WHEN status = 'busy' THEN 'idle' ELSE status END,
		busy_blocks = 0, job_id = '', idle_since = ?, due_at = ?
		WHERE id = ? AND job_id = ? AND status IN ('busy', 'pending', 'provisioning')`, s.timeArg(&n), s.timeArg(&n), instanceID, jobID)
	return err
}

func (s *Store) scanInstance(row scanner) (*models.Instance, error) {
	var (
		inst                                             models.Instance
		fleetID, jpd                                     sql.NullString
		itype, remote                                    string
		unreachableSince, createdAt, finishedAt, idleSnc dbTime
	)
	err := row.Scan(&inst.ID, &inst.ProjectID, &fleetID, &inst.Name, &inst.InstanceNum, &inst.Status, &inst.Unreachable,
		&unreachableSince, &inst.TerminationReason, &inst.TerminationReasonMessage, &inst.StatusMessage, &createdAt,
		&finishedAt, &inst.Backend, &inst.Region, &inst.Price, &inst.Hostname, &itype, &jpd, &remote, &inst.HostKey,
		&inst.TotalBlocks, &inst.BusyBlocks, &inst.JobID, &idleSnc, &inst.TerminateRequested, &inst.Deleted)
	if err != nil {
		return nil, err
	}
	inst.FleetID = fleetID.String
	inst.UnreachableSince, inst.FinishedAt, inst.IdleSince = unreachableSince.ptr(), finishedAt.ptr(), idleSnc.ptr()
	inst.CreatedAt = createdAt.t
	if err := json.Unmarshal([]byte(itype), &inst.InstanceType); err != nil {
		return nil, fmt.Errorf("instance %s: instance_type: %w", inst.ID, err)
	}
	if jpd.Valid {
		inst.JPD = &models.JobProvisioningData{}
		if err := json.Unmarshal([]byte(jpd.String), inst.JPD); err != nil {
			return nil, fmt.Errorf("instance %s: job_provisioning_data: %w", inst.ID, err)
		}
	}
	if remote != "" {
		inst.Remote = &models.RemoteConnectionInfo{}
		if err := s.decryptJSON(remote, inst.Remote); err != nil {
			return nil, fmt.Errorf("instance %s: remote connection info: %w", inst.ID, err)
		}
	}
	return &inst, nil
}

// jsonOrNull encodes v, or gives NULL for a nil pointer.
func jsonOrNull[T any](v *T) (any, error) {
	if v == nil {
		return nil, nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return string(data), nil
}

func emptyNull(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// encryptJSON encodes v and encrypts it; nil gives "".
func (s *Store) encryptJSON(v any) (string, error) {
	if v == nil {
		return "", nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	if string(data) == "null" {
		return "", nil
	}
	return s.encrypt(string(data))
}

func (s *Store) decryptJSON(cipher string, v any) error {
	plain, err := s.kr.Decrypt(cipher)
	if err != nil {
		return err
	}
	return json.Unmarshal([]byte(plain), v)
}

// ClaimInstanceBlocks gives k blocks of an instance split into blocks to a job: the instance is
// busy while any block is. It reports false when fewer than k blocks are free or the instance is no
// longer usable. Such an instance has no job_id: its jobs point to it.
func (s *Store) ClaimInstanceBlocks(ctx context.Context, instanceID string, k int) (bool, error) {
	res, err := s.exec(ctx, `UPDATE instances SET status = 'busy', busy_blocks = busy_blocks + ?
		WHERE id = ? AND status IN ('idle', 'busy') AND total_blocks > 1 AND busy_blocks + ? <= total_blocks
		AND NOT unreachable AND NOT terminate_requested`, k, instanceID, k)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// ReleaseInstanceBlocks gives back k blocks of an instance split into blocks, and wakes it; the
// instance is idle once no block is busy. Call it in the transaction that records the job's end,
// so that it happens once.
func (s *Store) ReleaseInstanceBlocks(ctx context.Context, instanceID string, k int) error {
	n := now()
	_, err := s.exec(ctx, `UPDATE instances SET
		status = CASE WHEN status = 'busy' AND busy_blocks <= ? THEN 'idle' ELSE status END,
		idle_since = CASE WHEN busy_blocks <= ? THEN ? ELSE idle_since END,
		busy_blocks = CASE WHEN busy_blocks > ? THEN busy_blocks - ? ELSE 0 END, due_at = ?
		WHERE id = ? AND total_blocks > 1`, k, k, s.timeArg(&n), k, k, s.timeArg(&n), instanceID)
	return err
}
