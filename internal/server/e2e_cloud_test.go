package server

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/fake"
	"github.com/dstackgo/dstack/internal/testhost"
)

// cloudSim is one provider's simulation on its own HTTP server, with a hook in front of its calls.
type cloudSim struct {
	*fake.Sim
	URL  string // DSTACK_<TYPE>_API_URL
	Good backends.Config

	mu     sync.Mutex
	before func(w http.ResponseWriter, r *http.Request) bool // true: answered, the simulation is not called
}

// startSim starts the simulation of typ (strict credentials) whose machines the host, when not
// nil, backs.
func startSim(t *testing.T, typ string, host fake.Host) *cloudSim {
	t.Helper()
	sim, err := fake.New(typ, fake.Options{BootDelay: 50 * time.Millisecond, Host: host})
	if err != nil {
		t.Fatal(err)
	}
	c := &cloudSim{Sim: sim, Good: fake.GoodConfig(typ)}
	if typ == "lambda" {
		// Two regions with capacity for the CPU type: a refused offer gives way to the same type elsewhere.
		c.Good.Values["regions"] = []any{"us-east-1", "us-west-1"}
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		before := c.before
		c.mu.Unlock()
		if before != nil && before(w, r) {
			return
		}
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	t.Cleanup(sim.Close)
	c.URL = ts.URL + fake.Prefix(typ)
	return c
}

func (c *cloudSim) setBefore(f func(w http.ResponseWriter, r *http.Request) bool) {
	c.mu.Lock()
	c.before = f
	c.mu.Unlock()
}

// backendYAML is the project's backend entry for the simulation.
func (c *cloudSim) backendYAML(t *testing.T) string {
	t.Helper()
	out, err := backendYAML(c.Good)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// newCloudE2E starts a server whose project main has one backend, typ, pointing at its simulation,
// with the simulation's catalog; hosted backs its machines with test hosts (skipped without Docker).
func newCloudE2E(t *testing.T, typ string, hosted bool) (*e2e, *cloudSim, *testhost.CloudHosts) {
	t.Helper()
	var hosts *testhost.CloudHosts
	var opts WorkOptions
	e := &e2e{}
	if hosted {
		testhost.Docker(t)
		_, e.jobImage = testhost.Images(t)
		hosts = testhost.NewCloudHosts(t)
		opts.AgentsDir = testhost.AgentsDir(t)
	}
	var host fake.Host
	if hosts != nil {
		host = hosts
	}
	sim := startSim(t, typ, host)
	t.Setenv(backends.EnvAPIURL(typ), sim.URL)
	e.env = newEnv(t)
	e.srv.SetCatalog(fake.Tables())
	opts.Dir, opts.Poll, opts.LeaseTTL, opts.HealthInterval = t.TempDir(), 200*time.Millisecond, 10*time.Second, time.Second
	// Long enough for a busy CI machine; TestE2ECloudUnreachable waits for it.
	opts.UnreachableGrace, opts.DefaultImage = 10*time.Second, e.jobImage
	opts.OrphanInterval, opts.OrphanGrace = 300*time.Millisecond, time.Second
	// The test hosts run no cloud-init: the server installs the shim over SSH after this grace.
	opts.CloudInitGrace = time.Second
	opts.GatewaySync = 300 * time.Millisecond
	e.srv.ConfigureWork(opts)
	ctx, cancel := context.WithCancel(context.Background())
	wait := e.srv.StartWork(ctx)
	t.Cleanup(func() { cancel(); wait() })
	e.must("admin", "/api/project/main/backends/create_yaml", map[string]any{"config_yaml": sim.backendYAML(t)})
	return e, sim, hosts
}

// instances lists the project's instances (every fleet, deleted ones included) by name.
func (e *e2e) instances() []map[string]any {
	e.t.Helper()
	out := e.must("admin", "/api/instances/list", map[string]any{"project_names": []string{"main"}})
	var list []map[string]any
	for _, i := range out.([]any) {
		list = append(list, i.(map[string]any))
	}
	return list
}

// waitTornDown waits until every instance of the project is terminated and the simulation (and
// the hosts backing it) have no machine left.
func (e *e2e) waitTornDown(sim *cloudSim, hosts *testhost.CloudHosts, limit time.Duration) {
	e.t.Helper()
	e.waitFor(limit, "instances terminated and no machine alive", func() (bool, string) {
		var st []string
		done := true
		for _, i := range e.instances() {
			st = append(st, fmt.Sprintf("%v %v (%v %v)", i["name"], i["status"], i["termination_reason"], i["status_message"]))
			done = done && i["status"] == "terminated"
		}
		alive := sim.Alive()
		running := 0
		if hosts != nil {
			running = hosts.Running()
		}
		return done && len(alive) == 0 && running == 0, fmt.Sprintf("instances %s; %d machines alive; %d host containers", strings.Join(st, ", "), len(alive), running)
	})
}

// jobPD is the provisioning data of the run's latest job submission.
func jobPD(run map[string]any) map[string]any {
	pd, _ := latestSubmission(run)["job_provisioning_data"].(map[string]any)
	return pd
}

// TestE2ECloudLambda runs tasks on Lambda machines through the simulator, each machine a test host
// that the server installs dstack-shim on over SSH: the first offer has no capacity and the next is
// used (the failure is shown while provisioning, and plans show the refused offer not_available),
// the task reaches running, its logs are stored, the idle machine takes a second task, and it is
// terminated after the runs' idle_duration; nothing is left alive at the provider.
func TestE2ECloudLambda(t *testing.T) {
	e, sim, hosts := newCloudE2E(t, "lambda", true)
	var launches atomic.Int32
	sim.setBefore(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/instance-operations/launch") {
			return false
		}
		switch launches.Add(1) {
		case 1: // Lambda's own answer when a region has no capacity
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":{"code":"instance-operations/launch/insufficient-capacity","message":"Not enough capacity to fulfill launch request."}}`)
			return true
		case 2:
			time.Sleep(time.Second) // long enough to see the first failure in the job's status
		}
		return false
	})
	conf := func(cmd string) map[string]any {
		return map[string]any{"commands": []string{cmd}, "idle_duration": 5,
			"resources": map[string]any{"cpu": "2..", "memory": "1GB..", "disk": "1GB.."}}
	}

	start := time.Now()
	e.submit("on-lambda", conf("echo hello from lambda; echo oops >&2"))
	var progress []string
	e.waitFor(3*time.Minute, "on-lambda running", func() (bool, string) {
		run := e.getRun("on-lambda")
		msg := fmt.Sprint(latestSubmission(run)["status_message"])
		if n := len(progress); n == 0 || progress[n-1] != msg {
			progress = append(progress, msg)
		}
		return run["status"] == "running" || run["status"] == "done" || run["status"] == "failed", fmt.Sprint(run["status"], ": ", progress)
	})
	t.Logf("submit to running on a new Lambda machine: %v; status messages: %q", time.Since(start), progress)
	shown := false
	for _, m := range progress {
		shown = shown || strings.Contains(m, "trying offer 2") && strings.Contains(m, "no capacity")
	}
	if !shown {
		t.Errorf("the first offer's failure was not shown while provisioning: %q", progress)
	}
	run := e.waitRun("on-lambda", time.Minute, "done", "failed", "terminated")
	if run["status"] != "done" {
		t.Fatalf("run %v: %v", run["status"], latestSubmission(run)["termination_reason_message"])
	}
	stdout, stderr := e.logs(run)
	if stdout != "hello from lambda\n" || stderr != "oops\n" {
		t.Fatalf("stdout %q, stderr %q", stdout, stderr)
	}
	pd := jobPD(run)
	machines := sim.Machines()
	if pd["backend"] != "lambda" || len(machines) != 1 || pd["instance_id"] != machines[0].ID || pd["hostname"] == nil {
		t.Fatalf("job provisioning data %v; machines %+v", pd, machines)
	}
	if !strings.HasPrefix(machines[0].Name, "dstack-main-on-lambda-0-") {
		t.Errorf("machine named %q", machines[0].Name)
	}

	// The refused offer is remembered: a plan shows it not_available.
	plan := e.must("admin", "/api/project/main/runs/get_plan", map[string]any{"run_spec": map[string]any{
		"configuration": map[string]any{"type": "task", "commands": []string{"x"}, "resources": map[string]any{"cpu": "2.."}}}})
	refused := map[string]bool{}
	for _, o := range plan.(map[string]any)["job_plans"].([]any)[0].(map[string]any)["offers"].([]any) {
		o := o.(map[string]any)
		if o["instance"].(map[string]any)["name"] == machines[0].Type && o["region"] != machines[0].Region && o["availability"] == "not_available" {
			refused[fmt.Sprint(o["region"])] = true
		}
	}
	if len(refused) == 0 {
		t.Errorf("no offer of %s outside %s is shown not_available after the capacity error", machines[0].Type, machines[0].Region)
	}

	// The idle machine takes the next task.
	e.submit("again", conf("echo again"))
	run = e.waitRun("again", time.Minute, "done", "failed", "terminated")
	if out, _ := e.logs(run); run["status"] != "done" || out != "again\n" || jobPD(run)["instance_id"] != machines[0].ID {
		t.Fatalf("second run %v on %v: %q", run["status"], jobPD(run)["instance_id"], out)
	}
	if n := len(sim.Machines()); n != 1 {
		t.Fatalf("%d machines created, want the idle one reused", n)
	}
	e.waitTornDown(sim, hosts, time.Minute)
	inst := e.instances()[0]
	if inst["termination_reason"] != "idle_timeout" {
		t.Errorf("instance ended with %v", inst["termination_reason"])
	}
	e.waitFor(10*time.Second, "the run's fleet deleted", func() (bool, string) {
		fleets := e.must("admin", "/api/project/main/fleets/list", map[string]any{}).([]any)
		return len(fleets) == 0, fmt.Sprint(fleets)
	})
	if m := sim.Misses(); len(m) > 0 {
		t.Errorf("requests Lambda would refuse: %v", m)
	}
}

