package server

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dstackgo/dstack/internal/fleets"
	"github.com/dstackgo/dstack/internal/gateways"
	"github.com/dstackgo/dstack/internal/logstore"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/offers"
	"github.com/dstackgo/dstack/internal/pipeline"
	"github.com/dstackgo/dstack/internal/runs"
	"github.com/dstackgo/dstack/internal/sshpool"
	"github.com/dstackgo/dstack/internal/store"
	"github.com/dstackgo/dstack/internal/volumes"
)

// WorkOptions configure the server's background work (see package pipeline).
type WorkOptions struct {
	// Dir is the server directory; job logs are kept under it.
	Dir string
	// AgentsDir holds the dstack-shim and dstack-runner binaries given to hosts (DSTACK_AGENTS_DIR).
	AgentsDir string
	// LeaseTTL is how long a replica holds a row it works on; a replica that dies releases its rows
	// after this long (default 30s).
	LeaseTTL time.Duration
	// Poll is the slowest look for work made due by other replicas (default 2s).
	Poll time.Duration
	// HealthInterval is how often provisioned hosts are checked (default 15s).
	HealthInterval time.Duration
	// DefaultImage is the image of run configurations without one (default runs.DefaultImage).
	DefaultImage string
	// UnreachableGrace is how long a running job's host may be unreachable before the job fails
	// with instance_unreachable and a cloud instance is terminated (default 20 min,
	// DSTACK_SERVER_INSTANCE_TERMINATION_DEADLINE_SECONDS). SSH-fleet hosts are only marked.
	UnreachableGrace time.Duration
	// MaxOffersTried is how many offers a job tries before it fails for want of capacity (default
	// 25, DSTACK_SERVER_MAX_OFFERS_TRIED).
	MaxOffersTried int
	// OrphanInterval is the time between passes of the orphan reconciler (default 5 min; negative:
	// no reconciler); OrphanGrace is how long an unknown machine is left alone (default 10 min).
	OrphanInterval, OrphanGrace time.Duration
	// MetricsInterval is how often running jobs' metrics are sampled (default 10s); MetricsTTL is
	// how long the samples are kept (default 1h, DSTACK_SERVER_METRICS_TTL_SECONDS).
	MetricsInterval, MetricsTTL time.Duration
	// CloudInitGrace is how long cloud-init has to start dstack-shim on a reachable VM before the
	// server installs it over SSH (default 3 min, DSTACK_SERVER_CLOUD_INIT_GRACE_SECONDS).
	CloudInitGrace time.Duration
	// GatewaySync is how often running gateways get their routes again (default 10s,
	// DSTACK_SERVER_GATEWAY_SYNC_SECONDS).
	GatewaySync time.Duration
}

