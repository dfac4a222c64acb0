package store

import (
	"errors"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/models"
)

// testCloudInstances: a machine made for a job is recorded with the job in one step (in a fleet
// made for the run), becomes busy with its job once up, is detached when the job ends first, and
// the run's fleet goes with its last instance; the server id is made once.
func testCloudInstances(t *testing.T, dbURL string) {
	s := openNew(t, dbURL)
	u := mkUser(t, s, "alice")
	p := mkProject(t, s, "p", u)
	_, j := mkRun(t, s, p, u, "cloudy")
	ls, err := s.AcquireLeases(ctx, TableJobs, 1, time.Minute)
	must(t, err)
	if len(ls) != 1 {
		t.Fatal("no job lease")
	}
	name := "cloudy"
	fleet := func() *models.Fleet {
		return &models.Fleet{Name: name, Status: models.FleetActive, Spec: models.FleetSpec{Autocreated: true,
			Configuration: models.FleetConfiguration{Type: "fleet", Name: &name}}}
	}
	newInst := func(num int) *models.Instance {
		return &models.Instance{ProjectID: p.ID, Name: "cloudy-0", InstanceNum: num, Status: models.InstanceProvisioning,
			Backend: "lambda", Region: "us-east-1", TotalBlocks: 1, BusyBlocks: 1, JobID: j.ID,
			InstanceType: models.InstanceType{Name: "gpu_1x_a10"}, JPD: &models.JobProvisioningData{Backend: "lambda", InstanceID: "m-1"}}
	}
	n, err := s.NextInstanceNum(ctx, p.ID, name)
	must(t, err)
	if n != 0 {
		t.Fatalf("next instance num %d, want 0", n)
	}
	j.Status = models.JobProvisioning
	inst := newInst(0)
	must(t, s.RecordCloudInstance(ctx, ls[0], j, fleet(), inst))
	got, err := s.GetJob(ctx, j.ID)
	must(t, err)
	if got.InstanceID != inst.ID || got.Status != models.JobProvisioning {
		t.Fatalf("job %s on %q", got.Status, got.InstanceID)
	}
	// A stale lease records nothing.
	stale := ls[0]
	stale.Token = "stale"
	second := newInst(1)
	if err := s.RecordCloudInstance(ctx, stale, j, fleet(), second); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("stale lease: %v", err)
	}
	if _, err := s.GetInstance(ctx, second.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the instance of a stale lease was recorded: %v", err)
	}
	if n, _ := s.NextInstanceNum(ctx, p.ID, name); n != 1 {
		t.Fatalf("next instance num %d, want 1", n)
	}

	// Up: busy with its job.
	il, err := s.AcquireLeases(ctx, TableInstances, 1, time.Minute)
	must(t, err)
	if len(il) != 1 {
		t.Fatal("no instance lease")
	}
	host := "203.0.113.7"
	must(t, s.SetInstanceAddress(ctx, il[0], &models.JobProvisioningData{Backend: "lambda", InstanceID: "m-1", Hostname: &host},
		&models.RemoteConnectionInfo{Host: host, Port: 22, User: "ubuntu", PrivateKey: "KEY"}, "connecting"))
	must(t, s.SetInstanceReady(ctx, il[0], inst.InstanceType, inst.JPD, 1))
	gi, err := s.GetInstance(ctx, inst.ID)
	must(t, err)
	if gi.Status != models.InstanceBusy || gi.BusyBlocks != 1 || gi.Remote == nil || gi.Remote.User != "ubuntu" || gi.Hostname != host {
		t.Fatalf("instance %s busy %d remote %+v host %q", gi.Status, gi.BusyBlocks, gi.Remote, gi.Hostname)
	}
	must(t, s.ReleaseInstance(ctx, inst.ID, j.ID))
	if gi, _ = s.GetInstance(ctx, inst.ID); gi.Status != models.InstanceIdle || gi.JobID != "" {
		t.Fatalf("released: %s %q", gi.Status, gi.JobID)
	}

	// The fleet is deleted only once its instance is terminated.
	f, err := s.GetFleet(ctx, p.ID, name)
	must(t, err)
	must(t, s.WakeRow(ctx, TableFleets, f.ID))
	fl, err := s.AcquireLeases(ctx, TableFleets, 1, time.Minute)
	must(t, err)
	if deleted, err := s.DeleteFleetIfEmpty(ctx, fl[0]); err != nil || deleted {
		t.Fatalf("a fleet with an idle instance deleted: %v %v", deleted, err)
	}
	ok, err := s.StartInstanceTermination(ctx, il[0], models.InstanceIdleTimeout, "")
	must(t, err)
	if !ok {
		t.Fatal("idle instance not terminating")
	}
	must(t, s.FinishInstanceTermination(ctx, il[0]))
	if deleted, err := s.DeleteFleetIfEmpty(ctx, fl[0]); err != nil || !deleted {
		t.Fatalf("the empty fleet not deleted: %v %v", deleted, err)
	}

	id, err := s.ServerID(ctx)
	must(t, err)
	again, err := s.ServerID(ctx)
	must(t, err)
	if len(id) != 8 || again != id {
		t.Fatalf("server id %q then %q", id, again)
	}
}
