package fake

import (
	"crypto"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Oracle Cloud Infrastructure: the Identity and Core Services REST APIs (version 20160918) as the
// OCI Go SDK calls them. Every request reaches the one URL of DSTACK_OCI_API_URL and names its
// service and region in its Host header, as it does on OCI: identity.<region>.oci.oraclecloud.com
// for Identity (regionSubscriptions, availabilityDomains, compartments),
// iaas.<region>.oraclecloud.com for Core (shapes, images, instances, vnicAttachments, vnics, vcns,
// internetGateways, routeTables, securityLists, subnets). Bodies are camelCase JSON; every answer
// carries opc-request-id; lists page with limit, page and opc-next-page (pages of ociPageSize
// unless limit says otherwise); errors are {"code","message"}: NotAuthenticated 401,
// NotAuthorizedOrNotFound 404, InvalidParameter and MissingParameter 400, LimitExceeded 400,
// Conflict/IncorrectState 409, TooManyRequests 429, InternalError 500 ("Out of host capacity."
// for launches without capacity).
//
// Authentication is OCI's HTTP signature (draft-cavage): Authorization: Signature version="1",
// keyId="<tenancy>/<user>/<fingerprint>", algorithm="rsa-sha256", headers="date (request-target)
// host" plus "x-content-sha256 content-type content-length" on bodies, signature=base64. The
// headers list, the Date (within 5 minutes) and the body digest must be right (a miss otherwise);
// a keyId part or region containing "invalid" is refused with 401 NotAuthenticated. Strict auth
// accepts only the Good config's tenancy, user and fingerprint, and verifies the signature with
// the public half of the Good config's key (generated at init); Lenient auth verifies signatures
// of that fingerprint and accepts other keys unverified.
//
// The world: the seed example's compartment ocid1.compartment.oc1..aaaaaaaa exists in every
// tenancy. The tenancy subscribes to eu-frankfurt-1 (home), us-ashburn-1, uk-london-1 and
// ap-tokyo-1. Frankfurt and Ashburn have three availability domains, London and Tokyo one. The
// shapes (ociShapes) are listed per AD: VM.GPU.A10.1 in Frankfurt AD-1 and AD-2 (AD-1 has no host
// capacity), Ashburn AD-2 and AD-3 and London; VM.GPU2.1 in Ashburn AD-1 only (not in
// Frankfurt); BM.GPU.A100-v2.8 in Ashburn AD-3, where its service limit is 0 (LimitExceeded);
// VM.Standard.E4.Flex everywhere. Preemptible capacity exists for VM.Standard.E4.Flex and
// VM.GPU.A10.1. Images: Canonical Ubuntu 22.04 (two builds), 22.04 aarch64 (Ampere shapes only),
// 24.04 and Oracle Linux 8 in every region.
//
// Instances are PROVISIONING until they boot, then RUNNING with a primary VNIC (public and private
// IP); terminated ones are TERMINATED and stay visible; terminating one again is 409
// IncorrectState. LaunchInstance honours opc-retry-token.

const (
	ociVersion  = "/20160918"
	ociPageSize = 3
	ociHome     = "eu-frankfurt-1"
	ociADPrefix = "Simx"
)

var (
	ociTenancy = "ocid1.tenancy.oc1..aaaaaaaasimtenancy4dstackgo7xyzq3t6n2b5d7f"
	ociUser    = "ocid1.user.oc1..aaaaaaaasimuser4dstackgo7xyzq3t6n2b5d7fk2m4"
	ociBadUser = "ocid1.user.oc1..aaaaaaaasimbaduser4dstackgo7xyzq3t6n2b5d7f"

	// ociDocsCompartment is the compartment_id of the seed's example.
	ociDocsCompartment = "ocid1.compartment.oc1..aaaaaaaa"

	ociGoodKey, ociBadKey *rsa.PrivateKey
	ociGoodPEM, ociBadPEM string
	ociGoodFP, ociBadFP   string
)

// ociSubscribed are the tenancy's regions and their availability domain counts.
var ociSubscribed = []struct {
	name, key string
	ads       int
}{{"eu-frankfurt-1", "FRA", 3}, {"us-ashburn-1", "IAD", 3}, {"uk-london-1", "LHR", 1}, {"ap-tokyo-1", "NRT", 1}}

func ociADs(region string) []string {
	for _, r := range ociSubscribed {
		if r.name == region {
			var out []string
			for i := 1; i <= r.ads; i++ {
				out = append(out, fmt.Sprintf("%s:%s-AD-%d", ociADPrefix, strings.ToUpper(region), i))
			}
			return out
		}
	}
	return nil
}

// ociShape is a shape the simulation sells: where ADs list it (region -> AD numbers), where they
// have no host capacity, and where its service limit is 0.
type ociShape struct {
	name           string
	cpus, memGB    int
	gpus           int
	gpuName        string
	gpuMem         float64
	price, spot    float64
	flex, arm      bool
	listed         map[string][]int
	noCapacity     map[string][]int
	limitExceeded  map[string][]int
	processorDescr string
}

var ociShapes = []ociShape{
	{name: "VM.Standard.E4.Flex", cpus: 2, memGB: 16, price: 0.054, spot: 0.027, flex: true, processorDescr: "2.55 GHz AMD EPYC 7J13",
		listed: map[string][]int{"eu-frankfurt-1": {1, 2, 3}, "us-ashburn-1": {1, 2, 3}, "uk-london-1": {1}, "ap-tokyo-1": {1}}},
	{name: "VM.Standard.A1.Flex", cpus: 2, memGB: 12, price: 0.02, arm: true, flex: true, processorDescr: "3.0 GHz Ampere Altra",
		listed: map[string][]int{"eu-frankfurt-1": {1, 2, 3}, "us-ashburn-1": {1, 2, 3}}},
	{name: "VM.GPU2.1", cpus: 24, memGB: 72, gpus: 1, gpuName: "P100", gpuMem: 16, price: 1.275, processorDescr: "2.0 GHz Intel Xeon Platinum 8167M",
		listed: map[string][]int{"us-ashburn-1": {1}}},
	{name: "VM.GPU.A10.1", cpus: 30, memGB: 240, gpus: 1, gpuName: "A10", gpuMem: 24, price: 2, spot: 1, processorDescr: "2.6 GHz Intel Xeon Platinum 8358",
		listed:     map[string][]int{"eu-frankfurt-1": {1, 2}, "us-ashburn-1": {2, 3}, "uk-london-1": {1}},
		noCapacity: map[string][]int{"eu-frankfurt-1": {1}}},
	{name: "BM.GPU.A100-v2.8", cpus: 256, memGB: 2048, gpus: 8, gpuName: "A100", gpuMem: 80, price: 32, processorDescr: "2.55 GHz AMD EPYC 7J13",
		listed: map[string][]int{"us-ashburn-1": {3}}, limitExceeded: map[string][]int{"us-ashburn-1": {3}}},
}

// ociCatalogRegions are where the catalog sells each shape (a superset of where ADs list it).
var ociCatalogRegions = map[string][]string{
	"VM.Standard.E4.Flex": {"eu-frankfurt-1", "us-ashburn-1", "uk-london-1", "us-phoenix-1"},
	"VM.GPU2.1":           {"eu-frankfurt-1", "us-ashburn-1"},
	"VM.GPU.A10.1":        {"eu-frankfurt-1", "us-ashburn-1", "uk-london-1"},
	"BM.GPU.A100-v2.8":    {"us-ashburn-1"},
}

func ociShapeByName(name string) *ociShape {
	for i := range ociShapes {
		if ociShapes[i].name == name {
			return &ociShapes[i]
		}
	}
	return nil
}

// adIndex is the number of an AD name of a region (1-based), 0 when it is not one of its ADs.
func adIndex(region, ad string) int {
	for i, a := range ociADs(region) {
		if a == ad {
			return i + 1
		}
	}
	return 0
}

func ociCatalog() []catalogRow {
	var rows []catalogRow
	for _, sh := range ociShapes {
		for _, r := range ociCatalogRegions[sh.name] {
			row := catalogRow{name: sh.name, location: r, price: sh.price, cpu: sh.cpus, memory: sh.memGB, gpus: sh.gpus,
				gpuName: sh.gpuName, gpuMem: sh.gpuMem}
			rows = append(rows, row)
			if sh.spot > 0 {
				row.price, row.spot = sh.spot, true
				rows = append(rows, row)
			}
		}
	}
	return rows
}

type ociImage struct {
	name, os, version, created string
	arm                        bool
}

var ociImages = []ociImage{
	{"Canonical-Ubuntu-22.04-2025.01.31-0", "Canonical Ubuntu", "22.04", "2025-02-03T10:00:00.000Z", false},
	{"Canonical-Ubuntu-22.04-2024.10.04-0", "Canonical Ubuntu", "22.04", "2024-10-07T10:00:00.000Z", false},
	{"Canonical-Ubuntu-22.04-aarch64-2025.01.31-0", "Canonical Ubuntu", "22.04", "2025-02-03T11:00:00.000Z", true},
	{"Canonical-Ubuntu-24.04-2025.02.01-0", "Canonical Ubuntu", "24.04", "2025-02-04T10:00:00.000Z", false},
	{"Oracle-Linux-8.10-2025.01.31-0", "Oracle Linux", "8", "2025-02-03T09:00:00.000Z", false},
}

func ociImageID(region string, im ociImage) string { return ociOCID("image", region, im.name) }

// ociOCID is a stable OCID of a regional resource derived from parts.
func ociOCID(kind, region string, parts ...string) string {
	sum := sha256.Sum256([]byte(kind + "/" + region + "/" + strings.Join(parts, "/")))
	return "ocid1." + kind + ".oc1." + region + ".aaaaaaaa" + hex.EncodeToString(sum[:])[:40]
}

func init() {
	ociGoodKey, ociGoodPEM, ociGoodFP = ociNewKey()
	ociBadKey, ociBadPEM, ociBadFP = ociNewKey()
	creds := func(user, key, fp string) map[string]any {
		return map[string]any{"type": "client", "user": user, "tenancy": ociTenancy, "region": ociHome, "fingerprint": fp, "key_content": key}
	}
	register("oci", &provider{
		prefix: "",
		// The home region holds the identity calls; machines go to Ashburn, so that errors about
		// them never spell the creds' region.
		good: map[string]any{"regions": []any{"us-ashburn-1"}, "creds": creds(ociUser, ociGoodPEM, ociGoodFP)},
		bad:  map[string]any{"regions": []any{"us-ashburn-1"}, "creds": creds(ociBadUser, ociBadPEM, ociBadFP)},
		capacity: func(w http.ResponseWriter) {
			ociErr(w, http.StatusInternalServerError, "InternalError", "Out of host capacity.")
		},
		failure: func(w http.ResponseWriter, _ *http.Request, kind string) {
			switch kind {
			case FaultThrottle:
				ociErr(w, http.StatusTooManyRequests, "TooManyRequests", "Too many requests for the user")
			case FaultTimeout:
				ociErr(w, http.StatusGatewayTimeout, "GatewayTimeout", "The request timed out.")
			default:
				ociErr(w, http.StatusInternalServerError, "InternalServerError", "Internal error occurred")
			}
		},
		notFound: func(w http.ResponseWriter) {
			ociErr(w, http.StatusNotFound, "NotAuthorizedOrNotFound", "Authorization failed or requested resource not found.")
		},
		newID:     func(s *Sim, _ int) string { return "ocid1.instance.oc1..aaaaaaaa" + s.hexID(40) },
		catalog:   ociCatalog,
		homeFiles: ociHomeFiles,
		routes: []route{
			{pattern: "GET " + ociVersion + "/tenancies/{tenancyId}/regionSubscriptions", serve: ociHandler("identity", ociRegionSubscriptions)},
			{pattern: "GET " + ociVersion + "/availabilityDomains", serve: ociHandler("identity", ociAvailabilityDomains)},
			{pattern: "GET " + ociVersion + "/compartments", serve: ociHandler("identity", ociListCompartments)},
			{pattern: "POST " + ociVersion + "/compartments", serve: ociHandler("identity", ociCreateCompartment)},
			{pattern: "GET " + ociVersion + "/compartments/{compartmentId}", serve: ociHandler("identity", ociGetCompartment)},
			{pattern: "GET " + ociVersion + "/shapes", serve: ociHandler("iaas", ociListShapes)},
			{pattern: "GET " + ociVersion + "/images", serve: ociHandler("iaas", ociListImages)},
			{pattern: "POST " + ociVersion + "/instances", launch: true, serve: ociHandler("iaas", ociLaunchInstance)},
			{pattern: "GET " + ociVersion + "/instances", serve: ociHandler("iaas", ociListInstances)},
			{pattern: "GET " + ociVersion + "/instances/{instanceId}", serve: ociHandler("iaas", ociGetInstance)},
			{pattern: "DELETE " + ociVersion + "/instances/{instanceId}", serve: ociHandler("iaas", ociTerminateInstance)},
			{pattern: "GET " + ociVersion + "/vnicAttachments", serve: ociHandler("iaas", ociListVnicAttachments)},
			{pattern: "GET " + ociVersion + "/vnics/{vnicId}", serve: ociHandler("iaas", ociGetVnic)},
			{pattern: "GET " + ociVersion + "/vcns", serve: ociHandler("iaas", ociListNet("vcn"))},
			{pattern: "POST " + ociVersion + "/vcns", serve: ociHandler("iaas", ociCreateNet("vcn"))},
			{pattern: "GET " + ociVersion + "/internetGateways", serve: ociHandler("iaas", ociListNet("internetgateway"))},
			{pattern: "POST " + ociVersion + "/internetGateways", serve: ociHandler("iaas", ociCreateNet("internetgateway"))},
			{pattern: "GET " + ociVersion + "/routeTables", serve: ociHandler("iaas", ociListNet("routetable"))},
			{pattern: "POST " + ociVersion + "/routeTables", serve: ociHandler("iaas", ociCreateNet("routetable"))},
			{pattern: "GET " + ociVersion + "/securityLists", serve: ociHandler("iaas", ociListNet("securitylist"))},
			{pattern: "POST " + ociVersion + "/securityLists", serve: ociHandler("iaas", ociCreateNet("securitylist"))},
			{pattern: "GET " + ociVersion + "/subnets", serve: ociHandler("iaas", ociListNet("subnet"))},
			{pattern: "POST " + ociVersion + "/subnets", serve: ociHandler("iaas", ociCreateNet("subnet"))},
		},
	})
}

// ociNewKey makes an API signing key: the key, its PEM and its OCI fingerprint (the MD5 of the
// DER public key, colon-separated hex).
func ociNewKey() (*rsa.PrivateKey, string, string) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic("fake: oci key: " + err.Error())
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	return key, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), ociFingerprint(pub)
}

