package models

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/dstackgo/dstack/internal/resources"
)

// Run statuses.
const (
	RunPending      = "pending"
	RunSubmitted    = "submitted"
	RunProvisioning = "provisioning"
	RunRunning      = "running"
	RunTerminating  = "terminating"
	RunTerminated   = "terminated"
	RunFailed       = "failed"
	RunDone         = "done"
)

// RunFinished reports a final run status.
func RunFinished(status string) bool {
	return status == RunTerminated || status == RunFailed || status == RunDone
}

// Run termination reasons.
const (
	RunAllJobsDone        = "all_jobs_done"
	RunJobFailed          = "job_failed"
	RunRetryLimitExceeded = "retry_limit_exceeded"
	RunStoppedByUser      = "stopped_by_user"
	RunAbortedByUser      = "aborted_by_user"
	RunServerError        = "server_error"
)

// RunStatusFor is the final status a run ends in for a termination reason.
func RunStatusFor(reason string) string {
	switch reason {
	case RunAllJobsDone:
		return RunDone
	case RunStoppedByUser, RunAbortedByUser:
		return RunTerminated
	default:
		return RunFailed
	}
}

// Job statuses.
const (
	JobSubmitted    = "submitted"
	JobProvisioning = "provisioning"
	JobPulling      = "pulling"
	JobRunning      = "running"
	JobTerminating  = "terminating"
	JobTerminated   = "terminated"
	JobAborted      = "aborted"
	JobFailed       = "failed"
	JobDone         = "done"
)

// JobFinished reports a final job status.
func JobFinished(status string) bool {
	switch status {
	case JobTerminated, JobAborted, JobFailed, JobDone:
		return true
	}
	return false
}

// Job termination reasons (dstack's JobTerminationReason).
const (
	JobNoCapacity             = "failed_to_start_due_to_no_capacity"
	JobInterruptedNoCapacity  = "interrupted_by_no_capacity"
	JobInstanceUnreachable    = "instance_unreachable"
	JobWaitingRunnerLimit     = "waiting_runner_limit_exceeded"
	JobTerminatedByUser       = "terminated_by_user"
	JobDoneByRunner           = "done_by_runner"
	JobAbortedByUser          = "aborted_by_user"
	JobTerminatedByServer     = "terminated_by_server"
	JobContainerExitedError   = "container_exited_with_error"
	JobCreatingContainerError = "creating_container_error"
	JobExecutorError          = "executor_error"
	JobVolumeError            = "volume_error"
	JobMaxDurationExceeded    = "max_duration_exceeded"
)

// JobStatusFor is the final status a job ends in for a termination reason (dstack-spec §5.4).
func JobStatusFor(reason string) string {
	switch reason {
	case JobDoneByRunner:
		return JobDone
	case JobAbortedByUser:
		return JobAborted
	case JobTerminatedByUser, JobTerminatedByServer, "scaled_down", "inactivity_duration_exceeded",
		"terminated_due_to_utilization_policy", JobMaxDurationExceeded:
		return JobTerminated
	default:
		return JobFailed
	}
}

// Duration is a number of seconds. JSON accepts an int or a string such as "90s", "5m", "1h", "2d"
// or "1w"; "off" is -1 (used by idle_duration).
type Duration int

var durationRe = regexp.MustCompile(`^(\d+)\s*([smhdw]?)$`)

// ParseDuration reads an int, a numeric string, or a string with a unit suffix (s, m, h, d, w);
// "off" gives -1.
func ParseDuration(v any) (int, error) {
	switch x := v.(type) {
	case float64:
		return int(x), nil
	case int:
		return x, nil
	case int64:
		return int(x), nil
	case json.Number:
		n, err := x.Int64()
		return int(n), err
	case string:
		s := strings.TrimSpace(strings.ToLower(x))
		if s == "off" {
			return -1, nil
		}
		m := durationRe.FindStringSubmatch(s)
		if m == nil {
			return 0, fmt.Errorf("cannot parse duration %q (want seconds or a number with s, m, h, d or w)", x)
		}
		n, _ := strconv.Atoi(m[1])
		mult := map[string]int{"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m[2]]
		return n * mult, nil
	}
	return 0, fmt.Errorf("cannot parse duration %v", v)
}

// UnmarshalJSON accepts seconds or a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	n, err := ParseDuration(v)
	*d = Duration(n)
	return err
}

