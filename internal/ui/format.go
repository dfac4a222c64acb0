package ui

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/dstackgo/dstack/internal/resources"
)

// JSON shapes of the run, fleet, instance and offer answers, as far as the pages use them.

type gpuJSON struct {
	Name      string `json:"name"`
	MemoryMiB int    `json:"memory_mib"`
}

type resourcesJSON struct {
	CPUs      int       `json:"cpus"`
	MemoryMiB int       `json:"memory_mib"`
	GPUs      []gpuJSON `json:"gpus"`
	Spot      bool      `json:"spot"`
	Disk      struct {
		SizeMiB int `json:"size_mib"`
	} `json:"disk"`
	CPUArch *string `json:"cpu_arch"`
}

// GPU describes the accelerators, e.g. "2 × A100 80GB", or "" for none.
func (r resourcesJSON) GPU() string {
	if len(r.GPUs) == 0 {
		return ""
	}
	g := r.GPUs[0]
	s := g.Name
	if g.MemoryMiB > 0 {
		s += " " + gib(g.MemoryMiB)
	}
	if len(r.GPUs) > 1 {
		s = strconv.Itoa(len(r.GPUs)) + " × " + s
	}
	return s
}

// Machine describes CPUs, memory and disk, e.g. "8 CPU · 32GB RAM · 100GB disk".
func (r resourcesJSON) Machine() string {
	var parts []string
	if r.CPUs > 0 {
		cpu := strconv.Itoa(r.CPUs) + " CPU"
		if r.CPUArch != nil && *r.CPUArch == "arm" {
			cpu = strconv.Itoa(r.CPUs) + " Arm CPU"
		}
		parts = append(parts, cpu)
	}
	if r.MemoryMiB > 0 {
		parts = append(parts, gib(r.MemoryMiB)+" RAM")
	}
	if r.Disk.SizeMiB > 0 {
		parts = append(parts, gib(r.Disk.SizeMiB)+" disk")
	}
	return strings.Join(parts, " · ")
}

func gib(mib int) string {
	g := float64(mib) / 1024
	return strconv.FormatFloat(math.Round(g*10)/10, 'f', -1, 64) + "GB"
}

type instanceTypeJSON struct {
	Name      string        `json:"name"`
	Resources resourcesJSON `json:"resources"`
}

// price renders an hourly price in USD: "$1.4634".
func price(p float64) string {
	return "$" + strconv.FormatFloat(math.Round(p*10000)/10000, 'f', -1, 64)
}

// backendName shows SSH fleets' "remote" backend as dstack does: ssh.
func backendName(b string) string {
	if b == "remote" {
		return "ssh"
	}
	return b
}

// requested renders a run's requested resources (a resources spec) as the CLI does, e.g.
// "cpu=2.. mem=8GB.. disk=100GB.. gpu=A100:80GB:2"; "" if it cannot be read.
func requested(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var spec resources.ResourcesSpec
	if json.Unmarshal(raw, &spec) != nil {
		return ""
	}
	return spec.String()
}

// statusClass picks the badge colour of a run, job, fleet or instance status.
func statusClass(s string) string {
	switch s {
	case "running", "idle", "active", "done", "valid":
		return "badge-ok"
	case "failed", "invalid":
		return "badge-error"
	case "submitted", "pending", "provisioning", "pulling", "starting", "creating", "busy":
		return "badge-info"
	case "terminating", "unchecked":
		return "badge-warn"
	}
	return ""
}

// liveStatus tells statuses that will change by themselves (the page keeps polling).
func liveStatus(s string) bool {
	switch s {
	case "submitted", "pending", "provisioning", "pulling", "running", "terminating", "starting", "creating":
		return true
	}
	return false
}

var reasonWords = map[string]string{
	// Runs.
	"all_jobs_done":        "all jobs done",
	"job_failed":           "a job failed",
	"retry_limit_exceeded": "the retry limit was exceeded",
	"stopped_by_user":      "stopped by a user",
	"aborted_by_user":      "aborted by a user",
	"server_error":         "a server error",
	// Jobs.
	"failed_to_start_due_to_no_capacity":   "no offer had capacity to start it",
	"interrupted_by_no_capacity":           "interrupted: the provider reclaimed the capacity",
	"instance_unreachable":                 "its instance became unreachable",
	"waiting_instance_limit_exceeded":      "it waited too long for an instance",
	"waiting_runner_limit_exceeded":        "it waited too long for the runner to start",
	"terminated_by_user":                   "stopped by a user",
	"volume_error":                         "a volume error",
	"gateway_error":                        "a gateway error",
	"scaled_down":                          "scaled down",
	"done_by_runner":                       "finished",
	"abort_by_user":                        "aborted by a user",
	"terminated_by_server":                 "terminated by the server",
	"inactivity_duration_exceeded":         "inactive for too long",
	"terminated_due_to_utilization_policy": "its GPU utilization stayed under the policy's minimum",
	"container_exited_with_error":          "the container exited with an error",
	"creating_container_error":             "the container could not be created",
	"executor_error":                       "the runner failed",
	"max_duration_exceeded":                "it ran past max_duration",
	"log_upload_error":                     "its logs could not be uploaded",
}

// sentence starts s with a capital letter.
func sentence(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}

// reason puts a termination reason in words, keeping the code for reference.
func reason(code string) string {
	if w, ok := reasonWords[code]; ok {
		return w
	}
	return strings.ReplaceAll(code, "_", " ")
}

// failedReason tells termination reasons that are failures (shown as errors, not as plain facts).
func failedReason(code string) bool {
	switch code {
	case "", "all_jobs_done", "stopped_by_user", "aborted_by_user", "terminated_by_user", "abort_by_user",
		"done_by_runner", "scaled_down":
		return false
	}
	return true
}

func parseTime(s string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// ago renders how long ago an API timestamp was: "just now", "5 min ago", "3 h ago", "2 days ago".
func ago(s string) string {
	t, ok := parseTime(s)
	if !ok {
		return s
	}
	d := time.Since(t)
	switch {
	case d < 45*time.Second:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", max(1, int(math.Round(d.Minutes()))))
	case d < 24*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	case d < 48*time.Hour:
		return "yesterday"
	case d < 30*24*time.Hour:
		return fmt.Sprintf("%d days ago", int(d.Hours()/24))
	}
	return t.UTC().Format("2 Jan 2006")
}

// duration renders a span between two API timestamps (to "" means until now): "42s", "5m 3s", "2h 5m".
func duration(from, to string) string {
	a, ok := parseTime(from)
	if !ok {
		return ""
	}
	b := time.Now()
	if to != "" {
		if t, ok := parseTime(to); ok {
			b = t
		}
	}
	d := b.Sub(a).Round(time.Second)
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm %ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd %dh", int(d.Hours()/24), int(d.Hours())%24)
}

var ansiRe = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)`)

// logText makes a chunk of job output fit to show: escape sequences out, line endings as \n.
func logText(b []byte) string {
	s := ansiRe.ReplaceAllString(string(b), "")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}