// WorkOptionsFromEnv reads the options of `dstack server` from its environment: DSTACK_AGENTS_DIR,
// DSTACK_SERVER_DEFAULT_IMAGE, DSTACK_SERVER_LEASE_TTL_SECONDS, DSTACK_SERVER_POLL_SECONDS,
// DSTACK_SERVER_MAX_OFFERS_TRIED, DSTACK_SERVER_ORPHAN_INTERVAL_SECONDS ("off" disables the
// reconciler), DSTACK_SERVER_ORPHAN_GRACE_SECONDS, DSTACK_SERVER_METRICS_TTL_SECONDS and
// DSTACK_SERVER_METRICS_INTERVAL_SECONDS (how often running jobs are sampled, 10),
// DSTACK_SERVER_INSTANCE_TERMINATION_DEADLINE_SECONDS (20 min) and
// DSTACK_SERVER_CLOUD_INIT_GRACE_SECONDS (3 min) and DSTACK_SERVER_GATEWAY_SYNC_SECONDS (10).
func WorkOptionsFromEnv(dir string) WorkOptions {
	o := WorkOptions{Dir: dir, AgentsDir: os.Getenv("DSTACK_AGENTS_DIR"), DefaultImage: os.Getenv("DSTACK_SERVER_DEFAULT_IMAGE")}
	seconds := func(name string) time.Duration {
		f, err := strconv.ParseFloat(os.Getenv(name), 64)
		if err != nil || f <= 0 {
			return 0
		}
		return time.Duration(f * float64(time.Second))
	}
	o.LeaseTTL = seconds("DSTACK_SERVER_LEASE_TTL_SECONDS")
	o.Poll = seconds("DSTACK_SERVER_POLL_SECONDS")
	o.MaxOffersTried, _ = strconv.Atoi(os.Getenv("DSTACK_SERVER_MAX_OFFERS_TRIED"))
	o.OrphanInterval = seconds("DSTACK_SERVER_ORPHAN_INTERVAL_SECONDS")
	if strings.EqualFold(os.Getenv("DSTACK_SERVER_ORPHAN_INTERVAL_SECONDS"), "off") {
		o.OrphanInterval = -1
	}
	o.OrphanGrace = seconds("DSTACK_SERVER_ORPHAN_GRACE_SECONDS")
	o.MetricsTTL = seconds("DSTACK_SERVER_METRICS_TTL_SECONDS")
	o.UnreachableGrace = seconds("DSTACK_SERVER_INSTANCE_TERMINATION_DEADLINE_SECONDS")
	o.MetricsInterval = seconds("DSTACK_SERVER_METRICS_INTERVAL_SECONDS")
	o.CloudInitGrace = seconds("DSTACK_SERVER_CLOUD_INIT_GRACE_SECONDS")
	o.GatewaySync = seconds("DSTACK_SERVER_GATEWAY_SYNC_SECONDS")
	return o
}

// background is the server's background work: the pipelines and the services they run.
type background struct {
	opts     WorkOptions
	agents   fleets.Agents
	pool     *sshpool.Pool
	fleets   *fleets.Service
	runs     *runs.Service
	logs     *logstore.Store
	group    *pipeline.Group
	orphans  *fleets.Reconciler
	volumes  *volumes.Service
	gateways *gateways.Service
}

// work holds the background state; it is built on first use with the options set by ConfigureWork.
type work struct {
	mu   sync.Mutex
	opts WorkOptions
	bg   *background
}

// ConfigureWork sets the options of the background work; call it before Handler and StartWork.
func (s *Server) ConfigureWork(o WorkOptions) {
	s.bg.mu.Lock()
	defer s.bg.mu.Unlock()
	s.bg.opts = o
	s.bg.bg = nil
}

