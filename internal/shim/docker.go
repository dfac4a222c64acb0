package shim

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/dstackgo/dstack/internal/agentapi"
)

// DockerRuntime runs containers through the Docker Engine API.
type DockerRuntime struct {
	c *client.Client
}

// NewDockerRuntime connects to the engine named by DOCKER_HOST (default: the local socket) and
// negotiates the API version.
func NewDockerRuntime() (*DockerRuntime, error) {
	c, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return &DockerRuntime{c: c}, nil
}

// Client returns the underlying Docker client.
func (d *DockerRuntime) Client() *client.Client { return d.c }

// Close closes the client's connections.
func (d *DockerRuntime) Close() error { return d.c.Close() }

// Ping checks that the engine answers.
func (d *DockerRuntime) Ping(ctx context.Context) error {
	_, err := d.c.Ping(ctx, client.PingOptions{})
	return err
}

func wrapNotFound(err error) error {
	if err != nil && cerrdefs.IsNotFound(err) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

// ImageExists implements Runtime.
func (d *DockerRuntime) ImageExists(ctx context.Context, image string) (bool, error) {
	_, err := d.c.ImageInspect(ctx, image)
	if err == nil {
		return true, nil
	}
	if cerrdefs.IsNotFound(err) {
		return false, nil
	}
	return false, err
}

// registryHost returns the registry of an image reference (docker.io when it names none).
func registryHost(image string) string {
	first, _, ok := strings.Cut(image, "/")
	if ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return first
	}
	return "docker.io"
}

// EncodeRegistryAuth encodes credentials as the X-Registry-Auth header value: base64url of the JSON
// auth config.
func EncodeRegistryAuth(image string, auth RegistryAuth) (string, error) {
	if auth.Username == "" && auth.Password == "" {
		return "", nil
	}
	data, err := json.Marshal(map[string]string{
		"username":      auth.Username,
		"password":      auth.Password,
		"serveraddress": registryHost(image),
	})
	if err != nil {
		return "", err
	}
	return base64.URLEncoding.EncodeToString(data), nil
}

// PullImage implements Runtime.
func (d *DockerRuntime) PullImage(ctx context.Context, image string, auth RegistryAuth) error {
	encoded, err := EncodeRegistryAuth(image, auth)
	if err != nil {
		return err
	}
	resp, err := d.c.ImagePull(ctx, image, client.ImagePullOptions{RegistryAuth: encoded})
	if err != nil {
		return err
	}
	defer resp.Close()
	// The pull runs while the progress stream is read; its errors come in the stream.
	for msg, err := range resp.JSONMessages(ctx) {
		if err != nil {
			return err
		}
		if msg.Error != nil {
			return fmt.Errorf("pull %s: %s", image, msg.Error.Message)
		}
	}
	return nil
}

// CreateContainer implements Runtime.
func (d *DockerRuntime) CreateContainer(ctx context.Context, spec ContainerSpec) (string, error) {
	cfg := &container.Config{
		Image:      spec.Image,
		User:       spec.User,
		Entrypoint: spec.Entrypoint,
		Cmd:        spec.Cmd,
		Env:        spec.Env,
		Labels:     spec.Labels,
	}
	hc := &container.HostConfig{
		Binds:       spec.Binds,
		NetworkMode: container.NetworkMode(spec.NetworkMode),
		Privileged:  spec.Privileged,
		ShmSize:     spec.ShmSize,
		GroupAdd:    spec.GroupAdd,
		SecurityOpt: spec.SecurityOpt,
	}
	hc.NanoCPUs = spec.NanoCPUs
	hc.Memory = spec.Memory
	for _, dev := range spec.Devices {
		hc.Devices = append(hc.Devices, container.DeviceMapping{PathOnHost: dev.PathOnHost, PathInContainer: dev.PathInContainer, CgroupPermissions: "rwm"})
	}
	gpuCaps := [][]string{{"gpu", "utility", "compute", "graphics", "video", "display", "compat32"}}
	switch {
	case len(spec.NVIDIAGPUIDs) > 0:
		hc.DeviceRequests = []container.DeviceRequest{{Driver: "nvidia", DeviceIDs: spec.NVIDIAGPUIDs, Capabilities: gpuCaps}}
	case spec.NVIDIAGPUCount != 0:
		hc.DeviceRequests = []container.DeviceRequest{{Driver: "nvidia", Count: spec.NVIDIAGPUCount, Capabilities: gpuCaps}}
	}
	if len(spec.PublishPorts) > 0 {
		cfg.ExposedPorts = network.PortSet{}
		hc.PortBindings = network.PortMap{}
		for _, p := range spec.PublishPorts {
			port, ok := network.PortFrom(uint16(p), network.TCP)
			if !ok {
				return "", fmt.Errorf("invalid port %d", p)
			}
			cfg.ExposedPorts[port] = struct{}{}
			hc.PortBindings[port] = []network.PortBinding{{HostIP: netip.MustParseAddr("127.0.0.1")}}
		}
	}
	res, err := d.c.ContainerCreate(ctx, client.ContainerCreateOptions{Config: cfg, HostConfig: hc, Name: spec.Name})
	if err != nil {
		return "", err
	}
	return res.ID, nil
}

