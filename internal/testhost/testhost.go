// Package testhost gives tests real hosts to provision: containers of the local Docker Engine that
// look to the dstack server like on-prem machines of an SSH fleet.
//
// A host is a container built locally FROM scratch with Debian's busybox-static (/bin/sh and its
// applets) and the static SSH server of ./sshd; nothing is pulled. It has no systemd and no docker
// CLI: provisioning uploads dstack-shim through SSH and starts it as a supervised background process,
// and the shim drives the Docker Engine through the host's /var/run/docker.sock, which is the engine's
// own socket mounted in. `sudo` is a script that runs its command as is (hosts are expected to provide
// passwordless sudo, and the test host logs in as root).
//
// Hosts sharing one engine do not share its network view, so the harness makes each host look like a
// real machine: the shim starts job containers in the host container's network namespace
// (DSTACK_SHIM_NETWORK_CONTAINER), so that the shim, the runner and the SSH server of one host reach
// each other on 127.0.0.1 as they would on a machine, and the ports of two hosts do not collide. Paths
// that the shim hands to the engine for bind mounts (its home, the runner binary) must exist where the
// engine runs, so each host gets a directory of the test machine mounted at the same path, and the
// host's environment points the shim there (DSTACK_SHIM_HOME and DSTACK_RUNNER_BINARY_PATH, which the
// server honours when the fleet's env does not set them; DSTACK_SHIM_NETWORK_CONTAINER reaches the
// shim by inheritance).
//
// Tests using this package are skipped when no Docker Engine answers.
package testhost

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/dstackgo/dstack/internal/testhost/sshserver"
)

// T is what the harness needs of a test: *testing.T and *testing.B have it, and so can a benchmark
// program.
type T interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}

// BusyboxPath is where Debian's busybox-static installs the static busybox binary.
const BusyboxPath = "/bin/busybox"

var (
	dockerOnce sync.Once
	dockerCli  *client.Client
	dockerErr  error
)

// Docker returns a client of the local engine, or skips the test when there is none.
func Docker(t T) *client.Client {
	t.Helper()
	dockerOnce.Do(func() {
		dockerCli, dockerErr = client.New(client.FromEnv, client.WithAPIVersionNegotiation())
		if dockerErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, dockerErr = dockerCli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	})
	if dockerErr != nil {
		t.Skipf("no Docker Engine available (%v): skipping a test that needs real hosts", dockerErr)
	}
	if _, err := os.Stat(BusyboxPath); err != nil {
		t.Skipf("%s is missing (apt-get install busybox-static): skipping a test that needs real hosts", BusyboxPath)
	}
	return dockerCli
}

// RepoRoot is the module's root directory.
func RepoRoot(t T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	return strings.TrimSpace(string(out))
}

var buildMu sync.Mutex
var built = map[string]string{}

// BuildStatic builds the main package pkg (relative to the module root, e.g. ./cmd/dstack-shim) as a
// static linux binary for this machine's architecture, once per test process, and returns its path.
func BuildStatic(t T, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[pkg]; ok {
		return p
	}
	dir, err := os.MkdirTemp("", "testhost-bin-")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = RepoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, msg)
	}
	built[pkg] = out
	return out
}

// sudoScript stands in for sudo on test hosts, where the login user is root.
const sudoScript = `#!/bin/sh
# Test hosts provide passwordless sudo: drop sudo's options and run the command as is.
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; break ;;
    -u|-g) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
exec "$@"
`

var (
	imagesOnce          sync.Once
	hostImage, jobImage string
	imagesErr           error
)

// Images builds (or finds, by content hash) the host image and the job image and returns their tags.
// The job image is FROM scratch with busybox: a task with `image: <tag>` runs /bin/sh commands in it.
func Images(t T) (host, job string) {
	t.Helper()
	cli := Docker(t)
	sshd := BuildStatic(t, "./internal/testhost/sshd")
	imagesOnce.Do(func() {
		bb, err := os.ReadFile(BusyboxPath)
		if err != nil {
			imagesErr = err
			return
		}
		applets, err := exec.Command(BusyboxPath, "--list").Output()
		if err != nil {
			imagesErr = fmt.Errorf("busybox --list: %w", err)
			return
		}
		sshdBin, err := os.ReadFile(sshd)
		if err != nil {
			imagesErr = err
			return
		}
		base := func(tw *tar.Writer) {
			for _, d := range []string{"bin/", "tmp/", "root/", "usr/bin/", "usr/sbin/", "usr/local/bin/", "etc/", "var/run/"} {
				_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755})
			}
			_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777})
			addFile(tw, "bin/busybox", 0o755, bb)
			for _, a := range strings.Fields(string(applets)) {
				if a != "busybox" {
					_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "/bin/busybox", Mode: 0o777})
				}
			}
			addFile(tw, "etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n"))
			addFile(tw, "etc/group", 0o644, []byte("root:x:0:\n"))
		}
		jobImage, imagesErr = buildImage(cli, "dstack-testjob", "FROM scratch\nCOPY . /\nENV PATH=/usr/local/bin:/usr/bin:/bin\n", base)
		if imagesErr != nil {
			return
		}
		hostImage, imagesErr = buildImage(cli, "dstack-testhost",
			"FROM scratch\nCOPY . /\nENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/bin HOME=/root\nWORKDIR /root\nENTRYPOINT [\"/usr/sbin/test-sshd\"]\n",
			func(tw *tar.Writer) {
				base(tw)
				addFile(tw, "usr/sbin/test-sshd", 0o755, sshdBin)
				addFile(tw, "usr/bin/sudo", 0o755, []byte(sudoScript))
			})
	})
	if imagesErr != nil {
		t.Fatalf("build test images: %v", imagesErr)
	}
	return hostImage, jobImage
}

