package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dstackgo/dstack/internal/agentapi"
	"github.com/dstackgo/dstack/internal/hostinfo"
)

// Container labels. The shim finds its tasks again after a restart by LabelShimID and LabelTaskID.
const (
	LabelTaskID      = "dstack.task.id"
	LabelTaskName    = "dstack.task.name"
	LabelShimID      = "dstack.shim.id"
	LabelGPUs        = "dstack.task.gpus"
	LabelGPUCount    = "dstack.task.gpu"
	LabelNetworkMode = "dstack.task.network_mode"
	// LabelPorts holds "container:host,..." for a bridge-mode task in a shared network namespace.
	LabelPorts = "dstack.task.ports"
)

// Errors of the task API, mapped to HTTP statuses.
var (
	ErrTaskNotFound = errors.New("task not found")
	ErrConflict     = errors.New("conflict")
	ErrBadRequest   = errors.New("bad request")
)

type task struct {
	cfg           agentapi.TaskConfig
	created       time.Time
	status        agentapi.TaskStatus
	reason        string
	message       string
	containerID   string
	containerName string
	ports         []agentapi.PortMapping
	gpuIDs        []string
	amdDevices    []Device
	hostKeys      []string // keys this task added to the host user's authorized_keys

	cancel      context.CancelFunc // cancels the setup
	setupDone   chan struct{}      // closed when the setup ends; nil for recovered tasks
	exited      chan struct{}      // closed when the container was seen exited; nil before it started
	terminating bool
	terminated  chan struct{} // closed when a terminate request finished
	removing    bool
}

func (t *task) info() agentapi.TaskInfo {
	ports := t.ports
	if ports == nil {
		ports = []agentapi.PortMapping{}
	}
	gpus := t.gpuIDs
	if gpus == nil {
		gpus = []string{}
	}
	return agentapi.TaskInfo{
		ID:                 t.cfg.ID,
		Status:             t.status,
		TerminationReason:  t.reason,
		TerminationMessage: t.message,
		Ports:              append([]agentapi.PortMapping{}, ports...),
		ContainerName:      t.containerName,
		ContainerID:        t.containerID,
		GPUIDs:             append([]string{}, gpus...),
	}
}

// ListTasks returns the tasks, oldest first.
func (s *Shim) ListTasks() agentapi.TaskListResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := make([]*task, 0, len(s.tasks))
	for _, t := range s.tasks {
		list = append(list, t)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].created.Before(list[j].created) })
	resp := agentapi.TaskListResponse{IDs: []string{}, Tasks: []agentapi.TaskListItem{}}
	for _, t := range list {
		resp.IDs = append(resp.IDs, t.cfg.ID)
		resp.Tasks = append(resp.Tasks, agentapi.TaskListItem{ID: t.cfg.ID, Status: t.status})
	}
	return resp
}

// GetTask returns a task's info.
func (s *Shim) GetTask(id string) (agentapi.TaskInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[id]
	if !ok {
		return agentapi.TaskInfo{}, ErrTaskNotFound
	}
	return t.info(), nil
}

// SubmitTask registers a task and prepares, pulls, creates and starts its container in the
// background.
func (s *Shim) SubmitTask(cfg agentapi.TaskConfig) (agentapi.TaskInfo, error) {
	var missing []string
	for name, v := range map[string]string{"id": cfg.ID, "name": cfg.Name, "image_name": cfg.ImageName} {
		if strings.TrimSpace(v) == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return agentapi.TaskInfo{}, fmt.Errorf("%w: empty %s", ErrBadRequest, strings.Join(missing, ", "))
	}
	if nm := cfg.NetworkMode; nm != "" && nm != agentapi.NetworkModeHost && nm != agentapi.NetworkModeBridge {
		return agentapi.TaskInfo{}, fmt.Errorf("%w: unknown network_mode %q", ErrBadRequest, nm)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tasks[cfg.ID]; ok {
		return agentapi.TaskInfo{}, fmt.Errorf("%w: task %s already submitted", ErrConflict, cfg.ID)
	}
	ctx, cancel := context.WithCancel(s.ctx)
	t := &task{
		cfg:           cfg,
		created:       time.Now(),
		status:        agentapi.TaskPending,
		containerName: cfg.Name,
		cancel:        cancel,
		setupDone:     make(chan struct{}),
	}
	s.tasks[cfg.ID] = t
	s.log.Info("task submitted", "task", cfg.ID, "name", cfg.Name, "image", cfg.ImageName)
	s.spawn(func() { s.setup(ctx, t) })
	return t.info(), nil
}

// advance moves the task to status unless it is being terminated; it reports whether to go on.
func (s *Shim) advance(t *task, status agentapi.TaskStatus) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.terminating || t.status == agentapi.TaskTerminated {
		return false
	}
	t.status = status
	s.log.Info("task status", "task", t.cfg.ID, "status", status)
	return true
}

