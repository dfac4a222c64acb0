package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/store"
)

// startWork runs the server's background pipelines for the rest of the test, polling fast.
func (e *env) startWork() {
	e.t.Helper()
	e.srv.ConfigureWork(WorkOptions{Dir: e.t.TempDir(), Poll: 20 * time.Millisecond, LeaseTTL: 5 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	wait := e.srv.StartWork(ctx)
	e.t.Cleanup(func() { cancel(); wait() })
}

// settle waits until the background work has nothing due (at most 10s).
func (e *env) settle() {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	// The tables are read one after another, so a job that ends (and wakes its run) between the reads of
	// runs and jobs would look settled: only two quiet passes in a row count.
	quiet := 0
	for {
		done := true
		for _, table := range []string{store.TableFleets, store.TableInstances, store.TableRuns, store.TableJobs} {
			ok, err := e.st.Settled(context.Background(), table)
			if err != nil {
				e.t.Fatal(err)
			}
			done = done && ok
		}
		if done {
			if quiet++; quiet == 2 {
				return
			}
			continue
		}
		quiet = 0
		if time.Now().After(deadline) {
			e.t.Log("background work did not settle in 10s")
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func sshFleetSpec(name string, hosts ...any) map[string]any {
	return map[string]any{"configuration": map[string]any{"type": "fleet", "name": name, "ssh_config": map[string]any{
		"user": "root", "ssh_key": map[string]any{"public": "ssh-ed25519 AAAA k", "private": "-----BEGIN KEY-----"}, "hosts": hosts}},
		"profile": map[string]any{"name": "default"}}
}

func applyBody(spec map[string]any, current any) map[string]any {
	return map[string]any{"plan": map[string]any{"spec": spec, "current_resource": current}, "force": false}
}

func TestFleetApplyRules(t *testing.T) {
	e := newEnv(t)
	// A private key never comes back, in the plan's effective spec or in the fleet.
	plan := e.must("admin", "/api/project/main/fleets/get_plan", map[string]any{"spec": sshFleetSpec("f", "10.0.0.1")}).(map[string]any)
	if plan["action"] != "create" || plan["effective_spec"].(map[string]any)["configuration"].(map[string]any)["ssh_config"].(map[string]any)["ssh_key"] != nil {
		t.Fatalf("plan %v", plan)
	}
	f := e.must("member", "/api/project/main/fleets/apply", applyBody(sshFleetSpec("f", "10.0.0.1", map[string]any{"hostname": "10.0.0.2", "port": 2222}), nil)).(map[string]any)
	insts := f["instances"].([]any)
	if len(insts) != 2 || insts[1].(map[string]any)["name"] != "f-1" || insts[0].(map[string]any)["status"] != "pending" {
		t.Fatalf("instances %v", insts)
	}
	data, _ := json.Marshal(f)
	if strings.Contains(string(data), "BEGIN KEY") {
		t.Fatal("the fleet shows the private key")
	}
	for name, tc := range map[string]struct {
		role string
		body map[string]any
		want string
	}{
		"host of another fleet": {"admin", applyBody(sshFleetSpec("g", "10.0.0.1"), nil), "already assigned to a fleet"},
		"host twice":            {"admin", applyBody(sshFleetSpec("g", "10.0.0.9", "10.0.0.9"), nil), "twice"},
		"no key": {"admin", applyBody(map[string]any{"configuration": map[string]any{"type": "fleet", "name": "g",
			"ssh_config": map[string]any{"user": "root", "hosts": []any{"10.0.0.8"}}}, "profile": map[string]any{}}, nil), "no private key"},
		"changed since the plan": {"admin", applyBody(sshFleetSpec("f", "10.0.0.1"), nil), "Resource has been changed"},
		"not a member":           {"outsider", applyBody(sshFleetSpec("h", "10.0.0.7"), nil), ""},
	} {
		code, out := e.call(tc.role, "/api/project/main/fleets/apply", tc.body)
		if code == http.StatusOK || !strings.Contains(fmt.Sprint(out), tc.want) {
			t.Errorf("%s: %d %v", name, code, out)
		}
	}
	// Adding a host in place keeps the others.
	cur := e.must("admin", "/api/project/main/fleets/get", map[string]any{"name": "f"})
	f = e.must("admin", "/api/project/main/fleets/apply", applyBody(sshFleetSpec("f", "10.0.0.1", map[string]any{"hostname": "10.0.0.2", "port": 2222}, "10.0.0.3"), cur)).(map[string]any)
	if n := len(f["instances"].([]any)); n != 3 {
		t.Fatalf("%d instances after adding a host", n)
	}
	e.must("admin", "/api/project/main/fleets/delete_instances", map[string]any{"name": "f", "instance_nums": []int{2}})
	e.must("admin", "/api/project/main/fleets/delete", map[string]any{"names": []string{"f"}})
	if f := e.must("admin", "/api/project/main/fleets/get", map[string]any{"name": "f"}).(map[string]any); f["status"] != "terminating" {
		t.Fatalf("status after delete %v", f["status"])
	}
	if code, out := e.call("admin", "/api/project/main/fleets/delete", map[string]any{"names": []string{"nope"}}); code != 400 {
		t.Fatalf("delete unknown: %d %v", code, out)
	}
}

func TestRunAPIRules(t *testing.T) {
	e := newEnv(t)
	spec := map[string]any{"run_name": "r1", "configuration": map[string]any{"type": "task", "commands": []string{"echo"}}}
	run := e.must("member", "/api/project/main/runs/apply", map[string]any{"plan": map[string]any{"run_spec": spec}, "force": false}).(map[string]any)
	if run["status"] != "submitted" || run["user"] != "member" || len(run["jobs"].([]any)) != 1 {
		t.Fatalf("run %v", run)
	}
	if code, out := e.call("member", "/api/project/main/runs/apply", map[string]any{"plan": map[string]any{"run_spec": spec}, "force": false}); code != 400 ||
		!strings.Contains(fmt.Sprint(out), "Resource has been changed") {
		t.Fatalf("second apply: %d %v", code, out)
	}
	if code, out := e.call("member", "/api/project/main/runs/delete", map[string]any{"runs_names": []string{"r1"}}); code != 400 ||
		!strings.Contains(fmt.Sprint(out), "Cannot delete active runs") {
		t.Fatalf("delete active: %d %v", code, out)
	}
	e.must("member", "/api/project/main/runs/stop", map[string]any{"runs_names": []string{"r1"}, "abort": false})
	if run := e.must("member", "/api/project/main/runs/get", map[string]any{"run_name": "r1"}).(map[string]any); run["status"] != "terminating" {
		t.Fatalf("after stop: %v", run["status"])
	}
	code, out := e.call("member", "/api/project/main/runs/get_plan", map[string]any{"run_spec": map[string]any{"configuration": map[string]any{"type": "task"}}})
	if code != 400 || !strings.Contains(fmt.Sprint(out), "needs commands") {
		t.Fatalf("plan without commands: %d %v", code, out)
	}
	// With background work, the stop finishes the run.
	e.startWork()
	e.settle()
	if run := e.must("member", "/api/project/main/runs/get", map[string]any{"run_name": "r1"}).(map[string]any); run["status"] != "terminated" ||
		run["termination_reason"] != "stopped_by_user" {
		t.Fatalf("stopped run: %v %v", run["status"], run["termination_reason"])
	}
}

func TestServeAgents(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	_ = os.WriteFile(filepath.Join(dir, "dstack-runner-linux-arm64"), []byte("runner-arm"), 0o755)
	_ = os.WriteFile(filepath.Join(dir, "dstack-shim"), []byte("shim-native"), 0o755)
	e.srv.ConfigureWork(WorkOptions{AgentsDir: dir})
	ts := httptest.NewServer(e.srv.Handler())
	defer ts.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data)
	}
	if code, body := get("/api/agents/dstack-runner/linux-arm64"); code != 200 || body != "runner-arm" {
		t.Fatalf("runner: %d %q", code, body)
	}
	if runtime.GOOS == "linux" {
		if code, body := get("/api/agents/dstack-shim/linux-" + runtime.GOARCH); code != 200 || body != "shim-native" {
			t.Fatalf("shim: %d %q", code, body)
		}
	}
	for _, p := range []string{"/api/agents/dstack-shim/linux-riscv64", "/api/agents/sshd/linux-amd64", "/api/agents/dstack-shim/windows-amd64"} {
		if code, _ := get(p); code != 404 {
			t.Fatalf("%s: %d", p, code)
		}
	}
}
