package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dstackgo/dstack/internal/agentapi"
)

// startJob runs the submitted job in the background; r.mu is held.
func (r *Runner) startJob() {
	r.state = agentapi.RunnerServeLogs
	r.jobDone = make(chan struct{})
	go r.runJob()
}

// runJob executes the job and records its final state.
func (r *Runner) runJob() {
	defer close(r.jobDone)
	final := r.execute()
	r.log.Info("job finished", "state", final.State, "reason", final.TerminationReason, "message", final.TerminationMessage)
	r.events.addState(final)
}

func exitStatus(code int) *int { return &code }

// execute runs the job to its end and returns its final state event.
func (r *Runner) execute() agentapi.JobStateEvent {
	r.mu.Lock()
	body := r.body
	r.mu.Unlock()
	js := body.JobSpec

	fail := func(err error) agentapi.JobStateEvent {
		r.log.Error("job failed to start", "err", err)
		return agentapi.JobStateEvent{State: agentapi.JobFailed, TerminationReason: agentapi.ReasonExecutorError, TerminationMessage: err.Error()}
	}

	argv, err := jobArgv(js)
	if err != nil {
		return fail(err)
	}
	dir := resolveDir(r.cfg.WorkingDir, js.WorkingDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(fmt.Errorf("working dir: %w", err))
	}
	hostfile, err := writeHostfile(r.cfg.TempDir, body.ClusterInfo)
	if err != nil {
		r.log.Warn("cannot write the MPI hostfile", "err", err)
	}
	env, err := jobEnv(os.Environ(), body, hostfile)
	if err != nil {
		return fail(err)
	}
	cred, home, err := jobUser(js.User, r.cfg.HomeDir)
	if err != nil {
		return fail(err)
	}
	env["HOME"] = home
	if js.SSHKey != nil {
		if err := writeClusterSSH(home, js.SSHKey, body.ClusterInfo.JobIPs, r.cfg.SSHPort, cred); err != nil {
			r.log.Warn("cannot configure SSH between the nodes", "err", err)
		}
	}
	r.mu.Lock()
	r.env, r.dir = env, dir
	r.mu.Unlock()

	cmd := exec.Command(argv[0], argv[1:]...)
	if p, err := lookPathIn(argv[0], env["PATH"]); err == nil {
		cmd.Path = p
		cmd.Err = nil
	}
	cmd.Dir = dir
	cmd.Env = renderEnv(env)
	cmd.Stdin = nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	outR, outW, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return fail(err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW

	r.log.Info("starting the job", "argv", argv, "dir", dir)
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return fail(err)
	}
	copied := make(chan struct{}, 2)
	for _, p := range []struct {
		f      *os.File
		stream string
	}{{outR, agentapi.StreamStdout}, {errR, agentapi.StreamStderr}} {
		go func() {
			_, _ = io.CopyBuffer(&jobOutput{r: r, stream: p.stream}, p.f, make([]byte, 32<<10))
			copied <- struct{}{}
		}()
	}
	r.events.addState(agentapi.JobStateEvent{State: agentapi.JobRunning})

	r.mu.Lock()
	r.proc = cmd.Process
	stopped := r.stopReason
	var timer *time.Timer
	if js.MaxDuration > 0 {
		timer = time.AfterFunc(time.Duration(js.MaxDuration)*time.Second, func() {
			r.log.Info("max duration exceeded", "max_duration", js.MaxDuration)
			r.stopJob(agentapi.ReasonMaxDurationExceeded, "Max duration exceeded")
		})
	}
	r.mu.Unlock()
	if stopped != "" {
		// A stop arrived while the job was starting.
		r.signalJob(cmd.Process)
	}

	err = cmd.Wait()
	if timer != nil {
		timer.Stop()
	}
	// Whatever the job left running in its process group ends with it; the output is read to its
	// end unless a process outside the group still holds it.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	deadline := time.After(2 * time.Second)
wait:
	for range 2 {
		select {
		case <-copied:
		case <-deadline:
			r.log.Warn("a process outside the job's process group keeps its output open")
			break wait
		}
	}
	outR.Close()
	errR.Close()
	r.mu.Lock()
	r.proc = nil
	reason, message := r.stopReason, r.stopMessage
	r.mu.Unlock()

	code := 0
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	default:
		return fail(err)
	}
	if reason != "" {
		return agentapi.JobStateEvent{State: agentapi.JobTerminated, TerminationReason: reason, TerminationMessage: message, ExitStatus: exitStatus(code)}
	}
	if code == 0 {
		return agentapi.JobStateEvent{State: agentapi.JobDone, ExitStatus: exitStatus(0)}
	}
	return agentapi.JobStateEvent{
		State:              agentapi.JobFailed,
		TerminationReason:  agentapi.ReasonContainerExitedWithError,
		TerminationMessage: fmt.Sprintf("Exit status %d", code),
		ExitStatus:         exitStatus(code),
	}
}

