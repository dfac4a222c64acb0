package fake

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Microsoft Azure: Azure Resource Manager (ARM) REST and Microsoft Entra ID (azure_wire.go), both
// served at one https URL (TLS with SimTLSConfig: the Azure SDK refuses http), as the azure backend
// reaches them when DSTACK_AZURE_API_URL is both its ARM endpoint and its authority host.
//
// ARM calls, each with ?api-version= as the SDK modules send it (armsubscriptions 2022-12-01,
// armresources 2021-04-01, armcompute v7 2025-04-01 for virtual machines, 2025-01-02 for disks,
// 2021-07-01 for resource SKUs, armnetwork v7 2025-01-01, managed identities 2023-01-31) and an
// `Authorization: Bearer` token the AAD side issued for a tenant that owns the subscription:
//
//   - GET /subscriptions/{s}; GET and PUT .../resourcegroups/{rg};
//   - GET /subscriptions/{s}/providers/Microsoft.Compute/skus[?$filter=location eq '{l}'];
//   - PUT and GET virtualNetworks (and GET their subnets), networkSecurityGroups,
//     publicIPAddresses and networkInterfaces; DELETE the last two;
//   - PUT, GET ($expand=instanceView) and DELETE virtualMachines; GET the virtual machines of the
//     subscription and of a location; DELETE disks;
//   - GET Microsoft.ManagedIdentity/userAssignedIdentities;
//   - GET .../providers/{namespace}/locations/{l}/operations/{id}: long-running operation status.
//
// Long-running operations go as ARM does them: PUT answers 201 (200 for an update) with a
// provisioningState (Updating for network resources, Creating for VMs) and an Azure-AsyncOperation
// header; DELETE answers 202 with Azure-AsyncOperation and Location, or 204 when there is nothing
// to delete. Network operations succeed at once; a VM's operation is InProgress while it boots,
// then Succeeded. Errors are {"error": {"code", "message"}}: 401 AuthenticationFailed /
// InvalidAuthenticationToken / InvalidAuthenticationTokenTenant, 404 SubscriptionNotFound,
// ResourceGroupNotFound and ResourceNotFound, 400 InvalidParameter and the like, 409
// SkuNotAvailable for a launch without capacity, 429 TooManyRequests with Retry-After. A DELETE of a
// NIC or public IP still in use is refused (NicInUse, PublicIPAddressCannotBeDeleted); deleting a
// VM deletes the NIC, public IP and OS disk it was created with deleteOption Delete.
//
// The world: locations eastus, westus2, southcentralus, westeurope and northeurope. VM sizes are
// those of azureSizes; Standard_NC24ads_A100_v4 is restricted in westeurope
// (NotAvailableForSubscription), Standard_NV36ads_A10_v5 is not offered in northeurope,
// Standard_NC4as_T4_v3 is restricted to zones 2 and 3 in eastus (still available), and
// Standard_ND96asr_v4 fails allocation in eastus (the VM's operation ends Failed with
// AllocationFailed). Every subscription has the seed's networks: resource group
// myNetworkResourceGroup (westeurope) with virtual networks myNetworkName (westeurope, subnet
// default), eastus-network (eastus, subnet default) and empty-network (eastus, no subnet); resource
// group existing-rg (eastus); and the managed identity dstack-identities/dstack-vm-identity.
// dstack's images are the community gallery images
// /CommunityGalleries/dstack-ebac134d-04b9-4c2b-8b6c-ad3e73904aa7/Images/dstack-0.7 and
// dstack-cuda-0.7 (Versions/latest); gateways' sizes and Ubuntu images are in azure_gateway.go.
//
// VMs are machines named by the VM name: provisioningState Creating (PowerState/starting) while
// they boot, then Succeeded and running, with the public IP's ipAddress and the NIC's
// privateIPAddress set (addresses appear once the machine is up, also for Static IPs: a
// simplification). A machine the provider takes away (Terminate) makes its VM, and what the VM
// deletes with it, disappear.

const (
	azTenant       = "f84a7584-88e4-4fd2-8e97-623f0a715ee1" // the seed's tenant
	azTenantDomain = "dstacksim.onmicrosoft.com"
	azSubscription = "06c82ce3-28ff-4285-a146-c5e981a9d808" // the seed's subscription
	azGoodClient   = "6f0c1d2e-7a8b-4c9d-9e0f-a1b2c3d4e5f6"
	azGoodSecret   = "sIm8Q~GoodSecretOfTheAzureSimulation00aB"
	azBadClient    = "0bad0bad-7a8b-4c9d-9e0f-a1b2c3d4e5f6"
	azBadSecret    = "sIm8Q~BadSecretOfTheAzureSimulation000aB"
	azGallery      = "dstack-ebac134d-04b9-4c2b-8b6c-ad3e73904aa7"
)

// ARM api-versions the SDK modules send, by resource type (lower case).
var azAPIVersions = map[string]string{
	"subscription":                                     "2022-12-01",
	"resourcegroups":                                   "2021-04-01",
	"microsoft.compute/skus":                           "2021-07-01",
	"microsoft.compute/virtualmachines":                "2025-04-01",
	"microsoft.compute/disks":                          "2025-01-02",
	"microsoft.compute/operations":                     "2025-04-01",
	"microsoft.network/virtualnetworks":                "2025-01-01",
	"microsoft.network/virtualnetworks/subnets":        "2025-01-01",
	"microsoft.network/networksecuritygroups":          "2025-01-01",
	"microsoft.network/publicipaddresses":              "2025-01-01",
	"microsoft.network/networkinterfaces":              "2025-01-01",
	"microsoft.network/operations":                     "2025-01-01",
	"microsoft.managedidentity/userassignedidentities": "2023-01-31",
}

// Proper-case type names, as ARM spells them in answers.
var azTypeNames = map[string]string{
	"microsoft.compute/virtualmachines":                "Microsoft.Compute/virtualMachines",
	"microsoft.compute/disks":                          "Microsoft.Compute/disks",
	"microsoft.network/virtualnetworks":                "Microsoft.Network/virtualNetworks",
	"microsoft.network/virtualnetworks/subnets":        "Microsoft.Network/virtualNetworks/subnets",
	"microsoft.network/networksecuritygroups":          "Microsoft.Network/networkSecurityGroups",
	"microsoft.network/publicipaddresses":              "Microsoft.Network/publicIPAddresses",
	"microsoft.network/networkinterfaces":              "Microsoft.Network/networkInterfaces",
	"microsoft.managedidentity/userassignedidentities": "Microsoft.ManagedIdentity/userAssignedIdentities",
}

var azLocations = []string{"eastus", "westus2", "southcentralus", "westeurope", "northeurope"}

// azSize is a VM size the simulation sells.
type azSize struct {
	name         string
	cpu, mem     int
	gpus         int
	gpuName      string
	gpuMem       float64
	price, spot  float64 // eastus; 0 spot: no spot
	locations    []string
	restricted   map[string]string   // location -> reasonCode of a Location restriction
	zonesOnly    map[string][]string // location -> the only zones it may use
	allocFailsIn string              // location where allocation fails
}

var azSizes = []azSize{
	{name: "Standard_D4s_v3", cpu: 4, mem: 16, price: 0.192, spot: 0.0384, locations: azLocations},
	{name: "Standard_NC4as_T4_v3", cpu: 4, mem: 28, gpus: 1, gpuName: "T4", gpuMem: 16, price: 0.526, spot: 0.0526,
		locations: []string{"eastus", "westus2", "southcentralus", "westeurope", "northeurope"}, zonesOnly: map[string][]string{"eastus": {"2", "3"}}},
	{name: "Standard_NV36ads_A10_v5", cpu: 36, mem: 440, gpus: 1, gpuName: "A10", gpuMem: 24, price: 3.2,
		locations: []string{"eastus", "westus2", "westeurope"}},
	{name: "Standard_NC24ads_A100_v4", cpu: 24, mem: 220, gpus: 1, gpuName: "A100", gpuMem: 80, price: 3.673, spot: 0.7346,
		locations: []string{"eastus", "southcentralus", "westeurope"}, restricted: map[string]string{"westeurope": "NotAvailableForSubscription"}},
	{name: "Standard_ND96asr_v4", cpu: 96, mem: 900, gpus: 8, gpuName: "A100", gpuMem: 40, price: 27.197, spot: 5.4394,
		locations: []string{"eastus", "westus2"}, allocFailsIn: "eastus"},
}