func (s *Server) work() *background {
	s.bg.mu.Lock()
	defer s.bg.mu.Unlock()
	if s.bg.bg != nil {
		return s.bg.bg
	}
	o := s.bg.opts
	serverID, err := s.store.ServerID(context.Background())
	if err != nil {
		// Machines are then created unmarked, and the orphan reconciler leaves everything alone.
		s.log.Error("cannot read the server id", "err", err)
	}
	b := &background{opts: o, agents: fleets.Agents{Dir: o.AgentsDir}, pool: sshpool.New()}
	b.fleets = &fleets.Service{Store: s.store, Pool: b.pool, Agents: b.agents, Log: s.log, Wake: b.wake,
		HealthInterval: o.HealthInterval, Compute: s.computeFor, TerminationDeadline: o.UnreachableGrace,
		CloudInitGrace: o.CloudInitGrace}
	// Cloud fleets (`nodes`, `placement: cluster`): their machines come from the same offers,
	// capacity memory and failover as jobs' machines (fleets/nodes.go).
	b.fleets.Nodes = fleets.NodeOptions{Offers: s.jobOffers, Refused: s.capacity.Refused, MaxOffersTried: o.MaxOffersTried,
		ServerID: serverID, ShimURL: s.shimURL}
	b.logs = &logstore.Store{Dir: o.Dir}
	b.runs = &runs.Service{Store: s.store, Pool: b.pool, Logs: b.logs, Log: s.log, Wake: b.wake,
		DefaultImage: o.DefaultImage, UnreachableGrace: o.UnreachableGrace, Offers: s.jobOffers, Compute: s.computeFor,
		Capacity: s.capacity, MaxOffersTried: o.MaxOffersTried, ServerID: serverID, ShimURL: s.shimURL,
		MetricsInterval: o.MetricsInterval, MetricsTTL: o.MetricsTTL}
	b.orphans = &fleets.Reconciler{Store: s.store, Log: s.log, ServerID: serverID, Backends: s.cloudBackends,
		Interval: o.OrphanInterval, Grace: o.OrphanGrace}
	b.volumes = &volumes.Service{Store: s.store, Compute: s.computeFor, ServerID: serverID, Log: s.log}
	b.runs.ReplicasChanged = func(ctx context.Context, run *models.Run) {
		if err := b.gateways.WakeProject(ctx, run.ProjectID); err != nil {
			s.log.Warn("cannot wake the project's gateways", "run", run.Name, "err", err)
			return
		}
		b.wake(store.TableGateways)
	}
	b.gateways = &gateways.Service{Store: s.store, Pool: b.pool, Agents: b.agents, Compute: s.computeFor, ServerID: serverID,
		Log: s.log, Poll: o.Poll, SyncInterval: o.GatewaySync, ShimURL: s.shimURL}
	pipe := func(table string, fn pipeline.Func) *pipeline.Pipeline {
		return &pipeline.Pipeline{Table: table, Store: s.store, Process: fn, TTL: o.LeaseTTL, Poll: o.Poll, Log: s.log}
	}
	b.group = pipeline.NewGroup(
		pipe(store.TableInstances, b.fleets.ProcessInstance),
		pipe(store.TableFleets, b.fleets.ProcessFleet),
		pipe(store.TableJobs, b.runs.ProcessJob),
		pipe(store.TableRuns, b.runs.ProcessRun),
		pipe(store.TableVolumes, b.volumes.Process),
		pipe(store.TableGateways, b.gateways.Process),
	)
	s.bg.bg = b
	return b
}

func (b *background) wake(table string) { b.group.Wake(table) }

// StartWork runs the background pipelines until ctx ends; the returned function waits for them
// to stop and closes the SSH connections.
func (s *Server) StartWork(ctx context.Context) (wait func()) {
	b := s.work()
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.group.Run(ctx)
	}()
	orphansDone := make(chan struct{})
	go func() {
		defer close(orphansDone)
		if b.opts.OrphanInterval >= 0 {
			b.orphans.Run(ctx)
		}
	}()
	return func() {
		<-done
		<-orphansDone
		b.pool.CloseAll()
	}
}

type runFleetJSON struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type jobSubmissionJSON struct {
	ID                       string                      `json:"id"`
	SubmissionNum            int                         `json:"submission_num"`
	DeploymentNum            int                         `json:"deployment_num"`
	SubmittedAt              string                      `json:"submitted_at"`
	LastProcessedAt          string                      `json:"last_processed_at"`
	FinishedAt               *string                     `json:"finished_at"`
	InactivitySecs           *int                        `json:"inactivity_secs"`
	Status                   string                      `json:"status"`
	StatusMessage            string                      `json:"status_message"`
	TerminationReason        *string                     `json:"termination_reason"`
	TerminationReasonMessage *string                     `json:"termination_reason_message"`
	ExitStatus               *int                        `json:"exit_status"`
	JobProvisioningData      *models.JobProvisioningData `json:"job_provisioning_data"`
	JobRuntimeData           *models.JobRuntimeData      `json:"job_runtime_data"`
	Error                    *string                     `json:"error"`
	Probes                   []any                       `json:"probes"`
	ImagePullProgress        any                         `json:"image_pull_progress"`
}

type jobJSON struct {
	JobSpec           models.JobSpec      `json:"job_spec"`
	JobSubmissions    []jobSubmissionJSON `json:"job_submissions"`
	JobConnectionInfo any                 `json:"job_connection_info"`
}

