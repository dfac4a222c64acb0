package oci

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/oracle/oci-go-sdk/v65/common"
	"github.com/oracle/oci-go-sdk/v65/identity"

	"github.com/dstackgo/dstack/internal/backends"
)

// check is the credential check (spec §2.1): identity ListRegionSubscriptions of the tenancy in
// the home region, one attempt; then, without further calls, the configured regions against the
// subscriptions; then GetCompartment when compartment_id is set.
//
// Verdicts: a refused signature is a *backends.CredentialsError naming the signing keys
// (creds.user, tenancy, fingerprint, key_file or key_content, region; [creds] for `default`); an
// unknown tenancy names creds.tenancy; a key that does not load names its key; regions that are
// not subscribed name regions; a missing compartment names compartment_id. Failures that say
// nothing about the config (network, timeouts, 5xx, throttling) are a *backends.ProviderError.
func check(ctx context.Context, cfg backends.Config) error {
	ctx, cancel := backends.WithDefaultDeadline(ctx)
	defer cancel()
	s, err := newSession(cfg, false)
	if err != nil {
		return err
	}
	subscribed, err := s.subscribedRegions(ctx)
	if err != nil {
		return err
	}
	if _, err := regionsFor(cfg, subscribed); err != nil {
		return err
	}
	if id := cfg.String("compartment_id"); id != "" {
		c, err := s.identityClient(s.homeRegion)
		if err != nil {
			return err
		}
		resp, err := c.GetCompartment(sdkCtx(ctx), identity.GetCompartmentRequest{CompartmentId: common.String(id)})
		if status, _ := serviceCode(err); status == http.StatusNotFound {
			return credsError(fmt.Sprintf("compartment %s is not found or the credentials may not read it: check compartment_id and the group's policies", id), []string{"compartment_id"})
		}
		if err != nil {
			return s.probeError("identity", s.homeRegion, err)
		}
		if st := resp.LifecycleState; st != identity.CompartmentLifecycleStateActive {
			return credsError(fmt.Sprintf("compartment %s is %s, not ACTIVE", id, st), []string{"compartment_id"})
		}
	}
	return nil
}

// subscribedRegions lists the tenancy's READY region subscriptions (ListRegionSubscriptions in
// the home region), sorted.
func (s *session) subscribedRegions(ctx context.Context) ([]string, error) {
	c, err := s.identityClient(s.homeRegion)
	if err != nil {
		return nil, err
	}
	resp, err := c.ListRegionSubscriptions(sdkCtx(ctx), identity.ListRegionSubscriptionsRequest{TenancyId: common.String(s.tenancy)})
	if status, code := serviceCode(err); status == http.StatusNotFound {
		field := []string{"creds", "tenancy"}
		if len(s.fields) > 0 && len(s.fields[0]) == 1 {
			field = s.fields[0] // default credentials: the config file holds the tenancy
		}
		return nil, credsError(fmt.Sprintf("tenancy %s is not found or the user may not read its region subscriptions (%s): check creds.tenancy", s.tenancy, code), field)
	}
	if err != nil {
		return nil, s.probeError("identity", s.homeRegion, err)
	}
	var out []string
	for _, r := range resp.Items {
		if r.RegionName != nil && r.Status == identity.RegionSubscriptionStatusReady {
			out = append(out, *r.RegionName)
		}
		if r.RegionName != nil && r.IsHomeRegion != nil && *r.IsHomeRegion {
			s.mu.Lock()
			s.home = *r.RegionName
			s.mu.Unlock()
		}
	}
	sort.Strings(out)
	return out, nil
}

// regionsFor is where the backend works: the configured regions, each of which the tenancy must
// subscribe to; without `regions`, the subscribed regions that dstack supports, of which there
// must be one.
func regionsFor(cfg backends.Config, subscribed []string) ([]string, error) {
	configured := cfg.Strings("regions")
	if len(configured) == 0 {
		var out []string
		for _, r := range subscribed {
			if slices.Contains(Regions, r) {
				out = append(out, r)
			}
		}
		if len(out) == 0 {
			return nil, credsError(fmt.Sprintf("the tenancy subscribes to none of the regions dstack supports (%s); it subscribes to %s: subscribe to one in the OCI console",
				strings.Join(Regions, ", "), strings.Join(subscribed, ", ")), []string{"regions"})
		}
		return out, nil
	}
	var missing []string
	for _, r := range configured {
		if !slices.Contains(subscribed, r) {
			missing = append(missing, r)
		}
	}
	if len(missing) > 0 {
		return nil, credsError(fmt.Sprintf("the tenancy does not subscribe to %s (it subscribes to %s): remove them from regions or subscribe in the OCI console",
			strings.Join(missing, ", "), strings.Join(subscribed, ", ")), []string{"regions"})
	}
	return configured, nil
}
