package runs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dstackgo/dstack/internal/agentapi"
	"github.com/dstackgo/dstack/internal/fleets"
	"github.com/dstackgo/dstack/internal/logstore"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/store"
)

// Messages of jobs that found no instance (dstack's words for the first).
const (
	msgNoFleets       = "No matching fleet found. Possible reasons: https://dstack.ai/docs/guides/troubleshooting/#no-fleets"
	statusNoFleets    = "no fleets"
	statusNoInstances = "no matching instance"
)

// pullInterval is the cadence of pulls from a running job's runner: often right after the start, so
// that short jobs are seen to finish at once, then once a second. A pull is one request on the
// host's pooled SSH connection.
func pullInterval(started *time.Time) time.Duration {
	switch {
	case started == nil:
		return time.Second
	case time.Since(*started) < time.Second:
		return 20 * time.Millisecond
	case time.Since(*started) < 10*time.Second:
		return 100 * time.Millisecond
	}
	return time.Second
}

// job is one pass over a job submission: the lease it is processed under and what it needs.
type job struct {
	*Service
	lease store.Lease
	j     *models.Job
	run   *models.Run
	inst  *models.Instance // loaded on demand
	vols  *jobVolumes      // the job's network volumes, while it is being assigned
}

// replicasChanged tells ReplicasChanged that a replica of a service started or ended.
func (p *job) replicasChanged(ctx context.Context) {
	if p.ReplicasChanged != nil && p.run != nil && p.run.Spec.Configuration.Service != nil {
		p.ReplicasChanged(ctx, p.run)
	}
}

// ProcessJob moves a job submission through its lifecycle as far as it can go now.
func (s *Service) ProcessJob(ctx context.Context, l store.Lease) (time.Duration, error) {
	j, err := s.Store.GetJob(ctx, l.ID)
	if err != nil {
		return 0, err
	}
	if models.JobFinished(j.Status) {
		return 0, nil
	}
	run, err := s.Store.GetRunByID(ctx, j.RunID)
	if err != nil {
		return 0, err
	}
	p := &job{Service: s, lease: l, j: j, run: run}
	if j.StopReason != "" && j.Status != models.JobTerminating {
		p.terminating(j.StopReason, "")
		if err := p.save(ctx); err != nil {
			return 0, err
		}
	}
	for {
		prev := j.Status
		var after time.Duration
		switch j.Status {
		case models.JobSubmitted:
			after, err = p.assign(ctx)
		case models.JobProvisioning:
			after, err = p.submitTask(ctx)
		case models.JobPulling:
			after, err = p.start(ctx)
		case models.JobRunning:
			after, err = p.pull(ctx)
		case models.JobTerminating:
			after, err = p.finish(ctx)
		default:
			return 0, nil
		}
		if err != nil || j.Status == prev || models.JobFinished(j.Status) {
			return after, err
		}
	}
}

func (p *job) save(ctx context.Context) error {
	return p.Store.UpdateJobState(ctx, p.lease, p.j)
}

// terminating starts the end of the job with a termination reason.
func (p *job) terminating(reason, message string) {
	p.j.Status = models.JobTerminating
	if p.j.TerminationReason == "" {
		p.j.TerminationReason = reason
		p.j.TerminationReasonMessage = message
	}
}

func (p *job) instance(ctx context.Context) (*models.Instance, error) {
	if p.inst == nil && p.j.InstanceID != "" {
		inst, err := p.Store.GetInstance(ctx, p.j.InstanceID)
		if err != nil {
			return nil, err
		}
		p.inst = inst
	}
	return p.inst, nil
}