type runJSON struct {
	ID                  string             `json:"id"`
	ProjectName         string             `json:"project_name"`
	User                string             `json:"user"`
	Fleet               *runFleetJSON      `json:"fleet"`
	SubmittedAt         string             `json:"submitted_at"`
	LastProcessedAt     string             `json:"last_processed_at"`
	Status              string             `json:"status"`
	StatusMessage       string             `json:"status_message"`
	TerminationReason   *string            `json:"termination_reason"`
	RunSpec             models.RunSpec     `json:"run_spec"`
	Jobs                []jobJSON          `json:"jobs"`
	LatestJobSubmission *jobSubmissionJSON `json:"latest_job_submission"`
	Cost                float64            `json:"cost"`
	Service             any                `json:"service"`
	DeploymentNum       int                `json:"deployment_num"`
	Error               *string            `json:"error"`
	Deleted             bool               `json:"deleted"`
	NextTriggeredAt     *string            `json:"next_triggered_at"`
}

func submissionJSON(j *models.Job) jobSubmissionJSON {
	out := jobSubmissionJSON{ID: j.ID, SubmissionNum: j.SubmissionNum, SubmittedAt: apiTime(j.SubmittedAt),
		LastProcessedAt: apiTime(j.LastProcessedAt), Status: j.Status, StatusMessage: j.StatusMessage,
		TerminationReason: nonEmpty(j.TerminationReason), TerminationReasonMessage: nonEmpty(j.TerminationReasonMessage),
		ExitStatus: j.ExitStatus, JobProvisioningData: j.JPD, JobRuntimeData: j.JRD, Error: nonEmpty(j.Error), Probes: []any{}}
	if j.FinishedAt != nil {
		t := apiTime(*j.FinishedAt)
		out.FinishedAt = &t
	}
	if j.StopReason != "" && !models.JobFinished(j.Status) {
		out.Status = models.JobTerminating
	}
	return out
}

// runJSON renders a run; submissionsLimit > 0 keeps only the last submissions of each job. A run
// whose stop was requested shows as terminating at once, as in dstack.
func (s *Server) runJSON(r *request, run *models.Run, projectName string, withJobs bool, submissionsLimit int) (runJSON, error) {
	ctx := r.Context()
	out := runJSON{ID: run.ID, ProjectName: projectName, SubmittedAt: apiTime(run.SubmittedAt),
		LastProcessedAt: apiTime(run.LastProcessedAt), Status: run.Status, StatusMessage: run.StatusMessage,
		TerminationReason: nonEmpty(run.TerminationReason), RunSpec: run.Spec, Jobs: []jobJSON{}, Error: nonEmpty(run.Error),
		Deleted: run.Deleted}
	if run.StopReason != "" && !models.RunFinished(run.Status) {
		out.Status, out.StatusMessage = models.RunTerminating, models.RunTerminating
	}
	if u, err := s.store.GetUserByID(ctx, run.UserID); err == nil {
		out.User = u.Username
	} else if errors.Is(err, store.ErrNotFound) {
		out.User = "deleted-user"
	} else {
		return out, err
	}
	if run.FleetID != "" {
		if f, err := s.store.GetFleetByID(ctx, run.FleetID); err == nil {
			out.Fleet = &runFleetJSON{ID: f.ID, Name: f.Name}
		}
	}
	if svc := run.Spec.Configuration.Service; svc != nil {
		// Through the service's gateway once it has a domain, else through the server's own proxy.
		url := "/proxy/services/" + projectName + "/" + run.Name + "/"
		if g, err := gateways.ForService(ctx, s.store, run.ProjectID, svc); err == nil && g != nil {
			if u := gateways.ServiceURL(g, run.Name, svc); u != "" {
				url = u
			}
		}
		out.Service = map[string]any{"url": url, "model": nil, "options": map[string]any{}}
	}
	jobs, err := s.store.ListJobs(ctx, run.ID)
	if err != nil {
		return out, err
	}
	var latest *models.Job
	for i := 0; i < len(jobs); {
		k := i
		for k < len(jobs) && jobs[k].ReplicaNum == jobs[i].ReplicaNum && jobs[k].JobNum == jobs[i].JobNum {
			k++
		}
		group := jobs[i:k]
		last := group[len(group)-1]
		if jobs[i].JobNum == 0 && jobs[i].ReplicaNum == 0 {
			latest = last
		}
		for _, j := range group {
			if j.JPD != nil {
				if end := j.FinishedAt; end != nil || j.StartedAt != nil {
					stop := time.Now()
					if end != nil {
						stop = *end
					}
					if j.StartedAt != nil {
						out.Cost += j.JPD.Price * stop.Sub(*j.StartedAt).Hours()
					}
				}
			}
		}
		if submissionsLimit > 0 && len(group) > submissionsLimit {
			group = group[len(group)-submissionsLimit:]
		}
		jj := jobJSON{JobSpec: last.Spec, JobSubmissions: []jobSubmissionJSON{}}
		for _, j := range group {
			jj.JobSubmissions = append(jj.JobSubmissions, submissionJSON(j))
		}
		if withJobs {
			out.Jobs = append(out.Jobs, jj)
		}
		i = k
	}
	if latest != nil {
		sj := submissionJSON(latest)
		out.LatestJobSubmission = &sj
	}
	return out, nil
}

