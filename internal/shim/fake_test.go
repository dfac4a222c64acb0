package shim

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/dstackgo/dstack/internal/agentapi"
)

type fakeContainer struct {
	id       string
	spec     ContainerSpec
	running  bool
	started  bool
	exitCode int
	stopped  chan struct{}
	stopWith time.Duration
}

// fakeRuntime is an in-memory Runtime.
type fakeRuntime struct {
	mu         sync.Mutex
	images     map[string]bool
	pulls      []string
	pullAuth   []RegistryAuth
	pullErr    error
	pullBlock  bool // PullImage waits for its context
	containers map[string]*fakeContainer
	removed    []string
	nextID     int
	nextPort   int
}

func newFakeRuntime(images ...string) *fakeRuntime {
	f := &fakeRuntime{images: map[string]bool{}, containers: map[string]*fakeContainer{}, nextPort: 32768}
	for _, img := range images {
		f.images[img] = true
	}
	return f
}

func (f *fakeRuntime) ImageExists(ctx context.Context, image string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.images[image], ctx.Err()
}

func (f *fakeRuntime) PullImage(ctx context.Context, image string, auth RegistryAuth) error {
	f.mu.Lock()
	f.pulls = append(f.pulls, image)
	f.pullAuth = append(f.pullAuth, auth)
	block, err := f.pullBlock, f.pullErr
	f.mu.Unlock()
	if block {
		<-ctx.Done()
		return ctx.Err()
	}
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.images[image] = true
	f.mu.Unlock()
	return nil
}

func (f *fakeRuntime) CreateContainer(ctx context.Context, spec ContainerSpec) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.containers {
		if c.spec.Name == spec.Name {
			return "", fmt.Errorf("name %s in use", spec.Name)
		}
	}
	f.nextID++
	id := fmt.Sprintf("c%04d", f.nextID)
	f.containers[id] = &fakeContainer{id: id, spec: spec, stopped: make(chan struct{})}
	return id, nil
}

func (f *fakeRuntime) get(id string) (*fakeContainer, error) {
	c, ok := f.containers[id]
	if !ok {
		return nil, fmt.Errorf("container %s: %w", id, ErrNotFound)
	}
	return c, nil
}

func (f *fakeRuntime) StartContainer(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.get(id)
	if err != nil {
		return err
	}
	c.running, c.started = true, true
	return nil
}

// exit makes the container exit with code.
func (f *fakeRuntime) exit(id string, code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.containers[id]; c != nil && c.running {
		c.running, c.exitCode = false, code
		close(c.stopped)
	}
}

func (f *fakeRuntime) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	f.mu.Lock()
	c, err := f.get(id)
	if err != nil {
		f.mu.Unlock()
		return err
	}
	c.stopWith = timeout
	f.mu.Unlock()
	f.exit(id, 143)
	return nil
}

func (f *fakeRuntime) RemoveContainer(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.containers[id]; c != nil && c.running {
		c.running = false
		close(c.stopped)
	}
	delete(f.containers, id)
	f.removed = append(f.removed, id)
	return nil
}

func (f *fakeRuntime) info(c *fakeContainer) ContainerInfo {
	info := ContainerInfo{ID: c.id, Name: c.spec.Name, Labels: c.spec.Labels, Running: c.running, ExitCode: c.exitCode}
	for i, p := range c.spec.PublishPorts {
		info.Ports = append(info.Ports, agentapi.PortMapping{Host: f.nextPort + i, Container: p})
	}
	return info
}

func (f *fakeRuntime) InspectContainer(ctx context.Context, id string) (ContainerInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.get(id)
	if err != nil {
		return ContainerInfo{}, err
	}
	return f.info(c), nil
}

func (f *fakeRuntime) WaitContainer(ctx context.Context, id string) (int, error) {
	f.mu.Lock()
	c, err := f.get(id)
	if err != nil {
		f.mu.Unlock()
		return -1, err
	}
	if !c.running && c.started {
		code := c.exitCode
		f.mu.Unlock()
		return code, nil
	}
	ch := c.stopped
	f.mu.Unlock()
	select {
	case <-ch:
		f.mu.Lock()
		defer f.mu.Unlock()
		return c.exitCode, nil
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

func (f *fakeRuntime) ListContainers(ctx context.Context, labels map[string]string) ([]ContainerInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ContainerInfo
outer:
	for _, c := range f.containers {
		for k, v := range labels {
			got, ok := c.spec.Labels[k]
			if !ok || (v != "" && got != v) {
				continue outer
			}
		}
		out = append(out, f.info(c))
	}
	return out, nil
}

func (f *fakeRuntime) container(name string) *fakeContainer {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.containers {
		if c.spec.Name == name {
			return c
		}
	}
	return nil
}
