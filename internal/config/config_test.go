package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	_ "github.com/dstackgo/dstack/internal/backends/all"
	"github.com/dstackgo/dstack/internal/config"
	"github.com/dstackgo/dstack/internal/schema"
)

// want is one expected issue: its position, its field path as rendered by schema.PathString, and a part
// of its message. A missing key is placed at the key of the mapping that lacks it (or, for a list item,
// at the item's first key).
type want struct {
	line, col int
	path      string
	msg       string
}

func (w want) String() string {
	return fmt.Sprintf("%d:%d: %s: …%s…", w.line, w.col, w.path, w.msg)
}

// testEnv resolves ${SET} and ${EMPTY} only; every other variable is unset.
func testEnv(name string) (string, bool) {
	switch name {
	case "SET":
		return "from-env", true
	case "EMPTY":
		return "", true
	}
	return "", false
}

func opts(getenv map[string]string) config.Options {
	return config.Options{Env: testEnv, Getenv: func(k string) string { return getenv[k] }}
}

// manyTags is an AWS backend with 26 tags, one over the limit.
var manyTags = func() string {
	var b strings.Builder
	b.WriteString("projects:\n- name: main\n  backends:\n  - type: aws\n    creds: {type: default}\n    tags:\n")
	for i := 0; i < 26; i++ {
		fmt.Fprintf(&b, "      t%02d: v\n", i)
	}
	return b.String()
}()

var noDefaultCreds = map[string]string{"DSTACK_DEFAULT_CREDS_DISABLED": "1"}