// TestE2ECloudUnreachable loses power on a Lambda machine under a running task: the instance is
// marked unreachable, and after the termination deadline (3 s here) the job fails with
// instance_unreachable and the machine is terminated at the provider (an SSH-fleet host is only
// marked: TestE2EHostGoesAway).
func TestE2ECloudUnreachable(t *testing.T) {
	e, sim, hosts := newCloudE2E(t, "lambda", true)
	e.submit("stranded", map[string]any{"commands": []string{"sleep 100"}, "idle_duration": 300,
		"resources": map[string]any{"cpu": "2..", "memory": "1GB..", "disk": "1GB.."}})
	e.waitRun("stranded", 3*time.Minute, "running")
	if err := hosts.KillAll(); err != nil {
		t.Fatal(err)
	}
	run := e.waitRun("stranded", time.Minute, "failed", "terminated", "done")
	if sub := latestSubmission(run); run["status"] != "failed" || sub["termination_reason"] != "instance_unreachable" {
		t.Fatalf("run %v, job %v %v: %v", run["status"], sub["status"], sub["termination_reason"], sub["termination_reason_message"])
	}
	// idle_duration is 300 s: only the deadline ends the machine.
	e.waitTornDown(sim, hosts, 30*time.Second)
	if inst := e.instances()[0]; inst["termination_reason"] != "unreachable" {
		t.Fatalf("instance ended with %v (%v)", inst["termination_reason"], inst["termination_reason_message"])
	}
}

