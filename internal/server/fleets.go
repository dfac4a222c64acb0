package server

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/dstackgo/dstack/internal/fleets"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/offers"
	"github.com/dstackgo/dstack/internal/store"
)

type fleetJSON struct {
	ID            string           `json:"id"`
	Name          string           `json:"name"`
	ProjectName   string           `json:"project_name"`
	Spec          models.FleetSpec `json:"spec"`
	CreatedAt     string           `json:"created_at"`
	Status        string           `json:"status"`
	StatusMessage *string          `json:"status_message"`
	Instances     []instanceJSON   `json:"instances"`
}

// fleetJSON renders a fleet with its instances. A fleet whose deletion was requested shows as
// terminating at once, as in dstack, although its pipeline has not picked the request up yet.
func (s *Server) fleetJSON(r *request, f *models.Fleet, projectName string) (fleetJSON, error) {
	out := fleetJSON{ID: f.ID, Name: f.Name, ProjectName: projectName, Spec: f.Spec, CreatedAt: apiTime(f.CreatedAt),
		Status: f.Status, StatusMessage: nonEmpty(f.StatusMessage), Instances: []instanceJSON{}}
	if f.DeleteRequested && f.Status == models.FleetActive {
		out.Status = models.FleetTerminating
	}
	insts, err := s.store.ListInstances(r.Context(), store.InstanceFilter{FleetIDs: []string{f.ID}, Page: store.Page{Ascending: true}})
	if err != nil {
		return out, err
	}
	for _, inst := range insts {
		ij, err := s.instanceJSON(r, inst, projectName, f.Name)
		if err != nil {
			return out, err
		}
		out.Instances = append(out.Instances, ij)
	}
	return out, nil
}

type listProjectFleetsRequest struct {
	IncludeImported bool `json:"include_imported"`
}

func (s *Server) listProjectFleets(r *request) (any, *apiError) {
	var req listProjectFleetsRequest
	if e := decode(r.Request, &req, true); e != nil {
		return nil, e
	}
	list, err := s.store.ListFleets(r.Context(), store.FleetFilter{ProjectIDs: []string{r.project.ID}, Page: store.Page{Ascending: true}})
	if err != nil {
		return nil, s.internal(err)
	}
	out := []fleetJSON{}
	for _, f := range list {
		fj, err := s.fleetJSON(r, f, r.project.Name)
		if err != nil {
			return nil, s.internal(err)
		}
		out = append(out, fj)
	}
	return out, nil
}

type listFleetsRequest struct {
	ProjectName     *string `json:"project_name"`
	OnlyActive      bool    `json:"only_active"`
	IncludeImported bool    `json:"include_imported"`
	PrevCreatedAt   *string `json:"prev_created_at"`
	PrevID          *string `json:"prev_id"`
	Limit           *int    `json:"limit"`
	Ascending       bool    `json:"ascending"`
}

func (s *Server) listFleets(r *request) (any, *apiError) {
	var req listFleetsRequest
	if e := decode(r.Request, &req, true); e != nil {
		return nil, e
	}
	names, e := s.visibleProjects(r, req.ProjectName)
	if e != nil {
		return nil, e
	}
	page, e := pageOf("prev_created_at", req.PrevCreatedAt, req.PrevID, req.Limit, 100, 100, req.Ascending)
	if e != nil {
		return nil, e
	}
	list, err := s.store.ListFleets(r.Context(), store.FleetFilter{ProjectIDs: keys(names), OnlyActive: req.OnlyActive, Page: page})
	if err != nil {
		return nil, s.internal(err)
	}
	out := []fleetJSON{}
	for _, f := range list {
		fj, err := s.fleetJSON(r, f, names[f.ProjectID])
		if err != nil {
			return nil, s.internal(err)
		}
		out = append(out, fj)
	}
	return out, nil
}

type getFleetRequest struct {
	Name *string `json:"name"`
	ID   *string `json:"id"`
}

func (s *Server) getFleet(r *request) (any, *apiError) {
	var req getFleetRequest
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	f, e := s.findFleet(r, req.Name, req.ID)
	if e != nil {
		return nil, e
	}
	fj, err := s.fleetJSON(r, f, r.project.Name)
	if err != nil {
		return nil, s.internal(err)
	}
	return fj, nil
}

var errResourceNotFound = clientError(codeResourceNotExists, "Resource not found")