// assign gives the job an idle instance that fits, or waits for one that may become free, or
// fails the job when nothing can take it.
func (p *job) assign(ctx context.Context) (time.Duration, error) {
	j, spec := p.j, p.run.Spec
	params := spec.Params()
	masterFleet := ""
	var masterInst *models.Instance
	if j.Spec.JobsPerReplica > 1 && j.JobNum > 0 {
		// The other nodes go where the master went, so that they share its fleet's network.
		master, err := p.sibling(ctx, 0)
		if err != nil {
			return 0, err
		}
		if master == nil || master.InstanceID == "" {
			if master != nil && models.JobFinished(master.Status) {
				p.terminating(models.JobNoCapacity, "the master job failed to start")
				return 0, p.save(ctx)
			}
			return 200 * time.Millisecond, nil
		}
		mi, err := p.Store.GetInstance(ctx, master.InstanceID)
		if err != nil {
			return 0, err
		}
		masterFleet, masterInst = mi.FleetID, mi
	}
	jv, err := p.volumes(ctx)
	var problem *volumeProblem
	switch {
	case errors.As(err, &problem):
		p.terminating(models.JobVolumeError, problem.msg)
		return 0, p.save(ctx)
	case errors.Is(err, errWaitVolumes):
		if j.StatusMessage != "waiting for volumes" {
			j.StatusMessage = "waiting for volumes"
			if err := p.save(ctx); err != nil {
				return 0, err
			}
		}
		return 2 * time.Second, nil
	case err != nil:
		return 0, err
	}
	p.vols = jv
	insts, err := p.Store.ListInstances(ctx, store.InstanceFilter{ProjectIDs: []string{j.ProjectID}, OnlyActive: true,
		Page: store.Page{Ascending: true}})
	if err != nil {
		return 0, err
	}
	fleetNames := map[string]string{}
	var candidates []*models.Instance
	blocks := map[string]int{} // the blocks each candidate gives the job
	var reasons []string
	waiting, anyFleet := false, false
	for _, inst := range insts {
		if masterFleet != "" && inst.FleetID != masterFleet || inst.TerminateRequested {
			continue
		}
		name, ok := fleetNames[inst.FleetID]
		if !ok && inst.FleetID != "" {
			f, err := p.Store.GetFleetByID(ctx, inst.FleetID)
			if err != nil {
				return 0, err
			}
			if f.DeleteRequested || f.Deleted {
				fleetNames[inst.FleetID] = ""
				continue
			}
			name = f.Name
			fleetNames[inst.FleetID] = name
		}
		if name == "" && inst.FleetID != "" {
			continue
		}
		if names := params.FleetNames(); len(names) > 0 && !slices.Contains(names, name) {
			continue
		}
		anyFleet = true
		if inst.Status == models.InstancePending || inst.Status == models.InstanceProvisioning {
			// Its resources are known once it is provisioned (unless it is being made for a job).
			waiting = waiting || inst.JobID == ""
			continue
		}
		if fleets.IsContainer(inst) {
			continue // a container backend's machine ran its one job
		}
		k, why := BlocksFor(inst, name, j.Spec.Requirements, spec.Configuration, params)
		if why == "" && !jv.fitsInstance(inst) {
			why = "not where the job's volumes are"
		}
		if why != "" {
			reasons = append(reasons, inst.Name+": "+why)
			continue
		}
		shared := inst.TotalBlocks > 1
		free := inst.Status == models.InstanceIdle || shared && inst.Status == models.InstanceBusy && inst.TotalBlocks-inst.BusyBlocks >= k
		if free && !inst.Unreachable {
			candidates = append(candidates, inst)
			blocks[inst.ID] = k
		} else {
			waiting = true
		}
	}
	// The smallest instance that fits, so that bigger ones stay free for bigger jobs.
	slices.SortStableFunc(candidates, func(a, b *models.Instance) int {
		ra, rb := a.InstanceType.Resources, b.InstanceType.Resources
		if len(ra.Gpus) != len(rb.Gpus) {
			return len(ra.Gpus) - len(rb.Gpus)
		}
		if ra.CPUs != rb.CPUs {
			return ra.CPUs - rb.CPUs
		}
		return ra.MemoryMiB - rb.MemoryMiB
	})
	for _, inst := range candidates {
		shared, k := inst.TotalBlocks > 1, blocks[inst.ID]
		var ok bool
		if shared {
			ok, err = p.Store.ClaimInstanceBlocks(ctx, inst.ID, k)
		} else {
			ok, err = p.Store.ClaimInstance(ctx, inst.ID, j.ID)
		}
		if err != nil {
			return 0, err
		}
		if !ok {
			waiting = true // another job was faster; this one tries again
			continue
		}
		p.inst = inst
		j.InstanceID = inst.ID
		if inst.JPD != nil {
			jpd := *inst.JPD
			j.JPD = &jpd
		}
		j.JRD = &models.JobRuntimeData{NetworkMode: agentapi.NetworkModeHost}
		release := func() error { return p.Store.ReleaseInstance(context.WithoutCancel(ctx), inst.ID, j.ID) }
		if shared {
			// k of the instance's blocks: their share of its resources, in a container of its own
			// network (the host's ports are shared with the other blocks' jobs).
			inst.Status, inst.BusyBlocks = models.InstanceBusy, inst.BusyBlocks+k // as claimed
			share := fleets.BlockShare(inst.InstanceType.Resources, k, inst.TotalBlocks)
			cpu, mem, gpu := float64(share.CPUs), float64(share.MemoryMiB)/1024, len(share.Gpus)
			j.JRD = &models.JobRuntimeData{NetworkMode: agentapi.NetworkModeBridge, CPU: &cpu, Memory: &mem, GPU: &gpu}
			release = func() error { return p.Store.ReleaseInstanceBlocks(context.WithoutCancel(ctx), inst.ID, k) }
		} else {
			inst.Status, inst.JobID, inst.BusyBlocks = models.InstanceBusy, j.ID, inst.TotalBlocks // as claimed
		}
		j.Status, j.StatusMessage = models.JobProvisioning, models.JobProvisioning
		if err := p.save(ctx); err != nil {
			// The lease is gone: give the instance back for the replica that owns the job now.
			_ = release()
			return 0, err
		}
		p.log().Info("job assigned", "job", j.JobName, "instance", inst.Name)
		p.wakeRow(ctx, store.TableRuns, j.RunID)
		return 0, nil
	}
	// No instance is free: provision one from the backends' offers, unless the run reuses only.
	explanation := ""
	if policy := params.CreationPolicy; (policy == nil || *policy != CreationPolicyReuse) && len(params.FleetNames()) == 0 {
		tried, why, err := p.provision(ctx, masterInst)
		if tried || err != nil {
			return 0, err
		}
		explanation = why
	}
	if waiting {
		if j.StatusMessage != "waiting for an instance" {
			j.StatusMessage = "waiting for an instance"
			if err := p.save(ctx); err != nil {
				return 0, err
			}
		}
		return 5 * time.Second, nil // or sooner, when an instance is released
	}
	if anyFleet {
		j.StatusMessage = statusNoInstances
		p.terminating(models.JobNoCapacity, "No fleet instance matches the requirements: "+strings.Join(reasons, "; "))
	} else {
		j.StatusMessage = statusNoFleets
		msg := msgNoFleets
		if explanation != "" {
			msg += "; no backend offer either: " + explanation
		}
		p.terminating(models.JobNoCapacity, msg)
	}
	return 0, p.save(ctx)
}