type getRunPlanRequest struct {
	RunSpec              models.RunSpec `json:"run_spec" required:"true"`
	MaxOffers            *int           `json:"max_offers"`
	FullOffers           bool           `json:"full_offers"`
	UnallocatedResources bool           `json:"unallocated_resources"`
	ForOffersOnly        bool           `json:"for_offers_only"`
}

type jobPlanJSON struct {
	JobSpec     models.JobSpec       `json:"job_spec"`
	Offers      []any                `json:"offers"`
	TotalOffers int                  `json:"total_offers"`
	MaxPrice    *float64             `json:"max_price"`
	Notes       []offers.BackendNote `json:"notes,omitempty"`
	Explanation string               `json:"explanation,omitempty"`
}

type runPlanJSON struct {
	ProjectName      string         `json:"project_name"`
	User             string         `json:"user"`
	RunSpec          models.RunSpec `json:"run_spec"`
	EffectiveRunSpec models.RunSpec `json:"effective_run_spec"`
	JobPlans         []jobPlanJSON  `json:"job_plans"`
	CurrentResource  *runJSON       `json:"current_resource"`
	Action           string         `json:"action"`
}

// fleetOffer is an instance of an SSH fleet shown as an offer (availability idle or busy).
type fleetOffer struct {
	Backend           string              `json:"backend"`
	Instance          models.InstanceType `json:"instance"`
	Region            string              `json:"region"`
	Price             float64             `json:"price"`
	BackendData       map[string]any      `json:"backend_data"`
	Availability      string              `json:"availability"`
	AvailabilityZones []string            `json:"availability_zones"`
	InstanceRuntime   string              `json:"instance_runtime"`
	Blocks            int                 `json:"blocks"`
	TotalBlocks       int                 `json:"total_blocks"`
}

func (s *Server) getRunPlan(r *request) (any, *apiError) {
	var req getRunPlanRequest
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	if req.MaxOffers != nil && (*req.MaxOffers < 1 || *req.MaxOffers > 10000) {
		return nil, unprocessable(validationItem{Type: "less_than_equal", Loc: []any{"body", "max_offers"},
			Msg: "Input should be between 1 and 10000", Input: *req.MaxOffers})
	}
	plan, e := s.runPlan(r, runs.Normalise(req.RunSpec), req.MaxOffers)
	if e != nil {
		return nil, e
	}
	return plan, nil
}

