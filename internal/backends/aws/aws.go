// Package aws is the Amazon Web Services backend, on the AWS SDK for Go v2 (EC2, STS, IAM, Service
// Quotas, Elastic Load Balancing v2 and ACM clients):
//
//   - the credential check (check.go): sts:GetCallerIdentity in us-east-1, iam:GetInstanceProfile
//     when iam_instance_profile is set, and the VPC and subnets of every configured region
//     (ec2:DescribeVpcs, DescribeSubnets, DescribeRouteTables), honouring vpc_name, vpc_ids,
//     default_vpcs and public_ips (network.go);
//   - machines (compute.go): RunInstances with dstack's AMI or os_images, the project's security
//     group, cloud-init that starts dstack-shim, spot, tags; DescribeInstances; TerminateInstances;
//     and ListInstances for the orphan reconciler (backends.InstanceLister);
//   - offers (offers.go): the catalog enriched with Service Quotas and availability zones;
//   - gateways (gateway.go, backends.GatewayCompute): a small instance with the project's gateway
//     security group, and with an ACM certificate an Application Load Balancer in front of it.
//
// The calls are those of the seed's permission list (plus sts:GetCallerIdentity, which needs
// none). Credentials are `access_key` (access_key, secret_key) or `default` (the SDK's default
// chain: environment, shared files, container and instance roles), which
// DSTACK_DEFAULT_CREDS_DISABLED forbids.
//
// DSTACK_AWS_API_URL, when set, is the BaseEndpoint of every client (EC2, Service Quotas, ELBv2 and
// ACM of every region, STS, IAM): one URL serving all six, as the cloud simulator does (the region
// still travels in the request signature). It is meant for the simulator and for proxies that
// route by the signature's service; unset, each client uses AWS's own endpoint for its service and
// region.
package aws

import (
	"fmt"
	"regexp"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/schema"
)

const (
	typ        = "aws"
	provider   = "AWS"
	mainRegion = "us-east-1"
)

// DefaultRegions are the regions where dstack's images are published, used when `regions` is omitted.
var DefaultRegions = []string{"us-east-1", "us-east-2", "us-west-1", "us-west-2", "ap-southeast-1",
	"ca-central-1", "eu-central-1", "eu-west-1", "eu-west-2", "eu-west-3", "eu-north-1"}

func osImage(name string) schema.Field {
	return schema.Field{Name: name, Kind: schema.Object, Help: "a custom AMI: name, owner, user", Fields: []schema.Field{
		backends.Str("name", true, "the AMI name"),
		{Name: "owner", Kind: schema.String, IntOK: true, Pattern: backends.Pattern(`^(\d{12}|self)$`),
			Help: "a 12-digit AWS account id or `self`"},
		backends.Str("user", true, "the SSH user with passwordless sudo"),
	}}
}

// tagChars are the characters AWS allows in tag keys and values.
var tagChars = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)

// tagsField is `tags` with AWS's rules: keys of 1 to 128 characters not starting with aws:, values
// of at most 256, letters, digits, spaces and _ . : / = + - @ only.
func tagsField() schema.Field {
	f := backends.Tags("AWS tags as key: value, put on every instance and volume dstack creates")
	common := f.Check
	f.Check = func(v any) string {
		if msg := common(v); msg != "" {
			return msg
		}
		m, _ := v.(map[string]any)
		for k, x := range m {
			val := fmt.Sprint(x)
			switch {
			case len(k) == 0 || len([]rune(k)) > 128:
				return fmt.Sprintf("tag key %q must have 1 to 128 characters", k)
			case len(k) >= 4 && (k[:4] == "aws:" || k[:4] == "AWS:"):
				return fmt.Sprintf("tag key %q: the aws: prefix is reserved", k)
			case len([]rune(val)) > 256:
				return fmt.Sprintf("the value of tag %q has more than 256 characters", k)
			case !tagChars.MatchString(k) || !tagChars.MatchString(val):
				return fmt.Sprintf("tag %q: keys and values may hold letters, digits, spaces and _ . : / = + - @ only", k)
			}
		}
		return ""
	}
	return f
}

func init() {
	backends.Register(&backends.Driver{
		Type:  typ,
		Title: "Amazon Web Services",
		Fields: []schema.Field{
			backends.Regions("AWS regions, e.g. [us-east-1]; default: the 11 regions with dstack images"),
			backends.Str("vpc_name", false, "the Name tag of a VPC that exists in every configured region"),
			{Name: "vpc_ids", Kind: schema.StringMap, Help: "a mapping of region to VPC id, e.g. us-east-1: vpc-0a2b3c"},
			backends.Bool("default_vpcs", "use the default VPC in regions without vpc_ids (default true)"),
			backends.Bool("public_ips", "give instances public IPs (default true)"),
			backends.Str("iam_instance_profile", false, "an IAM instance profile name"),
			tagsField(),
			{Name: "os_images", Kind: schema.Object, Help: "custom AMIs for `cpu` and `nvidia` instances",
				Fields: []schema.Field{osImage("cpu"), osImage("nvidia")}},
			backends.Creds(
				schema.Variant{Name: "access_key", Fields: []schema.Field{
					backends.Secret("access_key", "an AWS access key id"),
					backends.Secret("secret_key", "the AWS secret access key"),
				}},
				backends.DefaultCreds(),
			),
		},
		Rules: []schema.Rule{
			backends.Exclusive("vpc_name", "vpc_ids"),
			func(obj map[string]any, _ *schema.Context) []schema.Issue {
				if obj["default_vpcs"] == false && obj["vpc_name"] == nil && obj["vpc_ids"] == nil {
					return []schema.Issue{schema.At("`vpc_name` or `vpc_ids` must be specified if `default_vpcs: false`", "default_vpcs")}
				}
				return nil
			},
		},
		Check:      check,
		NewCompute: newCompute,
		NewOffers:  newOffers,
	})
}