func addFile(tw *tar.Writer, name string, mode int64, data []byte) {
	_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))})
	_, _ = tw.Write(data)
}

// buildImage builds a context made by fill plus the Dockerfile, tagged name:<content hash>, unless an
// image with that tag exists already.
func buildImage(cli *client.Client, name, dockerfile string, fill func(*tar.Writer)) (string, error) {
	var ctxBuf bytes.Buffer
	tw := tar.NewWriter(&ctxBuf)
	fill(tw)
	addFile(tw, "Dockerfile", 0o644, []byte(dockerfile))
	if err := tw.Close(); err != nil {
		return "", err
	}
	sum := sha256.Sum256(ctxBuf.Bytes())
	tag := name + ":" + hex.EncodeToString(sum[:6])
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := cli.ImageInspect(ctx, tag); err == nil {
		return tag, nil
	}
	res, err := cli.ImageBuild(ctx, &ctxBuf, client.ImageBuildOptions{Tags: []string{tag}, Dockerfile: "Dockerfile", Remove: true, ForceRemove: true})
	if err != nil {
		return "", fmt.Errorf("build %s: %w", tag, err)
	}
	defer res.Body.Close()
	dec := json.NewDecoder(res.Body)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			break
		} else if err != nil {
			return "", fmt.Errorf("build %s: %w", tag, err)
		}
		if msg.Error != "" {
			return "", fmt.Errorf("build %s: %s", tag, msg.Error)
		}
	}
	return tag, nil
}

// AgentsDir returns a directory with dstack-shim, dstack-runner and dstack-gateway built for this machine, as the
// server's DSTACK_AGENTS_DIR.
func AgentsDir(t T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"dstack-shim", "dstack-runner", "dstack-gateway"} {
		if err := os.Symlink(BuildStatic(t, "./cmd/"+name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Host is one running test host.
type Host struct {
	Name      string // container name
	ID        string
	IP        string // on the engine's bridge network; the SSH server listens on port 22
	User      string
	Key       sshserver.Key // the login key
	SharedDir string        // a directory of the test machine, mounted at the same path in the host

	cli *client.Client
}

var initTrue = true

// Options change a host from the default.
type Options struct {
	// NoDocker leaves the engine's socket out, like a machine without Docker.
	NoDocker bool
}

// Start runs a new host that accepts key, and removes it (and the job containers of its shim) when
// the test ends.
func Start(t T, key sshserver.Key, opts ...Options) *Host {
	t.Helper()
	cli := Docker(t)
	image, _ := Images(t)
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	h, err := startHost(cli, image, key.Public, o)
	if h != nil {
		h.Key = key
		t.Cleanup(h.remove)
	}
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// startHost runs a new host container that accepts the authorized keys (authorized_keys lines);
// the caller removes it. It returns the host when a container was made, even with an error.
func startHost(cli *client.Client, image, authorized string, o Options) (*Host, error) {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := "dstack-testhost-" + hex.EncodeToString(rnd[:])
	shared, err := os.MkdirTemp("", name+"-")
	if err != nil {
		return nil, err
	}
	binds := []string{"/var/run/docker.sock:/var/run/docker.sock", shared + ":" + shared}
	if o.NoDocker {
		binds = binds[1:]
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: name,
		Config: &container.Config{
			Image:    image,
			Hostname: name,
			// Commands over SSH, and the shim started by them, inherit these (see the package doc).
			Env: []string{"SSHD_AUTHORIZED_KEYS=" + authorized,
				"DSTACK_SHIM_HOME=" + filepath.Join(shared, "home"),
				"DSTACK_RUNNER_BINARY_PATH=" + filepath.Join(shared, "dstack-runner"),
				"DSTACK_SHIM_NETWORK_CONTAINER=" + name},
			Labels: map[string]string{"dstack-testhost": "1"},
		},
		HostConfig: &container.HostConfig{
			Binds: binds,
			// An init that reaps orphans, as a real machine has: the shim outlives its supervisor.
			Init: &initTrue,
		},
	})
	if err != nil {
		os.RemoveAll(shared)
		return nil, fmt.Errorf("create test host: %w", err)
	}
	h := &Host{Name: name, ID: created.ID, User: "root", SharedDir: shared, cli: cli}
	if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return h, fmt.Errorf("start test host: %w", err)
	}
	if h.IP, err = containerIP(ctx, cli, created.ID); err != nil {
		return h, fmt.Errorf("test host: %w", err)
	}
	return h, nil
}

// containerIP is a container's address on the engine's network.
func containerIP(ctx context.Context, cli *client.Client, id string) (string, error) {
	insp, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return "", fmt.Errorf("inspect container: %w", err)
	}
	if ns := insp.Container.NetworkSettings; ns != nil {
		for _, n := range ns.Networks {
			if n != nil && n.IPAddress.IsValid() {
				return n.IPAddress.String(), nil
			}
		}
	}
	return "", errors.New("the container has no IP address")
}

// Kill stops the host at once, like a machine that loses power: its SSH server and agents vanish.
func (h *Host) Kill() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := h.cli.ContainerKill(ctx, h.ID, client.ContainerKillOptions{Signal: "KILL"})
	return err
}

// remove deletes the host, every container that runs in its network namespace, and its shared
// directory.
func (h *Host) remove() {
	defer os.RemoveAll(h.SharedDir)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, err := h.cli.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err == nil {
		for _, c := range list.Items {
			mode := c.HostConfig.NetworkMode
			if mode == "container:"+h.ID || mode == "container:"+h.Name {
				_, _ = h.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
			}
		}
	}
	_, _ = h.cli.ContainerRemove(ctx, h.ID, client.ContainerRemoveOptions{Force: true})
}
