package fleets

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/offers"
	"github.com/dstackgo/dstack/internal/resources"
	"github.com/dstackgo/dstack/internal/store"
)

// Cloud fleets are fleet configurations with `nodes` and no ssh_config: the server keeps between
// nodes.min and nodes.max machines of the fleet's backends, and jobs run on them like on any fleet
// instance.
//
//   - Applying the fleet records nodes.min pending instances (NewNode). The instances pipeline
//     makes each one's machine (provisionNode): the fleet's offers (NodeQuery) go through the same
//     failover as jobs' (Launcher), the instance becomes provisioning with the machine's data and
//     is brought up to idle like any cloud instance (cloud.go). An instance that finds no machine
//     is terminated with no_offers.
//   - The fleets pipeline (maintainNodes) replaces instances that are gone, so that nodes.min stay
//     (after NodeOptions.Retry when the last one found no machine), and terminates idle ones above
//     nodes.max. An idle instance is not terminated for idle_duration (3 days by default for such
//     fleets) while the fleet is at nodes.min.
//   - `placement: cluster`: the fleet's first instance (the active one with the lowest number)
//     picks the backend and region: for its offer the backend (a backends.PlacementGroupCompute)
//     makes a placement group, recorded in the store, and the machine goes into it. The other
//     instances wait for that group, then take only offers of its backend and region that fit it.
//     Offers of backends without placement groups, or that cannot join one, are left out with the
//     reason. A group made for an offer that failed is deleted as the next offer needs another.
//   - Deleting the fleet terminates its instances; once none is left, its placement groups are
//     deleted at their backend (the fleet stays terminating until they are), then the fleet.

// InstanceNoOffers ends an instance of a cloud fleet for which no offer gave a machine (dstack's
// no_offers termination reason).
const InstanceNoOffers = "no_offers"

// PlacementCluster is `placement: cluster`.
const PlacementCluster = "cluster"

// DefaultFleetIdleDuration is how long an idle instance of a fleet that was applied (not made for
// a run) lives by default (dstack's 3 days).
const DefaultFleetIdleDuration = 72 * time.Hour

// NotePlacement is a plan note on offers a cloud fleet cannot use.
const NotePlacement offers.NoteKind = "placement"

// NodeOptions configure how the machines of cloud fleets are made; the server sets them.
type NodeOptions struct {
	// Offers returns the offers to try for a query, in order (as for jobs); limit 0 means all.
	Offers func(ctx context.Context, projectID string, q offers.Query, limit int) ([]offers.Offer, string, error)
	// Refused records capacity refusals (shared with jobs and plans); nil: not recorded.
	Refused func(offers.Offer)
	// MaxOffersTried is how many offers an instance tries (default 25, as jobs).
	MaxOffersTried int
	// ServerID marks the machines this server creates (see store.ServerID).
	ServerID string
	// ShimURL, when set, is where machines of an architecture (amd64, arm64) download dstack-shim.
	ShimURL func(arch string) string
	// Retry is how long a fleet waits before it replaces an instance that found no machine
	// (default 1 min, dstack's retry interval for fleets).
	Retry time.Duration
}

func (o NodeOptions) retry() time.Duration {
	if o.Retry > 0 {
		return o.Retry
	}
	return time.Minute
}

func (o NodeOptions) maxOffersTried() int {
	if o.MaxOffersTried > 0 {
		return o.MaxOffersTried
	}
	return 25
}

// Nodes is a fleet's `nodes`; Max nil means no upper bound.
type Nodes struct {
	Min int
	Max *int
}

// ParseNodes reads `nodes`: a count N (N..N), a range "1..2", "2.." or "..4", or an object
// {min, target, max} as the dstack CLI sends it (target is not used here). ok is false when nodes
// is not set.
func ParseNodes(v any) (n Nodes, ok bool, err error) {
	if v == nil {
		return Nodes{}, false, nil
	}
	if m, isMap := v.(map[string]any); isMap {
		v = map[string]any{"min": m["min"], "max": m["max"]}
		if m["min"] == nil && m["max"] == nil {
			return Nodes{}, true, errors.New("nodes: set min, max or both")
		}
	}
	r, err := resources.ParseRange[int](v)
	if err != nil {
		return Nodes{}, true, fmt.Errorf("nodes: %v; expected a count, a range such as 1..4, or {min, max}", err)
	}
	if r.Min != nil {
		n.Min = *r.Min
	}
	n.Max = r.Max
	switch {
	case n.Min < 0:
		return n, true, errors.New("nodes: min must not be negative")
	case n.Max != nil && *n.Max < 1:
		return n, true, errors.New("nodes: max must be at least 1")
	case n.Max != nil && *n.Max < n.Min:
		return n, true, fmt.Errorf("nodes: min %d is above max %d", n.Min, *n.Max)
	}
	return n, true, nil
}

