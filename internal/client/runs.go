package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Fleet is the API's Fleet, with what the CLI shows; Raw keeps the whole object (plans send it back).
type Fleet struct {
	ID            string     `json:"id"`
	Name          string     `json:"name"`
	ProjectName   string     `json:"project_name"`
	Spec          FleetSpec  `json:"spec"`
	CreatedAt     time.Time  `json:"created_at"`
	Status        string     `json:"status"`
	StatusMessage *string    `json:"status_message"`
	Instances     []Instance `json:"instances"`
}

// FleetSpec is the part of a fleet's spec the CLI reads.
type FleetSpec struct {
	Configuration json.RawMessage `json:"configuration"`
}

// Instance is the API's Instance.
type Instance struct {
	ID                       string        `json:"id"`
	Name                     string        `json:"name"`
	Backend                  *string       `json:"backend"`
	InstanceType             *InstanceType `json:"instance_type"`
	FleetName                *string       `json:"fleet_name"`
	InstanceNum              int           `json:"instance_num"`
	JobName                  *string       `json:"job_name"`
	Hostname                 *string       `json:"hostname"`
	Status                   string        `json:"status"`
	Unreachable              bool          `json:"unreachable"`
	TerminationReason        *string       `json:"termination_reason"`
	TerminationReasonMessage *string       `json:"termination_reason_message"`
	Created                  time.Time     `json:"created"`
	Region                   *string       `json:"region"`
	Price                    *float64      `json:"price"`
	// StatusMessage is this server's addition: why the instance is not ready or not reachable.
	StatusMessage *string `json:"status_message"`
}

// InstanceType is a named set of resources.
type InstanceType struct {
	Name      string    `json:"name"`
	Resources Resources `json:"resources"`
}

// Resources are an instance's resources.
type Resources struct {
	CPUs      int   `json:"cpus"`
	MemoryMiB int   `json:"memory_mib"`
	Gpus      []GPU `json:"gpus"`
	Spot      bool  `json:"spot"`
	Disk      struct {
		SizeMiB int `json:"size_mib"`
	} `json:"disk"`
}

// GPU is one accelerator.
type GPU struct {
	Name      string `json:"name"`
	MemoryMiB int    `json:"memory_mib"`
}

// FleetPlan is fleets/get_plan's answer; CurrentResource stays raw to be sent back with apply.
type FleetPlan struct {
	ProjectName     string          `json:"project_name"`
	User            string          `json:"user"`
	Spec            json.RawMessage `json:"spec"`
	EffectiveSpec   json.RawMessage `json:"effective_spec"`
	CurrentResource json.RawMessage `json:"current_resource"`
	Action          *string         `json:"action"`
}

// Run is the API's Run, with what the CLI shows.
type Run struct {
	ID                  string          `json:"id"`
	ProjectName         string          `json:"project_name"`
	User                string          `json:"user"`
	SubmittedAt         time.Time       `json:"submitted_at"`
	Status              string          `json:"status"`
	StatusMessage       string          `json:"status_message"`
	TerminationReason   *string         `json:"termination_reason"`
	RunSpec             json.RawMessage `json:"run_spec"`
	Jobs                []Job           `json:"jobs"`
	LatestJobSubmission *JobSubmission  `json:"latest_job_submission"`
	Cost                float64         `json:"cost"`
	Deleted             *bool           `json:"deleted"`
}

// Name is the run's name from its spec.
func (r Run) Name() string {
	var s struct {
		RunName string `json:"run_name"`
	}
	_ = json.Unmarshal(r.RunSpec, &s)
	return s.RunName
}

// Type is the run's configuration type: task, dev-environment or service.
func (r Run) Type() string {
	var s struct {
		Configuration struct {
			Type string `json:"type"`
		} `json:"configuration"`
	}
	_ = json.Unmarshal(r.RunSpec, &s)
	return s.Configuration.Type
}

// Job is one job of a run with its submissions.
type Job struct {
	JobSpec struct {
		JobName    string `json:"job_name"`
		JobNum     int    `json:"job_num"`
		ReplicaNum int    `json:"replica_num"`
		AppSpecs   []struct {
			Port      int  `json:"port"`
			MapToPort *int `json:"map_to_port"`
		} `json:"app_specs"`
	} `json:"job_spec"`
	JobSubmissions []JobSubmission `json:"job_submissions"`
}