// TestE2ECloudRunPod runs a task in a RunPod pod through the simulator: the pod is a container of
// the job's image running dstack-runner directly, which the server reaches through the runner's
// own SSH server (no shim); the pod is terminated when the job ends.
func TestE2ECloudRunPod(t *testing.T) {
	e, sim, hosts := newCloudE2E(t, "runpod", true)
	start := time.Now()
	e.submit("in-a-pod", map[string]any{"commands": []string{"echo hello from a pod; echo oops >&2; exit 0"},
		"resources": map[string]any{"gpu": 1, "cpu": "1..", "memory": "1GB..", "disk": "1GB.."}})
	e.waitRun("in-a-pod", 3*time.Minute, "running", "done", "failed", "terminated")
	t.Logf("submit to running in a new pod: %v", time.Since(start))
	run := e.waitRun("in-a-pod", time.Minute, "done", "failed", "terminated")
	if run["status"] != "done" {
		t.Fatalf("run %v: %v", run["status"], latestSubmission(run)["termination_reason_message"])
	}
	stdout, stderr := e.logs(run)
	if stdout != "hello from a pod\n" || stderr != "oops\n" {
		t.Fatalf("stdout %q, stderr %q", stdout, stderr)
	}
	pd := jobPD(run)
	if pd["backend"] != "runpod" || pd["dockerized"] != false || pd["username"] != "root" {
		t.Fatalf("job provisioning data %v", pd)
	}
	machines := sim.Machines()
	if len(machines) != 1 || machines[0].Image != e.jobImage || !machines[0].Container {
		t.Fatalf("pods %+v", machines)
	}
	e.waitTornDown(sim, hosts, time.Minute)
	if inst := e.instances()[0]; inst["termination_reason"] != "job_finished" {
		t.Errorf("instance ended with %v", inst["termination_reason"])
	}
	if m := sim.Misses(); len(m) > 0 {
		t.Errorf("requests RunPod would refuse: %v", m)
	}
}

