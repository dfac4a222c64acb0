// Package gateways runs the lifecycle of gateways (`type: gateway`), the machines in front of a
// project's services:
//
//   - submitted: the backend creates the machine (backends.GatewayCompute) → provisioning.
//   - provisioning: the backend reports the machine's address; the server reaches it over SSH with
//     the project's key, uploads dstack-gateway, starts it (systemd, or a supervised process where
//     there is none) and waits for its health → running. A machine not up within
//     ProvisioningTimeout fails the gateway and is terminated.
//   - running: every SyncInterval (and whenever a service's replica starts or ends, see WakeProject) the server sends the
//     gateway its whole routing state: each running service of the project that uses this gateway,
//     at <run>.<wildcard domain>, with its replicas' SSH coordinates, the project key to reach them,
//     and the token hashes of the project's members for services with auth. The gateway holds that
//     state in memory only, so a restarted gateway is whole again at the next sync.
//   - delete requested: TerminateGateway (idempotent) until it succeeds, then deleted.
//
// Each gateway row is processed under a lease by a pipeline (see package pipeline), so several
// server replicas never act on one gateway at once.
package gateways

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/fleets"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/sshpool"
	"github.com/dstackgo/dstack/internal/store"
)

// Service processes gateways.
type Service struct {
	Store  *store.Store
	Pool   *sshpool.Pool
	Agents fleets.Agents
	// Compute returns the machine operations of a project's backend.
	Compute func(ctx context.Context, projectID, backend string) (backends.Compute, error)
	// ServerID tags what this server creates, for the orphan reconciler.
	ServerID string
	// ShimURL, when set, is where machines of an architecture download dstack-shim (Kubernetes
	// gateway pods fetch dstack-runner beside it).
	ShimURL func(arch string) string
	Log     *slog.Logger
	// Poll is how often a provisioning gateway is looked at (default 2s).
	Poll time.Duration
	// SyncInterval is how often a running gateway gets its routes again (default 10s).
	SyncInterval time.Duration
	// ProvisioningTimeout is how long a machine may take to come up (default 10 min).
	ProvisioningTimeout time.Duration
}

// ErrNotSupported is a backend without gateways.
var ErrNotSupported = errors.New("the backend cannot host gateways")

// APIPort is where dstack-gateway's management API listens on the machine (loopback only).
const APIPort = 8000