// findFleet looks a fleet up by id (deleted ones too) or else by name (live ones only).
func (s *Server) findFleet(r *request, name, id *string) (*models.Fleet, *apiError) {
	var (
		f   *models.Fleet
		err error
	)
	switch {
	case id != nil:
		f, err = s.store.GetFleetByID(r.Context(), *id)
		if err == nil && f.ProjectID != r.project.ID {
			err = store.ErrNotFound
		}
	case name != nil:
		f, err = s.store.GetFleet(r.Context(), r.project.ID, *name)
	default:
		return nil, badRequestf("name or id must be specified")
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, errResourceNotFound
	}
	if err != nil {
		return nil, s.internal(err)
	}
	return f, nil
}

type fleetPlanRequest struct {
	Spec models.FleetSpec `json:"spec" required:"true"`
}

type fleetPlanJSON struct {
	ProjectName     string           `json:"project_name"`
	User            string           `json:"user"`
	Spec            models.FleetSpec `json:"spec"`
	EffectiveSpec   models.FleetSpec `json:"effective_spec"`
	CurrentResource *fleetJSON       `json:"current_resource"`
	Offers          []any            `json:"offers"`
	TotalOffers     int              `json:"total_offers"`
	MaxOfferPrice   *float64         `json:"max_offer_price"`
	Action          string           `json:"action"`
	// Notes and Explanation say why backends or offers were left out (as in job plans).
	Notes       []offers.BackendNote `json:"notes,omitempty"`
	Explanation string               `json:"explanation,omitempty"`
}

func (s *Server) getFleetPlan(r *request) (any, *apiError) {
	var req fleetPlanRequest
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	spec := normaliseFleetSpec(req.Spec)
	if e := s.checkFleetSpec(r, spec); e != nil {
		return nil, e
	}
	plan := fleetPlanJSON{ProjectName: r.project.Name, User: r.user.Username, Spec: spec, EffectiveSpec: spec.StripPrivateKeys(),
		Offers: []any{}, Action: "create"}
	if spec.Configuration.SSHConfig == nil {
		if e := s.planNodeOffers(r, spec, &plan); e != nil {
			return nil, e
		}
	}
	if spec.Configuration.Name != nil {
		f, err := s.store.GetFleet(r.Context(), r.project.ID, *spec.Configuration.Name)
		switch {
		case err == nil:
			fj, err := s.fleetJSON(r, f, r.project.Name)
			if err != nil {
				return nil, s.internal(err)
			}
			plan.CurrentResource = &fj
			plan.Action = "update"
		case !errors.Is(err, store.ErrNotFound):
			return nil, s.internal(err)
		}
	}
	return plan, nil
}

type applyFleetRequest struct {
	Plan struct {
		Spec            models.FleetSpec `json:"spec" required:"true"`
		CurrentResource any              `json:"current_resource"`
	} `json:"plan" required:"true"`
	Force bool `json:"force" required:"true"`
}

var errResourceChanged = badRequestf("Failed to apply plan. Resource has been changed. Try again or use force apply.")

func (s *Server) applyFleet(r *request) (any, *apiError) {
	var req applyFleetRequest
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	spec := normaliseFleetSpec(req.Plan.Spec)
	if e := s.checkFleetSpec(r, spec); e != nil {
		return nil, e
	}
	ctx := r.Context()
	if spec.Configuration.Name == nil {
		name := "fleet-" + randomSuffix()
		spec.Configuration.Name = &name
	}
	name := *spec.Configuration.Name
	existing, err := s.store.GetFleet(ctx, r.project.ID, name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, s.internal(err)
	}
	if existing == nil && req.Plan.CurrentResource != nil && !req.Force {
		return nil, errResourceChanged
	}
	hosts, e := fleetHosts(spec)
	if e != nil {
		return nil, e
	}
	if e := s.checkHostsFree(r, hosts, existing); e != nil {
		return nil, e
	}
	var f *models.Fleet
	switch {
	case existing != nil && spec.Configuration.SSHConfig == nil && existing.Spec.Configuration.SSHConfig == nil:
		if e := s.updateCloudFleet(r, existing, spec, req.Plan.CurrentResource, req.Force); e != nil {
			return nil, e
		}
		f = existing
	case existing != nil:
		if e := s.updateFleet(r, existing, spec, hosts, req.Plan.CurrentResource, req.Force); e != nil {
			return nil, e
		}
		f = existing
	default:
		f = &models.Fleet{ProjectID: r.project.ID, Name: name, Status: models.FleetActive, Spec: spec.StripPrivateKeys()}
		var insts []*models.Instance
		for i, h := range hosts {
			insts = append(insts, newSSHInstance(r.project.ID, "", name, i, h))
		}
		// A cloud fleet starts with nodes.min instances, whose machines the instances pipeline makes.
		if nodes, ok, _ := fleets.ParseNodes(spec.Configuration.Nodes); ok && spec.Configuration.SSHConfig == nil {
			for i := 0; i < nodes.Min; i++ {
				insts = append(insts, fleets.NewNode(r.project.ID, "", name, i))
			}
		}
		if err := s.store.CreateFleet(ctx, f, insts); err != nil {
			if errors.Is(err, store.ErrExists) {
				return nil, errResourceChanged
			}
			return nil, s.internal(err)
		}
	}
	s.work().wake(store.TableInstances)
	f, err = s.store.GetFleetByID(ctx, f.ID)
	if err != nil {
		return nil, s.internal(err)
	}
	fj, err := s.fleetJSON(r, f, r.project.Name)
	if err != nil {
		return nil, s.internal(err)
	}
	return fj, nil
}