// IsCluster reports a fleet with `placement: cluster`.
func IsCluster(spec models.FleetSpec) bool {
	p := spec.Configuration.Placement
	return p != nil && *p == PlacementCluster
}

// nodesFleet reports a fleet whose instances the server keeps (an applied cloud fleet with nodes).
func nodesFleet(f *models.Fleet) (Nodes, bool) {
	if f.Spec.Autocreated || f.Spec.Configuration.SSHConfig != nil {
		return Nodes{}, false
	}
	n, ok, err := ParseNodes(f.Spec.Configuration.Nodes)
	return n, ok && err == nil
}

// NodeQuery is the offer query of a cloud fleet's machines: its resources (dstack's defaults for
// what is left out, x86 CPUs and NVIDIA GPUs unless said otherwise) and its filters, each the
// configuration's when set, else the profile's.
func NodeQuery(spec models.FleetSpec) (offers.Query, error) {
	c, p := spec.Configuration, spec.Profile.ProfileParams
	res := resources.Default()
	if c.Resources != nil {
		res = *c.Resources
	}
	if res.CPU.Arch == nil {
		x86 := "x86"
		res.CPU.Arch = &x86
	}
	if g := res.GPU; g != nil && g.Vendor == nil {
		nvidia := "nvidia"
		g.Vendor = &nvidia
	}
	pick := func(a, b []string) []string {
		if len(a) > 0 {
			return a
		}
		return b
	}
	spot := c.SpotPolicy
	if spot == nil {
		spot = p.SpotPolicy
	}
	policy, err := offers.ParseSpotPolicy(deref(spot))
	if err != nil {
		return offers.Query{}, err
	}
	maxPrice := c.MaxPrice
	if maxPrice == nil {
		maxPrice = p.MaxPrice
	}
	return offers.Query{Requirements: offers.Requirements{Resources: res, MaxPrice: maxPrice, Spot: policy.Spot()},
		Backends: pick(c.Backends, p.Backends), Regions: pick(c.Regions, p.Regions),
		AvailabilityZones: pick(c.AvailabilityZones, p.AvailabilityZones), InstanceTypes: pick(c.InstanceTypes, p.InstanceTypes)}, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// NodeOffers keeps the offers a cloud fleet's machine can be made from and notes, per backend and
// reason, why the others cannot: container backends (their machines run one job's container)
// never, and for a cluster fleet only machines that can go into its placement group (group nil:
// a new one, for the fleet's first machine).
func NodeOffers(ctx context.Context, compute func(ctx context.Context, projectID, backend string) (backends.Compute, error),
	projectID string, list []offers.Offer, cluster bool, group *backends.PlacementGroupData) ([]offers.Offer, []offers.BackendNote) {
	type key struct{ backend, why string }
	left := map[key]int{}
	var order []key
	type backendCompute struct {
		c   backends.Compute
		err error
	}
	computes := map[string]backendCompute{}
	var kept []offers.Offer
	for _, o := range list {
		why := ""
		switch {
		case o.InstanceRuntime == offers.RuntimeRunner:
			why = "its machines run one job's container and cannot be fleet instances"
		case cluster:
			bc, ok := computes[o.Backend]
			if !ok {
				bc.c, bc.err = compute(ctx, projectID, o.Backend)
				computes[o.Backend] = bc
			}
			if bc.err != nil {
				why = bc.err.Error()
			} else {
				why = backends.PlacementFit(bc.c, o, group)
			}
		}
		if why == "" {
			kept = append(kept, o)
			continue
		}
		k := key{o.Backend, why}
		if left[k] == 0 {
			order = append(order, k)
		}
		left[k]++
	}
	var notes []offers.BackendNote
	for _, k := range order {
		notes = append(notes, offers.BackendNote{Backend: k.backend, Kind: NotePlacement,
			Message: fmt.Sprintf("%d offers left out: %s", left[k], k.why)})
	}
	return kept, notes
}

// NewNode is a pending instance of a cloud fleet, whose machine the instances pipeline makes.
func NewNode(projectID, fleetID, fleetName string, num int) *models.Instance {
	return &models.Instance{ProjectID: projectID, FleetID: fleetID, Name: fmt.Sprintf("%s-%d", fleetName, num), InstanceNum: num,
		Status: models.InstancePending, StatusMessage: "waiting for a machine", TotalBlocks: 1,
		InstanceType: models.InstanceType{Resources: models.InstanceResources{Gpus: []models.Gpu{}}}}
}

// isNode reports a pending instance of a cloud fleet that has no machine yet.
func isNode(inst *models.Instance) bool {
	return inst.Status == models.InstancePending && inst.JPD == nil && inst.Remote == nil && inst.FleetID != ""
}

// provisionNode makes the machine of a pending instance of a cloud fleet (see the top of the file).
func (s *Service) provisionNode(ctx context.Context, l store.Lease, inst *models.Instance) (time.Duration, error) {
	f, err := s.Store.GetFleetByID(ctx, inst.FleetID)
	if err != nil {
		return 0, err
	}
	if f.DeleteRequested || f.Deleted {
		return 0, nil // the fleet's deletion terminates the instance
	}
	if s.Nodes.Offers == nil || s.Compute == nil {
		return s.startCloudTermination(ctx, l, inst, models.InstanceError, "this server has no backends to make fleet machines with")
	}
	q, err := NodeQuery(f.Spec)
	if err != nil {
		return s.startCloudTermination(ctx, l, inst, models.InstanceError, err.Error())
	}
	cluster := IsCluster(f.Spec)
	var group *store.PlacementGroup
	if cluster {
		if group, err = s.liveGroup(ctx, f.ID); err != nil {
			return 0, err
		}
		if group == nil {
			first, err := s.firstNode(ctx, f.ID)
			if err != nil {
				return 0, err
			}
			if first != inst.ID {
				const msg = "waiting for the fleet's first instance to pick the cluster's backend and region"
				if inst.StatusMessage != msg {
					if err := s.Store.SetInstanceProvisioning(ctx, l, models.InstancePending, msg); err != nil {
						return 0, err
					}
				}
				return 2 * time.Second, nil
			}
		} else {
			q.Backends, q.Regions = []string{group.Data.Backend}, []string{group.Data.Region}
		}
	}
	limit := s.Nodes.maxOffersTried()
	fetch := limit
	if cluster {
		fetch = 0 // many offers may not fit a cluster: filter them all
	}
	list, explanation, err := s.Nodes.Offers(ctx, inst.ProjectID, q, fetch)
	if err != nil {
		return 0, err
	}
	var groupData *backends.PlacementGroupData
	if group != nil {
		groupData = &group.Data
	}
	list, notes := NodeOffers(ctx, s.Compute, inst.ProjectID, list, cluster, groupData)
	if len(list) > limit {
		list = list[:limit]
	}
	if len(list) == 0 {
		msg := "No offers found"
		if explanation != "" {
			msg += ": " + explanation
		}
		for _, n := range notes {
			msg += "; " + n.Backend + ": " + n.Message
		}
		return s.noOffers(ctx, l, inst, msg)
	}
	proj, err := s.Store.GetProjectByID(ctx, inst.ProjectID)
	if err != nil {
		return 0, err
	}
	var made *store.PlacementGroup // the group made for the offer being tried
	prepare := func(ctx context.Context, _ int, o offers.Offer, c backends.Compute) (backends.InstanceConfig, string, error) {
		cfg := s.nodeConfig(proj, f, inst, o)
		switch {
		case !cluster:
		case group != nil:
			cfg.PlacementGroup = &group.Data
		default:
			pg, skip, err := s.groupFor(ctx, proj, f, o, c, &made)
			if err != nil || skip != "" {
				return cfg, skip, err
			}
			cfg.PlacementGroup = &pg.Data
		}
		return cfg, "", nil
	}
	progress := func(msg string) error {
		inst.StatusMessage = msg
		return s.Store.SetInstanceProvisioning(ctx, l, models.InstancePending, msg)
	}
	launcher := Launcher{Compute: s.Compute, Refused: s.Nodes.Refused, Log: s.log().With("instance", inst.Name)}
	m, failures, err := launcher.Launch(ctx, inst.ProjectID, list, prepare, progress)
	if err != nil {
		return 0, err // a group made meanwhile stays the fleet's, for the next pass
	}
	if m == nil {
		if made != nil {
			s.dropGroup(context.WithoutCancel(ctx), made)
		}
		return s.noOffers(ctx, l, inst, "All offers failed: "+strings.Join(failures, "; "))
	}
	return s.recordNode(ctx, l, inst, m)
}

// recordNode records the machine made for a pending instance; one that cannot be recorded is given
// back.
func (s *Service) recordNode(ctx context.Context, l store.Lease, inst *models.Instance, m *Launched) (time.Duration, error) {
	ctx = context.WithoutCancel(ctx) // the machine exists: record it, or give it back
	o := m.Offer
	it := InstanceTypeOf(o.Instance)
	inst.Backend, inst.Region, inst.Price, inst.InstanceType = o.Backend, o.Region, o.Price, it
	inst.JPD, inst.StatusMessage = FromBackend(m.PD, it), "created: waiting for the machine to boot"
	if err := s.Store.RecordNodeMachine(ctx, l, inst); err != nil {
		s.log().Error("cannot record a fleet machine; terminating it", "instance", inst.Name, "backend", o.Backend, "id", m.PD.InstanceID, "err", err)
		tctx, cancel := context.WithTimeout(ctx, time.Minute)
		if terr := m.Compute.TerminateInstance(tctx, m.PD.InstanceID, m.PD.Region, m.PD.BackendData); terr != nil {
			s.log().Error("cannot terminate the unrecorded machine; the orphan reconciler will", "backend", o.Backend, "id", m.PD.InstanceID, "err", terr)
		}
		cancel()
		if errors.Is(err, store.ErrLeaseLost) {
			return 0, nil // deleted or taken over meanwhile: processed again
		}
		return 0, err
	}
	s.log().Info("fleet machine created", "instance", inst.Name, "offer", DescribeOffer(o), "id", m.PD.InstanceID,
		"took", m.Took.Round(time.Millisecond))
	return time.Second, nil
}

// noOffers ends an instance for which no machine could be made; its fleet replaces it after a
// while.
func (s *Service) noOffers(ctx context.Context, l store.Lease, inst *models.Instance, msg string) (time.Duration, error) {
	s.log().Warn("no machine for a fleet instance", "instance", inst.Name, "reason", msg)
	return s.startCloudTermination(ctx, l, inst, InstanceNoOffers, msg)
}

// nodeConfig is what a cloud fleet's machine gets: the project's key, the shim's download address,
// and the fleet's tags plus the ones naming the project, this server and the instance (which the
// orphan reconciler goes by).
func (s *Service) nodeConfig(proj *models.Project, f *models.Fleet, inst *models.Instance, o offers.Offer) backends.InstanceConfig {
	tags := map[string]string{}
	for k, v := range f.Spec.Profile.Tags {
		tags[k] = v
	}
	for k, v := range f.Spec.Configuration.Tags {
		tags[k] = v
	}
	tags["dstack_project"], tags["dstack_server"], tags["dstack_instance"] = proj.Name, s.Nodes.ServerID, inst.Name
	cfg := backends.InstanceConfig{ProjectName: proj.Name, InstanceName: ProviderName(inst.Name, s.Nodes.ServerID),
		SSHPublicKeys: []string{strings.TrimSpace(proj.SSHPublicKey)}, Tags: tags}
	if s.Nodes.ShimURL != nil {
		arch := "amd64"
		if o.Instance.Resources.CPUArch == "arm" {
			arch = "arm64"
		}
		cfg.ShimURL = s.Nodes.ShimURL(arch)
	}
	return cfg
}

// liveGroup is the fleet's placement group that machines join (nil when it has none yet).
func (s *Service) liveGroup(ctx context.Context, fleetID string) (*store.PlacementGroup, error) {
	groups, err := s.Store.ListPlacementGroups(ctx, fleetID)
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		if !g.DeleteRequested {
			return g, nil
		}
	}
	return nil, nil
}

