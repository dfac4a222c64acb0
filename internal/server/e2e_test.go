package server

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dstackgo/dstack/internal/client"
	"github.com/dstackgo/dstack/internal/store"
	"github.com/dstackgo/dstack/internal/testhost"
	"github.com/dstackgo/dstack/internal/testhost/sshserver"
)

// e2e is a server with its background work, test hosts and the job image.
type e2e struct {
	*env
	key      sshserver.Key
	hosts    []*testhost.Host
	jobImage string
}

// newE2E starts a server whose hosts are real containers (skipped without Docker).
func newE2E(t *testing.T, hosts int) *e2e {
	testhost.Docker(t)
	_, jobImage := testhost.Images(t)
	agents := testhost.AgentsDir(t)
	e := &e2e{env: newEnv(t), jobImage: jobImage}
	e.srv.ConfigureWork(WorkOptions{Dir: t.TempDir(), AgentsDir: agents, Poll: 200 * time.Millisecond, LeaseTTL: 10 * time.Second,
		HealthInterval: time.Second, UnreachableGrace: 3 * time.Second, DefaultImage: jobImage, MetricsInterval: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	wait := e.srv.StartWork(ctx)
	t.Cleanup(func() { cancel(); wait() })
	var err error
	if e.key, err = sshserver.NewKey(); err != nil {
		t.Fatal(err)
	}
	for range hosts {
		e.hosts = append(e.hosts, testhost.Start(t, e.key))
	}
	return e
}

// fleetSpec is what `dstack apply` sends for an SSH fleet of the hosts.
func (e *e2e) fleetSpec(name string, hosts ...*testhost.Host) map[string]any {
	var list []any
	for _, h := range hosts {
		list = append(list, h.IP)
	}
	return map[string]any{
		"configuration": map[string]any{"type": "fleet", "name": name, "ssh_config": map[string]any{
			"user": "root", "identity_file": "key", "ssh_key": map[string]any{"public": e.key.Public, "private": e.key.PrivatePEM},
			"hosts": list}},
		"profile": map[string]any{"name": "default"},
	}
}

// applyFleet applies the fleet and waits until every instance is idle; it returns how long that took.
func (e *e2e) applyFleet(name string, hosts ...*testhost.Host) time.Duration {
	e.t.Helper()
	start := time.Now()
	e.must("admin", "/api/project/main/fleets/apply", map[string]any{"plan": map[string]any{"spec": e.fleetSpec(name, hosts...)}, "force": false})
	e.waitFor(time.Minute, "fleet "+name+" idle", func() (bool, string) {
		f := e.must("admin", "/api/project/main/fleets/get", map[string]any{"name": name}).(map[string]any)
		var states []string
		idle := true
		for _, i := range f["instances"].([]any) {
			inst := i.(map[string]any)
			states = append(states, fmt.Sprintf("%s %v %v", inst["name"], inst["status"], inst["status_message"]))
			idle = idle && inst["status"] == "idle"
		}
		return idle, strings.Join(states, "; ")
	})
	return time.Since(start)
}

// waitFor polls cond every 20ms until it holds.
func (e *e2e) waitFor(limit time.Duration, what string, cond func() (bool, string)) {
	e.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: not reached in %v; last state: %s", what, limit, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// submit applies a task and returns the run.
func (e *e2e) submit(name string, conf map[string]any) map[string]any {
	e.t.Helper()
	conf["type"] = "task"
	conf["name"] = name
	if _, ok := conf["resources"]; !ok {
		conf["resources"] = map[string]any{"cpu": "1..", "memory": "0.1GB..", "disk": "0.1GB.."}
	}
	spec := map[string]any{"run_name": name, "configuration": conf, "profile": map[string]any{"name": "default"}}
	return e.must("admin", "/api/project/main/runs/apply", map[string]any{"plan": map[string]any{"run_spec": spec}, "force": false}).(map[string]any)
}

func (e *e2e) getRun(name string) map[string]any {
	return e.must("admin", "/api/project/main/runs/get", map[string]any{"run_name": name}).(map[string]any)
}

// waitRun waits until the run's status is one of statuses and returns it.
func (e *e2e) waitRun(name string, limit time.Duration, statuses ...string) map[string]any {
	e.t.Helper()
	var run map[string]any
	e.waitFor(limit, "run "+name+" "+strings.Join(statuses, "|"), func() (bool, string) {
		run = e.getRun(name)
		sub, _ := run["latest_job_submission"].(map[string]any)
		state := fmt.Sprintf("run %v (%v); job %v %v %v", run["status"], run["termination_reason"], sub["status"], sub["termination_reason"], sub["termination_reason_message"])
		for _, s := range statuses {
			if run["status"] == s {
				return true, state
			}
		}
		return false, state
	})
	return run
}

// get GETs path as admin and returns the status and decoded JSON.
func (e *e2e) get(path string) (int, any) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.ts.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func latestSubmission(run map[string]any) map[string]any {
	return run["latest_job_submission"].(map[string]any)
}

// logs returns the job's stdout and stderr as polled through the API.
func (e *e2e) logs(run map[string]any) (stdout, stderr string) {
	e.t.Helper()
	body := map[string]any{"run_name": run["run_spec"].(map[string]any)["run_name"], "job_submission_id": latestSubmission(run)["id"], "limit": 1000}
	out := e.must("admin", "/api/project/main/logs/poll", body).(map[string]any)
	for _, l := range out["logs"].([]any) {
		ev := l.(map[string]any)
		msg, err := base64.StdEncoding.DecodeString(ev["message"].(string))
		if err != nil {
			e.t.Fatal(err)
		}
		if ev["log_source"] == "stderr" {
			stderr += string(msg)
		} else {
			stdout += string(msg)
		}
	}
	return stdout, stderr
}

func TestE2ESSHFleetRuns(t *testing.T) {
	e := newE2E(t, 2)
	took := e.applyFleet("ssh-fleet", e.hosts...)
	t.Logf("fleet apply to idle (2 hosts): %v", took)

	t.Run("FailingTaskKeepsBothStreams", func(t *testing.T) {
		e.submit("fails", map[string]any{"commands": []string{"echo hello; echo oops >&2; exit 3"}})
		run := e.waitRun("fails", time.Minute, "failed", "done", "terminated")
		sub := latestSubmission(run)
		if run["status"] != "failed" || run["termination_reason"] != "job_failed" || sub["status"] != "failed" ||
			sub["termination_reason"] != "container_exited_with_error" || sub["exit_status"] != 3.0 {
			t.Fatalf("run %v %v, job %v %v %v exit %v", run["status"], run["termination_reason"], sub["status"], sub["termination_reason"], sub["termination_reason_message"], sub["exit_status"])
		}
		stdout, stderr := e.logs(run)
		if stdout != "hello\n" || stderr != "oops\n" {
			t.Fatalf("stdout %q, stderr %q", stdout, stderr)
		}
	})

	t.Run("SucceedingTask", func(t *testing.T) {
		start := time.Now()
		e.submit("ok", map[string]any{"commands": []string{"echo ok"}, "env": map[string]any{"GREETING": "hi"}})
		run := e.waitRun("ok", time.Minute, "done", "failed", "terminated")
		t.Logf("submit to done: %v", time.Since(start))
		if run["status"] != "done" || latestSubmission(run)["status"] != "done" {
			t.Fatalf("run %v, job %v", run["status"], latestSubmission(run)["status"])
		}
		if stdout, _ := e.logs(run); stdout != "ok\n" {
			t.Fatalf("stdout %q", stdout)
		}
	})

	t.Run("StopAndAbort", func(t *testing.T) {
		e.submit("sleeper", map[string]any{"commands": []string{"sleep 100"}})
		e.submit("sleeper2", map[string]any{"commands": []string{"sleep 100"}})
		e.waitRun("sleeper", time.Minute, "running")
		e.waitRun("sleeper2", time.Minute, "running")
		// Both hosts are busy: a third task waits for one.
		e.must("admin", "/api/project/main/runs/stop", map[string]any{"runs_names": []string{"sleeper"}, "abort": false})
		e.must("admin", "/api/project/main/runs/stop", map[string]any{"runs_names": []string{"sleeper2"}, "abort": true})
		for name, reason := range map[string]string{"sleeper": "stopped_by_user", "sleeper2": "aborted_by_user"} {
			run := e.waitRun(name, 30*time.Second, "terminated", "failed", "done")
			if run["termination_reason"] != reason {
				t.Fatalf("%s: %v", name, run["termination_reason"])
			}
		}
	})

	t.Run("MaxDuration", func(t *testing.T) {
		e.submit("bounded", map[string]any{"commands": []string{"sleep 100"}, "max_duration": 2})
		run := e.waitRun("bounded", time.Minute, "terminated", "failed", "done")
		if sub := latestSubmission(run); sub["termination_reason"] != "max_duration_exceeded" {
			t.Fatalf("job %v %v", sub["status"], sub["termination_reason"])
		}
	})

	t.Run("ServiceThroughProxy", func(t *testing.T) {
		conf := map[string]any{"type": "service", "name": "web", "port": 8080,
			"commands":  []string{"mkdir -p /tmp/www && echo served > /tmp/www/index.html && httpd -f -p 8080 -h /tmp/www"},
			"resources": map[string]any{"cpu": "1..", "memory": "0.1GB..", "disk": "0.1GB.."}}
		spec := map[string]any{"run_name": "web", "configuration": conf, "profile": map[string]any{"name": "default"}}
		e.must("admin", "/api/project/main/runs/apply", map[string]any{"plan": map[string]any{"run_spec": spec}, "force": false})
		e.waitRun("web", time.Minute, "running")
		get := func(token string) (int, string) {
			req, _ := http.NewRequest(http.MethodGet, e.ts.URL+"/proxy/services/main/web/index.html", nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(body)
		}
		var code int
		var body string
		e.waitFor(20*time.Second, "service answers", func() (bool, string) {
			code, body = get(adminToken)
			return code == http.StatusOK, fmt.Sprintf("%d %s", code, body)
		})
		if body != "served\n" {
			t.Fatalf("body %q", body)
		}
		if code, _ := get(""); code != http.StatusUnauthorized {
			t.Fatalf("without a token: %d", code)
		}
		if code, _ := get(e.tokens["outsider"]); code != http.StatusForbidden {
			t.Fatalf("a non-member: %d", code)
		}
		e.must("admin", "/api/project/main/runs/stop", map[string]any{"runs_names": []string{"web"}, "abort": true})
		e.waitRun("web", 30*time.Second, "terminated", "failed", "done")
	})

	t.Run("MetricsOfARunningTask", func(t *testing.T) {
		e.submit("busy", map[string]any{"commands": []string{"sleep 100"}})
		e.waitRun("busy", time.Minute, "running")
		var metrics map[string][]any
		e.waitFor(20*time.Second, "three metrics samples", func() (bool, string) {
			code, out := e.get("/api/project/main/metrics/job/busy?replica_num=0&job_num=0&limit=1000")
			if code != http.StatusOK {
				return false, fmt.Sprint(code, out)
			}
			metrics = map[string][]any{}
			for _, m := range out.(map[string]any)["metrics"].([]any) {
				m := m.(map[string]any)
				if len(m["timestamps"].([]any)) != len(m["values"].([]any)) {
					t.Fatalf("%v: %d timestamps, %d values", m["name"], len(m["timestamps"].([]any)), len(m["values"].([]any)))
				}
				metrics[m["name"].(string)] = m["values"].([]any)
			}
			return len(metrics["memory_usage_bytes"]) >= 2, fmt.Sprint(out)
		})
		for _, name := range []string{"cpu_usage_percent", "memory_usage_bytes", "memory_working_set_bytes", "cpus_detected_num", "memory_total_bytes", "gpus_detected_num"} {
			if len(metrics[name]) < 2 {
				t.Fatalf("no %s: %v", name, metrics)
			}
		}
		if metrics["memory_usage_bytes"][0].(float64) <= 0 || metrics["gpus_detected_num"][0] != 0.0 {
			t.Fatalf("memory %v, gpus %v", metrics["memory_usage_bytes"], metrics["gpus_detected_num"])
		}
		// limit=1 gives the latest sample (two points make it).
		_, out := e.get("/api/project/main/metrics/job/busy?limit=1")
		if m := out.(map[string]any)["metrics"].([]any)[0].(map[string]any); len(m["values"].([]any)) != 1 {
			t.Fatalf("limit=1: %v", m)
		}
		if code, _ := e.get("/api/project/main/metrics/job/busy?job_num=3"); code != http.StatusBadRequest {
			t.Fatalf("no such job: %d", code)
		}
		e.must("admin", "/api/project/main/runs/stop", map[string]any{"runs_names": []string{"busy"}, "abort": true})
		e.waitRun("busy", 30*time.Second, "terminated", "failed", "done")
	})

	t.Run("InstancesBackIdle", func(t *testing.T) {
		e.waitFor(10*time.Second, "instances idle", func() (bool, string) {
			f := e.must("admin", "/api/project/main/fleets/get", map[string]any{"name": "ssh-fleet"}).(map[string]any)
			var st []string
			for _, i := range f["instances"].([]any) {
				st = append(st, fmt.Sprint(i.(map[string]any)["status"]))
			}
			return strings.Join(st, ",") == "idle,idle", strings.Join(st, ",")
		})
	})
}

// jobLogs returns the stdout of one job of a run.
func (e *e2e) jobLogs(run map[string]any, jobNum int) string {
	e.t.Helper()
	for _, j := range run["jobs"].([]any) {
		job := j.(map[string]any)
		if job["job_spec"].(map[string]any)["job_num"] != float64(jobNum) {
			continue
		}
		subs := job["job_submissions"].([]any)
		r := map[string]any{"run_spec": run["run_spec"], "latest_job_submission": subs[len(subs)-1]}
		stdout, _ := e.logs(r)
		return stdout
	}
	e.t.Fatalf("run has no job %d", jobNum)
	return ""
}

func TestE2EMultiNodeTask(t *testing.T) {
	e := newE2E(t, 2)
	e.applyFleet("cluster", e.hosts...)
	e.submit("two-nodes", map[string]any{"nodes": 2,
		"commands": []string{`echo "rank=$DSTACK_NODE_RANK nodes=$DSTACK_NODES_NUM master=$DSTACK_MASTER_NODE_IP"`}})
	run := e.waitRun("two-nodes", time.Minute, "done", "failed", "terminated")
	if run["status"] != "done" || len(run["jobs"].([]any)) != 2 {
		t.Fatalf("run %v with %d jobs", run["status"], len(run["jobs"].([]any)))
	}
	ips := map[string]bool{e.hosts[0].IP: true, e.hosts[1].IP: true}
	var master string
	for n := range 2 {
		out := e.jobLogs(run, n)
		var rank, nodes int
		var m string
		if _, err := fmt.Sscanf(out, "rank=%d nodes=%d master=%s", &rank, &nodes, &m); err != nil || rank != n || nodes != 2 || !ips[m] {
			t.Fatalf("job %d: %q", n, out)
		}
		if master != "" && m != master {
			t.Fatalf("masters differ: %s, %s", master, m)
		}
		master = m
	}
}

func TestE2EHostGoesAway(t *testing.T) {
	e := newE2E(t, 1)
	e.applyFleet("lonely", e.hosts...)
	e.submit("stranded", map[string]any{"commands": []string{"sleep 100"}})
	e.waitRun("stranded", time.Minute, "running")
	if err := e.hosts[0].Kill(); err != nil {
		t.Fatal(err)
	}
	run := e.waitRun("stranded", time.Minute, "failed", "terminated", "done")
	sub := latestSubmission(run)
	if run["status"] != "failed" || sub["termination_reason"] != "instance_unreachable" || !strings.Contains(fmt.Sprint(sub["termination_reason_message"]), "unreachable") {
		t.Fatalf("run %v, job %v %v: %v", run["status"], sub["status"], sub["termination_reason"], sub["termination_reason_message"])
	}
	f := e.must("admin", "/api/project/main/fleets/get", map[string]any{"name": "lonely"}).(map[string]any)
	inst := f["instances"].([]any)[0].(map[string]any)
	if inst["unreachable"] != true || inst["status_message"] == nil || inst["status"] == "terminated" || inst["status"] == "terminating" {
		t.Fatalf("instance %v unreachable=%v %v", inst["status"], inst["unreachable"], inst["status_message"])
	}
}

// TestE2EFleetBlocks splits a host into two blocks: two tasks run on it at once, each on one block
// (half its CPUs and memory, a container of its own); a third waits for a free block.
func TestE2EFleetBlocks(t *testing.T) {
	e := newE2E(t, 1)
	spec := e.fleetSpec("halves", e.hosts...)
	spec["configuration"].(map[string]any)["blocks"] = "many"
	if code, out := e.call("admin", "/api/project/main/fleets/apply", map[string]any{"plan": map[string]any{"spec": spec}, "force": false}); code != http.StatusBadRequest {
		t.Fatalf("blocks: many: %d %v", code, out)
	}
	spec["configuration"].(map[string]any)["blocks"] = 2
	e.must("admin", "/api/project/main/fleets/apply", map[string]any{"plan": map[string]any{"spec": spec}, "force": false})
	var inst map[string]any
	e.waitFor(time.Minute, "the host idle", func() (bool, string) {
		f := e.must("admin", "/api/project/main/fleets/get", map[string]any{"name": "halves"}).(map[string]any)
		inst = f["instances"].([]any)[0].(map[string]any)
		return inst["status"] == "idle", fmt.Sprint(inst["status"], " ", inst["status_message"])
	})
	if inst["total_blocks"] != 2.0 || inst["busy_blocks"] != 0.0 {
		t.Fatalf("blocks %v/%v", inst["busy_blocks"], inst["total_blocks"])
	}
	cpus := inst["instance_type"].(map[string]any)["resources"].(map[string]any)["cpus"].(float64)

	// A plan offers one block: half the host.
	plan := e.must("admin", "/api/project/main/runs/get_plan", map[string]any{"run_spec": map[string]any{
		"configuration": map[string]any{"type": "task", "commands": []string{"x"}, "resources": map[string]any{"cpu": "1..", "memory": "0.1GB..", "disk": "0.1GB.."}}}})
	offer := plan.(map[string]any)["job_plans"].([]any)[0].(map[string]any)["offers"].([]any)[0].(map[string]any)
	if offer["blocks"] != 1.0 || offer["total_blocks"] != 2.0 || offer["instance"].(map[string]any)["resources"].(map[string]any)["cpus"] != cpus/2 {
		t.Fatalf("offer %v", offer)
	}

	e.submit("first", map[string]any{"commands": []string{"nproc; sleep 100"}})
	e.submit("second", map[string]any{"commands": []string{"sleep 100"}})
	e.waitRun("first", time.Minute, "running")
	e.waitRun("second", time.Minute, "running")
	f := e.must("admin", "/api/project/main/fleets/get", map[string]any{"name": "halves"}).(map[string]any)
	if inst = f["instances"].([]any)[0].(map[string]any); inst["status"] != "busy" || inst["busy_blocks"] != 2.0 {
		t.Fatalf("instance %v with %v busy blocks", inst["status"], inst["busy_blocks"])
	}
	for _, name := range []string{"first", "second"} {
		jrd := latestSubmission(e.getRun(name))["job_runtime_data"].(map[string]any)
		if jrd["network_mode"] != "bridge" || jrd["cpu"] != cpus/2 {
			t.Fatalf("%s: runtime data %v", name, jrd)
		}
	}
	// Both host blocks are busy: a third task waits.
	e.submit("third", map[string]any{"commands": []string{"echo third"}})
	time.Sleep(time.Second)
	if run := e.getRun("third"); run["status"] != "submitted" && run["status"] != "pending" {
		t.Fatalf("third run %v: %v", run["status"], latestSubmission(run)["status_message"])
	}
	e.must("admin", "/api/project/main/runs/stop", map[string]any{"runs_names": []string{"first"}, "abort": true})
	if run := e.waitRun("third", time.Minute, "done", "failed", "terminated"); run["status"] != "done" {
		t.Fatalf("third run %v: %v", run["status"], latestSubmission(run)["termination_reason_message"])
	}
	e.must("admin", "/api/project/main/runs/stop", map[string]any{"runs_names": []string{"second"}, "abort": true})
	e.waitRun("second", 30*time.Second, "terminated", "failed", "done")
	e.waitFor(10*time.Second, "the host idle again", func() (bool, string) {
		f := e.must("admin", "/api/project/main/fleets/get", map[string]any{"name": "halves"}).(map[string]any)
		inst = f["instances"].([]any)[0].(map[string]any)
		return inst["status"] == "idle" && inst["busy_blocks"] == 0.0, fmt.Sprint(inst["status"], " ", inst["busy_blocks"])
	})
}

// serverProcess is `dstack server` run as a separate process, so that it can be killed.
type serverProcess struct {
	t              *testing.T
	bin, dir, home string
	url, token     string
	env            []string
	cmd            *exec.Cmd
}

func (p *serverProcess) start() {
	p.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		p.t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	p.url = fmt.Sprintf("http://127.0.0.1:%d", port)
	p.cmd = exec.Command(p.bin, "server", "--host", "127.0.0.1", "--port", fmt.Sprint(port), "--token", p.token, "-n")
	p.cmd.Env = append(os.Environ(), append([]string{"DSTACK_SERVER_DIR=" + p.dir, "HOME=" + p.home,
		"DSTACK_SERVER_CONFIG_DISABLED=1"}, p.env...)...)
	logf, err := os.OpenFile(filepath.Join(p.dir, "server.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait(); logf.Close() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get(p.url + "/healthcheck"); err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(p.dir, "server.log"))
			p.t.Fatalf("server did not start:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *serverProcess) do(path string, in any) map[string]any {
	p.t.Helper()
	var out map[string]any
	if err := client.New(p.url, p.token).Do(context.Background(), path, in, &out); err != nil {
		p.t.Fatalf("%s: %v", path, err)
	}
	return out
}

// TestE2EServerKilledMidRun kills the server with SIGKILL while a job runs and starts it again: the
// run finishes, with every line of its output once, and the job was not submitted twice.
func TestE2EServerKilledMidRun(t *testing.T) {
	testhost.Docker(t)
	_, jobImage := testhost.Images(t)
	key, err := sshserver.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	h := testhost.Start(t, key)
	p := &serverProcess{t: t, bin: testhost.BuildStatic(t, "./cmd/dstack"), dir: t.TempDir(), home: t.TempDir(),
		token: "33333333-3333-4333-8333-333333333333",
		env: []string{"DSTACK_AGENTS_DIR=" + testhost.AgentsDir(t), "DSTACK_SERVER_DEFAULT_IMAGE=" + jobImage,
			"DSTACK_SERVER_LEASE_TTL_SECONDS=3"}}
	p.start()
	e := &e2e{key: key}
	p.do("/api/project/main/fleets/apply", map[string]any{"plan": map[string]any{"spec": e.fleetSpec("f", h)}, "force": false})
	waitUntil(t, time.Minute, "fleet idle", func() bool {
		f := p.do("/api/project/main/fleets/get", map[string]any{"name": "f"})
		return f["instances"].([]any)[0].(map[string]any)["status"] == "idle"
	})
	spec := map[string]any{"run_name": "counter", "configuration": map[string]any{"type": "task",
		"commands":  []string{`i=1; while [ $i -le 8 ]; do echo line$i; i=$((i+1)); sleep 0.5; done`},
		"resources": map[string]any{"cpu": "1..", "memory": "0.1GB..", "disk": "0.1GB.."}}}
	p.do("/api/project/main/runs/apply", map[string]any{"plan": map[string]any{"run_spec": spec}, "force": false})
	logsOf := func() (string, map[string]any) {
		run := p.do("/api/project/main/runs/get", map[string]any{"run_name": "counter"})
		sub := run["latest_job_submission"].(map[string]any)
		out := p.do("/api/project/main/logs/poll", map[string]any{"run_name": "counter", "job_submission_id": sub["id"], "limit": 1000})
		var text string
		for _, l := range out["logs"].([]any) {
			msg, _ := base64.StdEncoding.DecodeString(l.(map[string]any)["message"].(string))
			text += string(msg)
		}
		return text, run
	}
	waitUntil(t, time.Minute, "line2 logged", func() bool { text, _ := logsOf(); return strings.Contains(text, "line2") })

	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
	time.Sleep(time.Second) // the job goes on without the server
	p.start()

	var run map[string]any
	waitUntil(t, time.Minute, "run done", func() bool {
		_, run = logsOf()
		return run["status"] == "done" || run["status"] == "failed"
	})
	text, run := logsOf()
	want := "line1\nline2\nline3\nline4\nline5\nline6\nline7\nline8\n"
	if run["status"] != "done" || text != want {
		t.Fatalf("after the restart: run %v, logs %q", run["status"], text)
	}
	if jobs := run["jobs"].([]any); len(jobs) != 1 || len(jobs[0].(map[string]any)["job_submissions"].([]any)) != 1 {
		t.Fatalf("jobs were submitted again: %v", jobs)
	}
}

func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached in %v", what, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestE2ETwoReplicasPostgres runs two servers on one PostgreSQL database (and one log directory):
// tasks submitted to either run once each on the fleet's hosts, with their output once.
func TestE2ETwoReplicasPostgres(t *testing.T) {
	admin := os.Getenv("DSTACK_TEST_POSTGRES_URL")
	if admin == "" {
		t.Skip("set DSTACK_TEST_POSTGRES_URL (scripts/postgres.sh starts one) to run two replicas on PostgreSQL")
	}
	testhost.Docker(t)
	_, jobImage := testhost.Images(t)
	agents := testhost.AgentsDir(t)
	key, err := sshserver.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	hosts := []*testhost.Host{testhost.Start(t, key), testhost.Start(t, key)}
	dbURL := freshDatabase(t, admin)
	dir := t.TempDir()
	kr, err := Keyring(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var replicas []*client.Client
	for range 2 {
		st, err := store.Open(context.Background(), dbURL, kr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		srv := New(st, nil)
		if _, err := srv.Bootstrap(context.Background(), adminToken); err != nil {
			t.Fatal(err)
		}
		srv.ConfigureWork(WorkOptions{Dir: dir, AgentsDir: agents, Poll: 200 * time.Millisecond, LeaseTTL: 10 * time.Second,
			HealthInterval: time.Second, DefaultImage: jobImage})
		ctx, cancel := context.WithCancel(context.Background())
		wait := srv.StartWork(ctx)
		ts := httptest.NewServer(srv.Handler())
		t.Cleanup(func() { ts.Close(); cancel(); wait() })
		replicas = append(replicas, client.New(ts.URL, adminToken))
	}
	do := func(replica int, path string, in any) map[string]any {
		t.Helper()
		var out map[string]any
		if err := replicas[replica%2].Do(context.Background(), path, in, &out); err != nil {
			t.Fatalf("replica %d %s: %v", replica%2, path, err)
		}
		return out
	}
	e := &e2e{key: key}
	do(0, "/api/project/main/fleets/apply", map[string]any{"plan": map[string]any{"spec": e.fleetSpec("shared", hosts...)}, "force": false})
	waitUntil(t, time.Minute, "fleet idle", func() bool {
		f := do(1, "/api/project/main/fleets/get", map[string]any{"name": "shared"})
		for _, i := range f["instances"].([]any) {
			if i.(map[string]any)["status"] != "idle" {
				return false
			}
		}
		return true
	})
	const n = 6
	for i := range n {
		spec := map[string]any{"run_name": fmt.Sprintf("task-%d", i), "configuration": map[string]any{"type": "task",
			"commands":  []string{fmt.Sprintf("echo task-%d", i)},
			"resources": map[string]any{"cpu": "1..", "memory": "0.1GB..", "disk": "0.1GB.."}}}
		do(i, "/api/project/main/runs/apply", map[string]any{"plan": map[string]any{"run_spec": spec}, "force": false})
	}
	for i := range n {
		name := fmt.Sprintf("task-%d", i)
		var run map[string]any
		waitUntil(t, 2*time.Minute, name+" finished", func() bool {
			run = do(i+1, "/api/project/main/runs/get", map[string]any{"run_name": name})
			return run["status"] == "done" || run["status"] == "failed" || run["status"] == "terminated"
		})
		sub := run["latest_job_submission"].(map[string]any)
		if run["status"] != "done" || len(run["jobs"].([]any)[0].(map[string]any)["job_submissions"].([]any)) != 1 {
			t.Fatalf("%s: %v, job %v %v", name, run["status"], sub["status"], sub["termination_reason_message"])
		}
		out := do(i, "/api/project/main/logs/poll", map[string]any{"run_name": name, "job_submission_id": sub["id"], "limit": 1000})
		var text string
		for _, l := range out["logs"].([]any) {
			msg, _ := base64.StdEncoding.DecodeString(l.(map[string]any)["message"].(string))
			text += string(msg)
		}
		if text != name+"\n" {
			t.Fatalf("%s logs %q", name, text)
		}
	}
}

// freshDatabase creates a PostgreSQL database for the test and drops it afterwards.
func freshDatabase(t *testing.T, admin string) string {
	t.Helper()
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatal(err)
	}
	name := "dstack_e2e_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = db.Exec("DROP DATABASE " + name + " WITH (FORCE)"); db.Close() })
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}
