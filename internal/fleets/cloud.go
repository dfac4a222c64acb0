package fleets

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dstackgo/dstack/internal/agentapi"
	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/sshpool"
	"github.com/dstackgo/dstack/internal/store"
)

// Cloud instances are machines a backend created for a job (package runs records them with their
// provisioning data, status provisioning). Their pipeline here:
//
//   - provisioning: asks the backend for the machine's address (UpdateProvisioningData) until it
//     has one, then reaches it over the pooled SSH connection with the project's key. A VM
//     (Dockerized) runs dstack-shim: on Lambda, whose launch takes no user data, the server
//     installs it as it does on SSH fleet hosts; elsewhere cloud-init starts it and the server
//     waits for its health. A container backend's machine (Dockerized false) is the job's own
//     container running dstack-runner, reached through the runner's SSH server; there is no shim.
//     A machine not up within its backend's provisioning timeout (dstack-spec §5.6) is terminated.
//   - idle: terminated after the fleet's idle_duration (5 min for a run's fleet; 0 at once), a
//     container backend's machine at once (it ran its one job).
//   - terminating: TerminateInstance (idempotent) until it succeeds, then terminated.

// ErrNoBackend is a cloud instance whose project no longer has the backend that created it.
var ErrNoBackend = errors.New("the project has no such backend")

// installsShim lists the backends whose machines come up without dstack-shim: the server installs
// it over SSH.
var installsShim = map[string]bool{"lambda": true}

// DefaultIdleDuration is how long an idle cloud instance of a run's fleet lives (dstack's default).
const DefaultIdleDuration = 5 * time.Minute

// CloudProvisioningTimeout is how long a backend's machine may take to become reachable
// (dstack-spec §5.6).
func CloudProvisioningTimeout(backend, instanceType string) time.Duration {
	switch {
	case backend == "lambda":
		return 30 * time.Minute
	case backend == "runpod" || backend == "kubernetes":
		return 20 * time.Minute
	case backend == "oci" && strings.HasPrefix(instanceType, "BM."):
		return 20 * time.Minute
	case backend == "vultr" && strings.HasPrefix(instanceType, "vbm"):
		return 55 * time.Minute
	}
	return 10 * time.Minute
}

func (s *Service) cloudTimeout(inst *models.Instance) time.Duration {
	if d, ok := s.CloudTimeouts[inst.Backend]; ok && d > 0 {
		return d
	}
	return CloudProvisioningTimeout(inst.Backend, inst.InstanceType.Name)
}

func (s *Service) compute(ctx context.Context, inst *models.Instance) (backends.Compute, error) {
	if s.Compute == nil {
		return nil, fmt.Errorf("%s: %w", inst.Backend, ErrNoBackend)
	}
	return s.Compute(ctx, inst.ProjectID, inst.Backend)
}

// ToBackend converts stored provisioning data into the backend interface's.
func ToBackend(jpd models.JobProvisioningData) *backends.ProvisioningData {
	pd := &backends.ProvisioningData{Backend: jpd.Backend, InstanceType: jpd.InstanceType, InstanceID: jpd.InstanceID,
		Hostname: jpd.Hostname, InternalIP: jpd.InternalIP, PublicIPEnabled: jpd.PublicIPEnabled, Region: jpd.Region,
		AvailabilityZone: jpd.AvailabilityZone, Price: jpd.Price, Username: jpd.Username, SSHPort: jpd.SSHPort,
		Dockerized: jpd.Dockerized}
	if jpd.BackendData != nil {
		pd.BackendData = *jpd.BackendData
	}
	if p := jpd.SSHProxy; p != nil {
		pd.SSHProxy = &backends.SSHProxy{Hostname: p.Hostname, Port: p.Port, Username: p.Username}
	}
	return pd
}

// FromBackend converts a backend's provisioning data for storage; the instance type is it (the
// offer's, as recorded).
func FromBackend(pd *backends.ProvisioningData, it models.InstanceType) *models.JobProvisioningData {
	jpd := &models.JobProvisioningData{Backend: pd.Backend, InstanceType: it, InstanceID: pd.InstanceID,
		Hostname: pd.Hostname, InternalIP: pd.InternalIP, PublicIPEnabled: pd.PublicIPEnabled, Region: pd.Region,
		AvailabilityZone: pd.AvailabilityZone, Price: pd.Price, Username: pd.Username, SSHPort: pd.SSHPort,
		Dockerized: pd.Dockerized}
	if pd.BackendData != "" {
		bd := pd.BackendData
		jpd.BackendData = &bd
	}
	if p := pd.SSHProxy; p != nil {
		jpd.SSHProxy = &models.SSHConnectionParams{Hostname: p.Hostname, Port: p.Port, Username: p.Username}
	}
	return jpd
}

