package backends

import (
	"context"

	"github.com/dstackgo/dstack/internal/offers"
)

// PlacementGroupCompute is an optional ability of a Compute, found by type assertion: placement
// groups for fleets with `placement: cluster`, whose machines must sit close together on a fast
// interconnect (a Nebius GPU cluster on an InfiniBand fabric; an AWS cluster placement group; a GCP
// compact placement policy). A cluster fleet's machines all go to one backend and region, inside
// the one group made there for the fleet.
type PlacementGroupCompute interface {
	// PlacementGroupFit says why an offer's machine cannot join a placement group of this backend
	// ("" when it can): group nil asks about a new group made for the offer's machine (the fleet's
	// first), else about joining that group.
	PlacementGroupFit(offer offers.Offer, group *PlacementGroupData) string
	// CreatePlacementGroup makes the group for the offer's machine, in its region, and returns once
	// the provider has made it.
	CreatePlacementGroup(ctx context.Context, cfg PlacementGroupConfig) (*PlacementGroupData, error)
	// DeletePlacementGroup deletes a group no machine is in any more. It is idempotent: a group
	// already gone is success.
	DeletePlacementGroup(ctx context.Context, group PlacementGroupData) error
}

// PlacementGroupConfig is what a backend needs to make a fleet's placement group.
type PlacementGroupConfig struct {
	ProjectName string
	// Name is unique among the project's groups, e.g. <fleet>-<random>; providers may shorten it.
	Name string
	// Offer is the offer of the first machine to go into the group: the group is made in its
	// region, for its kind of machine (a Nebius fabric serves one platform).
	Offer offers.Offer
	// Tags go on the group, like on machines (dstack_project, dstack_server at least).
	Tags map[string]string
}

// PlacementGroupData is what the provider made: the backend's handle of the group.
type PlacementGroupData struct {
	Backend string `json:"backend"`
	Region  string `json:"region"`
	// ID is the provider's id of the group (a Nebius GPU cluster's id).
	ID          string `json:"id"`
	BackendData string `json:"backend_data,omitempty"`
}

// PlacementFit says why an offer cannot go into a placement group of its backend, whose Compute is
// c ("" when it can): backends without the ability cannot have any.
func PlacementFit(c Compute, offer offers.Offer, group *PlacementGroupData) string {
	pc, ok := c.(PlacementGroupCompute)
	if !ok {
		return "the " + offer.Backend + " backend cannot place machines in a cluster (placement: cluster)"
	}
	if group != nil && (group.Backend != offer.Backend || group.Region != offer.Region) {
		return "the fleet's cluster is in " + group.Backend + " " + group.Region
	}
	return pc.PlacementGroupFit(offer, group)
}