func ociFingerprint(pubDER []byte) string {
	sum := md5.Sum(pubDER)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = hex.EncodeToString([]byte{b})
	}
	return strings.Join(parts, ":")
}

// ociHomeFiles are ~/.oci/config (profile DEFAULT) and ~/.oci/private_key.pem with the Good key,
// which the seed's examples read: `default` credentials and key_file: ~/.oci/private_key.pem.
func ociHomeFiles(home string) map[string]string {
	key := filepath.Join(home, ".oci", "private_key.pem")
	return map[string]string{
		".oci/config": fmt.Sprintf("[DEFAULT]\nuser=%s\nfingerprint=%s\ntenancy=%s\nregion=%s\nkey_file=%s\n",
			ociUser, ociGoodFP, ociTenancy, ociHome, key),
		".oci/private_key.pem": ociGoodPEM,
	}
}

// ociReq is one request being served.
type ociReq struct {
	s       *Sim
	w       http.ResponseWriter
	r       *http.Request
	st      *ociState
	region  string
	tenancy string // of the signing key
	body    []byte
}

func ociErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("opc-request-id", ociRequestID())
	writeJSON(w, status, map[string]string{"code": code, "message": msg})
}

func ociRequestID() string { return strings.ToUpper(strings.ReplaceAll(newRequestID(), "-", "")) }