// OffDuration is max_duration or stop_duration: seconds, or "off".
type OffDuration struct {
	Seconds int
	Off     bool
}

// UnmarshalJSON accepts seconds, a duration string or "off".
func (d *OffDuration) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	if s, ok := v.(string); ok && strings.EqualFold(strings.TrimSpace(s), "off") {
		*d = OffDuration{Off: true}
		return nil
	}
	n, err := ParseDuration(v)
	*d = OffDuration{Seconds: n}
	return err
}

// MarshalJSON writes seconds or "off".
func (d OffDuration) MarshalJSON() ([]byte, error) {
	if d.Off {
		return []byte(`"off"`), nil
	}
	return json.Marshal(d.Seconds)
}

// Env is a set of environment variables: a map on the wire; a list of NAME=value is accepted too.
type Env map[string]string

// UnmarshalJSON accepts {"NAME": "value"} or ["NAME=value", ...].
func (e *Env) UnmarshalJSON(b []byte) error {
	var list []string
	if json.Unmarshal(b, &list) == nil {
		out := Env{}
		for _, kv := range list {
			k, v, _ := strings.Cut(kv, "=")
			out[k] = v
		}
		*e = out
		return nil
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return errors.New("env must be a map of names to values or a list of NAME=value")
	}
	if m == nil {
		m = map[string]string{}
	}
	*e = m
	return nil
}

// MarshalJSON writes a map; nil is {}.
func (e Env) MarshalJSON() ([]byte, error) {
	if e == nil {
		return []byte("{}"), nil
	}
	return json.Marshal(map[string]string(e))
}

// ProfileParams are the profile options that a run configuration and a profile share.
type ProfileParams struct {
	Backends          []string          `json:"backends"`
	Regions           []string          `json:"regions"`
	AvailabilityZones []string          `json:"availability_zones"`
	InstanceTypes     []string          `json:"instance_types"`
	Reservation       *string           `json:"reservation"`
	SpotPolicy        *string           `json:"spot_policy"`
	Retry             any               `json:"retry"` // bool or {on_events, duration}
	MaxDuration       *OffDuration      `json:"max_duration"`
	StopDuration      *OffDuration      `json:"stop_duration"`
	MaxPrice          *float64          `json:"max_price"`
	CreationPolicy    *string           `json:"creation_policy"`
	IdleDuration      *Duration         `json:"idle_duration"`
	UtilizationPolicy any               `json:"utilization_policy"`
	StartupOrder      *string           `json:"startup_order"`
	StopCriteria      *string           `json:"stop_criteria"`
	Schedule          any               `json:"schedule"`
	Fleets            []any             `json:"fleets"` // names, or {project, name}
	Instances         any               `json:"instances"`
	Tags              map[string]string `json:"tags"`
	BackendOptions    any               `json:"backend_options"`
}

// Profile is a named set of profile options.
type Profile struct {
	ProfileParams
	Name    string `json:"name"`
	Default bool   `json:"default"`
}

// RetryPolicy is a resolved `retry`.
type RetryPolicy struct {
	OnEvents []string
	Duration int // seconds
}

// Retry resolves `retry` (true means every event for one hour, as in dstack); nil means no retry.
func (p ProfileParams) RetryPolicy() *RetryPolicy {
	switch r := p.Retry.(type) {
	case bool:
		if r {
			return &RetryPolicy{OnEvents: []string{"no-capacity", "interruption", "error"}, Duration: 3600}
		}
	case map[string]any:
		rp := &RetryPolicy{OnEvents: []string{"no-capacity", "interruption", "error"}, Duration: 3600}
		if ev, ok := r["on_events"].([]any); ok {
			rp.OnEvents = nil
			for _, e := range ev {
				if s, ok := e.(string); ok {
					rp.OnEvents = append(rp.OnEvents, s)
				}
			}
		}
		if d, ok := r["duration"]; ok && d != nil {
			if n, err := ParseDuration(d); err == nil {
				rp.Duration = n
			}
		}
		return rp
	}
	return nil
}