// JobSubmission is one attempt at a job.
type JobSubmission struct {
	ID                       string               `json:"id"`
	SubmissionNum            int                  `json:"submission_num"`
	SubmittedAt              time.Time            `json:"submitted_at"`
	FinishedAt               *time.Time           `json:"finished_at"`
	Status                   string               `json:"status"`
	StatusMessage            string               `json:"status_message"`
	TerminationReason        *string              `json:"termination_reason"`
	TerminationReasonMessage *string              `json:"termination_reason_message"`
	ExitStatus               *int                 `json:"exit_status"`
	JobProvisioningData      *JobProvisioningData `json:"job_provisioning_data"`
	JobRuntimeData           *struct {
		Ports map[string]int `json:"ports"`
	} `json:"job_runtime_data"`
}

// JobProvisioningData says where a job runs.
type JobProvisioningData struct {
	Backend      string       `json:"backend"`
	InstanceType InstanceType `json:"instance_type"`
	Hostname     *string      `json:"hostname"`
	Region       string       `json:"region"`
	Price        float64      `json:"price"`
	Username     string       `json:"username"`
	SSHPort      *int         `json:"ssh_port"`
	SSHProxy     *struct {
		Hostname string `json:"hostname"`
		Username string `json:"username"`
		Port     int    `json:"port"`
	} `json:"ssh_proxy"`
}

// RunPlan is runs/get_plan's answer. RunSpec is what apply sends back.
type RunPlan struct {
	ProjectName      string          `json:"project_name"`
	User             string          `json:"user"`
	RunSpec          json.RawMessage `json:"run_spec"`
	EffectiveRunSpec json.RawMessage `json:"effective_run_spec"`
	JobPlans         []JobPlan       `json:"job_plans"`
	CurrentResource  json.RawMessage `json:"current_resource"`
	Action           string          `json:"action"`
}

// JobPlan is one job's offers.
type JobPlan struct {
	Offers      []Offer  `json:"offers"`
	TotalOffers int      `json:"total_offers"`
	MaxPrice    *float64 `json:"max_price"`
	Explanation string   `json:"explanation"`
}

// Offer is an instance offer: a cloud offer, or an instance of a fleet (idle or busy).
type Offer struct {
	Backend      string       `json:"backend"`
	Instance     InstanceType `json:"instance"`
	Region       string       `json:"region"`
	Price        float64      `json:"price"`
	Availability string       `json:"availability"`
	// Blocks of TotalBlocks: the share of a fleet instance split into blocks the job would take.
	Blocks      int `json:"blocks"`
	TotalBlocks int `json:"total_blocks"`
}

// LogEvent is one chunk of a job's output; Message is the raw bytes.
type LogEvent struct {
	Timestamp time.Time `json:"timestamp"`
	LogSource string    `json:"log_source"`
	Message   []byte    `json:"message"`
}

// Logs is a page of logs/poll.
type Logs struct {
	Logs      []LogEvent `json:"logs"`
	NextToken *string    `json:"next_token"`
}

// LogsQuery selects logs of one job submission.
type LogsQuery struct {
	RunName         string     `json:"run_name"`
	JobSubmissionID string     `json:"job_submission_id"`
	StartTime       *time.Time `json:"start_time"`
	Descending      bool       `json:"descending"`
	NextToken       *string    `json:"next_token"`
	Limit           int        `json:"limit"`
	Diagnose        bool       `json:"diagnose"`
}

func projectPath(project, rest string) string { return "/api/project/" + project + "/" + rest }

// ListFleets returns the project's fleets.
func (c *Client) ListFleets(ctx context.Context, project string) ([]Fleet, error) {
	var out []Fleet
	err := c.Do(ctx, projectPath(project, "fleets/list"), map[string]any{"include_imported": true}, &out)
	return out, err
}