func (q *ociReq) fail(status int, code, msg string) { ociErr(q.w, status, code, msg) }

// bad answers a malformed request (400) and returns it as a miss.
func (q *ociReq) bad(code, msg string) string {
	q.fail(http.StatusBadRequest, code, msg)
	return code + ": " + msg
}

func (q *ociReq) notFound(what string) {
	q.fail(http.StatusNotFound, "NotAuthorizedOrNotFound", "Authorization failed or requested resource not found: "+what)
}

func (q *ociReq) ok(status int, v any) {
	q.w.Header().Set("opc-request-id", ociRequestID())
	if status == http.StatusNoContent {
		q.w.WriteHeader(status)
		return
	}
	q.w.Header().Set("etag", q.s.hexID(16))
	writeJSON(q.w, status, v)
}

// page answers one page of a list: limit (default ociPageSize) items from the offset the page
// token holds, with opc-next-page when more follow.
func (q *ociReq) page(items []map[string]any) string {
	limit := ociPageSize
	if l := q.r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return q.bad("InvalidParameter", "limit must be an integer from 1 to 1000")
		}
		limit = n
	}
	start := 0
	if p := q.r.URL.Query().Get("page"); p != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(p, "sim-page-"))
		if err != nil || n < 0 || n > len(items) || !strings.HasPrefix(p, "sim-page-") {
			return q.bad("InvalidParameter", "the page token "+p+" is not one this service gave")
		}
		start = n
	}
	end := min(start+limit, len(items))
	if end < len(items) {
		q.w.Header().Set("opc-next-page", "sim-page-"+strconv.Itoa(end))
	}
	if items == nil {
		items = []map[string]any{}
	}
	q.ok(http.StatusOK, items[start:end])
	return ""
}