// FleetNames are the names in `fleets`.
func (p ProfileParams) FleetNames() []string {
	var out []string
	for _, f := range p.Fleets {
		switch x := f.(type) {
		case string:
			out = append(out, x)
		case map[string]any:
			if n, ok := x["name"].(string); ok {
				out = append(out, n)
			}
		}
	}
	return out
}

// Merge fills the options unset in p from q (the profile of a run spec is the fallback of its
// configuration).
func (p ProfileParams) Merge(q ProfileParams) ProfileParams {
	pv, qv := reflect.ValueOf(&p).Elem(), reflect.ValueOf(q)
	for i := 0; i < pv.NumField(); i++ {
		if pv.Field(i).IsZero() {
			pv.Field(i).Set(qv.Field(i))
		}
	}
	return p
}

// PortMapping maps a local port to a container port. JSON accepts 8080, "8080:80" or the object.
type PortMapping struct {
	LocalPort     *int `json:"local_port"`
	ContainerPort int  `json:"container_port"`
}

// UnmarshalJSON accepts a port, "local:container" or the object.
func (p *PortMapping) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case float64:
		*p = PortMapping{ContainerPort: int(x)}
	case string:
		l, c, ok := strings.Cut(x, ":")
		if !ok {
			n, err := strconv.Atoi(x)
			if err != nil {
				return fmt.Errorf("invalid port %q", x)
			}
			*p = PortMapping{ContainerPort: n}
			return nil
		}
		ln, err1 := strconv.Atoi(l)
		cn, err2 := strconv.Atoi(c)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("invalid port mapping %q", x)
		}
		*p = PortMapping{LocalPort: &ln, ContainerPort: cn}
	case map[string]any:
		type plain PortMapping
		var q plain
		if err := json.Unmarshal(b, &q); err != nil {
			return err
		}
		*p = PortMapping(q)
	default:
		return fmt.Errorf("invalid port %v", v)
	}
	if p.ContainerPort <= 0 || p.ContainerPort > 65535 {
		return fmt.Errorf("port %d is out of range", p.ContainerPort)
	}
	return nil
}

// RegistryAuth are the credentials of a private registry.
type RegistryAuth struct {
	Username string `json:"username" required:"true"`
	Password string `json:"password" required:"true"`
}

// RunConfigCommon are the keys every run configuration type has.
type RunConfigCommon struct {
	Name         *string                  `json:"name"`
	Image        *string                  `json:"image"`
	User         *string                  `json:"user"`
	Privileged   bool                     `json:"privileged"`
	Entrypoint   *string                  `json:"entrypoint"`
	WorkingDir   *string                  `json:"working_dir"`
	HomeDir      string                   `json:"home_dir"`
	RegistryAuth *RegistryAuth            `json:"registry_auth"`
	Python       *string                  `json:"python"`
	Nvcc         *bool                    `json:"nvcc"`
	SingleBranch *bool                    `json:"single_branch"`
	Env          Env                      `json:"env"`
	Shell        *string                  `json:"shell"`
	Resources    *resources.ResourcesSpec `json:"resources"`
	Priority     *int                     `json:"priority"`
	Volumes      []any                    `json:"volumes"`
	Docker       *bool                    `json:"docker"`
	Repos        []any                    `json:"repos"`
	Files        []any                    `json:"files"`
	Dstack       bool                     `json:"dstack"`
	Setup        []string                 `json:"setup"`
	ProfileParams
}

// TaskConfiguration is `type: task`.
type TaskConfiguration struct {
	Type     string        `json:"type"`
	Nodes    *int          `json:"nodes"`
	Groups   any           `json:"groups"`
	Ports    []PortMapping `json:"ports"`
	Commands []string      `json:"commands"`
	RunConfigCommon
}