// GetFleet returns a fleet by name.
func (c *Client) GetFleet(ctx context.Context, project, name string) (*Fleet, error) {
	var out Fleet
	if err := c.Do(ctx, projectPath(project, "fleets/get"), map[string]any{"name": name, "id": nil}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetFleetRaw returns a fleet by name as the server sent it.
func (c *Client) GetFleetRaw(ctx context.Context, project, name string) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.Do(ctx, projectPath(project, "fleets/get"), map[string]any{"name": name, "id": nil}, &out)
	return out, err
}

// GetFleetPlan plans a fleet spec.
func (c *Client) GetFleetPlan(ctx context.Context, project string, spec any) (*FleetPlan, error) {
	var out FleetPlan
	if err := c.Do(ctx, projectPath(project, "fleets/get_plan"), map[string]any{"spec": spec}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ApplyFleet creates or updates a fleet from a plan.
func (c *Client) ApplyFleet(ctx context.Context, project string, spec any, current json.RawMessage, force bool) (*Fleet, error) {
	var out Fleet
	body := map[string]any{"plan": map[string]any{"spec": spec, "current_resource": rawOrNil(current)}, "force": force}
	if err := c.Do(ctx, projectPath(project, "fleets/apply"), body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteFleets deletes fleets by name.
func (c *Client) DeleteFleets(ctx context.Context, project string, names []string) error {
	return c.Do(ctx, projectPath(project, "fleets/delete"), map[string]any{"names": names}, nil)
}

// DeleteFleetInstances deletes instances of a fleet by number.
func (c *Client) DeleteFleetInstances(ctx context.Context, project, name string, nums []int) error {
	return c.Do(ctx, projectPath(project, "fleets/delete_instances"), map[string]any{"name": name, "instance_nums": nums}, nil)
}

// InitRepo registers the run's repository (none: a run without code).
func (c *Client) InitRepo(ctx context.Context, project string) error {
	body := map[string]any{"repo_id": "none", "repo_info": map[string]any{"repo_type": "virtual"}, "repo_creds": nil}
	return c.Do(ctx, projectPath(project, "repos/init"), body, nil)
}

// GetRunPlan plans a run spec with at most maxOffers offers per job.
func (c *Client) GetRunPlan(ctx context.Context, project string, spec any, maxOffers int) (*RunPlan, error) {
	var out RunPlan
	if err := c.Do(ctx, projectPath(project, "runs/get_plan"), map[string]any{"run_spec": spec, "max_offers": maxOffers}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ApplyRun submits the run of a plan.
func (c *Client) ApplyRun(ctx context.Context, project string, plan *RunPlan, force bool) (*Run, error) {
	var out Run
	body := map[string]any{"plan": map[string]any{"run_spec": plan.RunSpec, "current_resource": rawOrNil(plan.CurrentResource)}, "force": force}
	if err := c.Do(ctx, projectPath(project, "runs/apply"), body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetRun returns a run by name.
func (c *Client) GetRun(ctx context.Context, project, name string) (*Run, error) {
	var out Run
	if err := c.Do(ctx, projectPath(project, "runs/get"), map[string]any{"run_name": name, "id": nil}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListRuns returns the project's runs, newest first (all of them, or the active ones).
func (c *Client) ListRuns(ctx context.Context, project string, all bool) ([]Run, error) {
	var out []Run
	body := map[string]any{"project_name": project, "repo_id": nil, "username": nil, "only_active": !all,
		"include_jobs": true, "job_submissions_limit": 1, "prev_submitted_at": nil, "prev_run_id": nil, "limit": 100, "ascending": false}
	err := c.Do(ctx, "/api/runs/list", body, &out)
	return out, err
}

// StopRuns stops runs (abort: without the graceful stop period).
func (c *Client) StopRuns(ctx context.Context, project string, names []string, abort bool) error {
	return c.Do(ctx, projectPath(project, "runs/stop"), map[string]any{"runs_names": names, "abort": abort}, nil)
}

// PollLogs returns a page of a job submission's logs.
func (c *Client) PollLogs(ctx context.Context, project string, q LogsQuery) (*Logs, error) {
	if q.Limit == 0 {
		q.Limit = 1000
	}
	var out Logs
	if err := c.Do(ctx, projectPath(project, "logs/poll"), q, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func rawOrNil(m json.RawMessage) any {
	if len(m) == 0 || string(m) == "null" {
		return nil
	}
	return m
}

// SSHPrivateKey returns the user's SSH private key (users/get_my_user), which reaches the hosts and
// containers of the user's runs.
func (c *Client) SSHPrivateKey(ctx context.Context) (string, error) {
	var u struct {
		SSHPrivateKey *string `json:"ssh_private_key"`
	}
	if err := c.Do(ctx, "/api/users/get_my_user", nil, &u); err != nil {
		return "", err
	}
	if u.SSHPrivateKey == nil || *u.SSHPrivateKey == "" {
		return "", errors.New("the server has no SSH key for this user")
	}
	return *u.SSHPrivateKey, nil
}

// Metric is one series of a job's metrics: values parallel to timestamps, latest first.
type Metric struct {
	Name       string    `json:"name"`
	Timestamps []string  `json:"timestamps"`
	Values     []float64 `json:"values"`
}

// JobMetrics is dstack's JobMetrics.
type JobMetrics struct {
	Metrics []Metric `json:"metrics"`
}

// GetJobMetrics returns the latest limit samples of a job of a run.
func (c *Client) GetJobMetrics(ctx context.Context, project, run string, replica, job, limit int) (*JobMetrics, error) {
	var out JobMetrics
	path := fmt.Sprintf("/api/project/%s/metrics/job/%s?replica_num=%d&job_num=%d&limit=%d",
		url.PathEscape(project), url.PathEscape(run), replica, job, limit)
	if err := c.Get(ctx, path, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