// provisionCloud brings a machine a backend created up to busy (it was created for a job) or idle.
func (s *Service) provisionCloud(ctx context.Context, l store.Lease, inst *models.Instance) (time.Duration, error) {
	if time.Since(inst.CreatedAt) > s.cloudTimeout(inst) {
		msg := "Provisioning timeout expired"
		if inst.StatusMessage != "" {
			msg += ": " + inst.StatusMessage
		}
		return s.startCloudTermination(ctx, l, inst, models.InstanceProvisioningTimeout, msg)
	}
	if inst.JPD == nil {
		return s.startCloudTermination(ctx, l, inst, models.InstanceError, "the instance has no provisioning data")
	}
	retry := func(msg string) (time.Duration, error) {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if msg != inst.StatusMessage {
			if err := s.Store.SetInstanceProvisioning(ctx, l, inst.Status, msg); err != nil {
				return 0, err
			}
		}
		if time.Since(inst.CreatedAt) < time.Minute {
			return time.Second, nil
		}
		return 5 * time.Second, nil
	}
	if inst.Remote == nil {
		compute, err := s.compute(ctx, inst)
		if errors.Is(err, ErrNoBackend) {
			return s.startCloudTermination(ctx, l, inst, models.InstanceError, "Backend not available: "+err.Error())
		}
		if err != nil {
			return retry("cannot reach the backend: " + shortError(err))
		}
		pd := ToBackend(*inst.JPD)
		uctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = compute.UpdateProvisioningData(uctx, pd)
		cancel()
		var pe *backends.ProvisioningError
		switch {
		case errors.As(err, &pe):
			return s.startCloudTermination(ctx, l, inst, models.InstanceError, pe.Error())
		case err != nil:
			return retry("cannot get the machine's state: " + shortError(err))
		}
		jpd := FromBackend(pd, inst.JPD.InstanceType)
		if jpd.Hostname == nil || *jpd.Hostname == "" {
			return retry("waiting for the machine to boot")
		}
		proj, err := s.Store.GetProjectByID(ctx, inst.ProjectID)
		if err != nil {
			return 0, err
		}
		port := 22
		if jpd.SSHPort != nil {
			port = *jpd.SSHPort
		}
		remote := &models.RemoteConnectionInfo{Host: *jpd.Hostname, Port: port, User: jpd.Username, PrivateKey: proj.SSHPrivateKey}
		if err := s.Store.SetInstanceAddress(ctx, l, jpd, remote, "connecting over SSH"); err != nil {
			return 0, err
		}
		inst.JPD, inst.Remote, inst.StatusMessage = jpd, remote, "connecting over SSH"
		s.log().Info("cloud instance has an address", "instance", inst.Name, "backend", inst.Backend, "host", *jpd.Hostname, "port", port)
	}
	t := *Target(inst)
	if IsContainer(inst) {
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := s.healthcheck(hctx, inst, t)
		cancel()
		if err != nil {
			return retry("waiting for dstack-runner: " + shortError(connectError(t, err)))
		}
		if key := s.Pool.HostKey(t); inst.HostKey == "" && key != "" {
			if err := s.Store.SetInstanceHostKey(ctx, inst.ID, key); err != nil {
				return 0, err
			}
		}
		return 0, s.cloudReady(ctx, l, inst)
	}
	// cloud-init starts the shim, unless the backend has none or it has not done so in its grace.
	if installsShim[inst.Backend] || s.shimLate(ctx, inst, t) {
		_, _, err := s.startShim(ctx, l, inst, t, true)
		var pe *ProvisionError
		if errors.As(err, &pe) {
			return retry(pe.Msg)
		}
		if err != nil {
			return 0, err
		}
		return 0, s.cloudReady(ctx, l, inst)
	}
	if err := s.shimHealth(ctx, inst, t); err != nil {
		return retry("waiting for dstack-shim: " + shortError(connectError(t, err)))
	}
	return 0, s.cloudReady(ctx, l, inst)
}

func (s *Service) shimHealth(ctx context.Context, inst *models.Instance, t sshpool.Target) error {
	setup := &hostSetup{env: shimEnv(inst.Remote, "")}
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := agentapi.NewShimClient(fmt.Sprintf("http://127.0.0.1:%d", setup.shimPort()), s.Pool.HTTPClient(t, 10*time.Second)).Healthcheck(hctx)
	return err
}

// shimLate reports whether a VM is reachable over SSH but its shim has not answered within the
// cloud-init grace after the machine was created.
func (s *Service) shimLate(ctx context.Context, inst *models.Instance, t sshpool.Target) bool {
	if time.Since(inst.CreatedAt) < s.cloudInitGrace() || s.shimHealth(ctx, inst, t) == nil {
		return false
	}
	if _, err := s.Pool.Client(ctx, t); err != nil {
		return false // not reachable yet: keep waiting
	}
	s.log().Warn("cloud-init has not started dstack-shim; installing it over SSH", "instance", inst.Name, "backend", inst.Backend)
	return true
}

// cloudReady makes a provisioned cloud instance busy with its job (or idle) and wakes the job.
func (s *Service) cloudReady(ctx context.Context, l store.Lease, inst *models.Instance) error {
	if err := s.Store.SetInstanceReady(ctx, l, inst.InstanceType, inst.JPD, 1); err != nil {
		return err
	}
	s.log().Info("cloud instance provisioned", "instance", inst.Name, "backend", inst.Backend,
		"took", time.Since(inst.CreatedAt).Round(time.Millisecond))
	if inst.JobID != "" {
		if err := s.Store.WakeRow(ctx, store.TableJobs, inst.JobID); err != nil {
			return err
		}
	}
	s.wake(store.TableJobs)
	return nil
}