// TestCloudNoCapacity: when every offer is refused the job fails with
// failed_to_start_due_to_no_capacity, saying why each offer failed; no machine is made.
func TestCloudNoCapacity(t *testing.T) {
	e, sim, _ := newCloudE2E(t, "lambda", false)
	sim.SetNoCapacity(true)
	e.submit("nowhere", map[string]any{"commands": []string{"true"}, "resources": map[string]any{"cpu": "2.."}})
	run := e.waitRun("nowhere", time.Minute, "failed", "done", "terminated")
	sub := latestSubmission(run)
	msg := fmt.Sprint(sub["termination_reason_message"])
	if sub["termination_reason"] != "failed_to_start_due_to_no_capacity" || !strings.HasPrefix(msg, "All offers failed: lambda ") ||
		!strings.Contains(msg, "Not enough capacity") {
		t.Fatalf("job %v: %v", sub["termination_reason"], msg)
	}
	if n := len(sim.Machines()); n != 0 {
		t.Fatalf("%d machines made", n)
	}
}

// TestE2ECloudOrphanAfterSIGKILL kills the server (SIGKILL) after Lambda created a machine for a job
// and before the server got the answer, so the machine is in no record. After the restart, the
// orphan reconciler terminates it within its grace period and one pass.
func TestE2ECloudOrphanAfterSIGKILL(t *testing.T) {
	sim := startSim(t, "lambda", nil)
	catalogDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(catalogDir, fake.CatalogProvider("lambda")+".csv"), []byte(fake.CatalogCSV("lambda")), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &serverProcess{t: t, bin: testhost.BuildStatic(t, "./cmd/dstack"), dir: t.TempDir(), home: t.TempDir(),
		token: "44444444-4444-4444-8444-444444444444",
		env: []string{backends.EnvAPIURL("lambda") + "=" + sim.URL, "DSTACK_CATALOG_URL=" + catalogDir,
			"DSTACK_SERVER_LEASE_TTL_SECONDS=3", "DSTACK_SERVER_ORPHAN_INTERVAL_SECONDS=0.5", "DSTACK_SERVER_ORPHAN_GRACE_SECONDS=2"}}
	p.start()
	killed := make(chan struct{})
	var once sync.Once
	sim.setBefore(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/instance-operations/launch") {
			return false
		}
		// The provider creates the machine; the server dies before it hears of it.
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, r)
		once.Do(func() {
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			close(killed)
		})
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		return true
	})
	yml, err := backendYAML(sim.Good)
	if err != nil {
		t.Fatal(err)
	}
	p.do("/api/project/main/backends/create_yaml", map[string]any{"config_yaml": yml})
	spec := map[string]any{"run_name": "doomed", "configuration": map[string]any{"type": "task", "commands": []string{"sleep 100"},
		"resources": map[string]any{"cpu": "2.."}}}
	p.do("/api/project/main/runs/apply", map[string]any{"plan": map[string]any{"run_spec": spec}, "force": false})
	select {
	case <-killed:
	case <-time.After(time.Minute):
		log, _ := os.ReadFile(filepath.Join(p.dir, "server.log"))
		t.Fatalf("the server never launched a machine:\n%s", log)
	}
	_ = p.cmd.Wait()
	alive := sim.Alive()
	if len(alive) != 1 {
		t.Fatalf("%d machines alive after the kill, want the one created", len(alive))
	}
	orphan := alive[0]
	// After the restart the job tries again; let it find no capacity, so that no new machine muddles
	// the count.
	sim.setBefore(nil)
	sim.SetNoCapacity(true)
	restarted := time.Now()
	p.start()
	waitUntil(t, 30*time.Second, "the orphan terminated", func() bool {
		m, _ := sim.Machine(orphan.ID)
		return m.Status == fake.StatusTerminated
	})
	t.Logf("orphan %s (%s) terminated %v after the restart (grace 2s, passes every 0.5s)", orphan.ID, orphan.Name, time.Since(restarted).Round(10*time.Millisecond))
	if n := len(sim.Alive()); n != 0 {
		t.Fatalf("%d machines alive", n)
	}
	log, _ := os.ReadFile(filepath.Join(p.dir, "server.log"))
	if !bytes.Contains(log, []byte("orphan machine terminated")) || !bytes.Contains(log, []byte(orphan.ID)) {
		t.Fatalf("the server log does not report the orphan:\n%s", log)
	}
}
