// Command runs measures the run lifecycle on real hosts: test hosts of package testhost (containers
// of the local Docker Engine, provisioned over SSH with the real dstack-shim and dstack-runner) and an
// in-process server on SQLite. It prints:
//
//   - fleet apply to idle: from fleets/apply of a one-host SSH fleet to its instance idle (the first
//     apply uploads the agents; later ones find them installed and only start the shim);
//
//   - submit to running and submit to done of a task running `echo hello` on an idle instance whose
//     image is present, observed through the API every 2 ms;
//
//   - with -instances N, the server's memory per instance with N idle instances whose agents are
//     simulated (a child process serves N SSH ports and a fake shim; the server keeps a pooled SSH
//     connection to each and checks their health).
//
//     go run ./bench/runs [-n 10] [-instances 1000]
//
// It needs a Docker Engine and Debian's busybox-static (/bin/busybox), as the tests do.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dstackgo/dstack/internal/client"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/server"
	"github.com/dstackgo/dstack/internal/store"
	"github.com/dstackgo/dstack/internal/testhost"
	"github.com/dstackgo/dstack/internal/testhost/sshserver"
)

const token = "44444444-4444-4444-8444-444444444444"

func main() {
	n := flag.Int("n", 10, "repetitions of each measurement")
	instances := flag.Int("instances", 0, "also measure memory per instance with this many simulated instances")
	simulate := flag.Int("simulate-hosts", 0, "internal: serve this many simulated hosts (child process)")
	flag.Parse()
	if *simulate > 0 {
		simulateHosts(*simulate)
		return
	}
	b := &benchT{}
	defer b.cleanup()
	lifecycle(b, *n)
	if *instances > 0 {
		memoryPerInstance(b, *instances)
	}
}

// lifecycle measures fleet apply to idle, submit to running and submit to done.
func lifecycle(b *benchT, n int) {
	testhost.Docker(b)
	_, jobImage := testhost.Images(b)
	key, err := sshserver.NewKey()
	check(err)
	host := testhost.Start(b, key)
	c, _ := startServer(b, server.WorkOptions{AgentsDir: testhost.AgentsDir(b), DefaultImage: jobImage})
	ctx := context.Background()

	spec := func(name string) map[string]any {
		return map[string]any{"configuration": map[string]any{"type": "fleet", "name": name, "ssh_config": map[string]any{
			"user": "root", "ssh_key": map[string]any{"public": key.Public, "private": key.PrivatePEM}, "hosts": []any{host.IP}}},
			"profile": map[string]any{"name": "default"}}
	}
	var applies []time.Duration
	for i := range n + 1 {
		name := fmt.Sprintf("bench-%d", i)
		start := time.Now()
		check(c.Do(ctx, "/api/project/main/fleets/apply", map[string]any{"plan": map[string]any{"spec": spec(name)}, "force": false}, nil))
		waitFor(func() bool {
			f, err := c.GetFleet(ctx, "main", name)
			check(err)
			return len(f.Instances) == 1 && f.Instances[0].Status == "idle"
		})
		applies = append(applies, time.Since(start))
		if i == n {
			break // keep the last fleet for the runs
		}
		check(c.DeleteFleets(ctx, "main", []string{name}))
		waitFor(func() bool { _, err := c.GetFleet(ctx, "main", name); return err != nil })
	}
	fmt.Printf("fleet_apply_to_idle first_ms=%.0f (uploads the agents) then_p50_ms=%.0f max_ms=%.0f runs=%d (target: <3000 ms; original: 16 s)\n",
		ms(applies[0]), ms(p50(applies[1:])), ms(slices.Max(applies[1:])), n)

	var toRunning, toDone []time.Duration
	for i := range n {
		name := fmt.Sprintf("hello-%d", i)
		runSpec := map[string]any{"run_name": name, "configuration": map[string]any{"type": "task", "commands": []string{"echo hello"},
			"resources": map[string]any{"cpu": "1..", "memory": "0.1GB..", "disk": "0.1GB.."}}}
		start := time.Now()
		check(c.Do(ctx, "/api/project/main/runs/apply", map[string]any{"plan": map[string]any{"run_spec": runSpec}, "force": false}, nil))
		var running time.Duration
		for {
			r, err := c.GetRun(ctx, "main", name)
			check(err)
			if running == 0 && (r.Status == "running" || r.Status == "done") {
				running = time.Since(start)
			}
			if r.Status == "done" {
				toDone = append(toDone, time.Since(start))
				break
			}
			if r.Status == "failed" || r.Status == "terminated" {
				log.Fatalf("run %s %s", name, r.Status)
			}
			time.Sleep(2 * time.Millisecond)
		}
		toRunning = append(toRunning, running)
	}
	fmt.Printf("submit_to_running p50_ms=%.0f max_ms=%.0f runs=%d (target: <1000 ms; original: 13-19 s)\n", ms(p50(toRunning)), ms(slices.Max(toRunning)), n)
	fmt.Printf("submit_to_done    p50_ms=%.0f max_ms=%.0f runs=%d (target: <2000 ms; original: 35-67 s)\n", ms(p50(toDone)), ms(slices.Max(toDone)), n)
}

// startServer runs a server on a fresh SQLite database with its background work.
func startServer(b *benchT, o server.WorkOptions) (*client.Client, *store.Store) {
	dir := b.TempDir()
	kr, err := server.Keyring(dir, nil)
	check(err)
	st, err := store.Open(context.Background(), filepath.Join(dir, "db.sqlite"), kr)
	check(err)
	srv := server.New(st, nil)
	_, err = srv.Bootstrap(context.Background(), token)
	check(err)
	o.Dir = dir
	srv.ConfigureWork(o)
	ctx, cancel := context.WithCancel(context.Background())
	wait := srv.StartWork(ctx)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	hs := &http.Server{Handler: srv.Handler()}
	go hs.Serve(ln)
	b.Cleanup(func() { hs.Close(); cancel(); wait(); st.Close() })
	return client.New("http://"+ln.Addr().String(), token), st
}

