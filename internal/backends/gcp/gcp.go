// Package gcp is the Google Cloud backend, on Google's Go API clients (google.golang.org/api
// compute/v1, the Compute Engine API v1 REST reference at
// https://cloud.google.com/compute/docs/reference/rest/v1) and golang.org/x/oauth2/google:
//
//   - the credential check (check.go): the access token, regions.list of the project, then the
//     networks (network.go): networks.get of the VPC and extra_vpcs, and with public_ips false
//     (unless nat_check is false) routers.list of each region for the VPC's Cloud NAT;
//   - offers (offers.go): the catalog's zone rows folded into region offers, enriched with the
//     regions' GPU quotas (regions.get); TPU rows as single-host TPU slices;
//   - machines (compute.go): instances.insert in the offer's zones in turn, with the firewall
//     rule that lets SSH in and, for A3 types, a GPUDirect interface per extra VPC; instances.get; instances.delete; aggregatedList for the orphan
//     reconciler (backends.InstanceLister);
//   - TPU VMs (tpu.go): the Cloud TPU API v2 (google.golang.org/api/tpu/v2) for TPU offers:
//     nodes.create, get, delete and list;
//   - volumes (volumes.go): persistent disks (backends.VolumeCompute and VolumeAttacher).
//
// Credentials are `service_account` (the JSON key in `data`, which config.yml may give as a
// `filename`; the key's own token_uri is where it is exchanged for access tokens, by the JWT-bearer
// grant) or `default` (Application Default Credentials: GOOGLE_APPLICATION_CREDENTIALS, gcloud's
// application_default_credentials.json, or the metadata server), which
// DSTACK_DEFAULT_CREDS_DISABLED forbids. project_id defaults to the key's project.
//
// DSTACK_GCP_API_URL, when set, replaces https://compute.googleapis.com and
// https://tpu.googleapis.com: the Compute Engine client's endpoint is that URL + /compute/v1/, the
// Cloud TPU client's that URL + /.
package gcp

import (
	"fmt"
	"regexp"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/schema"
)

const typ = "gcp"

// DefaultRegions are dstack's GCP regions, used when `regions` is omitted (spec §2.2).
var DefaultRegions = []string{"northamerica-northeast1", "northamerica-northeast2", "us-central1", "us-east1", "us-east4",
	"us-east5", "us-south1", "us-west1", "us-west2", "us-west3", "us-west4", "southamerica-east1", "southamerica-west1",
	"europe-central2", "europe-north1", "europe-southwest1", "europe-west1", "europe-west2", "europe-west3", "europe-west4",
	"europe-west6", "europe-west8", "europe-west9", "asia-east1", "asia-east2", "asia-northeast1", "asia-northeast2",
	"asia-northeast3", "asia-south1", "asia-south2", "asia-southeast1", "asia-southeast2", "me-west1",
	"australia-southeast1", "australia-southeast2"}

var projectID = regexp.MustCompile(`^[a-z][a-z0-9-]{4,28}[a-z0-9]$|^[a-z0-9.-]+:[a-z][a-z0-9-]{4,28}[a-z0-9]$`)

func init() {
	backends.Register(&backends.Driver{
		Type:          typ,
		Title:         "Google Cloud",
		DefaultAPIURL: "https://compute.googleapis.com",
		Fields: []schema.Field{
			{Name: "project_id", Kind: schema.String, Pattern: projectID,
				Help: "the GCP project id (default: the project of the credentials); list them with `gcloud projects list`"},
			backends.Regions("GCP regions, e.g. [us-central1]; default: dstack's 35 regions"),
			backends.Str("vpc_name", false, "the VPC name (default `default`)"),
			{Name: "extra_vpcs", Kind: schema.StringList, Help: "extra VPC names for GPUDirect: a3-highgpu-8g/a3-edgegpu-8g instances get an interface in each of the first 4, a3-megagpu-8g the first 8; each needs a subnet in the regions used"},
			backends.Str("vpc_project_id", false, "the host project of a Shared VPC"),
			backends.Bool("public_ips", "give instances public IPs (default true; false needs Cloud NAT)"),
			backends.Bool("nat_check", "check that the VPC has a Cloud NAT in every region when public_ips is false (default true); false skips it"),
			backends.Str("vm_service_account", false, "a service account email to attach to VMs"),
			labelsField(),
			backends.Creds(
				schema.Variant{Name: "service_account", FileRef: &schema.FileRef{From: "filename", To: "data"}, Fields: []schema.Field{
					backends.Str("filename", false, "the path of the service account's JSON key file"),
					{Name: "data", Kind: schema.String, Secret: true, Help: "the JSON key's contents"},
				}},
				backends.DefaultCreds(),
			),
		},
		Check:      check,
		NewCompute: newCompute,
		NewOffers:  newOffers,
	})
}

// labelsField is `tags`, which become GCP labels: at most 64 with dstack's own, keys and values
// of at most 63 characters. Other characters are sanitised when the labels are applied (see
// sanitizeLabels), as GCP allows only lowercase letters, digits, _ and -.
func labelsField() schema.Field {
	f := backends.Tags("GCP labels as key: value, put on every instance and disk dstack creates (lowercased; characters GCP does not allow become _)")
	common := f.Check
	f.Check = func(v any) string {
		if msg := common(v); msg != "" {
			return msg
		}
		m, _ := v.(map[string]any)
		for k, x := range m {
			if k == "" || len([]rune(k)) > 63 {
				return fmt.Sprintf("label key %q must have 1 to 63 characters", k)
			}
			if len([]rune(fmt.Sprint(x))) > 63 {
				return fmt.Sprintf("the value of label %q has more than 63 characters", k)
			}
		}
		return ""
	}
	return f
}
