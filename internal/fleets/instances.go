package fleets

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dstackgo/dstack/internal/agentapi"
	"github.com/dstackgo/dstack/internal/hostinfo"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/sshpool"
	"github.com/dstackgo/dstack/internal/store"
)

// ProcessInstance moves one instance on: provisions a pending host, checks a provisioned one, or
// terminates one that is asked to.
func (s *Service) ProcessInstance(ctx context.Context, l store.Lease) (time.Duration, error) {
	inst, err := s.Store.GetInstance(ctx, l.ID)
	if err != nil {
		return 0, err
	}
	if inst.Status == models.InstanceTerminated {
		return 0, nil
	}
	if inst.TerminateRequested && inst.Status != models.InstanceTerminating {
		ok, err := s.Store.StartInstanceTermination(ctx, l, models.InstanceTerminatedByUser, "")
		if err != nil {
			return 0, err
		}
		if !ok {
			return 5 * time.Second, nil // busy: its job finishes first
		}
		inst.Status, inst.TerminationReason = models.InstanceTerminating, models.InstanceTerminatedByUser
	}
	cloud := inst.Backend != models.BackendRemote
	switch inst.Status {
	case models.InstancePending, models.InstanceProvisioning:
		if cloud && isNode(inst) {
			return s.provisionNode(ctx, l, inst) // a cloud fleet's instance: its machine comes first
		}
		if cloud {
			return s.provisionCloud(ctx, l, inst)
		}
		return s.provision(ctx, l, inst)
	case models.InstanceIdle, models.InstanceBusy:
		if cloud {
			return s.watchCloud(ctx, l, inst)
		}
		return s.checkHealth(ctx, l, inst)
	case models.InstanceTerminating:
		if cloud {
			return s.terminateCloud(ctx, l, inst)
		}
		return 0, s.terminate(ctx, l, inst)
	}
	return 0, nil
}

// provision brings a pending SSH host to idle (dstack-spec §6.2). Failures keep the instance pending
// with the cause in its status message and are retried until the provisioning timeout.
func (s *Service) provision(ctx context.Context, l store.Lease, inst *models.Instance) (time.Duration, error) {
	t := Target(inst)
	if t == nil {
		return 0, nil // not an SSH fleet host: provisioned by its backend
	}
	if time.Since(inst.CreatedAt) > s.provisioningTimeout() {
		msg := "Provisioning timeout expired"
		if inst.StatusMessage != "" {
			msg += ": " + inst.StatusMessage
		}
		if _, err := s.Store.StartInstanceTermination(ctx, l, models.InstanceProvisioningTimeout, msg); err != nil {
			return 0, err
		}
		inst.Status, inst.TerminationReason = models.InstanceTerminating, models.InstanceProvisioningTimeout
		return 0, s.terminate(ctx, l, inst)
	}
	err := s.provisionHost(ctx, l, inst, *t)
	var pe *ProvisionError
	if errors.As(err, &pe) {
		s.log().Warn("cannot provision host", "instance", inst.Name, "host", t.Host, "err", pe.Msg)
		if err := s.Store.SetInstanceProvisioning(ctx, l, inst.Status, pe.Msg); err != nil {
			return 0, err
		}
		// A host that was just started (or restarted) is often only seconds away: retry soon at first.
		if time.Since(inst.CreatedAt) < time.Minute {
			return time.Second, nil
		}
		return 10 * time.Second, nil
	}
	return 0, err
}

func (s *Service) provisionHost(ctx context.Context, l store.Lease, inst *models.Instance, t sshpool.Target) error {
	start := time.Now()
	setup, info, err := s.startShim(ctx, l, inst, t, inst.Status == models.InstanceProvisioning)
	if err != nil {
		return err
	}
	return s.ready(ctx, l, inst, setup, info, start)
}

// startShim gets dstack-shim running on a host over SSH (dstack-spec §6.2): it checks the host,
// uploads the agents that differ and (re)starts the shim, then waits for its health and host
// info. When maybeUp, a shim that answers already (left by a previous pass or a restarted server)
// is kept as it is.
func (s *Service) startShim(ctx context.Context, l store.Lease, inst *models.Instance, t sshpool.Target, maybeUp bool) (*hostSetup, *hostinfo.Info, error) {
	var pubKey string
	if p, err := s.Store.GetProjectByID(ctx, inst.ProjectID); err == nil {
		pubKey = p.SSHPublicKey
	}
	setup := &hostSetup{env: shimEnv(inst.Remote, pubKey)}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := s.inspect(cctx, t, inst.Remote, setup); err != nil {
		return nil, nil, err
	}
	if inst.HostKey == "" {
		if key := s.Pool.HostKey(t); key != "" {
			if err := s.Store.SetInstanceHostKey(ctx, inst.ID, key); err != nil {
				return nil, nil, err
			}
		}
	}
	if maybeUp {
		if info, err := s.waitShim(cctx, t, setup, time.Second); err == nil {
			return setup, info, nil
		}
	}
	if err := s.Store.SetInstanceProvisioning(ctx, l, models.InstanceProvisioning, "installing dstack-shim"); err != nil {
		return nil, nil, err
	}
	inst.Status = models.InstanceProvisioning
	if err := s.install(cctx, t, setup); err != nil {
		return nil, nil, err
	}
	info, err := s.waitShim(ctx, t, setup, s.shimWait())
	if err != nil {
		return nil, nil, err
	}
	return setup, info, nil
}

