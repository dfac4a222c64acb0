// Package runner is dstack-runner: the agent inside the job container. It takes the job over HTTP
// (submit, code, run), executes it, keeps its output and states for the server to pull, streams the
// output to attached clients over a WebSocket, and serves SSH into the container itself, so that any
// image works, even one without sshd.
//
// HTTP state machine (dstack-spec §7.3): WaitSubmit -(submit)-> WaitCode -(upload_code)-> WaitRun
// -(run)-> ServeLogs; a request in the wrong state is answered 409.
package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dstackgo/dstack/internal/agentapi"
)

// Config configures a runner.
type Config struct {
	HTTPPort   int    // 10999
	SSHPort    int    // 10022; what the cluster's ~/.ssh/config points at
	ListenHost string // address to bind both servers to; empty binds all
	TempDir    string // /tmp/runner: logs, the uploaded code, the MPI hostfile
	HomeDir    string // /root
	WorkingDir string // /workflow: the code is extracted here; the job's working_dir is relative to it
	// SSHKeys are the authorized_keys lines the SSH server accepts, besides those of
	// HomeDir/.ssh/authorized_keys and the job's own key.
	SSHKeys []string
	// KillGrace is the time between SIGTERM and SIGKILL when the job is stopped (10 s).
	KillGrace time.Duration
	// Logger receives the runner's own logs (besides runner_logs); nil writes text to stderr.
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.HTTPPort == 0 {
		c.HTTPPort = agentapi.RunnerHTTPPort
	}
	if c.SSHPort == 0 {
		c.SSHPort = agentapi.RunnerSSHPort
	}
	if c.TempDir == "" {
		c.TempDir = agentapi.RunnerTempDirInJob
	}
	if c.HomeDir == "" {
		c.HomeDir = agentapi.RunnerHomeDirInJob
	}
	if c.WorkingDir == "" {
		c.WorkingDir = agentapi.RunnerWorkingDir
	}
	if c.KillGrace == 0 {
		c.KillGrace = 10 * time.Second
	}
}

// Runner executes one job.
type Runner struct {
	cfg     Config
	log     *slog.Logger
	events  *events
	metrics metricsSource
	conns   *connTracker
	started time.Time

	mu          sync.Mutex
	state       string
	body        agentapi.SubmitBody
	env         map[string]string // the job's environment, once it started (SSH sessions get it too)
	dir         string            // the job's working directory, once it started
	proc        *os.Process
	jobDone     chan struct{} // closed once the final state is recorded
	stopReason  string
	stopMessage string
	jobLog      *os.File

	drainOnce sync.Once
	drained   chan struct{} // closed once a pull delivered the final state and all before it
}

// New returns a runner waiting for a submit. It creates TempDir and logs there.
func New(cfg Config) (*Runner, error) {
	cfg.defaults()
	if err := os.MkdirAll(cfg.TempDir, 0o755); err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	r := &Runner{
		cfg:     cfg,
		events:  newEvents(),
		metrics: defaultMetricsSource(),
		started: time.Now(),
		state:   agentapi.RunnerWaitSubmit,
		drained: make(chan struct{}),
	}
	r.conns = newConnTracker(r.started)
	sinks := []io.Writer{logWriter{r.events}}
	if f, err := os.OpenFile(filepath.Join(cfg.TempDir, "runner.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
		sinks = append(sinks, f)
	}
	if f, err := os.OpenFile(filepath.Join(cfg.TempDir, "job.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
		r.jobLog = f
	}
	var handler slog.Handler = slog.NewTextHandler(io.MultiWriter(sinks...), &slog.HandlerOptions{Level: slog.LevelInfo})
	if cfg.Logger != nil {
		handler = teeHandler{handler, cfg.Logger.Handler()}
	} else {
		handler = teeHandler{handler, slog.NewTextHandler(os.Stderr, nil)}
	}
	r.log = slog.New(handler)
	return r, nil
}

// Drained is closed once a pull has delivered the final state and everything before it: the server has
// all it needs and the runner may exit.
func (r *Runner) Drained() <-chan struct{} { return r.drained }

// State returns the HTTP state (agentapi.RunnerWait*, RunnerServeLogs).
func (r *Runner) State() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state
}

// Handler returns the HTTP API.
func (r *Runner) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/healthcheck", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, agentapi.HealthcheckResponse{Service: agentapi.RunnerService, Version: agentapi.Version})
	})
	mux.HandleFunc("GET /api/metrics", func(w http.ResponseWriter, req *http.Request) {
		writeJSON(w, r.metrics.collect(req.Context()))
	})
	mux.HandleFunc("POST /api/submit", r.handleSubmit)
	mux.HandleFunc("POST /api/upload_code", r.handleUploadCode)
	mux.HandleFunc("POST /api/run", r.handleRun)
	mux.HandleFunc("GET /api/pull", r.handlePull)
	mux.HandleFunc("POST /api/stop", func(w http.ResponseWriter, _ *http.Request) {
		r.log.Info("stop requested")
		r.stopJob(agentapi.ReasonTerminatedByServer, "Stopped by the server")
		writeJSON(w, struct{}{})
	})
	mux.HandleFunc("GET /logs_ws", r.handleLogsWS)
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// expect answers 409 and returns false unless the runner is in state want; r.mu is held.
func (r *Runner) expect(w http.ResponseWriter, want string) bool {
	if r.state == want {
		return true
	}
	http.Error(w, fmt.Sprintf("the runner is in state %s, not %s", r.state, want), http.StatusConflict)
	return false
}

