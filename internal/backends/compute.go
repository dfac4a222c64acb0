package backends

import (
	"context"
	"errors"

	"github.com/dstackgo/dstack/internal/offers"
)

// Compute is what a backend does with machines, found on a Driver's NewCompute. Optional abilities
// (volumes, gateways, placement groups) will be further interfaces found by type assertion, as in
// rclone.
type Compute interface {
	// CreateInstance launches one machine for offer and returns as soon as the provider accepted it;
	// the machine's address may come later through UpdateProvisioningData. A *NoCapacityError makes the
	// caller try the next offer (and remember this one for a while).
	CreateInstance(ctx context.Context, offer offers.Offer, cfg InstanceConfig) (*ProvisioningData, error)
	// UpdateProvisioningData fills in what the provider knows now (hostname, IPs, ssh port). It must not
	// block for long; a *ProvisioningError means the machine will never come up.
	UpdateProvisioningData(ctx context.Context, pd *ProvisioningData) error
	// TerminateInstance deletes the machine. It is idempotent: a machine that is already gone is success.
	TerminateInstance(ctx context.Context, instanceID, region, backendData string) error
}

// InstanceConfig is what every machine gets.
type InstanceConfig struct {
	ProjectName  string
	InstanceName string // unique, e.g. <fleet>-<n>-<random>; providers may shorten it
	// SSHPublicKeys are authorized for the machine's user (project key and the user's key).
	SSHPublicKeys []string
	// ShimURL is where the machine downloads dstack-shim (the server's own agent endpoint by default).
	ShimURL string
	// ShimEnv are the environment variables dstack-shim starts with.
	ShimEnv map[string]string
	// Tags go on every resource created for the machine, so the orphan reconciler can find it
	// (dstack_project, dstack_server, dstack_instance at least).
	Tags map[string]string
	// Volumes are the network volumes the job mounts, for container backends that mount them when
	// the machine is created (RunPod); VM backends attach them later through a VolumeAttacher.
	Volumes []MountedVolume
	// PlacementGroup, when set, is the placement group of the machine's cluster fleet: the backend
	// (a PlacementGroupCompute) creates the machine inside it (a Nebius instance in the GPU cluster).
	PlacementGroup *PlacementGroupData
}

// MountedVolume is a volume and where the job sees it.
type MountedVolume struct {
	Volume VolumeProvisioningData
	Path   string
}

// ProvisioningData is dstack's JobProvisioningData: where the machine is and how to reach it.
type ProvisioningData struct {
	Backend          string  `json:"backend"`
	InstanceType     any     `json:"instance_type"`
	InstanceID       string  `json:"instance_id"`
	Hostname         *string `json:"hostname"`
	InternalIP       *string `json:"internal_ip"`
	PublicIPEnabled  bool    `json:"public_ip_enabled"`
	Region           string  `json:"region"`
	AvailabilityZone *string `json:"availability_zone"`
	Price            float64 `json:"price"`
	Username         string  `json:"username"`
	SSHPort          *int    `json:"ssh_port"`
	// Dockerized is true when the machine runs dstack-shim (VMs); false when the job's own container
	// runs dstack-runner (container backends such as RunPod and Vast.ai).
	Dockerized  bool   `json:"dockerized"`
	BackendData string `json:"backend_data,omitempty"`
	// SSHProxy is the jump host between dstack and the machine, when it cannot be reached directly
	// (Kubernetes: the project's jump pod behind a NodePort).
	SSHProxy *SSHProxy `json:"ssh_proxy,omitempty"`
}

// SSHProxy is an SSH jump host, dstack's SSHConnectionParams.
type SSHProxy struct {
	Hostname string `json:"hostname"`
	Port     int    `json:"port"`
	Username string `json:"username"`
}

// NoCapacityError is a provider saying it has no machine of that kind now.
type NoCapacityError struct{ Msg string }

func (e *NoCapacityError) Error() string { return "no capacity: " + e.Msg }

// ProvisioningError is a machine that will not come up.
type ProvisioningError struct{ Msg string }

func (e *ProvisioningError) Error() string { return "provisioning failed: " + e.Msg }

// IsNoCapacity reports whether err is a capacity refusal.
func IsNoCapacity(err error) bool {
	var e *NoCapacityError
	return errors.As(err, &e)
}
