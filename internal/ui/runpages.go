package ui

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Runs: the project's runs (runs/list), a run's page (runs/get) with its jobs, their submissions and
// history, and its logs (logs/poll), which the page's script keeps polling through this UI's own
// logs endpoint; and stop (runs/stop).

type jpdJSON struct {
	Backend          string           `json:"backend"`
	Region           string           `json:"region"`
	AvailabilityZone *string          `json:"availability_zone"`
	InstanceType     instanceTypeJSON `json:"instance_type"`
	Price            float64          `json:"price"`
	Hostname         *string          `json:"hostname"`
}

type submissionJSON struct {
	ID                       string   `json:"id"`
	SubmissionNum            int      `json:"submission_num"`
	SubmittedAt              string   `json:"submitted_at"`
	LastProcessedAt          string   `json:"last_processed_at"`
	FinishedAt               *string  `json:"finished_at"`
	Status                   string   `json:"status"`
	StatusMessage            string   `json:"status_message"`
	TerminationReason        *string  `json:"termination_reason"`
	TerminationReasonMessage *string  `json:"termination_reason_message"`
	ExitStatus               *int     `json:"exit_status"`
	JPD                      *jpdJSON `json:"job_provisioning_data"`
	Error                    *string  `json:"error"`
}

// Finished tells a submission that has ended.
func (s *submissionJSON) Finished() bool { return finished(s.Status) }

// Ended is when it finished, or "" while it goes on.
func (s *submissionJSON) Ended() string {
	if s.FinishedAt != nil {
		return *s.FinishedAt
	}
	return ""
}

// Why says why a submission ended, in words, with the API's message and exit status; "" while it runs.
func (s *submissionJSON) Why() string {
	code := deref(s.TerminationReason)
	if code == "" {
		return ""
	}
	out := reason(code)
	if m := deref(s.TerminationReasonMessage); m != "" {
		out += ": " + m
	}
	if s.ExitStatus != nil && *s.ExitStatus != 0 {
		out += " (exit status " + strconv.Itoa(*s.ExitStatus) + ")"
	}
	if e := deref(s.Error); e != "" && e != deref(s.TerminationReasonMessage) {
		out += "; " + e
	}
	return out
}

// Failed tells a submission that ended in failure.
func (s *submissionJSON) Failed() bool {
	return s.Status == "failed" || failedReason(deref(s.TerminationReason)) && s.Finished()
}

type jobJSON struct {
	JobSpec struct {
		JobName      string   `json:"job_name"`
		ReplicaNum   int      `json:"replica_num"`
		JobNum       int      `json:"job_num"`
		Commands     []string `json:"commands"`
		ImageName    string   `json:"image_name"`
		Requirements struct {
			Resources json.RawMessage `json:"resources"`
		} `json:"requirements"`
	} `json:"job_spec"`
	JobSubmissions []submissionJSON `json:"job_submissions"`
}

type runJSON struct {
	ID          string `json:"id"`
	ProjectName string `json:"project_name"`
	User        string `json:"user"`
	Fleet       *struct {
		Name string `json:"name"`
	} `json:"fleet"`
	SubmittedAt       string  `json:"submitted_at"`
	LastProcessedAt   string  `json:"last_processed_at"`
	Status            string  `json:"status"`
	StatusMessage     string  `json:"status_message"`
	TerminationReason *string `json:"termination_reason"`
	RunSpec           struct {
		RunName           *string `json:"run_name"`
		ConfigurationPath *string `json:"configuration_path"`
		Configuration     struct {
			Type      string          `json:"type"`
			Image     *string         `json:"image"`
			Resources json.RawMessage `json:"resources"`
		} `json:"configuration"`
	} `json:"run_spec"`
	Jobs                []jobJSON       `json:"jobs"`
	LatestJobSubmission *submissionJSON `json:"latest_job_submission"`
	Cost                float64         `json:"cost"`
	Error               *string         `json:"error"`
}

func finished(status string) bool {
	switch status {
	case "terminated", "aborted", "failed", "done":
		return true
	}
	return false
}

// Name is the run's name.
func (r *runJSON) Name() string { return deref(r.RunSpec.RunName) }

