package azure

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/dstackgo/dstack/internal/backends"
)

// managedIdentityAPIVersion is the Microsoft.ManagedIdentity api-version of the identity lookup
// (through the generic resources client, as the Go SDK modules in use have no MSI client).
const managedIdentityAPIVersion = "2023-01-31"

// check is the credential check (spec §2.1), one attempt per call, stopping at the first problem:
//
//  1. a Resource Manager token from Microsoft Entra ID: a refused tenant, application or secret
//     names tenant_id (or creds.tenant_id), creds.client_id or creds.client_secret; the default
//     chain finding nothing names creds;
//  2. GET the subscription: SubscriptionNotFound (or a subscription that is not Enabled) names
//     subscription_id;
//  3. GET resource_group when set: ResourceGroupNotFound names resource_group;
//  4. GET vm_managed_identity when set: a missing identity names vm_managed_identity;
//  5. GET each vpc_ids network: a missing one, one in another location or one without a subnet
//     names vpc_ids.<location>.
//
// Failures that say nothing about the config (network, timeouts, 5xx, throttling) are a
// *backends.ProviderError naming the endpoint.
func check(ctx context.Context, cfg backends.Config) error {
	ctx, cancel := backends.WithDefaultDeadline(ctx)
	defer cancel()
	s, err := newSession(cfg, false)
	if err != nil {
		return err
	}
	if err := s.token(ctx); err != nil {
		return err
	}
	sub, err := s.subs.Get(ctx, s.sub, nil)
	if err != nil {
		return s.probeError(ctx, err)
	}
	if sub.State != nil && !strings.EqualFold(string(*sub.State), "Enabled") {
		return configError([]string{"subscription_id"}, "subscription %s is %s; dstack needs an Enabled subscription", s.sub, *sub.State)
	}
	if rg := cfg.String("resource_group"); rg != "" {
		if _, err := s.groups.Get(ctx, rg, nil); err != nil {
			if errorCode(err) == "ResourceGroupNotFound" {
				return configError([]string{"resource_group"}, "Resource group %s not found in subscription %s", rg, s.sub)
			}
			return s.probeError(ctx, err)
		}
	}
	if mi := cfg.String("vm_managed_identity"); mi != "" {
		rg, name, _ := strings.Cut(mi, "/")
		id := fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.ManagedIdentity/userAssignedIdentities/%s", s.sub, rg, name)
		if _, err := s.generic.GetByID(ctx, id, managedIdentityAPIVersion, nil); err != nil {
			if c := errorCode(err); c == "ResourceNotFound" || c == "ResourceGroupNotFound" || httpStatus(err) == 404 {
				return configError([]string{"vm_managed_identity"}, "managed identity %s not found in subscription %s", mi, s.sub)
			}
			return s.probeError(ctx, err)
		}
	}
	for _, loc := range sortedStrings(backends.StringMap(cfg.Values["vpc_ids"])) {
		if _, err := s.customNetwork(ctx, cfg, loc); err != nil {
			var ce *backends.CredentialsError
			if errors.As(err, &ce) {
				return err
			}
			return s.probeError(ctx, err)
		}
	}
	return nil
}

// configError is a problem of the config found by asking Azure, naming the key to fix. It is a
// *backends.CredentialsError so that the server shows the field.
func configError(field []string, format string, args ...any) error {
	return &backends.CredentialsError{Msg: fmt.Sprintf(format, args...), Fields: [][]string{field}}
}
