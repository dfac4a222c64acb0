package oci

import (
	"context"
	"fmt"
	"net/http"

	"github.com/oracle/oci-go-sdk/v65/common"
	"github.com/oracle/oci-go-sdk/v65/core"
	"github.com/oracle/oci-go-sdk/v65/identity"

	"github.com/dstackgo/dstack/internal/backends"
)

// Where machines go (spec §2.1 create-time side effects):
//
//   - the compartment: compartment_id, else the compartment named dstack under the tenancy, found
//     by name (identity ListCompartments) or created once (CreateCompartment, in the home region);
//   - per region and project, a network named dstack-<project>-default-*: a VCN (10.0.0.0/16), an
//     internet gateway, a route table sending 0.0.0.0/0 to it, a security list allowing SSH (22)
//     from anywhere, everything within the VCN and all egress, and a regional public subnet
//     (10.0.0.0/20) using both. Each is found again by display name in the compartment (List*
//     with displayName) and created only when missing, with the freeform tags dstack_project and
//     dstack_server, so a launch that failed half-way resumes where it stopped.

// CompartmentName is the compartment dstack creates when compartment_id is not set.
const CompartmentName = "dstack"

const (
	vcnCIDR    = "10.0.0.0/16"
	subnetCIDR = "10.0.0.0/20"
)

// NetworkName names a project's network resources: dstack-<project>-default-<kind>.
func NetworkName(project, kind string) string { return "dstack-" + project + "-default-" + kind }

// findCompartment returns the id of the compartment machines go into; create false returns ""
// when dstack's compartment does not exist yet.
func (s *session) findCompartment(ctx context.Context, cfg backends.Config, create bool, tags map[string]string) (string, error) {
	if id := cfg.String("compartment_id"); id != "" {
		return id, nil
	}
	ic, err := s.identityClient(s.homeRegion)
	if err != nil {
		return "", err
	}
	req := identity.ListCompartmentsRequest{CompartmentId: common.String(s.tenancy), Name: common.String(CompartmentName),
		LifecycleState: identity.CompartmentLifecycleStateActive}
	for {
		resp, err := ic.ListCompartments(sdkCtx(ctx), req)
		if err != nil {
			return "", s.mapError(s.homeRegion, "ListCompartments", err)
		}
		for _, c := range resp.Items {
			if c.Name != nil && *c.Name == CompartmentName && c.Id != nil {
				return *c.Id, nil
			}
		}
		if resp.OpcNextPage == nil {
			break
		}
		req.Page = resp.OpcNextPage
	}
	if !create {
		return "", nil
	}
	// Identity writes go to the tenancy's home region, which need not be the creds' region.
	home, err := s.homeOf(ctx)
	if err != nil {
		return "", err
	}
	if ic, err = s.identityClient(home); err != nil {
		return "", err
	}
	resp, err := ic.CreateCompartment(sdkCtx(ctx), identity.CreateCompartmentRequest{CreateCompartmentDetails: identity.CreateCompartmentDetails{
		CompartmentId: common.String(s.tenancy), Name: common.String(CompartmentName),
		Description: common.String("dstack instances and networks"), FreeformTags: tags}})
	if status, _ := serviceCode(err); status == http.StatusConflict {
		return s.findCompartment(ctx, cfg, false, nil) // created meanwhile by a concurrent launch
	}
	if err != nil {
		return "", s.mapError(home, "CreateCompartment", err)
	}
	return *resp.Id, nil
}

// homeOf returns the tenancy's home region.
func (s *session) homeOf(ctx context.Context) (string, error) {
	s.mu.Lock()
	home := s.home
	s.mu.Unlock()
	if home != "" {
		return home, nil
	}
	if _, err := s.subscribedRegions(ctx); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.home == "" {
		return "", fmt.Errorf("OCI: the tenancy's region subscriptions name no home region")
	}
	return s.home, nil
}

// network is the subnet of a project's network in one region.
type network struct{ vcnID, subnetID string }

