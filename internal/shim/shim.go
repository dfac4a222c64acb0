// Package shim is dstack-shim: the agent on each host. It runs one container per task through a
// container Runtime (Docker), with dstack-runner bind-mounted as the container's entrypoint, serves the
// shim HTTP API v2 (dstack-spec §7.2), writes host_info.json, and after a restart recovers its tasks
// from the containers it labelled.
package shim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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
	"github.com/dstackgo/dstack/internal/hostinfo"
)

// Config configures a shim.
type Config struct {
	Home              string // /root/.dstack: host_info.json, shim_id, runners/<task>/
	HTTPPort          int    // 10998
	ListenHost        string // address to bind; empty binds all
	RunnerBinaryPath  string // /usr/local/bin/dstack-runner
	RunnerDownloadURL string // fetched at start when RunnerBinaryPath is missing
	RunnerHTTPPort    int    // 10999
	RunnerSSHPort     int    // 10022
	SSHKeys           []string
	Privileged        bool
	// PJRTDevice, when set (TPU on Google's TPU VMs), is passed to job containers as PJRT_DEVICE so
	// that JAX/PyTorch XLA find the accelerator.
	PJRTDevice string
	// NetworkContainer makes job containers join this container's network namespace instead of the
	// host's or a bridge (test harness only: a shim inside a "host" container on a shared engine).
	NetworkContainer string
	// VolumesRoot is where volumes are mounted on the host (/mnt/disks).
	VolumesRoot string
	PullTimeout time.Duration // 20 min
	Logger      *slog.Logger
}

func (c *Config) defaults() {
	if c.Home == "" {
		c.Home = "/root/.dstack"
	}
	if c.HTTPPort == 0 {
		c.HTTPPort = agentapi.ShimHTTPPort
	}
	if c.RunnerBinaryPath == "" {
		c.RunnerBinaryPath = "/usr/local/bin/dstack-runner"
	}
	if c.RunnerHTTPPort == 0 {
		c.RunnerHTTPPort = agentapi.RunnerHTTPPort
	}
	if c.RunnerSSHPort == 0 {
		c.RunnerSSHPort = agentapi.RunnerSSHPort
	}
	if c.VolumesRoot == "" {
		c.VolumesRoot = "/mnt/disks"
	}
	if c.PullTimeout == 0 {
		c.PullTimeout = 20 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
}

// Shim manages the tasks of one host.
type Shim struct {
	cfg    Config
	rt     Runtime
	log    *slog.Logger
	id     string
	keys   *hostKeys
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // task goroutines, so Close returns only once they stopped writing

	mu       sync.Mutex
	tasks    map[string]*task
	gpus     []hostinfo.GPU
	gpuLocks map[string]string // GPU id → task id
}

// New returns a shim using rt. It creates Home and the shim's id (Home/shim_id), which labels its
// containers.
func New(cfg Config, rt Runtime) (*Shim, error) {
	cfg.defaults()
	if err := os.MkdirAll(filepath.Join(cfg.Home, "runners"), 0o755); err != nil {
		return nil, fmt.Errorf("shim home: %w", err)
	}
	id, err := loadOrCreateID(filepath.Join(cfg.Home, "shim_id"))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Shim{
		cfg:      cfg,
		rt:       rt,
		log:      cfg.Logger,
		id:       id,
		keys:     &hostKeys{path: defaultAuthorizedKeysPath},
		ctx:      ctx,
		cancel:   cancel,
		tasks:    map[string]*task{},
		gpuLocks: map[string]string{},
	}, nil
}

func loadOrCreateID(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(data)) != "" {
		return strings.TrimSpace(string(data)), nil
	}
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	id := hex.EncodeToString(b)
	if err := os.WriteFile(path, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return id, nil
}

// ID returns the shim's id (the value of the dstack.shim.id label of its containers).
func (s *Shim) ID() string { return s.id }

// Start writes host_info.json, fetches the runner binary when it is missing, and recovers the tasks
// of containers this shim created earlier.
func (s *Shim) Start(ctx context.Context) error {
	info := hostinfo.Collect(ctx, s.cfg.Home)
	s.mu.Lock()
	s.gpus = info.GPUs
	s.mu.Unlock()
	if err := hostinfo.Write(filepath.Join(s.cfg.Home, hostinfo.FileName), info); err != nil {
		return err
	}
	s.log.Info("host info written", "cpus", info.CPUs, "memory", info.Memory, "gpus", len(info.GPUs), "addresses", info.Addresses)
	if err := s.ensureRunner(ctx); err != nil {
		return err
	}
	return s.recover(ctx)
}

// Close stops the background work; containers keep running.
func (s *Shim) Close() {
	s.cancel()
	s.wg.Wait()
}

// spawn runs f in a goroutine that Close waits for.
func (s *Shim) spawn(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// ensureRunner downloads the runner binary when it is missing and a URL is set.
func (s *Shim) ensureRunner(ctx context.Context) error {
	path := s.cfg.RunnerBinaryPath
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	if s.cfg.RunnerDownloadURL == "" {
		s.log.Warn("the runner binary is missing and no download URL is set; tasks will fail", "path", path)
		return nil
	}
	s.log.Info("downloading the runner", "url", s.cfg.RunnerDownloadURL, "path", path)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.RunnerDownloadURL, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("download the runner: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("download the runner: %s: HTTP %d", s.cfg.RunnerDownloadURL, resp.StatusCode)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".dstack-runner-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, resp.Body); err != nil {
		tmp.Close()
		return fmt.Errorf("download the runner: %w", err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ListenAndServe serves the API on ListenHost:HTTPPort until ctx ends.
func (s *Shim) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", net.JoinHostPort(s.cfg.ListenHost, strconv.Itoa(s.cfg.HTTPPort)))
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Serve serves the API on ln until ctx ends.
func (s *Shim) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("shim started", "http", ln.Addr().String(), "version", agentapi.Version, "id", s.id)
	select {
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}