// DevEnvironmentConfiguration is `type: dev-environment`.
type DevEnvironmentConfiguration struct {
	Type               string        `json:"type"`
	IDE                *string       `json:"ide"`
	Version            *string       `json:"version"`
	Init               []string      `json:"init"`
	InactivityDuration *Duration     `json:"inactivity_duration"`
	Ports              []PortMapping `json:"ports"`
	RunConfigCommon
}

// ServiceConfiguration is `type: service`.
type ServiceConfiguration struct {
	Type        string      `json:"type"`
	Port        PortMapping `json:"port" required:"true"`
	Gateway     any         `json:"gateway"`
	StripPrefix *bool       `json:"strip_prefix"`
	Model       any         `json:"model"`
	HTTPS       any         `json:"https"`
	Auth        *bool       `json:"auth"`
	Scaling     any         `json:"scaling"`
	RateLimits  []any       `json:"rate_limits"`
	Probes      []any       `json:"probes"`
	Replicas    any         `json:"replicas"`
	Commands    []string    `json:"commands"`
	RunConfigCommon
}

// Run configuration types.
const (
	ConfigTask           = "task"
	ConfigDevEnvironment = "dev-environment"
	ConfigService        = "service"
)

// RunConfiguration is one of the three run configuration types, picked by `type`.
type RunConfiguration struct {
	Task           *TaskConfiguration
	DevEnvironment *DevEnvironmentConfiguration
	Service        *ServiceConfiguration
}

// JSONVariant picks the type the strict decoder checks a configuration against.
func (RunConfiguration) JSONVariant(v any) (reflect.Type, string) {
	m, ok := v.(map[string]any)
	if !ok {
		return reflect.TypeFor[TaskConfiguration](), ""
	}
	switch m["type"] {
	case ConfigDevEnvironment:
		return reflect.TypeFor[DevEnvironmentConfiguration](), ConfigDevEnvironment
	case ConfigService:
		return reflect.TypeFor[ServiceConfiguration](), ConfigService
	default:
		return reflect.TypeFor[TaskConfiguration](), ConfigTask
	}
}

// UnmarshalJSON decodes the variant named by `type` and fills in its defaults.
func (c *RunConfiguration) UnmarshalJSON(b []byte) error {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return err
	}
	*c = RunConfiguration{}
	switch head.Type {
	case ConfigTask:
		c.Task = &TaskConfiguration{}
		if err := json.Unmarshal(b, c.Task); err != nil {
			return err
		}
	case ConfigDevEnvironment:
		c.DevEnvironment = &DevEnvironmentConfiguration{}
		if err := json.Unmarshal(b, c.DevEnvironment); err != nil {
			return err
		}
	case ConfigService:
		c.Service = &ServiceConfiguration{}
		if err := json.Unmarshal(b, c.Service); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown configuration type %q (want task, dev-environment or service)", head.Type)
	}
	c.normalise()
	return nil
}

// MarshalJSON writes the variant.
func (c RunConfiguration) MarshalJSON() ([]byte, error) {
	switch {
	case c.Task != nil:
		return json.Marshal(c.Task)
	case c.DevEnvironment != nil:
		return json.Marshal(c.DevEnvironment)
	case c.Service != nil:
		return json.Marshal(c.Service)
	}
	return []byte("null"), nil
}

// Type is task, dev-environment or service.
func (c RunConfiguration) Type() string {
	switch {
	case c.DevEnvironment != nil:
		return ConfigDevEnvironment
	case c.Service != nil:
		return ConfigService
	}
	return ConfigTask
}

// Common returns the keys all types share.
func (c RunConfiguration) Common() *RunConfigCommon {
	switch {
	case c.Task != nil:
		return &c.Task.RunConfigCommon
	case c.DevEnvironment != nil:
		return &c.DevEnvironment.RunConfigCommon
	case c.Service != nil:
		return &c.Service.RunConfigCommon
	}
	return &RunConfigCommon{}
}

