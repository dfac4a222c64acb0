// Package fleets adds on-prem hosts to SSH fleets and keeps them: it provisions each host over SSH
// (checks, uploads and starts dstack-shim, reads the host's resources), checks the health of
// provisioned hosts, and terminates instances and fleets. It also brings up, watches and
// terminates the machines backends create for jobs (cloud.go), and reconciles the machines at the
// providers with the database (orphans.go). Its Process* functions run in the instances and fleets
// pipelines (package pipeline); all host access goes through sshpool.
package fleets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/sshpool"
	"github.com/dstackgo/dstack/internal/store"
)

// Service provisions and watches the instances of SSH fleets.
type Service struct {
	Store  *store.Store
	Pool   *sshpool.Pool
	Agents Agents
	Log    *slog.Logger
	// Wake wakes the pipeline of a table (to hand work on at once).
	Wake func(table string)

	// ProvisioningTimeout is how long a host may take to become idle before its instance is
	// terminated (default 10 min, as dstack).
	ProvisioningTimeout time.Duration
	// HealthInterval is how often idle and busy hosts are checked (default 15s).
	HealthInterval time.Duration
	// ShimWait is how long one provisioning pass waits for the shim to answer (default 30s).
	ShimWait time.Duration

	// Compute returns the machine operations of a project's backend, for cloud instances; an error
	// wrapping ErrNoBackend means the project no longer has it.
	Compute func(ctx context.Context, projectID, backend string) (backends.Compute, error)
	// CloudTimeouts override CloudProvisioningTimeout per backend type.
	CloudTimeouts map[string]time.Duration
	// TerminateRetry is how soon a failed termination call is tried again (default 10s).
	TerminateRetry time.Duration
	// TerminationDeadline is how long a provisioned instance may stay unreachable before a cloud
	// instance is terminated (default DefaultTerminationDeadline); an SSH-fleet host is only marked
	// unreachable, for ever if need be, and goes back to use once it answers again.
	TerminationDeadline time.Duration
	// Nodes configure how the machines of cloud fleets (`nodes`) are made (see nodes.go).
	Nodes NodeOptions
	// CloudInitGrace is how long a reachable VM's cloud-init has to start dstack-shim before the
	// server installs it over SSH itself, as on SSH fleet hosts (default DefaultCloudInitGrace). A
	// machine whose cloud-init failed (no route to the shim's URL, an image without cloud-init)
	// thus still comes up.
	CloudInitGrace time.Duration
}

// DefaultCloudInitGrace is how long cloud-init has to start dstack-shim on a reachable VM.
const DefaultCloudInitGrace = 3 * time.Minute

func (s *Service) cloudInitGrace() time.Duration {
	if s.CloudInitGrace > 0 {
		return s.CloudInitGrace
	}
	return DefaultCloudInitGrace
}

// DefaultTerminationDeadline is how long an instance may be unreachable before its job fails and a
// cloud instance is terminated (dstack's 20 minutes; DSTACK_SERVER_INSTANCE_TERMINATION_DEADLINE_SECONDS).
const DefaultTerminationDeadline = 20 * time.Minute

