package store

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/resources"
)

// TestRunsSQLite and TestRunsPostgres run the fleet, run and lease tests on each dialect.
func TestRunsSQLite(t *testing.T) {
	runRunsSuite(t, func(t *testing.T) string {
		return "sqlite://" + filepath.Join(t.TempDir(), "data", "sqlite.db")
	})
}

func TestRunsPostgres(t *testing.T) {
	admin := os.Getenv("DSTACK_TEST_POSTGRES_URL")
	if admin == "" {
		t.Skip("set DSTACK_TEST_POSTGRES_URL to run against PostgreSQL")
	}
	runRunsSuite(t, func(t *testing.T) string { return freshPostgresDB(t, admin) })
}

func runRunsSuite(t *testing.T, newDB func(t *testing.T) string) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, dbURL string)
	}{
		{"FleetsAndInstances", testFleetsAndInstances},
		{"RunsAndJobs", testRunsAndJobs},
		{"Leases", testLeases},
		{"LeasesTwoReplicas", testLeasesTwoReplicas},
		{"CloudInstances", testCloudInstances},
		{"MetricsPoints", testMetricsPoints},
		{"Volumes", testVolumes},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newDB(t)) })
	}
}

func mkFleet(t *testing.T, s *Store, p *models.Project, name string, hosts int) (*models.Fleet, []*models.Instance) {
	t.Helper()
	f := &models.Fleet{ProjectID: p.ID, Name: name, Status: models.FleetActive}
	var insts []*models.Instance
	for i := range hosts {
		insts = append(insts, &models.Instance{ProjectID: p.ID, Name: name + "-" + string(rune('0'+i)), InstanceNum: i,
			Status: models.InstancePending, Backend: models.BackendRemote, Region: "remote", TotalBlocks: 1,
			InstanceType: models.InstanceType{Name: "ssh"},
			Remote:       &models.RemoteConnectionInfo{Host: "10.0.0.1", Port: 22, User: "root", PrivateKey: "PRIVATE-KEY-TEXT"}})
	}
	must(t, s.CreateFleet(ctx, f, insts))
	return f, insts
}

func testFleetsAndInstances(t *testing.T, dbURL string) {
	s := openNew(t, dbURL)
	p := mkProject(t, s, "p", mkUser(t, s, "alice"))
	f, insts := mkFleet(t, s, p, "f", 2)
	wantErr(t, s.CreateFleet(ctx, &models.Fleet{ProjectID: p.ID, Name: "f", Status: models.FleetActive}, nil), ErrExists)
	got, err := s.GetFleet(ctx, p.ID, "f")
	must(t, err)
	if got.ID != f.ID || got.Status != models.FleetActive {
		t.Fatalf("got %+v", got)
	}
	list, err := s.ListInstances(ctx, InstanceFilter{FleetIDs: []string{f.ID}, Page: Page{Ascending: true}})
	must(t, err)
	if len(list) != 2 || list[0].Remote == nil || list[0].Remote.PrivateKey != "PRIVATE-KEY-TEXT" {
		t.Fatalf("instances %+v", list)
	}
	// The private key is not stored in plain text.
	var raw string
	must(t, s.queryRow(ctx, `SELECT remote FROM instances WHERE id = ?`, insts[0].ID).Scan(&raw))
	if raw == "" || strings.Contains(raw, "PRIVATE-KEY-TEXT") {
		t.Fatalf("remote connection info stored as %q", raw)
	}
	// A job claims an idle instance once.
	leases, err := s.AcquireLeases(ctx, TableInstances, 10, time.Minute)
	must(t, err)
	if len(leases) != 2 {
		t.Fatalf("%d leases", len(leases))
	}
	for _, l := range leases {
		must(t, s.SetInstanceReady(ctx, l, models.InstanceType{Name: "instance"}, nil, 1))
		must(t, s.ReleaseLease(ctx, l, nil))
	}
	ok, err := s.ClaimInstance(ctx, insts[0].ID, "job-1")
	must(t, err)
	ok2, err := s.ClaimInstance(ctx, insts[0].ID, "job-2")
	must(t, err)
	if !ok || ok2 {
		t.Fatalf("claims: %v %v", ok, ok2)
	}
	must(t, s.ReleaseInstance(ctx, insts[0].ID, "job-1"))
	inst, err := s.GetInstance(ctx, insts[0].ID)
	must(t, err)
	if inst.Status != models.InstanceIdle || inst.JobID != "" || inst.IdleSince == nil {
		t.Fatalf("after release: %+v", inst)
	}
	must(t, s.RequestFleetDeletion(ctx, []string{f.ID}))
	if fl, _ := s.ListFleets(ctx, FleetFilter{ProjectIDs: []string{p.ID}, OnlyActive: true}); len(fl) != 0 {
		t.Fatal("a fleet being deleted is listed as active")
	}
}

func mkRun(t *testing.T, s *Store, p *models.Project, u *models.User, name string) (*models.Run, *models.Job) {
	t.Helper()
	var spec models.RunSpec
	must(t, json.Unmarshal([]byte(`{"run_name":"`+name+`","configuration":{"type":"task","commands":["echo hi"]}}`), &spec))
	r := &models.Run{ProjectID: p.ID, UserID: u.ID, Name: name, Status: models.RunSubmitted, Spec: spec}
	j := &models.Job{JobName: name + "-0-0", Status: models.JobSubmitted, Spec: models.JobSpec{JobName: name + "-0-0",
		Requirements: models.Requirements{Resources: resources.Default()}}}
	must(t, s.CreateRun(ctx, r, []*models.Job{j}))
	return r, j
}

