package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/dstackgo/dstack/internal/cliconfig"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/server"
	"github.com/dstackgo/dstack/internal/testhost"
	"github.com/dstackgo/dstack/internal/testhost/sshserver"
)

// dstack runs the CLI in-process and returns stdout, stderr and the exit code.
func dstack(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	root := NewRoot()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetIn(strings.NewReader(""))
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	var ee exitError
	switch {
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.code
	case err != nil:
		return out.String(), errb.String() + err.Error(), 1
	}
	return out.String(), errb.String(), 0
}

// startServer runs `dstack server` in-process with hosts' agents and the job image, and configures
// the CLI for it.
func startServer(t *testing.T, jobImage string) {
	t.Helper()
	t.Setenv("HOME", t.TempDir())
	t.Setenv("DSTACK_AGENTS_DIR", testhost.AgentsDir(t))
	t.Setenv("DSTACK_SERVER_DEFAULT_IMAGE", jobImage)
	t.Setenv("DSTACK_SERVER_METRICS_INTERVAL_SECONDS", "0.2")
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	const token = "22222222-2222-4222-8222-222222222222"
	go func() {
		done <- server.Run(ctx, server.Options{Dir: t.TempDir(), Host: "127.0.0.1", Port: 0, AdminToken: token, ConfigDisabled: true,
			Ready: func(url string, _ *models.User) { ready <- url }})
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case url := <-ready:
		writeCfg(t, cliconfig.Project{Name: "main", URL: url, Token: token, Default: true})
	case err := <-done:
		t.Fatalf("server: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start")
	}
}

