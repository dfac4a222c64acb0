package models

import (
	"encoding/json"
	"reflect"
	"time"

	"github.com/dstackgo/dstack/internal/resources"
)

// Fleet statuses.
const (
	FleetSubmitted   = "submitted"
	FleetActive      = "active"
	FleetTerminating = "terminating"
	FleetTerminated  = "terminated"
	FleetFailed      = "failed"
)

// Instance statuses: pending → provisioning → idle ⇄ busy → terminating → terminated.
const (
	InstancePending      = "pending"
	InstanceProvisioning = "provisioning"
	InstanceIdle         = "idle"
	InstanceBusy         = "busy"
	InstanceTerminating  = "terminating"
	InstanceTerminated   = "terminated"
)

// InstanceActive reports a status before termination.
func InstanceActive(status string) bool {
	return status != InstanceTerminating && status != InstanceTerminated
}

// Instance termination reasons (dstack's InstanceTerminationReason).
const (
	InstanceTerminatedByUser    = "terminated_by_user"
	InstanceIdleTimeout         = "idle_timeout"
	InstanceProvisioningTimeout = "provisioning_timeout"
	InstanceError               = "error"
	InstanceUnreachableReason   = "unreachable"
	// InstanceJobFinished ends a container backend's instance (a pod runs one job).
	InstanceJobFinished = "job_finished"
)

// BackendRemote is the backend of SSH fleet instances.
const BackendRemote = "remote"

// FleetSpec is what `dstack apply` sends for a fleet configuration.
type FleetSpec struct {
	Configuration     FleetConfiguration `json:"configuration" required:"true"`
	ConfigurationPath *string            `json:"configuration_path"`
	Profile           Profile            `json:"profile" required:"true"`
	Autocreated       bool               `json:"autocreated"`
}

// FleetConfiguration is `type: fleet`. Either SSHConfig (an SSH fleet of on-prem hosts) or Nodes (a
// cloud fleet) is set.
type FleetConfiguration struct {
	Type              string                   `json:"type"`
	Name              *string                  `json:"name"`
	Placement         *string                  `json:"placement"`
	Blocks            any                      `json:"blocks"` // "auto" or an int >= 1
	Nodes             any                      `json:"nodes"`
	Reservation       *string                  `json:"reservation"`
	Resources         *resources.ResourcesSpec `json:"resources"`
	Backends          []string                 `json:"backends"`
	Regions           []string                 `json:"regions"`
	AvailabilityZones []string                 `json:"availability_zones"`
	InstanceTypes     []string                 `json:"instance_types"`
	SpotPolicy        *string                  `json:"spot_policy"`
	Retry             any                      `json:"retry"`
	MaxPrice          *float64                 `json:"max_price"`
	IdleDuration      *Duration                `json:"idle_duration"`
	Tags              map[string]string        `json:"tags"`
	BackendOptions    any                      `json:"backend_options"`
	SSHConfig         *SSHParams               `json:"ssh_config"`
	Env               Env                      `json:"env"`
}

// SSHParams is `ssh_config` of an SSH fleet; host-level values override these.
type SSHParams struct {
	User         *string         `json:"user"`
	Port         *int            `json:"port"`
	IdentityFile *string         `json:"identity_file"`
	SSHKey       *SSHKey         `json:"ssh_key"`
	ProxyJump    *SSHProxyParams `json:"proxy_jump"`
	Hosts        []SSHHost       `json:"hosts" required:"true"`
	Network      *string         `json:"network"`
}

// SSHKey is a key pair the CLI read from an identity file; Private is removed before the spec is
// stored or shown.
type SSHKey struct {
	Public  string  `json:"public" required:"true"`
	Private *string `json:"private"`
}

// SSHProxyParams is a jump host.
type SSHProxyParams struct {
	Hostname     string  `json:"hostname" required:"true"`
	Port         *int    `json:"port"`
	User         string  `json:"user" required:"true"`
	IdentityFile string  `json:"identity_file" required:"true"`
	SSHKey       *SSHKey `json:"ssh_key"`
}

// SSHHostParams is a host given as an object.
type SSHHostParams struct {
	Hostname     string          `json:"hostname" required:"true"`
	Port         *int            `json:"port"`
	User         *string         `json:"user"`
	IdentityFile *string         `json:"identity_file"`
	ProxyJump    *SSHProxyParams `json:"proxy_jump"`
	InternalIP   *string         `json:"internal_ip"`
	SSHKey       *SSHKey         `json:"ssh_key"`
	Blocks       any             `json:"blocks"`
}

// SSHHost is one entry of `hosts`: a hostname string, or an object with per-host overrides.
type SSHHost struct {
	Params SSHHostParams
	// Object is whether the host was given as an object (it is written back the same way).
	Object bool
}

// JSONVariant lets the server's strict decoder check an object host against SSHHostParams.
func (SSHHost) JSONVariant(v any) (reflect.Type, string) {
	if _, ok := v.(string); ok {
		return nil, ""
	}
	return reflect.TypeFor[SSHHostParams](), "SSHHostParams"
}

// UnmarshalJSON accepts a string or an object.
func (h *SSHHost) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*h = SSHHost{Params: SSHHostParams{Hostname: s}}
		return nil
	}
	h.Object = true
	return json.Unmarshal(b, &h.Params)
}

// MarshalJSON writes the host in the form it was given.
func (h SSHHost) MarshalJSON() ([]byte, error) {
	if !h.Object {
		return json.Marshal(h.Params.Hostname)
	}
	return json.Marshal(h.Params)
}

