// Package azure is the Microsoft Azure backend.
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

func init() {
	backends.Register(&backends.Driver{
		Type:          "azure",
		Title:         "Microsoft Azure",
		DefaultAPIURL: "https://management.azure.com",
		Fields: []schema.Field{
			backends.Str("tenant_id", true, "the Azure tenant id; find it with `az account show --query tenantId`"),
			backends.Str("subscription_id", true, "the Azure subscription id; find it with `az account show --query id`"),
			backends.Str("resource_group", false, "an existing resource group; default: dstack creates one"),
			{Name: "regions", Kind: schema.StringList, Enum: Locations, Help: "Azure locations"},
			{Name: "vpc_ids", Kind: schema.StringMap, Help: "a mapping of location to networkResourceGroup/networkName"},
			backends.Bool("public_ips", "give instances public IPs (default true; false needs vpc_ids)"),
			{Name: "vm_managed_identity", Kind: schema.String, Pattern: rgSlashName,
				Help: "a user-assigned managed identity as resourceGroup/identityName"},
			backends.Tags("Azure tags as key: value"),
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
	})
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
