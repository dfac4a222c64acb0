// Package aws is the Amazon Web Services backend.
package aws

import (
	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/schema"
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

func init() {
	backends.Register(&backends.Driver{
		Type:  "aws",
		Title: "Amazon Web Services",
		Fields: []schema.Field{
			backends.Regions("AWS regions, e.g. [us-east-1]; default: the 11 regions with dstack images"),
			backends.Str("vpc_name", false, "the Name tag of a VPC that exists in every configured region"),
			{Name: "vpc_ids", Kind: schema.StringMap, Help: "a mapping of region to VPC id, e.g. us-east-1: vpc-0a2b3c"},
			backends.Bool("default_vpcs", "use the default VPC in regions without vpc_ids (default true)"),
			backends.Bool("public_ips", "give instances public IPs (default true)"),
			backends.Str("iam_instance_profile", false, "an IAM instance profile name"),
			backends.Tags("AWS tags as key: value"),
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
	})
}
