package shim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/agentapi"
	"github.com/dstackgo/dstack/internal/hostinfo"
)

type testShim struct {
	s      *Shim
	rt     *fakeRuntime
	client *agentapi.ShimClient
	home   string
	cfg    Config
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestShim(t *testing.T, rt *fakeRuntime, mod func(*Config)) *testShim {
	t.Helper()
	dir := t.TempDir()
	runner := filepath.Join(dir, "bin", "dstack-runner")
	_ = os.MkdirAll(filepath.Dir(runner), 0o755)
	if err := os.WriteFile(runner, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Home:             filepath.Join(dir, "home"),
		RunnerBinaryPath: runner,
		SSHKeys:          []string{"ssh-ed25519 AAAAshim shim@host"},
		VolumesRoot:      filepath.Join(dir, "volumes"),
		Logger:           quietLogger(),
	}
	if mod != nil {
		mod(&cfg)
	}
	return startTestShim(t, cfg, rt)
}

func startTestShim(t *testing.T, cfg Config, rt *fakeRuntime) *testShim {
	t.Helper()
	s, err := New(cfg, rt)
	if err != nil {
		t.Fatal(err)
	}
	s.keys.path = func(string) (string, int, int, error) {
		return filepath.Join(cfg.Home, "authorized_keys"), os.Getuid(), os.Getgid(), nil
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		srv.Close()
		s.Close()
	})
	return &testShim{s: s, rt: rt, client: agentapi.NewShimClient(srv.URL, nil), home: cfg.Home, cfg: cfg}
}

func taskConfig(id string) agentapi.TaskConfig {
	return agentapi.TaskConfig{
		ID:               id,
		Name:             "run-" + id + "-0-0",
		ImageName:        "busybox:test",
		ContainerUser:    "root",
		CPU:              1.5,
		Memory:           2 << 30,
		ShmSize:          1 << 30,
		ContainerSSHKeys: []string{"ssh-ed25519 AAAAproject project", "ssh-ed25519 AAAAuser user"},
		InstanceMounts:   []agentapi.InstanceMountPoint{{InstancePath: "/mnt/data", Path: "/data"}},
		Volumes:          []agentapi.VolumeInfo{{Backend: "local", Name: "vol1", VolumeID: "vol1"}},
		VolumeMounts:     []agentapi.VolumeMountPoint{{Name: "vol1", Path: "/vol"}},
	}
}