// sibling is the latest submission of job num of the same replica.
func (p *job) sibling(ctx context.Context, num int) (*models.Job, error) {
	all, err := p.Store.ListJobs(ctx, p.j.RunID)
	if err != nil {
		return nil, err
	}
	var out *models.Job
	for _, s := range all {
		if s.ReplicaNum == p.j.ReplicaNum && s.JobNum == num {
			out = s // ordered by submission number
		}
	}
	return out, nil
}

// agents returns clients for the instance's shim and runner (through its SSH connection). A
// container backend's instance has no shim (nil): the SSH connection is the runner's own.
func (p *job) agents(ctx context.Context, timeout time.Duration) (*agentapi.ShimClient, *agentapi.RunnerClient, error) {
	inst, err := p.instance(ctx)
	if err != nil {
		return nil, nil, err
	}
	t := fleets.Target(inst)
	if t == nil {
		return nil, nil, fmt.Errorf("instance %s has no SSH access", inst.Name)
	}
	hc := p.Pool.HTTPClient(*t, timeout)
	if fleets.IsContainer(inst) {
		return nil, agentapi.NewRunnerClient(fmt.Sprintf("http://127.0.0.1:%d", agentapi.RunnerHTTPPort), hc), nil
	}
	env := map[string]string{}
	if inst.Remote != nil {
		env = inst.Remote.Env
	}
	shimPort := portFrom(env["DSTACK_SHIM_HTTP_PORT"], agentapi.ShimHTTPPort)
	runnerPort := portFrom(env["DSTACK_RUNNER_HTTP_PORT"], agentapi.RunnerHTTPPort)
	if jrd := p.j.JRD; jrd != nil && jrd.Ports != nil {
		if hp, ok := jrd.Ports[strconv.Itoa(runnerPort)]; ok {
			runnerPort = hp
		}
	}
	return agentapi.NewShimClient(fmt.Sprintf("http://127.0.0.1:%d", shimPort), hc),
		agentapi.NewRunnerClient(fmt.Sprintf("http://127.0.0.1:%d", runnerPort), hc), nil
}