func TestCLIFleetAndRuns(t *testing.T) {
	testhost.Docker(t)
	_, jobImage := testhost.Images(t)
	key, err := sshserver.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	h1, h2 := testhost.Start(t, key), testhost.Start(t, key)
	startServer(t, jobImage)
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("fleet_key", key.PrivatePEM)
	fleetFile := write("fleet.dstack.yml", "type: fleet\nname: my-fleet\nssh_config:\n  user: root\n  identity_file: "+
		filepath.Join(dir, "fleet_key")+"\n  hosts:\n    - "+h1.IP+"\n    - hostname: "+h2.IP+"\n      port: 22\n")

	out, errOut, code := dstack(t, "apply", "-f", fleetFile, "-y")
	if code != 0 || strings.Count(out, "idle") < 2 {
		t.Fatalf("fleet apply: %d\n%s\n%s", code, out, errOut)
	}
	if out, _, _ := dstack(t, "apply", "-f", fleetFile, "-y"); !strings.Contains(out, "No configuration changes detected") {
		t.Fatalf("re-apply:\n%s", out)
	}
	if out, _, code := dstack(t, "fleet"); code != 0 || !strings.Contains(out, "my-fleet") || !strings.Contains(out, "ssh") {
		t.Fatalf("fleet list:\n%s", out)
	}

	res := "resources:\n  cpu: 1..\n  memory: 0.1GB..\n  disk: 0.1GB..\n"
	task := write("task.dstack.yml", "type: task\nname: hello\ncommands:\n  - echo hello; echo oops >&2; exit 3\n"+res)
	out, errOut, code = dstack(t, "apply", "-f", task, "-y")
	if code != 1 || !strings.HasSuffix(out, "\nhello\n") || !strings.Contains(errOut, "oops\n") ||
		!strings.Contains(errOut, "exit status 3") {
		t.Fatalf("attached apply: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	out, errOut, code = dstack(t, "logs", "hello")
	if code != 0 || out != "hello\n" || errOut != "oops\n" {
		t.Fatalf("logs: %d %q %q", code, out, errOut)
	}
	if out, _, _ := dstack(t, "ps", "-a", "-v"); !strings.Contains(out, "hello") || !strings.Contains(out, "exited (3)") {
		t.Fatalf("ps:\n%s", out)
	}

	sleeper := write("sleep.dstack.yml", "type: task\nname: sleeper\ncommands:\n  - sleep 100\n"+res)
	if out, errOut, code := dstack(t, "apply", "-f", sleeper, "-y", "-d"); code != 0 {
		t.Fatalf("detached apply: %d %s %s", code, out, errOut)
	}
	waitStatus(t, "sleeper", "running")
	mdeadline := time.Now().Add(20 * time.Second)
	for {
		out, errOut, code := dstack(t, "metrics", "sleeper")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") {
			t.Fatalf("metrics: %d %q %q", code, out, errOut)
		}
		if f := strings.Fields(lines[1]); f[0] == "sleeper" && f[1] == "running" && strings.HasSuffix(f[2], "%") && strings.Contains(f[3], "MB/") {
			break
		}
		if time.Now().After(mdeadline) {
			t.Fatalf("metrics: no sample in 20s:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out, errOut, code := dstack(t, "stop", "sleeper", "-y"); code != 0 {
		t.Fatalf("stop: %d %s %s", code, out, errOut)
	}
	waitStatus(t, "sleeper", "terminated")

	if out, errOut, code := dstack(t, "delete", "-f", fleetFile, "-y"); code != 0 {
		t.Fatalf("delete: %d %s %s", code, out, errOut)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _, _ := dstack(t, "fleet")
		if strings.Contains(out, "No fleets") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fleet not deleted:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitStatus waits until `dstack ps -a` shows the run with the status.
func waitStatus(t *testing.T, run, status string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		out, _, _ := dstack(t, "ps", "-a")
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[0] == run && strings.Contains(line, status) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s not %s:\n%s", run, status, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// syncBuffer is a buffer written by a command while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestCLIAttachForwardsPorts(t *testing.T) {
	testhost.Docker(t)
	_, jobImage := testhost.Images(t)
	key, err := sshserver.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	h := testhost.Start(t, key)
	startServer(t, jobImage)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "key"), []byte(key.PrivatePEM), 0o600); err != nil {
		t.Fatal(err)
	}
	fleet := filepath.Join(dir, "fleet.yml")
	_ = os.WriteFile(fleet, []byte("type: fleet\nname: f\nssh_config:\n  user: root\n  identity_file: "+filepath.Join(dir, "key")+"\n  hosts: ["+h.IP+"]\n"), 0o600)
	if out, errOut, code := dstack(t, "apply", "-f", fleet, "-y"); code != 0 {
		t.Fatalf("fleet: %s %s", out, errOut)
	}
	web := filepath.Join(dir, "web.yml")
	_ = os.WriteFile(web, []byte("type: task\nname: web\ncommands:\n  - mkdir -p /www && echo served > /www/index.html && httpd -f -p 127.0.0.1:8080 -h /www\n"+
		"resources:\n  cpu: 1..\n  memory: 0.1GB..\n  disk: 0.1GB..\n"), 0o600)
	if out, errOut, code := dstack(t, "apply", "-f", web, "-y", "-d"); code != 0 {
		t.Fatalf("web: %s %s", out, errOut)
	}
	waitStatus(t, "web", "running")

	ctx, cancel := context.WithCancel(context.Background())
	root := NewRoot()
	var stderr syncBuffer
	root.SetOut(io.Discard)
	root.SetErr(&stderr)
	root.SetArgs([]string{"attach", "web", "-p", "0:8080", "--no-logs"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	var port string
	waitUntil(t, 30*time.Second, "forwarded", func() bool {
		if _, rest, ok := strings.Cut(stderr.String(), "Forwarded 127.0.0.1:"); ok {
			port, _, _ = strings.Cut(rest, " ")
			return true
		}
		select {
		case err := <-done:
			t.Fatalf("attach: %v\n%s", err, stderr.String())
		default:
		}
		return false
	})
	var body string
	waitUntil(t, 30*time.Second, "page through the forward", func() bool {
		resp, err := http.Get("http://127.0.0.1:" + port + "/index.html")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		body = string(data)
		return true
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if body != "served\n" {
		t.Fatalf("body %q", body)
	}
	dstack(t, "stop", "web", "-x", "-y")
	waitStatus(t, "web", "terminated")
}

func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached in %v", what, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCLIDevEnvironmentConnect: `dstack attach` of a dev environment prints an ssh command that gets a
// shell in the job's container through the runner's own SSH server (the image has no sshd).
func TestCLIDevEnvironmentConnect(t *testing.T) {
	testhost.Docker(t)
	_, jobImage := testhost.Images(t)
	key, err := sshserver.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	h := testhost.Start(t, key)
	startServer(t, jobImage)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "key"), []byte(key.PrivatePEM), 0o600); err != nil {
		t.Fatal(err)
	}
	fleet := filepath.Join(dir, "fleet.yml")
	_ = os.WriteFile(fleet, []byte("type: fleet\nname: f\nssh_config:\n  user: root\n  identity_file: "+filepath.Join(dir, "key")+"\n  hosts: ["+h.IP+"]\n"), 0o600)
	if out, errOut, code := dstack(t, "apply", "-f", fleet, "-y"); code != 0 {
		t.Fatalf("fleet: %s %s", out, errOut)
	}
	dev := filepath.Join(dir, "dev.yml")
	_ = os.WriteFile(dev, []byte("type: dev-environment\nname: dev\nide: vscode\nresources:\n  cpu: 1..\n  memory: 0.1GB..\n  disk: 0.1GB..\n"), 0o600)
	if out, errOut, code := dstack(t, "apply", "-f", dev, "-y", "-d"); code != 0 {
		t.Fatalf("dev: %s %s", out, errOut)
	}
	waitStatus(t, "dev", "running")

	ctx, cancel := context.WithCancel(context.Background())
	root := NewRoot()
	var stderr syncBuffer
	root.SetOut(io.Discard)
	root.SetErr(&stderr)
	root.SetArgs([]string{"attach", "dev", "--no-logs"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	var keyPath, port string
	waitUntil(t, 30*time.Second, "ssh command printed", func() bool {
		_, rest, ok := strings.Cut(stderr.String(), "ssh -i ")
		if !ok {
			return false
		}
		fields := strings.Fields(rest)
		keyPath, port = fields[0], fields[2]
		return true
	})
	pem, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := ssh.Dial("tcp", "127.0.0.1:"+port, &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("ssh to the dev environment: %v\n%s", err, stderr.String())
	}
	sess, err := cli.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sess.Output("echo inside && pwd")
	cli.Close()
	cancel()
	<-done
	if err != nil || !strings.HasPrefix(string(out), "inside\n") {
		t.Fatalf("command in the dev environment: %q %v", out, err)
	}
	dstack(t, "stop", "dev", "-x", "-y")
	waitStatus(t, "dev", "terminated")
}