// azCatalogOnly are catalog rows of sizes the location's SKU list does not offer.
var azCatalogOnly = map[string][]string{"Standard_NV36ads_A10_v5": {"northeurope"}}

func azSizeByName(name string) *azSize {
	for i := range azSizes {
		if strings.EqualFold(azSizes[i].name, name) {
			return &azSizes[i]
		}
	}
	return azGatewaySize(name)
}

func (z azSize) offeredIn(loc string) bool { return contains(z.locations, loc) }

// azPrice is a size's price in a location (Europe a tenth dearer).
func azPrice(z azSize, loc string, spot bool) float64 {
	p := z.price
	if spot {
		p = z.spot
	}
	if strings.HasSuffix(loc, "europe") {
		p = float64(int64(p*1.1*10000+0.5)) / 10000
	}
	return p
}

func azureCatalog() []catalogRow {
	var rows []catalogRow
	for _, z := range azSizes {
		locs := append(append([]string(nil), z.locations...), azCatalogOnly[z.name]...)
		for _, loc := range locs {
			row := catalogRow{name: z.name, location: loc, price: azPrice(z, loc, false), cpu: z.cpu, memory: z.mem,
				gpus: z.gpus, gpuName: z.gpuName, gpuMem: z.gpuMem}
			rows = append(rows, row)
			if z.spot > 0 {
				row.price, row.spot = azPrice(z, loc, true), true
				rows = append(rows, row)
			}
		}
	}
	return rows
}

// azRes is one ARM resource of the simulation.
type azRes struct {
	ID       string // as first written
	Type     string // lower case, e.g. microsoft.network/virtualnetworks
	Name     string
	Location string
	Tags     map[string]string
	Props    map[string]any
	SKU      map[string]any
	Identity map[string]any
	Created  time.Time
	// VMs: the machine, or the allocation error the VM failed with.
	Machine   string
	FailCode  string
	FailMsg   string
	preseeded bool
}

// azOp is a long-running operation.
type azOp struct {
	machine  string // a VM creation: its state follows the machine
	failCode string
	failMsg  string
	started  time.Time
}

// azWorld is the simulation's ARM and AAD state.
type azWorld struct {
	mu     sync.Mutex
	tokens map[string]azToken
	res    map[string]*azRes // lower-case id -> resource
	seeded map[string]bool   // subscriptions with the preseeded resources
	ops    map[string]*azOp
}

func azState(s *Sim) *azWorld {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w, ok := s.objects["azure"]["world"].(*azWorld); ok {
		return w
	}
	w := &azWorld{tokens: map[string]azToken{}, res: map[string]*azRes{}, seeded: map[string]bool{}, ops: map[string]*azOp{}}
	if s.objects["azure"] == nil {
		s.objects["azure"] = map[string]any{}
	}
	s.objects["azure"]["world"] = w
	return w
}

func azRGID(sub, rg string) string { return "/subscriptions/" + sub + "/resourceGroups/" + rg }

func azResID(sub, rg, typ, name string) string {
	return azRGID(sub, rg) + "/providers/" + azTypeNames[typ] + "/" + name
}

// seed adds the preseeded resources of a subscription. Callers hold w.mu.
func (w *azWorld) seed(sub string) {
	if w.seeded[strings.ToLower(sub)] {
		return
	}
	w.seeded[strings.ToLower(sub)] = true
	put := func(r *azRes) {
		r.preseeded, r.Created = true, time.Date(2025, 1, 10, 9, 0, 0, 0, time.UTC)
		w.res[strings.ToLower(r.ID)] = r
	}
	for _, rg := range []struct{ name, loc string }{{"myNetworkResourceGroup", "westeurope"}, {"existing-rg", "eastus"}, {"dstack-identities", "eastus"}} {
		put(&azRes{ID: azRGID(sub, rg.name), Type: "resourcegroups", Name: rg.name, Location: rg.loc, Props: map[string]any{}})
	}
	vnet := func(name, loc, cidr string, subnets ...string) {
		id := azResID(sub, "myNetworkResourceGroup", "microsoft.network/virtualnetworks", name)
		var sns []any
		for _, sn := range subnets {
			sns = append(sns, map[string]any{"name": sn, "properties": map[string]any{"addressPrefix": strings.Replace(cidr, "/16", "/24", 1)}})
		}
		put(&azRes{ID: id, Type: "microsoft.network/virtualnetworks", Name: name, Location: loc,
			Props: map[string]any{"addressSpace": map[string]any{"addressPrefixes": []any{cidr}}, "subnets": sns}})
	}
	vnet("myNetworkName", "westeurope", "10.10.0.0/16", "default")
	vnet("eastus-network", "eastus", "10.20.0.0/16", "default")
	vnet("empty-network", "eastus", "10.30.0.0/16")
	put(&azRes{ID: azResID(sub, "dstack-identities", "microsoft.managedidentity/userassignedidentities", "dstack-vm-identity"),
		Type: "microsoft.managedidentity/userassignedidentities", Name: "dstack-vm-identity", Location: "eastus",
		Props: map[string]any{"tenantId": azTenant, "principalId": "3c1e8c1f-5d9a-4b8e-9c55-1f0a3d3e2b10", "clientId": "9b2f3c4d-1e2f-4a5b-8c7d-6e5f4a3b2c1d"}})
}

func init() {
	creds := func(client, secret string) map[string]any {
		return map[string]any{"type": "client", "client_id": client, "client_secret": secret}
	}
	entry := func(c map[string]any) map[string]any {
		return map[string]any{"tenant_id": azTenant, "subscription_id": azSubscription,
			"regions": []any{"eastus", "westeurope"}, "creds": c}
	}
	register("azure", &provider{
		prefix: "",
		tls:    true,
		good:   entry(creds(azGoodClient, azGoodSecret)),
		bad:    entry(creds(azBadClient, azBadSecret)),
		capacity: func(w http.ResponseWriter) {
			armError(w, http.StatusConflict, "SkuNotAvailable", "The requested VM size for resource 'Following SKUs have failed for Capacity Restrictions' is currently not available in this location. Please try another size or deploy to a different location or zones. See https://aka.ms/azureskunotavailable for details.")
		},
		failure: azFailure,
		notFound: func(w http.ResponseWriter) {
			armError(w, http.StatusNotFound, "InvalidResourceType", "The resource type could not be found in the namespace for api version.")
		},
		newID:   func(s *Sim, n int) string { return fmt.Sprintf("dstack-vm-%d", n) },
		catalog: azureCatalog,
		env: func(string) []string {
			out := []string{"AZURE_CLIENT_ID=" + azGoodClient, "AZURE_CLIENT_SECRET=" + azGoodSecret, "AZURE_TENANT_ID=" + azTenant}
			if path, err := CertFile(); err == nil {
				out = append(out, "SSL_CERT_FILE="+path)
			}
			return out
		},
		routes: []route{{pattern: "/{first}/{rest...}", launchIf: azLaunch, serve: azServe}},
	})
}

// azLaunch reports whether a request creates a VM (capacity faults apply to it alone).
func azLaunch(r *http.Request) bool {
	if r.Method != http.MethodPut {
		return false
	}
	parts := strings.Split(strings.ToLower(strings.Trim(r.URL.Path, "/")), "/")
	n := len(parts)
	return n == 8 && parts[0] == "subscriptions" && parts[5] == "microsoft.compute" && parts[6] == "virtualmachines"
}