// updateFleet applies a changed host list in place: new hosts become instances, removed ones are
// terminated. Other changes cannot be applied to running hosts.
func (s *Server) updateFleet(r *request, f *models.Fleet, spec models.FleetSpec, hosts []*models.RemoteConnectionInfo, current any, force bool) *apiError {
	ctx := r.Context()
	if e := checkCurrent(f, current, force); e != nil {
		return e
	}
	if !sameFleetSpec(spec.StripPrivateKeys(), f.Spec, false) {
		return badRequestf("Fleet %s cannot be updated in place: only ssh_config.hosts may change. Delete the fleet and apply it again.", f.Name)
	}
	insts, err := s.store.ListInstances(ctx, store.InstanceFilter{FleetIDs: []string{f.ID}, OnlyActive: true})
	if err != nil {
		return s.internal(err)
	}
	want := map[string]*models.RemoteConnectionInfo{}
	for _, h := range hosts {
		want[hostKey(h)] = h
	}
	next := 0
	all, err := s.store.ListInstances(ctx, store.InstanceFilter{FleetIDs: []string{f.ID}})
	if err != nil {
		return s.internal(err)
	}
	for _, inst := range all {
		next = max(next, inst.InstanceNum+1)
	}
	var drop []string
	for _, inst := range insts {
		if inst.Remote == nil {
			continue
		}
		k := hostKey(inst.Remote)
		if _, ok := want[k]; ok {
			delete(want, k)
			continue
		}
		if inst.Status == models.InstanceBusy {
			return badRequestf("Failed to update fleet %s. Host %s is in use.", f.Name, inst.Remote.Host)
		}
		drop = append(drop, inst.ID)
	}
	err = s.store.WithTx(ctx, func(tx *store.Store) error {
		for _, h := range hosts {
			if _, ok := want[hostKey(h)]; !ok {
				continue
			}
			if err := tx.CreateInstance(ctx, newSSHInstance(r.project.ID, f.ID, f.Name, next, h)); err != nil {
				return err
			}
			next++
		}
		if err := tx.RequestInstanceTermination(ctx, drop); err != nil {
			return err
		}
		return tx.UpdateFleetSpec(ctx, f.ID, spec.StripPrivateKeys())
	})
	if err != nil {
		return s.internal(err)
	}
	return nil
}

// checkCurrent refuses an update whose plan was made against another state of the fleet, unless
// forced.
func checkCurrent(f *models.Fleet, current any, force bool) *apiError {
	if force {
		return nil
	}
	cur, ok := current.(map[string]any)
	if !ok || cur["id"] != f.ID {
		return errResourceChanged
	}
	var curSpec models.FleetSpec
	data, _ := json.Marshal(cur["spec"])
	if json.Unmarshal(data, &curSpec) != nil || !sameFleetSpec(curSpec, f.Spec, true) {
		return errResourceChanged
	}
	return nil
}