// ensureNetwork finds or creates a project's network in a region.
func (s *session) ensureNetwork(ctx context.Context, region, compartment, project string, tags map[string]string) (*network, error) {
	nc, err := s.networkClient(region)
	if err != nil {
		return nil, err
	}
	comp := common.String(compartment)
	name := func(kind string) *string { return common.String(NetworkName(project, kind)) }

	var vcnID string
	{
		req := core.ListVcnsRequest{CompartmentId: comp, DisplayName: name("vcn"), LifecycleState: core.VcnLifecycleStateAvailable}
		resp, err := nc.ListVcns(sdkCtx(ctx), req)
		if err != nil {
			return nil, s.mapError(region, "ListVcns", err)
		}
		if len(resp.Items) > 0 {
			vcnID = *resp.Items[0].Id
		} else {
			created, err := nc.CreateVcn(sdkCtx(ctx), core.CreateVcnRequest{CreateVcnDetails: core.CreateVcnDetails{CompartmentId: comp,
				CidrBlocks: []string{vcnCIDR}, DisplayName: name("vcn"), FreeformTags: tags}})
			if err != nil {
				return nil, s.mapError(region, "CreateVcn", err)
			}
			vcnID = *created.Id
		}
	}
	vcn := common.String(vcnID)

	var igwID string
	{
		resp, err := nc.ListInternetGateways(sdkCtx(ctx), core.ListInternetGatewaysRequest{CompartmentId: comp, VcnId: vcn, DisplayName: name("igw"),
			LifecycleState: core.InternetGatewayLifecycleStateAvailable})
		if err != nil {
			return nil, s.mapError(region, "ListInternetGateways", err)
		}
		if len(resp.Items) > 0 {
			igwID = *resp.Items[0].Id
		} else {
			created, err := nc.CreateInternetGateway(sdkCtx(ctx), core.CreateInternetGatewayRequest{CreateInternetGatewayDetails: core.CreateInternetGatewayDetails{
				CompartmentId: comp, VcnId: vcn, IsEnabled: common.Bool(true), DisplayName: name("igw"), FreeformTags: tags}})
			if err != nil {
				return nil, s.mapError(region, "CreateInternetGateway", err)
			}
			igwID = *created.Id
		}
	}

	var rtID string
	{
		resp, err := nc.ListRouteTables(sdkCtx(ctx), core.ListRouteTablesRequest{CompartmentId: comp, VcnId: vcn, DisplayName: name("rt"),
			LifecycleState: core.RouteTableLifecycleStateAvailable})
		if err != nil {
			return nil, s.mapError(region, "ListRouteTables", err)
		}
		if len(resp.Items) > 0 {
			rtID = *resp.Items[0].Id
		} else {
			created, err := nc.CreateRouteTable(sdkCtx(ctx), core.CreateRouteTableRequest{CreateRouteTableDetails: core.CreateRouteTableDetails{
				CompartmentId: comp, VcnId: vcn, DisplayName: name("rt"), FreeformTags: tags,
				RouteRules: []core.RouteRule{{Destination: common.String("0.0.0.0/0"), DestinationType: core.RouteRuleDestinationTypeCidrBlock,
					NetworkEntityId: common.String(igwID)}}}})
			if err != nil {
				return nil, s.mapError(region, "CreateRouteTable", err)
			}
			rtID = *created.Id
		}
	}

	var slID string
	{
		resp, err := nc.ListSecurityLists(sdkCtx(ctx), core.ListSecurityListsRequest{CompartmentId: comp, VcnId: vcn, DisplayName: name("sl"),
			LifecycleState: core.SecurityListLifecycleStateAvailable})
		if err != nil {
			return nil, s.mapError(region, "ListSecurityLists", err)
		}
		if len(resp.Items) > 0 {
			slID = *resp.Items[0].Id
		} else {
			created, err := nc.CreateSecurityList(sdkCtx(ctx), core.CreateSecurityListRequest{CreateSecurityListDetails: core.CreateSecurityListDetails{
				CompartmentId: comp, VcnId: vcn, DisplayName: name("sl"), FreeformTags: tags,
				EgressSecurityRules: []core.EgressSecurityRule{{Destination: common.String("0.0.0.0/0"), Protocol: common.String("all")}},
				IngressSecurityRules: []core.IngressSecurityRule{
					{Source: common.String("0.0.0.0/0"), Protocol: common.String("6"), // TCP
						TcpOptions: &core.TcpOptions{DestinationPortRange: &core.PortRange{Min: common.Int(22), Max: common.Int(22)}}},
					{Source: common.String(vcnCIDR), Protocol: common.String("all")},
				}}})
			if err != nil {
				return nil, s.mapError(region, "CreateSecurityList", err)
			}
			slID = *created.Id
		}
	}

	var subnetID string
	{
		resp, err := nc.ListSubnets(sdkCtx(ctx), core.ListSubnetsRequest{CompartmentId: comp, VcnId: vcn, DisplayName: name("subnet"),
			LifecycleState: core.SubnetLifecycleStateAvailable})
		if err != nil {
			return nil, s.mapError(region, "ListSubnets", err)
		}
		if len(resp.Items) > 0 {
			subnetID = *resp.Items[0].Id
		} else {
			created, err := nc.CreateSubnet(sdkCtx(ctx), core.CreateSubnetRequest{CreateSubnetDetails: core.CreateSubnetDetails{
				CompartmentId: comp, VcnId: vcn, CidrBlock: common.String(subnetCIDR), DisplayName: name("subnet"), FreeformTags: tags,
				RouteTableId: common.String(rtID), SecurityListIds: []string{slID}, ProhibitPublicIpOnVnic: common.Bool(false)}})
			if err != nil {
				return nil, s.mapError(region, "CreateSubnet", err)
			}
			subnetID = *created.Id
		}
	}
	if subnetID == "" {
		return nil, fmt.Errorf("OCI %s: no subnet for project %s", region, project)
	}
	return &network{vcnID: vcnID, subnetID: subnetID}, nil
}