// WakeProject makes the running gateways of a project due now, so that a service's new or ended
// replica is routed at once rather than at the next sync.
func (s *Service) WakeProject(ctx context.Context, projectID string) error {
	gws, err := s.Store.ListGateways(ctx, []string{projectID})
	if err != nil {
		return err
	}
	for _, g := range gws {
		if g.Status == models.GatewayRunning && !g.DeleteRequested {
			if err := s.Store.WakeRow(ctx, store.TableGateways, g.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

// GatewayCompute returns the gateway operations of the project's backend.
func (s *Service) GatewayCompute(ctx context.Context, projectID, backend string) (backends.GatewayCompute, error) {
	c, err := s.Compute(ctx, projectID, backend)
	if err != nil {
		return nil, err
	}
	gc, ok := c.(backends.GatewayCompute)
	if !ok {
		return nil, fmt.Errorf("%s: %w", backend, ErrNotSupported)
	}
	return gc, nil
}

// Process is the gateways pipeline's work on one leased gateway.
func (s *Service) Process(ctx context.Context, l store.Lease) (time.Duration, error) {
	g, err := s.Store.GetGatewayByID(ctx, l.ID)
	if err != nil {
		return 0, err
	}
	switch {
	case g.Deleted:
		return 0, nil
	case g.DeleteRequested:
		return s.terminate(ctx, l, g)
	case g.Status == models.GatewaySubmitted:
		return s.create(ctx, l, g)
	case g.Status == models.GatewayProvisioning:
		return s.provision(ctx, l, g)
	case g.Status == models.GatewayRunning:
		return s.sync(ctx, l, g)
	}
	return 0, nil
}

func (s *Service) create(ctx context.Context, l store.Lease, g *models.Gateway) (time.Duration, error) {
	project, err := s.Store.GetProjectByID(ctx, g.ProjectID)
	if err != nil {
		return 0, err
	}
	gc, err := s.GatewayCompute(ctx, g.ProjectID, g.Configuration.Backend)
	if err != nil {
		return 0, s.fail(ctx, l, g, err.Error())
	}
	c := g.Configuration
	cfg := backends.GatewayConfig{ProjectName: project.Name, Name: g.Name, Region: c.Region, PublicIP: c.PublicIP,
		ACMCertificateARN: c.ACMARN(), SSHPublicKeys: []string{project.SSHPublicKey},
		Tags: map[string]string{}}
	for k, v := range c.Tags {
		cfg.Tags[k] = v
	}
	// dstack's own tags last, so that the configuration cannot hide the gateway from the reconciler.
	cfg.Tags["dstack_project"], cfg.Tags["dstack_server"], cfg.Tags["dstack_gateway"] = project.Name, s.ServerID, g.ID
	if c.InstanceType != nil {
		cfg.InstanceType = *c.InstanceType
	}
	if s.ShimURL != nil {
		cfg.ShimURL = s.ShimURL("amd64")
	}
	pd, err := gc.CreateGateway(ctx, cfg)
	if err != nil {
		var ce *backends.CredentialsError
		if errors.As(err, &ce) || ctx.Err() != nil {
			return 0, err // retried: the backend may come back
		}
		return 0, s.fail(ctx, l, g, "cannot create the gateway machine: "+err.Error())
	}
	pd.Backend = c.Backend
	if pd.Region == "" {
		pd.Region = c.Region
	}
	g.PD, g.Status, g.StatusMessage = pd, models.GatewayProvisioning, ""
	if err := s.Store.SaveGatewayState(ctx, l, g); err != nil {
		if !errors.Is(err, store.ErrLeaseLost) {
			// Not recorded: do not leave a machine nobody knows of.
			_ = gc.TerminateGateway(context.WithoutCancel(ctx), *pd)
		}
		return 0, err
	}
	s.log().Info("gateway machine created", "gateway", g.Name, "backend", c.Backend, "instance_id", pd.InstanceID)
	return s.poll(), nil
}

// provision waits for the machine's address, then installs and starts dstack-gateway on it.
func (s *Service) provision(ctx context.Context, l store.Lease, g *models.Gateway) (time.Duration, error) {
	if time.Since(g.CreatedAt) > s.provisioningTimeout() {
		msg := fmt.Sprintf("the gateway machine did not come up in %v", s.provisioningTimeout())
		if g.StatusMessage != "" {
			msg += ": " + g.StatusMessage
		}
		return s.failAndTerminate(ctx, l, g, msg)
	}
	if g.PD.IPAddress == "" {
		gc, err := s.GatewayCompute(ctx, g.ProjectID, g.Configuration.Backend)
		if err != nil {
			return 0, s.fail(ctx, l, g, err.Error())
		}
		pd := *g.PD
		if err := gc.UpdateGateway(ctx, &pd); err != nil {
			var pe *backends.ProvisioningError
			if errors.As(err, &pe) {
				return s.failAndTerminate(ctx, l, g, err.Error())
			}
			return s.poll(), s.note(ctx, l, g, "waiting for the machine: "+err.Error())
		}
		if pd.IPAddress == "" {
			return s.poll(), nil
		}
		g.PD = &pd
		if err := s.Store.SaveGatewayState(ctx, l, g); err != nil {
			return 0, err
		}
	}
	t, err := s.target(ctx, g)
	if err != nil {
		return 0, err
	}
	if err := s.install(ctx, *t); err != nil {
		// The machine may still be booting (sshd not up yet): try again until the timeout.
		return s.poll(), s.note(ctx, l, g, err.Error())
	}
	g.HostKey = s.Pool.HostKey(*t)
	g.Status, g.StatusMessage = models.GatewayRunning, ""
	if err := s.Store.SaveGatewayState(ctx, l, g); err != nil {
		return 0, err
	}
	s.log().Info("gateway running", "gateway", g.Name, "ip", g.PD.IPAddress)
	return s.sync(ctx, l, g)
}

// sync sends the gateway its routes and records whether it answered.
func (s *Service) sync(ctx context.Context, l store.Lease, g *models.Gateway) (time.Duration, error) {
	msg := ""
	if err := s.Push(ctx, g); err != nil {
		msg = "cannot update the gateway: " + err.Error()
		s.log().Warn("gateway sync", "gateway", g.Name, "err", err)
	}
	if msg != g.StatusMessage {
		g.StatusMessage = msg
		if err := s.Store.SaveGatewayState(ctx, l, g); err != nil {
			return 0, err
		}
	}
	return s.syncInterval(), nil
}

// terminate deletes the machine of a gateway whose deletion was requested.
func (s *Service) terminate(ctx context.Context, l store.Lease, g *models.Gateway) (time.Duration, error) {
	if g.PD != nil {
		gc, err := s.GatewayCompute(ctx, g.ProjectID, g.Configuration.Backend)
		if err != nil {
			return 0, fmt.Errorf("gateway %s: %w", g.Name, err)
		}
		if err := gc.TerminateGateway(ctx, *g.PD); err != nil {
			return s.retryAfter(), s.note(ctx, l, g, "cannot terminate the gateway machine: "+err.Error())
		}
		if t, err := s.target(ctx, g); err == nil {
			s.Pool.Close(*t)
		}
	}
	g.Deleted = true
	if err := s.Store.SaveGatewayState(ctx, l, g); err != nil {
		return 0, err
	}
	s.log().Info("gateway deleted", "gateway", g.Name)
	return 0, nil
}

// target is the SSH endpoint of the gateway machine, logged in with the project's key.
func (s *Service) target(ctx context.Context, g *models.Gateway) (*sshpool.Target, error) {
	project, err := s.Store.GetProjectByID(ctx, g.ProjectID)
	if err != nil {
		return nil, err
	}
	port := g.PD.SSHPort
	if port == 0 {
		port = 22
	}
	return &sshpool.Target{User: g.PD.Username, Host: g.PD.IPAddress, Port: port, PrivateKey: project.SSHPrivateKey,
		HostKey: g.HostKey}, nil
}

func (s *Service) fail(ctx context.Context, l store.Lease, g *models.Gateway, msg string) error {
	g.Status, g.StatusMessage = models.GatewayFailed, msg
	s.log().Warn("gateway failed", "gateway", g.Name, "reason", msg)
	return s.Store.SaveGatewayState(ctx, l, g)
}

// failAndTerminate fails the gateway and deletes its machine, keeping the row (and its reason) for
// the user to see.
func (s *Service) failAndTerminate(ctx context.Context, l store.Lease, g *models.Gateway, msg string) (time.Duration, error) {
	gc, err := s.GatewayCompute(ctx, g.ProjectID, g.Configuration.Backend)
	if err == nil && g.PD != nil {
		if err := gc.TerminateGateway(ctx, *g.PD); err != nil {
			return s.retryAfter(), s.note(ctx, l, g, "cannot terminate the failed gateway machine: "+err.Error())
		}
	}
	return 0, s.fail(ctx, l, g, msg)
}

// note records a status message without changing the status.
func (s *Service) note(ctx context.Context, l store.Lease, g *models.Gateway, msg string) error {
	if g.StatusMessage == msg {
		return nil
	}
	g.StatusMessage = msg
	return s.Store.SaveGatewayState(ctx, l, g)
}

func (s *Service) poll() time.Duration {
	if s.Poll > 0 {
		return s.Poll
	}
	return 2 * time.Second
}

func (s *Service) syncInterval() time.Duration {
	if s.SyncInterval > 0 {
		return s.SyncInterval
	}
	return 10 * time.Second
}

func (s *Service) retryAfter() time.Duration { return 5 * s.poll() }

func (s *Service) provisioningTimeout() time.Duration {
	if s.ProvisioningTimeout > 0 {
		return s.ProvisioningTimeout
	}
	return 10 * time.Minute
}

func (s *Service) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}