// updateCloudFleet applies a changed `nodes` of a cloud fleet in place: the fleets pipeline then
// adds instances up to the new min and terminates idle ones above the new max. Other changes
// cannot be applied to running machines.
func (s *Server) updateCloudFleet(r *request, f *models.Fleet, spec models.FleetSpec, current any, force bool) *apiError {
	if e := checkCurrent(f, current, force); e != nil {
		return e
	}
	withoutNodes := func(sp models.FleetSpec) models.FleetSpec {
		sp.Configuration.Nodes = nil
		return sp
	}
	if !sameFleetSpec(withoutNodes(spec), withoutNodes(f.Spec), true) {
		return badRequestf("Fleet %s cannot be updated in place: only nodes may change. Delete the fleet and apply it again.", f.Name)
	}
	if err := s.store.UpdateFleetSpec(r.Context(), f.ID, spec.StripPrivateKeys()); err != nil {
		return s.internal(err)
	}
	if err := s.store.WakeRow(r.Context(), store.TableFleets, f.ID); err != nil {
		return s.internal(err)
	}
	s.work().wake(store.TableFleets)
	return nil
}

// planNodeOffers fills a cloud fleet's plan with the offers its machines can be made from (for a
// cluster fleet, only those that can go into a new placement group), at most 50.
func (s *Server) planNodeOffers(r *request, spec models.FleetSpec, plan *fleetPlanJSON) *apiError {
	q, err := fleets.NodeQuery(spec)
	if err != nil {
		return badRequestf("%v", err)
	}
	res, err := s.PlanOffers(r.Context(), r.project.ID, q, 0)
	if err != nil {
		return s.internal(err)
	}
	list, notes := fleets.NodeOffers(r.Context(), s.computeFor, r.project.ID, res.Offers, fleets.IsCluster(spec), nil)
	plan.Notes, plan.TotalOffers = append(res.Notes, notes...), len(list)
	for i, o := range list {
		if i < 50 {
			plan.Offers = append(plan.Offers, o)
		}
		if plan.MaxOfferPrice == nil || o.Price > *plan.MaxOfferPrice {
			price := o.Price
			plan.MaxOfferPrice = &price
		}
	}
	if len(list) == 0 {
		plan.Explanation = res.Explanation
		if plan.Explanation == "" && len(notes) > 0 {
			plan.Explanation = "no offer fits the fleet: see the notes"
		}
	}
	return nil
}