// fail terminates the task with reason unless a terminate request is in charge.
func (s *Shim) fail(t *task, reason string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.terminating || t.status == agentapi.TaskTerminated {
		return
	}
	s.log.Error("task failed", "task", t.cfg.ID, "reason", reason, "err", err)
	t.status = agentapi.TaskTerminated
	t.reason, t.message = reason, err.Error()
	s.releaseGPUs(t)
}

func (s *Shim) setup(ctx context.Context, t *task) {
	defer close(t.setupDone)
	if !s.advance(t, agentapi.TaskPreparing) {
		return
	}
	if err := s.prepare(ctx, t); err != nil {
		s.fail(t, agentapi.TaskReasonExecutorError, err)
		return
	}
	if !s.advance(t, agentapi.TaskPulling) {
		return
	}
	exists, err := s.rt.ImageExists(ctx, t.cfg.ImageName)
	if err != nil {
		s.fail(t, agentapi.TaskReasonCreatingContainerError, fmt.Errorf("inspect image %s: %w", t.cfg.ImageName, err))
		return
	}
	if !exists {
		pullCtx, cancel := context.WithTimeout(ctx, s.cfg.PullTimeout)
		err := s.rt.PullImage(pullCtx, t.cfg.ImageName, RegistryAuth{Username: t.cfg.RegistryUsername, Password: t.cfg.RegistryPassword})
		cancel()
		if err != nil {
			s.fail(t, agentapi.TaskReasonCreatingContainerError, fmt.Errorf("pull image %s: %w", t.cfg.ImageName, err))
			return
		}
	}
	if !s.advance(t, agentapi.TaskCreating) {
		return
	}
	spec := s.containerSpec(t)
	id, err := s.rt.CreateContainer(ctx, spec)
	if err != nil {
		s.fail(t, agentapi.TaskReasonCreatingContainerError, fmt.Errorf("create container: %w", err))
		return
	}
	s.mu.Lock()
	t.containerID = id
	stop := t.terminating
	s.mu.Unlock()
	if stop {
		return
	}
	if err := s.rt.StartContainer(ctx, id); err != nil {
		s.fail(t, agentapi.TaskReasonCreatingContainerError, fmt.Errorf("start container: %w", err))
		return
	}
	info, err := s.rt.InspectContainer(ctx, id)
	if err != nil {
		s.log.Warn("cannot inspect the container", "task", t.cfg.ID, "err", err)
	}
	if len(info.Ports) == 0 {
		info.Ports = parsePortsLabel(spec.Labels[LabelPorts])
	}
	s.mu.Lock()
	t.ports = info.Ports
	t.exited = make(chan struct{})
	if !t.terminating && t.status != agentapi.TaskTerminated {
		t.status = agentapi.TaskRunning
		s.log.Info("task status", "task", t.cfg.ID, "status", t.status, "container", id)
	}
	s.mu.Unlock()
	s.spawn(func() { s.watch(t, id) })
}