var invalidCases = []struct {
	name   string
	yaml   string
	getenv map[string]string
	want   []want
}{
	// The shape of the file.
	{name: "unknown top-level key", yaml: `projects: []
foo: 1
`, want: []want{{2, 1, "foo", `unknown key "foo"; expected one of: projects, encryption, default_permissions, plugins`}}},
	{name: "unknown key in project", yaml: `projects:
- name: main
  colour: red
`, want: []want{{3, 3, "projects[0].colour", `unknown key "colour"; expected one of: name, backends`}}},
	{name: "backend key at the project level", yaml: `projects:
- name: main
  backends: []
  creds: {type: default}
`, want: []want{{4, 3, "projects[0].creds", "indent it under the backend's entry in `backends`"}}},
	{name: "unknown key in backend", yaml: `projects:
- name: main
  backends:
  - type: lambda
    creds: {type: api_key, api_key: k}
    zone: x
`, want: []want{{6, 5, "projects[0].backends[0].zone", `unknown key "zone"; expected one of: type, regions, creds`}}},
	{name: "unknown key in creds", yaml: `projects:
- name: main
  backends:
  - type: lambda
    creds:
      type: api_key
      api_key: k
      token: t
`, want: []want{{8, 7, "projects[0].backends[0].creds.token", `unknown key "token"; expected one of: type, api_key`}}},
	{name: "string for bool", yaml: `projects:
- name: main
  backends:
  - type: aws
    creds: {type: default}
    public_ips: "false"
`, want: []want{{6, 5, "projects[0].backends[0].public_ips", `expected true or false (give instances public IPs (default true)), got the string "false"`}}},
	{name: "list for string", yaml: `projects:
- name: main
  backends:
  - type: aws
    creds: {type: default}
    vpc_name: [a, b]
`, want: []want{{6, 5, "projects[0].backends[0].vpc_name", "expected a string (the Name tag of a VPC that exists in every configured region), got a list"}}},
	{name: "mapping for list", yaml: `projects:
- name: main
  backends:
  - type: aws
    creds: {type: default}
    regions:
      us-east-1: true
`, want: []want{{6, 5, "projects[0].backends[0].regions", "expected a list of strings, e.g. [a, b] (AWS regions"}}},
	{name: "number for string", yaml: `projects:
- name: main
  backends:
  - type: aws
    creds: {type: default}
    iam_instance_profile: 42
`, want: []want{{6, 5, "projects[0].backends[0].iam_instance_profile", "expected a string (an IAM instance profile name), got the number 42"}}},
	{name: "list element of the wrong type", yaml: `projects:
- name: main
  backends:
  - type: aws
    creds: {type: default}
    regions: [us-east-1, {a: b}, 7]
`, want: []want{
		{6, 26, "projects[0].backends[0].regions[1]", "expected a string (AWS regions, e.g. [us-east-1]; default: the 11 regions with dstack images), got a mapping"},
		{6, 34, "projects[0].backends[0].regions[2]", "got the number 7"},
	}},
	{name: "missing projects", yaml: `plugins: []
`, want: []want{{1, 1, "projects", "required field (a list of projects, each with `name` and `backends`) is missing"}}},
	{name: "projects is a string", yaml: `projects: main
`, want: []want{{1, 1, "projects", `expected a list (a list of projects, each with ` + "`name` and `backends`" + `), got the string "main"`}}},
	{name: "backends is a mapping", yaml: `projects:
- name: main
  backends:
    type: aws
`, want: []want{{3, 3, "projects[0].backends", "expected a list (a list of backends, each with `type`), got a mapping"}}},
	{name: "missing project name", yaml: `projects:
- backends: []
`, want: []want{{2, 3, "projects[0].name", "required field (a project name of letters, digits, - and _ (at most 50)) is missing"}}},
	{name: "invalid project name", yaml: `projects:
- name: my project
- name: ` + strings.Repeat("x", 51) + `
`, want: []want{
		{2, 3, "projects[0].name", `"my project" is not valid; expected a project name of letters, digits, - and _ (at most 50)`},
		{3, 3, "projects[1].name", "is not valid"},
	}},
	{name: "duplicate project, case-insensitive", yaml: `projects:
- name: Main
- name: other
- name: main
`, want: []want{{4, 3, "projects[2].name", `project "main" is already listed at projects[0]; names are case-insensitive`}}},
	{name: "duplicate backend type", yaml: `projects:
- name: main
  backends:
  - type: lambda
    creds: {type: api_key, api_key: a}
  - type: vultr
    creds: {type: api_key, api_key: b}
  - type: lambda
    creds: {type: api_key, api_key: c}
`, want: []want{{8, 5, "projects[0].backends[2].type", "a project can have one backend of each type; `lambda` is already configured at backends[0]"}}},
	{name: "unknown backend type", yaml: `projects:
- name: main
  backends:
  - type: digitalocean
    creds: {type: api_key, api_key: k}
`, want: []want{{4, 5, "projects[0].backends[0].type", `unknown type "digitalocean"; expected one of: aws, azure, cudo, datacrunch, gcp, kubernetes, lambda, nebius, oci, runpod, tensordock, vastai, vultr`}}},
	{name: "missing backend type", yaml: `projects:
- name: main
  backends:
  - creds: {type: api_key, api_key: k}
`, want: []want{{4, 5, "projects[0].backends[0].type", "required field is missing; expected one of: aws, azure"}}},
	{name: "backend type not a string", yaml: `projects:
- name: main
  backends:
  - type: [aws]
`, want: []want{{4, 5, "projects[0].backends[0].type", "expected one of: aws, azure, cudo, datacrunch, gcp, kubernetes, lambda, nebius, oci, runpod, tensordock, vastai, vultr; got a list"}}},
	{name: "missing creds", yaml: `projects:
- name: main
  backends:
  - type: lambda
    regions: [us-east-1]
`, want: []want{{4, 5, "projects[0].backends[0].creds", "required field (the credentials: `type` and its keys) is missing"}}},
	{name: "unknown creds type", yaml: `projects:
- name: main
  backends:
  - type: lambda
    creds:
      type: token
      api_key: k
`, want: []want{{6, 7, "projects[0].backends[0].creds.type", `unknown type "token"; expected one of: api_key`}}},

	// Required credentials of each backend.
	{name: "lambda without api_key", yaml: `projects:
- name: main
  backends:
  - type: lambda
    creds:
      type: api_key
`, want: []want{{5, 5, "projects[0].backends[0].creds.api_key", "required field (a Lambda Cloud API key) is missing"}}},
	{name: "runpod without api_key", yaml: `projects:
- name: main
  backends:
  - type: runpod
    creds: {type: api_key}
`, want: []want{{5, 5, "projects[0].backends[0].creds.api_key", "required field (a RunPod API key with read & write access) is missing"}}},
	{name: "vultr without api_key", yaml: `projects:
- name: main
  backends:
  - type: vultr
    creds:
      type: api_key
      api_key:
`, want: []want{{7, 7, "projects[0].backends[0].creds.api_key", "required field (a Vultr personal access token) is missing"}}},
	{name: "vastai without api_key", yaml: `projects:
- name: main
  backends:
  - type: vastai
    creds:
      type: api_key
`, want: []want{{5, 5, "projects[0].backends[0].creds.api_key", "required field (a Vast.ai API key) is missing"}}},
	{name: "cudo without api_key or project_id", yaml: `projects:
- name: main
  backends:
  - type: cudo
    creds:
      type: api_key
`, want: []want{
		{4, 5, "projects[0].backends[0].project_id", "required field (the CUDO project id) is missing"},
		{5, 5, "projects[0].backends[0].creds.api_key", "required field (a CUDO API key) is missing"},
	}},
	{name: "tensordock without api_token", yaml: `projects:
- name: main
  backends:
  - type: tensordock
    creds:
      type: api_key
      api_key: k
`, want: []want{{5, 5, "projects[0].backends[0].creds.api_token", "required field (the authorization token) is missing"}}},
	{name: "datacrunch without client_secret", yaml: `projects:
- name: main
  backends:
  - type: datacrunch
    creds:
      type: api_key
      client_id: id
`, want: []want{{5, 5, "projects[0].backends[0].creds.client_secret", "required field (the REST API client secret) is missing"}}},

	// AWS.
	{name: "aws vpc_name and vpc_ids", yaml: `projects:
- name: main
  backends:
  - type: aws
    creds: {type: default}
    vpc_name: my-vpc
    vpc_ids:
      us-east-1: vpc-0a2b3c
`, want: []want{{7, 5, "projects[0].backends[0].vpc_ids", "only one of `vpc_name` and `vpc_ids` can be specified"}}},
	{name: "aws default_vpcs false alone", yaml: `projects:
- name: main
  backends:
  - type: aws
    creds: {type: default}
    default_vpcs: false
`, want: []want{{6, 5, "projects[0].backends[0].default_vpcs", "`vpc_name` or `vpc_ids` must be specified if `default_vpcs: false`"}}},
	{name: "aws os_images owners", yaml: `projects:
- name: main
  backends:
  - type: aws
    creds: {type: default}
    os_images:
      cpu:
        name: a
        owner: 12345
        user: ubuntu
      nvidia:
        name: b
        owner: someone
        user: ubuntu
`, want: []want{
		{9, 9, "projects[0].backends[0].os_images.cpu.owner", `"12345" is not valid; expected a 12-digit AWS account id or ` + "`self`"},
		{13, 9, "projects[0].backends[0].os_images.nvidia.owner", `"someone" is not valid`},
	}},
	{name: "aws os_images without user", yaml: `projects:
- name: main
  backends:
  - type: aws
    creds: {type: default}
    os_images:
      nvidia:
        name: 'Some ThirdParty CUDA image'
        owner: self
`, want: []want{{7, 7, "projects[0].backends[0].os_images.nvidia.user", "required field (the SSH user with passwordless sudo) is missing"}}},
	{name: "aws 26 tags", yaml: manyTags,
		want: []want{{6, 5, "projects[0].backends[0].tags", "at most 25 tags are allowed, got 26"}}},
	{name: "aws access key without secret", yaml: `projects:
- name: main
  backends:
  - type: aws
    creds:
      type: access_key
      access_key: KKAAUKLIZ5EHKICAOASV
`, want: []want{{5, 5, "projects[0].backends[0].creds.secret_key", "required field (the AWS secret access key) is missing"}}},

	// Azure.
	{name: "azure without tenant_id", yaml: `projects:
- name: main
  backends:
  - type: azure
    subscription_id: 06c82ce3-28ff-4285-a146-c5e981a9d808
    creds: {type: default}
`, want: []want{{4, 5, "projects[0].backends[0].tenant_id", "required field (the Azure tenant id; find it with `az account show --query tenantId`) is missing"}}},
	{name: "azure unknown region", yaml: `projects:
- name: main
  backends:
  - type: azure
    tenant_id: t
    subscription_id: s
    creds: {type: default}
    regions: [westeurope, mars-north1]
`, want: []want{{8, 27, "projects[0].backends[0].regions[1]", `unknown value "mars-north1"; expected one of: centralus, eastus`}}},
	{name: "azure public_ips false without vpc_ids", yaml: `projects:
- name: main
  backends:
  - type: azure
    tenant_id: t
    subscription_id: s
    creds: {type: default}
    public_ips: false
`, want: []want{{8, 5, "projects[0].backends[0].public_ips", "`vpc_ids` must be specified if `public_ips: false`"}}},
	{name: "azure vpc_ids not covering regions", yaml: `projects:
- name: main
  backends:
  - type: azure
    tenant_id: t
    subscription_id: s
    creds: {type: default}
    regions: [westeurope, eastus, uksouth]
    vpc_ids:
      westeurope: rg/net
`, want: []want{{9, 5, "projects[0].backends[0].vpc_ids", "`vpc_ids` not configured for regions eastus, uksouth; add them or limit `regions`"}}},
	{name: "azure vpc_ids values", yaml: `projects:
- name: main
  backends:
  - type: azure
    tenant_id: t
    subscription_id: s
    creds: {type: default}
    regions: [westeurope, eastus]
    vpc_ids:
      westeurope: myNetworkName
      eastus: rg/net/extra
`, want: []want{
		{10, 7, "projects[0].backends[0].vpc_ids.westeurope", `"myNetworkName" is not valid; expected networkResourceGroup/networkName`},
		{11, 7, "projects[0].backends[0].vpc_ids.eastus", `"rg/net/extra" is not valid`},
	}},
	{name: "azure vm_managed_identity", yaml: `projects:
- name: main
  backends:
  - type: azure
    tenant_id: t
    subscription_id: s
    creds: {type: default}
    vm_managed_identity: my-identity
`, want: []want{{8, 5, "projects[0].backends[0].vm_managed_identity", `"my-identity" is not valid; expected a user-assigned managed identity as resourceGroup/identityName`}}},
	{name: "azure client creds without secret", yaml: `projects:
- name: main
  backends:
  - type: azure
    tenant_id: t
    subscription_id: s
    creds:
      type: client
      client_id: c
`, want: []want{{7, 5, "projects[0].backends[0].creds.client_secret", "required field (the client secret) is missing"}}},

	// GCP.
	{name: "gcp service_account without filename or data", yaml: `projects:
- name: main
  backends:
  - type: gcp
    project_id: my-project
    creds:
      type: service_account
`, want: []want{{6, 5, "projects[0].backends[0].creds", "either `filename` or `data` must be specified"}}},
	{name: "gcp service account file missing", yaml: `projects:
- name: main
  backends:
  - type: gcp
    project_id: my-project
    creds:
      type: service_account
      filename: ~/missing/sa.json
`, want: []want{{8, 7, "projects[0].backends[0].creds.filename", "cannot read ~/missing/sa.json: no such file or directory; fix the path or give the contents in `data`"}}},

	// Kubernetes.
	{name: "kubeconfig file missing", yaml: `projects:
- name: main
  backends:
  - type: kubernetes
    kubeconfig:
      filename: ~/missing/kubeconfig
`, want: []want{{6, 7, "projects[0].backends[0].kubeconfig.filename", "cannot read ~/missing/kubeconfig: no such file or directory"}}},
	{name: "kubeconfig missing", yaml: `projects:
- name: main
  backends:
  - type: kubernetes
    networking: {ssh_port: 32000}
`, want: []want{{4, 5, "projects[0].backends[0].kubeconfig", "required field (the cluster's kubeconfig: `filename` (read at load time) or `data`) is missing"}}},
	{name: "kubernetes ssh_port out of range", yaml: `projects:
- name: main
  backends:
  - type: kubernetes
    kubeconfig: {data: "apiVersion: v1"}
    networking:
      ssh_host: localhost
      ssh_port: 70000
`, want: []want{{8, 7, "projects[0].backends[0].networking.ssh_port", "expected a port number between 1 and 65535"}}},
	{name: "kubernetes ssh_port not a number", yaml: `projects:
- name: main
  backends:
  - type: kubernetes
    kubeconfig: {data: "apiVersion: v1"}
    networking:
      ssh_port: 32000.5
  - type: lambda
    creds: {type: api_key, api_key: k}
- name: other
  backends:
  - type: kubernetes
    kubeconfig: {data: "apiVersion: v1"}
    networking: {ssh_port: high}
`, want: []want{
		{7, 7, "projects[0].backends[0].networking.ssh_port", "expected a whole number (a NodePort reachable from outside the cluster), got the number 32000.5"},
		{14, 18, "projects[1].backends[0].networking.ssh_port", `got the string "high"`},
	}},

	// Nebius.
	{name: "nebius without private key", yaml: `projects:
- name: main
  backends:
  - type: nebius
    creds:
      type: service_account
      service_account_id: serviceaccount-e00dhnv9ftgb3cqmej
      public_key_id: publickey-e00ngaex668htswqy4
`, want: []want{{5, 5, "projects[0].backends[0].creds", "either `private_key_file` or `private_key_content` must be specified"}}},
	{name: "nebius private key file missing", yaml: `projects:
- name: main
  backends:
  - type: nebius
    creds:
      type: service_account
      service_account_id: serviceaccount-e00dhnv9ftgb3cqmej
      public_key_id: publickey-e00ngaex668htswqy4
      private_key_file: ~/missing/key.pem
`, want: []want{{9, 7, "projects[0].backends[0].creds.private_key_file", "cannot read ~/missing/key.pem: no such file or directory; fix the path or give the contents in `private_key_content`"}}},

	// OCI.
	{name: "oci key_file and key_content", yaml: `projects:
- name: main
  backends:
  - type: oci
    creds:
      type: client
      user: ocid1.user.oc1..a
      tenancy: ocid1.tenancy.oc1..b
      region: eu-frankfurt-1
      fingerprint: 77:32:77:00
      key_file: ~/.oci/private_key.pem
      key_content: PEM
`, want: []want{{12, 7, "projects[0].backends[0].creds.key_content", "only one of `key_file` and `key_content` can be specified"}}},
	{name: "oci neither key_file nor key_content", yaml: `projects:
- name: main
  backends:
  - type: oci
    creds:
      type: client
      user: ocid1.user.oc1..a
      tenancy: ocid1.tenancy.oc1..b
      region: eu-frankfurt-1
      fingerprint: 77:32:77:00
`, want: []want{{5, 5, "projects[0].backends[0].creds.key_file", "one of `key_file` (a path) or `key_content` (the PEM text) must be specified"}}},
	{name: "oci unknown region and missing fingerprint", yaml: `projects:
- name: main
  backends:
  - type: oci
    regions:
    - eu-frankfurt-1
    - eu-paris-1
    creds:
      type: client
      user: ocid1.user.oc1..a
      tenancy: ocid1.tenancy.oc1..b
      region: eu-frankfurt-1
      key_content: PEM
`, want: []want{
		{7, 7, "projects[0].backends[0].regions[1]", `unknown value "eu-paris-1"; expected one of: eu-frankfurt-1, eu-milan-1, me-dubai-1, uk-london-1, us-ashburn-1, us-chicago-1, us-phoenix-1`},
		{8, 5, "projects[0].backends[0].creds.fingerprint", "required field (the API key fingerprint, e.g. 77:32:77:...) is missing"},
	}},

	// RunPod.
	{name: "runpod community_cloud as a string", yaml: `projects:
- name: main
  backends:
  - type: runpod
    creds: {type: api_key, api_key: k}
    community_cloud: "no"
`, want: []want{{6, 5, "projects[0].backends[0].community_cloud", `expected true or false (also use Community Cloud offers (default true)), got the string "no"`}}},

	// encryption.
	{name: "encryption secret not base64", yaml: `projects: []
encryption:
  keys:
  - type: aes
    name: key1
    secret: not*base64
`, want: []want{{6, 5, "encryption.keys[0].secret", "the secret is not valid base64; expected base64 of 32 random bytes"}}},
	{name: "encryption secret of 16 bytes", yaml: `projects: []
encryption:
  keys:
  - type: aes
    name: key1
    secret: AAAAAAAAAAAAAAAAAAAAAA==
`, want: []want{{6, 5, "encryption.keys[0].secret", "the secret decodes to 16 bytes; AES-256 needs exactly 32"}}},
	{name: "encryption key name", yaml: `projects: []
encryption:
  keys:
  - type: aes
    name: my-key
    secret: cR2r1JmkPyL6edBQeHKz6ZBjCfS2oWk87Gc2G3wHVoA=
`, want: []want{{5, 5, "encryption.keys[0].name", `"my-key" is not valid; expected a key name of letters and digits`}}},
	{name: "encryption key type", yaml: `projects: []
encryption:
  keys:
  - type: identity
  - type: rsa
    name: k
`, want: []want{{5, 5, "encryption.keys[1].type", `unknown type "rsa"; expected one of: aes, identity`}}},
	{name: "encryption keys not a list", yaml: `projects: []
encryption:
  keys: {type: identity}
`, want: []want{{3, 3, "encryption.keys", "expected a list (a list of keys; the first encrypts, all decrypt), got a mapping"}}},

	// default_permissions.
	{name: "default_permissions unknown key and non-bool", yaml: `projects: []
default_permissions:
  allow_non_admins_create_projects: "yes please"
  allow_admins_everything: true
`, want: []want{
		{3, 3, "default_permissions.allow_non_admins_create_projects", `expected true or false (let users who are not global admins create projects (default true)), got the string "yes please"`},
		{4, 3, "default_permissions.allow_admins_everything", `unknown key "allow_admins_everything"; expected one of: allow_non_admins_create_projects, allow_non_admins_manage_ssh_fleets`},
	}},
	{name: "plugins not a list", yaml: `projects: []
plugins: my-plugin
`, want: []want{{2, 1, "plugins", `expected a list of strings, e.g. [a, b] (plugin names (accepted; plugins are not supported by this server)), got the string "my-plugin"`}}},

	// ${VAR} interpolation.
	{name: "unset variable", yaml: `projects:
- name: main
  backends:
  - type: lambda
    creds:
      type: api_key
      api_key: ${LAMBDA_API_KEY}
`, want: []want{{7, 7, "projects[0].backends[0].creds.api_key", "environment variable LAMBDA_API_KEY is not set (referenced as ${LAMBDA_API_KEY}); set it, or write $${LAMBDA_API_KEY} for a literal"}}},
	{name: "two unset variables in one value", yaml: `projects:
- name: main
  backends:
  - type: aws
    creds:
      type: access_key
      access_key: ${SET}
      secret_key: ${A_SECRET}${B_SECRET}
`, want: []want{
		{8, 7, "projects[0].backends[0].creds.secret_key", "environment variable A_SECRET is not set"},
		{8, 7, "projects[0].backends[0].creds.secret_key", "environment variable B_SECRET is not set"},
	}},

	// DSTACK_DEFAULT_CREDS_DISABLED.
	{name: "default creds disabled: aws", getenv: noDefaultCreds, yaml: `projects:
- name: main
  backends:
  - type: aws
    creds:
      type: default
`, want: []want{{6, 7, "projects[0].backends[0].creds.type", "default credentials are disabled on this server (DSTACK_DEFAULT_CREDS_DISABLED is set); give explicit credentials"}}},
	{name: "default creds disabled: azure", getenv: noDefaultCreds, yaml: `projects:
- name: main
  backends:
  - type: azure
    tenant_id: t
    subscription_id: s
    creds: {type: default}
`, want: []want{{7, 13, "projects[0].backends[0].creds.type", "default credentials are disabled on this server"}}},
	{name: "default creds disabled: gcp", getenv: noDefaultCreds, yaml: `projects:
- name: main
  backends:
  - type: gcp
    project_id: my-project
    creds:
      type: default
`, want: []want{{7, 7, "projects[0].backends[0].creds.type", "default credentials are disabled on this server"}}},
	{name: "default creds disabled: oci", getenv: noDefaultCreds, yaml: `projects:
- name: main
  backends:
  - type: oci
    creds:
      type: default
      profile: DEFAULT
`, want: []want{{6, 7, "projects[0].backends[0].creds.type", "default credentials are disabled on this server"}}},

	// YAML itself.
	{name: "YAML syntax error", yaml: `projects:
- name: main
  backends:
  - type: lambda
    creds: {type: api_key, api_key: k
`, want: []want{{5, 12, "", "invalid YAML: could not find flow mapping end token '}'"}}},
	{name: "YAML duplicate key", yaml: `projects:
- name: main
  name: other
`, want: []want{{3, 3, "", `invalid YAML: mapping key "name" already defined at [2:3]`}}},
	{name: "two YAML documents", yaml: `projects: []
---
projects:
- name: main
`, want: []want{{2, 1, "", "invalid YAML: expected a single document, but a `---` line starts another one"}}},
	{name: "empty file", yaml: "", want: []want{{0, 0, "", "expected a mapping (a mapping with `projects`), got nothing (null)"}}},
	{name: "only comments", yaml: "# nothing here\n", want: []want{{0, 0, "", "got nothing (null)"}}},
	{name: "a list document", yaml: `- name: main
  backends: []
`, want: []want{{1, 1, "", "expected a mapping (a mapping with `projects`), got a list"}}},

	// Everything at once: each problem is reported, in the order of the file.
	{name: "many errors at once", getenv: noDefaultCreds, yaml: `projects:
- name: main
  backends:
  - type: aws
    creds: {type: default}
    vpc_name: a
    vpc_ids: {us-east-1: vpc-1}
  - type: lambda
    creds: {type: api_key}
  - type: warp-drive
- name: MAIN
  regions: [us-east-1]
  backends:
  - type: kubernetes
    kubeconfig: {}
    networking: {ssh_port: 0}
encryption:
  keys:
  - {type: aes, name: k, secret: c2hvcnQ=}
default_permissions:
  allow_non_admins_manage_ssh_fleets: 1
surprise: true
`, want: []want{
		{5, 13, "projects[0].backends[0].creds.type", "default credentials are disabled"},
		{7, 5, "projects[0].backends[0].vpc_ids", "only one of `vpc_name` and `vpc_ids`"},
		{9, 5, "projects[0].backends[1].creds.api_key", "required field"},
		{10, 5, "projects[0].backends[2].type", `unknown type "warp-drive"`},
		{11, 3, "projects[1].name", `project "MAIN" is already listed at projects[0]`},
		{12, 3, "projects[1].regions", "indent it under the backend's entry"},
		{15, 5, "projects[1].backends[0].kubeconfig", "either `filename` or `data` must be specified"},
		{16, 18, "projects[1].backends[0].networking.ssh_port", "between 1 and 65535"},
		{19, 26, "encryption.keys[0].secret", "decodes to 5 bytes"},
		{21, 3, "default_permissions.allow_non_admins_manage_ssh_fleets", "got the number 1"},
		{22, 1, "surprise", `unknown key "surprise"`},
	}},
}

