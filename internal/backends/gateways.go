package backends

import "context"

// GatewayCompute is an optional ability of a Compute, found by type assertion: gateways (dstack's
// `type: gateway` configurations), the small machines in front of services that terminate HTTPS for
// `<run>.<wildcard domain>` and proxy to the replicas. The backend only makes the machine reachable
// (SSH on 22 for the server, HTTP on 80 and HTTPS on 443 for everyone); the server installs and
// configures dstack-gateway on it over SSH.
type GatewayCompute interface {
	// CreateGateway launches the gateway machine and returns as soon as the provider accepted it; the
	// address may come later through UpdateGateway. A *NoCapacityError or any other error fails the
	// gateway (after the backend deleted what it had made).
	CreateGateway(ctx context.Context, cfg GatewayConfig) (*GatewayProvisioningData, error)
	// UpdateGateway fills in what the provider knows now (IP address, hostname). It must not block
	// for long; a *ProvisioningError means the machine will never come up.
	UpdateGateway(ctx context.Context, gpd *GatewayProvisioningData) error
	// TerminateGateway deletes the machine and whatever CreateGateway made for it (load balancer,
	// security group, service). It is idempotent: what is already gone is success.
	TerminateGateway(ctx context.Context, gpd GatewayProvisioningData) error
}

// GatewayConfig is a `type: gateway` configuration as the backend needs it.
type GatewayConfig struct {
	ProjectName string
	Name        string // the gateway's name, unique in the project
	Region      string
	// InstanceType is the configuration's instance_type; empty: the backend's small default
	// (aws t3.micro, gcp e2-small, azure Standard_B1s, kubernetes 1 CPU and 1 GiB).
	InstanceType string
	// PublicIP is false for a gateway reachable only inside the network (backends without private
	// gateways refuse it).
	PublicIP bool
	// ACMCertificateARN, when set (aws only), puts an Application Load Balancer with an HTTPS
	// listener using that certificate in front of the machine; the gateway then serves plain HTTP.
	ACMCertificateARN string
	// SSHPublicKeys are authorized for the machine's user (the project key).
	SSHPublicKeys []string
	// ShimURL is where amd64 machines download dstack-shim (as InstanceConfig.ShimURL). Backends
	// whose gateway is a container with dstack-runner as its SSH server (kubernetes) fetch
	// dstack-runner beside it; the others ignore it.
	ShimURL string
	// Tags go on every resource created for the gateway (dstack_project, dstack_server,
	// dstack_gateway at least), so that the orphan reconciler can find them.
	Tags map[string]string
}

// GatewayProvisioningData is dstack's GatewayProvisioningData: the machine and how to reach it.
type GatewayProvisioningData struct {
	Backend          string `json:"backend"`
	InstanceID       string `json:"instance_id"`
	Region           string `json:"region"`
	AvailabilityZone string `json:"availability_zone,omitempty"`
	// IPAddress is where the server connects over SSH and where users point their wildcard domain
	// (unless Hostname is set).
	IPAddress string `json:"ip_address"`
	// Hostname is the load balancer's DNS name when one is in front (ACM), else empty.
	Hostname string `json:"hostname,omitempty"`
	Username string `json:"username"` // the SSH user on the machine
	SSHPort  int    `json:"ssh_port"`
	// TLSTerminated is true when something in front (the ACM load balancer) terminates HTTPS, so the
	// gateway must not ask Let's Encrypt for certificates.
	TLSTerminated bool   `json:"tls_terminated,omitempty"`
	BackendData   string `json:"backend_data,omitempty"`
}