func azServe(s *Sim, w http.ResponseWriter, r *http.Request) string {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if strings.EqualFold(parts[0], "subscriptions") {
		return armServe(s, w, r, parts)
	}
	switch {
	case r.Method == http.MethodGet && len(parts) == 4 && parts[1] == "v2.0" && parts[2] == ".well-known" && parts[3] == "openid-configuration":
		r.SetPathValue("tenant", parts[0])
		return aadOpenIDConfig(s, w, r)
	case r.Method == http.MethodPost && len(parts) == 4 && parts[1] == "oauth2" && parts[2] == "v2.0" && parts[3] == "token":
		r.SetPathValue("tenant", parts[0])
		return aadToken(s, w, r)
	}
	aadError(w, http.StatusNotFound, "invalid_request", 900561, "The endpoint only accepts POST, OPTIONS requests.")
	return r.Method + " " + r.URL.Path + " is not an AAD endpoint MSAL calls"
}

// armReq is one ARM request being served.
type armReq struct {
	s     *Sim
	w     *azWorld
	rw    http.ResponseWriter
	r     *http.Request
	sub   string
	base  string
	parts []string // after /subscriptions/{sub}
}

func (q *armReq) fail(status int, code, msg string) { armError(q.rw, status, code, msg) }

// bad answers 400 with code and returns it as a miss.
func (q *armReq) bad(code, msg string) string {
	q.fail(http.StatusBadRequest, code, msg)
	return code + ": " + msg
}

func armServe(s *Sim, rw http.ResponseWriter, r *http.Request, parts []string) string {
	q := &armReq{s: s, w: azState(s), rw: rw, r: r, base: baseURL(r)}
	if len(parts) < 2 || parts[1] == "" {
		return q.bad("InvalidRequestUri", "The request URI is missing the subscription id.")
	}
	q.sub, q.parts = parts[1], parts[2:]
	// Authentication comes first, as at ARM's front door.
	tok := bearer(r)
	if tok == "" {
		q.rw.Header().Set("WWW-Authenticate", `Bearer authorization_uri="`+q.base+`/`+azTenant+`", error="invalid_token", error_description="The authentication failed because of missing 'Authorization' header."`)
		q.fail(http.StatusUnauthorized, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
		return "no bearer token"
	}
	q.w.mu.Lock()
	t, ok := q.w.tokens[tok]
	q.w.mu.Unlock()
	if !ok || time.Now().After(t.expires) {
		q.rw.Header().Set("WWW-Authenticate", `Bearer authorization_uri="`+q.base+`/`+azTenant+`", error="invalid_token", error_description="The access token is invalid."`)
		q.fail(http.StatusUnauthorized, "InvalidAuthenticationToken", "The access token is invalid.")
		return ""
	}
	if !azGUID.MatchString(q.sub) {
		q.fail(http.StatusBadRequest, "InvalidSubscriptionId", fmt.Sprintf("The provided subscription identifier '%s' is malformed or invalid.", q.sub))
		return ""
	}
	if s.opts.Auth == Lenient {
		if strings.Contains(strings.ToLower(q.sub), "invalid") {
			q.fail(http.StatusNotFound, "SubscriptionNotFound", fmt.Sprintf("The subscription '%s' could not be found.", q.sub))
			return ""
		}
	} else {
		if !strings.EqualFold(q.sub, azSubscription) {
			q.fail(http.StatusNotFound, "SubscriptionNotFound", fmt.Sprintf("The subscription '%s' could not be found.", q.sub))
			return ""
		}
		if t.tenant != azTenant && t.tenant != azTenantDomain {
			q.fail(http.StatusUnauthorized, "InvalidAuthenticationTokenTenant", fmt.Sprintf("The access token is from the wrong issuer. It must match the tenant 'https://sts.windows.net/%s/' associated with this subscription.", azTenant))
			return ""
		}
	}
	q.w.mu.Lock()
	q.w.seed(q.sub)
	q.w.mu.Unlock()
	q.reap()

	p := lower(q.parts)
	n := len(p)
	switch {
	case n == 0:
		if why := q.apiVersion("subscription"); why != "" {
			return why
		}
		if r.Method != http.MethodGet {
			return q.methodNotAllowed()
		}
		writeJSON(rw, http.StatusOK, map[string]any{"id": "/subscriptions/" + q.sub, "subscriptionId": q.sub,
			"tenantId": azTenant, "displayName": "dstack simulation", "state": "Enabled", "authorizationSource": "RoleBased",
			"subscriptionPolicies": map[string]any{"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"}})
		return ""
	case n == 2 && p[0] == "resourcegroups":
		if why := q.apiVersion("resourcegroups"); why != "" {
			return why
		}
		return q.resourceGroup(q.parts[1])
	case n == 3 && p[0] == "providers" && p[1] == "microsoft.compute" && p[2] == "skus":
		if why := q.apiVersion("microsoft.compute/skus"); why != "" {
			return why
		}
		return q.skus()
	case n == 3 && p[0] == "providers" && p[1] == "microsoft.compute" && p[2] == "virtualmachines":
		if why := q.apiVersion("microsoft.compute/virtualmachines"); why != "" {
			return why
		}
		return q.listVMs("")
	case n == 5 && p[0] == "providers" && p[1] == "microsoft.compute" && p[2] == "locations" && p[4] == "virtualmachines":
		if why := q.apiVersion("microsoft.compute/virtualmachines"); why != "" {
			return why
		}
		return q.listVMs(p[3])
	case n == 6 && p[0] == "providers" && p[2] == "locations" && p[4] == "operations":
		if why := q.apiVersion(p[1] + "/operations"); why != "" {
			return why
		}
		return q.operation(q.parts[5])
	case n >= 6 && p[0] == "resourcegroups" && p[2] == "providers":
		typ := p[3] + "/" + p[4]
		if n == 8 && typ == "microsoft.network/virtualnetworks" && p[6] == "subnets" {
			if why := q.apiVersion(typ + "/subnets"); why != "" {
				return why
			}
			return q.subnet(q.parts[1], q.parts[5], q.parts[7])
		}
		if n != 6 || azAPIVersions[typ] == "" {
			break
		}
		if why := q.apiVersion(typ); why != "" {
			return why
		}
		return q.resource(q.parts[1], typ, q.parts[5])
	}
	q.fail(http.StatusNotFound, "InvalidResourceType", fmt.Sprintf("The resource type '%s' could not be found.", strings.Join(q.parts, "/")))
	return r.Method + " " + r.URL.Path + ": not an ARM call this simulation knows"
}

func lower(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.ToLower(s)
	}
	return out
}

// apiVersion checks ?api-version= against the one the SDK sends for typ.
func (q *armReq) apiVersion(typ string) string {
	got, want := q.r.URL.Query().Get("api-version"), azAPIVersions[typ]
	if got == "" {
		return q.bad("MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.")
	}
	if got != want {
		q.fail(http.StatusBadRequest, "NoRegisteredProviderFound", fmt.Sprintf("No registered resource provider found for location and API version '%s' and type '%s'. The supported api-versions are '%s'.", got, typ, want))
		return "api-version " + got + " for " + typ + ", the SDK sends " + want
	}
	return ""
}

func (q *armReq) methodNotAllowed() string {
	q.fail(http.StatusMethodNotAllowed, "MethodNotAllowed", "The requested resource does not support http method '"+q.r.Method+"'.")
	return "method " + q.r.Method + " on " + q.r.URL.Path
}

// reap removes the VMs whose machines the provider took away, with what they delete.
func (q *armReq) reap() {
	q.w.mu.Lock()
	var gone []*azRes
	for _, res := range q.w.res {
		if res.Type == "microsoft.compute/virtualmachines" && res.Machine != "" {
			gone = append(gone, res)
		}
	}
	q.w.mu.Unlock()
	for _, vm := range gone {
		if m, ok := q.s.snapshot(vm.Machine); ok && m.Status == StatusTerminated {
			q.w.mu.Lock()
			q.w.deleteVM(vm)
			q.w.mu.Unlock()
		}
	}
}

