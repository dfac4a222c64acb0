package testhost

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/dstackgo/dstack/internal/agentapi"
	"github.com/dstackgo/dstack/internal/backends/fake"
)

// CloudHosts backs the machines of the cloud simulator (package fake) with test hosts, so that a
// server provisions them for real:
//
//   - a VM provider's machine (Lambda, Vultr, ...) is a host as Start makes it: sshd accepting the
//     machine's SSH keys (the key registered for it, or the keys in its user data) and everything
//     dstack-shim needs, which the server installs over SSH or the machine's user data would start;
//   - a container provider's machine (RunPod, Vast.ai) is a container of the machine's image (the
//     job's) running dstack-runner, the one built from this repository and bind-mounted, directly,
//     with its own SSH server on 10022 and the machine's environment (DSTACK_PUBLIC_SSH_KEY and
//     the runner's ports), as the pod's command would after downloading it.
//
// Make it in the test's goroutine (it builds the images and binaries); the simulator calls Start and
// Stop from its own. What is left at the end of the test is removed.
type CloudHosts struct {
	cli    *client.Client
	image  string // the host image
	runner string // the dstack-runner binary

	mu         sync.Mutex
	containers map[string]*Host // by provider/machine id
}

// NewCloudHosts builds what the hosts need.
func NewCloudHosts(t T) *CloudHosts {
	t.Helper()
	c := &CloudHosts{cli: Docker(t), runner: BuildStatic(t, "./cmd/dstack-runner"), containers: map[string]*Host{}}
	c.image, _ = Images(t)
	t.Cleanup(func() {
		c.mu.Lock()
		left := c.containers
		c.containers = map[string]*Host{}
		c.mu.Unlock()
		for _, h := range left {
			h.remove()
		}
	})
	return c
}

var _ fake.Host = (*CloudHosts)(nil)

func machineKey(m fake.Machine) string { return m.Provider + "/" + m.ID }

// Start brings a machine up and returns once its SSH server accepts connections.
func (c *CloudHosts) Start(ctx context.Context, m fake.Machine) (fake.Addr, error) {
	var (
		h    *Host
		err  error
		port int
	)
	if m.Container {
		h, err = c.startContainer(ctx, m)
		port = agentapi.RunnerSSHPort
	} else {
		h, err = startHost(c.cli, c.image, strings.Join(machineKeys(m), "\n"), Options{})
		port = 22
	}
	if h != nil {
		c.mu.Lock()
		c.containers[machineKey(m)] = h
		c.mu.Unlock()
	}
	if err != nil {
		return fake.Addr{}, err
	}
	if err := waitPort(ctx, net.JoinHostPort(h.IP, fmt.Sprint(port))); err != nil {
		return fake.Addr{}, err
	}
	addr := fake.Addr{IP: h.IP, PrivateIP: h.IP, SSHPort: port}
	if m.Container {
		addr.Ports = map[int]int{agentapi.RunnerSSHPort: agentapi.RunnerSSHPort}
	}
	return addr, nil
}

// Stop removes the machine's container (and the job containers of a VM's shim).
func (c *CloudHosts) Stop(ctx context.Context, m fake.Machine) error {
	c.mu.Lock()
	h := c.containers[machineKey(m)]
	delete(c.containers, machineKey(m))
	c.mu.Unlock()
	if h != nil {
		h.remove()
	}
	return nil
}

// KillAll stops every machine's container at once, as machines that lose power while the provider
// still lists them; Stop removes them later.
func (c *CloudHosts) KillAll() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range c.containers {
		if err := h.Kill(); err != nil {
			return err
		}
	}
	return nil
}

// Running counts the machines whose containers are still there.
func (c *CloudHosts) Running() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.containers)
}

// machineKeys are the public keys a VM authorizes: the one registered under its key name (Lambda)
// and those of its cloud-init user data.
func machineKeys(m fake.Machine) []string {
	var keys []string
	if k, ok := m.Extra["public_key"].(string); ok && k != "" {
		keys = append(keys, k)
	}
	for _, line := range strings.Split(m.UserData, "\n") {
		line = strings.Trim(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "- ")), `"`)
		if strings.HasPrefix(line, "ssh-") || strings.HasPrefix(line, "ecdsa-") {
			keys = append(keys, line)
		}
	}
	return keys
}

// startContainer runs the machine's image with dstack-runner as its entrypoint.
func (c *CloudHosts) startContainer(ctx context.Context, m fake.Machine) (*Host, error) {
	env := make([]string, 0, len(m.Env))
	for k, v := range m.Env {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	name := "dstack-testpod-" + strings.ToLower(m.ID)
	created, err := c.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: name,
		Config: &container.Config{
			Image:      m.Image,
			Hostname:   name,
			Entrypoint: []string{agentapi.RunnerBinaryInJob},
			Cmd: []string{"--http-port", fmt.Sprint(agentapi.RunnerHTTPPort), "--ssh-port", fmt.Sprint(agentapi.RunnerSSHPort),
				"--temp-dir", "/tmp/runner", "--home-dir", "/root", "--working-dir", "/workflow"},
			Env:    env,
			Labels: map[string]string{"dstack-testhost": "1"},
		},
		HostConfig: &container.HostConfig{
			Binds: []string{c.runner + ":" + agentapi.RunnerBinaryInJob + ":ro"},
			Init:  &initTrue,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("create pod container: %w", err)
	}
	h := &Host{Name: name, ID: created.ID, User: "root", cli: c.cli}
	if _, err := c.cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return h, fmt.Errorf("start pod container: %w", err)
	}
	if h.IP, err = containerIP(ctx, c.cli, created.ID); err != nil {
		return h, fmt.Errorf("pod container: %w", err)
	}
	return h, nil
}

// waitPort waits until addr accepts TCP connections.
func waitPort(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s does not accept connections: %w", addr, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