func portFrom(v string, def int) int {
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return n
	}
	return def
}

// submitTask asks the instance's shim to start the job's container.
func (p *job) submitTask(ctx context.Context) (time.Duration, error) {
	j := p.j
	inst, err := p.instance(ctx)
	if err != nil {
		return 0, err
	}
	if inst.JobID == j.ID && (inst.Status == models.InstancePending || inst.Status == models.InstanceProvisioning) {
		// A machine made for the job: the instance pipeline wakes the job once it is up.
		msg := "provisioning " + inst.Name
		if inst.StatusMessage != "" {
			msg += ": " + inst.StatusMessage
		}
		if j.StatusMessage != msg {
			j.StatusMessage = msg
			if err := p.save(ctx); err != nil {
				return 0, err
			}
		}
		return 2 * time.Second, nil
	}
	if inst.Status != models.InstanceBusy || inst.TotalBlocks <= 1 && inst.JobID != j.ID {
		reason, msg := models.JobInterruptedNoCapacity, "instance "+inst.Name+" is no longer assigned to the job"
		if j.StartedAt == nil && inst.JobID == j.ID && !models.InstanceActive(inst.Status) {
			// Its machine did not come up.
			reason, msg = models.JobNoCapacity, "instance "+inst.Name+" failed to start: "+firstNonEmpty(inst.TerminationReasonMessage, inst.TerminationReason)
			if inst.TerminationReason == models.InstanceProvisioningTimeout {
				reason = models.JobWaitingRunnerLimit
			}
		}
		p.terminating(reason, msg)
		return 0, p.save(ctx)
	}
	if inst.JPD != nil && (j.JPD == nil || j.JPD.Hostname == nil) {
		jpd := *inst.JPD // with the address it has now
		j.JPD = &jpd
	}
	if fleets.IsContainer(inst) {
		// The job's container is the machine, running dstack-runner already.
		j.Status, j.StatusMessage = models.JobPulling, models.JobPulling
		return 0, p.save(ctx)
	}
	shim, _, err := p.agents(ctx, 30*time.Second)
	if err != nil {
		return 0, err
	}
	// The run's user reaches the host (as the fleet's user) and the container with their key, for
	// dstack attach; the server reaches the container with the project's key.
	containerKeys, hostKeys := []string{}, []string{}
	if k := p.run.Spec.SSHKeyPub; k != nil && *k != "" {
		containerKeys = append(containerKeys, strings.TrimSpace(*k))
		hostKeys = append(hostKeys, strings.TrimSpace(*k))
	}
	if proj, err := p.Store.GetProjectByID(ctx, j.ProjectID); err == nil && proj.SSHPublicKey != "" {
		containerKeys = append(containerKeys, strings.TrimSpace(proj.SSHPublicKey))
	}
	cfg := agentapi.TaskConfig{
		ID: j.ID, Name: j.JobName, ImageName: j.Spec.ImageName, Privileged: j.Spec.Privileged,
		NetworkMode: agentapi.NetworkModeHost, ContainerSSHKeys: containerKeys,
		Volumes: []agentapi.VolumeInfo{}, VolumeMounts: []agentapi.VolumeMountPoint{}, InstanceMounts: []agentapi.InstanceMountPoint{},
		GPUDevices: []agentapi.GPUDevice{}, HostSSHKeys: hostKeys,
	}
	if inst.Remote != nil {
		cfg.HostSSHUser = inst.Remote.User
	}
	if err := p.attachVolumes(ctx, inst, &cfg); err != nil {
		var problem *volumeProblem
		if !errors.As(err, &problem) {
			return 0, err
		}
		p.terminating(models.JobVolumeError, problem.msg)
		return 0, p.save(ctx)
	}
	if len(inst.InstanceType.Resources.Gpus) > 0 {
		cfg.GPU = -1 // the whole instance is the job's
	}
	if jrd := j.JRD; inst.TotalBlocks > 1 && jrd != nil && jrd.CPU != nil {
		// Its blocks' share of the instance.
		cfg.NetworkMode, cfg.CPU = jrd.NetworkMode, *jrd.CPU
		if jrd.Memory != nil {
			cfg.Memory = int64(*jrd.Memory * (1 << 30))
		}
		if jrd.GPU != nil {
			cfg.GPU = *jrd.GPU
		}
	}
	if shm := j.Spec.Requirements.Resources.SharedMemory; shm != nil {
		cfg.ShmSize = int64(float64(*shm) * (1 << 30))
	}
	if ra := j.Spec.RegistryAuth; ra != nil {
		cfg.RegistryUsername, cfg.RegistryPassword = ra.Username, ra.Password
	}
	if u, ok := j.Spec.User.(map[string]any); ok {
		if name, ok := u["username"].(string); ok {
			cfg.ContainerUser = name
		}
	}
	_, err = shim.SubmitTask(ctx, cfg)
	switch {
	case agentapi.IsStatus(err, http.StatusConflict):
		// Submitted by an earlier pass that did not get to record it.
	case agentapi.IsStatus(err, http.StatusBadRequest):
		p.terminating(models.JobExecutorError, err.Error())
		return 0, p.save(ctx)
	case err != nil:
		return p.unreachable(ctx, err)
	}
	j.Status, j.StatusMessage = models.JobPulling, models.JobPulling
	return 0, p.save(ctx)
}

