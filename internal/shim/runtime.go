package shim

import (
	"context"
	"errors"
	"time"

	"github.com/dstackgo/dstack/internal/agentapi"
)

// Runtime is the container engine the shim drives. The Docker implementation is DockerRuntime; tests
// use a fake.
type Runtime interface {
	// ImageExists reports whether the image is present locally (then it is not pulled).
	ImageExists(ctx context.Context, image string) (bool, error)
	PullImage(ctx context.Context, image string, auth RegistryAuth) error
	CreateContainer(ctx context.Context, spec ContainerSpec) (id string, err error)
	StartContainer(ctx context.Context, id string) error
	// StopContainer sends SIGTERM and SIGKILL after timeout (0: SIGKILL at once).
	StopContainer(ctx context.Context, id string, timeout time.Duration) error
	// RemoveContainer removes the container, running or not; a missing one is no error.
	RemoveContainer(ctx context.Context, id string) error
	InspectContainer(ctx context.Context, id string) (ContainerInfo, error)
	// WaitContainer blocks until the container is not running and returns its exit code.
	WaitContainer(ctx context.Context, id string) (int, error)
	// ListContainers lists the containers, running or not, that carry all the labels.
	ListContainers(ctx context.Context, labels map[string]string) ([]ContainerInfo, error)
}

// ErrNotFound is returned (wrapped) by a Runtime for a missing container or image.
var ErrNotFound = errors.New("not found")

// RegistryAuth are the credentials of the image's registry; empty means anonymous.
type RegistryAuth struct {
	Username string
	Password string
}

// Device maps a device node of the host into the container.
type Device struct {
	PathOnHost      string
	PathInContainer string
}

// ContainerSpec is what the shim asks the runtime to create.
type ContainerSpec struct {
	Name       string
	Image      string
	User       string
	Entrypoint []string
	Cmd        []string
	Env        []string
	Labels     map[string]string
	// Binds are bind mounts "host:container[:ro]".
	Binds []string
	// NetworkMode is "host", "bridge" or "container:<id>".
	NetworkMode string
	// PublishPorts are container ports published on ephemeral host ports of 127.0.0.1 (bridge mode).
	PublishPorts []int
	// GPUs: NVIDIAGPUIDs selects devices by UUID; else NVIDIAGPUCount (-1 all, 0 none).
	NVIDIAGPUIDs   []string
	NVIDIAGPUCount int
	Devices        []Device
	GroupAdd       []string
	SecurityOpt    []string
	NanoCPUs       int64
	Memory         int64
	ShmSize        int64
	Privileged     bool
}

// ContainerInfo is what the runtime reports about a container.
type ContainerInfo struct {
	ID       string
	Name     string
	Labels   map[string]string
	Running  bool
	ExitCode int
	// Ports are the published ports (bridge mode).
	Ports []agentapi.PortMapping
}