// firstNode is the id of the fleet's active instance with the lowest number: the one that picks a
// cluster's backend and region.
func (s *Service) firstNode(ctx context.Context, fleetID string) (string, error) {
	insts, err := s.Store.ListInstances(ctx, store.InstanceFilter{FleetIDs: []string{fleetID}, OnlyActive: true})
	if err != nil {
		return "", err
	}
	var first *models.Instance
	for _, inst := range insts {
		if !inst.TerminateRequested && (first == nil || inst.InstanceNum < first.InstanceNum) {
			first = inst
		}
	}
	if first == nil {
		return "", nil
	}
	return first.ID, nil
}

// groupFor is the placement group for a cluster fleet's first machine on offer o: the one made for
// an earlier offer of this pass when it fits, else a new one (the earlier one is dropped: no
// machine will join it).
func (s *Service) groupFor(ctx context.Context, proj *models.Project, f *models.Fleet, o offers.Offer, c backends.Compute, made **store.PlacementGroup) (*store.PlacementGroup, string, error) {
	if *made != nil {
		if backends.PlacementFit(c, o, &(*made).Data) == "" {
			return *made, "", nil
		}
		s.dropGroup(ctx, *made)
		*made = nil
	}
	pc, ok := c.(backends.PlacementGroupCompute)
	if !ok {
		return nil, backends.PlacementFit(c, o, nil), nil
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	name := f.Name + "-" + hex.EncodeToString(b[:])
	tags := map[string]string{"dstack_project": proj.Name, "dstack_server": s.Nodes.ServerID, "dstack_fleet": f.Name}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	data, err := pc.CreatePlacementGroup(cctx, backends.PlacementGroupConfig{ProjectName: proj.Name, Name: name, Offer: o, Tags: tags})
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		return nil, "cannot make the placement group: " + err.Error(), nil
	}
	pg := &store.PlacementGroup{ProjectID: f.ProjectID, FleetID: f.ID, Name: name, Data: *data}
	if err := s.Store.CreatePlacementGroup(context.WithoutCancel(ctx), pg); err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		if derr := pc.DeletePlacementGroup(dctx, *data); derr != nil {
			s.log().Error("cannot delete an unrecorded placement group", "fleet", f.Name, "backend", data.Backend, "id", data.ID, "err", derr)
		}
		cancel()
		return nil, "", err
	}
	s.log().Info("placement group created", "fleet", f.Name, "backend", data.Backend, "region", data.Region, "id", data.ID)
	*made = pg
	return pg, "", nil
}