func (s *Service) terminationDeadline() time.Duration {
	if s.TerminationDeadline > 0 {
		return s.TerminationDeadline
	}
	return DefaultTerminationDeadline
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

func (s *Service) provisioningTimeout() time.Duration {
	if s.ProvisioningTimeout > 0 {
		return s.ProvisioningTimeout
	}
	return 10 * time.Minute
}

func (s *Service) healthInterval() time.Duration {
	if s.HealthInterval > 0 {
		return s.HealthInterval
	}
	return 15 * time.Second
}

func (s *Service) shimWait() time.Duration {
	if s.ShimWait > 0 {
		return s.ShimWait
	}
	return 30 * time.Second
}

// Target is how the server reaches an instance over SSH (nil for instances without SSH access
// information).
func Target(inst *models.Instance) *sshpool.Target {
	r := inst.Remote
	if r == nil {
		return nil
	}
	t := &sshpool.Target{User: r.User, Host: r.Host, Port: r.Port, PrivateKey: r.PrivateKey, HostKey: inst.HostKey}
	if p := r.ProxyJump; p != nil {
		t.Proxy = &sshpool.Target{User: p.User, Host: p.Host, Port: p.Port, PrivateKey: p.PrivateKey}
	}
	return t
}

// Agents finds the dstack-shim, dstack-runner and dstack-gateway binaries the server hands to hosts.
//
// A binary for linux/ARCH is DIR/NAME-linux-ARCH, or DIR/NAME when ARCH is the server's own
// architecture. The directories searched are Dir (DSTACK_AGENTS_DIR) and the one holding the server's
// executable, so a release that ships the four binaries side by side needs no setting.
type Agents struct {
	Dir string
}

// Agent names.
const (
	ShimBinary    = "dstack-shim"
	RunnerBinary  = "dstack-runner"
	GatewayBinary = "dstack-gateway"
)

// ErrNoAgent is a binary that is not available for the architecture.
var ErrNoAgent = errors.New("agent binary not found")

// Path returns the binary of agent name (ShimBinary or RunnerBinary) for linux/arch.
func (a Agents) Path(name, arch string) (string, error) {
	if name != ShimBinary && name != RunnerBinary && name != GatewayBinary {
		return "", fmt.Errorf("%s: %w", name, ErrNoAgent)
	}
	var dirs []string
	if a.Dir != "" {
		dirs = append(dirs, a.Dir)
	}
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Dir(exe))
	}
	for _, d := range dirs {
		candidates := []string{filepath.Join(d, name+"-linux-"+arch)}
		if runtime.GOOS == "linux" && arch == runtime.GOARCH {
			candidates = append(candidates, filepath.Join(d, name))
		}
		for _, p := range candidates {
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("%s for linux/%s (looked in %s; set DSTACK_AGENTS_DIR): %w", name, arch, strings.Join(dirs, ", "), ErrNoAgent)
}

// ProcessFleet keeps a cloud fleet's instances between nodes.min and nodes.max (nodes.go), and
// finishes the deletion of a fleet: it asks its instances to terminate and, once they have, deletes
// its placement groups and marks the fleet terminated and deleted.
func (s *Service) ProcessFleet(ctx context.Context, l store.Lease) (time.Duration, error) {
	f, err := s.Store.GetFleetByID(ctx, l.ID)
	if err != nil {
		return 0, err
	}
	if f.Deleted || f.Status == models.FleetTerminated {
		return 0, nil
	}
	if !f.DeleteRequested {
		// A fleet made for a run goes when its last instance has been terminated.
		if f.Spec.Autocreated {
			deleted, err := s.Store.DeleteFleetIfEmpty(ctx, l)
			if deleted {
				s.log().Info("fleet deleted: its last instance is terminated", "fleet", f.Name)
			}
			return 0, err
		}
		return s.maintainNodes(ctx, l, f)
	}
	insts, err := s.Store.ListInstances(ctx, store.InstanceFilter{FleetIDs: []string{f.ID}})
	if err != nil {
		return 0, err
	}
	var pending []string
	for _, inst := range insts {
		if inst.Status != models.InstanceTerminated {
			pending = append(pending, inst.ID)
		}
	}
	if len(pending) == 0 {
		if ok, err := s.releaseGroups(ctx, l, f); !ok {
			return 30 * time.Second, err
		}
		if err := s.Store.SetFleetStatus(ctx, l, models.FleetTerminated, "", true); err != nil {
			return 0, err
		}
		s.log().Info("fleet deleted", "fleet", f.Name)
		return 0, nil
	}
	if f.Status != models.FleetTerminating {
		if err := s.Store.SetFleetStatus(ctx, l, models.FleetTerminating, "", false); err != nil {
			return 0, err
		}
	}
	if err := s.Store.RequestInstanceTermination(ctx, pending); err != nil {
		return 0, err
	}
	s.wake(store.TableInstances)
	// Instances wake the fleet when they are terminated; this is a fallback.
	return 10 * time.Second, nil
}