func (s *Server) runPlan(r *request, spec models.RunSpec, maxOffers *int) (*runPlanJSON, *apiError) {
	ctx := r.Context()
	if err := runs.Check(spec); err != nil {
		return nil, badRequestf("%v", err)
	}
	eff := runs.EffectiveSpec(spec, r.user.SSHPublicKey)
	name := "dry-run"
	if spec.RunName != nil {
		name = *spec.RunName
	}
	specs, err := runs.JobSpecs(name, eff, s.work().runs.Image())
	if err != nil {
		return nil, badRequestf("%v", err)
	}
	plan := &runPlanJSON{ProjectName: r.project.Name, User: r.user.Username, RunSpec: spec, EffectiveRunSpec: eff, Action: "create"}
	if spec.RunName != nil {
		// The run of that name is shown even when it has finished (a new one then replaces it).
		run, err := s.store.GetRun(ctx, r.project.ID, *spec.RunName)
		switch {
		case err == nil:
			rj, err := s.runJSON(r, run, r.project.Name, true, 0)
			if err != nil {
				return nil, s.internal(err)
			}
			plan.CurrentResource = &rj
			if !models.RunFinished(run.Status) {
				plan.Action = "update"
			}
		case !errors.Is(err, store.ErrNotFound):
			return nil, s.internal(err)
		}
	}
	limit := 50
	if maxOffers != nil {
		limit = *maxOffers
	}
	fleetOffers, err := s.fleetOffers(r, specs[0], eff)
	if err != nil {
		return nil, s.internal(err)
	}
	q := runs.OfferQuery(specs[0], eff.Params())
	cloud, err := s.PlanOffers(ctx, r.project.ID, q, max(0, limit-len(fleetOffers)))
	if err != nil {
		return nil, s.internal(err)
	}
	for _, js := range specs {
		jp := jobPlanJSON{JobSpec: js, Offers: []any{}, Notes: cloud.Notes}
		for _, o := range fleetOffers {
			if len(jp.Offers) < limit {
				jp.Offers = append(jp.Offers, o)
			}
		}
		for _, o := range cloud.Offers {
			if len(jp.Offers) < limit {
				jp.Offers = append(jp.Offers, o)
			}
		}
		jp.TotalOffers = len(fleetOffers) + cloud.Total
		if cloud.Total > 0 {
			mp := cloud.MaxPrice
			jp.MaxPrice = &mp
		} else if len(fleetOffers) > 0 {
			zero := 0.0
			jp.MaxPrice = &zero
		}
		if jp.TotalOffers == 0 {
			jp.Explanation = cloud.Explanation
		}
		plan.JobPlans = append(plan.JobPlans, jp)
	}
	return plan, nil
}

// fleetOffers lists the project's fleet instances that fit a job, idle ones first.
func (s *Server) fleetOffers(r *request, js models.JobSpec, spec models.RunSpec) ([]fleetOffer, error) {
	insts, err := s.store.ListInstances(r.Context(), store.InstanceFilter{ProjectIDs: []string{r.project.ID}, OnlyActive: true,
		Page: store.Page{Ascending: true}})
	if err != nil {
		return nil, err
	}
	params := spec.Params()
	var idle, busy []fleetOffer
	for _, inst := range insts {
		if inst.Status != models.InstanceIdle && inst.Status != models.InstanceBusy || inst.TerminateRequested {
			continue
		}
		f, err := s.store.GetFleetByID(r.Context(), inst.FleetID)
		if err != nil || f.DeleteRequested {
			continue
		}
		k, why := runs.BlocksFor(inst, f.Name, js.Requirements, spec.Configuration, params)
		if why != "" {
			continue
		}
		// An instance split into blocks offers the share of the blocks the job would take (k/n).
		n := max(inst.TotalBlocks, 1)
		it := inst.InstanceType
		it.Resources = fleets.BlockShare(it.Resources, k, n)
		o := fleetOffer{Backend: inst.Backend, Instance: it, Region: inst.Region, Price: inst.Price,
			BackendData: map[string]any{}, Availability: "idle", InstanceRuntime: "shim", Blocks: k, TotalBlocks: n}
		busyNow := inst.Status == models.InstanceBusy && (n <= 1 || n-inst.BusyBlocks < k)
		if busyNow || inst.Unreachable {
			o.Availability = "busy"
			busy = append(busy, o)
		} else {
			idle = append(idle, o)
		}
	}
	return append(idle, busy...), nil
}

type applyRunRequest struct {
	Plan struct {
		RunSpec         models.RunSpec `json:"run_spec" required:"true"`
		CurrentResource any            `json:"current_resource"`
	} `json:"plan" required:"true"`
	Force bool `json:"force" required:"true"`
}