// watch waits for the container to exit and terminates the task then (unless a terminate request
// is in charge).
func (s *Shim) watch(t *task, id string) {
	code, err := -1, error(nil)
	for {
		code, err = s.rt.WaitContainer(s.ctx, id)
		if s.ctx.Err() != nil {
			return // the shim stops; the container keeps running and is recovered later
		}
		if err == nil || errors.Is(err, ErrNotFound) {
			break
		}
		// The engine may have hiccuped: the container may still run.
		info, ierr := s.rt.InspectContainer(s.ctx, id)
		if ierr == nil && !info.Running {
			code, err = info.ExitCode, nil
			break
		}
		if ierr != nil && errors.Is(ierr, ErrNotFound) {
			break
		}
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	close(t.exited)
	if t.terminating || t.status == agentapi.TaskTerminated {
		return
	}
	t.status = agentapi.TaskTerminated
	switch {
	case err != nil:
		t.reason, t.message = agentapi.TaskReasonExecutorError, "the container is gone: "+err.Error()
	case code == 0:
		t.reason, t.message = agentapi.TaskReasonDoneByRunner, ""
	default:
		t.reason, t.message = agentapi.TaskReasonContainerExitedWithError, fmt.Sprintf("Exit code %d", code)
	}
	s.log.Info("task container exited", "task", t.cfg.ID, "exit_code", code, "reason", t.reason)
	s.releaseGPUs(t)
}

// TerminateTask stops the task's container (SIGTERM, SIGKILL after req.Timeout seconds), or abandons
// its setup, and records the request's reason. A terminated task is returned as it is.
func (s *Shim) TerminateTask(ctx context.Context, id string, req agentapi.TerminateRequest) (agentapi.TaskInfo, error) {
	s.mu.Lock()
	t, ok := s.tasks[id]
	if !ok {
		s.mu.Unlock()
		return agentapi.TaskInfo{}, ErrTaskNotFound
	}
	if t.status == agentapi.TaskTerminated && !t.terminating {
		info := t.info()
		s.mu.Unlock()
		return info, nil
	}
	if t.terminating {
		// Another request is stopping it: wait for that one.
		done := t.terminated
		s.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return agentapi.TaskInfo{}, ctx.Err()
		}
		return s.GetTask(id)
	}
	t.terminating = true
	t.terminated = make(chan struct{})
	cancel, setupDone := t.cancel, t.setupDone
	s.mu.Unlock()
	s.log.Info("terminating task", "task", id, "reason", req.TerminationReason, "timeout", req.Timeout)

	if cancel != nil {
		cancel()
	}
	if setupDone != nil {
		<-setupDone
	}
	s.mu.Lock()
	cid, exited := t.containerID, t.exited
	s.mu.Unlock()
	var stopErr error
	if cid != "" {
		timeout := time.Duration(req.Timeout) * time.Second
		stopCtx, cancelStop := context.WithTimeout(context.Background(), timeout+time.Minute)
		stopErr = s.rt.StopContainer(stopCtx, cid, timeout)
		cancelStop()
		if errors.Is(stopErr, ErrNotFound) {
			stopErr = nil
		}
		if exited != nil && stopErr == nil {
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t.reason, t.message = req.TerminationReason, req.TerminationMessage
	t.status = agentapi.TaskTerminated
	if stopErr != nil {
		s.log.Error("cannot stop the container", "task", id, "err", stopErr)
		if t.message == "" {
			t.message = "stop failed: " + stopErr.Error()
		}
	}
	t.terminating = false
	close(t.terminated)
	s.releaseGPUs(t)
	return t.info(), nil
}

// RemoveTask removes a terminated task's container and files; a task not terminated is a conflict.
func (s *Shim) RemoveTask(ctx context.Context, id string) error {
	s.mu.Lock()
	t, ok := s.tasks[id]
	if !ok {
		s.mu.Unlock()
		return ErrTaskNotFound
	}
	if t.status != agentapi.TaskTerminated || t.terminating || t.removing {
		s.mu.Unlock()
		return fmt.Errorf("%w: task %s is %s", ErrConflict, id, t.status)
	}
	t.removing = true
	cid, keys, user := t.containerID, t.hostKeys, t.cfg.HostSSHUser
	s.mu.Unlock()

	if cid != "" {
		if err := s.rt.RemoveContainer(ctx, cid); err != nil {
			s.mu.Lock()
			t.removing = false
			s.mu.Unlock()
			return fmt.Errorf("remove container: %w", err)
		}
	}
	if len(keys) > 0 {
		if err := s.keys.remove(user, keys); err != nil {
			s.log.Warn("cannot remove the task's keys from authorized_keys", "task", id, "err", err)
		}
	}
	if err := os.RemoveAll(s.runnerDir(id)); err != nil {
		s.log.Warn("cannot remove the runner dir", "task", id, "err", err)
	}
	s.mu.Lock()
	delete(s.tasks, id)
	s.mu.Unlock()
	s.log.Info("task removed", "task", id)
	return nil
}

func (s *Shim) runnerDir(id string) string {
	return filepath.Join(s.cfg.Home, "runners", id)
}

// prepare makes the runner dir, checks the runner binary, takes the GPUs, mounts the volumes and
// adds the host keys.
func (s *Shim) prepare(ctx context.Context, t *task) error {
	if err := os.MkdirAll(s.runnerDir(t.cfg.ID), 0o755); err != nil {
		return fmt.Errorf("runner dir: %w", err)
	}
	if st, err := os.Stat(s.cfg.RunnerBinaryPath); err != nil || st.IsDir() {
		return fmt.Errorf("the runner binary %s is missing", s.cfg.RunnerBinaryPath)
	}
	s.mu.Lock()
	err := s.allocateGPUs(t)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if err := s.prepareVolumes(ctx, t.cfg.Volumes); err != nil {
		return err
	}
	if t.cfg.HostSSHUser != "" && len(t.cfg.HostSSHKeys) > 0 {
		added, err := s.keys.add(t.cfg.HostSSHUser, t.cfg.HostSSHKeys)
		if err != nil {
			s.log.Warn("cannot add host SSH keys", "task", t.cfg.ID, "user", t.cfg.HostSSHUser, "err", err)
		}
		s.mu.Lock()
		t.hostKeys = added
		s.mu.Unlock()
		if err := writeTaskState(s.runnerDir(t.cfg.ID), taskState{HostSSHUser: t.cfg.HostSSHUser, HostKeys: added}); err != nil {
			s.log.Warn("cannot record the task's host keys", "task", t.cfg.ID, "err", err)
		}
	}
	return nil
}

// taskState is what the shim keeps in the runner dir to undo after a restart.
type taskState struct {
	HostSSHUser string   `json:"host_ssh_user"`
	HostKeys    []string `json:"host_keys"`
}

func writeTaskState(dir string, st taskState) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "shim-task.json"), data, 0o600)
}

