package proto_test

import (
	"sort"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/dstackgo/dstack/internal/backends/nebius/proto/nebius/common/v1"
	_ "github.com/dstackgo/dstack/internal/backends/nebius/proto/nebius/compute/v1"
	_ "github.com/dstackgo/dstack/internal/backends/nebius/proto/nebius/iam/v1"
	_ "github.com/dstackgo/dstack/internal/backends/nebius/proto/nebius/vpc/v1"
)

// The wire facts of every message, enum and service in the minimal definition, as published in
// github.com/nebius/api (the files named in gen.go). Each field is "name number type", with
// "repeated " in front for a list and the message or enum full name as the type. A field in the
// generated code that is not listed here, or listed with another number or type, fails the test:
// the copy must stay a subset of the real definition.
var wantMessages = map[string][]string{
	"nebius.common.v1.ResourceMetadata": {
		"id 1 string", "parent_id 2 string", "name 3 string", "resource_version 4 int64",
		"created_at 5 google.protobuf.Timestamp", "updated_at 6 google.protobuf.Timestamp",
		"repeated labels 7 nebius.common.v1.ResourceMetadata.LabelsEntry",
	},
	"nebius.common.v1.Operation": {
		"id 1 string", "description 2 string", "created_at 3 google.protobuf.Timestamp",
		"created_by 4 string", "finished_at 5 google.protobuf.Timestamp", "resource_id 7 string",
		"status 10 google.rpc.Status",
	},
	"nebius.common.v1.GetOperationRequest": {"id 1 string"},

	"nebius.compute.v1.GetInstanceRequest":    {"id 1 string"},
	"nebius.compute.v1.DeleteInstanceRequest": {"id 1 string"},
	"nebius.compute.v1.CreateInstanceRequest": {
		"metadata 1 nebius.common.v1.ResourceMetadata", "spec 2 nebius.compute.v1.InstanceSpec",
	},
	"nebius.compute.v1.Instance": {
		"metadata 1 nebius.common.v1.ResourceMetadata", "spec 2 nebius.compute.v1.InstanceSpec",
		"status 3 nebius.compute.v1.InstanceStatus",
	},
	"nebius.compute.v1.InstanceSpec": {
		"service_account_id 1 string", "resources 2 nebius.compute.v1.ResourcesSpec",
		"gpu_cluster 3 nebius.compute.v1.InstanceGpuClusterSpec",
		"repeated network_interfaces 4 nebius.compute.v1.NetworkInterfaceSpec",
		"boot_disk 5 nebius.compute.v1.AttachedDiskSpec", "cloud_init_user_data 8 string",
		"stopped 13 bool",
	},
	"nebius.compute.v1.ResourcesSpec": {"platform 1 string", "preset 2 string"},
	"nebius.compute.v1.AttachedDiskSpec": {
		"attach_mode 1 nebius.compute.v1.AttachedDiskSpec.AttachMode",
		"existing_disk 2 nebius.compute.v1.ExistingDisk", "device_id 3 string",
	},
	"nebius.compute.v1.ExistingDisk":            {"id 1 string"},
	"nebius.compute.v1.InstanceGpuClusterSpec":  {"id 1 string"},
	"nebius.compute.v1.GetGpuClusterRequest":    {"id 1 string"},
	"nebius.compute.v1.DeleteGpuClusterRequest": {"id 1 string"},
	"nebius.compute.v1.CreateGpuClusterRequest": {
		"metadata 1 nebius.common.v1.ResourceMetadata", "spec 2 nebius.compute.v1.GpuClusterSpec",
	},
	"nebius.compute.v1.GpuCluster": {
		"metadata 1 nebius.common.v1.ResourceMetadata", "spec 2 nebius.compute.v1.GpuClusterSpec",
		"status 3 nebius.compute.v1.GpuClusterStatus",
	},
	"nebius.compute.v1.GpuClusterSpec":   {"infiniband_fabric 1 string"},
	"nebius.compute.v1.GpuClusterStatus": {"repeated instances 1 string", "reconciling 2 bool"},
	"nebius.compute.v1.NetworkInterfaceSpec": {
		"subnet_id 1 string", "name 2 string", "ip_address 3 nebius.compute.v1.IPAddress",
		"public_ip_address 4 nebius.compute.v1.PublicIPAddress",
	},
	"nebius.compute.v1.IPAddress":       {"allocation_id 1 string"},
	"nebius.compute.v1.PublicIPAddress": {"allocation_id 1 string", "static 3 bool"},
	"nebius.compute.v1.InstanceStatus": {
		"state 1 nebius.compute.v1.InstanceStatus.InstanceState",
		"repeated network_interfaces 2 nebius.compute.v1.NetworkInterfaceStatus", "reconciling 5 bool",
	},
	"nebius.compute.v1.NetworkInterfaceStatus": {
		"index 1 int32", "name 2 string", "ip_address 3 nebius.compute.v1.IPAddressStatus",
		"public_ip_address 4 nebius.compute.v1.PublicIPAddressStatus", "mac_address 7 string",
	},
	"nebius.compute.v1.IPAddressStatus":       {"address 1 string", "allocation_id 2 string"},
	"nebius.compute.v1.PublicIPAddressStatus": {"address 1 string", "allocation_id 2 string", "static 3 bool"},
	"nebius.compute.v1.CreateDiskRequest": {
		"metadata 1 nebius.common.v1.ResourceMetadata", "spec 2 nebius.compute.v1.DiskSpec",
	},
	"nebius.compute.v1.DeleteDiskRequest": {"id 1 string"},
	"nebius.compute.v1.DiskSpec": {
		"size_bytes 1 int64", "size_kibibytes 2 int64", "size_mebibytes 3 int64", "size_gibibytes 4 int64",
		"block_size_bytes 5 int64", "type 6 nebius.compute.v1.DiskSpec.DiskType", "source_image_id 8 string",
		"source_image_family 10 nebius.compute.v1.SourceImageFamily",
	},
	"nebius.compute.v1.SourceImageFamily": {"image_family 1 string", "parent_id 2 string"},

	"nebius.vpc.v1.ListSubnetsRequest":  {"parent_id 1 string", "page_size 2 int64", "page_token 3 string"},
	"nebius.vpc.v1.ListSubnetsResponse": {"repeated items 1 nebius.vpc.v1.Subnet", "next_page_token 2 string"},
	"nebius.vpc.v1.Subnet":              {"metadata 1 nebius.common.v1.ResourceMetadata"},

	"nebius.iam.v1.ExchangeTokenRequest": {
		"grant_type 1 string", "requested_token_type 2 string", "subject_token 3 string",
		"subject_token_type 4 string", "repeated scopes 5 string", "audience 6 string",
		"actor_token 7 string", "actor_token_type 8 string", "repeated resource 9 string",
	},
	"nebius.iam.v1.CreateTokenResponse": {
		"access_token 1 string", "issued_token_type 2 string", "token_type 3 string",
		"expires_in 4 int64", "repeated scopes 5 string",
	},
	"nebius.iam.v1.ListTenantsRequest":  {"page_size 1 int64", "page_token 2 string", "filter 3 string"},
	"nebius.iam.v1.ListTenantsResponse": {"repeated items 1 nebius.iam.v1.Container", "next_page_token 2 string"},
	"nebius.iam.v1.ListProjectsRequest": {
		"parent_id 1 string", "page_size 2 int64", "page_token 3 string", "filter 4 string",
	},
	"nebius.iam.v1.ListProjectsResponse": {"repeated items 1 nebius.iam.v1.Container", "next_page_token 2 string"},
	"nebius.iam.v1.Container": {
		"metadata 1 nebius.common.v1.ResourceMetadata", "spec 2 nebius.iam.v1.ContainerSpec",
		"status 3 nebius.iam.v1.ContainerStatus",
	},
	"nebius.iam.v1.ContainerSpec":   {"region 1 string"},
	"nebius.iam.v1.ContainerStatus": {"region 4 string"},
}

