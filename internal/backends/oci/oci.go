// Package oci is the Oracle Cloud Infrastructure backend, on the OCI Go SDK (v65: Identity and
// Core Services API version 20160918, the "Identity and Access Management Service API" and "Core
// Services API" references):
//
//   - credentials: `client` (user, tenancy, fingerprint, region and key_file or key_content, with
//     pass_phrase) signs with those values; `default` reads a profile of an OCI config file
//     (default ~/.oci/config, profile DEFAULT), which DSTACK_DEFAULT_CREDS_DISABLED forbids;
//   - the credential check (check.go): identity ListRegionSubscriptions of the tenancy in the home
//     region, then the configured regions and compartment_id against it;
//   - offers (offers.go): the catalog in the subscribed regions dstack supports, enriched with the
//     shapes each availability domain offers (core ListShapes), cached;
//   - machines (compute.go, network.go): the compartment (compartment_id, or `dstack` created
//     under the tenancy), a VCN with an internet gateway, route table, security list and public
//     subnet per region and project, LaunchInstance with an Ubuntu image and cloud-init that starts
//     dstack-shim, GetInstance and the VNIC for the address, TerminateInstance, and ListInstances
//     for the orphan reconciler.
//
// DSTACK_OCI_API_URL, when set, is where every service of every region is reached; requests keep
// the regional service host (iaas.<region>.oraclecloud.com, identity.<region>.oci.oraclecloud.com)
// as their Host header, which the request signature covers (see dispatcher in client.go).
package oci

import (
	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/schema"
)

// Regions are the OCI regions dstack supports.
var Regions = []string{"eu-frankfurt-1", "eu-milan-1", "me-dubai-1", "uk-london-1", "us-ashburn-1",
	"us-chicago-1", "us-phoenix-1"}

const typ = "oci"

func init() {
	backends.Register(&backends.Driver{
		Type:  typ,
		Title: "Oracle Cloud Infrastructure",
		Fields: []schema.Field{
			{Name: "regions", Kind: schema.StringList, Enum: Regions, Help: "OCI regions; default: subscribed regions dstack supports"},
			backends.Str("compartment_id", false, "an existing compartment OCID; default: dstack creates one"),
			backends.Creds(
				schema.Variant{Name: "client", Fields: []schema.Field{
					backends.Str("user", true, "the user OCID"),
					backends.Str("tenancy", true, "the tenancy OCID"),
					backends.Str("key_file", false, "the path of the API signing key (read by the server when used)"),
					{Name: "key_content", Kind: schema.String, Secret: true, Help: "the PEM contents of the API signing key"},
					{Name: "pass_phrase", Kind: schema.String, Secret: true, Help: "the key's pass phrase"},
					backends.Str("fingerprint", true, "the API key fingerprint, e.g. 77:32:77:..."),
					backends.Str("region", true, "the home region, e.g. eu-frankfurt-1"),
				}, Rules: []schema.Rule{exactlyOneKey}},
				backends.DefaultCreds(
					backends.Str("file", false, "the OCI config file (default ~/.oci/config)"),
					backends.Str("profile", false, "the profile in that file (default DEFAULT)"),
				),
			),
		},
		Check:      check,
		NewCompute: newCompute,
		NewOffers:  newOffers,
	})
}

func exactlyOneKey(obj map[string]any, _ *schema.Context) []schema.Issue {
	_, file := obj["key_file"]
	_, content := obj["key_content"]
	switch {
	case file && content:
		return []schema.Issue{schema.At("only one of `key_file` and `key_content` can be specified", "key_content")}
	case !file && !content:
		return []schema.Issue{schema.At("one of `key_file` (a path) or `key_content` (the PEM text) must be specified", "key_file")}
	}
	return nil
}
