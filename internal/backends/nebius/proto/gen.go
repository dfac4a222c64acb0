// Package proto holds a minimal protocol definition of the parts of Nebius AI Cloud's gRPC API
// that the nebius backend calls, and the Go generated from it (committed: building and testing
// need no protoc). The .proto files under nebius/ are hand-written copies of the published
// definitions in github.com/nebius/api, keeping the real package, service, method, message and
// field names and field numbers (the wire format) and leaving out the options (buf.validate,
// nebius annotations), the fields and the methods the backend does not use:
//
//   - nebius/iam/v1: TokenExchangeService.Exchange (ExchangeTokenRequest → CreateTokenResponse),
//     TenantService.List, ProjectService.List, Container {metadata, spec, status.region};
//   - nebius/common/v1: ResourceMetadata.
//
// Checked against the published files: every name and number above. Not checked against a live
// endpoint: which gRPC status codes the token service answers for an unknown key id, a bad
// signature or an expired JWT (the backend treats Unauthenticated, PermissionDenied,
// InvalidArgument and NotFound as refusals of the credentials), and the JWT audience (the Go SDK
// sends "token-service.iam.new.nebiuscloud.net"; this backend sends the same). Compute
// (nebius/compute/v1 InstanceService) and nebius/common/v1 Operation are not defined here yet.
//
// To regenerate (Debian: apt-get install protobuf-compiler; then
// go install google.golang.org/protobuf/cmd/protoc-gen-go@latest and
// go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@latest, with $(go env GOPATH)/bin on
// PATH), run `go generate ./internal/backends/nebius/proto/` from the module root.
package proto

//go:generate sh -c "protoc -I . --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative nebius/common/v1/*.proto nebius/iam/v1/*.proto"