var runNameRe = regexp.MustCompile(`^[a-z][a-z0-9-]{1,40}$`)

func (s *Server) applyRun(r *request) (any, *apiError) {
	var req applyRunRequest
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	ctx := r.Context()
	spec := runs.Normalise(req.Plan.RunSpec)
	if err := runs.Check(spec); err != nil {
		return nil, badRequestf("%v", err)
	}
	if spec.RunName == nil || *spec.RunName == "" {
		name := runs.GenerateName()
		spec.RunName = &name
	}
	name := *spec.RunName
	if !runNameRe.MatchString(name) {
		return nil, badRequestf("Resource name should match regex '^[a-z][a-z0-9-]{1,40}$'")
	}
	if existing, err := s.store.GetRun(ctx, r.project.ID, name); err == nil && !models.RunFinished(existing.Status) {
		if !req.Force {
			cur, ok := req.Plan.CurrentResource.(map[string]any)
			if !ok || cur["id"] != existing.ID {
				return nil, errResourceChanged
			}
		}
		return nil, badRequestf("Cannot override active run. Stop the run first.")
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, s.internal(err)
	}
	if svc := spec.Configuration.Service; svc != nil {
		if _, err := gateways.ForService(ctx, s.store, r.project.ID, svc); errors.Is(err, gateways.ErrNoGateway) {
			return nil, badRequestf("%v", err)
		} else if err != nil {
			return nil, s.internal(err)
		}
	}
	eff := runs.EffectiveSpec(spec, r.user.SSHPublicKey)
	specs, err := runs.JobSpecs(name, eff, s.work().runs.Image())
	if err != nil {
		return nil, badRequestf("%v", err)
	}
	run := &models.Run{ProjectID: r.project.ID, UserID: r.user.ID, Name: name, Status: models.RunSubmitted,
		StatusMessage: models.RunSubmitted, Spec: eff}
	var jobs []*models.Job
	for _, js := range specs {
		jobs = append(jobs, &models.Job{JobNum: js.JobNum, ReplicaNum: js.ReplicaNum, JobName: js.JobName, Spec: js,
			Status: models.JobSubmitted, StatusMessage: models.JobSubmitted})
	}
	if err := s.store.CreateRun(ctx, run, jobs); err != nil {
		if errors.Is(err, store.ErrExists) {
			return nil, badRequestf("Cannot override active run. Stop the run first.")
		}
		return nil, s.internal(err)
	}
	s.work().wake(store.TableJobs)
	s.work().wake(store.TableRuns)
	rj, err := s.runJSON(r, run, r.project.Name, true, 0)
	if err != nil {
		return nil, s.internal(err)
	}
	return rj, nil
}

type getRunRequest struct {
	RunName *string `json:"run_name"`
	ID      *string `json:"id"`
}

func (s *Server) getRun(r *request) (any, *apiError) {
	var req getRunRequest
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	run, e := s.findRun(r, req.RunName, req.ID)
	if e != nil {
		return nil, e
	}
	rj, err := s.runJSON(r, run, r.project.Name, true, 0)
	if err != nil {
		return nil, s.internal(err)
	}
	return rj, nil
}

var errRunNotFound = clientError(codeResourceNotExists, "Run not found")

func (s *Server) findRun(r *request, name, id *string) (*models.Run, *apiError) {
	var (
		run *models.Run
		err error
	)
	switch {
	case id != nil:
		run, err = s.store.GetRunByID(r.Context(), *id)
		if err == nil && run.ProjectID != r.project.ID {
			err = store.ErrNotFound
		}
	case name != nil:
		run, err = s.store.GetRun(r.Context(), r.project.ID, *name)
	default:
		return nil, badRequestf("run_name or id must be specified")
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, errRunNotFound
	}
	if err != nil {
		return nil, s.internal(err)
	}
	return run, nil
}

type stopRunsRequest struct {
	RunsNames []string `json:"runs_names" required:"true"`
	Abort     bool     `json:"abort" required:"true"`
}

