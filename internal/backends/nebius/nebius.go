// Package nebius is the Nebius AI Cloud backend.
//
// Nebius's API is gRPC; this build has no Nebius SDK and speaks it through the minimal protocol
// definition in ./proto (see its package doc for what is copied from github.com/nebius/api and what
// is unsure). The credential check signs a JWT (RS256, kid = public_key_id, iss = sub =
// service_account_id) with the service account's private key, exchanges it for an access token
// (nebius.iam.v1.TokenExchangeService/Exchange), lists the tenants the account sees (exactly one
// is expected) and the tenant's projects (nebius.iam.v1.ProjectService/List), and builds the
// region → project map as the original does: configured `projects` must exist and be at most one
// per region; without them each region's project is its only project, or the one whose name
// starts with "default-project"; configured `regions` must have a project.
//
// Endpoints: each service listens at <service-name>.<domain>, the domain api.eu.nebius.cloud:443
// (tokens.iam.api.eu.nebius.cloud:443 for the token exchange, cpl.iam.api.eu.nebius.cloud:443 for
// tenants and projects), over TLS. DSTACK_NEBIUS_API_URL sends every service to one address
// instead: host:port (TLS), https://host:port (TLS) or http://host:port (plaintext gRPC, for
// proxies and fakes); an address on 127.0.0.1, ::1 or localhost is always plaintext.
//
// Compute: NewCompute (see compute.go), tested against the gRPC fake (fake.StartNebius), which the
// shared conformance suite does not drive (it runs HTTP fakes only; see fake.HasGRPC). Placement
// groups of cluster fleets are GPU clusters on the InfiniBand fabrics of the Fabrics table, narrowed
// by the config's `fabrics` (see cluster.go).
package nebius

import (
	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/schema"
)

// DefaultDomain is Nebius's API domain; services are its subdomains.
const DefaultDomain = "api.eu.nebius.cloud:443"

// Fabrics are the InfiniBand fabrics known to dstack (https://docs.nebius.com/compute/clusters/gpu#fabrics),
// as fabric → platform and region.
var Fabrics = map[string][2]string{
	"fabric-2":      {"gpu-h100-sxm", "eu-north1"},
	"fabric-3":      {"gpu-h100-sxm", "eu-north1"},
	"fabric-4":      {"gpu-h100-sxm", "eu-north1"},
	"fabric-5":      {"gpu-h200-sxm", "eu-west1"},
	"fabric-6":      {"gpu-h100-sxm", "eu-north1"},
	"fabric-7":      {"gpu-h200-sxm", "eu-north1"},
	"us-central1-a": {"gpu-h200-sxm", "us-central1"},
	"us-central1-b": {"gpu-b200-sxm", "us-central1"},
}

func init() {
	backends.Register(&backends.Driver{
		Type:          "nebius",
		Title:         "Nebius AI Cloud",
		DefaultAPIURL: DefaultDomain,
		Check:         Check,
		NewCompute:    NewCompute,
		Fields: []schema.Field{
			{Name: "projects", Kind: schema.StringList, Help: "Nebius project ids, at most one per region"},
			backends.Regions("Nebius regions, e.g. [eu-north1]; default: all regions of the tenancy"),
			{Name: "fabrics", Kind: schema.StringList, Help: "InfiniBand fabrics for clusters; default: all"},
			backends.Creds(schema.Variant{Name: "service_account",
				FileRef: &schema.FileRef{From: "private_key_file", To: "private_key_content"},
				Fields: []schema.Field{
					backends.Str("service_account_id", true, "e.g. serviceaccount-e00dhnv9ftgb3cqmej"),
					backends.Str("public_key_id", true, "e.g. publickey-e00ngaex668htswqy4"),
					backends.Str("private_key_file", false, "the path of the authorized key's PEM file"),
					{Name: "private_key_content", Kind: schema.String, Secret: true, Help: "the PEM contents of the private key"},
				}}),
		},
	})
}