func testRunsAndJobs(t *testing.T, dbURL string) {
	s := openNew(t, dbURL)
	u := mkUser(t, s, "alice")
	p := mkProject(t, s, "p", u)
	r, j := mkRun(t, s, p, u, "hello")
	wantErr(t, s.CreateRun(ctx, &models.Run{ProjectID: p.ID, UserID: u.ID, Name: "hello", Status: models.RunSubmitted, Spec: r.Spec}, nil), ErrExists)
	active, err := s.DeleteRuns(ctx, p.ID, []string{"hello", "nope"})
	must(t, err)
	if len(active) != 1 {
		t.Fatalf("active %v", active)
	}
	must(t, s.RequestRunStop(ctx, []string{r.ID}, models.RunStoppedByUser))
	must(t, s.RequestRunStop(ctx, []string{r.ID}, models.RunAbortedByUser))
	got, err := s.GetRun(ctx, p.ID, "hello")
	must(t, err)
	if got.StopReason != models.RunAbortedByUser || got.Spec.Configuration.Task == nil || got.Spec.Configuration.Task.Commands[0] != "echo hi" {
		t.Fatalf("run %+v", got)
	}
	// The job pipeline writes state under its lease.
	leases, err := s.AcquireLeases(ctx, TableJobs, 10, time.Minute)
	must(t, err)
	if len(leases) != 1 || leases[0].ID != j.ID {
		t.Fatalf("leases %+v", leases)
	}
	j.Status, j.TerminationReason = models.JobFailed, models.JobContainerExitedError
	code := 3
	j.ExitStatus = &code
	must(t, s.UpdateJobState(ctx, leases[0], j))
	jobs, err := s.ListJobs(ctx, r.ID)
	must(t, err)
	if len(jobs) != 1 || jobs[0].Status != models.JobFailed || *jobs[0].ExitStatus != 3 {
		t.Fatalf("jobs %+v", jobs)
	}
	rl, err := s.AcquireLeases(ctx, TableRuns, 10, time.Minute)
	must(t, err)
	r.Status, r.TerminationReason = models.RunFailed, models.RunJobFailed
	must(t, s.UpdateRunState(ctx, rl[0], r))
	// Finished: deletable, and a new run may take the name.
	active, err = s.DeleteRuns(ctx, p.ID, []string{"hello"})
	must(t, err)
	if len(active) != 0 {
		t.Fatalf("active %v", active)
	}
	mkRun(t, s, p, u, "hello")
	runs, err := s.ListRuns(ctx, RunFilter{ProjectIDs: []string{p.ID}})
	must(t, err)
	if len(runs) != 2 || !runs[1].Deleted || runs[0].Deleted {
		t.Fatalf("runs %+v", runs)
	}
}

func testLeases(t *testing.T, dbURL string) {
	s := openNew(t, dbURL)
	u := mkUser(t, s, "alice")
	p := mkProject(t, s, "p", u)
	_, j := mkRun(t, s, p, u, "a")
	ls, err := s.AcquireLeases(ctx, TableJobs, 10, time.Minute)
	must(t, err)
	if len(ls) != 1 {
		t.Fatalf("%d leases", len(ls))
	}
	// Held: nobody else gets it, even when woken.
	must(t, s.WakeRow(ctx, TableJobs, j.ID))
	if again, _ := s.AcquireLeases(ctx, TableJobs, 10, time.Minute); len(again) != 0 {
		t.Fatal("a held lease was acquired again")
	}
	// Released with a later due time, the wake-up during processing wins.
	later := time.Now().Add(time.Hour)
	must(t, s.ReleaseLease(ctx, ls[0], &later))
	ls2, err := s.AcquireLeases(ctx, TableJobs, 10, time.Minute)
	must(t, err)
	if len(ls2) != 1 {
		t.Fatal("a woken row was not due")
	}
	// A stale holder cannot write or release.
	if err := s.ReleaseLease(ctx, ls[0], nil); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("stale release: %v", err)
	}
	if err := s.UpdateJobState(ctx, ls[0], j); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("stale write: %v", err)
	}
	must(t, s.RenewLease(ctx, ls2[0], time.Minute))
	must(t, s.ReleaseLease(ctx, ls2[0], &later))
	if got, _ := s.AcquireLeases(ctx, TableJobs, 10, time.Minute); len(got) != 0 {
		t.Fatal("a row due in an hour was leased")
	}
	next, err := s.NextDue(ctx, TableJobs)
	must(t, err)
	if next == nil || next.Sub(later).Abs() > time.Second {
		t.Fatalf("next due %v, want %v", next, later)
	}
	// An expired lease (its holder died) makes the row due again.
	must(t, s.WakeRow(ctx, TableJobs, j.ID))
	short, err := s.AcquireLeases(ctx, TableJobs, 10, time.Millisecond)
	must(t, err)
	time.Sleep(20 * time.Millisecond)
	taken, err := s.AcquireLeases(ctx, TableJobs, 10, time.Minute)
	must(t, err)
	if len(short) != 1 || len(taken) != 1 || taken[0].Token == short[0].Token {
		t.Fatalf("expired lease not taken over: %v %v", short, taken)
	}
}

// testLeasesTwoReplicas has two stores on one database compete for many rows: each row is leased
// exactly once.
func testLeasesTwoReplicas(t *testing.T, dbURL string) {
	a := openNew(t, dbURL)
	b := open(t, dbURL, a.kr)
	u := mkUser(t, a, "alice")
	p := mkProject(t, a, "p", u)
	const n = 40
	for i := range n {
		mkRun(t, a, p, u, "r"+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for _, s := range []*Store{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ls, err := s.AcquireLeases(ctx, TableRuns, 3, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if len(ls) == 0 {
					return
				}
				mu.Lock()
				for _, l := range ls {
					seen[l.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("%d rows leased, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("row %s leased %d times", id, c)
		}
	}
}
