package ui

import (
	"encoding/json"
	"net/url"
	"sort"
	"strings"
)

// Fleets and instances: the project's fleets (fleets/list) with their instances, delete
// (fleets/delete), and the instances of the project (instances/list).

type instanceJSON struct {
	ID                       string            `json:"id"`
	ProjectName              string            `json:"project_name"`
	Backend                  *string           `json:"backend"`
	InstanceType             *instanceTypeJSON `json:"instance_type"`
	Name                     string            `json:"name"`
	FleetID                  *string           `json:"fleet_id"`
	FleetName                *string           `json:"fleet_name"`
	InstanceNum              int               `json:"instance_num"`
	JobName                  *string           `json:"job_name"`
	Hostname                 *string           `json:"hostname"`
	Status                   string            `json:"status"`
	Unreachable              bool              `json:"unreachable"`
	TerminationReason        *string           `json:"termination_reason"`
	TerminationReasonMessage *string           `json:"termination_reason_message"`
	Created                  string            `json:"created"`
	FinishedAt               *string           `json:"finished_at"`
	Region                   *string           `json:"region"`
	Price                    *float64          `json:"price"`
	TotalBlocks              *int              `json:"total_blocks"`
	BusyBlocks               int               `json:"busy_blocks"`
	StatusMessage            *string           `json:"status_message"`
}

// BackendText is the instance's backend ("ssh" for SSH fleet hosts).
func (i instanceJSON) BackendText() string { return backendName(deref(i.Backend)) }

// Res is the instance's resources, if known.
func (i instanceJSON) Res() *resourcesJSON {
	if i.InstanceType == nil {
		return nil
	}
	return &i.InstanceType.Resources
}

// Active tells an instance that still exists or is being created.
func (i instanceJSON) Active() bool {
	return i.Status != "terminated"
}

// Note is why the instance is not ready or was terminated, in words.
func (i instanceJSON) Note() string {
	var parts []string
	if m := deref(i.StatusMessage); m != "" {
		parts = append(parts, m)
	}
	if code := deref(i.TerminationReason); code != "" {
		s := reason(code)
		if m := deref(i.TerminationReasonMessage); m != "" {
			s += ": " + m
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

type fleetJSON struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	ProjectName string `json:"project_name"`
	Spec        struct {
		Configuration struct {
			Nodes     json.RawMessage `json:"nodes"`
			Resources json.RawMessage `json:"resources"`
			SSHConfig *struct {
				Hosts []json.RawMessage `json:"hosts"`
			} `json:"ssh_config"`
		} `json:"configuration"`
	} `json:"spec"`
	CreatedAt     string         `json:"created_at"`
	Status        string         `json:"status"`
	StatusMessage *string        `json:"status_message"`
	Instances     []instanceJSON `json:"instances"`
}

// Kind is "SSH" for fleets of existing hosts, "cloud" for fleets the backends provision.
func (f fleetJSON) Kind() string {
	if f.Spec.Configuration.SSHConfig != nil {
		return "SSH"
	}
	return "cloud"
}

func (f fleetJSON) active() []instanceJSON {
	var out []instanceJSON
	for _, i := range f.Instances {
		if i.Active() {
			out = append(out, i)
		}
	}
	return out
}

// ActiveCount is the number of instances that are not terminated.
func (f fleetJSON) ActiveCount() int { return len(f.active()) }

func uniq(list []string) string {
	seen := map[string]bool{}
	var out []string
	for _, s := range list {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// Backends lists the backends of the fleet's active instances.
func (f fleetJSON) Backends() string {
	var l []string
	for _, i := range f.active() {
		l = append(l, i.BackendText())
	}
	return uniq(l)
}

// Regions lists the regions of the fleet's active instances.
func (f fleetJSON) Regions() string {
	var l []string
	for _, i := range f.active() {
		l = append(l, deref(i.Region))
	}
	return uniq(l)
}

// resLine is one kind of machine of a fleet: its accelerators and the rest, or a requested spec.
type resLine struct{ GPU, Machine, Requested string }

// Resources lists the distinct resources of the fleet's active instances, or what its configuration
// asks for when it has none.
func (f fleetJSON) Resources() []resLine {
	var l []resLine
	seen := map[resLine]bool{}
	for _, i := range f.active() {
		if r := i.Res(); r != nil {
			line := resLine{GPU: r.GPU(), Machine: r.Machine()}
			if (line.GPU != "" || line.Machine != "") && !seen[line] {
				seen[line] = true
				l = append(l, line)
			}
		}
	}
	if len(l) == 0 {
		if s := requested(f.Spec.Configuration.Resources); s != "" {
			l = append(l, resLine{Requested: s})
		}
	}
	return l
}

// Price is the hourly price of the fleet's active instances together, or nil when none has one.
func (f fleetJSON) Price() *float64 {
	var sum float64
	have := false
	for _, i := range f.active() {
		if i.Price != nil {
			sum += *i.Price
			have = true
		}
	}
	if !have {
		return nil
	}
	return &sum
}

// Deleting tells a fleet that is going away.
func (f fleetJSON) Deleting() bool { return f.Status == "terminating" || f.Status == "terminated" }

type fleetsData struct {
	P      *projectJSON
	Fleets []fleetJSON
}

func (c *ctx) fleetsPage() { c.renderFleets(nil) }

func (c *ctx) renderFleets(formErr *APIError) {
	p, ok := c.loadProject()
	if !ok {
		return
	}
	d := fleetsData{P: p}
	v := c.projectView(p, "fleets", "Fleets")
	v.D = &d
	if e := c.call("/api/project/"+url.PathEscape(p.ProjectName)+"/fleets/list", map[string]any{}, &d.Fleets); e != nil {
		v.Err = e
		c.render(0, "fleets", v)
		return
	}
	v.Err = formErr
	c.render(0, "fleets", v)
}

func (c *ctx) deleteFleet() {
	project, name := c.r.PathValue("project"), c.r.PathValue("fleet")
	if e := c.call("/api/project/"+url.PathEscape(project)+"/fleets/delete", map[string]any{"names": []string{name}}, nil); e != nil {
		c.renderFleets(e)
		return
	}
	c.redirect(projectURL(project, "/fleets"), "Fleet "+name+" is being deleted: its instances are terminated first.")
}

type instancesData struct {
	P         *projectJSON
	Instances []instanceJSON
	Fleet     string // the fleet filter, "" for all
	All       bool   // include terminated instances
}

func (c *ctx) instancesPage() {
	p, ok := c.loadProject()
	if !ok {
		return
	}
	q := c.r.URL.Query()
	d := instancesData{P: p, Fleet: q.Get("fleet"), All: q.Get("all") == "1"}
	v := c.projectView(p, "instances", "Instances")
	v.D = &d
	body := map[string]any{"project_names": []string{p.ProjectName}, "only_active": !d.All, "limit": 1000}
	if d.Fleet != "" {
		var f fleetJSON
		if e := c.call("/api/project/"+url.PathEscape(p.ProjectName)+"/fleets/get", map[string]any{"name": d.Fleet}, &f); e != nil {
			v.Err = e
			c.render(0, "instances", v)
			return
		}
		body["fleet_ids"] = []string{f.ID}
	}
	if e := c.call("/api/instances/list", body, &d.Instances); e != nil {
		v.Err = e
	}
	c.render(0, "instances", v)
}
