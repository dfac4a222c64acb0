package fake

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"
)

// OCI Core Services: shapes, images, instances, VNICs and the network resources (see oci.go).

func ociListShapes(q *ociReq) string {
	if miss := q.known("compartmentId", "availabilityDomain", "imageId", "shape"); miss != "" {
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
	ad := q.r.URL.Query().Get("availabilityDomain")
	n := 0
	if ad != "" {
		if n = adIndex(q.region, ad); n == 0 {
			return q.bad("InvalidParameter", "Invalid availabilityDomain "+ad+" for region "+q.region)
		}
	}
	var out []map[string]any
	for _, sh := range ociShapes {
		listed := sh.listed[q.region]
		if len(listed) == 0 || n > 0 && !containsInt(listed, n) {
			continue
		}
		if name := q.r.URL.Query().Get("shape"); name != "" && name != sh.name {
			continue
		}
		item := map[string]any{"shape": sh.name, "ocpus": float64(sh.cpus) / 2, "memoryInGBs": sh.memGB, "gpus": sh.gpus,
			"isFlexible": sh.flex, "processorDescription": sh.processorDescr, "billingType": "PAID", "quotaNames": []string{}}
		if sh.arm {
			item["ocpus"] = sh.cpus
		}
		if sh.gpus > 0 {
			item["gpuDescription"] = "NVIDIA " + sh.gpuName
		}
		if sh.flex {
			item["ocpuOptions"] = map[string]any{"min": 1, "max": 64}
			item["memoryOptions"] = map[string]any{"minInGBs": 1, "maxInGBs": 1024, "defaultPerOcpuInGBs": 16}
		}
		out = append(out, item)
	}
	return q.page(out)
}

func containsInt(list []int, n int) bool {
	for _, x := range list {
		if x == n {
			return true
		}
	}
	return false
}

func imageJSON(region string, im ociImage) map[string]any {
	return map[string]any{"id": ociImageID(region, im), "displayName": im.name, "operatingSystem": im.os,
		"operatingSystemVersion": im.version, "lifecycleState": "AVAILABLE", "timeCreated": im.created, "createImageAllowed": true,
		"sizeInMBs": 47694, "billableSizeInGBs": 3, "launchMode": "NATIVE", "listingType": "NONE"}
}

func ociListImages(q *ociReq) string {
	if miss := q.known("compartmentId", "displayName", "operatingSystem", "operatingSystemVersion", "shape", "sortBy", "sortOrder", "lifecycleState"); miss != "" {
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
	v := q.r.URL.Query()
	sortBy, order := v.Get("sortBy"), v.Get("sortOrder")
	if sortBy != "" && sortBy != "TIMECREATED" && sortBy != "DISPLAYNAME" {
		return q.bad("InvalidParameter", "Invalid sortBy "+sortBy)
	}
	if order != "" && order != "ASC" && order != "DESC" {
		return q.bad("InvalidParameter", "Invalid sortOrder "+order)
	}
	if st := v.Get("lifecycleState"); st != "" && !contains([]string{"PROVISIONING", "IMPORTING", "AVAILABLE", "EXPORTING", "DISABLED", "DELETED"}, st) {
		return q.bad("InvalidParameter", "Invalid lifecycleState "+st)
	}
	var shape *ociShape
	if name := v.Get("shape"); name != "" {
		if shape = ociShapeByName(name); shape == nil {
			return q.bad("InvalidParameter", "Unknown shape "+name)
		}
	}
	var list []ociImage
	for _, im := range ociImages {
		if (v.Get("operatingSystem") == "" || v.Get("operatingSystem") == im.os) &&
			(v.Get("operatingSystemVersion") == "" || v.Get("operatingSystemVersion") == im.version) &&
			(v.Get("displayName") == "" || v.Get("displayName") == im.name) &&
			(shape == nil || shape.arm == im.arm) && (v.Get("lifecycleState") == "" || v.Get("lifecycleState") == "AVAILABLE") {
			list = append(list, im)
		}
	}
	sort.SliceStable(list, func(i, j int) bool {
		less := list[i].created > list[j].created // default TIMECREATED DESC
		if sortBy == "DISPLAYNAME" {
			less = list[i].name < list[j].name
			if order == "DESC" {
				less = !less
			}
		} else if order == "ASC" {
			less = !less
		}
		return less
	})
	var out []map[string]any
	for _, im := range list {
		out = append(out, imageJSON(q.region, im))
	}
	return q.page(out)
}

// ociInstance is what the simulation keeps of a launch besides the Machine.
type ociInstance struct {
	AD, Compartment, Shape, Subnet, Image string
	Tags                                  map[string]string
	Preemptible, PreserveBootVolume       bool
	BootGB                                int
	Ocpus, MemGB                          float64
	Vnic, Attachment, DisplayName         string
	Metadata                              map[string]string
}

func ociInstanceOf(m Machine) ociInstance {
	i, _ := m.Extra["oci"].(ociInstance)
	return i
}

func ociLifecycle(m Machine) string {
	switch m.Status {
	case StatusActive:
		return "RUNNING"
	case StatusBooting:
		return "PROVISIONING"
	default:
		return "TERMINATED"
	}
}

func instanceJSON(m Machine) map[string]any {
	i := ociInstanceOf(m)
	out := map[string]any{"id": m.ID, "availabilityDomain": i.AD, "compartmentId": i.Compartment, "displayName": i.DisplayName,
		"lifecycleState": ociLifecycle(m), "region": m.Region, "shape": i.Shape, "timeCreated": ociTime(m.Created),
		"imageId": i.Image, "freeformTags": i.Tags, "definedTags": map[string]any{}, "metadata": i.Metadata,
		"faultDomain": "FAULT-DOMAIN-1", "launchMode": "PARAVIRTUALIZED",
		"sourceDetails": map[string]any{"sourceType": "image", "imageId": i.Image, "bootVolumeSizeInGBs": i.BootGB}}
	if i.Preemptible {
		out["preemptibleInstanceConfig"] = map[string]any{"preemptionAction": map[string]any{"type": "TERMINATE", "preserveBootVolume": false}}
	}
	if i.Ocpus > 0 {
		out["shapeConfig"] = map[string]any{"ocpus": i.Ocpus, "memoryInGBs": i.MemGB}
	}
	return out
}

func ociLaunchInstance(q *ociReq) string {
	body, miss := q.decode([]string{"availabilityDomain", "compartmentId", "shape"}, "displayName", "freeformTags", "definedTags",
		"metadata", "sourceDetails", "createVnicDetails", "shapeConfig", "preemptibleInstanceConfig", "subnetId", "imageId",
		"faultDomain", "hostnameLabel", "agentConfig", "launchOptions", "availabilityConfig", "instanceOptions")
	if miss != "" {
		return miss
	}
	comp, adName, shapeName := str(body["compartmentId"]), str(body["availabilityDomain"]), str(body["shape"])
	if !q.compartmentKnown(comp) {
		q.notFound("compartment " + comp)
		return ""
	}
	ad := adIndex(q.region, adName)
	if ad == 0 {
		return q.bad("InvalidParameter", "Invalid availabilityDomain "+adName+" for region "+q.region)
	}
	shape := ociShapeByName(shapeName)
	if shape == nil {
		return q.bad("InvalidParameter", "Invalid shape "+shapeName)
	}
	if !containsInt(shape.listed[q.region], ad) {
		q.fail(http.StatusBadRequest, "InvalidParameter", fmt.Sprintf("Shape %s is not available in %s.", shapeName, adName))
		return ""
	}
	// The shape config: required on flexible shapes, refused on the others.
	var ocpus, mem float64
	switch sc, ok := body["shapeConfig"].(map[string]any); {
	case shape.flex && !ok:
		return q.bad("InvalidParameter", "Shape "+shapeName+" is a flexible shape: shapeConfig with ocpus and memoryInGBs is required.")
	case !shape.flex && ok:
		return q.bad("InvalidParameter", "Shape "+shapeName+" is not a flexible shape: shapeConfig is not allowed.")
	case ok:
		ocpus, _ = sc["ocpus"].(float64)
		mem, _ = sc["memoryInGBs"].(float64)
		for k := range sc {
			if !contains([]string{"ocpus", "memoryInGBs", "vcpus", "baselineOcpuUtilization", "nvmes"}, k) {
				return q.bad("InvalidParameter", "Unknown field shapeConfig."+k)
			}
		}
		if ocpus < 1 || ocpus > 64 || mem < 1 || mem > 1024 || mem > ocpus*64 {
			return q.bad("InvalidParameter", fmt.Sprintf("shapeConfig ocpus %g memoryInGBs %g is out of the shape's range (1-64 OCPUs, up to 64 GB each)", ocpus, mem))
		}
	}
	// The boot source: an image of this region that runs the shape.
	src, _ := body["sourceDetails"].(map[string]any)
	imageID, bootGB := str(body["imageId"]), 47
	if src != nil {
		if str(src["sourceType"]) != "image" {
			return q.bad("InvalidParameter", "sourceDetails.sourceType must be image or bootVolume; the simulation boots images")
		}
		for k := range src {
			if !contains([]string{"sourceType", "imageId", "bootVolumeSizeInGBs", "kmsKeyId", "bootVolumeVpusPerGB"}, k) {
				return q.bad("InvalidParameter", "Unknown field sourceDetails."+k)
			}
		}
		imageID = str(src["imageId"])
		if gb, ok := src["bootVolumeSizeInGBs"].(float64); ok {
			if gb < 50 || gb > 32768 || gb != float64(int(gb)) {
				return q.bad("InvalidParameter", fmt.Sprintf("bootVolumeSizeInGBs %g must be an integer from 50 to 32768", gb))
			}
			bootGB = int(gb)
		}
	}
	if imageID == "" {
		return q.bad("MissingParameter", "Missing required field sourceDetails.imageId.")
	}
	var image *ociImage
	for i := range ociImages {
		if ociImageID(q.region, ociImages[i]) == imageID {
			image = &ociImages[i]
		}
	}
	if image == nil {
		q.notFound("image " + imageID)
		return ""
	}
	if image.arm != shape.arm {
		q.fail(http.StatusBadRequest, "InvalidParameter", fmt.Sprintf("Shape %s is not compatible with image %s.", shapeName, imageID))
		return ""
	}
	// The VNIC: a subnet of this region in a VCN of the compartment's tenancy.
	vnic, _ := body["createVnicDetails"].(map[string]any)
	subnetID, public := str(body["subnetId"]), true
	if vnic != nil {
		for k := range vnic {
			if !contains([]string{"subnetId", "assignPublicIp", "displayName", "hostnameLabel", "freeformTags", "definedTags", "nsgIds",
				"privateIp", "skipSourceDestCheck", "assignPrivateDnsRecord"}, k) {
				return q.bad("InvalidParameter", "Unknown field createVnicDetails."+k)
			}
		}
		if v := str(vnic["subnetId"]); v != "" {
			subnetID = v
		}
		if b, ok := vnic["assignPublicIp"].(bool); ok {
			public = b
		}
	}
	if subnetID == "" {
		return q.bad("MissingParameter", "Missing required field createVnicDetails.subnetId.")
	}
	subnet := q.resource("subnet", subnetID)
	if subnet == nil {
		q.notFound("subnet " + subnetID)
		return ""
	}
	if public && subnet.fields["prohibitPublicIpOnVnic"] == true {
		return q.bad("InvalidParameter", "The subnet prohibits public IPs on VNICs.")
	}
	// Metadata: SSH keys and base64 cloud-init user data.
	meta := map[string]string{}
	if m, ok := body["metadata"].(map[string]any); ok {
		for k, v := range m {
			s, ok := v.(string)
			if !ok {
				return q.bad("InvalidParameter", "metadata."+k+" must be a string")
			}
			meta[k] = s
		}
	}
	userData := ""
	if ud := meta["user_data"]; ud != "" {
		b, err := base64.StdEncoding.DecodeString(ud)
		if err != nil {
			return q.bad("InvalidParameter", "metadata.user_data must be base64 encoded.")
		}
		if len(ud) > 32000 {
			return q.bad("InvalidParameter", "metadata.user_data is larger than 32000 bytes.")
		}
		userData = string(b)
	}
	tags, ok := tagsOf(body["freeformTags"])
	if !ok {
		return q.bad("InvalidParameter", "freeformTags must map strings to strings")
	}
	preemptible := false
	if pc, ok := body["preemptibleInstanceConfig"].(map[string]any); ok {
		action, _ := pc["preemptionAction"].(map[string]any)
		if str(action["type"]) != "TERMINATE" {
			return q.bad("InvalidParameter", "preemptibleInstanceConfig.preemptionAction.type must be TERMINATE")
		}
		if shape.spot == 0 {
			q.fail(http.StatusBadRequest, "InvalidParameter", "Shape "+shapeName+" does not support preemptible instances.")
			return ""
		}
		preemptible = true
	}

	q.s.launchMu.Lock()
	defer q.s.launchMu.Unlock()
	token := q.r.Header.Get("opc-retry-token")
	if token != "" {
		if len(token) > 64 {
			return q.bad("InvalidParameter", "opc-retry-token is longer than 64 characters")
		}
		q.st.mu.Lock()
		id := q.st.tokens[token]
		q.st.mu.Unlock()
		if m, ok := q.s.snapshot(id); ok {
			q.ok(http.StatusOK, instanceJSON(m))
			return ""
		}
	}
	if containsInt(shape.noCapacity[q.region], ad) {
		q.fail(http.StatusInternalServerError, "InternalError", "Out of host capacity.")
		return ""
	}
	if containsInt(shape.limitExceeded[q.region], ad) {
		q.fail(http.StatusBadRequest, "LimitExceeded", fmt.Sprintf("The following service limits were exceeded: %s-count. Request a service limit increase from the service limits page in the console.",
			strings.ToLower(strings.ReplaceAll(shapeName, ".", "-"))))
		return ""
	}
	price := shape.price
	if preemptible {
		price = shape.spot
	}
	inst := ociInstance{AD: adName, Compartment: comp, Shape: shapeName, Subnet: subnetID, Image: imageID, Tags: tags,
		Preemptible: preemptible, PreserveBootVolume: true, BootGB: bootGB, Ocpus: ocpus, MemGB: mem,
		DisplayName: str(body["displayName"]), Metadata: meta}
	inst.Vnic = ociOCID("vnic", q.region, q.s.hexID(12))
	inst.Attachment = ociOCID("vnicattachment", q.region, inst.Vnic)
	var tagList []string
	for _, k := range sortedTagKeys(tags) {
		tagList = append(tagList, k+"="+tags[k])
	}
	m := &Machine{Name: inst.DisplayName, Type: shapeName, Region: q.region, Spot: preemptible, Price: price, GPUs: shape.gpus,
		Image: imageID, UserData: userData, Tags: tagList, Extra: map[string]any{"oci": inst, "public": public,
			"availability_domain": adName, "boot_volume_gb": bootGB, "ocpus": ocpus, "memory_gb": mem, "preemptible": preemptible}}
	if keys := strings.Split(strings.TrimSpace(meta["ssh_authorized_keys"]), "\n"); meta["ssh_authorized_keys"] != "" {
		m.SSHKeys = keys
		m.Extra["public_key"] = keys[0]
	}
	m.ID = "ocid1.instance.oc1." + q.region + ".anuwcljs" + q.s.hexID(48)
	q.s.launch(m)
	q.st.mu.Lock()
	if token != "" {
		q.st.tokens[token] = m.ID
	}
	q.st.vnicsOf[inst.Vnic] = m.ID
	q.st.mu.Unlock()
	snap, _ := q.s.snapshot(m.ID)
	q.ok(http.StatusOK, instanceJSON(snap))
	return ""
}

// instance returns a machine of this region by id.
func (q *ociReq) instance(id string) (Machine, bool) {
	m, ok := q.s.snapshot(id)
	if !ok || m.Region != q.region || m.Provider != "oci" {
		return Machine{}, false
	}
	return m, true
}

func ociGetInstance(q *ociReq) string {
	if miss := q.known(); miss != "" {
		return miss
	}
	m, ok := q.instance(q.r.PathValue("instanceId"))
	if !ok {
		q.notFound("instance " + q.r.PathValue("instanceId"))
		return ""
	}
	q.ok(http.StatusOK, instanceJSON(m))
	return ""
}

func ociTerminateInstance(q *ociReq) string {
	if miss := q.known("preserveBootVolume", "preserveDataVolumesCreatedAtLaunch"); miss != "" {
		return miss
	}
	preserve := q.r.URL.Query().Get("preserveBootVolume")
	if preserve != "" && preserve != "true" && preserve != "false" {
		return q.bad("InvalidParameter", "preserveBootVolume must be true or false")
	}
	id := q.r.PathValue("instanceId")
	m, ok := q.instance(id)
	if !ok {
		q.notFound("instance " + id)
		return ""
	}
	if m.Status == StatusTerminated {
		q.fail(http.StatusConflict, "IncorrectState", "Instance "+id+" is in TERMINATED state and cannot be terminated.")
		return ""
	}
	q.s.mu.Lock()
	if live := q.s.machines[id]; live != nil {
		i := ociInstanceOf(*live)
		i.PreserveBootVolume = preserve != "false" // OCI keeps the boot volume unless told not to
		live.Extra["oci"] = i
		live.Extra["preserve_boot_volume"] = i.PreserveBootVolume
	}
	q.s.mu.Unlock()
	q.s.terminate(id)
	q.ok(http.StatusNoContent, nil)
	return ""
}

func ociListInstances(q *ociReq) string {
	if miss := q.known("compartmentId", "availabilityDomain", "displayName", "lifecycleState", "sortBy", "sortOrder", "capacityReservationId", "computeClusterId"); miss != "" {
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
	v := q.r.URL.Query()
	var out []map[string]any
	for _, m := range q.s.list(func(m *Machine) bool { return m.Region == q.region && m.Provider == "oci" }) {
		i := ociInstanceOf(m)
		if i.Compartment != comp || v.Get("availabilityDomain") != "" && v.Get("availabilityDomain") != i.AD ||
			v.Get("displayName") != "" && v.Get("displayName") != i.DisplayName ||
			v.Get("lifecycleState") != "" && v.Get("lifecycleState") != ociLifecycle(m) {
			continue
		}
		out = append(out, instanceJSON(m))
	}
	return q.page(out)
}

func ociListVnicAttachments(q *ociReq) string {
	if miss := q.known("compartmentId", "availabilityDomain", "instanceId", "vnicId"); miss != "" {
		return miss
	}
	comp, miss := q.query("compartmentId")
	if miss != "" {
		return miss
	}
	v := q.r.URL.Query()
	var out []map[string]any
	for _, m := range q.s.list(func(m *Machine) bool { return m.Region == q.region && m.Provider == "oci" }) {
		i := ociInstanceOf(m)
		if i.Compartment != comp || v.Get("instanceId") != "" && v.Get("instanceId") != m.ID || v.Get("vnicId") != "" && v.Get("vnicId") != i.Vnic {
			continue
		}
		state := map[string]string{"PROVISIONING": "ATTACHING", "RUNNING": "ATTACHED", "TERMINATED": "DETACHED"}[ociLifecycle(m)]
		out = append(out, map[string]any{"id": i.Attachment, "availabilityDomain": i.AD, "compartmentId": comp, "instanceId": m.ID,
			"lifecycleState": state, "subnetId": i.Subnet, "vnicId": i.Vnic, "nicIndex": 0, "timeCreated": ociTime(m.Created)})
	}
	return q.page(out)
}

func ociGetVnic(q *ociReq) string {
	if miss := q.known(); miss != "" {
		return miss
	}
	id := q.r.PathValue("vnicId")
	q.st.mu.Lock()
	instID := q.st.vnicsOf[id]
	q.st.mu.Unlock()
	m, ok := q.instance(instID)
	if !ok {
		q.notFound("vnic " + id)
		return ""
	}
	i := ociInstanceOf(m)
	state := map[string]string{"PROVISIONING": "PROVISIONING", "RUNNING": "AVAILABLE", "TERMINATED": "TERMINATED"}[ociLifecycle(m)]
	out := map[string]any{"id": id, "availabilityDomain": i.AD, "compartmentId": i.Compartment, "lifecycleState": state,
		"timeCreated": ociTime(m.Created), "displayName": i.DisplayName, "isPrimary": true, "subnetId": i.Subnet,
		"macAddress": "02:00:17:00:00:01", "freeformTags": map[string]string{}}
	if state == "AVAILABLE" {
		out["privateIp"] = m.PrivateIP
		if public, _ := m.Extra["public"].(bool); public {
			out["publicIp"] = m.IP
		}
	}
	q.ok(http.StatusOK, out)
	return ""
}

// ---- Networking ----

// resource returns a network resource of this region by kind and id.
func (q *ociReq) resource(kind, id string) *ociResource {
	q.st.mu.Lock()
	defer q.st.mu.Unlock()
	for _, r := range q.st.res {
		if r.kind == kind && r.id == id && r.region == q.region {
			return r
		}
	}
	return nil
}

func resourceJSON(r *ociResource) map[string]any {
	out := map[string]any{"id": r.id, "compartmentId": r.compartment, "displayName": r.name, "lifecycleState": "AVAILABLE",
		"freeformTags": r.tags, "definedTags": map[string]any{}, "timeCreated": ociTime(r.created)}
	if r.vcn != "" {
		out["vcnId"] = r.vcn
	}
	for k, v := range r.fields {
		out[k] = v
	}
	return out
}

// ociNetCalls are the body fields each network create call takes (required, then optional).
var ociNetCalls = map[string]struct{ required, optional []string }{
	"vcn":             {[]string{"compartmentId"}, []string{"cidrBlock", "cidrBlocks", "displayName", "dnsLabel", "freeformTags", "definedTags", "isIpv6Enabled"}},
	"internetgateway": {[]string{"compartmentId", "vcnId", "isEnabled"}, []string{"displayName", "freeformTags", "definedTags", "routeTableId"}},
	"routetable":      {[]string{"compartmentId", "vcnId", "routeRules"}, []string{"displayName", "freeformTags", "definedTags"}},
	"securitylist":    {[]string{"compartmentId", "vcnId", "egressSecurityRules", "ingressSecurityRules"}, []string{"displayName", "freeformTags", "definedTags"}},
	"subnet":          {[]string{"compartmentId", "vcnId", "cidrBlock"}, []string{"displayName", "freeformTags", "definedTags", "routeTableId", "securityListIds", "prohibitPublicIpOnVnic", "prohibitInternetIngress", "availabilityDomain", "dnsLabel", "dhcpOptionsId"}},
}

func ociCreateNet(kind string) func(q *ociReq) string {
	return func(q *ociReq) string {
		call := ociNetCalls[kind]
		body, miss := q.decode(call.required, call.optional...)
		if miss != "" {
			return miss
		}
		comp := str(body["compartmentId"])
		if !q.compartmentKnown(comp) {
			q.notFound("compartment " + comp)
			return ""
		}
		tags, ok := tagsOf(body["freeformTags"])
		if !ok {
			return q.bad("InvalidParameter", "freeformTags must map strings to strings")
		}
		res := &ociResource{kind: kind, region: q.region, compartment: comp, name: str(body["displayName"]), tags: tags,
			fields: map[string]any{}, created: time.Now()}
		var vcn *ociResource
		if kind != "vcn" {
			res.vcn = str(body["vcnId"])
			if vcn = q.resource("vcn", res.vcn); vcn == nil {
				q.notFound("vcn " + res.vcn)
				return ""
			}
		}
		switch kind {
		case "vcn":
			blocks := []string{}
			if list, ok := body["cidrBlocks"].([]any); ok {
				for _, b := range list {
					blocks = append(blocks, str(b))
				}
			}
			if b := str(body["cidrBlock"]); b != "" {
				blocks = append(blocks, b)
			}
			if len(blocks) == 0 {
				return q.bad("MissingParameter", "One of cidrBlock or cidrBlocks is required.")
			}
			for _, b := range blocks {
				if _, n, err := net.ParseCIDR(b); err != nil || n.String() != b {
					return q.bad("InvalidParameter", "Invalid CIDR block "+b)
				}
			}
			res.fields["cidrBlocks"], res.fields["cidrBlock"] = blocks, blocks[0]
			res.fields["defaultRouteTableId"] = ociOCID("routetable", q.region, "default", q.s.hexID(8))
			res.fields["defaultSecurityListId"] = ociOCID("securitylist", q.region, "default", q.s.hexID(8))
		case "internetgateway":
			res.fields["isEnabled"] = body["isEnabled"]
		case "routetable":
			rules, _ := body["routeRules"].([]any)
			for _, x := range rules {
				rule, _ := x.(map[string]any)
				target := str(rule["networkEntityId"])
				if q.resource("internetgateway", target) == nil {
					q.notFound("network entity " + target)
					return ""
				}
				if dt := str(rule["destinationType"]); dt != "" && dt != "CIDR_BLOCK" && dt != "SERVICE_CIDR_BLOCK" {
					return q.bad("InvalidParameter", "Invalid destinationType "+dt)
				}
				if _, _, err := net.ParseCIDR(str(rule["destination"])); err != nil {
					return q.bad("InvalidParameter", "Invalid route rule destination "+str(rule["destination"]))
				}
			}
			res.fields["routeRules"] = rules
		case "securitylist":
			for _, dir := range []string{"ingressSecurityRules", "egressSecurityRules"} {
				rules, _ := body[dir].([]any)
				for _, x := range rules {
					rule, _ := x.(map[string]any)
					if p := str(rule["protocol"]); p != "all" && p != "6" && p != "17" && p != "1" && p != "58" {
						return q.bad("InvalidParameter", "Invalid protocol "+p+" in "+dir)
					}
				}
				res.fields[dir] = rules
			}
		case "subnet":
			block := str(body["cidrBlock"])
			_, sn, err := net.ParseCIDR(block)
			if err != nil {
				return q.bad("InvalidParameter", "Invalid CIDR block "+block)
			}
			inside := false
			for _, b := range vcn.fields["cidrBlocks"].([]string) {
				if _, vn, err := net.ParseCIDR(b); err == nil && vn.Contains(sn.IP) {
					inside = true
				}
			}
			if !inside {
				return q.bad("InvalidParameter", "The subnet's CIDR block "+block+" is not within the VCN's CIDR blocks.")
			}
			if rt := str(body["routeTableId"]); rt != "" && q.resource("routetable", rt) == nil {
				q.notFound("route table " + rt)
				return ""
			}
			ids, _ := body["securityListIds"].([]any)
			for _, id := range ids {
				if q.resource("securitylist", str(id)) == nil {
					q.notFound("security list " + str(id))
					return ""
				}
			}
			for _, k := range []string{"routeTableId", "securityListIds", "prohibitPublicIpOnVnic", "availabilityDomain"} {
				if v, ok := body[k]; ok {
					res.fields[k] = v
				}
			}
			res.fields["cidrBlock"] = block
		}
		res.id = ociOCID(kind, q.region, q.s.hexID(16))
		q.st.mu.Lock()
		q.st.res = append(q.st.res, res)
		q.st.mu.Unlock()
		q.ok(http.StatusOK, resourceJSON(res))
		return ""
	}
}

func ociListNet(kind string) func(q *ociReq) string {
	return func(q *ociReq) string {
		params := []string{"compartmentId", "displayName", "lifecycleState", "sortBy", "sortOrder"}
		if kind != "vcn" {
			params = append(params, "vcnId")
		}
		if miss := q.known(params...); miss != "" {
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
		v := q.r.URL.Query()
		if st := v.Get("lifecycleState"); st != "" && !contains([]string{"PROVISIONING", "AVAILABLE", "TERMINATING", "TERMINATED", "UPDATING"}, st) {
			return q.bad("InvalidParameter", "Invalid lifecycleState "+st)
		}
		var out []map[string]any
		q.st.mu.Lock()
		for _, r := range q.st.res {
			if r.kind != kind || r.region != q.region || r.compartment != comp || v.Get("vcnId") != "" && v.Get("vcnId") != r.vcn ||
				v.Get("displayName") != "" && v.Get("displayName") != r.name ||
				v.Get("lifecycleState") != "" && v.Get("lifecycleState") != "AVAILABLE" {
				continue
			}
			out = append(out, resourceJSON(r))
		}
		q.st.mu.Unlock()
		return q.page(out)
	}
}