// memoryPerInstance adds n idle instances whose hosts a child process simulates, waits until the
// server holds an SSH connection to each, and reports the growth of the server's memory.
func memoryPerInstance(b *benchT, n int) {
	key, err := sshserver.NewKey()
	check(err)
	exe, err := os.Executable()
	check(err)
	child := exec.Command(exe, "-simulate-hosts", strconv.Itoa(n))
	child.Env = append(os.Environ(), "BENCH_AUTHORIZED_KEY="+key.Public)
	child.Stderr = os.Stderr
	stdout, err := child.StdoutPipe()
	check(err)
	check(child.Start())
	b.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	var sim simulated
	check(json.NewDecoder(stdout).Decode(&sim))

	_, st := startServer(b, server.WorkOptions{HealthInterval: 5 * time.Second})
	ctx := context.Background()
	p, err := st.GetProject(ctx, "main")
	check(err)
	before := heap()
	var insts []*models.Instance
	for i, port := range sim.Ports {
		insts = append(insts, &models.Instance{ProjectID: p.ID, Name: fmt.Sprintf("sim-%d", i), InstanceNum: i,
			Status: models.InstanceIdle, Backend: models.BackendRemote, Region: "remote", TotalBlocks: 1,
			InstanceType: models.InstanceType{Name: "instance", Resources: models.InstanceResources{CPUs: 8, MemoryMiB: 32768, Gpus: []models.Gpu{}}},
			Remote: &models.RemoteConnectionInfo{Host: "127.0.0.1", Port: port, User: "root", PrivateKey: key.PrivatePEM,
				Env: map[string]string{"DSTACK_SHIM_HTTP_PORT": strconv.Itoa(sim.ShimPort)}}})
	}
	check(st.CreateFleet(ctx, &models.Fleet{ProjectID: p.ID, Name: "simulated", Status: models.FleetActive}, insts))
	waitFor(func() bool {
		resp, err := http.Get(sim.StatsURL)
		check(err)
		defer resp.Body.Close()
		var s struct{ Health int64 }
		check(json.NewDecoder(resp.Body).Decode(&s))
		return s.Health >= int64(n)
	})
	time.Sleep(6 * time.Second) // a second round of health checks: steady state
	after := heap()
	fmt.Printf("memory_per_instance instances=%d heap_kb_per_instance=%.0f rss_kb_per_instance=%.0f (target: <512 KB; original: 8 MB)\n",
		n, float64(after.heap-before.heap)/1024/float64(n), float64(after.rss-before.rss)/1024/float64(n))
}

type memory struct{ heap, rss uint64 }

func heap() memory {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	var rss uint64
	if data, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseUint(f[1], 10, 64)
				rss = kb * 1024
			}
		}
	}
	return memory{heap: m.HeapAlloc, rss: rss}
}

// simulated is what the child process serves.
type simulated struct {
	Ports    []int  `json:"ports"`
	ShimPort int    `json:"shim_port"`
	StatsURL string `json:"stats_url"`
}

// simulateHosts serves n SSH servers (one port each) that forward to a fake shim, and reports how
// many health checks the fake shim answered.
func simulateHosts(n int) {
	keys, err := sshserver.ParseAuthorizedKeys([]byte(os.Getenv("BENCH_AUTHORIZED_KEY")))
	check(err)
	hostKey, err := sshserver.NewKey()
	check(err)
	var health atomic.Int64
	shimLn, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	mux := http.NewServeMux()
	mux.HandleFunc("/api/healthcheck", func(w http.ResponseWriter, r *http.Request) {
		health.Add(1)
		_, _ = w.Write([]byte(`{"service":"dstack-shim","version":"0.21.2"}`))
	})
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]int64{"Health": health.Load()})
	})
	go http.Serve(shimLn, mux)
	srv := &sshserver.Server{HostKey: hostKey.Signer, AuthorizedKeys: keys}
	out := simulated{ShimPort: shimLn.Addr().(*net.TCPAddr).Port, StatsURL: "http://" + shimLn.Addr().String() + "/stats"}
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		check(err)
		out.Ports = append(out.Ports, ln.Addr().(*net.TCPAddr).Port)
		go srv.Serve(ln)
	}
	check(json.NewEncoder(os.Stdout).Encode(out))
	select {}
}

// benchT gives package testhost what it needs outside a test.
type benchT struct{ cleanups []func() }

func (b *benchT) Helper()                      {}
func (b *benchT) Fatal(args ...any)            { b.cleanup(); log.Fatal(args...) }
func (b *benchT) Fatalf(f string, args ...any) { b.cleanup(); log.Fatalf(f, args...) }
func (b *benchT) Skipf(f string, args ...any)  { b.cleanup(); log.Fatalf("cannot run: "+f, args...) }
func (b *benchT) Cleanup(f func())             { b.cleanups = append(b.cleanups, f) }
func (b *benchT) TempDir() string {
	d, err := os.MkdirTemp("", "dstack-bench-runs-")
	check(err)
	b.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func (b *benchT) cleanup() {
	for i := len(b.cleanups) - 1; i >= 0; i-- {
		b.cleanups[i]()
	}
	b.cleanups = nil
}

func waitFor(cond func() bool) {
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			log.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func p50(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