// StartContainer implements Runtime.
func (d *DockerRuntime) StartContainer(ctx context.Context, id string) error {
	_, err := d.c.ContainerStart(ctx, id, client.ContainerStartOptions{})
	return wrapNotFound(err)
}

// StopContainer implements Runtime.
func (d *DockerRuntime) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	secs := int(timeout / time.Second)
	_, err := d.c.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &secs})
	return wrapNotFound(err)
}

// RemoveContainer implements Runtime.
func (d *DockerRuntime) RemoveContainer(ctx context.Context, id string) error {
	_, err := d.c.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && cerrdefs.IsNotFound(err) {
		return nil
	}
	return err
}

func portsOf(pm network.PortMap) []agentapi.PortMapping {
	var out []agentapi.PortMapping
	for port, bindings := range pm {
		for _, b := range bindings {
			if n, err := strconv.Atoi(b.HostPort); err == nil && n > 0 {
				out = append(out, agentapi.PortMapping{Host: n, Container: int(port.Num())})
				break
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Container < out[j].Container })
	return out
}

// InspectContainer implements Runtime.
func (d *DockerRuntime) InspectContainer(ctx context.Context, id string) (ContainerInfo, error) {
	res, err := d.c.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return ContainerInfo{}, wrapNotFound(err)
	}
	c := res.Container
	info := ContainerInfo{ID: c.ID, Name: strings.TrimPrefix(c.Name, "/")}
	if c.Config != nil {
		info.Labels = c.Config.Labels
	}
	if c.State != nil {
		info.Running = c.State.Running || c.State.Restarting || c.State.Paused
		info.ExitCode = c.State.ExitCode
	}
	if c.NetworkSettings != nil {
		info.Ports = portsOf(c.NetworkSettings.Ports)
	}
	return info, nil
}

// WaitContainer implements Runtime.
func (d *DockerRuntime) WaitContainer(ctx context.Context, id string) (int, error) {
	res := d.c.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case r := <-res.Result:
		if r.Error != nil && r.Error.Message != "" {
			return int(r.StatusCode), fmt.Errorf("wait: %s", r.Error.Message)
		}
		return int(r.StatusCode), nil
	case err := <-res.Error:
		return -1, wrapNotFound(err)
	}
}

// ListContainers implements Runtime.
func (d *DockerRuntime) ListContainers(ctx context.Context, labels map[string]string) ([]ContainerInfo, error) {
	f := make(client.Filters)
	for k, v := range labels {
		if v == "" {
			f.Add("label", k)
		} else {
			f.Add("label", k+"="+v)
		}
	}
	res, err := d.c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, err
	}
	out := make([]ContainerInfo, 0, len(res.Items))
	for _, c := range res.Items {
		// The summary lacks the exit code and published ports in a usable form: inspect.
		info, err := d.InspectContainer(ctx, c.ID)
		if err != nil {
			if cerrdefs.IsNotFound(err) || strings.Contains(err.Error(), ErrNotFound.Error()) {
				continue
			}
			return nil, err
		}
		out = append(out, info)
	}
	return out, nil
}

// drain reads a build or pull stream to its end and returns the first error message in it.
func drain(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var msg struct {
			Stream      string `json:"stream"`
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		if msg.Error != "" {
			return fmt.Errorf("%s", msg.Error)
		}
	}
}

// BuildImage builds an image from a tar build context (with a Dockerfile at its root) and tags it.
func (d *DockerRuntime) BuildImage(ctx context.Context, buildContext io.Reader, tag string, labels map[string]string) error {
	res, err := d.c.ImageBuild(ctx, buildContext, client.ImageBuildOptions{
		Tags:        []string{tag},
		Labels:      labels,
		Remove:      true,
		ForceRemove: true,
		Dockerfile:  "Dockerfile",
	})
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if err := drain(res.Body); err != nil {
		return fmt.Errorf("build %s: %w", tag, err)
	}
	return nil
}

// RemoveImage removes an image (or untags it when it has other tags).
func (d *DockerRuntime) RemoveImage(ctx context.Context, image string) error {
	_, err := d.c.ImageRemove(ctx, image, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	if err != nil && cerrdefs.IsNotFound(err) {
		return nil
	}
	return err
}