var wantEnums = map[string][]string{
	"nebius.compute.v1.InstanceStatus.InstanceState": {
		"UNSPECIFIED 0", "CREATING 1", "UPDATING 2", "STARTING 3", "RUNNING 4", "STOPPING 5",
		"STOPPED 6", "DELETING 7", "ERROR 8",
	},
	"nebius.compute.v1.AttachedDiskSpec.AttachMode": {"UNSPECIFIED 0", "READ_ONLY 1", "READ_WRITE 2"},
	"nebius.compute.v1.DiskSpec.DiskType": {
		"UNSPECIFIED 0", "NETWORK_SSD 1", "NETWORK_HDD 2", "NETWORK_SSD_NON_REPLICATED 3", "NETWORK_SSD_IO_M3 4",
	},
}

// The gRPC method paths are /<service full name>/<method>.
var wantMethods = []string{
	"nebius.common.v1.OperationService.Get(nebius.common.v1.GetOperationRequest) nebius.common.v1.Operation",
	"nebius.compute.v1.InstanceService.Get(nebius.compute.v1.GetInstanceRequest) nebius.compute.v1.Instance",
	"nebius.compute.v1.InstanceService.Create(nebius.compute.v1.CreateInstanceRequest) nebius.common.v1.Operation",
	"nebius.compute.v1.InstanceService.Delete(nebius.compute.v1.DeleteInstanceRequest) nebius.common.v1.Operation",
	"nebius.compute.v1.DiskService.Create(nebius.compute.v1.CreateDiskRequest) nebius.common.v1.Operation",
	"nebius.compute.v1.DiskService.Delete(nebius.compute.v1.DeleteDiskRequest) nebius.common.v1.Operation",
	"nebius.compute.v1.GpuClusterService.Get(nebius.compute.v1.GetGpuClusterRequest) nebius.compute.v1.GpuCluster",
	"nebius.compute.v1.GpuClusterService.Create(nebius.compute.v1.CreateGpuClusterRequest) nebius.common.v1.Operation",
	"nebius.compute.v1.GpuClusterService.Delete(nebius.compute.v1.DeleteGpuClusterRequest) nebius.common.v1.Operation",
	"nebius.vpc.v1.SubnetService.List(nebius.vpc.v1.ListSubnetsRequest) nebius.vpc.v1.ListSubnetsResponse",
	"nebius.iam.v1.TokenExchangeService.Exchange(nebius.iam.v1.ExchangeTokenRequest) nebius.iam.v1.CreateTokenResponse",
	"nebius.iam.v1.TenantService.List(nebius.iam.v1.ListTenantsRequest) nebius.iam.v1.ListTenantsResponse",
	"nebius.iam.v1.ProjectService.List(nebius.iam.v1.ListProjectsRequest) nebius.iam.v1.ListProjectsResponse",
}

