// Package agentapi holds the wire types of the two agents that run on a machine, dstack-shim (one per
// host, HTTP on 10998) and dstack-runner (inside the job container, HTTP on 10999), and small typed
// clients for both. The JSON field names are those of dstack's shim API v2 and runner API, so the
// original dstack server can talk to these agents and this project's server can talk to the original
// agents.
//
// The clients take a base URL and an *http.Client: the server reaches the agents through SSH-forwarded
// connections by handing in an http.Client whose Transport dials over its SSH connection.
package agentapi

// Version is the agents' version reported by /api/healthcheck. dstack servers pick shim API v2 for any
// final version at or above 0.18.34 (and for versions they cannot parse).
var Version = "0.21.2"

// Default ports and paths (dstack-spec §7.1).
const (
	ShimHTTPPort       = 10998
	RunnerHTTPPort     = 10999
	RunnerSSHPort      = 10022
	ShimService        = "dstack-shim"
	RunnerService      = "dstack-runner"
	RunnerBinaryInJob  = "/usr/local/bin/dstack-runner"
	RunnerTempDirInJob = "/tmp/runner"
	RunnerHomeDirInJob = "/root"
	RunnerWorkingDir   = "/workflow"
)

// HealthcheckResponse is the body of GET /api/healthcheck of both agents.
type HealthcheckResponse struct {
	Service string `json:"service"`
	Version string `json:"version"`
}

// TaskStatus is the status of a shim task: pending → preparing → pulling → creating → running →
// terminated (any status may go straight to terminated).
type TaskStatus string

// Task statuses.
const (
	TaskPending    TaskStatus = "pending"
	TaskPreparing  TaskStatus = "preparing"
	TaskPulling    TaskStatus = "pulling"
	TaskCreating   TaskStatus = "creating"
	TaskRunning    TaskStatus = "running"
	TaskTerminated TaskStatus = "terminated"
)

// Termination reasons the shim itself records on a task (the server lower-cases them into its job
// termination reasons). A terminate request records the reason it carries instead.
const (
	TaskReasonExecutorError            = "EXECUTOR_ERROR"
	TaskReasonCreatingContainerError   = "CREATING_CONTAINER_ERROR"
	TaskReasonContainerExitedWithError = "CONTAINER_EXITED_WITH_ERROR"
	TaskReasonDoneByRunner             = "DONE_BY_RUNNER"
)

// Network modes of TaskConfig.NetworkMode.
const (
	NetworkModeHost   = "host"
	NetworkModeBridge = "bridge"
)

// VolumeInfo describes a volume attached to the instance that a task uses.
type VolumeInfo struct {
	Backend    string `json:"backend"`
	Name       string `json:"name"`
	VolumeID   string `json:"volume_id"`
	InitFS     bool   `json:"init_fs"`
	DeviceName string `json:"device_name,omitempty"`
}

// VolumeMountPoint mounts the volume Name at Path in the container.
type VolumeMountPoint struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

// InstanceMountPoint bind-mounts InstancePath of the host at Path in the container.
type InstanceMountPoint struct {
	InstancePath string `json:"instance_path"`
	Path         string `json:"path"`
	Optional     bool   `json:"optional,omitempty"`
}

// GPUDevice passes a device node of the host into the container.
type GPUDevice struct {
	PathOnHost      string `json:"path_on_host"`
	PathInContainer string `json:"path_in_container"`
}

// TaskConfig is the body of POST /api/tasks.
type TaskConfig struct {
	ID               string               `json:"id"`
	Name             string               `json:"name"`
	RegistryUsername string               `json:"registry_username"`
	RegistryPassword string               `json:"registry_password"`
	ImageName        string               `json:"image_name"`
	ContainerUser    string               `json:"container_user"` // empty means root
	Privileged       bool                 `json:"privileged"`
	GPU              int                  `json:"gpu"`      // -1 all, 0 none, n a count
	CPU              float64              `json:"cpu"`      // CPUs, 0 means no limit
	Memory           int64                `json:"memory"`   // bytes, 0 means no limit
	ShmSize          int64                `json:"shm_size"` // bytes, 0 means the engine's default (64 MiB)
	NetworkMode      string               `json:"network_mode"`
	Volumes          []VolumeInfo         `json:"volumes"`
	VolumeMounts     []VolumeMountPoint   `json:"volume_mounts"`
	InstanceMounts   []InstanceMountPoint `json:"instance_mounts"`
	GPUDevices       []GPUDevice          `json:"gpu_devices"`
	HostSSHUser      string               `json:"host_ssh_user"`
	HostSSHKeys      []string             `json:"host_ssh_keys"`
	ContainerSSHKeys []string             `json:"container_ssh_keys"`
}

// PortMapping maps a container port to the host port it is published on (bridge mode).
type PortMapping struct {
	Host      int `json:"host"`
	Container int `json:"container"`
}

// TaskInfo is the body returned by GET /api/tasks/{id}, POST /api/tasks and terminate.
type TaskInfo struct {
	ID                 string        `json:"id"`
	Status             TaskStatus    `json:"status"`
	TerminationReason  string        `json:"termination_reason"`
	TerminationMessage string        `json:"termination_message"`
	Ports              []PortMapping `json:"ports"`
	// For debugging; the server does not need them.
	ContainerName string   `json:"container_name"`
	ContainerID   string   `json:"container_id"`
	GPUIDs        []string `json:"gpus_ids"`
}

// Port returns the host port that container port is reachable on: the published port in bridge
// mode, the port itself otherwise.
func (t TaskInfo) Port(container int) int {
	for _, p := range t.Ports {
		if p.Container == container {
			return p.Host
		}
	}
	return container
}

// TaskListItem is one task in TaskListResponse.Tasks.
type TaskListItem struct {
	ID     string     `json:"id"`
	Status TaskStatus `json:"status"`
}

// TaskListResponse is the body of GET /api/tasks: ids for servers before 0.19.26, tasks for later ones.
type TaskListResponse struct {
	IDs   []string       `json:"ids"`
	Tasks []TaskListItem `json:"tasks"`
}

// TerminateRequest is the body of POST /api/tasks/{id}/terminate. Timeout is the grace period in
// seconds between SIGTERM and SIGKILL (0 kills at once).
type TerminateRequest struct {
	TerminationReason  string `json:"termination_reason"`
	TerminationMessage string `json:"termination_message"`
	Timeout            uint   `json:"timeout"`
}

// InstanceHealthResponse is the body of GET /api/instance/health (dstack ≥ 0.19.22). DCGM is not
// wired, so it is always null.
type InstanceHealthResponse struct {
	DCGM any `json:"dcgm"`
}