// deleteVM removes a VM and the resources it was created to delete with it. Callers hold w.mu.
func (w *azWorld) deleteVM(vm *azRes) {
	delete(w.res, strings.ToLower(vm.ID))
	if strings.EqualFold(jsonStr(vm.Props, "storageProfile", "osDisk", "deleteOption"), "Delete") {
		delete(w.res, strings.ToLower(jsonStr(vm.Props, "storageProfile", "osDisk", "managedDisk", "id")))
	}
	for _, ni := range jsonArr(vm.Props, "networkProfile", "networkInterfaces") {
		if !strings.EqualFold(jsonStr(ni, "properties", "deleteOption"), "Delete") {
			continue
		}
		nicID := strings.ToLower(jsonStr(ni, "id"))
		nic := w.res[nicID]
		if nic == nil {
			continue
		}
		for _, ipc := range jsonArr(nic.Props, "ipConfigurations") {
			if strings.EqualFold(jsonStr(ipc, "properties", "publicIPAddress", "properties", "deleteOption"), "Delete") {
				delete(w.res, strings.ToLower(jsonStr(ipc, "properties", "publicIPAddress", "id")))
			}
		}
		delete(w.res, nicID)
	}
}

func (q *armReq) get(id string) *azRes {
	q.w.mu.Lock()
	defer q.w.mu.Unlock()
	return q.w.res[strings.ToLower(id)]
}

func (q *armReq) rgExists(rg string) bool { return q.get(azRGID(q.sub, rg)) != nil }

func (q *armReq) rgNotFound(rg string) {
	q.fail(http.StatusNotFound, "ResourceGroupNotFound", fmt.Sprintf("Resource group '%s' could not be found.", rg))
}

func (q *armReq) notFound(rg, typ, name string) {
	q.fail(http.StatusNotFound, "ResourceNotFound", fmt.Sprintf("The Resource '%s/%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix", azTypeNames[typ], name, rg))
}

// armBody is the envelope of a PUT body.
type armBody struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags"`
	Properties map[string]any    `json:"properties"`
	SKU        map[string]any    `json:"sku"`
	Identity   map[string]any    `json:"identity"`
	Zones      []string          `json:"zones"`
	Etag       string            `json:"etag"`
}

func (q *armReq) readBody() (*armBody, string) {
	if ct, _, _ := strings.Cut(q.r.Header.Get("Content-Type"), ";"); ct != "application/json" {
		return nil, q.bad("UnsupportedMediaType", "The content media type '"+ct+"' is not supported. Only 'application/json' is supported.")
	}
	var b armBody
	if err := readJSON(q.r, &b, true); err != nil {
		return nil, q.bad("InvalidRequestContent", "The request content was invalid and could not be deserialized: '"+err.Error()+"'.")
	}
	if b.Location == "" {
		return nil, q.bad("LocationRequired", "The location property is required for this definition.")
	}
	b.Location = strings.ToLower(strings.ReplaceAll(b.Location, " ", ""))
	if !contains(azLocations, b.Location) {
		q.fail(http.StatusBadRequest, "LocationNotAvailableForResourceType", fmt.Sprintf("The provided location '%s' is not available for resource type. List of available regions is '%s'.", b.Location, strings.Join(azLocations, ",")))
		return nil, ""
	}
	if len(b.Tags) > 50 {
		return nil, q.bad("InvalidTag", "The resource has more than 50 tags.")
	}
	for k, v := range b.Tags {
		if k == "" || len(k) > 512 || len(v) > 256 || strings.ContainsAny(k, `<>%&\?/`) {
			return nil, q.bad("InvalidTagNameCharacters", fmt.Sprintf("The tag names '%s' have reserved characters '<,>,%%,&,\\,?,/' or control characters, or the name or value is too long.", k))
		}
	}
	if b.Properties == nil {
		b.Properties = map[string]any{}
	}
	return &b, ""
}

// created answers a PUT: 201 for a new resource, 200 for an update, with the Azure-AsyncOperation
// header of an operation that has already succeeded (network resources) or that follows a machine.
func (q *armReq) created(isNew bool, body map[string]any, ns, loc string, op *azOp) {
	id := q.s.uuid()
	if op == nil {
		op = &azOp{}
	}
	op.started = time.Now()
	q.w.mu.Lock()
	q.w.ops[id] = op
	q.w.mu.Unlock()
	q.rw.Header().Set("Azure-AsyncOperation", fmt.Sprintf("%s/subscriptions/%s/providers/%s/locations/%s/operations/%s?api-version=%s",
		q.base, q.sub, ns, loc, id, azAPIVersions[strings.ToLower(ns)+"/operations"]))
	status := http.StatusOK
	if isNew {
		status = http.StatusCreated
	}
	writeJSON(q.rw, status, body)
}

// deleted answers an accepted DELETE: 202 with the operation's headers.
func (q *armReq) deleted(ns, loc string) {
	id := q.s.uuid()
	q.w.mu.Lock()
	q.w.ops[id] = &azOp{started: time.Now()}
	q.w.mu.Unlock()
	u := fmt.Sprintf("%s/subscriptions/%s/providers/%s/locations/%s/operations/%s?api-version=%s",
		q.base, q.sub, ns, loc, id, azAPIVersions[strings.ToLower(ns)+"/operations"])
	q.rw.Header().Set("Azure-AsyncOperation", u)
	q.rw.Header().Set("Location", u+"&monitor=true")
	q.rw.Header().Set("Retry-After", "1")
	q.rw.WriteHeader(http.StatusAccepted)
}

func (q *armReq) operation(id string) string {
	if q.r.Method != http.MethodGet {
		return q.methodNotAllowed()
	}
	q.w.mu.Lock()
	op := q.w.ops[id]
	q.w.mu.Unlock()
	if op == nil {
		q.fail(http.StatusNotFound, "OperationNotFound", "The operation '"+id+"' could not be found.")
		return ""
	}
	out := map[string]any{"name": id, "startTime": op.started.UTC().Format(time.RFC3339Nano), "status": "Succeeded"}
	switch {
	case op.failCode != "":
		out["status"] = "Failed"
		out["error"] = map[string]any{"code": op.failCode, "message": op.failMsg}
	case op.machine != "":
		m, ok := q.s.snapshot(op.machine)
		switch {
		case !ok || m.Status == StatusTerminated:
			out["status"] = "Canceled"
			out["error"] = map[string]any{"code": "OperationPreempted", "message": "The operation was preempted by a delete of the virtual machine."}
		case m.Status == StatusFailed:
			out["status"] = "Failed"
			out["error"] = map[string]any{"code": "OSProvisioningInternalError", "message": "OS Provisioning failed for VM '" + m.Name + "' due to an internal error: " + m.Error}
		case m.Status == StatusBooting:
			out["status"] = "InProgress"
			q.rw.Header().Set("Retry-After", "10")
		}
	}
	if out["status"] != "InProgress" {
		out["endTime"] = time.Now().UTC().Format(time.RFC3339Nano)
	}
	writeJSON(q.rw, http.StatusOK, out)
	return ""
}

func (q *armReq) resourceGroup(name string) string {
	id := azRGID(q.sub, name)
	answer := func(res *azRes) map[string]any {
		return map[string]any{"id": res.ID, "name": res.Name, "type": "Microsoft.Resources/resourceGroups", "location": res.Location,
			"tags": res.Tags, "properties": map[string]any{"provisioningState": "Succeeded"}}
	}
	switch q.r.Method {
	case http.MethodGet:
		res := q.get(id)
		if res == nil {
			q.rgNotFound(name)
			return ""
		}
		writeJSON(q.rw, http.StatusOK, answer(res))
	case http.MethodPut:
		b, why := q.readBody()
		if b == nil {
			return why
		}
		if !regexp.MustCompile(`^[-\w._()]{1,90}$`).MatchString(name) || strings.HasSuffix(name, ".") {
			return q.bad("InvalidResourceGroup", "The provided resource group name '"+name+"' has these invalid characters.")
		}
		q.w.mu.Lock()
		res, exists := q.w.res[strings.ToLower(id)]
		if exists && res.Location != b.Location {
			q.w.mu.Unlock()
			q.fail(http.StatusConflict, "InvalidResourceGroupLocation", fmt.Sprintf("Invalid resource group location '%s'. The Resource group already exists in location '%s'.", b.Location, res.Location))
			return ""
		}
		if !exists {
			res = &azRes{ID: id, Type: "resourcegroups", Name: name, Location: b.Location, Created: time.Now()}
			q.w.res[strings.ToLower(id)] = res
		}
		res.Tags = b.Tags
		out := answer(res)
		q.w.mu.Unlock()
		writeJSON(q.rw, map[bool]int{true: http.StatusOK, false: http.StatusCreated}[exists], out)
	default:
		return q.methodNotAllowed()
	}
	return ""
}