// StripPrivateKeys returns a copy of the spec without private keys, as stored and shown.
func (s FleetSpec) StripPrivateKeys() FleetSpec {
	data, _ := json.Marshal(s)
	var out FleetSpec
	_ = json.Unmarshal(data, &out)
	if c := out.Configuration.SSHConfig; c != nil {
		c.SSHKey = nil
		if c.ProxyJump != nil {
			c.ProxyJump.SSHKey = nil
		}
		for i := range c.Hosts {
			c.Hosts[i].Params.SSHKey = nil
			if c.Hosts[i].Params.ProxyJump != nil {
				c.Hosts[i].Params.ProxyJump.SSHKey = nil
			}
		}
	}
	return out
}

// Fleet is a group of instances.
type Fleet struct {
	ID            string
	ProjectID     string
	Name          string
	Status        string
	StatusMessage string
	Spec          FleetSpec // without private keys
	CreatedAt     time.Time
	// DeleteRequested asks the fleet's pipeline to terminate its instances and then the fleet.
	DeleteRequested bool
	Deleted         bool
}

// Gpu is one accelerator of an instance type.
type Gpu struct {
	Name      string  `json:"name"`
	MemoryMiB int     `json:"memory_mib"`
	Vendor    *string `json:"vendor"`
}

// Disk is the disk of an instance type.
type Disk struct {
	SizeMiB int `json:"size_mib"`
}

// InstanceResources is dstack's Resources of an instance type.
type InstanceResources struct {
	CPUs        int     `json:"cpus"`
	MemoryMiB   int     `json:"memory_mib"`
	Gpus        []Gpu   `json:"gpus"`
	Spot        bool    `json:"spot"`
	Disk        Disk    `json:"disk"`
	CPUArch     *string `json:"cpu_arch"`
	Description string  `json:"description"`
}

// InstanceType is a named set of resources.
type InstanceType struct {
	Name      string            `json:"name"`
	Resources InstanceResources `json:"resources"`
}

// SSHConnectionParams is a jump host in provisioning data.
type SSHConnectionParams struct {
	Hostname string `json:"hostname"`
	Username string `json:"username"`
	Port     int    `json:"port"`
}

// JobProvisioningData says where a job (or an instance) runs and how to reach it.
type JobProvisioningData struct {
	Backend          string               `json:"backend"`
	BaseBackend      *string              `json:"base_backend"`
	InstanceType     InstanceType         `json:"instance_type"`
	InstanceID       string               `json:"instance_id"`
	Hostname         *string              `json:"hostname"`
	InternalIP       *string              `json:"internal_ip"`
	PublicIPEnabled  bool                 `json:"public_ip_enabled"`
	InstanceNetwork  *string              `json:"instance_network"`
	Region           string               `json:"region"`
	AvailabilityZone *string              `json:"availability_zone"`
	Reservation      *string              `json:"reservation"`
	Price            float64              `json:"price"`
	Username         string               `json:"username"`
	SSHPort          *int                 `json:"ssh_port"`
	Dockerized       bool                 `json:"dockerized"`
	SSHProxy         *SSHConnectionParams `json:"ssh_proxy"`
	BackendData      *string              `json:"backend_data"`
	GpuDriver        any                  `json:"gpu_driver"`
}

// RemoteConnectionInfo is how the server reaches an SSH fleet host. It carries private keys and is
// stored encrypted.
type RemoteConnectionInfo struct {
	Host       string            `json:"host"`
	Port       int               `json:"port"`
	User       string            `json:"user"`
	PrivateKey string            `json:"private_key"`
	ProxyJump  *RemoteProxy      `json:"proxy_jump,omitempty"`
	InternalIP *string           `json:"internal_ip,omitempty"`
	Network    *string           `json:"network,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	// Blocks is the number of blocks the host is split into: an int >= 1, or "auto" (one per GPU,
	// or per CPU without GPUs); nil means 1.
	Blocks any `json:"blocks,omitempty"`
}

// RemoteProxy is the jump host of a RemoteConnectionInfo.
type RemoteProxy struct {
	Host       string `json:"host"`
	Port       int    `json:"port"`
	User       string `json:"user"`
	PrivateKey string `json:"private_key"`
}

// Instance is one machine of a fleet.
type Instance struct {
	ID                       string
	ProjectID                string
	FleetID                  string
	Name                     string
	InstanceNum              int
	Status                   string
	Unreachable              bool
	TerminationReason        string
	TerminationReasonMessage string
	// StatusMessage says why the instance is not ready yet (the last provisioning failure) or why it
	// is unreachable; dstack's Instance has no such field, the API adds it.
	StatusMessage    string
	CreatedAt        time.Time
	FinishedAt       *time.Time
	Backend          string
	Region           string
	Price            float64
	Hostname         string
	InstanceType     InstanceType
	JPD              *JobProvisioningData
	Remote           *RemoteConnectionInfo // SSH fleets; plaintext in memory, encrypted at rest
	HostKey          string                // trusted on first use (see sshpool)
	TotalBlocks      int
	BusyBlocks       int
	JobID            string     // the job occupying the instance
	IdleSince        *time.Time // when it last became idle, for idle_duration
	UnreachableSince *time.Time
	// TerminateRequested asks the instance's pipeline to terminate it.
	TerminateRequested bool
	Deleted            bool
}