// ociHandler checks the service host, the signature and, for bodies, the content type, then serves.
func ociHandler(service string, serve func(q *ociReq) string) func(s *Sim, w http.ResponseWriter, r *http.Request) string {
	return func(s *Sim, w http.ResponseWriter, r *http.Request) string {
		q := &ociReq{s: s, w: w, r: r, st: ociStateOf(s)}
		svc, region := ociHost(r.Host)
		if svc != service {
			q.notFound(r.URL.Path)
			return fmt.Sprintf("Host %s: %s is a call of %s.<region>..., not of %q", r.Host, r.URL.Path, service, svc)
		}
		q.region = region
		body, err := readBody(r)
		if err != nil {
			return q.bad("InvalidParameter", "the body could not be read")
		}
		q.body = body
		if r.Method == http.MethodPost || r.Method == http.MethodPut {
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				return q.bad("InvalidParameter", "Content-Type "+ct+", want application/json")
			}
		}
		if why, ok := ociAuth(q); !ok {
			return why
		}
		return serve(q)
	}
}

// ociHost splits a service host: identity.<region>.oci.oraclecloud.com, iaas.<region>.oraclecloud.com.
func ociHost(host string) (service, region string) {
	if h, _, ok := strings.Cut(host, ":"); ok {
		host = h
	}
	parts := strings.Split(host, ".")
	if len(parts) < 3 {
		return "", ""
	}
	return parts[0], parts[1]
}