func (q *armReq) skus() string {
	if q.r.Method != http.MethodGet {
		return q.methodNotAllowed()
	}
	filter := q.r.URL.Query().Get("$filter")
	loc := ""
	if filter != "" {
		m := regexp.MustCompile(`^location eq '([a-z0-9]+)'$`).FindStringSubmatch(filter)
		if m == nil {
			return q.bad("InvalidFilterInQueryString", "The filter '"+filter+"' is not supported; only location eq '<location>' is.")
		}
		loc = m[1]
	}
	var value []any
	for _, z := range azSizes {
		for _, l := range z.locations {
			if loc != "" && l != loc {
				continue
			}
			zones := []any{"1", "2", "3"}
			var restrictions []any
			if only := z.zonesOnly[l]; only != nil {
				var blocked []any
				for _, zz := range zones {
					if !contains(only, zz.(string)) {
						blocked = append(blocked, zz)
					}
				}
				restrictions = append(restrictions, map[string]any{"type": "Zone", "values": []any{l}, "reasonCode": "NotAvailableForSubscription",
					"restrictionInfo": map[string]any{"locations": []any{l}, "zones": blocked}})
			}
			if reason := z.restricted[l]; reason != "" {
				restrictions = append(restrictions, map[string]any{"type": "Location", "values": []any{l}, "reasonCode": reason,
					"restrictionInfo": map[string]any{"locations": []any{l}}})
			}
			if restrictions == nil {
				restrictions = []any{}
			}
			caps := []any{
				map[string]any{"name": "vCPUs", "value": strconv.Itoa(z.cpu)},
				map[string]any{"name": "MemoryGB", "value": strconv.Itoa(z.mem)},
				map[string]any{"name": "GPUs", "value": strconv.Itoa(z.gpus)},
				map[string]any{"name": "LowPriorityCapable", "value": strconv.FormatBool(z.spot > 0)},
				map[string]any{"name": "HyperVGenerations", "value": "V1,V2"},
			}
			size := strings.TrimPrefix(z.name, "Standard_")
			value = append(value, map[string]any{"resourceType": "virtualMachines", "name": z.name, "tier": "Standard", "size": size,
				"family": "standard" + strings.Split(size, "_")[0] + "Family", "locations": []any{l},
				"locationInfo": []any{map[string]any{"location": l, "zones": zones, "zoneDetails": []any{}}},
				"capabilities": caps, "restrictions": restrictions})
		}
	}
	// A disk SKU among the VM sizes, as the real list mixes resource types.
	value = append(value, map[string]any{"resourceType": "disks", "name": "StandardSSD_LRS", "tier": "Standard", "size": "E10",
		"locations": []any{azLocations[0]}, "restrictions": []any{}})
	writeJSON(q.rw, http.StatusOK, map[string]any{"value": value})
	return ""
}

// resource serves GET, PUT and DELETE of one resource in a resource group.
func (q *armReq) resource(rg, typ, name string) string {
	id := azResID(q.sub, rg, typ, name)
	switch q.r.Method {
	case http.MethodGet:
		if !q.rgExists(rg) {
			q.rgNotFound(rg)
			return ""
		}
		res := q.get(id)
		if res == nil {
			q.notFound(rg, typ, name)
			return ""
		}
		writeJSON(q.rw, http.StatusOK, q.render(res, q.r.URL.Query().Get("$expand") == "instanceView"))
		return ""
	case http.MethodPut:
		switch typ {
		case "microsoft.managedidentity/userassignedidentities", "microsoft.compute/disks":
			return q.methodNotAllowed()
		}
		if !q.rgExists(rg) {
			q.rgNotFound(rg)
			return ""
		}
		b, why := q.readBody()
		if b == nil {
			return why
		}
		return q.put(rg, typ, name, id, b)
	case http.MethodDelete:
		switch typ {
		case "microsoft.compute/virtualmachines", "microsoft.compute/disks", "microsoft.network/networkinterfaces", "microsoft.network/publicipaddresses":
		default:
			return q.methodNotAllowed()
		}
		if !q.rgExists(rg) {
			q.rgNotFound(rg)
			return ""
		}
		return q.delete(typ, id)
	}
	return q.methodNotAllowed()
}

// render is a resource's ARM JSON, with what ARM derives (ids of children, addresses, states).
func (q *armReq) render(res *azRes, instanceView bool) map[string]any {
	q.w.mu.Lock()
	props, _ := deepCopyJSON(res.Props).(map[string]any)
	q.w.mu.Unlock()
	if props == nil {
		props = map[string]any{}
	}
	props["provisioningState"] = "Succeeded"
	out := map[string]any{"id": res.ID, "name": res.Name, "type": azTypeNames[res.Type], "location": res.Location, "properties": props}
	if len(res.Tags) > 0 {
		out["tags"] = res.Tags
	}
	if res.SKU != nil {
		out["sku"] = res.SKU
	}
	if res.Identity != nil {
		out["identity"] = res.Identity
	}
	switch res.Type {
	case "microsoft.network/virtualnetworks":
		for _, sn := range jsonArr(props, "subnets") {
			m := sn.(map[string]any)
			m["id"] = res.ID + "/subnets/" + jsonStr(m, "name")
			m["type"] = "Microsoft.Network/virtualNetworks/subnets"
			if p := jsonObj(m, "properties"); p != nil {
				p["provisioningState"] = "Succeeded"
			}
		}
	case "microsoft.network/networkinterfaces":
		m := q.attachedMachine(res.ID)
		for i, ipc := range jsonArr(props, "ipConfigurations") {
			c := ipc.(map[string]any)
			c["id"] = res.ID + "/ipConfigurations/" + jsonStr(c, "name")
			if p := jsonObj(c, "properties"); p != nil {
				p["provisioningState"] = "Succeeded"
				p["privateIPAddressVersion"] = "IPv4"
				if m != nil && m.ready && i == 0 {
					p["privateIPAddress"] = m.PrivateIP
				}
			}
		}
		if vm := q.vmOfNIC(res.ID); vm != "" {
			props["virtualMachine"] = map[string]any{"id": vm}
		}
	case "microsoft.network/publicipaddresses":
		if nic := q.nicOfPIP(res.ID); nic != "" {
			props["ipConfiguration"] = map[string]any{"id": nic + "/ipConfigurations/ipconfig"}
			if m := q.attachedMachine(nic); m != nil && m.ready && m.Status != StatusTerminated {
				props["ipAddress"] = m.IP
			}
		}
		props["publicIPAddressVersion"] = "IPv4"
	case "microsoft.compute/virtualmachines":
		props["vmId"] = q.s.uuid()
		props["timeCreated"] = res.Created.UTC().Format(time.RFC3339Nano)
		state, power, msg := "Succeeded", "PowerState/running", ""
		if res.FailCode != "" {
			state, power, msg = "Failed", "PowerState/stopped", res.FailCode+": "+res.FailMsg
		} else if m, ok := q.s.snapshot(res.Machine); ok {
			switch m.Status {
			case StatusBooting:
				state, power = "Creating", "PowerState/starting"
			case StatusFailed:
				state, power, msg = "Failed", "PowerState/stopped", "OSProvisioningInternalError: "+m.Error
			}
		}
		props["provisioningState"] = state
		if instanceView {
			statuses := []any{map[string]any{"code": "ProvisioningState/" + strings.ToLower(state), "level": "Info", "displayStatus": "Provisioning " + strings.ToLower(state)}}
			if msg != "" {
				statuses[0] = map[string]any{"code": "ProvisioningState/failed/" + strings.Split(msg, ":")[0], "level": "Error", "displayStatus": "Provisioning failed", "message": msg}
			}
			statuses = append(statuses, map[string]any{"code": power, "level": "Info", "displayStatus": "VM " + strings.TrimPrefix(power, "PowerState/")})
			props["instanceView"] = map[string]any{"computerName": jsonStr(props, "osProfile", "computerName"), "statuses": statuses}
		}
		// ARM never returns custom data.
		if os := jsonObj(props, "osProfile"); os != nil {
			delete(os, "customData")
		}
	}
	return out
}