// sameFleetSpec compares two stored specs; withHosts false ignores the host list.
func sameFleetSpec(a, b models.FleetSpec, withHosts bool) bool {
	norm := func(sp models.FleetSpec) any {
		sp = sp.StripPrivateKeys()
		if !withHosts && sp.Configuration.SSHConfig != nil {
			sp.Configuration.SSHConfig.Hosts = nil
		}
		data, _ := json.Marshal(sp)
		var v any
		_ = json.Unmarshal(data, &v)
		if m, ok := v.(map[string]any); ok {
			delete(m, "autocreated")
		}
		return v
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

func hostKey(h *models.RemoteConnectionInfo) string {
	return fmt.Sprintf("%s@%s:%d", h.User, h.Host, h.Port)
}

// newSSHInstance is the pending instance of one host of an SSH fleet.
func newSSHInstance(projectID, fleetID, fleetName string, num int, h *models.RemoteConnectionInfo) *models.Instance {
	return &models.Instance{
		ProjectID: projectID, FleetID: fleetID, Name: fmt.Sprintf("%s-%d", fleetName, num), InstanceNum: num,
		Status: models.InstancePending, Backend: models.BackendRemote, Region: "remote", Hostname: h.Host,
		TotalBlocks: 1, Remote: h,
		// Placeholder resources until the host is reached (as dstack shows them).
		InstanceType: models.InstanceType{Name: "ssh", Resources: models.InstanceResources{CPUs: 2, MemoryMiB: 8 << 10,
			Gpus: []models.Gpu{}, Disk: models.Disk{SizeMiB: 100 << 10}}},
	}
}

// normaliseFleetSpec fills the defaults dstack's models have.
func normaliseFleetSpec(spec models.FleetSpec) models.FleetSpec {
	c := &spec.Configuration
	if c.Type == "" {
		c.Type = "fleet"
	}
	if c.Blocks == nil {
		c.Blocks = 1
	}
	if c.Env == nil {
		c.Env = models.Env{}
	}
	return spec
}

// checkFleetSpec refuses what this server cannot do and SSH fleets for members without the right.
func (s *Server) checkFleetSpec(r *request, spec models.FleetSpec) *apiError {
	c := spec.Configuration
	if c.Type != "fleet" {
		return badRequestf("configuration type must be fleet")
	}
	if p := c.Placement; p != nil && *p != "any" && *p != fleets.PlacementCluster {
		return badRequestf("placement must be any or cluster, not %q", *p)
	}
	if c.SSHConfig == nil {
		if _, _, err := fleets.ParseNodes(c.Nodes); err != nil {
			return badRequestf("%v", err)
		}
		if _, err := fleets.NodeQuery(spec); err != nil {
			return badRequestf("%v", err)
		}
		return nil
	}
	if c.Nodes != nil {
		return badRequestf("ssh_config and nodes are mutually exclusive")
	}
	if len(c.SSHConfig.Hosts) == 0 {
		return badRequestf("ssh_config.hosts must list at least one host")
	}
	privileged := r.role == models.ProjectRoleAdmin || r.role == models.ProjectRoleManager || r.user.GlobalRole == models.GlobalRoleAdmin
	if !privileged && !s.Permissions().AllowNonAdminsManageSSHFleets {
		return errAccessDenied
	}
	return nil
}

// fleetHosts resolves each host's connection (host-level values override ssh_config's).
func fleetHosts(spec models.FleetSpec) ([]*models.RemoteConnectionInfo, *apiError) {
	c := spec.Configuration.SSHConfig
	if c == nil {
		return nil, nil
	}
	seen := map[string]bool{}
	var out []*models.RemoteConnectionInfo
	for _, h := range c.Hosts {
		p := h.Params
		if strings.TrimSpace(p.Hostname) == "" {
			return nil, badRequestf("ssh_config.hosts: a host has no hostname")
		}
		info := &models.RemoteConnectionInfo{Host: p.Hostname, Port: 22, InternalIP: p.InternalIP, Network: c.Network,
			Env: map[string]string(spec.Configuration.Env), Blocks: spec.Configuration.Blocks}
		if p.Blocks != nil {
			info.Blocks = p.Blocks
		}
		if _, err := fleets.ParseBlocks(info.Blocks); err != nil {
			return nil, badRequestf("ssh_config: host %s: %v", p.Hostname, err)
		}
		switch {
		case p.Port != nil:
			info.Port = *p.Port
		case c.Port != nil:
			info.Port = *c.Port
		}
		switch {
		case p.User != nil:
			info.User = *p.User
		case c.User != nil:
			info.User = *c.User
		default:
			return nil, badRequestf("ssh_config: no user for host %s", p.Hostname)
		}
		key := p.SSHKey
		if key == nil {
			key = c.SSHKey
		}
		if key == nil || key.Private == nil || *key.Private == "" {
			return nil, badRequestf("ssh_config: no private key for host %s (set identity_file)", p.Hostname)
		}
		info.PrivateKey = *key.Private
		jump := p.ProxyJump
		if jump == nil {
			jump = c.ProxyJump
		}
		if jump != nil {
			jk := info.PrivateKey
			if jump.SSHKey != nil && jump.SSHKey.Private != nil {
				jk = *jump.SSHKey.Private
			}
			port := 22
			if jump.Port != nil {
				port = *jump.Port
			}
			info.ProxyJump = &models.RemoteProxy{Host: jump.Hostname, Port: port, User: jump.User, PrivateKey: jk}
		}
		k := hostKey(info)
		if seen[k] {
			return nil, badRequestf("ssh_config.hosts lists %s twice", p.Hostname)
		}
		seen[k] = true
		out = append(out, info)
	}
	return out, nil
}

// checkHostsFree refuses hosts that another active fleet of the project uses.
func (s *Server) checkHostsFree(r *request, hosts []*models.RemoteConnectionInfo, self *models.Fleet) *apiError {
	if len(hosts) == 0 {
		return nil
	}
	insts, err := s.store.ListInstances(r.Context(), store.InstanceFilter{ProjectIDs: []string{r.project.ID}, OnlyActive: true})
	if err != nil {
		return s.internal(err)
	}
	used := map[string]bool{}
	for _, inst := range insts {
		if inst.Remote != nil && (self == nil || inst.FleetID != self.ID) {
			used[fmt.Sprintf("%s:%d", inst.Remote.Host, inst.Remote.Port)] = true
		}
	}
	var taken []string
	for _, h := range hosts {
		if used[fmt.Sprintf("%s:%d", h.Host, h.Port)] {
			taken = append(taken, h.Host)
		}
	}
	if len(taken) > 0 {
		return badRequestf("Instances [%s] are already assigned to a fleet.", strings.Join(taken, ", "))
	}
	return nil
}

type deleteFleetsRequest struct {
	Names []string `json:"names" required:"true"`
}

func (s *Server) deleteFleets(r *request) (any, *apiError) {
	var req deleteFleetsRequest
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	var ids []string
	for _, name := range req.Names {
		f, e := s.findFleet(r, &name, nil)
		if e != nil {
			return nil, e
		}
		insts, err := s.store.ListInstances(r.Context(), store.InstanceFilter{FleetIDs: []string{f.ID}, Statuses: []string{models.InstanceBusy}})
		if err != nil {
			return nil, s.internal(err)
		}
		if len(insts) > 0 {
			return nil, badRequestf("Failed to delete fleet %s. Fleet is in use.", f.Name)
		}
		ids = append(ids, f.ID)
	}
	if err := s.store.RequestFleetDeletion(r.Context(), ids); err != nil {
		return nil, s.internal(err)
	}
	s.work().wake(store.TableFleets)
	return nil, nil
}

type deleteInstancesRequest struct {
	Name         string `json:"name" required:"true"`
	InstanceNums []int  `json:"instance_nums" required:"true"`
}

func (s *Server) deleteFleetInstances(r *request) (any, *apiError) {
	var req deleteInstancesRequest
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	f, e := s.findFleet(r, &req.Name, nil)
	if e != nil {
		return nil, e
	}
	insts, err := s.store.ListInstances(r.Context(), store.InstanceFilter{FleetIDs: []string{f.ID}, OnlyActive: true})
	if err != nil {
		return nil, s.internal(err)
	}
	want := map[int]bool{}
	for _, n := range req.InstanceNums {
		want[n] = true
	}
	var ids []string
	for _, inst := range insts {
		if !want[inst.InstanceNum] {
			continue
		}
		if inst.Status == models.InstanceBusy {
			return nil, badRequestf("Failed to delete instance %s. Instance is in use.", inst.Name)
		}
		ids = append(ids, inst.ID)
	}
	if err := s.store.RequestInstanceTermination(r.Context(), ids); err != nil {
		return nil, s.internal(err)
	}
	s.work().wake(store.TableInstances)
	return nil, nil
}

// serveAgent serves the dstack-shim and dstack-runner binaries (GET /api/agents/{name}/linux-{arch})
// to hosts that fetch them over HTTP; SSH fleet hosts get them uploaded through SSH instead.
func (s *Server) serveAgent(w http.ResponseWriter, r *http.Request) {
	arch, ok := strings.CutPrefix(r.PathValue("platform"), "linux-")
	if !ok {
		writeError(w, errRouteNotFound)
		return
	}
	path, err := s.work().agents.Path(r.PathValue("name"), arch)
	if err != nil {
		writeError(w, errRouteNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeFile(w, r, path)
}

func randomSuffix() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// visibleProjects maps the ids of the projects the caller may see (all for global admins; name
// narrows to one) to their names.
func (s *Server) visibleProjects(r *request, name *string) (map[string]string, *apiError) {
	var (
		list []*models.Project
		err  error
	)
	if r.user.GlobalRole == models.GlobalRoleAdmin {
		list, err = s.store.ListProjects(r.Context())
	} else {
		list, err = s.store.ListProjectsForUser(r.Context(), r.user.ID)
	}
	if err != nil {
		return nil, s.internal(err)
	}
	out := map[string]string{}
	for _, p := range list {
		if name == nil || strings.EqualFold(p.Name, *name) {
			out[p.ID] = p.Name
		}
	}
	return out, nil
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// pageOf reads keyset pagination parameters.
func pageOf(timeField string, prevAt, prevID *string, limit *int, def, maxLimit int, asc bool) (store.Page, *apiError) {
	p := store.Page{Limit: def, Ascending: asc}
	if limit != nil {
		if *limit < 0 || *limit > maxLimit {
			return p, unprocessable(validationItem{Type: "less_than_equal", Loc: []any{"body", "limit"},
				Msg: fmt.Sprintf("Input should be less than or equal to %d", maxLimit), Input: *limit, Ctx: map[string]any{"le": maxLimit}})
		}
		p.Limit = *limit
	}
	if prevAt != nil {
		t, err := time.Parse(time.RFC3339Nano, *prevAt)
		if err != nil {
			return p, unprocessable(validationItem{Type: "datetime_from_date_parsing", Loc: []any{"body", timeField},
				Msg: "Input should be a valid datetime", Input: *prevAt})
		}
		p.PrevTime = &t
		if prevID != nil {
			p.PrevID = *prevID
		}
	}
	return p, nil
}