// Commands are the user's commands.
func (c RunConfiguration) Commands() []string {
	switch {
	case c.Task != nil:
		return c.Task.Commands
	case c.Service != nil:
		return c.Service.Commands
	case c.DevEnvironment != nil:
		return c.DevEnvironment.Init
	}
	return nil
}

// Nodes is the number of jobs per replica (tasks only).
func (c RunConfiguration) Nodes() int {
	if c.Task != nil && c.Task.Nodes != nil && *c.Task.Nodes > 0 {
		return *c.Task.Nodes
	}
	return 1
}

// normalise fills defaults the way dstack's models do, so that responses carry every key.
func (c *RunConfiguration) normalise() {
	cm := c.Common()
	if cm.HomeDir == "" {
		cm.HomeDir = "/root"
	}
	if cm.Env == nil {
		cm.Env = Env{}
	}
	if cm.Resources == nil {
		r := resources.Default()
		cm.Resources = &r
	}
	for _, l := range []*[]any{&cm.Volumes, &cm.Repos, &cm.Files} {
		if *l == nil {
			*l = []any{}
		}
	}
	if cm.Setup == nil {
		cm.Setup = []string{}
	}
	switch {
	case c.Task != nil:
		c.Task.Type = ConfigTask
		if c.Task.Nodes == nil {
			one := 1
			c.Task.Nodes = &one
		}
		if c.Task.Ports == nil {
			c.Task.Ports = []PortMapping{}
		}
		if c.Task.Commands == nil {
			c.Task.Commands = []string{}
		}
	case c.DevEnvironment != nil:
		c.DevEnvironment.Type = ConfigDevEnvironment
		if c.DevEnvironment.Ports == nil {
			c.DevEnvironment.Ports = []PortMapping{}
		}
		if c.DevEnvironment.Init == nil {
			c.DevEnvironment.Init = []string{}
		}
	case c.Service != nil:
		c.Service.Type = ConfigService
		if c.Service.Commands == nil {
			c.Service.Commands = []string{}
		}
		if c.Service.RateLimits == nil {
			c.Service.RateLimits = []any{}
		}
		t := true
		if c.Service.StripPrefix == nil {
			c.Service.StripPrefix = &t
		}
		if c.Service.Auth == nil {
			c.Service.Auth = &t
		}
	}
}

// RunSpec is what `dstack apply` sends for a run configuration.
type RunSpec struct {
	RunName           *string          `json:"run_name"`
	RepoID            *string          `json:"repo_id"`
	RepoData          map[string]any   `json:"repo_data"`
	RepoCodeHash      *string          `json:"repo_code_hash"`
	RepoDir           *string          `json:"repo_dir"`
	FileArchives      []any            `json:"file_archives"`
	WorkingDir        *string          `json:"working_dir"`
	ConfigurationPath *string          `json:"configuration_path"`
	Configuration     RunConfiguration `json:"configuration" required:"true"`
	Profile           *Profile         `json:"profile"`
	SSHKeyPub         *string          `json:"ssh_key_pub"`
}

// Params are the effective profile options: the configuration's, then the profile's.
func (s RunSpec) Params() ProfileParams {
	p := s.Configuration.Common().ProfileParams
	if s.Profile != nil {
		p = p.Merge(s.Profile.ProfileParams)
	}
	return p
}

// Requirements are what an instance must offer for a job.
type Requirements struct {
	Resources      resources.ResourcesSpec `json:"resources"`
	MaxPrice       *float64                `json:"max_price"`
	Spot           *bool                   `json:"spot"`
	Reservation    *string                 `json:"reservation"`
	Multinode      *bool                   `json:"multinode"`
	BackendOptions any                     `json:"backend_options"`
}

// JobSSHKey is the key pair the nodes of a multi-node run use to reach each other.
type JobSSHKey struct {
	Private string `json:"private"`
	Public  string `json:"public"`
}

// AppSpec is a port the job exposes.
type AppSpec struct {
	Port           int               `json:"port"`
	MapToPort      *int              `json:"map_to_port"`
	AppName        string            `json:"app_name"`
	URLPath        *string           `json:"url_path"`
	URLQueryParams map[string]string `json:"url_query_params"`
}

