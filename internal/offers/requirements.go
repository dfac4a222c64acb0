package offers

import (
	"fmt"

	"github.com/dstackgo/dstack/internal/resources"
)

// Requirements is what a backend is asked for: dstack's Requirements without the reservation.
type Requirements struct {
	Resources resources.ResourcesSpec `json:"resources"`
	MaxPrice  *float64                `json:"max_price"`
	// Spot is true for spot only, false for on-demand only, nil for either.
	Spot *bool `json:"spot"`
}

// Query is a plan's input: the requirements plus the profile's filters, which apply to the merged
// offers. Names compare case-insensitively, except backend types.
type Query struct {
	Requirements
	// Backends limits the backend types; a lone "dstack" is ignored, as in dstack.
	Backends          []string
	Regions           []string
	AvailabilityZones []string
	InstanceTypes     []string
}

// SpotPolicy is a profile's spot_policy.
type SpotPolicy string

// Spot policies; the zero value means OnDemand, dstack's default for runs and fleets.
const (
	SpotOnly SpotPolicy = "spot"
	OnDemand SpotPolicy = "on-demand"
	SpotAuto SpotPolicy = "auto"
)

// ParseSpotPolicy checks a spot_policy value; "" gives OnDemand.
func ParseSpotPolicy(s string) (SpotPolicy, error) {
	switch p := SpotPolicy(s); p {
	case "":
		return OnDemand, nil
	case SpotOnly, OnDemand, SpotAuto:
		return p, nil
	}
	return "", fmt.Errorf("spot_policy: %q is not valid: expected spot, on-demand or auto", s)
}

// Spot is the Requirements.Spot of a policy: auto accepts both.
func (p SpotPolicy) Spot() *bool {
	switch p {
	case SpotOnly:
		return new(true)
	case SpotAuto:
		return nil
	}
	return new(false)
}
