package gcp

import (
	"context"

	"github.com/dstackgo/dstack/internal/backends"
)

// provider names Google Cloud in messages.
const provider = "GCP"

// check is the credential check (spec §2.1): build the credentials (the service account's key,
// or Application Default Credentials), exchange them for an access token, list the project's
// regions (compute.regions.list), then check the networks (network.go): the VPC and extra_vpcs
// exist (networks.get) and, with public_ips false unless nat_check is false, every configured
// region has the VPC's Cloud NAT (routers.list). Every call is one attempt.
//
// Verdicts: a key that does not parse or that Google's token endpoint refuses is a
// *backends.CredentialsError naming [creds data] (and [creds filename] when the key came from a
// file), or [creds] for default credentials; a project that does not exist names [project_id];
// a 403 is "Insufficient permissions" on the credentials; a missing VPC names [vpc_name], a
// missing extra VPC [extra_vpcs], regions without Cloud NAT [public_ips] and [nat_check]. Failures
// that say nothing about the config (network, timeouts, 5xx, throttling) are a
// *backends.ProviderError naming the endpoint.
func check(ctx context.Context, cfg backends.Config) error {
	ctx, cancel := backends.WithDefaultDeadline(ctx)
	defer cancel()
	s, err := newSession(ctx, cfg, false)
	if err != nil {
		return err
	}
	if _, err := s.svc.Regions.List(s.project).MaxResults(1).Context(ctx).Do(); err != nil {
		return s.probeError(err)
	}
	return checkNetworks(ctx, s, cfg)
}