// waitStatus polls the task until it has status.
func (ts *testShim) waitStatus(t *testing.T, id string, status agentapi.TaskStatus) agentapi.TaskInfo {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var info agentapi.TaskInfo
	var err error
	for time.Now().Before(deadline) {
		info, err = ts.client.GetTask(context.Background(), id)
		if err == nil && info.Status == status {
			return info
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("task %s: want %s, last %+v %v", id, status, info, err)
	return info
}

func TestHealthcheckAndEmptyList(t *testing.T) {
	ts := newTestShim(t, newFakeRuntime(), nil)
	ctx := context.Background()
	h, err := ts.client.Healthcheck(ctx)
	if err != nil || h.Service != "dstack-shim" || h.Version == "" {
		t.Fatalf("%+v %v", h, err)
	}
	list, err := ts.client.ListTasks(ctx)
	if err != nil || list.IDs == nil || len(list.IDs) != 0 || list.Tasks == nil {
		t.Fatalf("%+v %v", list, err)
	}
	if _, err := ts.client.GetTask(ctx, "nope"); !agentapi.IsStatus(err, http.StatusNotFound) {
		t.Errorf("unknown task: %v", err)
	}
	if _, err := ts.client.TerminateTask(ctx, "nope", agentapi.TerminateRequest{}); !agentapi.IsStatus(err, http.StatusNotFound) {
		t.Errorf("terminate unknown: %v", err)
	}
	if err := ts.client.RemoveTask(ctx, "nope"); !agentapi.IsStatus(err, http.StatusNotFound) {
		t.Errorf("remove unknown: %v", err)
	}
	if _, err := ts.client.InstanceHealth(ctx); err != nil {
		t.Errorf("instance health: %v", err)
	}
	// host_info.json is written at start.
	info, err := hostinfo.Read(filepath.Join(ts.home, "host_info.json"))
	if err != nil || info.CPUs == 0 || info.Memory == 0 {
		t.Errorf("host info %+v %v", info, err)
	}
}

func TestSubmitValidation(t *testing.T) {
	ts := newTestShim(t, newFakeRuntime("busybox:test"), nil)
	ctx := context.Background()
	for _, cfg := range []agentapi.TaskConfig{
		{Name: "n", ImageName: "i"},
		{ID: "x", ImageName: "i"},
		{ID: "x", Name: "n"},
		{ID: "x", Name: "n", ImageName: "i", NetworkMode: "weird"},
	} {
		if _, err := ts.client.SubmitTask(ctx, cfg); !agentapi.IsStatus(err, http.StatusBadRequest) {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
	if _, err := ts.client.SubmitTask(ctx, taskConfig("t1")); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.client.SubmitTask(ctx, taskConfig("t1")); !agentapi.IsStatus(err, http.StatusConflict) {
		t.Errorf("duplicate: %v", err)
	}
}

func TestTaskLifecycle(t *testing.T) {
	rt := newFakeRuntime("busybox:test")
	ts := newTestShim(t, rt, nil)
	ctx := context.Background()
	cfg := taskConfig("t1")
	cfg.HostSSHUser = "ubuntu"
	cfg.HostSSHKeys = []string{"ssh-ed25519 AAAAhost host-key"}
	info, err := ts.client.SubmitTask(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != "t1" || info.Status != agentapi.TaskPending {
		t.Errorf("submit answer %+v", info)
	}
	info = ts.waitStatus(t, "t1", agentapi.TaskRunning)
	if info.ContainerName != cfg.Name || info.ContainerID == "" || info.Ports == nil || len(info.Ports) != 0 {
		t.Errorf("running %+v", info)
	}
	if len(rt.pulls) != 0 {
		t.Errorf("pulled a local image: %v", rt.pulls)
	}
	c := rt.container(cfg.Name)
	spec := c.spec
	if spec.Image != "busybox:test" || spec.User != "root" || spec.NetworkMode != "host" || spec.Privileged {
		t.Errorf("spec %+v", spec)
	}
	if !slices.Equal(spec.Entrypoint, []string{"/usr/local/bin/dstack-runner"}) ||
		strings.Join(spec.Cmd, " ") != "--http-port 10999 --ssh-port 10022 --temp-dir /tmp/runner --home-dir /root --working-dir /workflow" {
		t.Errorf("command %q %q", spec.Entrypoint, spec.Cmd)
	}
	wantEnv := "DSTACK_PUBLIC_SSH_KEY=ssh-ed25519 AAAAproject project\nssh-ed25519 AAAAuser user\nssh-ed25519 AAAAshim shim@host"
	if !slices.Contains(spec.Env, wantEnv) || slices.ContainsFunc(spec.Env, func(e string) bool { return strings.HasPrefix(e, "PJRT_DEVICE=") }) {
		t.Errorf("env %q", spec.Env)
	}
	wantBinds := []string{
		ts.cfg.RunnerBinaryPath + ":/usr/local/bin/dstack-runner:ro",
		filepath.Join(ts.home, "runners", "t1") + ":/tmp/runner",
		filepath.Join(ts.cfg.VolumesRoot, "vol1") + ":/vol",
		"/mnt/data:/data",
	}
	if !slices.Equal(spec.Binds, wantBinds) {
		t.Errorf("binds %q\nwant %q", spec.Binds, wantBinds)
	}
	if spec.NanoCPUs != 1_500_000_000 || spec.Memory != 2<<30 || spec.ShmSize != 1<<30 || spec.NVIDIAGPUCount != 0 {
		t.Errorf("resources %+v", spec)
	}
	if spec.Labels[LabelTaskID] != "t1" || spec.Labels[LabelShimID] != ts.s.ID() || spec.Labels[LabelTaskName] != cfg.Name {
		t.Errorf("labels %v", spec.Labels)
	}
	if st, err := os.Stat(filepath.Join(ts.cfg.VolumesRoot, "vol1")); err != nil || !st.IsDir() {
		t.Errorf("volume dir: %v", err)
	}
	keys, _ := os.ReadFile(filepath.Join(ts.home, "authorized_keys"))
	if !strings.Contains(string(keys), "AAAAhost host-key") {
		t.Errorf("host keys not added: %q", keys)
	}
	list, _ := ts.client.ListTasks(ctx)
	if !slices.Equal(list.IDs, []string{"t1"}) || list.Tasks[0].Status != agentapi.TaskRunning {
		t.Errorf("list %+v", list)
	}

	if err := ts.client.RemoveTask(ctx, "t1"); !agentapi.IsStatus(err, http.StatusConflict) {
		t.Fatalf("remove running: %v", err)
	}
	info, err = ts.client.TerminateTask(ctx, "t1", agentapi.TerminateRequest{TerminationReason: "TERMINATED_BY_SERVER", TerminationMessage: "bye", Timeout: 7})
	if err != nil {
		t.Fatal(err)
	}
	if info.Status != agentapi.TaskTerminated || info.TerminationReason != "TERMINATED_BY_SERVER" || info.TerminationMessage != "bye" {
		t.Errorf("terminated %+v", info)
	}
	if c.stopWith != 7*time.Second || c.running {
		t.Errorf("stop timeout %s running %v", c.stopWith, c.running)
	}
	// Terminating again changes nothing.
	again, err := ts.client.TerminateTask(ctx, "t1", agentapi.TerminateRequest{TerminationReason: "OTHER"})
	if err != nil || again.TerminationReason != "TERMINATED_BY_SERVER" {
		t.Errorf("second terminate %+v %v", again, err)
	}
	if err := ts.client.RemoveTask(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.client.GetTask(ctx, "t1"); !agentapi.IsStatus(err, http.StatusNotFound) {
		t.Errorf("after remove: %v", err)
	}
	if rt.container(cfg.Name) != nil {
		t.Error("container not removed")
	}
	if _, err := os.Stat(filepath.Join(ts.home, "runners", "t1")); !os.IsNotExist(err) {
		t.Errorf("runner dir left: %v", err)
	}
	keys, _ = os.ReadFile(filepath.Join(ts.home, "authorized_keys"))
	if strings.Contains(string(keys), "host-key") {
		t.Errorf("host keys left: %q", keys)
	}
}

func TestPullWithAuthAndFailure(t *testing.T) {
	rt := newFakeRuntime()
	ts := newTestShim(t, rt, nil)
	ctx := context.Background()
	cfg := taskConfig("t1")
	cfg.RegistryUsername, cfg.RegistryPassword = "user", "pass"
	if _, err := ts.client.SubmitTask(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	ts.waitStatus(t, "t1", agentapi.TaskRunning)
	if !slices.Equal(rt.pulls, []string{"busybox:test"}) || rt.pullAuth[0] != (RegistryAuth{"user", "pass"}) {
		t.Errorf("pulls %v %v", rt.pulls, rt.pullAuth)
	}

	rt.pullErr = errors.New("unauthorized")
	cfg = taskConfig("t2")
	cfg.ImageName = "private/image:1"
	if _, err := ts.client.SubmitTask(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	info := ts.waitStatus(t, "t2", agentapi.TaskTerminated)
	if info.TerminationReason != agentapi.TaskReasonCreatingContainerError || !strings.Contains(info.TerminationMessage, "unauthorized") {
		t.Errorf("%+v", info)
	}
}

func TestTerminateWhilePulling(t *testing.T) {
	rt := newFakeRuntime()
	rt.pullBlock = true
	ts := newTestShim(t, rt, nil)
	ctx := context.Background()
	if _, err := ts.client.SubmitTask(ctx, taskConfig("t1")); err != nil {
		t.Fatal(err)
	}
	ts.waitStatus(t, "t1", agentapi.TaskPulling)
	info, err := ts.client.TerminateTask(ctx, "t1", agentapi.TerminateRequest{TerminationReason: "TERMINATED_BY_USER", Timeout: 0})
	if err != nil {
		t.Fatal(err)
	}
	if info.Status != agentapi.TaskTerminated || info.TerminationReason != "TERMINATED_BY_USER" || info.ContainerID != "" {
		t.Errorf("%+v", info)
	}
	if err := ts.client.RemoveTask(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
}

func TestContainerExit(t *testing.T) {
	rt := newFakeRuntime("busybox:test")
	ts := newTestShim(t, rt, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		id     string
		code   int
		reason string
		msg    string
	}{
		{"ok", 0, agentapi.TaskReasonDoneByRunner, ""},
		{"bad", 3, agentapi.TaskReasonContainerExitedWithError, "Exit code 3"},
	} {
		if _, err := ts.client.SubmitTask(ctx, taskConfig(tc.id)); err != nil {
			t.Fatal(err)
		}
		info := ts.waitStatus(t, tc.id, agentapi.TaskRunning)
		rt.exit(info.ContainerID, tc.code)
		info = ts.waitStatus(t, tc.id, agentapi.TaskTerminated)
		if info.TerminationReason != tc.reason || info.TerminationMessage != tc.msg {
			t.Errorf("%s: %+v", tc.id, info)
		}
	}
}

func TestMissingRunnerBinary(t *testing.T) {
	ts := newTestShim(t, newFakeRuntime("busybox:test"), func(c *Config) { c.RunnerBinaryPath = "/nonexistent/dstack-runner" })
	if _, err := ts.client.SubmitTask(context.Background(), taskConfig("t1")); err != nil {
		t.Fatal(err)
	}
	info := ts.waitStatus(t, "t1", agentapi.TaskTerminated)
	if info.TerminationReason != agentapi.TaskReasonExecutorError || !strings.Contains(info.TerminationMessage, "runner binary") {
		t.Errorf("%+v", info)
	}
}

func TestNetworkModes(t *testing.T) {
	rt := newFakeRuntime("busybox:test")
	ts := newTestShim(t, rt, func(c *Config) { c.RunnerHTTPPort, c.RunnerSSHPort = 20999, 20022 })
	cfg := taskConfig("b")
	cfg.NetworkMode = agentapi.NetworkModeBridge
	if _, err := ts.client.SubmitTask(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	info := ts.waitStatus(t, "b", agentapi.TaskRunning)
	spec := rt.container(cfg.Name).spec
	if spec.NetworkMode != "bridge" || !slices.Equal(spec.PublishPorts, []int{20999, 20022}) {
		t.Errorf("bridge spec %+v", spec)
	}
	if len(info.Ports) != 2 || info.Port(20999) == 20999 || info.Port(20022) == 20022 {
		t.Errorf("ports %+v", info.Ports)
	}
	if !strings.Contains(strings.Join(spec.Cmd, " "), "--http-port 20999 --ssh-port 20022") {
		t.Errorf("cmd %q", spec.Cmd)
	}

	rt2 := newFakeRuntime("busybox:test")
	ts2 := newTestShim(t, rt2, func(c *Config) { c.NetworkContainer = "hostctr" })
	if _, err := ts2.client.SubmitTask(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	info = ts2.waitStatus(t, "b", agentapi.TaskRunning)
	spec = rt2.container(cfg.Name).spec
	// A bridge-mode task in the host container's network namespace (the test harness) gets free
	// ports for its runner, reported as published, so that several such tasks share the host.
	httpPort, sshPort := info.Port(agentapi.RunnerHTTPPort), info.Port(agentapi.RunnerSSHPort)
	if spec.NetworkMode != "container:hostctr" || len(spec.PublishPorts) != 0 || len(info.Ports) != 2 ||
		httpPort == agentapi.RunnerHTTPPort || httpPort == 0 || sshPort == 0 || sshPort == agentapi.RunnerSSHPort {
		t.Errorf("container network spec %+v ports %+v", spec, info.Ports)
	}
	if want := fmt.Sprintf("--http-port %d --ssh-port %d", httpPort, sshPort); !strings.Contains(strings.Join(spec.Cmd, " "), want) {
		t.Errorf("cmd %q, want %q", spec.Cmd, want)
	}
	cfg.ID, cfg.Name, cfg.NetworkMode = "h", "run-h-0-0", agentapi.NetworkModeHost
	if _, err := ts2.client.SubmitTask(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	info = ts2.waitStatus(t, "h", agentapi.TaskRunning)
	if spec = rt2.container(cfg.Name).spec; spec.NetworkMode != "container:hostctr" || len(info.Ports) != 0 {
		t.Errorf("host-mode task in the host container: %+v ports %+v", spec, info.Ports)
	}
}

func TestGPUAllocation(t *testing.T) {
	rt := newFakeRuntime("busybox:test")
	ts := newTestShim(t, rt, nil)
	ts.s.mu.Lock()
	ts.s.gpus = []hostinfo.GPU{
		{Vendor: hostinfo.VendorNvidia, Name: "NVIDIA A10G", MemoryMiB: 23028, ID: "GPU-a"},
		{Vendor: hostinfo.VendorNvidia, Name: "NVIDIA A10G", MemoryMiB: 23028, ID: "GPU-b"},
	}
	ts.s.mu.Unlock()
	ctx := context.Background()
	submit := func(id string, gpu int) agentapi.TaskInfo {
		cfg := taskConfig(id)
		cfg.GPU = gpu
		if _, err := ts.client.SubmitTask(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			info, _ := ts.client.GetTask(ctx, id)
			if info.Status == agentapi.TaskRunning || info.Status == agentapi.TaskTerminated {
				return info
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("task %s stuck", id)
		return agentapi.TaskInfo{}
	}
	one := submit("one", 1)
	if !slices.Equal(one.GPUIDs, []string{"GPU-a"}) || !slices.Equal(rt.container(taskConfig("one").Name).spec.NVIDIAGPUIDs, []string{"GPU-a"}) {
		t.Errorf("one %+v", one)
	}
	two := submit("two", 1)
	if !slices.Equal(two.GPUIDs, []string{"GPU-b"}) {
		t.Errorf("two %+v", two)
	}
	three := submit("three", 1)
	if three.Status != agentapi.TaskTerminated || !strings.Contains(three.TerminationMessage, "GPUs requested") {
		t.Errorf("three %+v", three)
	}
	all := submit("all", -1)
	if all.Status != agentapi.TaskRunning || rt.container(taskConfig("all").Name).spec.NVIDIAGPUCount != -1 {
		t.Errorf("all %+v", all)
	}
	if _, err := ts.client.TerminateTask(ctx, "one", agentapi.TerminateRequest{}); err != nil {
		t.Fatal(err)
	}
	four := submit("four", 1)
	if !slices.Equal(four.GPUIDs, []string{"GPU-a"}) {
		t.Errorf("four %+v", four)
	}
}

func TestRecovery(t *testing.T) {
	rt := newFakeRuntime("busybox:test")
	ts := newTestShim(t, rt, nil)
	ctx := context.Background()
	for _, id := range []string{"alive", "dead"} {
		cfg := taskConfig(id)
		cfg.HostSSHUser, cfg.HostSSHKeys = "ubuntu", []string{"ssh-ed25519 AAAA" + id + " " + id}
		if _, err := ts.client.SubmitTask(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		ts.waitStatus(t, id, agentapi.TaskRunning)
	}
	dead, _ := ts.client.GetTask(ctx, "dead")
	// A container of another shim on the same engine.
	_, _ = rt.CreateContainer(ctx, ContainerSpec{Name: "foreign", Labels: map[string]string{LabelTaskID: "foreign", LabelShimID: "other"}})
	ts.s.Close() // the shim goes away; its containers stay
	rt.exit(dead.ContainerID, 5)

	ts2 := startTestShim(t, ts.cfg, rt)
	if ts2.s.ID() != ts.s.ID() {
		t.Fatalf("shim id changed: %s → %s", ts.s.ID(), ts2.s.ID())
	}
	list, _ := ts2.client.ListTasks(ctx)
	if len(list.IDs) != 2 || slices.Contains(list.IDs, "foreign") {
		t.Fatalf("recovered %v", list.IDs)
	}
	alive, err := ts2.client.GetTask(ctx, "alive")
	if err != nil || alive.Status != agentapi.TaskRunning || alive.ContainerName != taskConfig("alive").Name {
		t.Errorf("alive %+v %v", alive, err)
	}
	d, _ := ts2.client.GetTask(ctx, "dead")
	if d.Status != agentapi.TaskTerminated || d.TerminationMessage != "Exit code 5" {
		t.Errorf("dead %+v", d)
	}
	// The recovered task is watched and can be terminated and removed.
	rt.exit(alive.ContainerID, 0)
	if info := ts2.waitStatus(t, "alive", agentapi.TaskTerminated); info.TerminationReason != agentapi.TaskReasonDoneByRunner {
		t.Errorf("after exit %+v", info)
	}
	for _, id := range []string{"alive", "dead"} {
		if err := ts2.client.RemoveTask(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	// The host keys the tasks added before the restart are gone with them.
	if keys, _ := os.ReadFile(filepath.Join(ts.home, "authorized_keys")); strings.Contains(string(keys), "AAAA") {
		t.Errorf("host keys left after remove: %q", keys)
	}
}

func TestRunnerDownload(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "#!/bin/sh\necho runner\n")
	}))
	defer srv.Close()
	dir := t.TempDir()
	path := filepath.Join(dir, "bin", "dstack-runner")
	ts := newTestShim(t, newFakeRuntime("busybox:test"), func(c *Config) {
		c.RunnerBinaryPath = path
		c.RunnerDownloadURL = srv.URL + "/dstack-runner-linux-amd64"
	})
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm()&0o111 == 0 {
		t.Fatalf("downloaded runner: %v %v", st, err)
	}
	if _, err := ts.client.SubmitTask(context.Background(), taskConfig("t1")); err != nil {
		t.Fatal(err)
	}
	ts.waitStatus(t, "t1", agentapi.TaskRunning)

	// A present binary is not fetched again.
	_ = os.WriteFile(path, []byte("local"), 0o755)
	s, _ := New(Config{Home: t.TempDir(), RunnerBinaryPath: path, RunnerDownloadURL: "http://127.0.0.1:1/none", Logger: quietLogger()}, newFakeRuntime())
	if err := s.ensureRunner(context.Background()); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != "local" {
		t.Error("runner replaced")
	}
}

func TestHostKeys(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, ".ssh", "authorized_keys")
	h := &hostKeys{path: func(string) (string, int, int, error) { return path, os.Getuid(), os.Getgid(), nil }}
	added, err := h.add("u", []string{"ssh-ed25519 AAAA1 a", "ssh-ed25519 AAAA2 b"})
	if err != nil || len(added) != 2 {
		t.Fatalf("%v %v", added, err)
	}
	_ = os.WriteFile(path, []byte("ssh-rsa EXISTING me\n"+"ssh-ed25519 AAAA1 a\nssh-ed25519 AAAA2 b\n"), 0o600)
	added, _ = h.add("u", []string{"ssh-ed25519 AAAA1 a", "ssh-ed25519 AAAA3 c"})
	if !slices.Equal(added, []string{"ssh-ed25519 AAAA3 c"}) {
		t.Errorf("added %v", added)
	}
	if err := h.remove("u", []string{"ssh-ed25519 AAAA1 a", "ssh-ed25519 AAAA3 c"}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if string(data) != "ssh-rsa EXISTING me\nssh-ed25519 AAAA2 b\n" {
		t.Errorf("file %q", data)
	}
}

func TestEncodeRegistryAuth(t *testing.T) {
	if s, _ := EncodeRegistryAuth("ubuntu", RegistryAuth{}); s != "" {
		t.Errorf("anonymous: %q", s)
	}
	for image, host := range map[string]string{
		"ubuntu:22.04":                  "docker.io",
		"dstackai/base:py3.11":          "docker.io",
		"ghcr.io/org/img:1":             "ghcr.io",
		"localhost:5000/img":            "localhost:5000",
		"123.dkr.ecr.aws.com/repo:tag":  "123.dkr.ecr.aws.com",
		"nvcr.io/nvidia/pytorch:24.01":  "nvcr.io",
		"registry.example.com:8443/a/b": "registry.example.com:8443",
	} {
		if got := registryHost(image); got != host {
			t.Errorf("%s: %s, want %s", image, got, host)
		}
	}
	s, err := EncodeRegistryAuth("ghcr.io/a/b", RegistryAuth{Username: "u", Password: "p"})
	if err != nil || s == "" {
		t.Fatal(err)
	}
}

// TestPJRTDevice checks that a shim started with --pjrt-device (TPU VMs) hands PJRT_DEVICE to the
// job containers.
func TestPJRTDevice(t *testing.T) {
	rt := newFakeRuntime("busybox:test")
	ts := newTestShim(t, rt, func(c *Config) { c.PJRTDevice = "TPU"; c.Privileged = true })
	if _, err := ts.client.SubmitTask(context.Background(), taskConfig("t1")); err != nil {
		t.Fatal(err)
	}
	ts.waitStatus(t, "t1", agentapi.TaskRunning)
	spec := rt.container(taskConfig("t1").Name).spec
	if !slices.Contains(spec.Env, "PJRT_DEVICE=TPU") || !spec.Privileged {
		t.Fatalf("env %q privileged %v", spec.Env, spec.Privileged)
	}
}
