// Package runs drives runs and their jobs through dstack's lifecycle (dstack-spec §5.4, §7.4): a
// submitted job gets an idle instance that fits, or a machine a backend creates from the offers
// (provision.go, dstack-spec §5.6), its container is started by the instance's shim (or, on a
// container backend, its own container runs the runner),
// the runner in it is given the job, the job's logs and states are pulled into the log store, and the
// job ends done, failed, terminated or aborted, giving its instance back. Runs follow their jobs and
// honour stop, abort and retry.
//
// ProcessJob and ProcessRun run in the jobs and runs pipelines (package pipeline); all access to a
// host goes through sshpool, with agentapi's clients for the shim and the runner.
package runs

import (
	"context"
	"log/slog"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/fleets"
	"github.com/dstackgo/dstack/internal/logstore"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/offers"
	"github.com/dstackgo/dstack/internal/sshpool"
	"github.com/dstackgo/dstack/internal/store"
)

// Service runs the job and run pipelines' work.
type Service struct {
	Store *store.Store
	Pool  *sshpool.Pool
	Logs  *logstore.Store
	Log   *slog.Logger
	// Wake wakes the pipeline of a table.
	Wake func(table string)
	// DefaultImage is the image of configurations without one (default DefaultImage).
	DefaultImage string
	// UnreachableGrace is how long a running job's instance may stay unreachable before the job
	// fails with instance_unreachable (default fleets.DefaultTerminationDeadline, 20 min).
	UnreachableGrace time.Duration

	// Offers returns the offers of a project's backends to try for a job, in order: available
	// ones, cheapest first, at most limit; explanation says why there are none. Nil: jobs only use
	// fleet instances.
	Offers func(ctx context.Context, projectID string, q offers.Query, limit int) (list []offers.Offer, explanation string, err error)
	// Compute returns the machine operations of a project's backend.
	Compute func(ctx context.Context, projectID, backend string) (backends.Compute, error)
	// Capacity remembers capacity refusals (shared with the plans, which show them not_available).
	Capacity *CapacityMemory
	// MaxOffersTried is how many offers a job tries (default DefaultMaxOffersTried).
	MaxOffersTried int
	// ServerID marks the machines this server creates (see store.ServerID).
	ServerID string
	// ShimURL, when set, is where machines of an architecture (amd64, arm64) download dstack-shim.
	ShimURL func(arch string) string
	// ReplicasChanged, when set, is told when a job of a service run starts running or ends, so that
	// the gateways in front of the service route to its replicas at once.
	ReplicasChanged func(ctx context.Context, run *models.Run)
	// MetricsInterval is how often a running job's runner metrics are sampled (default
	// DefaultMetricsInterval); MetricsTTL is how long samples are kept (default DefaultMetricsTTL).
	MetricsInterval, MetricsTTL time.Duration

	metrics metricsClock
}

func (s *Service) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func (s *Service) wake(table string) {
	if s.Wake != nil {
		s.Wake(table)
	}
}

// wakeRow makes a row due now and wakes its pipeline.
func (s *Service) wakeRow(ctx context.Context, table, id string) {
	if id == "" {
		return
	}
	if err := s.Store.WakeRow(ctx, table, id); err != nil {
		s.log().Warn("cannot wake row", "table", table, "id", id, "err", err)
	}
	s.wake(table)
}

// Image is the image for configurations without one.
func (s *Service) Image() string {
	if s.DefaultImage != "" {
		return s.DefaultImage
	}
	return DefaultImage
}

func (s *Service) unreachableGrace() time.Duration {
	if s.UnreachableGrace > 0 {
		return s.UnreachableGrace
	}
	return fleets.DefaultTerminationDeadline
}
