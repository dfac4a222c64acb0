// Package gcp is the Google Cloud backend.
package gcp

import (
	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/schema"
)

func init() {
	backends.Register(&backends.Driver{
		Type:          "gcp",
		Title:         "Google Cloud",
		DefaultAPIURL: "https://compute.googleapis.com",
		Fields: []schema.Field{
			backends.Str("project_id", false, "the GCP project id (default: the project of the credentials); list them with `gcloud projects list`"),
			backends.Regions("GCP regions, e.g. [us-central1]"),
			backends.Str("vpc_name", false, "the VPC name (default `default`)"),
			{Name: "extra_vpcs", Kind: schema.StringList, Help: "extra VPC names for GPUDirect (A3) instances"},
			backends.Str("vpc_project_id", false, "the host project of a Shared VPC"),
			backends.Bool("public_ips", "give instances public IPs (default true; false needs Cloud NAT)"),
			backends.Bool("nat_check", "check for Cloud NAT when public_ips is false (default true)"),
			backends.Str("vm_service_account", false, "a service account email to attach to VMs"),
			backends.Tags("GCP labels as key: value"),
			backends.Creds(
				schema.Variant{Name: "service_account", FileRef: &schema.FileRef{From: "filename", To: "data"}, Fields: []schema.Field{
					backends.Str("filename", false, "the path of the service account's JSON key file"),
					{Name: "data", Kind: schema.String, Secret: true, Help: "the JSON key's contents"},
				}},
				backends.DefaultCreds(),
			),
		},
	})
}