func (r *Runner) handleSubmit(w http.ResponseWriter, req *http.Request) {
	var body agentapi.SubmitBody
	if err := json.NewDecoder(io.LimitReader(req.Body, 64<<20)).Decode(&body); err != nil {
		http.Error(w, "invalid submit body: "+err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.expect(w, agentapi.RunnerWaitSubmit) {
		return
	}
	r.body = body
	r.state = agentapi.RunnerWaitCode
	r.log.Info("job submitted", "run", body.Spec().RunName, "job_num", body.JobSpec.JobNum)
	writeJSON(w, struct{}{})
}

func (r *Runner) handleUploadCode(w http.ResponseWriter, req *http.Request) {
	if req.ContentLength > agentapi.MaxCodeSize {
		http.Error(w, fmt.Sprintf("the code is larger than %d bytes", agentapi.MaxCodeSize), http.StatusRequestEntityTooLarge)
		return
	}
	data, err := io.ReadAll(io.LimitReader(req.Body, agentapi.MaxCodeSize+1))
	if err != nil {
		http.Error(w, "cannot read the code: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(data) > agentapi.MaxCodeSize {
		http.Error(w, fmt.Sprintf("the code is larger than %d bytes", agentapi.MaxCodeSize), http.StatusRequestEntityTooLarge)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.expect(w, agentapi.RunnerWaitCode) {
		return
	}
	if len(data) > 0 {
		if err := os.WriteFile(filepath.Join(r.cfg.TempDir, "code"), data, 0o600); err != nil {
			r.log.Warn("cannot keep the code", "err", err)
		}
		isTar, err := unpackCode(data, r.cfg.WorkingDir)
		if err != nil {
			http.Error(w, "cannot extract the code: "+err.Error(), http.StatusBadRequest)
			return
		}
		if isTar {
			r.log.Info("code extracted", "bytes", len(data), "dir", r.cfg.WorkingDir)
		} else {
			r.log.Warn("the code is not a tar archive; kept but not applied", "bytes", len(data), "path", filepath.Join(r.cfg.TempDir, "code"))
		}
	}
	r.state = agentapi.RunnerWaitRun
	writeJSON(w, struct{}{})
}

func (r *Runner) handleRun(w http.ResponseWriter, _ *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.expect(w, agentapi.RunnerWaitRun) {
		return
	}
	r.startJob()
	writeJSON(w, struct{}{})
}

func (r *Runner) handlePull(w http.ResponseWriter, req *http.Request) {
	var since int64
	if v := req.URL.Query().Get("timestamp"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			http.Error(w, "invalid timestamp", http.StatusBadRequest)
			return
		}
		since = n
	}
	resp, complete := r.events.pull(since)
	resp.NoConnectionsSecs = r.conns.noConnectionsSecs(time.Now())
	writeJSON(w, resp)
	if complete {
		r.drainOnce.Do(func() {
			r.log.Info("the final state was pulled")
			close(r.drained)
		})
	}
}

// ListenAndServe serves HTTP on ListenHost:HTTPPort and SSH on ListenHost:SSHPort until ctx ends
// or, when exitWhenDrained, until the final state has been pulled.
func (r *Runner) ListenAndServe(ctx context.Context, exitWhenDrained bool) error {
	httpLn, err := net.Listen("tcp", net.JoinHostPort(r.cfg.ListenHost, strconv.Itoa(r.cfg.HTTPPort)))
	if err != nil {
		return err
	}
	sshLn, err := net.Listen("tcp", net.JoinHostPort(r.cfg.ListenHost, strconv.Itoa(r.cfg.SSHPort)))
	if err != nil {
		httpLn.Close()
		return err
	}
	return r.Serve(ctx, httpLn, sshLn, exitWhenDrained)
}

// Serve serves HTTP on httpLn and SSH on sshLn (nil: no SSH). It returns when ctx ends or, when
// exitWhenDrained, once the final state has been pulled; a job still running is stopped first.
func (r *Runner) Serve(ctx context.Context, httpLn, sshLn net.Listener, exitWhenDrained bool) error {
	srv := &http.Server{Handler: r.Handler(), ReadHeaderTimeout: 30 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(httpLn) }()
	var ssh *sshServer
	if sshLn != nil {
		var err error
		ssh, err = newSSHServer(r)
		if err != nil {
			httpLn.Close()
			sshLn.Close()
			return err
		}
		go func() { errc <- ssh.serve(sshLn) }()
	}
	r.log.Info("runner started", "http", httpLn.Addr().String(), "version", agentapi.Version)
	var drained <-chan struct{}
	if exitWhenDrained {
		drained = r.drained
	}
	var err error
	select {
	case <-ctx.Done():
	case <-drained:
		r.log.Info("exiting: the server has the job's final state")
	case err = <-errc:
	}
	r.stopJob(agentapi.ReasonTerminatedByServer, "The runner is shutting down")
	waitCtx, cancel := context.WithTimeout(context.Background(), r.cfg.KillGrace+5*time.Second)
	defer cancel()
	r.mu.Lock()
	done := r.jobDone
	r.mu.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-waitCtx.Done():
		}
	}
	if ssh != nil {
		ssh.close()
	}
	shutdownCtx, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	_ = srv.Shutdown(shutdownCtx)
	if r.jobLog != nil {
		_ = r.jobLog.Close()
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// jobContext returns the job's environment and working directory for SSH sessions: the job's own once
// it started, else the runner's environment with HOME and the working directory.
func (r *Runner) jobContext() ([]string, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.env != nil {
		return renderEnv(r.env), r.dir
	}
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	env["HOME"] = r.cfg.HomeDir
	dir := r.cfg.WorkingDir
	if _, err := os.Stat(dir); err != nil {
		dir = r.cfg.HomeDir
	}
	return renderEnv(env), dir
}

// authorizedKeys returns the keys the SSH server accepts now.
func (r *Runner) authorizedKeys() []string {
	keys := append([]string{}, r.cfg.SSHKeys...)
	r.mu.Lock()
	if k := r.body.JobSpec.SSHKey; k != nil && k.Public != "" {
		keys = append(keys, k.Public)
	}
	r.mu.Unlock()
	if data, err := os.ReadFile(filepath.Join(r.cfg.HomeDir, ".ssh", "authorized_keys")); err == nil {
		keys = append(keys, strings.Split(string(data), "\n")...)
	}
	return keys
}

// teeHandler sends records to two handlers.
type teeHandler struct{ a, b slog.Handler }

func (t teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return t.a.Enabled(ctx, l) || t.b.Enabled(ctx, l)
}

func (t teeHandler) Handle(ctx context.Context, rec slog.Record) error {
	if t.a.Enabled(ctx, rec.Level) {
		_ = t.a.Handle(ctx, rec.Clone())
	}
	if t.b.Enabled(ctx, rec.Level) {
		_ = t.b.Handle(ctx, rec)
	}
	return nil
}

func (t teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return teeHandler{t.a.WithAttrs(as), t.b.WithAttrs(as)}
}

func (t teeHandler) WithGroup(name string) slog.Handler {
	return teeHandler{t.a.WithGroup(name), t.b.WithGroup(name)}
}
