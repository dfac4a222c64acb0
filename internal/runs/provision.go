package runs

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/dstackgo/dstack/internal/agentapi"
	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/bootstrap"
	"github.com/dstackgo/dstack/internal/fleets"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/offers"
	"github.com/dstackgo/dstack/internal/store"
)

// DefaultMaxOffersTried is how many offers a job tries before it fails for want of capacity
// (DSTACK_SERVER_MAX_OFFERS_TRIED).
const DefaultMaxOffersTried = 25

// CreationPolicyReuse is the creation_policy that never provisions (only existing instances).
const CreationPolicyReuse = "reuse"

// CapacityMemory remembers the offers a provider recently refused for want of capacity, by
// backend, region and instance type, so that jobs skip them and plans show them not_available for
// a while. It is safe for concurrent use; the zero value remembers for DefaultCapacityTTL.
type CapacityMemory struct {
	TTL time.Duration

	mu      sync.Mutex
	refused map[string]time.Time
}

// DefaultCapacityTTL is how long a capacity refusal is remembered.
const DefaultCapacityTTL = 3 * time.Minute

func capacityKey(o offers.Offer) string {
	return o.Backend + "\x00" + o.Region + "\x00" + o.Instance.Name
}

// Refused records a capacity refusal of an offer.
func (c *CapacityMemory) Refused(o offers.Offer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refused == nil {
		c.refused = map[string]time.Time{}
	}
	c.refused[capacityKey(o)] = time.Now()
}

// Any reports whether a refusal by the backend is remembered.
func (c *CapacityMemory) Any(backend string) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, at := range c.refused {
		if strings.HasPrefix(k, backend+"\x00") && time.Since(at) < c.ttl() {
			return true
		}
	}
	return false
}

func (c *CapacityMemory) ttl() time.Duration {
	if c.TTL > 0 {
		return c.TTL
	}
	return DefaultCapacityTTL
}

// Recent reports whether the offer's backend, region and instance type were refused recently.
func (c *CapacityMemory) Recent(o offers.Offer) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok := c.refused[capacityKey(o)]
	if ok && time.Since(at) >= c.ttl() {
		delete(c.refused, capacityKey(o))
		return false
	}
	return ok
}

// OfferQuery is the offer query of a job: its requirements and the run's profile filters.
func OfferQuery(js models.JobSpec, params models.ProfileParams) offers.Query {
	return offers.Query{Requirements: offers.Requirements{Resources: js.Requirements.Resources, MaxPrice: params.MaxPrice,
		Spot: js.Requirements.Spot}, Backends: params.Backends, Regions: params.Regions,
		AvailabilityZones: params.AvailabilityZones, InstanceTypes: params.InstanceTypes}
}

func (s *Service) maxOffersTried() int {
	if s.MaxOffersTried > 0 {
		return s.MaxOffersTried
	}
	return DefaultMaxOffersTried
}

// provision creates a machine for the job from its backends' offers (dstack-spec §5.6): the
// available offers, cheapest first, are tried in turn (at most MaxOffersTried) until a backend
// creates one, which is recorded as a provisioning instance of the run's fleet (made for the run
// when it has none) with the job on it. Each failure is shown in the job's status message as the
// next offer is tried; capacity refusals are remembered. When every offer fails the job fails
// with failed_to_start_due_to_no_capacity. tried is false when there was no offer to try (the
// caller then waits for a fleet instance or fails the job as without backends); explanation then
// says why there was none.
//
// master, for the other nodes of a multi-node replica, is the master's instance: they go to its
// fleet, backend and region.
func (p *job) provision(ctx context.Context, master *models.Instance) (tried bool, explanation string, err error) {
	if p.Offers == nil || p.Compute == nil {
		return false, "", nil
	}
	j, run := p.j, p.run
	params := run.Spec.Params()
	q := OfferQuery(j.Spec, params)
	fleetName := run.Name
	if master != nil {
		q.Backends, q.Regions = []string{master.Backend}, []string{master.Region}
		if f, err := p.Store.GetFleetByID(ctx, master.FleetID); err == nil {
			fleetName = f.Name
		}
	}
	p.vols.restrict(&q)
	list, explanation, err := p.Offers(ctx, j.ProjectID, q, p.maxOffersTried())
	if err != nil {
		return false, explanation, err
	}
	// Only where the job's volumes are, in their zone.
	var vols [][]*models.Volume
	fitting := list[:0:0]
	for _, o := range list {
		if o, v, ok := p.vols.fitOffer(o); ok {
			fitting, vols = append(fitting, o), append(vols, v)
		}
	}
	if list = fitting; len(list) == 0 {
		if explanation == "" && p.vols != nil {
			explanation = "no offer where the job's volumes are"
		}
		return false, explanation, nil
	}
	proj, err := p.Store.GetProjectByID(ctx, j.ProjectID)
	if err != nil {
		return false, "", err
	}
	num, err := p.Store.NextInstanceNum(ctx, j.ProjectID, fleetName)
	if err != nil {
		return false, "", err
	}
	name := fmt.Sprintf("%s-%d", fleetName, num)
	prepare := func(_ context.Context, i int, o offers.Offer, _ backends.Compute) (backends.InstanceConfig, string, error) {
		cfg := p.instanceConfig(proj, name, o)
		if o.InstanceRuntime == offers.RuntimeRunner {
			cfg.Volumes = mountedVolumes(p.vols, vols[i]) // a container backend mounts them at creation
		}
		return cfg, "", nil
	}
	progress := func(msg string) error {
		j.StatusMessage = msg
		return p.save(ctx)
	}
	launcher := fleets.Launcher{Compute: p.Compute, Refused: p.Capacity.Refused, Log: p.log().With("job", j.JobName)}
	m, failures, err := launcher.Launch(ctx, j.ProjectID, list, prepare, progress)
	if err != nil {
		return true, "", err
	}
	if m == nil {
		j.StatusMessage = "no capacity"
		p.terminating(models.JobNoCapacity, "All offers failed: "+strings.Join(failures, "; "))
		return true, "", p.save(ctx)
	}
	return true, "", p.record(ctx, m, fleetName, name, num)
}