func (s *Server) stopRuns(r *request) (any, *apiError) {
	var req stopRunsRequest
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	var ids []string
	for _, name := range req.RunsNames {
		run, err := s.store.GetRun(r.Context(), r.project.ID, name)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, s.internal(err)
		}
		ids = append(ids, run.ID)
	}
	reason := models.RunStoppedByUser
	if req.Abort {
		reason = models.RunAbortedByUser
	}
	if err := s.store.RequestRunStop(r.Context(), ids, reason); err != nil {
		return nil, s.internal(err)
	}
	s.work().wake(store.TableRuns)
	return nil, nil
}

type deleteRunsRequest struct {
	RunsNames []string `json:"runs_names" required:"true"`
}

func (s *Server) deleteRuns(r *request) (any, *apiError) {
	var req deleteRunsRequest
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	active, err := s.store.DeleteRuns(r.Context(), r.project.ID, req.RunsNames)
	if err != nil {
		return nil, s.internal(err)
	}
	if len(active) > 0 {
		return nil, badRequestf("Cannot delete active runs: %v", active)
	}
	return nil, nil
}

type listRunsRequest struct {
	ProjectName         *string `json:"project_name"`
	RepoID              *string `json:"repo_id"`
	Username            *string `json:"username"`
	OnlyActive          bool    `json:"only_active"`
	IncludeJobs         *bool   `json:"include_jobs"`
	JobSubmissionsLimit *int    `json:"job_submissions_limit"`
	PrevSubmittedAt     *string `json:"prev_submitted_at"`
	PrevRunID           *string `json:"prev_run_id"`
	Limit               *int    `json:"limit"`
	Ascending           bool    `json:"ascending"`
}

func (s *Server) listRuns(r *request) (any, *apiError) {
	var req listRunsRequest
	if e := decode(r.Request, &req, true); e != nil {
		return nil, e
	}
	names, e := s.visibleProjects(r, req.ProjectName)
	if e != nil {
		return nil, e
	}
	page, e := pageOf("prev_submitted_at", req.PrevSubmittedAt, req.PrevRunID, req.Limit, 100, 100, req.Ascending)
	if e != nil {
		return nil, e
	}
	f := store.RunFilter{ProjectIDs: keys(names), OnlyActive: req.OnlyActive, Page: page}
	if req.RepoID != nil {
		f.RepoID = *req.RepoID
	}
	if req.Username != nil {
		u, err := s.store.GetUserByName(r.Context(), *req.Username)
		if errors.Is(err, store.ErrNotFound) {
			return []runJSON{}, nil
		}
		if err != nil {
			return nil, s.internal(err)
		}
		f.UserID = u.ID
	}
	list, err := s.store.ListRuns(r.Context(), f)
	if err != nil {
		return nil, s.internal(err)
	}
	withJobs := req.IncludeJobs == nil || *req.IncludeJobs
	limit := 0
	if req.JobSubmissionsLimit != nil {
		limit = *req.JobSubmissionsLimit
	}
	out := []runJSON{}
	for _, run := range list {
		rj, err := s.runJSON(r, run, names[run.ProjectID], withJobs, limit)
		if err != nil {
			return nil, s.internal(err)
		}
		out = append(out, rj)
	}
	return out, nil
}

type initRepoRequest struct {
	RepoID    string         `json:"repo_id" required:"true"`
	RepoInfo  map[string]any `json:"repo_info" required:"true"`
	RepoCreds map[string]any `json:"repo_creds"`
}

// initRepo stores what the CLI says about the run's repository; runs of this server get no code
// from it yet (upload_code is sent empty).
func (s *Server) initRepo(r *request) (any, *apiError) {
	var req initRepoRequest
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	info, _ := json.Marshal(req.RepoInfo)
	var creds []byte
	if req.RepoCreds != nil {
		creds, _ = json.Marshal(req.RepoCreds)
	}
	if err := s.store.SaveRepo(r.Context(), r.project.ID, req.RepoID, info, creds); err != nil {
		return nil, s.internal(err)
	}
	return nil, nil
}