// JobSpec is the server's plan for one job of a run.
type JobSpec struct {
	ReplicaNum        int            `json:"replica_num"`
	JobNum            int            `json:"job_num"`
	JobName           string         `json:"job_name"`
	JobsPerReplica    int            `json:"jobs_per_replica"`
	ReplicaGroup      string         `json:"replica_group"`
	AppSpecs          []AppSpec      `json:"app_specs"`
	User              any            `json:"user"`
	Commands          []string       `json:"commands"`
	Env               Env            `json:"env"`
	HomeDir           *string        `json:"home_dir"`
	ImageName         string         `json:"image_name"`
	Privileged        bool           `json:"privileged"`
	SingleBranch      *bool          `json:"single_branch"`
	MaxDuration       *int           `json:"max_duration"`
	StopDuration      *int           `json:"stop_duration"`
	UtilizationPolicy any            `json:"utilization_policy"`
	RegistryAuth      *RegistryAuth  `json:"registry_auth"`
	Requirements      Requirements   `json:"requirements"`
	Retry             any            `json:"retry"`
	Volumes           []any          `json:"volumes"`
	SSHKey            *JobSSHKey     `json:"ssh_key"`
	WorkingDir        *string        `json:"working_dir"`
	RepoData          map[string]any `json:"repo_data"`
	RepoCodeHash      *string        `json:"repo_code_hash"`
	RepoDir           string         `json:"repo_dir"`
	RepoExistsAction  *string        `json:"repo_exists_action"`
	FileArchives      []any          `json:"file_archives"`
	ServicePort       *int           `json:"service_port"`
	Probes            []any          `json:"probes"`
	NodeGroupIndex    int            `json:"node_group_index"`
	NodeGroupName     string         `json:"node_group_name"`
	NodeGroupJobIndex int            `json:"node_group_job_index"`
}

// JobRuntimeData is what the job got of its instance.
type JobRuntimeData struct {
	NetworkMode string         `json:"network_mode"`
	GPU         *int           `json:"gpu"`
	CPU         *float64       `json:"cpu"`
	Memory      *float64       `json:"memory"`
	Ports       map[string]int `json:"ports"`
	VolumeNames []string       `json:"volume_names"`
	Offer       any            `json:"offer"`
	WorkingDir  *string        `json:"working_dir"`
	Username    *string        `json:"username"`
}

// Run is one submission of a run configuration.
type Run struct {
	ID                string
	ProjectID         string
	UserID            string
	Name              string
	Status            string
	StatusMessage     string
	TerminationReason string
	SubmittedAt       time.Time
	LastProcessedAt   time.Time
	Spec              RunSpec
	FleetID           string
	DeploymentNum     int
	// ResubmitAt is when a pending run (waiting to retry) gets its next submission.
	ResubmitAt *time.Time
	Error      string
	// StopReason, when set, asks the run's pipeline to stop it (stopped_by_user, aborted_by_user).
	StopReason string
	Deleted    bool
}

// Job is one submission of one job of a run (dstack's JobModel: a new submission is a new row).
type Job struct {
	ID                       string
	RunID                    string
	ProjectID                string
	RunName                  string
	JobNum                   int
	ReplicaNum               int
	SubmissionNum            int
	JobName                  string
	Spec                     JobSpec
	Status                   string
	StatusMessage            string
	TerminationReason        string
	TerminationReasonMessage string
	ExitStatus               *int
	SubmittedAt              time.Time
	LastProcessedAt          time.Time
	FinishedAt               *time.Time
	StartedAt                *time.Time // when it started running, for max_duration
	InstanceID               string
	JPD                      *JobProvisioningData
	JRD                      *JobRuntimeData
	// RunnerTimestamp is the last_updated of the runner's previous /api/pull (Unix ms).
	RunnerTimestamp int64
	// StopReason, when set, asks the job's pipeline to terminate it with this termination reason
	// (aborted_by_user skips the graceful stop period).
	StopReason string
	Error      string
}