// attachedMachine is the machine of the VM that uses a NIC. It takes w.mu and s.mu itself.
func (q *armReq) attachedMachine(nicID string) *Machine {
	vm := q.vmOfNIC(nicID)
	if vm == "" {
		return nil
	}
	res := q.get(vm)
	if res == nil || res.Machine == "" {
		return nil
	}
	q.s.mu.Lock()
	defer q.s.mu.Unlock()
	m, ok := q.s.machines[res.Machine]
	if !ok {
		return nil
	}
	c := copyMachine(q.s.refresh(m))
	c.ready = m.ready
	return &c
}

func (q *armReq) vmOfNIC(nicID string) string {
	q.w.mu.Lock()
	defer q.w.mu.Unlock()
	for _, r := range q.w.res {
		if r.Type != "microsoft.compute/virtualmachines" {
			continue
		}
		for _, ni := range jsonArr(r.Props, "networkProfile", "networkInterfaces") {
			if strings.EqualFold(jsonStr(ni, "id"), nicID) {
				return r.ID
			}
		}
	}
	return ""
}

func (q *armReq) nicOfPIP(pipID string) string {
	q.w.mu.Lock()
	defer q.w.mu.Unlock()
	for _, r := range q.w.res {
		if r.Type != "microsoft.network/networkinterfaces" {
			continue
		}
		for _, ipc := range jsonArr(r.Props, "ipConfigurations") {
			if strings.EqualFold(jsonStr(ipc, "properties", "publicIPAddress", "id"), pipID) {
				return r.ID
			}
		}
	}
	return ""
}

func (q *armReq) subnet(rg, vnet, name string) string {
	if q.r.Method != http.MethodGet {
		return q.methodNotAllowed()
	}
	if !q.rgExists(rg) {
		q.rgNotFound(rg)
		return ""
	}
	res := q.get(azResID(q.sub, rg, "microsoft.network/virtualnetworks", vnet))
	if res == nil {
		q.notFound(rg, "microsoft.network/virtualnetworks", vnet)
		return ""
	}
	for _, sn := range jsonArr(q.render(res, false), "properties", "subnets") {
		if strings.EqualFold(jsonStr(sn, "name"), name) {
			writeJSON(q.rw, http.StatusOK, sn)
			return ""
		}
	}
	q.notFound(rg, "microsoft.network/virtualnetworks", vnet+"/subnets/"+name)
	return ""
}

// refID checks that a reference names an existing resource of typ in the subscription; it returns
// the resource or answers 400 InvalidResourceReference.
func (q *armReq) refID(id, typ, what string) (*azRes, string) {
	parts := strings.Split(strings.Trim(id, "/"), "/")
	lp := lower(parts)
	subnet := ""
	if len(lp) == 10 && lp[6] == "virtualnetworks" && lp[8] == "subnets" && typ == "microsoft.network/virtualnetworks/subnets" {
		subnet = parts[9]
		lp, parts = lp[:8], parts[:8]
		typ = "microsoft.network/virtualnetworks"
	}
	if len(lp) != 8 || lp[0] != "subscriptions" || lp[2] != "resourcegroups" || lp[4] != "providers" || lp[5]+"/"+lp[6] != typ {
		return nil, q.bad("LinkedInvalidPropertyId", fmt.Sprintf("Property id '%s' at path '%s' is invalid. Expect fully qualified resource Id that start with '/subscriptions/{subscriptionId}' or '/providers/{resourceProviderNamespace}/'.", id, what))
	}
	res := q.get("/" + strings.Join(parts, "/"))
	if res == nil && strings.EqualFold(parts[1], q.sub) {
		q.fail(http.StatusBadRequest, "InvalidResourceReference", fmt.Sprintf("Resource %s referenced by resource %s was not found. Please make sure that the referenced resource exists, and that both resources are in the same region.", id, what))
		return nil, ""
	}
	if res == nil {
		return nil, q.bad("LinkedAuthorizationFailed", "The client has permission to perform action on scope "+what+", however the linked subscription '"+parts[1]+"' was not found.")
	}
	if subnet != "" {
		for _, sn := range jsonArr(res.Props, "subnets") {
			if strings.EqualFold(jsonStr(sn, "name"), subnet) {
				return res, ""
			}
		}
		q.fail(http.StatusBadRequest, "InvalidResourceReference", fmt.Sprintf("Resource %s referenced by resource %s was not found.", id, what))
		return nil, ""
	}
	return res, ""
}

func (q *armReq) put(rg, typ, name, id string, b *armBody) string {
	if b.Name != "" && !strings.EqualFold(b.Name, name) {
		return q.bad("InvalidRequestContent", "The name in the body '"+b.Name+"' does not match the name in the URI '"+name+"'.")
	}
	if !regexp.MustCompile(`^[A-Za-z0-9][-\w.]{0,78}[\w]$|^[A-Za-z0-9]$`).MatchString(name) {
		return q.bad("InvalidResourceName", "Resource name "+name+" is invalid. The name can be up to 80 characters long. It must begin with a word character, and it must end with a word character or with '_'.")
	}
	existing := q.get(id)
	if existing != nil && existing.Location != b.Location {
		q.fail(http.StatusBadRequest, "InvalidResourceLocation", fmt.Sprintf("The resource '%s' already exists in location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'.", name, existing.Location, rg, b.Location))
		return ""
	}
	res := &azRes{ID: id, Type: typ, Name: name, Location: b.Location, Tags: b.Tags, Props: b.Properties, SKU: b.SKU, Identity: b.Identity, Created: time.Now()}
	if existing != nil {
		res.ID, res.Created, res.Machine = existing.ID, existing.Created, existing.Machine
	}
	ns := "Microsoft.Network"
	switch typ {
	case "microsoft.network/virtualnetworks":
		prefixes := jsonArr(b.Properties, "addressSpace", "addressPrefixes")
		if len(prefixes) == 0 {
			return q.bad("InvalidAddressSpace", "The virtual network "+name+" has no address space: properties.addressSpace.addressPrefixes is empty.")
		}
		for _, sn := range jsonArr(b.Properties, "subnets") {
			if jsonStr(sn, "name") == "" || jsonStr(sn, "properties", "addressPrefix") == "" && len(jsonArr(sn, "properties", "addressPrefixes")) == 0 {
				return q.bad("InvalidRequestFormat", "Cannot parse the request: a subnet needs a name and properties.addressPrefix.")
			}
			if nsg := jsonStr(sn, "properties", "networkSecurityGroup", "id"); nsg != "" {
				ref, why := q.refID(nsg, "microsoft.network/networksecuritygroups", id)
				if ref == nil {
					return why
				}
				if ref.Location != b.Location {
					q.fail(http.StatusBadRequest, "InvalidResourceReference", "Network security group "+nsg+" is in location "+ref.Location+", the subnet in "+b.Location+".")
					return ""
				}
			}
		}
	case "microsoft.network/networksecuritygroups":
		for _, rule := range jsonArr(b.Properties, "securityRules") {
			p := jsonObj(rule, "properties")
			prio, _ := jsonNum(p, "priority")
			switch {
			case jsonStr(rule, "name") == "":
				return q.bad("InvalidRequestFormat", "A security rule needs a name.")
			case prio < 100 || prio > 4096:
				return q.bad("SecurityRuleInvalidPriority", fmt.Sprintf("Security rule %s has invalid Priority %v. Value provided: %v. Allowed range 100-4096.", jsonStr(rule, "name"), prio, prio))
			case !contains([]string{"Inbound", "Outbound"}, jsonStr(p, "direction")):
				return q.bad("SecurityRuleInvalidDirection", "Security rule "+jsonStr(rule, "name")+" has invalid direction "+jsonStr(p, "direction")+".")
			case !contains([]string{"Allow", "Deny"}, jsonStr(p, "access")):
				return q.bad("SecurityRuleInvalidAccess", "Security rule "+jsonStr(rule, "name")+" has invalid access "+jsonStr(p, "access")+".")
			case !contains([]string{"Tcp", "Udp", "Icmp", "Esp", "Ah", "*"}, jsonStr(p, "protocol")):
				return q.bad("SecurityRuleInvalidProtocol", "Security rule "+jsonStr(rule, "name")+" has invalid protocol "+jsonStr(p, "protocol")+".")
			}
		}
	case "microsoft.network/publicipaddresses":
		if sku := jsonStr(b.SKU, "name"); sku != "" && sku != "Standard" && sku != "Basic" {
			return q.bad("InvalidPublicIpSku", "Public IP SKU "+sku+" is not valid.")
		}
		if jsonStr(b.SKU, "name") == "Standard" && jsonStr(b.Properties, "publicIPAllocationMethod") != "Static" {
			return q.bad("StandardSkuPublicIPAddressesCannotHaveDynamicAllocation", "Standard sku publicIp "+id+" must have AllocationMethod set to Static.")
		}
	case "microsoft.network/networkinterfaces":
		ipcs := jsonArr(b.Properties, "ipConfigurations")
		if len(ipcs) == 0 {
			return q.bad("NetworkInterfaceMustHaveAtLeastOneIpConfiguration", "Network interface "+id+" must have at least one IP configuration.")
		}
		for _, ipc := range ipcs {
			sn := jsonStr(ipc, "properties", "subnet", "id")
			if sn == "" {
				return q.bad("IpConfigurationSubnetMissing", "IP configuration "+jsonStr(ipc, "name")+" of network interface "+id+" has no subnet.")
			}
			vnet, why := q.refID(sn, "microsoft.network/virtualnetworks/subnets", id)
			if vnet == nil {
				return why
			}
			if vnet.Location != b.Location {
				return q.bad("NetworkInterfaceAndVirtualNetworkAreInDifferentLocations", fmt.Sprintf("Network interface %s is in %s but the virtual network %s is in %s.", id, b.Location, vnet.ID, vnet.Location))
			}
			if pip := jsonStr(ipc, "properties", "publicIPAddress", "id"); pip != "" {
				ref, why := q.refID(pip, "microsoft.network/publicipaddresses", id)
				if ref == nil {
					return why
				}
				if ref.Location != b.Location {
					return q.bad("InvalidResourceReference", "Public IP "+pip+" is in "+ref.Location+", the network interface in "+b.Location+".")
				}
				if other := q.nicOfPIP(ref.ID); other != "" && !strings.EqualFold(other, id) {
					return q.bad("PublicIPAddressInUse", "Public IP address "+pip+" is in use by "+other+".")
				}
			}
		}
		if nsg := jsonStr(b.Properties, "networkSecurityGroup", "id"); nsg != "" {
			if ref, why := q.refID(nsg, "microsoft.network/networksecuritygroups", id); ref == nil {
				return why
			}
		}
	case "microsoft.compute/virtualmachines":
		return q.putVM(rg, name, id, b, res, existing)
	}
	q.w.mu.Lock()
	q.w.res[strings.ToLower(id)] = res
	q.w.mu.Unlock()
	out := q.render(res, false)
	out["properties"].(map[string]any)["provisioningState"] = "Updating"
	q.created(existing == nil, out, ns, b.Location, nil)
	return ""
}

