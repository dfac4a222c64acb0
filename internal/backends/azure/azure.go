// Package azure is the Microsoft Azure backend, on the Azure SDK for Go: azidentity for
// credentials, and the Azure Resource Manager REST API through armsubscriptions (2022-12-01),
// armresources (2021-04-01), armcompute v7 (virtual machines 2025-04-01, disks 2025-01-02,
// resource SKUs 2021-07-01) and armnetwork v7 (2025-01-01):
//
//   - the credential check (check.go): a Resource Manager token from Microsoft Entra ID, the
//     subscription, then resource_group, vm_managed_identity and the vpc_ids networks when set;
//   - machines (compute.go): resource group, virtual network, security group, public IP, NIC and
//     VM with cloud-init that starts dstack-shim; the VM's state; deletion; and ListInstances for
//     the orphan reconciler (backends.InstanceLister);
//   - offers (offers.go): the catalog enriched with the Resource SKUs API.
//
// Credentials are `client` (client_id, client_secret and a tenant_id defaulting to the backend's,
// through azidentity's ClientSecretCredential) or `default` (azidentity's DefaultAzureCredential:
// AZURE_CLIENT_ID / AZURE_CLIENT_SECRET / AZURE_TENANT_ID and the other environment settings,
// workload identity, managed identity, the Azure CLI), which DSTACK_DEFAULT_CREDS_DISABLED forbids.
//
// DSTACK_AZURE_API_URL, when set, is both the Resource Manager endpoint and the authority host
// (the token endpoint): one https URL serving both, as the cloud simulator does. Unset, they are
// https://management.azure.com and https://login.microsoftonline.com/. The SDK's HTTP client
// trusts the system roots plus the certificates of SSL_CERT_FILE (see newTransport).
package azure

import (
	"fmt"
	"sort"
	"strings"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/schema"
)

// Locations are the Azure locations dstack supports; they are also the default `regions`.
var Locations = []string{"centralus", "eastus", "eastus2", "southcentralus", "westus2", "westus3",
	"canadacentral", "francecentral", "germanywestcentral", "northeurope", "swedencentral", "uksouth",
	"westeurope", "southeastasia", "eastasia", "brazilsouth"}

var rgSlashName = backends.Pattern(`^[^/\s]+/[^/\s]+$`)

const (
	typ      = "azure"
	provider = "Azure"
	// DefaultEndpoint is Azure Resource Manager's endpoint in Azure's public cloud.
	DefaultEndpoint = "https://management.azure.com"
	// DefaultAuthority is Microsoft Entra ID's authority host in Azure's public cloud.
	DefaultAuthority = "https://login.microsoftonline.com/"
)

// tagsField is `tags` with Azure's rules: names of 1 to 512 characters without < > % & \ ? /,
// values of at most 256.
func tagsField() schema.Field {
	f := backends.Tags("Azure tags as key: value, put on every resource dstack creates")
	common := f.Check
	f.Check = func(v any) string {
		if msg := common(v); msg != "" {
			return msg
		}
		m, _ := v.(map[string]any)
		for _, k := range sortedKeys(m) {
			val := fmt.Sprint(m[k])
			switch {
			case len(k) == 0 || len(k) > 512:
				return fmt.Sprintf("tag name %q must have 1 to 512 characters", k)
			case strings.ContainsAny(k, `<>%&\?/`):
				return fmt.Sprintf("tag name %q: Azure does not allow < > %% & \\ ? / in tag names", k)
			case len(val) > 256:
				return fmt.Sprintf("the value of tag %q has more than 256 characters", k)
			}
		}
		return ""
	}
	return f
}

func init() {
	backends.Register(&backends.Driver{
		Type:          typ,
		Title:         "Microsoft Azure",
		DefaultAPIURL: DefaultEndpoint,
		Fields: []schema.Field{
			backends.Str("tenant_id", true, "the Azure tenant id; find it with `az account show --query tenantId`"),
			backends.Str("subscription_id", true, "the Azure subscription id; find it with `az account show --query id`"),
			backends.Str("resource_group", false, "an existing resource group; default: dstack creates one"),
			{Name: "regions", Kind: schema.StringList, Enum: Locations, Help: "Azure locations"},
			{Name: "vpc_ids", Kind: schema.StringMap, Help: "a mapping of location to networkResourceGroup/networkName"},
			backends.Bool("public_ips", "give instances public IPs (default true; false needs vpc_ids)"),
			{Name: "vm_managed_identity", Kind: schema.String, Pattern: rgSlashName,
				Help: "a user-assigned managed identity as resourceGroup/identityName"},
			tagsField(),
			backends.Creds(
				schema.Variant{Name: "client", Fields: []schema.Field{
					backends.Secret("client_id", "the application (client) id"),
					backends.Secret("client_secret", "the client secret"),
					backends.Str("tenant_id", false, "defaults to the backend's tenant_id"),
				}},
				backends.DefaultCreds(),
			),
		},
		Rules: []schema.Rule{
			// Each bad entry is reported at its own key.
			func(obj map[string]any, _ *schema.Context) []schema.Issue {
				m, _ := obj["vpc_ids"].(map[string]any)
				var issues []schema.Issue
				for _, k := range sortedKeys(m) {
					if s, _ := m[k].(string); !rgSlashName.MatchString(s) {
						issues = append(issues, schema.At(fmt.Sprintf("%q is not valid; expected networkResourceGroup/networkName", s), "vpc_ids", k))
					}
				}
				return issues
			},
			func(obj map[string]any, _ *schema.Context) []schema.Issue {
				if obj["public_ips"] == false && obj["vpc_ids"] == nil {
					return []schema.Issue{schema.At("`vpc_ids` must be specified if `public_ips: false`", "public_ips")}
				}
				return nil
			},
			func(obj map[string]any, _ *schema.Context) []schema.Issue {
				ids, _ := obj["vpc_ids"].(map[string]any)
				regions, _ := obj["regions"].([]any)
				if ids == nil {
					return nil
				}
				if regions == nil {
					regions = make([]any, len(Locations))
					for i, l := range Locations {
						regions[i] = l
					}
				}
				var missing []string
				for _, r := range regions {
					if _, ok := ids[r.(string)]; !ok {
						missing = append(missing, r.(string))
					}
				}
				if len(missing) > 0 {
					return []schema.Issue{schema.At(fmt.Sprintf("`vpc_ids` not configured for regions %s; add them or limit `regions`", strings.Join(missing, ", ")), "vpc_ids")}
				}
				return nil
			},
		},
		Check:      check,
		NewCompute: newCompute,
		NewOffers:  newOffers,
	})
}

// regionsOf is the configured locations, or Locations.
func regionsOf(cfg backends.Config) []string {
	if r := cfg.Strings("regions"); len(r) > 0 {
		return r
	}
	return Locations
}

func sortedStrings(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// deref is *p, or def when p is nil.
func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