func ourFiles() []protoreflect.FileDescriptor {
	var out []protoreflect.FileDescriptor
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if strings.HasPrefix(string(fd.Package()), "nebius.") {
			out = append(out, fd)
		}
		return true
	})
	return out
}

func fieldString(f protoreflect.FieldDescriptor) string {
	typ := f.Kind().String()
	switch {
	case f.Message() != nil:
		typ = string(f.Message().FullName())
	case f.Enum() != nil:
		typ = string(f.Enum().FullName())
	}
	s := string(f.Name()) + " " + strconv.Itoa(int(f.Number())) + " " + typ
	if f.Cardinality() == protoreflect.Repeated {
		s = "repeated " + s
	}
	return s
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

func TestMessagesMatchPublishedDefinitions(t *testing.T) {
	seen := map[string]bool{}
	var walk func(protoreflect.MessageDescriptors)
	walk = func(ms protoreflect.MessageDescriptors) {
		for i := 0; i < ms.Len(); i++ {
			m := ms.Get(i)
			if m.IsMapEntry() {
				continue
			}
			name := string(m.FullName())
			seen[name] = true
			want, ok := wantMessages[name]
			if !ok {
				t.Errorf("message %s is not in the checked list: check it against github.com/nebius/api and add it", name)
				continue
			}
			var got []string
			for j := 0; j < m.Fields().Len(); j++ {
				got = append(got, fieldString(m.Fields().Get(j)))
			}
			if g, w := strings.Join(sorted(got), "; "), strings.Join(sorted(want), "; "); g != w {
				t.Errorf("message %s:\n got  %s\n want %s", name, g, w)
			}
			walk(m.Messages())
		}
	}
	for _, fd := range ourFiles() {
		walk(fd.Messages())
	}
	for name := range wantMessages {
		if !seen[name] {
			t.Errorf("message %s is missing from the generated code", name)
		}
	}
}

func TestEnumsMatchPublishedDefinitions(t *testing.T) {
	for name, want := range wantEnums {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
		if err != nil {
			t.Errorf("enum %s: %v", name, err)
			continue
		}
		e, ok := d.(protoreflect.EnumDescriptor)
		if !ok {
			t.Errorf("%s is not an enum", name)
			continue
		}
		var got []string
		for i := 0; i < e.Values().Len(); i++ {
			v := e.Values().Get(i)
			got = append(got, string(v.Name())+" "+strconv.Itoa(int(v.Number())))
		}
		if g, w := strings.Join(got, ", "), strings.Join(want, ", "); g != w {
			t.Errorf("enum %s:\n got  %s\n want %s", name, g, w)
		}
	}
}

func TestServicesMatchPublishedDefinitions(t *testing.T) {
	var got []string
	for _, fd := range ourFiles() {
		for i := 0; i < fd.Services().Len(); i++ {
			s := fd.Services().Get(i)
			for j := 0; j < s.Methods().Len(); j++ {
				m := s.Methods().Get(j)
				got = append(got, string(s.FullName())+"."+string(m.Name())+
					"("+string(m.Input().FullName())+") "+string(m.Output().FullName()))
			}
		}
	}
	if g, w := strings.Join(sorted(got), "\n"), strings.Join(sorted(wantMethods), "\n"); g != w {
		t.Errorf("services:\n got\n%s\n want\n%s", g, w)
	}
}