var azCommunityImage = regexp.MustCompile(`^/CommunityGalleries/` + azGallery + `/Images/(dstack-(?:cuda-)?0\.7)/Versions/latest$`)

func (q *armReq) putVM(rg, name, id string, b *armBody, res, existing *azRes) string {
	if existing != nil {
		// A PUT of an existing VM is an update; dstack never updates, so answer it unchanged.
		out := q.render(existing, false)
		q.created(false, out, "Microsoft.Compute", b.Location, &azOp{machine: existing.Machine, failCode: existing.FailCode, failMsg: existing.FailMsg})
		return ""
	}
	p := b.Properties
	sizeName := jsonStr(p, "hardwareProfile", "vmSize")
	size := azSizeByName(sizeName)
	if sizeName == "" || size == nil {
		return q.bad("InvalidParameter", fmt.Sprintf("The value %s provided for the VM size is not valid. The valid sizes in the current region are: %s.", sizeName, strings.Join(azSizeNames(b.Location), ",")))
	}
	if !size.offeredIn(b.Location) || size.restricted[b.Location] != "" {
		q.fail(http.StatusConflict, "SkuNotAvailable", fmt.Sprintf("The requested VM size for resource 'Following SKUs have failed for Capacity Restrictions: %s' is currently not available in location '%s'. Please try another size or deploy to a different location or zones. See https://aka.ms/azureskunotavailable for details.", size.name, b.Location))
		return ""
	}
	image, miss := q.vmImage(jsonObj(p, "storageProfile", "imageReference"), b.Location)
	if image == "" {
		return miss
	}
	osDisk := jsonObj(p, "storageProfile", "osDisk")
	diskGB, _ := jsonNum(osDisk, "diskSizeGB")
	switch {
	case jsonStr(osDisk, "createOption") != "FromImage":
		return q.bad("InvalidParameter", "Required parameter 'osDisk.createOption' is missing (null) or is not FromImage.")
	case diskGB < 30 || diskGB > 4095:
		return q.bad("InvalidParameter", fmt.Sprintf("The specified disk size %v GB is not valid. The disk size must be between 30 and 4095 GB.", diskGB))
	}
	osProfile := jsonObj(p, "osProfile")
	user := jsonStr(osProfile, "adminUsername")
	computer := jsonStr(osProfile, "computerName")
	if user == "" || user == "root" || user == "admin" {
		return q.bad("InvalidParameter", "The Admin Username specified is not allowed.")
	}
	if computer == "" || len(computer) > 64 {
		return q.bad("InvalidParameter", "Required parameter 'osProfile.computerName' is missing or longer than 64 characters.")
	}
	var keys []string
	for _, k := range jsonArr(osProfile, "linuxConfiguration", "ssh", "publicKeys") {
		if path := jsonStr(k, "path"); path != "/home/"+user+"/.ssh/authorized_keys" {
			return q.bad("InvalidParameter", "Destination path for SSH public keys is currently limited to its default value /home/"+user+"/.ssh/authorized_keys due to a known issue in Linux provisioning agent.")
		}
		keys = append(keys, jsonStr(k, "keyData"))
	}
	if len(keys) == 0 {
		return q.bad("InvalidParameter", "Authentication using either SSH or by user name and password must be enabled in Linux profile.")
	}
	var userData string
	if cd := jsonStr(osProfile, "customData"); cd != "" {
		raw, err := base64.StdEncoding.DecodeString(cd)
		if err != nil || len(cd) > 87380 {
			return q.bad("InvalidParameter", "Custom data in OSProfile must be in Base64 encoding and with a maximum length of 87380 characters.")
		}
		userData = string(raw)
	}
	nics := jsonArr(p, "networkProfile", "networkInterfaces")
	if len(nics) != 1 {
		return q.bad("InvalidParameter", "The VM needs exactly one network interface in networkProfile.networkInterfaces.")
	}
	nicID := jsonStr(nics[0], "id")
	nic, why := q.refID(nicID, "microsoft.network/networkinterfaces", id)
	if nic == nil {
		return why
	}
	if nic.Location != b.Location {
		return q.bad("NicNotInSameLocationAsVM", "Network interface "+nicID+" is in "+nic.Location+", the VM in "+b.Location+".")
	}
	if other := q.vmOfNIC(nic.ID); other != "" {
		return q.bad("NicInUse", "Network Interface "+nic.ID+" is used by existing resource "+other+". In order to delete the network interface, it must be dissociated from the resource.")
	}
	spot := false
	switch prio := jsonStr(p, "priority"); prio {
	case "", "Regular":
	case "Spot", "Low":
		spot = true
		if ev := jsonStr(p, "evictionPolicy"); ev != "Delete" && ev != "Deallocate" {
			return q.bad("InvalidParameter", "Eviction policy must be Delete or Deallocate for Spot VMs.")
		}
		if mp, ok := jsonNum(p, "billingProfile", "maxPrice"); !ok || mp != -1 && mp <= 0 {
			return q.bad("InvalidParameter", "billingProfile.maxPrice must be -1 or a positive price for Spot VMs.")
		}
		if size.spot == 0 {
			q.fail(http.StatusConflict, "SkuNotAvailable", fmt.Sprintf("The requested VM size %s is not available for Spot VMs in location '%s'.", size.name, b.Location))
			return ""
		}
	default:
		return q.bad("InvalidParameter", "The value "+prio+" of parameter priority is not valid.")
	}
	if b.Identity != nil {
		if jsonStr(b.Identity, "type") != "UserAssigned" {
			return q.bad("InvalidIdentityType", "Identity type "+jsonStr(b.Identity, "type")+" is not supported here.")
		}
		for idID := range jsonObj(b.Identity, "userAssignedIdentities") {
			if q.get(idID) == nil {
				q.fail(http.StatusBadRequest, "FailedIdentityOperation", "Identity operation for resource '"+id+"' failed with error 'Failed to perform resource identity operation. Status: 'NotFound'. Response: '{\"error\":{\"code\":\"NotFound\",\"message\":\"Resource '"+idID+"' was not found.\"}}''.")
				return ""
			}
		}
	}
	diskName := jsonStr(osDisk, "name")
	if diskName == "" {
		diskName = name + "_OsDisk_1"
	}
	diskID := azResID(q.sub, rg, "microsoft.compute/disks", diskName)
	osDisk["managedDisk"] = mergeMap(jsonObj(osDisk, "managedDisk"), map[string]any{"id": diskID})
	osDisk["osType"] = "Linux"
	res.Props = p
	q.w.mu.Lock()
	q.w.res[strings.ToLower(diskID)] = &azRes{ID: diskID, Type: "microsoft.compute/disks", Name: diskName, Location: b.Location, Tags: b.Tags,
		Props: map[string]any{"diskSizeGB": diskGB, "osType": "Linux"}, Created: time.Now()}
	q.w.mu.Unlock()
	op := &azOp{}
	if size.allocFailsIn == b.Location {
		res.FailCode = "AllocationFailed"
		res.FailMsg = "Allocation failed. We do not have sufficient capacity for the requested VM size in this region. Read more about improving likelihood of allocation success at http://aka.ms/allocation-guidance"
		op.failCode, op.failMsg = res.FailCode, res.FailMsg
	} else {
		var tags []string
		for _, k := range sortedTagKeys(b.Tags) {
			tags = append(tags, k+"="+b.Tags[k])
		}
		m := &Machine{ID: id, Name: name, Type: size.name, Region: b.Location, Spot: spot, Price: azPrice(*size, b.Location, spot),
			GPUs: size.gpus, Image: image, UserData: userData, SSHKeys: keys, Tags: tags,
			Extra: map[string]any{"resource_group": rg, "nic": nic.ID, "admin_username": user, "os_disk_gb": diskGB}}
		if b.Identity != nil {
			m.Extra["identity"] = b.Identity
		}
		if ck := cloudConfigKeys(userData); len(ck) > 0 {
			m.Extra["public_key"] = ck[0]
		} else {
			m.Extra["public_key"] = keys[0] // without cloud-init keys, the osProfile's are the machine's
		}
		q.s.launch(m)
		res.Machine = m.ID
		op.machine = m.ID
	}
	q.w.mu.Lock()
	q.w.res[strings.ToLower(id)] = res
	q.w.mu.Unlock()
	out := q.render(res, false)
	out["properties"].(map[string]any)["provisioningState"] = "Creating"
	q.created(true, out, "Microsoft.Compute", b.Location, op)
	return ""
}