// dropGroup marks a group no machine will join and deletes it at its backend, best effort (the
// fleets pipeline tries again).
func (s *Service) dropGroup(ctx context.Context, pg *store.PlacementGroup) {
	if err := s.Store.RequestPlacementGroupDeletion(ctx, pg.ID); err != nil {
		s.log().Error("cannot mark a placement group for deletion", "id", pg.Data.ID, "err", err)
		return
	}
	pg.DeleteRequested = true
	if err := s.deleteGroup(ctx, pg); err != nil {
		s.log().Warn("cannot delete an unused placement group; retrying later", "id", pg.Data.ID, "err", err)
		if err := s.Store.WakeRow(ctx, store.TableFleets, pg.FleetID); err == nil {
			s.wake(store.TableFleets)
		}
	}
}

// deleteGroup deletes a placement group at its backend and records that.
func (s *Service) deleteGroup(ctx context.Context, pg *store.PlacementGroup) error {
	c, err := s.compute(ctx, &models.Instance{ProjectID: pg.ProjectID, Backend: pg.Data.Backend})
	if errors.Is(err, ErrNoBackend) {
		s.log().Error("cannot delete a placement group: its backend is gone; it may still exist at the provider",
			"backend", pg.Data.Backend, "id", pg.Data.ID)
		return s.Store.SetPlacementGroupDeleted(ctx, pg.ID)
	}
	if err != nil {
		return err
	}
	pc, ok := c.(backends.PlacementGroupCompute)
	if !ok {
		return fmt.Errorf("the %s backend cannot delete placement groups", pg.Data.Backend)
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	err = pc.DeletePlacementGroup(dctx, pg.Data)
	cancel()
	if err != nil {
		return err
	}
	s.log().Info("placement group deleted", "backend", pg.Data.Backend, "region", pg.Data.Region, "id", pg.Data.ID)
	return s.Store.SetPlacementGroupDeleted(ctx, pg.ID)
}

// deleteGroups deletes the fleet's placement groups that are to be deleted (all of them when all
// is true: the fleet is being deleted and none of its instances is left).
func (s *Service) deleteGroups(ctx context.Context, fleetID string, all bool) error {
	groups, err := s.Store.ListPlacementGroups(ctx, fleetID)
	if err != nil {
		return err
	}
	var errs []error
	for _, g := range groups {
		if !all && !g.DeleteRequested {
			continue
		}
		if err := s.deleteGroup(ctx, g); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			errs = append(errs, fmt.Errorf("placement group %s (%s %s): %w", g.Name, g.Data.Backend, g.Data.Region, err))
		}
	}
	return errors.Join(errs...)
}

