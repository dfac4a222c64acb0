package ui

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// The offers page asks the API for the plan of a dummy task with the filter's requirements, exactly as
// `dstack offer` does (internal/cli/offer.go), and shows the first job's offers: cheapest first, as
// the server sorts them.

type offerJSON struct {
	Backend           string           `json:"backend"`
	Region            string           `json:"region"`
	Instance          instanceTypeJSON `json:"instance"`
	Price             float64          `json:"price"`
	Availability      string           `json:"availability"`
	AvailabilityZones []string         `json:"availability_zones"`
}

// AvailabilityText is the availability in words, "" when the provider does not say.
func (o offerJSON) AvailabilityText() string {
	switch o.Availability {
	case "available":
		return "available"
	case "not_available":
		return "not available"
	case "no_quota":
		return "no quota"
	case "idle":
		return "idle fleet instance"
	case "busy":
		return "busy fleet instance"
	}
	return ""
}

type backendNoteJSON struct {
	Backend string `json:"backend"`
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

type planJSON struct {
	JobPlans []struct {
		Offers      []offerJSON       `json:"offers"`
		TotalOffers int               `json:"total_offers"`
		MaxPrice    *float64          `json:"max_price"`
		Notes       []backendNoteJSON `json:"notes"`
		Explanation string            `json:"explanation"`
	} `json:"job_plans"`
}

// offerFilter is the filter form, as the query string carries it.
type offerFilter struct {
	GPU, Count, GPUMemory, Spot, MaxPrice, Backend, Region string
	Limit                                                  int
}

var offerLimits = []int{20, 50, 100, 500}

func readOfferFilter(q url.Values) offerFilter {
	f := offerFilter{
		GPU: strings.TrimSpace(q.Get("gpu")), Count: strings.TrimSpace(q.Get("count")),
		GPUMemory: strings.TrimSpace(q.Get("gpu_memory")), Spot: q.Get("spot"),
		MaxPrice: strings.TrimSpace(q.Get("max_price")), Backend: q.Get("backend"), Region: strings.TrimSpace(q.Get("region")),
		Limit: 50,
	}
	if f.Spot != "spot" && f.Spot != "on-demand" {
		f.Spot = "any"
	}
	if n, err := strconv.Atoi(q.Get("limit")); err == nil {
		for _, l := range offerLimits {
			if n == l {
				f.Limit = n
			}
		}
	}
	return f
}

// GPUSpec joins the GPU fields into dstack's spec string: name, memory and count, e.g. A100:80GB:2.
func (f offerFilter) GPUSpec() string {
	var parts []string
	for _, p := range []string{f.GPU, f.GPUMemory, f.Count} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, ":")
}

// Active tells whether any filter is set (for the "clear" link).
func (f offerFilter) Active() bool {
	return f.GPU != "" || f.Count != "" || f.GPUMemory != "" || f.Spot != "any" || f.MaxPrice != "" || f.Backend != "" || f.Region != ""
}

// runSpec is the dummy task `dstack offer` plans.
func (f offerFilter) runSpec() (map[string]any, *APIError) {
	res := map[string]any{}
	if g := f.GPUSpec(); g != "" {
		res["gpu"] = g
	}
	policy := map[string]string{"any": "auto", "spot": "spot", "on-demand": "on-demand"}[f.Spot]
	conf := map[string]any{"type": "task", "commands": []string{":"}, "image": "scratch", "user": "root",
		"resources": res, "spot_policy": policy}
	profile := map[string]any{"name": "default", "spot_policy": policy}
	if f.Backend != "" {
		conf["backends"] = []string{f.Backend}
		profile["backends"] = []string{f.Backend}
	}
	if rs := splitList(f.Region); len(rs) > 0 {
		conf["regions"] = rs
		profile["regions"] = rs
	}
	if f.MaxPrice != "" {
		p, err := strconv.ParseFloat(f.MaxPrice, 64)
		if err != nil || p <= 0 {
			return nil, &APIError{Status: http.StatusBadRequest, Items: []ErrorItem{{Path: "max_price",
				Msg: "Enter the most to pay per hour in USD, a number above 0, such as 2.5."}}}
		}
		conf["max_price"] = p
		profile["max_price"] = p
	}
	return map[string]any{"configuration": conf, "profile": profile}, nil
}

type offersData struct {
	P        *projectJSON
	F        offerFilter
	Limits   []int
	Backends []string
	Asked    bool // whether the API answered with a plan
	Offers   []offerJSON
	Total    int
	MaxPrice *float64
	Notes    []backendNoteJSON
	Explain  string
	MinPrice float64
}

func (c *ctx) offersPage() {
	p, ok := c.loadProject()
	if !ok {
		return
	}
	d := offersData{P: p, F: readOfferFilter(c.r.URL.Query()), Limits: offerLimits}
	for _, b := range p.Backends {
		d.Backends = append(d.Backends, b.Name)
	}
	sort.Strings(d.Backends)
	v := c.projectView(p, "offers", "Offers")
	v.D = &d
	spec, e := d.F.runSpec()
	if e == nil {
		var plan planJSON
		e = c.call("/api/project/"+url.PathEscape(p.ProjectName)+"/runs/get_plan",
			map[string]any{"run_spec": spec, "max_offers": d.F.Limit}, &plan)
		if e == nil && len(plan.JobPlans) == 0 {
			e = &APIError{Status: http.StatusBadGateway, Items: []ErrorItem{{Msg: "The server returned a plan without jobs."}}}
		}
		if e == nil {
			jp := plan.JobPlans[0]
			d.Asked, d.Offers, d.Total, d.MaxPrice, d.Notes, d.Explain = true, jp.Offers, jp.TotalOffers, jp.MaxPrice, jp.Notes, jp.Explanation
			for i, o := range d.Offers {
				if i == 0 || o.Price < d.MinPrice {
					d.MinPrice = o.Price
				}
			}
		}
	}
	v.Err = e
	c.render(0, "offers", v)
}
