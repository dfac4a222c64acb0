package aws

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/dstackgo/dstack/internal/backends"
)

// Networking follows dstack's rules: in each region the VPC is vpc_ids[region] when given; else,
// when vpc_ids is given without the region, the default VPC if default_vpcs (default true) allows
// it; else the VPC whose Name tag is vpc_name; else the region's default VPC. Instances go into
// the VPC's subnets that fit public_ips (default true): with public IPs, subnets whose route table
// (the explicitly associated one, else the VPC's main table) routes through an internet gateway
// (igw-); without, subnets whose table sends 0.0.0.0/0 to a NAT gateway, transit gateway, peering
// connection or NAT instance. Three calls a region: DescribeVpcs, DescribeSubnets,
// DescribeRouteTables.

// netConfig is the networking part of a backend config.
type netConfig struct {
	vpcName     string
	vpcIDs      map[string]string
	defaultVPCs bool
	publicIPs   bool
}

func netConfigOf(cfg backends.Config) netConfig {
	nc := netConfig{vpcName: cfg.String("vpc_name"), vpcIDs: backends.StringMap(cfg.Values["vpc_ids"]),
		defaultVPCs: boolOr(cfg.Values["default_vpcs"], true), publicIPs: boolOr(cfg.Values["public_ips"], true)}
	return nc
}

// subnet is a subnet instances may use.
type subnet struct{ id, az string }

// network is where instances go in one region.
type network struct {
	vpcID   string
	subnets []subnet // one or more, ordered by zone
}

// configError is a problem of the config found by asking AWS, naming the key to fix. It is a
// *backends.CredentialsError so that the server shows the field; its message says what is wrong.
func configError(field string, format string, args ...any) error {
	return &backends.CredentialsError{Msg: fmt.Sprintf(format, args...), Fields: [][]string{{field}}}
}

// resolveNetwork finds the VPC and subnets of a region. Config problems are configErrors; API
// errors are returned as they are for the caller to map.
func resolveNetwork(ctx context.Context, c *ec2.Client, region string, nc netConfig) (*network, error) {
	var (
		vpcID, what, field string
		in                 ec2.DescribeVpcsInput
	)
	switch id := nc.vpcIDs[region]; {
	case id != "":
		in.VpcIds, what, field = []string{id}, "VPC "+id, "vpc_ids"
	case len(nc.vpcIDs) > 0 && !nc.defaultVPCs:
		return nil, configError("vpc_ids", "vpc_ids has no VPC for region %s and default_vpcs is false: add the region to vpc_ids or set default_vpcs: true", region)
	case nc.vpcName != "" && len(nc.vpcIDs) == 0:
		in.Filters, what, field = []types.Filter{{Name: aws.String("tag:Name"), Values: []string{nc.vpcName}}}, "VPC "+nc.vpcName, "vpc_name"
	default:
		in.Filters, what, field = []types.Filter{{Name: aws.String("is-default"), Values: []string{"true"}}}, "the default VPC", "regions"
		if len(nc.vpcIDs) > 0 {
			field = "default_vpcs"
		}
	}
	out, err := c.DescribeVpcs(ctx, &in)
	switch {
	case errorCode(err) == "InvalidVpcID.NotFound" || errorCode(err) == "InvalidVpcID.Malformed":
		return nil, configError(field, "VPC %s not found in region %s", nc.vpcIDs[region], region)
	case err != nil:
		return nil, err
	}
	var ids []string
	for _, v := range out.Vpcs {
		ids = append(ids, aws.ToString(v.VpcId))
	}
	sort.Strings(ids)
	switch {
	case len(ids) == 0 && field == "vpc_name":
		return nil, configError(field, "no VPC named %s in region %s", nc.vpcName, region)
	case len(ids) == 0 && field == "vpc_ids":
		return nil, configError(field, "VPC %s not found in region %s", nc.vpcIDs[region], region)
	case len(ids) == 0:
		return nil, configError(field, "no default VPC in region %s: name a VPC with vpc_name or vpc_ids, or leave the region out", region)
	}
	vpcID = ids[0]

	var subnets []types.Subnet
	sp := ec2.NewDescribeSubnetsPaginator(c, &ec2.DescribeSubnetsInput{Filters: []types.Filter{{Name: aws.String("vpc-id"), Values: []string{vpcID}}}})
	for sp.HasMorePages() {
		page, err := sp.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		subnets = append(subnets, page.Subnets...)
	}
	var tables []types.RouteTable
	tp := ec2.NewDescribeRouteTablesPaginator(c, &ec2.DescribeRouteTablesInput{Filters: []types.Filter{{Name: aws.String("vpc-id"), Values: []string{vpcID}}}})
	for tp.HasMorePages() {
		page, err := tp.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		tables = append(tables, page.RouteTables...)
	}
	var main *types.RouteTable
	bySubnet := map[string]*types.RouteTable{}
	for i := range tables {
		for _, a := range tables[i].Associations {
			if aws.ToBool(a.Main) {
				main = &tables[i]
			}
			if a.SubnetId != nil {
				bySubnet[*a.SubnetId] = &tables[i]
			}
		}
	}
	n := &network{vpcID: vpcID}
	for _, sn := range subnets {
		if sn.State != "" && sn.State != types.SubnetStateAvailable {
			continue
		}
		rt := bySubnet[aws.ToString(sn.SubnetId)]
		if rt == nil {
			rt = main
		}
		if rt == nil {
			continue
		}
		if nc.publicIPs && routesToInternet(rt) || !nc.publicIPs && routesThroughNAT(rt) {
			n.subnets = append(n.subnets, subnet{id: aws.ToString(sn.SubnetId), az: aws.ToString(sn.AvailabilityZone)})
		}
	}
	sort.Slice(n.subnets, func(i, j int) bool {
		a, b := n.subnets[i], n.subnets[j]
		return a.az < b.az || a.az == b.az && a.id < b.id
	})
	if len(n.subnets) == 0 {
		if nc.publicIPs {
			return nil, configError(field, "%s in region %s has no public subnet (one routed through an internet gateway)", what, region)
		}
		return nil, configError("public_ips", "public_ips is false but %s in region %s has no private subnet with internet egress (0.0.0.0/0 through a NAT or transit gateway)", what, region)
	}
	return n, nil
}

func routesToInternet(rt *types.RouteTable) bool {
	for _, r := range rt.Routes {
		if strings.HasPrefix(aws.ToString(r.GatewayId), "igw-") {
			return true
		}
	}
	return false
}

func routesThroughNAT(rt *types.RouteTable) bool {
	for _, r := range rt.Routes {
		if aws.ToString(r.DestinationCidrBlock) != "0.0.0.0/0" {
			continue
		}
		if r.NatGatewayId != nil || r.TransitGatewayId != nil || r.VpcPeeringConnectionId != nil || r.InstanceId != nil ||
			r.NetworkInterfaceId != nil {
			return true
		}
	}
	return false
}

// perZone returns one subnet (the first) of each zone of a network.
func (n *network) perZone() []subnet {
	var out []subnet
	seen := map[string]bool{}
	for _, s := range n.subnets {
		if !seen[s.az] {
			seen[s.az] = true
			out = append(out, s)
		}
	}
	return out
}

func boolOr(v any, def bool) bool {
	if b, ok := v.(bool); ok {
		return b
	}
	return def
}

func stringList(v any) []string {
	switch l := v.(type) {
	case []string:
		return l
	case []any:
		var out []string
		for _, x := range l {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