// releaseGroups deletes a deleted fleet's placement groups once its instances are gone; ok is
// false while one cannot be deleted yet (the fleet then stays terminating, with the cause).
func (s *Service) releaseGroups(ctx context.Context, l store.Lease, f *models.Fleet) (ok bool, err error) {
	if err := s.deleteGroups(ctx, f.ID, true); err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		s.log().Warn("cannot delete the fleet's placement groups; retrying", "fleet", f.Name, "err", err)
		return false, s.Store.SetFleetStatus(ctx, l, models.FleetTerminating, "cannot delete the placement group: "+shortError(err), false)
	}
	return true, nil
}

// maintainNodes keeps a cloud fleet's instances between nodes.min and nodes.max and deletes the
// placement groups no machine will join (see the top of the file).
func (s *Service) maintainNodes(ctx context.Context, l store.Lease, f *models.Fleet) (time.Duration, error) {
	nodes, ok := nodesFleet(f)
	if !ok {
		return 0, nil
	}
	insts, err := s.Store.ListInstances(ctx, store.InstanceFilter{FleetIDs: []string{f.ID}})
	if err != nil {
		return 0, err
	}
	var active []*models.Instance
	next, lastNoOffers := 0, time.Time{}
	for _, inst := range insts {
		next = max(next, inst.InstanceNum+1)
		if models.InstanceActive(inst.Status) && !inst.TerminateRequested {
			active = append(active, inst)
		}
		if inst.TerminationReason == InstanceNoOffers && inst.FinishedAt != nil && inst.FinishedAt.After(lastNoOffers) {
			lastNoOffers = *inst.FinishedAt
		}
	}
	var wait time.Duration
	if missing := nodes.Min - len(active); missing > 0 {
		if left := s.Nodes.retry() - time.Since(lastNoOffers); left > 0 {
			wait = left // the last instance found no machine: not at once again
		} else {
			err := s.Store.WithTx(ctx, func(tx *store.Store) error {
				for i := 0; i < missing; i++ {
					if err := tx.CreateInstance(ctx, NewNode(f.ProjectID, f.ID, f.Name, next+i)); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return 0, err
			}
			s.log().Info("fleet instances added to keep nodes.min", "fleet", f.Name, "added", missing, "min", nodes.Min)
			s.wake(store.TableInstances)
		}
	}
	if nodes.Max != nil && len(active) > *nodes.Max {
		// The newest idle instances go first; busy ones are left to finish their jobs.
		slices.SortFunc(active, func(a, b *models.Instance) int { return b.InstanceNum - a.InstanceNum })
		var drop []string
		for _, inst := range active {
			if len(active)-len(drop) <= *nodes.Max {
				break
			}
			if inst.Status != models.InstanceBusy {
				drop = append(drop, inst.ID)
			}
		}
		if err := s.Store.RequestInstanceTermination(ctx, drop); err != nil {
			return 0, err
		}
		s.wake(store.TableInstances)
	}
	if err := s.deleteGroups(ctx, f.ID, false); err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		s.log().Warn("cannot delete an unused placement group; retrying", "fleet", f.Name, "err", err)
		wait = minWait(wait, 30*time.Second)
	}
	return wait, nil
}

func minWait(a, b time.Duration) time.Duration {
	if a == 0 {
		return b
	}
	return min(a, b)
}

// keepsNode reports an idle instance its fleet keeps whatever its idle_duration: the fleet is a
// cloud fleet with no more active instances than nodes.min.
func (s *Service) keepsNode(ctx context.Context, inst *models.Instance) (bool, error) {
	if inst.FleetID == "" {
		return false, nil
	}
	f, err := s.Store.GetFleetByID(ctx, inst.FleetID)
	if err != nil {
		return false, err
	}
	nodes, ok := nodesFleet(f)
	if !ok || f.DeleteRequested {
		return false, nil
	}
	insts, err := s.Store.ListInstances(ctx, store.InstanceFilter{FleetIDs: []string{f.ID}, OnlyActive: true})
	if err != nil {
		return false, err
	}
	n := 0
	for _, i := range insts {
		if !i.TerminateRequested {
			n++
		}
	}
	return n <= nodes.Min, nil
}