func readTaskState(dir string) (taskState, error) {
	var st taskState
	data, err := os.ReadFile(filepath.Join(dir, "shim-task.json"))
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(data, &st)
}

// allocateGPUs takes the task's GPUs; s.mu is held. NVIDIA GPUs known from host info are taken by
// UUID, AMD ones by render node; with no host info the engine gets a count.
func (s *Shim) allocateGPUs(t *task) error {
	n := t.cfg.GPU
	if n == 0 {
		return nil
	}
	var vendor hostinfo.GPUVendor
	var ids []string
	for _, g := range s.gpus {
		switch {
		case g.Vendor == hostinfo.VendorNvidia && g.ID != "":
			vendor = g.Vendor
			ids = append(ids, g.ID)
		case g.Vendor == hostinfo.VendorAMD && g.RenderNode != "":
			vendor = g.Vendor
			ids = append(ids, g.RenderNode)
		}
	}
	if len(ids) == 0 {
		return nil // the count goes to the engine as is
	}
	var chosen []string
	if n < 0 {
		chosen = ids
	} else {
		for _, id := range ids {
			if _, taken := s.gpuLocks[id]; !taken && len(chosen) < n {
				chosen = append(chosen, id)
			}
		}
		if len(chosen) < n {
			return fmt.Errorf("%d GPUs requested, %d of %d free", n, len(chosen), len(ids))
		}
		for _, id := range chosen {
			s.gpuLocks[id] = t.cfg.ID
		}
	}
	t.gpuIDs = chosen
	if vendor == hostinfo.VendorAMD {
		t.amdDevices = []Device{{PathOnHost: "/dev/kfd", PathInContainer: "/dev/kfd"}}
		for _, p := range chosen {
			t.amdDevices = append(t.amdDevices, Device{PathOnHost: p, PathInContainer: p})
		}
	}
	return nil
}