// ociAuth verifies the request signature; it answers a refusal itself and returns why when the
// request was malformed.
func ociAuth(q *ociReq) (string, bool) {
	r := q.r
	refuse := func() {
		q.fail(http.StatusUnauthorized, "NotAuthenticated", "The required information to complete authentication was not provided or was incorrect.")
	}
	h := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(h, "Signature ")
	if !ok {
		refuse()
		return "Authorization is not an OCI request signature (Signature version=...)", false
	}
	params := map[string]string{}
	for _, part := range splitSigParams(rest) {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			refuse()
			return "malformed signature parameter " + part, false
		}
		params[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
	}
	if params["version"] != "1" || params["algorithm"] != "rsa-sha256" {
		refuse()
		return fmt.Sprintf("signature version %q algorithm %q, want 1 and rsa-sha256", params["version"], params["algorithm"]), false
	}
	headers := strings.Fields(params["headers"])
	want := []string{"date", "(request-target)", "host"}
	if r.Method == http.MethodPost || r.Method == http.MethodPut {
		want = append(want, "x-content-sha256", "content-type", "content-length")
	}
	for _, w := range want {
		if !contains(headers, w) {
			refuse()
			return "the signature does not cover " + w, false
		}
	}
	date, err := http.ParseTime(r.Header.Get("Date"))
	if err != nil || time.Since(date).Abs() > 5*time.Minute {
		refuse()
		return "Date " + r.Header.Get("Date") + " is missing or more than 5 minutes off", false
	}
	if contains(headers, "x-content-sha256") {
		sum := sha256.Sum256(q.body)
		if r.Header.Get("X-Content-Sha256") != base64.StdEncoding.EncodeToString(sum[:]) {
			refuse()
			return "x-content-sha256 does not match the body", false
		}
		if r.Header.Get("Content-Length") != strconv.Itoa(len(q.body)) {
			refuse()
			return "content-length does not match the body", false
		}
	}
	ids := strings.Split(params["keyId"], "/")
	if len(ids) != 3 || ids[0] == "" || ids[1] == "" || ids[2] == "" {
		refuse()
		return "keyId " + params["keyId"] + " is not <tenancy>/<user>/<fingerprint>", false
	}
	tenancy, user, fp := ids[0], ids[1], ids[2]
	for _, v := range []string{tenancy, user, fp, q.region} {
		if strings.Contains(strings.ToLower(v), "invalid") {
			refuse()
			return "", false
		}
	}
	verify := fp == ociGoodFP
	if q.s.opts.Auth == Strict && (tenancy != ociTenancy || user != ociUser || fp != ociGoodFP) {
		refuse()
		return "", false
	}
	if verify {
		lines := make([]string, len(headers))
		for i, name := range headers {
			var v string
			switch name {
			case "(request-target)":
				v = strings.ToLower(r.Method) + " " + r.RequestURI
			case "host":
				v = r.Host
			default:
				v = r.Header.Get(name)
			}
			lines[i] = name + ": " + v
		}
		sig, err := base64.StdEncoding.DecodeString(params["signature"])
		digest := sha256.Sum256([]byte(strings.Join(lines, "\n")))
		if err != nil || rsa.VerifyPKCS1v15(&ociGoodKey.PublicKey, crypto.SHA256, digest[:], sig) != nil {
			refuse()
			return "", false
		}
	}
	q.tenancy = tenancy
	return "", true
}

