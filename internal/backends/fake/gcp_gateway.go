package fake

import (
	"net/http"
	"sort"
	"strings"
)

// What the GCP simulation has for gateways: the shared-core machine types they run on, which the
// catalog leaves out (they carry no GPU and are no job's offer) and every zone sells, except that
// us-central1-a has no e2-small capacity (ZONE_RESOURCE_POOL_EXHAUSTED, as a stockout of shared-core
// machines shows); and firewalls.list, where a Shared VPC's rules are looked up.

// gcpSmallTypes are the shared-core machine types, sold in every zone.
var gcpSmallTypes = []gcpType{
	{name: "e2-micro", cpu: 2, mem: 1, price: 0.0084},
	{name: "e2-small", cpu: 2, mem: 2, price: 0.0168},
	{name: "e2-medium", cpu: 2, mem: 4, price: 0.0335},
}

// gcpExhausted are the zones where a machine type has no capacity.
var gcpExhausted = map[string][]string{"e2-small": {"us-central1-a"}}

// gcpSmallType is the shared-core machine type name in a known zone, nil when there is none (they
// take no accelerators).
func gcpSmallType(name, accel, zone string) *gcpType {
	if accel != "" || gcpRegionOf(zone) == "" {
		return nil
	}
	for i := range gcpSmallTypes {
		if gcpSmallTypes[i].name == name {
			t := gcpSmallTypes[i]
			t.zones = []string{zone}
			return &t
		}
	}
	return nil
}

func (q *gcpReq) firewallJSON(f gcpFirewall) map[string]any {
	return map[string]any{"kind": "compute#firewall", "id": f.NumID, "name": f.Name, "network": f.Network, "direction": f.Direction,
		"priority": 1000, "allowed": f.Allowed, "sourceRanges": f.SourceRanges, "targetTags": f.TargetTags, "disabled": false,
		"creationTimestamp": f.Created.Format("2006-01-02T15:04:05.000-07:00"), "selfLink": gcpSelfBase + "projects/" + q.project + "/global/firewalls/" + f.Name}
}

// gcpListFirewalls serves firewalls.list: every rule of the project, by name, on one page.
func gcpListFirewalls(q *gcpReq) string {
	if f := q.r.URL.Query().Get("filter"); f != "" {
		return q.bad("Invalid list filter expression '" + f + "'. The simulation lists firewalls without a filter.")
	}
	var rules []gcpFirewall
	for key, v := range q.s.Objects("gcp-firewalls") {
		if strings.HasPrefix(key, q.project+"/") {
			rules = append(rules, v.(gcpFirewall))
		}
	}
	sort.Slice(rules, func(i, j int) bool { return rules[i].Name < rules[j].Name })
	items := []any{}
	for _, f := range rules {
		items = append(items, q.firewallJSON(f))
	}
	writeJSON(q.w, http.StatusOK, map[string]any{"kind": "compute#firewallList", "id": "projects/" + q.project + "/global/firewalls",
		"items": items, "selfLink": gcpSelfBase + "projects/" + q.project + "/global/firewalls"})
	return ""
}