// releaseGPUs frees the task's GPUs; s.mu is held.
func (s *Shim) releaseGPUs(t *task) {
	for id, owner := range s.gpuLocks {
		if owner == t.cfg.ID {
			delete(s.gpuLocks, id)
		}
	}
}

// containerSpec builds the task's container: the image with dstack-runner bind-mounted as its
// entrypoint.
func (s *Shim) containerSpec(t *task) ContainerSpec {
	cfg := t.cfg
	keys := append([]string{}, cfg.ContainerSSHKeys...)
	for _, k := range s.cfg.SSHKeys {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	spec := ContainerSpec{
		Name:       cfg.Name,
		Image:      cfg.ImageName,
		User:       cfg.ContainerUser,
		Entrypoint: []string{agentapi.RunnerBinaryInJob},
		Cmd: []string{
			"--http-port", strconv.Itoa(s.cfg.RunnerHTTPPort),
			"--ssh-port", strconv.Itoa(s.cfg.RunnerSSHPort),
			"--temp-dir", agentapi.RunnerTempDirInJob,
			"--home-dir", agentapi.RunnerHomeDirInJob,
			"--working-dir", agentapi.RunnerWorkingDir,
		},
		Env: []string{"DSTACK_PUBLIC_SSH_KEY=" + strings.Join(keys, "\n")},
		Labels: map[string]string{
			LabelTaskID:      cfg.ID,
			LabelTaskName:    cfg.Name,
			LabelShimID:      s.id,
			LabelGPUs:        strings.Join(t.gpuIDs, ","),
			LabelGPUCount:    strconv.Itoa(cfg.GPU),
			LabelNetworkMode: cfg.NetworkMode,
		},
		Binds: []string{
			s.cfg.RunnerBinaryPath + ":" + agentapi.RunnerBinaryInJob + ":ro",
			s.runnerDir(cfg.ID) + ":" + agentapi.RunnerTempDirInJob,
		},
		NanoCPUs:   int64(cfg.CPU * 1e9),
		Memory:     cfg.Memory,
		ShmSize:    cfg.ShmSize,
		Privileged: cfg.Privileged || s.cfg.Privileged,
	}
	if s.cfg.PJRTDevice != "" {
		spec.Env = append(spec.Env, "PJRT_DEVICE="+s.cfg.PJRTDevice)
	}
	switch {
	case s.cfg.NetworkContainer != "" && cfg.NetworkMode == agentapi.NetworkModeBridge:
		// A bridge-mode task (one of several on the host, on its blocks) where the job containers
		// share the host's network namespace (the test harness): its runner listens on free ports
		// instead, reported as if published.
		spec.NetworkMode = "container:" + s.cfg.NetworkContainer
		var pairs []string
		for i, p := range []int{s.cfg.RunnerHTTPPort, s.cfg.RunnerSSHPort} {
			free, err := unusedPort()
			if err != nil {
				s.log.Warn("cannot find a free port; the task's runner may not start", "task", cfg.ID, "err", err)
				break
			}
			spec.Cmd[2*i+1] = strconv.Itoa(free)
			pairs = append(pairs, fmt.Sprintf("%d:%d", p, free))
		}
		spec.Labels[LabelPorts] = strings.Join(pairs, ",")
	case s.cfg.NetworkContainer != "":
		spec.NetworkMode = "container:" + s.cfg.NetworkContainer
	case cfg.NetworkMode == agentapi.NetworkModeBridge:
		spec.NetworkMode = "bridge"
		spec.PublishPorts = []int{s.cfg.RunnerHTTPPort, s.cfg.RunnerSSHPort}
	default:
		spec.NetworkMode = "host"
	}
	for _, vm := range cfg.VolumeMounts {
		spec.Binds = append(spec.Binds, s.volumePath(vm.Name)+":"+vm.Path)
	}
	for _, im := range cfg.InstanceMounts {
		if im.Optional {
			if _, err := os.Stat(im.InstancePath); err != nil {
				continue
			}
		}
		spec.Binds = append(spec.Binds, im.InstancePath+":"+im.Path)
	}
	for _, d := range cfg.GPUDevices {
		spec.Devices = append(spec.Devices, Device{PathOnHost: d.PathOnHost, PathInContainer: d.PathInContainer})
	}
	if len(t.amdDevices) > 0 {
		spec.Devices = append(spec.Devices, t.amdDevices...)
		spec.GroupAdd = []string{"video"}
		spec.SecurityOpt = []string{"seccomp=unconfined"}
	} else if cfg.GPU != 0 && !s.hasAMD() {
		if len(t.gpuIDs) > 0 && cfg.GPU > 0 {
			spec.NVIDIAGPUIDs = t.gpuIDs
		} else {
			spec.NVIDIAGPUCount = cfg.GPU
		}
	}
	return spec
}

func (s *Shim) hasAMD() bool {
	for _, g := range s.gpus {
		if g.Vendor == hostinfo.VendorAMD {
			return true
		}
	}
	return false
}

// recover rebuilds the task list from the containers this shim created before it restarted.
func (s *Shim) recover(ctx context.Context) error {
	list, err := s.rt.ListContainers(ctx, map[string]string{LabelShimID: s.id})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range list {
		id := c.Labels[LabelTaskID]
		if id == "" {
			continue
		}
		if _, ok := s.tasks[id]; ok {
			continue
		}
		t := &task{
			cfg:           agentapi.TaskConfig{ID: id, Name: c.Labels[LabelTaskName], NetworkMode: c.Labels[LabelNetworkMode]},
			created:       time.Now(),
			containerID:   c.ID,
			containerName: c.Name,
			ports:         c.Ports,
		}
		if len(t.ports) == 0 {
			t.ports = parsePortsLabel(c.Labels[LabelPorts])
		}
		if g := c.Labels[LabelGPUs]; g != "" {
			t.gpuIDs = strings.Split(g, ",")
		}
		if n, _ := strconv.Atoi(c.Labels[LabelGPUCount]); n > 0 {
			t.cfg.GPU = n
		}
		if st, err := readTaskState(s.runnerDir(id)); err == nil {
			t.cfg.HostSSHUser, t.hostKeys = st.HostSSHUser, st.HostKeys
		}
		if c.Running {
			t.status = agentapi.TaskRunning
			t.exited = make(chan struct{})
			if t.cfg.GPU > 0 {
				for _, g := range t.gpuIDs {
					s.gpuLocks[g] = id
				}
			}
			s.spawn(func() { s.watch(t, c.ID) })
		} else {
			t.status = agentapi.TaskTerminated
			if c.ExitCode == 0 {
				t.reason = agentapi.TaskReasonDoneByRunner
			} else {
				t.reason = agentapi.TaskReasonContainerExitedWithError
				t.message = fmt.Sprintf("Exit code %d", c.ExitCode)
			}
		}
		s.tasks[id] = t
		s.log.Info("task recovered", "task", id, "status", t.status, "container", c.ID)
	}
	return nil
}

// unusedPort is a TCP port nothing listens on now.
func unusedPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// parsePortsLabel reads LabelPorts.
func parsePortsLabel(v string) []agentapi.PortMapping {
	var out []agentapi.PortMapping
	for _, pair := range strings.Split(v, ",") {
		c, h, ok := strings.Cut(pair, ":")
		cn, err1 := strconv.Atoi(c)
		hn, err2 := strconv.Atoi(h)
		if ok && err1 == nil && err2 == nil {
			out = append(out, agentapi.PortMapping{Container: cn, Host: hn})
		}
	}
	return out
}