// splitSigParams splits k="v",k="v" at the commas outside quotes.
func splitSigParams(s string) []string {
	var out []string
	in, start := false, 0
	for i, c := range s {
		switch {
		case c == '"':
			in = !in
		case c == ',' && !in:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// ociState is what a simulation holds besides machines: compartments, network resources and
// launch retry tokens.
type ociState struct {
	mu      sync.Mutex
	seq     int
	comps   []*ociCompartment
	res     []*ociResource
	tokens  map[string]string // opc-retry-token -> instance id
	vnicsOf map[string]string // vnic id -> instance id
}

type ociCompartment struct {
	id, parent, name, desc string
	tags                   map[string]string
	created                time.Time
}

// ociResource is a network resource: VCN, internet gateway, route table, security list, subnet.
type ociResource struct {
	kind, id, region, compartment, vcn, name string
	tags                                     map[string]string
	fields                                   map[string]any
	created                                  time.Time
}

func ociStateOf(s *Sim) *ociState {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.objects["oci"]["state"].(*ociState); ok {
		return st
	}
	// The compartment of the seed's policy example exists already (in whatever tenancy asks).
	st := &ociState{tokens: map[string]string{}, vnicsOf: map[string]string{}, comps: []*ociCompartment{{id: ociDocsCompartment,
		name: "dstack-compartment", desc: "the seed's example compartment", tags: map[string]string{}, created: time.Now()}}}
	if s.objects["oci"] == nil {
		s.objects["oci"] = map[string]any{}
	}
	s.objects["oci"]["state"] = st
	return st
}

// OCIResources lists the network resources of a simulation by kind (vcn, internetgateway,
// routetable, securitylist, subnet), each as region, display name and freeform tags.
func (s *Sim) OCIResources(kind string) []map[string]any {
	st := ociStateOf(s)
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []map[string]any
	for _, r := range st.res {
		if r.kind == kind {
			out = append(out, map[string]any{"id": r.id, "region": r.region, "displayName": r.name, "freeformTags": copyTags(r.tags),
				"compartmentId": r.compartment})
		}
	}
	return out
}

// OCICompartments lists the compartments created through a simulation, as name -> freeform tags.
func (s *Sim) OCICompartments() map[string]map[string]string {
	st := ociStateOf(s)
	st.mu.Lock()
	defer st.mu.Unlock()
	out := map[string]map[string]string{}
	for _, c := range st.comps {
		if c.id != ociDocsCompartment {
			out[c.name] = copyTags(c.tags)
		}
	}
	return out
}

func copyTags(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func ociTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// compartmentKnown reports whether id is the caller's tenancy or a compartment created in it.
func (q *ociReq) compartmentKnown(id string) bool {
	if id == q.tenancy || q.s.opts.Auth == Lenient && strings.HasPrefix(id, "ocid1.tenancy.") {
		return true
	}
	q.st.mu.Lock()
	defer q.st.mu.Unlock()
	for _, c := range q.st.comps {
		if c.id == id {
			return true
		}
	}
	return false
}

// query returns a required query parameter, or answers 400 and returns the miss.
func (q *ociReq) query(name string) (string, string) {
	v := q.r.URL.Query().Get(name)
	if v == "" {
		return "", q.bad("MissingParameter", "Missing required parameter "+name+".")
	}
	return v, ""
}

// known refuses query parameters the call does not take.
func (q *ociReq) known(names ...string) string {
	for k := range q.r.URL.Query() {
		if !contains(append(names, "limit", "page"), k) {
			return q.bad("InvalidParameter", "Unknown query parameter "+k+".")
		}
	}
	return ""
}

// decode reads the JSON body, refusing keys outside allowed and missing required ones.
func (q *ociReq) decode(required []string, allowed ...string) (map[string]any, string) {
	var body map[string]any
	if err := json.Unmarshal(q.body, &body); err != nil {
		return nil, q.bad("InvalidParameter", "The request body is not valid JSON: "+err.Error())
	}
	for k := range body {
		if !contains(allowed, k) && !contains(required, k) {
			return nil, q.bad("InvalidParameter", "Unknown field "+k+" in the request body.")
		}
	}
	for _, k := range required {
		if v, ok := body[k]; !ok || v == nil || v == "" {
			return nil, q.bad("MissingParameter", "Missing required field "+k+".")
		}
	}
	return body, ""
}

func str(v any) string { s, _ := v.(string); return s }

func tagsOf(v any) (map[string]string, bool) {
	out := map[string]string{}
	if v == nil {
		return out, true
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	for k, x := range m {
		s, ok := x.(string)
		if !ok {
			return nil, false
		}
		out[k] = s
	}
	return out, true
}

// ---- Identity ----

func ociRegionSubscriptions(q *ociReq) string {
	if miss := q.known(); miss != "" {
		return miss
	}
	if q.r.PathValue("tenancyId") != q.tenancy {
		q.notFound("tenancy " + q.r.PathValue("tenancyId"))
		return ""
	}
	var out []map[string]any
	for _, r := range ociSubscribed {
		out = append(out, map[string]any{"regionKey": r.key, "regionName": r.name, "status": "READY", "isHomeRegion": r.name == ociHome})
	}
	q.ok(http.StatusOK, out)
	return ""
}

func ociAvailabilityDomains(q *ociReq) string {
	if miss := q.known("compartmentId"); miss != "" {
		return miss
	}
	comp, miss := q.query("compartmentId")
	if miss != "" {
		return miss
	}
	if !q.compartmentKnown(comp) {
		q.notFound("compartment " + comp)
		return ""
	}
	out := []map[string]any{}
	for _, ad := range ociADs(q.region) {
		out = append(out, map[string]any{"name": ad, "id": ociOCID("availabilitydomain", q.region, ad), "compartmentId": q.tenancy})
	}
	q.ok(http.StatusOK, out)
	return ""
}

func compartmentJSON(c *ociCompartment) map[string]any {
	return map[string]any{"id": c.id, "compartmentId": c.parent, "name": c.name, "description": c.desc, "lifecycleState": "ACTIVE",
		"timeCreated": ociTime(c.created), "freeformTags": c.tags, "definedTags": map[string]any{}}
}

func ociListCompartments(q *ociReq) string {
	if miss := q.known("compartmentId", "name", "lifecycleState", "accessLevel", "compartmentIdInSubtree", "sortBy", "sortOrder"); miss != "" {
		return miss
	}
	parent, miss := q.query("compartmentId")
	if miss != "" {
		return miss
	}
	if !q.compartmentKnown(parent) {
		q.notFound("compartment " + parent)
		return ""
	}
	name, state := q.r.URL.Query().Get("name"), q.r.URL.Query().Get("lifecycleState")
	if state != "" && !contains([]string{"CREATING", "ACTIVE", "INACTIVE", "DELETING", "DELETED"}, state) {
		return q.bad("InvalidParameter", "Invalid lifecycleState "+state)
	}
	q.st.mu.Lock()
	var out []map[string]any
	for _, c := range q.st.comps {
		if c.parent == parent && (name == "" || c.name == name) && (state == "" || state == "ACTIVE") {
			out = append(out, compartmentJSON(c))
		}
	}
	q.st.mu.Unlock()
	return q.page(out)
}

func ociCreateCompartment(q *ociReq) string {
	body, miss := q.decode([]string{"compartmentId", "name", "description"}, "freeformTags", "definedTags")
	if miss != "" {
		return miss
	}
	if q.region != ociHome {
		q.fail(http.StatusForbidden, "NotAllowed", "Please go to your home region "+ociHome+" to execute CREATE, UPDATE and DELETE operations.")
		return ""
	}
	parent := str(body["compartmentId"])
	if !q.compartmentKnown(parent) {
		q.notFound("compartment " + parent)
		return ""
	}
	tags, ok := tagsOf(body["freeformTags"])
	if !ok {
		return q.bad("InvalidParameter", "freeformTags must map strings to strings")
	}
	q.st.mu.Lock()
	defer q.st.mu.Unlock()
	for _, c := range q.st.comps {
		if c.parent == parent && strings.EqualFold(c.name, str(body["name"])) {
			q.fail(http.StatusConflict, "CompartmentAlreadyExists", "A compartment named "+c.name+" already exists in the parent compartment.")
			return ""
		}
	}
	q.st.seq++
	c := &ociCompartment{id: "ocid1.compartment.oc1..aaaaaaaa" + q.s.hexID(40), parent: parent, name: str(body["name"]),
		desc: str(body["description"]), tags: tags, created: time.Now()}
	q.st.comps = append(q.st.comps, c)
	q.ok(http.StatusOK, compartmentJSON(c))
	return ""
}

func ociGetCompartment(q *ociReq) string {
	if miss := q.known(); miss != "" {
		return miss
	}
	id := q.r.PathValue("compartmentId")
	q.st.mu.Lock()
	defer q.st.mu.Unlock()
	for _, c := range q.st.comps {
		if c.id == id {
			q.ok(http.StatusOK, compartmentJSON(c))
			return ""
		}
	}
	if id == q.tenancy {
		q.ok(http.StatusOK, compartmentJSON(&ociCompartment{id: id, name: "root", desc: "the tenancy"}))
		return ""
	}
	q.notFound("compartment " + id)
	return ""
}
