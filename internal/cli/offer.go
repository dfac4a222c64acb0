package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dstackgo/dstack/internal/offers"
)

// planResponse is the part of dstack's RunPlan that `dstack offer` reads, plus this server's notes on
// backends that were left out and why nothing matched.
type planResponse struct {
	ProjectName string `json:"project_name"`
	User        string `json:"user"`
	JobPlans    []struct {
		Offers      []offers.Offer       `json:"offers"`
		TotalOffers int                  `json:"total_offers"`
		MaxPrice    *float64             `json:"max_price"`
		Notes       []offers.BackendNote `json:"notes"`
		Explanation string               `json:"explanation"`
	} `json:"job_plans"`
}

func newOfferCmd() *cobra.Command {
	var (
		project, gpu, cpu, memory, disk, spotPolicy string
		backendsF, regions, instanceTypes, groupBy  []string
		spot, onDemand, spotAuto, asJSON            bool
		maxPrice                                    float64
		maxOffers                                   int
	)
	cmd := &cobra.Command{
		Use:   "offer",
		Short: "List the offers of the project's backends that match the requirements, cheapest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			policy, err := pickSpotPolicy(spotPolicy, spot, onDemand, spotAuto)
			if err != nil {
				return err
			}
			res := map[string]any{}
			for k, v := range map[string]string{"gpu": gpu, "cpu": cpu, "memory": memory, "disk": disk} {
				if v != "" {
					res[k] = v
				}
			}
			profile := map[string]any{"name": "default", "spot_policy": policy}
			conf := map[string]any{"type": "task", "commands": []string{":"}, "image": "scratch", "user": "root", "resources": res, "spot_policy": policy}
			for k, v := range map[string][]string{"backends": backendsF, "regions": regions, "instance_types": instanceTypes} {
				if len(v) > 0 {
					conf[k] = v
					profile[k] = v
				}
			}
			if maxPrice > 0 {
				conf["max_price"] = maxPrice
				profile["max_price"] = maxPrice
			}
			limit := maxOffers
			if len(groupBy) > 0 {
				limit = 10000 // grouping needs every offer
			}
			p, c, err := currentProject(project)
			if err != nil {
				return err
			}
			var plan planResponse
			body := map[string]any{"run_spec": map[string]any{"configuration": conf, "profile": profile}, "max_offers": limit}
			if err := c.Do(cmd.Context(), "/api/project/"+p.Name+"/runs/get_plan", body, &plan); err != nil {
				return err
			}
			if len(plan.JobPlans) == 0 {
				return fmt.Errorf("the server returned a plan without jobs")
			}
			jp := plan.JobPlans[0]
			out := cmd.OutOrStdout()
			if len(groupBy) > 0 {
				gb, err := offers.ParseGroupBy(groupBy)
				if err != nil {
					return err
				}
				groups := offers.GroupByGPU(jp.Offers, gb)
				if asJSON {
					return printJSON(out, map[string]any{"project": p.Name, "gpus": groups})
				}
				rows := make([][]string, len(groups))
				for i, g := range groups {
					rows[i] = []string{g.Name, fmt.Sprintf("%dGB", g.MemoryMiB/1024), g.Count.String(),
						strings.Join(g.Backends, ","), strings.Join(g.Regions, ","), priceRange(g.Price.Min, g.Price.Max)}
				}
				return printTable(out, []string{"GPU", "MEMORY", "COUNT", "BACKENDS", "REGIONS", "PRICE"}, rows)
			}
			if asJSON {
				list := make([]map[string]any, len(jp.Offers))
				for i, o := range jp.Offers {
					list[i] = map[string]any{"backend": o.Backend, "region": o.Region, "instance_type": o.Instance.Name,
						"resources": o.Instance.Resources, "spot": o.Instance.Resources.Spot, "price": o.Price, "availability": o.Availability}
				}
				return printJSON(out, map[string]any{"project": plan.ProjectName, "user": plan.User, "resources": res,
					"max_price": jp.MaxPrice, "spot": policy, "offers": list, "total_offers": jp.TotalOffers, "notes": jp.Notes})
			}
			rows := make([][]string, len(jp.Offers))
			for i, o := range jp.Offers {
				rows[i] = []string{fmt.Sprint(i + 1), o.Backend, o.Region, o.Instance.Name, describeResources(o.Instance.Resources),
					yesNo(o.Instance.Resources.Spot), fmt.Sprintf("$%g", o.Price), availabilityLabel(o.Availability)}
			}
			if len(rows) > 0 {
				if err := printTable(out, []string{"#", "BACKEND", "REGION", "INSTANCE", "RESOURCES", "SPOT", "PRICE", ""}, rows); err != nil {
					return err
				}
				max := 0.0
				if jp.MaxPrice != nil {
					max = *jp.MaxPrice
				}
				fmt.Fprintf(out, "\nShown %d of %d offers, $%g max\n", len(jp.Offers), jp.TotalOffers, max)
			} else {
				fmt.Fprintln(out, "No offers match the requirements.")
				if jp.Explanation != "" {
					fmt.Fprintln(out, jp.Explanation)
				}
			}
			for _, n := range jp.Notes {
				fmt.Fprintf(out, "note: %s: %s\n", n.Backend, n.Message)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&project, "project", "", "the project (default: the CLI's default project)")
	f.StringVar(&gpu, "gpu", "", "GPU requirement, e.g. A100:80GB:2, 24GB.., H100,A100:8, amd:MI300X:1..")
	f.StringVar(&cpu, "cpu", "", "CPU count or range, e.g. 4.., arm:8")
	f.StringVar(&memory, "memory", "", "memory, e.g. 32GB..")
	f.StringVar(&disk, "disk", "", "disk size, e.g. 200GB..")
	f.BoolVar(&spot, "spot", false, "spot instances only")
	f.BoolVar(&onDemand, "on-demand", false, "on-demand instances only")
	f.BoolVar(&spotAuto, "spot-auto", false, "spot or on-demand")
	f.StringVar(&spotPolicy, "spot-policy", "", "spot, on-demand or auto")
	f.Float64Var(&maxPrice, "max-price", 0, "the most to pay per hour, in USD")
	f.StringSliceVarP(&backendsF, "backend", "b", nil, "only these backends (repeatable)")
	f.StringSliceVarP(&regions, "region", "r", nil, "only these regions (repeatable)")
	f.StringSliceVar(&instanceTypes, "instance-type", nil, "only these instance types (repeatable)")
	f.IntVar(&maxOffers, "max-offers", 50, "how many offers to show")
	f.StringSliceVar(&groupBy, "group-by", nil, "group by gpu, plus any of backend, region, count")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func pickSpotPolicy(policy string, spot, onDemand, auto bool) (string, error) {
	n := 0
	for _, b := range []bool{spot, onDemand, auto, policy != ""} {
		if b {
			n++
		}
	}
	if n > 1 {
		return "", fmt.Errorf("use only one of --spot, --on-demand, --spot-auto and --spot-policy")
	}
	switch {
	case spot:
		return "spot", nil
	case auto:
		return "auto", nil
	case policy != "":
		if policy != "spot" && policy != "on-demand" && policy != "auto" {
			return "", fmt.Errorf("--spot-policy %q: use spot, on-demand or auto", policy)
		}
		return policy, nil
	}
	return "on-demand", nil
}

// describeResources renders resources as dstack does: cpu=2 mem=8GB disk=100GB A100:80GB:2.
func describeResources(r offers.Resources) string {
	s := fmt.Sprintf("cpu=%d mem=%dGB disk=%dGB", r.CPUs, r.MemoryMiB/1024, r.Disk.SizeMiB/1024)
	if r.CPUArch == "arm" {
		s = "arm:" + s
	}
	if len(r.GPUs) > 0 {
		s += fmt.Sprintf(" %s:%dGB:%d", r.GPUs[0].Name, r.GPUs[0].MemoryMiB/1024, len(r.GPUs))
	}
	return s
}

func availabilityLabel(a offers.Availability) string {
	switch a {
	case offers.NotAvailable:
		return "not available"
	case offers.NoQuota:
		return "no quota"
	case offers.Idle, offers.Busy:
		return string(a)
	}
	return ""
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func priceRange(lo, hi *float64) string {
	switch {
	case lo == nil:
		return ""
	case hi == nil || *hi == *lo:
		return fmt.Sprintf("$%g", *lo)
	}
	return fmt.Sprintf("$%g..$%g", *lo, *hi)
}
