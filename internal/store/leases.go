package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Tables whose rows are processed by background pipelines under leases.
const (
	TableFleets    = "fleets"
	TableInstances = "instances"
	TableRuns      = "runs"
	TableJobs      = "jobs"
	TableVolumes   = "volumes"
	TableGateways  = "gateways"
)

// ErrLeaseLost is a guarded write by a replica whose lease on the row has expired and been taken.
var ErrLeaseLost = errors.New("lease lost")

// Lease is a replica's claim on one row until its expiry. Writes of the row's state are guarded by
// Token, so a replica that lost its lease (it stalled past the expiry and another one took over)
// cannot overwrite the newer owner's work.
type Lease struct {
	Table string
	ID    string
	Token string
}

func checkTable(t string) {
	switch t {
	case TableFleets, TableInstances, TableRuns, TableJobs, TableVolumes, TableGateways:
	default:
		panic("store: not a leased table: " + t)
	}
}

// AcquireLeases claims up to limit rows of table that are due (due_at reached and not leased) or whose
// lease has expired (their holder died), for ttl, and clears their due_at: an event during processing
// sets it again (WakeRow), and ReleaseLease keeps the earlier of the two. On PostgreSQL concurrent
// replicas skip each other's locked rows; the outer condition is checked again after any wait, so a
// row is never claimed twice.
func (s *Store) AcquireLeases(ctx context.Context, table string, limit int, ttl time.Duration) ([]Lease, error) {
	checkTable(table)
	n := now()
	exp := n.Add(ttl)
	token := uuid.NewString()
	due := `((due_at IS NOT NULL AND due_at <= ? AND lease_token IS NULL) OR (lease_token IS NOT NULL AND lease_expiry < ?))`
	lock := ""
	if s.dialect == DialectPostgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	q := `UPDATE ` + table + ` SET lease_token = ?, lease_expiry = ?, due_at = NULL
		WHERE id IN (SELECT id FROM ` + table + ` WHERE ` + due + ` ORDER BY due_at LIMIT ?` + lock + `) AND ` + due + `
		RETURNING id`
	rows, err := s.query(ctx, q, token, s.timeArg(&exp), s.timeArg(&n), s.timeArg(&n), limit, s.timeArg(&n), s.timeArg(&n))
	ids, err := collect(rows, err, func(r scanner) (string, error) {
		var id string
		return id, r.Scan(&id)
	})
	if err != nil {
		return nil, fmt.Errorf("lease %s: %w", table, err)
	}
	out := make([]Lease, len(ids))
	for i, id := range ids {
		out[i] = Lease{Table: table, ID: id, Token: token}
	}
	return out, nil
}

// RenewLease extends a lease that is still held.
func (s *Store) RenewLease(ctx context.Context, l Lease, ttl time.Duration) error {
	exp := now().Add(ttl)
	return s.guarded(ctx, l, `UPDATE `+l.Table+` SET lease_expiry = ? WHERE id = ? AND lease_token = ?`, s.timeArg(&exp), l.ID, l.Token)
}

// ReleaseLease gives a row back. next is when it needs processing again (nil: only when an event
// wakes it); an earlier wake-up recorded during processing is kept.
func (s *Store) ReleaseLease(ctx context.Context, l Lease, next *time.Time) error {
	if next == nil {
		return s.guarded(ctx, l, `UPDATE `+l.Table+` SET lease_token = NULL, lease_expiry = NULL WHERE id = ? AND lease_token = ?`, l.ID, l.Token)
	}
	t := stamp(*next)
	return s.guarded(ctx, l, `UPDATE `+l.Table+` SET lease_token = NULL, lease_expiry = NULL,
		due_at = CASE WHEN due_at IS NOT NULL AND due_at < ? THEN due_at ELSE ? END WHERE id = ? AND lease_token = ?`,
		s.timeArg(&t), s.timeArg(&t), l.ID, l.Token)
}

// WakeRow makes a row due at once (or keeps an earlier due time). It does not touch the lease: a
// row being processed is processed again right after its release.
func (s *Store) WakeRow(ctx context.Context, table, id string) error {
	checkTable(table)
	n := now()
	_, err := s.exec(ctx, `UPDATE `+table+` SET due_at = ? WHERE id = ? AND (due_at IS NULL OR due_at > ?)`, s.timeArg(&n), id, s.timeArg(&n))
	return err
}

// NextDue is the earliest due_at of the table's unleased rows, or nil if none is scheduled.
func (s *Store) NextDue(ctx context.Context, table string) (*time.Time, error) {
	checkTable(table)
	var t dbTime
	err := s.queryRow(ctx, `SELECT MIN(due_at) FROM `+table+` WHERE due_at IS NOT NULL AND lease_token IS NULL`).Scan(&t)
	if err != nil {
		return nil, err
	}
	return t.ptr(), nil
}

// guarded runs a write that must hit the leased row; ErrLeaseLost if the lease is gone.
func (s *Store) guarded(ctx context.Context, l Lease, q string, args ...any) error {
	res, err := s.exec(ctx, q, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s %s: %w", l.Table, l.ID, ErrLeaseLost)
	}
	return nil
}

// Settled reports whether no row of the table is leased or due now: the background work on it has
// caught up (tests wait for this).
func (s *Store) Settled(ctx context.Context, table string) (bool, error) {
	checkTable(table)
	n := now()
	var count int
	err := s.queryRow(ctx, `SELECT COUNT(*) FROM `+table+` WHERE lease_token IS NOT NULL OR due_at <= ?`, s.timeArg(&n)).Scan(&count)
	return count == 0, err
}
