package agentapi

import "strings"

// JobState is the state of the job the runner executes.
type JobState string

// Job states (Unix-ms timestamped in JobStateEvent).
const (
	JobRunning     JobState = "running"
	JobTerminating JobState = "terminating"
	JobTerminated  JobState = "terminated"
	JobFailed      JobState = "failed"
	JobDone        JobState = "done"
)

// Finished reports whether s is a final state.
func (s JobState) Finished() bool {
	return s == JobTerminated || s == JobFailed || s == JobDone
}

// Termination reasons the runner records on a job state event; they are values of dstack's
// JobTerminationReason.
const (
	ReasonContainerExitedWithError = "container_exited_with_error"
	ReasonMaxDurationExceeded      = "max_duration_exceeded"
	ReasonTerminatedByServer       = "terminated_by_server"
	ReasonExecutorError            = "executor_error"
	ReasonDoneByRunner             = "done_by_runner"
)

// Runner states of the HTTP state machine (dstack-spec §7.3).
const (
	RunnerWaitSubmit = "wait_submit"
	RunnerWaitCode   = "wait_code"
	RunnerWaitRun    = "wait_run"
	RunnerServeLogs  = "serve_logs"
)

// MaxCodeSize is the largest body /api/upload_code accepts (413 beyond).
const MaxCodeSize = 10 << 20

// SubmitBody is the body of POST /api/submit.
type SubmitBody struct {
	Run             *Run              `json:"run,omitempty"`
	RunSpec         *RunSpec          `json:"run_spec,omitempty"` // deprecated in dstack in favour of run.run_spec
	JobSpec         JobSpec           `json:"job_spec"`
	JobSubmission   *JobSubmission    `json:"job_submission,omitempty"`
	ClusterInfo     ClusterInfo       `json:"cluster_info"`
	Secrets         map[string]string `json:"secrets"`
	RepoCredentials *RepoCredentials  `json:"repo_credentials"`
}

// Spec returns run.run_spec, or the deprecated top-level run_spec, or an empty spec.
func (b SubmitBody) Spec() RunSpec {
	if b.Run != nil && (b.Run.RunSpec.RunName != "" || b.RunSpec == nil) {
		return b.Run.RunSpec
	}
	if b.RunSpec != nil {
		return *b.RunSpec
	}
	return RunSpec{}
}

// Run is the part of the run the runner is sent.
type Run struct {
	ID      string  `json:"id"`
	RunSpec RunSpec `json:"run_spec"`
}

// RunSpec is the part of the run spec the runner is sent.
type RunSpec struct {
	RunName           string        `json:"run_name"`
	RepoID            string        `json:"repo_id"`
	RepoData          *RepoData     `json:"repo_data,omitempty"`
	Configuration     Configuration `json:"configuration"`
	ConfigurationPath string        `json:"configuration_path"`
}

// Configuration is the part of the run configuration the runner is sent.
type Configuration struct {
	Type string `json:"type"` // task, dev-environment, service
}

// RepoData describes the repository of the run.
type RepoData struct {
	RepoType        string `json:"repo_type"`
	RepoBranch      string `json:"repo_branch,omitempty"`
	RepoHash        string `json:"repo_hash,omitempty"`
	RepoConfigName  string `json:"repo_config_name,omitempty"`
	RepoConfigEmail string `json:"repo_config_email,omitempty"`
}

// JobSubmission identifies the job submission.
type JobSubmission struct {
	ID string `json:"id"`
}

// JobSpec is the part of the job spec the runner is sent.
//
// Commands is executed as an argv when it already is one (dstack servers send
// [shell, "-i", "-c", "cmd1 && cmd2"]); otherwise its items are joined with " && " and run by
// /bin/sh -c. A non-empty Entrypoint is prepended to Commands.
type JobSpec struct {
	ReplicaNum     int               `json:"replica_num"`
	JobNum         int               `json:"job_num"`
	JobsPerReplica int               `json:"jobs_per_replica"`
	User           *User             `json:"user"`
	Commands       []string          `json:"commands"`
	Entrypoint     []string          `json:"entrypoint"`
	Env            map[string]string `json:"env"`
	SingleBranch   bool              `json:"single_branch"`
	MaxDuration    int               `json:"max_duration"` // seconds, 0 means none
	SSHKey         *SSHKey           `json:"ssh_key"`
	WorkingDir     *string           `json:"working_dir"`
	RepoData       *RepoData         `json:"repo_data,omitempty"`
}

// User is the user the job runs as.
type User struct {
	UID       *uint32 `json:"uid"`
	Username  *string `json:"username"`
	GID       *uint32 `json:"gid"`
	Groupname *string `json:"groupname"`
}

// SSHKey is the key pair the nodes of a multi-node job use to reach each other.
type SSHKey struct {
	Private string `json:"private"`
	Public  string `json:"public"`
}

// ClusterInfo describes the nodes of a multi-node job.
type ClusterInfo struct {
	JobIPs      []string `json:"job_ips"`
	MasterJobIP string   `json:"master_job_ip"`
	GPUsPerJob  int      `json:"gpus_per_job"`
}

// RepoCredentials are the credentials to clone the run's repository.
type RepoCredentials struct {
	CloneURL   string  `json:"clone_url"`
	PrivateKey *string `json:"private_key"`
	OAuthToken *string `json:"oauth_token"`
}

// Protocol returns the scheme of CloneURL (ssh, https).
func (c RepoCredentials) Protocol() string {
	p, _, _ := strings.Cut(c.CloneURL, "://")
	return p
}

// JobStateEvent is one state change of the job.
type JobStateEvent struct {
	State              JobState `json:"state"`
	Timestamp          int64    `json:"timestamp"` // Unix ms
	TerminationReason  string   `json:"termination_reason"`
	TerminationMessage string   `json:"termination_message"`
	ExitStatus         *int     `json:"exit_status"`
}

// Log streams of LogEvent.Stream.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
)

// LogEvent is one chunk of output. Message is base64 in JSON. Stream (stdout or stderr, empty for
// runner logs) is an addition of this implementation; dstack ignores it.
type LogEvent struct {
	Message   []byte `json:"message"`
	Timestamp int64  `json:"timestamp"` // Unix ms, strictly increasing within one runner
	Stream    string `json:"stream,omitempty"`
}

// PullResponse is the body of GET /api/pull?timestamp=T: everything newer than T. The next pull passes
// LastUpdated; HasMore asks for it at once.
type PullResponse struct {
	JobStates         []JobStateEvent `json:"job_states"`
	JobLogs           []LogEvent      `json:"job_logs"`
	RunnerLogs        []LogEvent      `json:"runner_logs"`
	LastUpdated       int64           `json:"last_updated"`
	NoConnectionsSecs int64           `json:"no_connections_secs"`
	HasMore           bool            `json:"has_more"`
}

// GPUMetrics is the usage of one GPU.
type GPUMetrics struct {
	GPUMemoryUsageBytes uint64 `json:"gpu_memory_usage_bytes"`
	GPUUtilPercent      uint64 `json:"gpu_util_percent"`
}

// MetricsResponse is the body of GET /api/metrics.
type MetricsResponse struct {
	TimestampMicro        int64        `json:"timestamp_micro"`
	CPUUsageMicro         uint64       `json:"cpu_usage_micro"`
	MemoryUsageBytes      uint64       `json:"memory_usage_bytes"`
	MemoryWorkingSetBytes uint64       `json:"memory_working_set_bytes"`
	GPUs                  []GPUMetrics `json:"gpus"`
}