// start waits for the container and hands the job to its runner.
func (p *job) start(ctx context.Context) (time.Duration, error) {
	j := p.j
	shim, runner, err := p.agents(ctx, 30*time.Second)
	if err != nil {
		return 0, err
	}
	// Containers of present images start in a fraction of a second: wait here rather than in the
	// queue. Pulls take longer; the job is looked at again later.
	task := agentapi.TaskInfo{Status: agentapi.TaskRunning} // a container backend's instance has no shim
	delay := 20 * time.Millisecond
	for deadline := time.Now().Add(5 * time.Second); shim != nil; {
		task, err = shim.GetTask(ctx, j.ID)
		switch {
		case agentapi.IsStatus(err, http.StatusNotFound):
			// The shim lost the task (it was reinstalled): submit it again.
			j.Status = models.JobProvisioning
			return 0, p.save(ctx)
		case err != nil:
			return p.unreachable(ctx, err)
		}
		if task.Status == agentapi.TaskRunning || task.Status == agentapi.TaskTerminated || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 250*time.Millisecond)
	}
	switch task.Status {
	case agentapi.TaskTerminated:
		p.terminating(taskReason(task.TerminationReason), task.TerminationMessage)
		return 0, p.save(ctx)
	case agentapi.TaskRunning:
	default:
		if msg := string(task.Status); j.StatusMessage != msg {
			j.StatusMessage = msg
			if err := p.save(ctx); err != nil {
				return 0, err
			}
		}
		return 500 * time.Millisecond, nil
	}
	if len(task.Ports) > 0 {
		if j.JRD == nil {
			j.JRD = &models.JobRuntimeData{NetworkMode: agentapi.NetworkModeHost}
		}
		j.JRD.Ports = map[string]int{}
		for _, pm := range task.Ports {
			j.JRD.Ports[strconv.Itoa(pm.Container)] = pm.Host
		}
		if shim, runner, err = p.agents(ctx, 30*time.Second); err != nil {
			return 0, err
		}
	}
	_ = shim
	cluster, ready, err := p.clusterInfo(ctx)
	if err != nil || !ready {
		return 200 * time.Millisecond, err
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		_, err := runner.Healthcheck(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return p.unreachable(ctx, err)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := runner.Submit(ctx, p.submitBody(cluster)); err != nil && !agentapi.IsStatus(err, http.StatusConflict) {
		return p.unreachable(ctx, err)
	}
	if err := runner.UploadCode(ctx, nil); err != nil && !agentapi.IsStatus(err, http.StatusConflict) {
		return p.unreachable(ctx, err)
	}
	if err := runner.Run(ctx); err != nil && !agentapi.IsStatus(err, http.StatusConflict) {
		return p.unreachable(ctx, err)
	}
	now := time.Now().UTC()
	j.Status, j.StatusMessage, j.StartedAt = models.JobRunning, models.JobRunning, &now
	if err := p.save(ctx); err != nil {
		return 0, err
	}
	p.log().Info("job running", "job", j.JobName, "instance", p.inst.Name)
	p.wakeRow(ctx, store.TableRuns, j.RunID)
	p.replicasChanged(ctx)
	return pullInterval(j.StartedAt), nil
}

// taskReason turns a shim task's termination reason into a job termination reason.
func taskReason(r string) string {
	if r == "" {
		return models.JobExecutorError
	}
	return strings.ToLower(r)
}

// clusterInfo describes the nodes of a multi-node replica; ready is false until every node has
// an instance.
func (p *job) clusterInfo(ctx context.Context) (agentapi.ClusterInfo, bool, error) {
	j := p.j
	ip := func(jpd *models.JobProvisioningData) string {
		switch {
		case jpd == nil:
			return ""
		case jpd.InternalIP != nil && *jpd.InternalIP != "":
			return *jpd.InternalIP
		case jpd.Hostname != nil:
			return *jpd.Hostname
		}
		return ""
	}
	gpus := 0
	if p.inst != nil {
		gpus = len(p.inst.InstanceType.Resources.Gpus)
	}
	if j.Spec.JobsPerReplica <= 1 {
		return agentapi.ClusterInfo{JobIPs: []string{ip(j.JPD)}, MasterJobIP: ip(j.JPD), GPUsPerJob: gpus}, true, nil
	}
	info := agentapi.ClusterInfo{GPUsPerJob: gpus}
	for n := range j.Spec.JobsPerReplica {
		sib := j
		if n != j.JobNum {
			s, err := p.sibling(ctx, n)
			if err != nil {
				return info, false, err
			}
			sib = s
		}
		if sib == nil || ip(sib.JPD) == "" {
			return info, false, nil
		}
		info.JobIPs = append(info.JobIPs, ip(sib.JPD))
	}
	info.MasterJobIP = info.JobIPs[0]
	return info, true, nil
}

func (p *job) submitBody(cluster agentapi.ClusterInfo) agentapi.SubmitBody {
	j, spec := p.j, p.run.Spec
	rs := agentapi.RunSpec{RunName: p.run.Name, Configuration: agentapi.Configuration{Type: spec.Configuration.Type()}}
	if spec.RepoID != nil {
		rs.RepoID = *spec.RepoID
	}
	if spec.ConfigurationPath != nil {
		rs.ConfigurationPath = *spec.ConfigurationPath
	}
	js := agentapi.JobSpec{ReplicaNum: j.ReplicaNum, JobNum: j.JobNum, JobsPerReplica: j.Spec.JobsPerReplica,
		Commands: j.Spec.Commands, Env: j.Spec.Env, WorkingDir: j.Spec.WorkingDir}
	if js.Env == nil {
		js.Env = map[string]string{}
	}
	if j.Spec.SingleBranch != nil {
		js.SingleBranch = *j.Spec.SingleBranch
	}
	if j.Spec.MaxDuration != nil {
		js.MaxDuration = *j.Spec.MaxDuration
	}
	if k := j.Spec.SSHKey; k != nil {
		js.SSHKey = &agentapi.SSHKey{Private: k.Private, Public: k.Public}
	}
	if u, ok := j.Spec.User.(map[string]any); ok {
		if name, ok := u["username"].(string); ok {
			js.User = &agentapi.User{Username: &name}
		}
	}
	return agentapi.SubmitBody{Run: &agentapi.Run{ID: p.run.ID, RunSpec: rs}, RunSpec: &rs, JobSpec: js,
		JobSubmission: &agentapi.JobSubmission{ID: j.ID}, ClusterInfo: cluster, Secrets: map[string]string{}}
}

// pull fetches the job's new output and states from its runner.
func (p *job) pull(ctx context.Context) (time.Duration, error) {
	j := p.j
	shim, runner, err := p.agents(ctx, 10*time.Second)
	if err != nil {
		return 0, err
	}
	resp, err := runner.Pull(ctx, j.RunnerTimestamp)
	if err != nil {
		// The runner is gone: its container may have ended without telling (killed), or the
		// host is unreachable.
		if shim != nil {
			task, terr := shim.GetTask(ctx, j.ID)
			if terr == nil && task.Status == agentapi.TaskTerminated {
				p.terminating(taskReason(task.TerminationReason), firstNonEmpty(task.TerminationMessage, "the runner stopped answering"))
				return 0, p.save(ctx)
			}
		}
		return p.unreachable(ctx, err)
	}
	if err := p.saveLogs(resp); err != nil {
		return 0, err
	}
	p.sampleMetrics(ctx, runner)
	if resp.LastUpdated > j.RunnerTimestamp {
		j.RunnerTimestamp = resp.LastUpdated
	}
	if n := len(resp.JobStates); n > 0 {
		last := resp.JobStates[n-1]
		if last.State.Finished() {
			reason := last.TerminationReason
			switch {
			case last.State == agentapi.JobDone:
				reason = models.JobDoneByRunner
			case reason == "":
				reason = models.JobExecutorError
			}
			j.ExitStatus = last.ExitStatus
			p.terminating(reason, last.TerminationMessage)
			return 0, p.save(ctx)
		}
	}
	if md := j.Spec.MaxDuration; md != nil && j.StartedAt != nil && time.Since(*j.StartedAt) > time.Duration(*md)*time.Second+time.Minute {
		// The runner enforces max_duration; this is the server's backstop.
		p.terminating(models.JobMaxDurationExceeded, "")
		return 0, p.save(ctx)
	}
	if err := p.save(ctx); err != nil {
		return 0, err
	}
	if resp.HasMore {
		return time.Millisecond, nil
	}
	return pullInterval(j.StartedAt), nil
}

// saveLogs stores the pulled output, skipping what a previous pass stored before it could record
// the runner timestamp (a crash between the two).
func (p *job) saveLogs(resp agentapi.PullResponse) error {
	for _, kind := range []string{logstore.Job, logstore.Runner} {
		src := resp.JobLogs
		if kind == logstore.Runner {
			src = resp.RunnerLogs
		}
		if len(src) == 0 {
			continue
		}
		k := p.logKey(kind)
		last, err := p.Logs.Last(k)
		if err != nil {
			return err
		}
		var events []logstore.Event
		for _, e := range src {
			ts := time.UnixMilli(e.Timestamp).UTC()
			if !ts.After(last) {
				continue
			}
			source := logstore.Stdout
			if e.Stream == agentapi.StreamStderr {
				source = logstore.Stderr
			}
			events = append(events, logstore.Event{Timestamp: ts, Source: source, Message: e.Message})
		}
		if err := p.Logs.Append(k, events); err != nil {
			return err
		}
	}
	return nil
}

func (p *job) logKey(kind string) logstore.Key {
	project := p.j.ProjectID
	if proj, err := p.Store.GetProjectByID(context.Background(), p.j.ProjectID); err == nil {
		project = proj.Name
	}
	return logstore.Key{Project: project, Run: p.j.RunName, Submission: p.j.ID, Kind: kind}
}

// unreachable handles a failed call to the job's agents: the instance is checked at once, and the
// job fails once the instance has been unreachable for the grace period.
func (p *job) unreachable(ctx context.Context, cause error) (time.Duration, error) {
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	inst, err := p.instance(ctx)
	if err != nil {
		return 0, err
	}
	if inst.Unreachable && inst.UnreachableSince != nil && time.Since(*inst.UnreachableSince) > p.unreachableGrace() {
		p.terminating(models.JobInstanceUnreachable, fmt.Sprintf("instance %s is unreachable: %s", inst.Name, firstNonEmpty(inst.StatusMessage, cause.Error())))
		return 0, p.save(ctx)
	}
	p.log().Warn("job agents not reachable", "job", p.j.JobName, "instance", inst.Name, "err", cause)
	p.wakeRow(ctx, store.TableInstances, inst.ID)
	return time.Second, nil
}

// finish stops and removes the job's container (when it has one), gives its instance back and
// records the final status.
func (p *job) finish(ctx context.Context) (time.Duration, error) {
	j := p.j
	if j.InstanceID != "" {
		inst, err := p.instance(ctx)
		if err != nil {
			return 0, err
		}
		shared := inst.TotalBlocks > 1
		if !inst.Unreachable && inst.Status == models.InstanceBusy && (inst.JobID == j.ID || shared) {
			p.stopContainer(ctx)
		}
		p.detachVolumes(ctx, inst)
		if shared {
			// The blocks go back in the transaction that ends the job, so that they go back once.
			p.endJob()
			err := p.Store.WithTx(ctx, func(tx *store.Store) error {
				if err := tx.ReleaseInstanceBlocks(ctx, inst.ID, jobBlocks(inst, j)); err != nil {
					return err
				}
				return tx.UpdateJobState(ctx, p.lease, j)
			})
			if err != nil {
				return 0, err
			}
		} else if err := p.Store.ReleaseInstance(ctx, inst.ID, j.ID); err != nil {
			return 0, err
		}
		p.wakeRow(ctx, store.TableInstances, inst.ID)
		if err := p.Store.WakeWaitingJobs(ctx, j.ProjectID); err != nil {
			return 0, err
		}
		p.wake(store.TableJobs)
	}
	p.forgetMetrics(j.ID)
	if !models.JobFinished(j.Status) {
		p.endJob()
		if err := p.save(ctx); err != nil {
			return 0, err
		}
	}
	p.log().Info("job finished", "job", j.JobName, "status", j.Status, "reason", j.TerminationReason)
	p.wakeRow(ctx, store.TableRuns, j.RunID)
	p.replicasChanged(ctx)
	return 0, nil
}

// endJob sets the job's final status.
func (p *job) endJob() {
	j := p.j
	now := time.Now().UTC()
	j.Status, j.FinishedAt = models.JobStatusFor(j.TerminationReason), &now
	if j.StatusMessage != statusNoFleets && j.StatusMessage != statusNoInstances {
		j.StatusMessage = j.Status
	}
}

// stopContainer ends the job's container, best effort: a job stopped by the server gets its output
// pulled one last time, then the shim stops the container (within the stop duration, at once for an
// abort) and removes it.
func (p *job) stopContainer(ctx context.Context) {
	j := p.j
	shim, runner, err := p.agents(ctx, time.Minute)
	if err != nil {
		p.log().Warn("cannot reach the job's agents", "job", j.JobName, "err", err)
		return
	}
	abort := j.TerminationReason == models.JobAbortedByUser
	stopped := j.TerminationReason == models.JobTerminatedByUser || j.TerminationReason == models.JobTerminatedByServer ||
		j.TerminationReason == models.JobMaxDurationExceeded || abort
	if stopped && j.StartedAt != nil {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if !abort {
			_ = runner.Stop(sctx)
		}
		if resp, err := runner.Pull(sctx, j.RunnerTimestamp); err == nil {
			if err := p.saveLogs(resp); err != nil {
				p.log().Warn("cannot store logs", "job", j.JobName, "err", err)
			}
			j.RunnerTimestamp = max(j.RunnerTimestamp, resp.LastUpdated)
		}
		cancel()
	}
	if shim == nil {
		return // a container backend's machine goes with the job
	}
	timeout := uint(10)
	if sd := j.Spec.StopDuration; sd != nil && *sd < 10 {
		timeout = uint(*sd)
	}
	if abort {
		timeout = 0
	}
	tctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	_, err = shim.TerminateTask(tctx, j.ID, agentapi.TerminateRequest{TerminationReason: strings.ToUpper(j.TerminationReason),
		TerminationMessage: j.TerminationReasonMessage, Timeout: timeout})
	if err != nil && !agentapi.IsStatus(err, http.StatusNotFound) {
		p.log().Warn("cannot terminate the job's container", "job", j.JobName, "err", err)
		return
	}
	if err := shim.RemoveTask(tctx, j.ID); err != nil && !agentapi.IsStatus(err, http.StatusNotFound) {
		p.log().Warn("cannot remove the job's container", "job", j.JobName, "err", err)
	}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