func TestInvalidConfigs(t *testing.T) {
	t.Setenv("HOME", t.TempDir()) // so that ~/missing/... is surely missing
	if len(invalidCases) < 45 {
		t.Fatalf("only %d invalid cases", len(invalidCases))
	}
	for _, c := range invalidCases {
		t.Run(c.name, func(t *testing.T) {
			s, err := config.Parse("config.yml", []byte(c.yaml), opts(c.getenv))
			if err == nil {
				t.Fatalf("accepted: %+v", s)
			}
			se, ok := schema.IsError(err)
			if !ok {
				t.Fatalf("error %T is not a *schema.Error: %v", err, err)
			}
			if se.Name != "config.yml" {
				t.Errorf("error names %q", se.Name)
			}
			checkIssues(t, se.Issues, c.want)
		})
	}
}

// checkIssues asserts that every wanted issue is reported, at its position and path, that nothing else is,
// and that the issues come in the order of the file.
func checkIssues(t *testing.T, got []schema.Issue, wants []want) {
	t.Helper()
	used := make([]bool, len(got))
	var missing []string
	for _, w := range wants {
		found := false
		for i, is := range got {
			if !used[i] && is.Line == w.line && is.Col == w.col && schema.PathString(is.Path) == w.path && strings.Contains(is.Msg, w.msg) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			missing = append(missing, w.String())
		}
	}
	var extra []string
	for i, is := range got {
		if !used[i] {
			extra = append(extra, schema.FormatIssue("", is)+fmt.Sprintf(" [at %d:%d]", is.Line, is.Col))
		}
	}
	if len(missing) > 0 || len(extra) > 0 {
		t.Errorf("issues differ\nmissing:\n  %s\nunexpected:\n  %s\nall reported:\n%s",
			strings.Join(missing, "\n  "), strings.Join(extra, "\n  "), (&schema.Error{Name: "config.yml", Issues: got}).Error())
	}
	if !sort.SliceIsSorted(got, func(a, b int) bool {
		return got[a].Line < got[b].Line || got[a].Line == got[b].Line && got[a].Col < got[b].Col
	}) {
		t.Errorf("issues are not in the order of the file:\n%s", (&schema.Error{Issues: got}).Error())
	}
	for _, is := range got {
		if strings.TrimSpace(is.Msg) == "" {
			t.Errorf("issue at %v has no message", is.Path)
		}
	}
}