func mergeMap(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func azSizeNames(loc string) []string {
	var out []string
	for _, z := range azSizes {
		if z.offeredIn(loc) {
			out = append(out, z.name)
		}
	}
	return out
}

func (q *armReq) delete(typ, id string) string {
	q.w.mu.Lock()
	res := q.w.res[strings.ToLower(id)]
	if res == nil {
		q.w.mu.Unlock()
		q.rw.WriteHeader(http.StatusNoContent)
		return ""
	}
	q.w.mu.Unlock()
	ns := "Microsoft.Network"
	switch typ {
	case "microsoft.network/networkinterfaces":
		if vm := q.vmOfNIC(res.ID); vm != "" {
			q.fail(http.StatusBadRequest, "NicInUse", "Network Interface "+res.ID+" is used by existing resource "+vm+". In order to delete the network interface, it must be dissociated from the resource.")
			return ""
		}
	case "microsoft.network/publicipaddresses":
		if nic := q.nicOfPIP(res.ID); nic != "" {
			q.fail(http.StatusBadRequest, "PublicIPAddressCannotBeDeleted", "Public IP address "+res.ID+" can not be deleted since it is still allocated to resource "+nic+"/ipConfigurations/ipconfig.")
			return ""
		}
	case "microsoft.compute/disks":
		ns = "Microsoft.Compute"
		q.w.mu.Lock()
		for _, r := range q.w.res {
			if r.Type == "microsoft.compute/virtualmachines" && strings.EqualFold(jsonStr(r.Props, "storageProfile", "osDisk", "managedDisk", "id"), res.ID) {
				q.w.mu.Unlock()
				q.fail(http.StatusConflict, "OperationNotAllowed", "Disk "+res.Name+" is attached to VM "+r.ID+".")
				return ""
			}
		}
		q.w.mu.Unlock()
	case "microsoft.compute/virtualmachines":
		ns = "Microsoft.Compute"
		if res.Machine != "" {
			q.s.terminate(res.Machine)
		}
		q.w.mu.Lock()
		q.w.deleteVM(res)
		q.w.mu.Unlock()
		q.deleted(ns, res.Location)
		return ""
	}
	q.w.mu.Lock()
	delete(q.w.res, strings.ToLower(id))
	q.w.mu.Unlock()
	q.deleted(ns, res.Location)
	return ""
}

func (q *armReq) listVMs(loc string) string {
	if q.r.Method != http.MethodGet {
		return q.methodNotAllowed()
	}
	if f := q.r.URL.Query().Get("$filter"); f != "" {
		return q.bad("InvalidParameter", "The $filter '"+f+"' is not supported by this simulation.")
	}
	q.w.mu.Lock()
	var vms []*azRes
	prefix := strings.ToLower("/subscriptions/" + q.sub + "/")
	for k, r := range q.w.res {
		if r.Type == "microsoft.compute/virtualmachines" && strings.HasPrefix(k, prefix) && (loc == "" || r.Location == loc) {
			vms = append(vms, r)
		}
	}
	q.w.mu.Unlock()
	sort.Slice(vms, func(i, j int) bool { return vms[i].Created.Before(vms[j].Created) })
	// Two VMs a page, so that clients follow nextLink.
	start := 0
	if t := q.r.URL.Query().Get("$skiptoken"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 || n > len(vms) {
			return q.bad("InvalidSkipToken", "The skip token '"+t+"' is not valid.")
		}
		start = n
	}
	end := min(start+2, len(vms))
	value := []any{}
	for _, vm := range vms[start:end] {
		value = append(value, q.render(vm, false))
	}
	out := map[string]any{"value": value}
	if end < len(vms) {
		u := *q.r.URL
		qs := u.Query()
		qs.Set("$skiptoken", strconv.Itoa(end))
		u.RawQuery = qs.Encode()
		out["nextLink"] = q.base + u.RequestURI()
	}
	writeJSON(q.rw, http.StatusOK, out)
	return ""
}

// AzureResources lists the ARM resources of the simulation (resource groups, networks, NICs,
// public IPs, disks, VMs), as lower-case ids mapped to their tags, for tests that check what the
// backend created and cleaned up.
func (s *Sim) AzureResources() map[string]map[string]string {
	w := azState(s)
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]map[string]string{}
	for id, r := range w.res {
		if r.preseeded {
			continue
		}
		tags := map[string]string{}
		for k, v := range r.Tags {
			tags[k] = v
		}
		out[id] = tags
	}
	return out
}