// watchCloud checks a provisioned cloud instance's agent and ends an idle one whose time is up.
func (s *Service) watchCloud(ctx context.Context, l store.Lease, inst *models.Instance) (time.Duration, error) {
	if inst.Status == models.InstanceIdle && inst.JobID == "" {
		if IsContainer(inst) {
			return s.startCloudTermination(ctx, l, inst, models.InstanceJobFinished, "the container ran its job")
		}
		idle, err := s.idleDuration(ctx, inst)
		if err != nil {
			return 0, err
		}
		if idle >= 0 && inst.IdleSince != nil {
			left := idle - time.Since(*inst.IdleSince)
			if left <= 0 {
				keep, err := s.keepsNode(ctx, inst)
				if err != nil {
					return 0, err
				}
				if !keep { // a cloud fleet keeps nodes.min instances
					return s.startCloudTermination(ctx, l, inst, models.InstanceIdleTimeout, "Idle timeout")
				}
				left = idle
			}
			next, err := s.checkHealth(ctx, l, inst)
			return min(next, left), err
		}
	}
	return s.checkHealth(ctx, l, inst)
}

// idleDuration is how long an idle instance of the instance's fleet lives (negative: for ever).
func (s *Service) idleDuration(ctx context.Context, inst *models.Instance) (time.Duration, error) {
	if inst.FleetID == "" {
		return DefaultIdleDuration, nil
	}
	f, err := s.Store.GetFleetByID(ctx, inst.FleetID)
	if err != nil {
		return 0, err
	}
	d := f.Spec.Configuration.IdleDuration
	if d == nil && !f.Spec.Autocreated {
		return DefaultFleetIdleDuration, nil
	}
	if d == nil {
		return DefaultIdleDuration, nil
	}
	if *d < 0 {
		return -1, nil
	}
	return time.Duration(*d) * time.Second, nil
}

// startCloudTermination moves a cloud instance to terminating with a reason, and terminates it.
func (s *Service) startCloudTermination(ctx context.Context, l store.Lease, inst *models.Instance, reason, message string) (time.Duration, error) {
	ok, err := s.Store.StartInstanceTermination(ctx, l, reason, message)
	if err != nil || !ok {
		return 5 * time.Second, err // busy: a job claimed it first
	}
	s.log().Info("terminating cloud instance", "instance", inst.Name, "backend", inst.Backend, "reason", reason, "message", message)
	inst.Status, inst.TerminationReason, inst.TerminationReasonMessage = models.InstanceTerminating, reason, message
	if inst.JobID != "" {
		// The job waiting for the instance fails at once.
		if err := s.Store.WakeRow(ctx, store.TableJobs, inst.JobID); err != nil {
			return 0, err
		}
		s.wake(store.TableJobs)
	}
	return s.terminateCloud(ctx, l, inst)
}

// terminateCloud deletes the machine at its provider (idempotently) until that succeeds, then
// marks the instance terminated.
func (s *Service) terminateCloud(ctx context.Context, l store.Lease, inst *models.Instance) (time.Duration, error) {
	if t := Target(inst); t != nil {
		s.Pool.Forget(*t) // the address may go to another machine
	}
	if inst.JPD != nil && inst.JPD.InstanceID != "" {
		compute, err := s.compute(ctx, inst)
		switch {
		case errors.Is(err, ErrNoBackend):
			s.log().Error("cannot terminate a cloud instance: its backend is gone; the machine may still run at the provider",
				"instance", inst.Name, "backend", inst.Backend, "id", inst.JPD.InstanceID)
		case err == nil:
			bd := ""
			if inst.JPD.BackendData != nil {
				bd = *inst.JPD.BackendData
			}
			tctx, cancel := context.WithTimeout(ctx, time.Minute)
			err = compute.TerminateInstance(tctx, inst.JPD.InstanceID, inst.JPD.Region, bd)
			cancel()
		}
		if err != nil && !errors.Is(err, ErrNoBackend) {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			s.log().Warn("cannot terminate cloud instance; retrying", "instance", inst.Name, "backend", inst.Backend, "err", err)
			if err := s.Store.SetInstanceMessage(ctx, l, "cannot terminate the machine: "+shortError(err)); err != nil {
				return 0, err
			}
			return s.terminateRetry(), nil
		}
	}
	if err := s.Store.FinishInstanceTermination(ctx, l); err != nil {
		return 0, err
	}
	s.log().Info("instance terminated", "instance", inst.Name, "backend", inst.Backend, "reason", inst.TerminationReason)
	if inst.FleetID != "" {
		if err := s.Store.WakeRow(ctx, store.TableFleets, inst.FleetID); err != nil {
			return 0, err
		}
		s.wake(store.TableFleets)
	}
	return 0, nil
}

func (s *Service) terminateRetry() time.Duration {
	if s.TerminateRetry > 0 {
		return s.TerminateRetry
	}
	return 10 * time.Second
}