// Finished tells a run that has ended.
func (r *runJSON) Finished() bool { return finished(r.Status) }

// JPD is where the run's (first) job runs, if it has been provisioned.
func (r *runJSON) JPD() *jpdJSON {
	if r.LatestJobSubmission != nil {
		return r.LatestJobSubmission.JPD
	}
	return nil
}

// Requested is the run's requested resources as the CLI writes them.
func (r *runJSON) Requested() string {
	if len(r.Jobs) > 0 {
		if s := requested(r.Jobs[0].JobSpec.Requirements.Resources); s != "" {
			return s
		}
	}
	return requested(r.RunSpec.Configuration.Resources)
}

// Why says why a run ended, in words: the run's reason and, for a failure, its job's.
func (r *runJSON) Why() string {
	code := deref(r.TerminationReason)
	if code == "" {
		return ""
	}
	out := reason(code)
	if failedReason(code) && r.LatestJobSubmission != nil {
		if w := r.LatestJobSubmission.Why(); w != "" {
			out += " — " + w
		}
	}
	if e := deref(r.Error); e != "" {
		out += "; " + e
	}
	return out
}

// Failed tells a run that ended in failure.
func (r *runJSON) Failed() bool {
	return r.Status == "failed" || r.Finished() && failedReason(deref(r.TerminationReason))
}

