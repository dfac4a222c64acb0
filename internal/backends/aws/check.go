package aws

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/dstackgo/dstack/internal/backends"
)

// maxRegionChecks bounds the regions checked at once (dstack uses 12 threads).
const maxRegionChecks = 12

// check is the credential check (spec §2.1): sts:GetCallerIdentity in us-east-1; then
// iam:GetInstanceProfile when iam_instance_profile is set; then, in every configured region at
// once, the VPC and subnets instances would use (see network.go). Every call is one attempt.
//
// Verdicts: credentials the services refuse are a *backends.CredentialsError naming
// [creds access_key] and [creds secret_key] (or [creds] for the default chain, including a chain
// that finds no credentials); a missing instance profile names [iam_instance_profile]; a VPC
// problem names vpc_name, vpc_ids, default_vpcs, regions or public_ips. Failures that say nothing
// about the config (network, timeouts, 5xx, throttling) are a *backends.ProviderError.
func check(ctx context.Context, cfg backends.Config) error {
	ctx, cancel := backends.WithDefaultDeadline(ctx)
	defer cancel()
	s, err := newSession(ctx, cfg, false)
	if err != nil {
		return err
	}
	if cfg.String("creds", "type") == "default" {
		if _, err := s.cfg.Credentials.Retrieve(ctx); err != nil {
			if ctx.Err() != nil {
				return &backends.ProviderError{Provider: provider, URL: "the AWS default credential chain", Err: ctx.Err()}
			}
			return &backends.CredentialsError{Msg: "the default credential chain (environment, shared files, container or instance role) found no usable credentials: " +
				backends.RedactString(err.Error(), s.secrets), Fields: s.fields}
		}
	}
	if _, err := s.stsClient().GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil {
		return s.probeError("sts", mainRegion, err)
	}
	if name := cfg.String("iam_instance_profile"); name != "" {
		_, err := s.iamClient().GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String(name)})
		switch code := errorCode(err); {
		case code == "NoSuchEntity":
			return configError("iam_instance_profile", "IAM instance profile %s not found", name)
		case code == "AccessDenied":
			return configError("iam_instance_profile", "the credentials may not read IAM instance profile %s (iam:GetInstanceProfile): %s",
				name, errorMessage(err))
		case err != nil:
			return s.probeError("iam", mainRegion, err)
		}
	}
	regions := regionsOf(cfg)
	nc := netConfigOf(cfg)
	errs := make([]error, len(regions))
	sem := make(chan struct{}, maxRegionChecks)
	var wg sync.WaitGroup
	for i, r := range regions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if _, err := resolveNetwork(ctx, s.ec2Client(r), r, nc); err != nil {
				var ce *backends.CredentialsError
				if !errors.As(err, &ce) {
					err = s.probeError("ec2", r, err)
				}
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	// A credentials refusal comes first; then the first region's problem.
	for _, err := range errs {
		var ce *backends.CredentialsError
		if errors.As(err, &ce) && len(ce.Fields) > 0 && ce.Fields[0][0] == "creds" {
			return err
		}
	}
	for i, err := range errs {
		if err != nil {
			var pe *backends.ProviderError
			if errors.As(err, &pe) {
				return fmt.Errorf("region %s: %w", regions[i], err)
			}
			return err
		}
	}
	return nil
}

// regionsOf is the configured regions, or DefaultRegions.
func regionsOf(cfg backends.Config) []string {
	if r := stringList(cfg.Values["regions"]); len(r) > 0 {
		return r
	}
	return DefaultRegions
}