// stopJob ends the job with reason: SIGTERM to its process group, SIGKILL after the grace period. A job
// not started yet is recorded as terminated at once. Only the first stop counts.
func (r *Runner) stopJob(reason, message string) {
	r.mu.Lock()
	if r.stopReason != "" || r.finished() {
		r.mu.Unlock()
		return
	}
	r.stopReason, r.stopMessage = reason, message
	proc := r.proc
	if r.state != agentapi.RunnerServeLogs {
		// Nothing runs: the job ends here.
		r.state = agentapi.RunnerServeLogs
		r.jobDone = make(chan struct{})
		close(r.jobDone)
		r.mu.Unlock()
		r.events.addState(agentapi.JobStateEvent{State: agentapi.JobTerminated, TerminationReason: reason, TerminationMessage: message})
		return
	}
	r.mu.Unlock()
	if proc != nil {
		r.signalJob(proc)
	}
}

// signalJob sends SIGTERM to the job's process group and SIGKILL after the grace period.
func (r *Runner) signalJob(proc *os.Process) {
	pgid := proc.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	done := r.jobDone
	go func() {
		select {
		case <-done:
		case <-time.After(r.cfg.KillGrace):
			r.log.Info("the job ignored SIGTERM, killing it", "grace", r.cfg.KillGrace)
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}
	}()
}

// finished reports whether the job has a final state; r.mu is held.
func (r *Runner) finished() bool {
	if r.jobDone == nil {
		return false
	}
	select {
	case <-r.jobDone:
		return true
	default:
		return false
	}
}

// jobOutput turns the job's writes into log events.
type jobOutput struct {
	r      *Runner
	stream string
}

func (o *jobOutput) Write(p []byte) (int, error) {
	o.r.events.addJobLog(o.stream, p)
	if o.r.jobLog != nil {
		_, _ = o.r.jobLog.Write(p)
	}
	return len(p), nil
}

// jobUser resolves the user the job runs as: nil credentials (the runner's own user) when the spec
// names none. It returns the home directory to use.
func jobUser(u *agentapi.User, defaultHome string) (*syscall.Credential, string, error) {
	if u == nil || (u.UID == nil && (u.Username == nil || *u.Username == "")) {
		return nil, defaultHome, nil
	}
	var uid, gid uint32
	home := ""
	var osUser *user.User
	var err error
	if u.UID != nil {
		uid = *u.UID
		osUser, err = user.LookupId(strconv.FormatUint(uint64(uid), 10))
	} else {
		osUser, err = user.Lookup(*u.Username)
		if err != nil {
			return nil, "", fmt.Errorf("user %s: %w", *u.Username, err)
		}
		n, _ := strconv.ParseUint(osUser.Uid, 10, 32)
		uid = uint32(n)
	}
	if err == nil {
		home = osUser.HomeDir
		n, _ := strconv.ParseUint(osUser.Gid, 10, 32)
		gid = uint32(n)
	}
	if u.GID != nil {
		gid = *u.GID
	} else if u.Groupname != nil && *u.Groupname != "" {
		g, err := user.LookupGroup(*u.Groupname)
		if err != nil {
			return nil, "", fmt.Errorf("group %s: %w", *u.Groupname, err)
		}
		n, _ := strconv.ParseUint(g.Gid, 10, 32)
		gid = uint32(n)
	}
	if uid == uint32(os.Getuid()) && gid == uint32(os.Getgid()) {
		if home == "" || uid == 0 {
			home = defaultHome
		}
		return nil, home, nil
	}
	if os.Getuid() != 0 {
		return nil, "", fmt.Errorf("cannot run the job as uid %d: the runner runs as uid %d", uid, os.Getuid())
	}
	if home == "" {
		home = "/"
	}
	return &syscall.Credential{Uid: uid, Gid: gid}, home, nil
}

// writeClusterSSH installs the job's key pair so the nodes of a cluster reach each other over the
// runners' SSH servers: the private key as ~/.ssh/dstack_job and a ~/.ssh/config block per node.
func writeClusterSSH(home string, key *agentapi.SSHKey, ips []string, port int, cred *syscall.Credential) error {
	if key.Private == "" {
		return nil
	}
	dir := filepath.Join(home, ".ssh")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	keyPath := filepath.Join(dir, "dstack_job")
	if err := os.WriteFile(keyPath, []byte(strings.TrimRight(key.Private, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("\n# dstack cluster nodes\n")
	for _, ip := range ips {
		fmt.Fprintf(&b, "Host %s\n  Port %d\n  IdentityFile %s\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n", ip, port, keyPath)
	}
	cfgPath := filepath.Join(dir, "config")
	f, err := os.OpenFile(cfgPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = io.WriteString(f, b.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if cred != nil {
		for _, p := range []string{dir, keyPath, cfgPath} {
			_ = os.Chown(p, int(cred.Uid), int(cred.Gid))
		}
	}
	return err
}

// lookPathIn finds name in the PATH of the job's environment (the runner's own PATH may differ).
func lookPathIn(name, path string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// waitJob waits until the job has its final state or ctx ends.
func (r *Runner) waitJob(ctx context.Context) error {
	r.mu.Lock()
	done := r.jobDone
	r.mu.Unlock()
	if done == nil {
		return errors.New("the job was not started")
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
