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
//     preset}, gpu_cluster {id}, network_interfaces {subnet_id, name, ip_address,
//     public_ip_address}, boot_disk {attach_mode, existing_disk {id}, device_id},
//     cloud_init_user_data, stopped}; InstanceStatus {state, network_interfaces
//     {ip_address.address, public_ip_address.address}, reconciling}; DiskService.Create, Delete;
//     DiskSpec {size_* oneof, block_size_bytes, type, source_image_id / source_image_family
//     {image_family, parent_id}}; GpuClusterService.Get, Create, Delete; GpuCluster {metadata,
//     spec {infiniband_fabric}, status {instances, reconciling}};
//   - nebius/vpc/v1 (api_service_name "vpc"): SubnetService.List, Subnet {metadata}.
//
// google/rpc/status.proto is a copy of googleapis' for protoc to parse; it is not generated (the
// M option maps it to google.golang.org/genproto/googleapis/rpc/status).
//
// Checked against the published files of github.com/nebius/api (every package, service, RPC,
// message, field name, number and type, and enum value above): nebius/compute/v1/instance.proto,
// instance_service.proto, network_interface.proto, disk.proto, disk_service.proto,
// gpu_cluster.proto, gpu_cluster_service.proto;
// nebius/common/v1/metadata.proto, operation.proto, operation_service.proto; nebius/vpc/v1/
// subnet.proto, subnet_service.proto; nebius/iam/v1/token_service.proto,
// token_exchange_service.proto, tenant_service.proto, project_service.proto, container.proto.
// Container's region fields (spec 1, status 4) are missing from older copies of container.proto;
// their numbers come from the descriptor generated into the nebius Python SDK. OperationService.Get
// is served at the address of the service whose call returned the operation (the Go SDK's
// generated clients poll through the same connection). wire_test.go pins these numbers, so a
// change here that breaks the wire format fails a test. The image families ubuntu22.04-cuda12 and
// ubuntu22.04-driverless are the ones dstack and Nebius's own examples use.
//
// Not checked against a live endpoint: which gRPC status codes the token service answers for an
// unknown key id, a bad signature or an expired JWT (the backend treats Unauthenticated,
// PermissionDenied, InvalidArgument and NotFound as refusals of the credentials), the JWT audience
// (the Go SDK sends "token-service.iam.new.nebiuscloud.net"; this backend sends the same), and how
// a capacity refusal arrives (ResourceExhausted or a message with "not enough resources", on the
// call or in the operation's status: the backend accepts all of these).
//
// To regenerate (Debian: apt-get install protobuf-compiler; then
// go install google.golang.org/protobuf/cmd/protoc-gen-go@latest and
// go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@latest, with $(go env GOPATH)/bin on
// PATH), run `go generate ./internal/backends/nebius/proto/` from the module root.
package proto

//go:generate sh -c "protoc -I . --go_out=. --go_opt=paths=source_relative --go_opt=Mgoogle/rpc/status.proto=google.golang.org/genproto/googleapis/rpc/status --go-grpc_out=. --go-grpc_opt=paths=source_relative nebius/common/v1/*.proto nebius/iam/v1/*.proto nebius/compute/v1/*.proto nebius/vpc/v1/*.proto"
