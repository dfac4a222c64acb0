// Package proto holds a minimal protocol definition of the parts of Nebius AI Cloud's gRPC API
// that the nebius backend calls, and the Go generated from it (committed: building and testing
// need no protoc). The .proto files under nebius/ are hand-written copies of the published
// definitions in github.com/nebius/api, keeping the real package, service, method, message and
// field names and field numbers (the wire format) and leaving out the options (buf.validate,
// nebius annotations), the fields and the methods the backend does not use:
//
//   - nebius/iam/v1: TokenExchangeService.Exchange (ExchangeTokenRequest → CreateTokenResponse),
//     TenantService.List, ProjectService.List, Container {metadata, spec, status.region};
//   - nebius/common/v1: ResourceMetadata; Operation {id, description, created_at, created_by,
//     finished_at, resource_id, status (google.rpc.Status; set when the operation is done)} and
//     OperationService.Get;
//   - nebius/compute/v1 (api_service_name "compute"): InstanceService.Get, Create, Delete;
//     Instance {metadata, spec, status}; InstanceSpec {service_account_id, resources {platform,
//     preset}, network_interfaces {subnet_id, name, ip_address, public_ip_address}, boot_disk
//     {attach_mode, existing_disk {id}, device_id}, cloud_init_user_data, stopped}; InstanceStatus
//     {state, network_interfaces {ip_address.address, public_ip_address.address}, reconciling};
//     DiskService.Create, Delete; DiskSpec {size_* oneof, block_size_bytes, type,
//     source_image_id / source_image_family {image_family, parent_id}};
//   - nebius/vpc/v1 (api_service_name "vpc"): SubnetService.List, Subnet {metadata}.
//
// google/rpc/status.proto is a copy of googleapis' for protoc to parse; it is not generated (the
// M option maps it to google.golang.org/genproto/googleapis/rpc/status).
//
// Checked against the published files: every IAM name and number, and ResourceMetadata. Written
// from memory of github.com/nebius/api and not checked (a wrong number breaks the wire format
// silently, so check these first against the published files before talking to a live endpoint):
// Operation's field numbers other than id (1) (resource_id = 8, status = 10, created_by = 4,
// finished_at = 5); that OperationService.Get with GetOperationRequest {id = 1} is served in
// package nebius.common.v1 at each service's address (the SDK also has per-service operation
// services); InstanceSpec's numbers for network_interfaces (4), boot_disk (5),
// cloud_init_user_data (8) and stopped (13); PublicIPAddress's fields (allocation_id = 1, static
// = 3); InstanceStatus's numbers and the InstanceState enum values; NetworkInterfaceStatus
// (index 1, name 2, ip_address 3, public_ip_address 4, mac_address 5); DiskSpec's source oneof
// numbers (source_image_id = 8, source_image_family = 9) and DiskType values; the image family
// names ubuntu22.04-cuda12 / ubuntu22.04-driverless; Subnet's metadata = 1 and
// ListSubnetsRequest's numbers (copied from ListProjectsRequest's layout). Not checked against a
// live endpoint: which gRPC status codes the token service answers for an unknown key id, a bad
// signature or an expired JWT (the backend treats Unauthenticated, PermissionDenied,
// InvalidArgument and NotFound as refusals of the credentials), the JWT audience (the Go SDK
// sends "token-service.iam.new.nebiuscloud.net"; this backend sends the same), and how a capacity
// refusal arrives (ResourceExhausted or a message with "not enough resources", on the call or in
// the operation's status: the backend accepts all of these).
//
// To regenerate (Debian: apt-get install protobuf-compiler; then
// go install google.golang.org/protobuf/cmd/protoc-gen-go@latest and
// go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@latest, with $(go env GOPATH)/bin on
// PATH), run `go generate ./internal/backends/nebius/proto/` from the module root.
package proto

//go:generate sh -c "protoc -I . --go_out=. --go_opt=paths=source_relative --go_opt=Mgoogle/rpc/status.proto=google.golang.org/genproto/googleapis/rpc/status --go-grpc_out=. --go-grpc_opt=paths=source_relative nebius/common/v1/*.proto nebius/iam/v1/*.proto nebius/compute/v1/*.proto nebius/vpc/v1/*.proto"
