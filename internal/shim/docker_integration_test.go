package shim

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"golang.org/x/crypto/ssh"

	"github.com/dstackgo/dstack/internal/agentapi"
)

// The integration test drives the real Docker Engine: it builds a job image FROM scratch holding only
// a static busybox, builds dstack-runner, runs a shim in-process and goes through a task's life: submit,
// running, runner API (submit, code, run, pull), SSH into the container, terminate, remove, and a
// running task recovered by a restarted shim. Everything it creates carries the label dstack.test and
// is removed at the end.

const testLabel = "dstack.test"

func dockerOrSkip(t *testing.T) *DockerRuntime {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	if os.Getenv("DOCKER_HOST") == "" {
		if _, err := os.Stat("/var/run/docker.sock"); err != nil {
			t.Skip("no Docker Engine: /var/run/docker.sock is absent and DOCKER_HOST is unset")
		}
	}
	rt, err := NewDockerRuntime()
	if err != nil {
		t.Skipf("no Docker client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rt.Ping(ctx); err != nil {
		rt.Close()
		t.Skipf("the Docker Engine does not answer: %v", err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}

// staticBusybox returns the path of a statically linked busybox (Debian: apt-get install busybox-static).
func staticBusybox(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("DSTACK_TEST_BUSYBOX"), "/bin/busybox", "/usr/bin/busybox"} {
		if p == "" {
			continue
		}
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		static := true
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				static = false
			}
		}
		f.Close()
		if static {
			return p
		}
	}
	t.Skip("no static busybox for the job image: apt-get install busybox-static (or set DSTACK_TEST_BUSYBOX)")
	return ""
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// buildJobImage builds FROM scratch + busybox (as /bin/sh and every other applet) and returns its tag.
func buildJobImage(t *testing.T, rt *DockerRuntime) string {
	t.Helper()
	busybox, err := os.ReadFile(staticBusybox(t))
	if err != nil {
		t.Fatal(err)
	}
	dockerfile := strings.Join([]string{
		"FROM scratch",
		"COPY busybox /bin/busybox",
		`RUN ["/bin/busybox", "mkdir", "-p", "/tmp", "/root", "/etc", "/usr/bin", "/usr/local/bin"]`,
		`RUN ["/bin/busybox", "--install", "-s", "/bin"]`,
		`RUN ["/bin/sh", "-c", "echo root:x:0:0:root:/root:/bin/sh > /etc/passwd && echo root:x:0: > /etc/group"]`,
		"ENV PATH=/usr/local/bin:/usr/bin:/bin",
		"",
	}, "\n")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{"Dockerfile", 0o644, []byte(dockerfile)}, {"busybox", 0o755, busybox}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	tag := "dstack-test-busybox:" + randomHex(4)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := rt.BuildImage(ctx, &buf, tag, map[string]string{testLabel: "shim-integration"}); err != nil {
		t.Fatalf("build the job image: %v", err)
	}
	t.Cleanup(func() {
		if err := rt.RemoveImage(context.Background(), tag); err != nil {
			t.Logf("remove image %s: %v", tag, err)
		}
	})
	return tag
}

// buildRunner compiles dstack-runner statically into dir.
func buildRunner(t *testing.T, dir string) string {
	t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	out := filepath.Join(dir, "dstack-runner")
	cmd := exec.Command(goBin, "build", "-o", out, "github.com/dstackgo/dstack/cmd/dstack-runner")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build dstack-runner: %v\n%s", err, msg)
	}
	return out
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

type liveShim struct {
	s      *Shim
	client *agentapi.ShimClient
	stop   func()
}

func startLiveShim(t *testing.T, cfg Config, rt Runtime) *liveShim {
	t.Helper()
	s, err := New(cfg, rt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = s.Serve(ctx, ln); close(done) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-done
		s.Close()
	}
	t.Cleanup(stop)
	return &liveShim{s: s, client: agentapi.NewShimClient("http://"+ln.Addr().String(), nil), stop: stop}
}

func waitTask(t *testing.T, c *agentapi.ShimClient, id string, want agentapi.TaskStatus, timeout time.Duration) agentapi.TaskInfo {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var info agentapi.TaskInfo
	var err error
	for time.Now().Before(deadline) {
		info, err = c.GetTask(context.Background(), id)
		if err == nil && (info.Status == want || (info.Status == agentapi.TaskTerminated && want != agentapi.TaskTerminated)) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || info.Status != want {
		t.Fatalf("task %s: want %s, got %+v (%v)", id, want, info, err)
	}
	return info
}

func waitRunner(t *testing.T, c *agentapi.RunnerClient) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err = c.Healthcheck(ctx)
		cancel()
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the runner does not answer: %v", err)
}

func TestDockerIntegration(t *testing.T) {
	rt := dockerOrSkip(t)
	dir := t.TempDir()
	runnerBin := buildRunner(t, dir)
	image := buildJobImage(t, rt)

	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	pubLine := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))

	cfg := Config{
		Home:             filepath.Join(dir, "home"),
		RunnerBinaryPath: runnerBin,
		RunnerHTTPPort:   freePort(t),
		RunnerSSHPort:    freePort(t),
		SSHKeys:          []string{pubLine},
		VolumesRoot:      filepath.Join(dir, "volumes"),
		Logger:           quietLogger(),
	}
	shim1 := startLiveShim(t, cfg, rt)
	shimID := shim1.s.ID()
	t.Cleanup(func() {
		// Whatever this test's shim created goes, whatever happened.
		list, _ := rt.ListContainers(context.Background(), map[string]string{LabelShimID: shimID})
		for _, c := range list {
			_ = rt.RemoveContainer(context.Background(), c.ID)
		}
	})
	ctx := context.Background()
	suffix := randomHex(3)

	// 1. A task in host network mode runs a job that fails with exit status 3.
	task1 := agentapi.TaskConfig{
		ID:             "00000000-0000-0000-0000-" + randomHex(6),
		Name:           "dstack-it-" + suffix + "-0-0",
		ImageName:      image,
		NetworkMode:    agentapi.NetworkModeHost,
		InstanceMounts: []agentapi.InstanceMountPoint{{InstancePath: filepath.Join(dir, "shared"), Path: "/shared"}},
	}
	if err := os.MkdirAll(filepath.Join(dir, "shared"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "shared", "note.txt"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := shim1.client.SubmitTask(ctx, task1); err != nil {
		t.Fatal(err)
	}
	info := waitTask(t, shim1.client, task1.ID, agentapi.TaskRunning, 2*time.Minute)
	if info.ContainerID == "" {
		t.Fatalf("no container: %+v", info)
	}
	runner := agentapi.NewRunnerClient("http://127.0.0.1:"+strconv.Itoa(cfg.RunnerHTTPPort), nil)
	waitRunner(t, runner)

	// SSH into the container through the runner's own server.
	sshClient, err := ssh.Dial("tcp", "127.0.0.1:"+strconv.Itoa(cfg.RunnerSSHPort), &ssh.ClientConfig{
		User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatalf("ssh into the container: %v", err)
	}
	sess, _ := sshClient.NewSession()
	out, err := sess.CombinedOutput("cat /shared/note.txt; ls /usr/local/bin")
	sshClient.Close()
	if err != nil || !strings.Contains(string(out), "from the host") || !strings.Contains(string(out), "dstack-runner") {
		t.Errorf("ssh exec: %q %v", out, err)
	}

	body := agentapi.SubmitBody{
		Run:     &agentapi.Run{ID: "run-1", RunSpec: agentapi.RunSpec{RunName: "it-run", Configuration: agentapi.Configuration{Type: "task"}}},
		JobSpec: agentapi.JobSpec{JobsPerReplica: 1, Commands: []string{"echo hello; echo err >&2; exit 3"}},
	}
	if err := runner.Submit(ctx, body); err != nil {
		t.Fatal(err)
	}
	if err := runner.UploadCode(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := runner.Run(ctx); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	var final *agentapi.JobStateEvent
	var since int64
	deadline := time.Now().Add(time.Minute)
	for final == nil && time.Now().Before(deadline) {
		resp, err := runner.Pull(ctx, since)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range resp.JobLogs {
			if l.Stream == agentapi.StreamStderr {
				stderr.Write(l.Message)
			} else {
				stdout.Write(l.Message)
			}
		}
		for _, s := range resp.JobStates {
			if s.State.Finished() {
				s := s
				final = &s
			}
		}
		since = resp.LastUpdated
		if final == nil {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if final == nil || final.State != agentapi.JobFailed || final.ExitStatus == nil || *final.ExitStatus != 3 ||
		final.TerminationReason != agentapi.ReasonContainerExitedWithError {
		t.Fatalf("final state %+v", final)
	}
	if stdout.String() != "hello\n" || stderr.String() != "err\n" {
		t.Errorf("stdout %q stderr %q", stdout.String(), stderr.String())
	}
	// Its final state pulled, the runner exits and the container with it.
	info = waitTask(t, shim1.client, task1.ID, agentapi.TaskTerminated, 30*time.Second)
	if info.TerminationReason != agentapi.TaskReasonDoneByRunner {
		t.Errorf("after the runner exited: %+v", info)
	}
	info, err = shim1.client.TerminateTask(ctx, task1.ID, agentapi.TerminateRequest{TerminationReason: "DONE_BY_RUNNER", Timeout: 5})
	if err != nil || info.Status != agentapi.TaskTerminated {
		t.Fatalf("terminate: %+v %v", info, err)
	}
	if err := shim1.client.RemoveTask(ctx, task1.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.InspectContainer(ctx, info.ContainerID); !errors.Is(err, ErrNotFound) {
		t.Errorf("container still there: %v", err)
	}

	// 2. Bridge mode publishes the runner's ports on the host.
	task2 := agentapi.TaskConfig{ID: "bridge-" + randomHex(6), Name: "dstack-it-" + suffix + "-bridge", ImageName: image, NetworkMode: agentapi.NetworkModeBridge}
	if _, err := shim1.client.SubmitTask(ctx, task2); err != nil {
		t.Fatal(err)
	}
	info = waitTask(t, shim1.client, task2.ID, agentapi.TaskRunning, time.Minute)
	hostPort := info.Port(cfg.RunnerHTTPPort)
	if len(info.Ports) != 2 || hostPort == cfg.RunnerHTTPPort {
		t.Fatalf("bridge ports %+v", info.Ports)
	}
	waitRunner(t, agentapi.NewRunnerClient("http://127.0.0.1:"+strconv.Itoa(hostPort), nil))
	if info, err = shim1.client.TerminateTask(ctx, task2.ID, agentapi.TerminateRequest{TerminationReason: "TERMINATED_BY_USER", Timeout: 0}); err != nil || info.Status != agentapi.TaskTerminated {
		t.Fatalf("terminate bridge task: %+v %v", info, err)
	}
	if err := shim1.client.RemoveTask(ctx, task2.ID); err != nil {
		t.Fatal(err)
	}

	// 3. A restarted shim recovers a running task.
	task3 := agentapi.TaskConfig{ID: "keep-" + randomHex(6), Name: "dstack-it-" + suffix + "-keep", ImageName: image}
	if _, err := shim1.client.SubmitTask(ctx, task3); err != nil {
		t.Fatal(err)
	}
	before := waitTask(t, shim1.client, task3.ID, agentapi.TaskRunning, time.Minute)
	waitRunner(t, runner)
	shim1.stop()

	shim2 := startLiveShim(t, cfg, rt)
	if shim2.s.ID() != shimID {
		t.Fatalf("the shim id changed across restarts")
	}
	after, err := shim2.client.GetTask(ctx, task3.ID)
	if err != nil || after.Status != agentapi.TaskRunning || after.ContainerID != before.ContainerID || after.ContainerName != task3.Name {
		t.Fatalf("recovered %+v %v (before %+v)", after, err, before)
	}
	list, _ := shim2.client.ListTasks(ctx)
	if len(list.IDs) != 1 || list.IDs[0] != task3.ID {
		t.Errorf("recovered list %v", list.IDs)
	}
	waitRunner(t, runner) // the job container was untouched
	start := time.Now()
	info, err = shim2.client.TerminateTask(ctx, task3.ID, agentapi.TerminateRequest{TerminationReason: "TERMINATED_BY_SERVER", TerminationMessage: "test over", Timeout: 2})
	if err != nil || info.Status != agentapi.TaskTerminated || info.TerminationMessage != "test over" {
		t.Fatalf("terminate recovered: %+v %v", info, err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("terminate took %s", d)
	}
	if err := shim2.client.RemoveTask(ctx, task3.ID); err != nil {
		t.Fatal(err)
	}

	shim2.stop()

	// 4. DSTACK_SHIM_NETWORK_CONTAINER: job containers join the network namespace of a "host"
	// container, so the runner answers on that container's own addresses.
	t.Run("network container", func(t *testing.T) {
		hostID, err := rt.CreateContainer(ctx, ContainerSpec{
			Name:        "dstack-it-" + suffix + "-host",
			Image:       image,
			Entrypoint:  []string{"/bin/sleep"},
			Cmd:         []string{"600"},
			Labels:      map[string]string{testLabel: "shim-integration"},
			NetworkMode: "bridge",
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = rt.RemoveContainer(context.Background(), hostID) })
		if err := rt.StartContainer(ctx, hostID); err != nil {
			t.Fatal(err)
		}
		res, err := rt.Client().ContainerInspect(ctx, hostID, client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var hostIP string
		for _, ep := range res.Container.NetworkSettings.Networks {
			if ep != nil && ep.IPAddress.IsValid() {
				hostIP = ep.IPAddress.String()
			}
		}
		if hostIP == "" {
			t.Skip("the host container has no IP address")
		}
		netCfg := cfg
		netCfg.Home = filepath.Join(dir, "home-net")
		netCfg.NetworkContainer = hostID
		shim3 := startLiveShim(t, netCfg, rt)
		t.Cleanup(func() {
			list, _ := rt.ListContainers(context.Background(), map[string]string{LabelShimID: shim3.s.ID()})
			for _, c := range list {
				_ = rt.RemoveContainer(context.Background(), c.ID)
			}
		})
		task := agentapi.TaskConfig{ID: "net-" + randomHex(6), Name: "dstack-it-" + suffix + "-net", ImageName: image}
		if _, err := shim3.client.SubmitTask(ctx, task); err != nil {
			t.Fatal(err)
		}
		info := waitTask(t, shim3.client, task.ID, agentapi.TaskRunning, time.Minute)
		jobRes, err := rt.Client().ContainerInspect(ctx, info.ContainerID, client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := jobRes.Container.HostConfig.NetworkMode; got != container.NetworkMode("container:"+hostID) {
			t.Errorf("network mode %q", got)
		}
		waitRunner(t, agentapi.NewRunnerClient("http://"+net.JoinHostPort(hostIP, strconv.Itoa(cfg.RunnerHTTPPort)), nil))
		if _, err := shim3.client.TerminateTask(ctx, task.ID, agentapi.TerminateRequest{Timeout: 1}); err != nil {
			t.Fatal(err)
		}
		if err := shim3.client.RemoveTask(ctx, task.ID); err != nil {
			t.Fatal(err)
		}
	})
}