// record records the machine a backend created for the job as a provisioning instance of the
// run's fleet, with the job on it; a machine that cannot be recorded is given back.
func (p *job) record(ctx context.Context, m *fleets.Launched, fleetName, name string, num int) error {
	j, run, o, pd := p.j, p.run, m.Offer, m.PD
	// The machine exists from here on: record it even if the lease ends meanwhile, or give it back.
	ctx = context.WithoutCancel(ctx)
	it := fleets.InstanceTypeOf(o.Instance)
	jpd := fleets.FromBackend(pd, it)
	inst := &models.Instance{ProjectID: j.ProjectID, Name: name, InstanceNum: num, Status: models.InstanceProvisioning,
		StatusMessage: "created: waiting for the machine to boot", Backend: o.Backend, Region: o.Region, Price: o.Price,
		InstanceType: it, JPD: jpd, TotalBlocks: 1, BusyBlocks: 1, JobID: j.ID}
	fleet := &models.Fleet{Name: fleetName, Status: models.FleetActive, Spec: models.FleetSpec{Autocreated: true,
		Configuration: models.FleetConfiguration{Type: "fleet", Name: &fleetName, IdleDuration: run.Spec.Params().IdleDuration},
		Profile:       models.Profile{Name: "default"}}}
	jobJPD := *jpd
	j.JPD = &jobJPD
	j.JRD = &models.JobRuntimeData{NetworkMode: agentapi.NetworkModeHost}
	j.Status, j.StatusMessage = models.JobProvisioning, "provisioning "+name
	if err := p.Store.RecordCloudInstance(ctx, p.lease, j, fleet, inst); err != nil {
		p.log().Error("cannot record a created machine; terminating it", "job", j.JobName, "backend", o.Backend, "id", pd.InstanceID, "err", err)
		tctx, cancel := context.WithTimeout(ctx, time.Minute)
		if terr := m.Compute.TerminateInstance(tctx, pd.InstanceID, pd.Region, pd.BackendData); terr != nil {
			p.log().Error("cannot terminate the unrecorded machine; the orphan reconciler will", "backend", o.Backend, "id", pd.InstanceID, "err", terr)
		}
		cancel()
		return err
	}
	p.inst = inst
	p.log().Info("machine created", "job", j.JobName, "instance", name, "offer", fleets.DescribeOffer(o), "id", pd.InstanceID,
		"took", m.Took.Round(time.Millisecond))
	p.wakeRow(ctx, store.TableRuns, j.RunID)
	p.wake(store.TableInstances)
	return nil
}

// instanceConfig is what the machine of an offer gets: the project's key (the server's way in) and
// the run's user's key, the shim's download address, the job's image on a container backend, and
// tags naming the project, this server and the instance, which the orphan reconciler goes by.
func (p *job) instanceConfig(proj *models.Project, name string, o offers.Offer) backends.InstanceConfig {
	keys := []string{strings.TrimSpace(proj.SSHPublicKey)}
	if k := p.run.Spec.SSHKeyPub; k != nil && strings.TrimSpace(*k) != "" {
		keys = append(keys, strings.TrimSpace(*k))
	}
	tags := map[string]string{}
	for k, v := range p.run.Spec.Params().Tags {
		tags[k] = v
	}
	tags["dstack_project"], tags["dstack_server"], tags["dstack_instance"] = proj.Name, p.ServerID, name
	cfg := backends.InstanceConfig{ProjectName: proj.Name, InstanceName: fleets.ProviderName(name, p.ServerID),
		SSHPublicKeys: keys, Tags: tags}
	if p.ShimURL != nil {
		arch := "amd64"
		if o.Instance.Resources.CPUArch == "arm" {
			arch = "arm64"
		}
		cfg.ShimURL = p.ShimURL(arch)
	}
	if o.InstanceRuntime == offers.RuntimeRunner {
		cfg.ShimEnv = map[string]string{bootstrap.EnvJobImage: p.j.Spec.ImageName}
	}
	return cfg
}