// Ended is when the run finished ("" while it goes on): the last processing of a finished run.
func (r *runJSON) Ended() string {
	if !r.Finished() {
		return ""
	}
	if s := r.LatestJobSubmission; s != nil && s.FinishedAt != nil {
		return *s.FinishedAt
	}
	return r.LastProcessedAt
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func runsAPI(project string) string { return "/api/project/" + url.PathEscape(project) + "/runs" }

// Runs list

type runsData struct {
	P      *projectJSON
	Runs   []runJSON
	Active bool
	// Before and BeforeID select the next (older) page; "" when there is none.
	Before, BeforeID string
	Older            bool // this is not the first page
}

const runsPageSize = 50

func (c *ctx) runsPage() {
	p, ok := c.loadProject()
	if !ok {
		return
	}
	q := c.r.URL.Query()
	d := runsData{P: p, Active: q.Get("active") == "1"}
	body := map[string]any{"project_name": p.ProjectName, "only_active": d.Active, "limit": runsPageSize, "job_submissions_limit": 1}
	if at, id := q.Get("before"), q.Get("before_id"); at != "" {
		body["prev_submitted_at"] = at
		if id != "" {
			body["prev_run_id"] = id
		}
		d.Older = true
	}
	v := c.projectView(p, "runs", "Runs")
	v.D = &d
	if e := c.call("/api/runs/list", body, &d.Runs); e != nil {
		v.Err = e
		c.render(0, "runs", v)
		return
	}
	if len(d.Runs) == runsPageSize {
		last := d.Runs[len(d.Runs)-1]
		d.Before, d.BeforeID = last.SubmittedAt, last.ID
	}
	c.render(0, "runs", v)
}

// Run page

type logChunk struct {
	Source string // stdout or stderr
	Text   string
}

type subRow struct {
	Job string
	Sub *submissionJSON
	// Latest marks the job's current submission.
	Latest bool
}

type historyEvent struct {
	Time   string
	Title  string
	Status string
	Detail string
	Error  bool
}

type runPageData struct {
	P    *projectJSON
	R    *runJSON
	Rows []subRow
	// The submission whose logs are shown.
	Sel     *submissionJSON
	SelID   string
	SelJob  string
	History []historyEvent
	Logs    []logChunk
	LogErr  *APIError
	// LogStart and LogSeen are where the script goes on polling: the timestamp of the last event shown
	// and how many events shown have it (the API's start_time is inclusive).
	LogStart  string
	LogSeen   int
	LogCut    bool // older events were left out
	LogsURL   string
	Live      bool
	MultiJobs bool
}

// logsPageSize is how many events the run page shows at first (the latest ones).
const logsPageSize = 1000

func (c *ctx) loadRun(p *projectJSON) (*runJSON, *APIError) {
	var r runJSON
	if e := c.call(runsAPI(p.ProjectName)+"/get", map[string]any{"run_name": c.r.PathValue("run")}, &r); e != nil {
		return nil, e
	}
	return &r, nil
}

func (c *ctx) runPage() {
	p, ok := c.loadProject()
	if !ok {
		return
	}
	name := c.r.PathValue("run")
	v := c.projectView(p, "runs", name)
	v.Crumbs = []crumb{{"Projects", "/projects"}, {p.ProjectName, projectURL(p.ProjectName, "/runs")},
		{"Runs", projectURL(p.ProjectName, "/runs")}, {Label: name}}
	r, e := c.loadRun(p)
	if e != nil {
		v.Err = e
		c.render(0, "run", v)
		return
	}
	d := &runPageData{P: p, R: r, MultiJobs: len(r.Jobs) > 1}
	v.D = d
	v.Title = r.Name() + " · " + p.ProjectName
	want := c.r.URL.Query().Get("job")
	for ji := range r.Jobs {
		j := &r.Jobs[ji]
		for si := len(j.JobSubmissions) - 1; si >= 0; si-- {
			s := &j.JobSubmissions[si]
			d.Rows = append(d.Rows, subRow{Job: j.JobSpec.JobName, Sub: s, Latest: si == len(j.JobSubmissions)-1})
			if (want == "" && d.Sel == nil && si == len(j.JobSubmissions)-1) || s.ID == want {
				d.Sel, d.SelJob = s, j.JobSpec.JobName
			}
		}
	}
	if d.Sel != nil {
		d.SelID = d.Sel.ID
	}
	d.History = runHistory(r)
	if want != "" && (d.Sel == nil || d.Sel.ID != want) {
		d.Sel, d.SelID = nil, ""
		d.LogErr = &APIError{Status: http.StatusNotFound, Items: []ErrorItem{{Msg: "This run has no job submission " + want + "."}}}
	}
	if d.Sel != nil {
		d.Live = !d.Sel.Finished()
		d.LogsURL = projectURL(p.ProjectName, "/runs/"+url.PathEscape(r.Name())+"/logs?"+url.Values{"job": {d.Sel.ID}}.Encode())
		var res logsJSON
		e := c.call("/api/project/"+url.PathEscape(p.ProjectName)+"/logs/poll", map[string]any{"run_name": r.Name(),
			"job_submission_id": d.Sel.ID, "descending": true, "limit": logsPageSize}, &res)
		if e != nil {
			d.LogErr = e
		} else {
			slices.Reverse(res.Logs)
			d.LogCut = res.NextToken != nil
			for _, ev := range res.Logs {
				msg, err := base64.StdEncoding.DecodeString(ev.Message)
				if err != nil {
					msg = []byte(ev.Message)
				}
				d.Logs = append(d.Logs, logChunk{Source: ev.LogSource, Text: logText(msg)})
				if ev.Timestamp == d.LogStart {
					d.LogSeen++
				} else {
					d.LogStart, d.LogSeen = ev.Timestamp, 1
				}
			}
		}
	}
	c.render(0, "run", v)
}

// runHistory lists what happened to a run, oldest first, from its submissions' times and states.
func runHistory(r *runJSON) []historyEvent {
	ev := []historyEvent{{Time: r.SubmittedAt, Title: "Run submitted", Detail: "by " + r.User, Status: "submitted"}}
	for _, j := range r.Jobs {
		for _, s := range j.JobSubmissions {
			title := j.JobSpec.JobName
			if s.SubmissionNum > 0 {
				title += " resubmitted (attempt " + strconv.Itoa(s.SubmissionNum+1) + ")"
			} else {
				title += " submitted"
			}
			e := historyEvent{Time: s.SubmittedAt, Title: title, Status: "submitted"}
			if s.JPD != nil {
				e.Detail = "on " + backendName(s.JPD.Backend) + " (" + s.JPD.Region + "), " + s.JPD.InstanceType.Name
			}
			ev = append(ev, e)
			if s.Finished() {
				end := s.LastProcessedAt
				if s.FinishedAt != nil {
					end = *s.FinishedAt
				}
				ev = append(ev, historyEvent{Time: end, Title: j.JobSpec.JobName + " " + s.Status, Status: s.Status,
					Detail: s.Why(), Error: s.Failed()})
			} else if s.Status != "submitted" {
				ev = append(ev, historyEvent{Time: s.LastProcessedAt, Title: j.JobSpec.JobName + " " + s.Status, Status: s.Status,
					Detail: strings.TrimSpace(strings.TrimPrefix(s.StatusMessage, s.Status))})
			}
		}
	}
	if r.Finished() {
		ev = append(ev, historyEvent{Time: r.Ended(), Title: "Run " + r.Status, Status: r.Status, Detail: reason(deref(r.TerminationReason)),
			Error: r.Failed()})
	}
	sort.SliceStable(ev, func(i, j int) bool {
		a, _ := parseTime(ev[i].Time)
		b, _ := parseTime(ev[j].Time)
		return a.Before(b)
	})
	return ev
}

type logEventJSON struct {
	Timestamp string `json:"timestamp"`
	LogSource string `json:"log_source"`
	Message   string `json:"message"`
}

type logsJSON struct {
	Logs      []logEventJSON `json:"logs"`
	NextToken *string        `json:"next_token"`
}

// logsUpdate is the answer of the UI's logs endpoint to the run page's script: the API's events
// since start_time (base64 messages, as logs/poll gives them) and the states to show.
type logsUpdate struct {
	Logs      []logEventJSON `json:"logs"`
	NextToken *string        `json:"next_token"`
	JobStatus string         `json:"job_status"`
	JobBadge  string         `json:"job_badge"`
	RunStatus string         `json:"run_status"`
	RunBadge  string         `json:"run_badge"`
	Live      bool           `json:"live"`
	Error     string         `json:"error,omitempty"`
}

// runLogs answers the run page's script (GET, JSON): logs/poll from start_time, and runs/get for the
// states. Errors come back as {"error": words} with the API's status.
func (c *ctx) runLogs() {
	q := c.r.URL.Query()
	project, name, sub := c.r.PathValue("project"), c.r.PathValue("run"), q.Get("job")
	writeJSON := func(status int, v any) {
		c.w.Header().Set("Content-Type", "application/json")
		c.w.Header().Set("Cache-Control", "no-store")
		c.w.WriteHeader(status)
		_ = json.NewEncoder(c.w).Encode(v)
	}
	fail := func(e *APIError) {
		writeJSON(e.Status, logsUpdate{Logs: []logEventJSON{}, Error: e.Heading() + ": " + e.Error()})
	}
	body := map[string]any{"run_name": name, "job_submission_id": sub, "limit": logsPageSize}
	if s := q.Get("start_time"); s != "" {
		body["start_time"] = s
	}
	if t := q.Get("next_token"); t != "" {
		body["next_token"] = t
	}
	var res logsJSON
	if e := c.call("/api/project/"+url.PathEscape(project)+"/logs/poll", body, &res); e != nil {
		fail(e)
		return
	}
	var r runJSON
	if e := c.call("/api/project/"+url.PathEscape(project)+"/runs/get", map[string]any{"run_name": name}, &r); e != nil {
		fail(e)
		return
	}
	out := logsUpdate{Logs: res.Logs, NextToken: res.NextToken, RunStatus: r.Status, RunBadge: statusClass(r.Status)}
	if out.Logs == nil {
		out.Logs = []logEventJSON{}
	}
	for _, j := range r.Jobs {
		for _, s := range j.JobSubmissions {
			if s.ID == sub {
				out.JobStatus, out.JobBadge, out.Live = s.Status, statusClass(s.Status), !s.Finished()
			}
		}
	}
	writeJSON(http.StatusOK, out)
}

func (c *ctx) stopRun() {
	project, name := c.r.PathValue("project"), c.r.PathValue("run")
	abort := c.r.PostFormValue("abort") == "on"
	back := projectURL(project, "/runs/"+url.PathEscape(name))
	if e := c.call(runsAPI(project)+"/stop", map[string]any{"runs_names": []string{name}, "abort": abort}, nil); e != nil {
		c.fail("Stop "+name, "projects", e, crumb{"Projects", "/projects"}, crumb{project, projectURL(project, "/runs")},
			crumb{name, back})
		return
	}
	msg := "Stopping run " + name + "."
	if abort {
		msg = "Aborting run " + name + "."
	}
	c.redirect(back, msg)
}