func (s *Service) ready(ctx context.Context, l store.Lease, inst *models.Instance, setup *hostSetup, info *hostinfo.Info, start time.Time) error {
	it := instanceType(info, setup.arch)
	r := inst.Remote
	host, port := r.Host, r.Port
	jpd := &models.JobProvisioningData{
		Backend:         models.BackendRemote,
		InstanceType:    it,
		InstanceID:      inst.ID,
		Hostname:        &host,
		InternalIP:      internalIP(r, info.Addresses),
		PublicIPEnabled: true,
		InstanceNetwork: r.Network,
		Region:          "remote",
		Username:        r.User,
		SSHPort:         &port,
		Dockerized:      true,
	}
	if p := r.ProxyJump; p != nil {
		jpd.SSHProxy = &models.SSHConnectionParams{Hostname: p.Host, Username: p.User, Port: p.Port}
	}
	blocks, err := TotalBlocks(r.Blocks, it.Resources)
	if err != nil {
		return &ProvisionError{Msg: err.Error()}
	}
	if err := s.Store.SetInstanceReady(ctx, l, it, jpd, blocks); err != nil {
		return err
	}
	s.log().Info("host provisioned", "instance", inst.Name, "host", host, "cpus", it.Resources.CPUs,
		"gpus", len(it.Resources.Gpus), "took", time.Since(start).Round(time.Millisecond))
	s.wake(store.TableJobs) // submitted jobs may wait for it
	return nil
}

// checkHealth asks the shim of a provisioned host whether it is alive and records the answer.
func (s *Service) checkHealth(ctx context.Context, l store.Lease, inst *models.Instance) (time.Duration, error) {
	t := Target(inst)
	if t == nil {
		return 0, nil
	}
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	agent, err := s.healthcheck(hctx, inst, *t)
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	switch {
	case err != nil && !inst.Unreachable:
		now := time.Now()
		msg := agent + " is not reachable: " + shortError(err)
		s.log().Warn("instance unreachable", "instance", inst.Name, "err", err)
		if err := s.Store.SetInstanceHealth(ctx, l, true, &now, msg); err != nil {
			return 0, err
		}
		s.wake(store.TableJobs)
	case err == nil && inst.Unreachable:
		s.log().Info("instance reachable again", "instance", inst.Name)
		if err := s.Store.SetInstanceHealth(ctx, l, false, nil, ""); err != nil {
			return 0, err
		}
		s.wake(store.TableJobs)
	}
	if err != nil {
		since := time.Now()
		if inst.Unreachable && inst.UnreachableSince != nil {
			since = *inst.UnreachableSince
		}
		left := s.terminationDeadline() - time.Since(since)
		if inst.Backend != models.BackendRemote && left <= 0 {
			// A busy instance is terminated once its job has failed (the job pipeline fails it at
			// the same deadline).
			return s.startCloudTermination(ctx, l, inst, models.InstanceUnreachableReason,
				"the instance has been unreachable for "+s.terminationDeadline().String())
		}
		return max(min(2*time.Second, s.healthInterval(), left), time.Millisecond), nil
	}
	return s.healthInterval(), nil
}

// healthcheck asks the agent the server talks to on the instance whether it is alive: dstack-shim,
// or dstack-runner on a container backend's instance (no shim there). It returns the agent's name.
func (s *Service) healthcheck(ctx context.Context, inst *models.Instance, t sshpool.Target) (string, error) {
	hc := s.Pool.HTTPClient(t, 10*time.Second)
	if IsContainer(inst) {
		_, err := agentapi.NewRunnerClient(fmt.Sprintf("http://127.0.0.1:%d", agentapi.RunnerHTTPPort), hc).Healthcheck(ctx)
		return RunnerBinary, err
	}
	setup := hostSetup{env: shimEnv(inst.Remote, "")}
	_, err := agentapi.NewShimClient(fmt.Sprintf("http://127.0.0.1:%d", setup.shimPort()), hc).Healthcheck(ctx)
	return ShimBinary, err
}

// IsContainer reports an instance of a container backend (RunPod, Vast.ai): the job's own
// container, running dstack-runner without a shim.
func IsContainer(inst *models.Instance) bool {
	return inst.JPD != nil && !inst.JPD.Dockerized
}

// terminate stops the shim of an SSH host (the host itself stays as it is) and marks the instance
// terminated. A host that cannot be reached is terminated all the same.
func (s *Service) terminate(ctx context.Context, l store.Lease, inst *models.Instance) error {
	if t := Target(inst); t != nil {
		// A host the server never reached (no host key yet) has nothing of ours to stop.
		if inst.HostKey != "" {
			sudo := ""
			if t.User != "root" {
				sudo = "sudo -n "
			}
			tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, err := s.Pool.Run(tctx, *t, stopCommand(inst.Remote, sudo), nil)
			cancel()
			if err != nil {
				s.log().Warn("cannot stop dstack-shim; terminating the instance anyway", "instance", inst.Name, "err", err)
			}
		}
		s.Pool.Close(*t)
	}
	if err := s.Store.FinishInstanceTermination(ctx, l); err != nil {
		return err
	}
	s.log().Info("instance terminated", "instance", inst.Name, "reason", inst.TerminationReason)
	if inst.FleetID != "" {
		if err := s.Store.WakeRow(ctx, store.TableFleets, inst.FleetID); err != nil {
			return err
		}
		s.wake(store.TableFleets)
	}
	return nil
}

func shortError(err error) string {
	msg := err.Error()
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return msg
}