func TestErrorFormat(t *testing.T) {
	_, err := config.Parse("/etc/dstack/config.yml", []byte(`projects:
- name: main
  backends:
  - type: lambda
    creds: {type: api_key, api_key: k}
    zone: x
  - type: vultr
`), opts(nil))
	const wantErr = `/etc/dstack/config.yml:6:5: projects[0].backends[0].zone: unknown key "zone"; expected one of: type, regions, creds
/etc/dstack/config.yml:7:5: projects[0].backends[1].creds: required field (the credentials: ` + "`type` and its keys" + `) is missing`
	if err == nil || err.Error() != wantErr {
		t.Fatalf("error:\n%v\nwant:\n%s", err, wantErr)
	}
	se, _ := schema.IsError(err)
	if got := schema.FormatIssue(se.Name, se.Issues[0]); got != strings.Split(wantErr, "\n")[0] {
		t.Errorf("FormatIssue: %q", got)
	}
	// A problem with no place in the file has no position.
	_, err = config.Parse("empty.yml", nil, opts(nil))
	if want := "empty.yml: expected a mapping (a mapping with `projects`), got nothing (null)"; err == nil || err.Error() != want {
		t.Errorf("empty file: %v; want %s", err, want)
	}
}

func TestDefaults(t *testing.T) {
	s, err := config.Parse("config.yml", []byte("projects: []\n"), opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := &config.Server{DefaultPermissions: config.DefaultPermissions{AllowNonAdminsCreateProjects: true, AllowNonAdminsManageSSHFleets: true}}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("got %+v, want %+v", s, want)
	}

	s, err = config.Parse("config.yml", []byte(`projects:
- name: main
default_permissions:
  allow_non_admins_manage_ssh_fleets: false
encryption:
  keys: []
plugins: [dstack-plugin-a, b]
`), opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	want = &config.Server{
		Projects:           []config.Project{{Name: "main"}},
		HasEncryption:      true,
		DefaultPermissions: config.DefaultPermissions{AllowNonAdminsCreateProjects: true, AllowNonAdminsManageSSHFleets: false},
		Plugins:            []string{"dstack-plugin-a", "b"},
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("got %+v, want %+v", s, want)
	}
}

func TestValidConfig(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	if err := os.WriteFile(filepath.Join(home, "kubeconfig"), []byte("apiVersion: v1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := config.Parse("config.yml", []byte(`projects:
- name: main
  backends:
  - type: aws
    creds:
      type: access_key
      access_key: ${SET}
      secret_key: $${SET}-and-$$5-${EMPTY}$SET
    regions: [us-east-1]
    vpc_ids: {us-east-1: vpc-1}
    default_vpcs: false
    tags: {team: ml, cost-center: 1234}
    os_images:
      nvidia:
        name: 'Some ThirdParty CUDA image'
        owner: 123456789012
        user: ubuntu
  - type: kubernetes
    kubeconfig:
      filename: ~/kubeconfig
    networking: {ssh_port: 32000}
  - type: lambda
    creds: &lambda {type: api_key, api_key: "k-${SET}"}
- name: Other_project-2
  backends:
  - type: lambda
    creds: *lambda
encryption:
  keys:
  - type: aes
    name: key1
    secret: cR2r1JmkPyL6edBQeHKz6ZBjCfS2oWk87Gc2G3wHVoA=
  - type: identity
default_permissions:
  allow_non_admins_create_projects: false
  allow_non_admins_manage_ssh_fleets: true
`), opts(noDefaultCreds))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Projects) != 2 || s.Projects[0].Name != "main" || s.Projects[1].Name != "Other_project-2" {
		t.Fatalf("projects: %+v", s.Projects)
	}
	aws := s.Projects[0].Backends[0]
	if aws.Type != "aws" {
		t.Fatalf("first backend: %+v", aws)
	}
	for path, want := range map[string]string{
		"creds.access_key":       "from-env",
		"creds.secret_key":       "${SET}-and-$5-$SET",
		"os_images.nvidia.owner": "123456789012",
		"os_images.nvidia.name":  "Some ThirdParty CUDA image",
		"tags.cost-center":       "1234",
		"vpc_ids.us-east-1":      "vpc-1",
		"creds.type":             "access_key",
		"os_images.nvidia.user":  "ubuntu",
		"tags.team":              "ml",
		"type":                   "aws",
	} {
		if got := aws.String(strings.Split(path, ".")...); got != want {
			t.Errorf("aws %s = %q, want %q", path, got, want)
		}
	}
	if got := aws.Values["regions"]; !reflect.DeepEqual(got, []any{"us-east-1"}) {
		t.Errorf("regions = %#v", got)
	}
	if got := aws.Values["default_vpcs"]; got != false {
		t.Errorf("default_vpcs = %#v", got)
	}
	k8s := s.Projects[0].Backends[1]
	if got := k8s.String("kubeconfig", "data"); got != "apiVersion: v1\n" {
		t.Errorf("kubeconfig.data = %q", got)
	}
	if got := k8s.Values["networking"].(map[string]any)["ssh_port"]; got != int64(32000) {
		t.Errorf("ssh_port = %#v", got)
	}
	for i, p := range s.Projects {
		lambda := p.Backends[len(p.Backends)-1]
		if lambda.Type != "lambda" || lambda.String("creds", "api_key") != "k-from-env" {
			t.Errorf("project %d lambda: %+v", i, lambda)
		}
	}
	wantKeys := []config.EncryptionKey{{Type: "aes", Name: "key1", Secret: "cR2r1JmkPyL6edBQeHKz6ZBjCfS2oWk87Gc2G3wHVoA="}, {Type: "identity"}}
	if !s.HasEncryption || !reflect.DeepEqual(s.EncryptionKeys, wantKeys) {
		t.Errorf("encryption: %v %+v", s.HasEncryption, s.EncryptionKeys)
	}
	if s.DefaultPermissions != (config.DefaultPermissions{AllowNonAdminsCreateProjects: false, AllowNonAdminsManageSSHFleets: true}) {
		t.Errorf("default_permissions: %+v", s.DefaultPermissions)
	}
}

// TestInterpolation: ${VAR} is replaced everywhere a string is expected, $${VAR} is a literal, and a bare
// $VAR is left alone.
func TestInterpolation(t *testing.T) {
	cases := []struct{ in, want string }{
		{"${SET}", "from-env"},
		{"$${SET}", "${SET}"},
		{"$SET", "$SET"},
		{"a${SET}b${SET}c", "afrom-envbfrom-envc"},
		{"${EMPTY}", ""},
		{"pa$$word", "pa$word"},
		{"${SET", "${SET"},
	}
	for _, c := range cases {
		y := fmt.Sprintf("projects:\n- name: main\n  backends:\n  - type: vultr\n    creds: {type: api_key, api_key: %q}\n", c.in)
		s, err := config.Parse("config.yml", []byte(y), opts(nil))
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if got := s.Projects[0].Backends[0].String("creds", "api_key"); got != c.want {
			t.Errorf("%q → %q, want %q", c.in, got, c.want)
		}
	}
	// A project name is interpolated too, and then checked.
	s, err := config.Parse("config.yml", []byte("projects:\n- name: team-${SET}\n"), opts(nil))
	if err != nil || s.Projects[0].Name != "team-from-env" {
		t.Errorf("project name: %v %+v", err, s)
	}
	// Without Options.Env the process environment is used.
	t.Setenv("DSTACK_CONFIG_TEST_VAR", "proc-env")
	s, err = config.Parse("config.yml", []byte("projects:\n- name: ${DSTACK_CONFIG_TEST_VAR}\n"), config.Options{})
	if err != nil || s.Projects[0].Name != "proc-env" {
		t.Errorf("os environment: %v %+v", err, s)
	}
}

// TestDefaultCredsAllowed: without DSTACK_DEFAULT_CREDS_DISABLED the four backends accept default creds,
// and with it explicit credentials still load.
func TestDefaultCredsAllowed(t *testing.T) {
	y := []byte(`projects:
- name: main
  backends:
  - {type: aws, creds: {type: default}}
  - {type: azure, tenant_id: t, subscription_id: s, creds: {type: default}}
  - {type: gcp, project_id: my-project, creds: {type: default}}
  - {type: oci, creds: {type: default, file: ~/.oci/config, profile: DEFAULT}}
`)
	if _, err := config.Parse("config.yml", y, opts(nil)); err != nil {
		t.Fatal(err)
	}
	_, err := config.Parse("config.yml", y, opts(noDefaultCreds))
	se, ok := schema.IsError(err)
	if !ok || len(se.Issues) != 4 {
		t.Fatalf("with DSTACK_DEFAULT_CREDS_DISABLED: %v", err)
	}
	y = []byte(`projects:
- name: main
  backends:
  - {type: aws, creds: {type: access_key, access_key: a, secret_key: b}}
  - {type: gcp, project_id: my-project, creds: {type: service_account, data: "{}"}}
`)
	if _, err := config.Parse("config.yml", y, opts(noDefaultCreds)); err != nil {
		t.Fatal(err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(path, []byte("projects:\n- name: main\n  foo: bar\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := config.Load(path, opts(nil))
	if err == nil || !strings.HasPrefix(err.Error(), path+":3:3: projects[0].foo: ") {
		t.Errorf("Load: %v", err)
	}
	if _, err := config.Load(filepath.Join(dir, "absent.yml"), opts(nil)); !os.IsNotExist(err) {
		t.Errorf("absent file: %v", err)
	}
}
