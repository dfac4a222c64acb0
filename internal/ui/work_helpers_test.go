package ui_test

import (
	"context"
	"path/filepath"
	"sync"
	"time"

	"github.com/dstackgo/dstack/internal/catalog"
	"github.com/dstackgo/dstack/internal/logstore"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/store"
	"github.com/dstackgo/dstack/internal/testutil"
)

// Runs, fleets and offers for the UI's tests. Runs are submitted through the API (runs/apply); what the
// background work would do next (provision a job, write its output) is written with the store's and
// the log store's own calls, so that the pages show real API answers without real hosts.

var (
	catalogOnce sync.Once
	catalogSnap *catalog.Snapshot
	catalogErr  error
)

// useCatalog gives the server the shared gpuhunt price catalogs (skips without shared/).
func (s *site) useCatalog() {
	s.t.Helper()
	dir := filepath.Join(testutil.SharedDir(s.t), "data", "catalogs", "gpuhunt-v2")
	catalogOnce.Do(func() { catalogSnap, catalogErr = catalog.LoadDir(dir) })
	if catalogErr != nil {
		s.t.Fatal(catalogErr)
	}
	s.srv.SetCatalog(catalogSnap)
}

const ociDefault = "type: oci\ncreds:\n  type: default\n"

// submitTask applies a task as role and returns the API's run.
func (s *site) submitTask(role, name string, resources map[string]any, commands ...string) map[string]any {
	s.t.Helper()
	conf := map[string]any{"commands": commands, "image": "ubuntu"}
	if resources != nil {
		conf["resources"] = resources
	}
	return s.apply(role, name, conf)
}

// apply submits a task configuration as role and returns the API's run.
func (s *site) apply(role, name string, conf map[string]any) map[string]any {
	s.t.Helper()
	conf["type"], conf["name"] = "task", name
	spec := map[string]any{"run_name": name, "configuration": conf, "profile": map[string]any{"name": "default"}}
	return s.mustAPI(role, "/api/project/main/runs/apply", map[string]any{"plan": map[string]any{"run_spec": spec}, "force": false}).(map[string]any)
}

func (s *site) project(name string) *models.Project {
	s.t.Helper()
	p, err := s.st.GetProject(context.Background(), name)
	if err != nil {
		s.t.Fatal(err)
	}
	return p
}

// latestJob is the latest submission of the run's first job.
func (s *site) latestJob(run string) *models.Job {
	s.t.Helper()
	r, err := s.st.GetRun(context.Background(), s.project("main").ID, run)
	if err != nil {
		s.t.Fatal(err)
	}
	jobs, err := s.st.ListJobs(context.Background(), r.ID)
	if err != nil || len(jobs) == 0 {
		s.t.Fatalf("jobs of %s: %v %v", run, jobs, err)
	}
	return jobs[len(jobs)-1]
}

// leased runs fn on a row of table under a lease, as a pipeline would.
func (s *site) leased(table, id string, fn func(store.Lease)) {
	s.t.Helper()
	ctx := context.Background()
	if err := s.st.WakeRow(ctx, table, id); err != nil {
		s.t.Fatal(err)
	}
	leases, err := s.st.AcquireLeases(ctx, table, 1000, time.Minute)
	if err != nil {
		s.t.Fatal(err)
	}
	found := false
	for _, l := range leases {
		if l.ID == id {
			fn(l)
			found = true
		}
		if err := s.st.ReleaseLease(ctx, l, nil); err != nil {
			s.t.Fatal(err)
		}
	}
	if !found {
		s.t.Fatalf("no lease on %s %s", table, id)
	}
}

// updateJob changes a job submission as the job pipeline would.
func (s *site) updateJob(id string, fn func(*models.Job)) {
	s.t.Helper()
	s.leased(store.TableJobs, id, func(l store.Lease) {
		j, err := s.st.GetJob(context.Background(), id)
		if err != nil {
			s.t.Fatal(err)
		}
		fn(j)
		if err := s.st.UpdateJobState(context.Background(), l, j); err != nil {
			s.t.Fatal(err)
		}
	})
}

// updateRun changes a run as the run pipeline would.
func (s *site) updateRun(name string, fn func(*models.Run)) {
	s.t.Helper()
	r, err := s.st.GetRun(context.Background(), s.project("main").ID, name)
	if err != nil {
		s.t.Fatal(err)
	}
	s.leased(store.TableRuns, r.ID, func(l store.Lease) {
		fn(r)
		if err := s.st.UpdateRunState(context.Background(), l, r); err != nil {
			s.t.Fatal(err)
		}
	})
}

var a10 = models.InstanceType{Name: "VM.GPU.A10.1", Resources: models.InstanceResources{CPUs: 15, MemoryMiB: 240 * 1024,
	Gpus: []models.Gpu{{Name: "A10", MemoryMiB: 24 * 1024}}, Disk: models.Disk{SizeMiB: 100 * 1024}}}

// startJob marks the run's job as provisioned on OCI and running, and the run as running.
func (s *site) startJob(run string) *models.Job {
	s.t.Helper()
	j := s.latestJob(run)
	s.updateJob(j.ID, func(j *models.Job) {
		now := time.Now()
		j.Status, j.StatusMessage, j.StartedAt = models.JobRunning, models.JobRunning, &now
		j.JPD = &models.JobProvisioningData{Backend: "oci", InstanceType: a10, InstanceID: "ocid1.instance.ui", Region: "eu-frankfurt-1",
			Price: 2.0, Username: "ubuntu", Dockerized: true}
	})
	s.updateRun(run, func(r *models.Run) { r.Status, r.StatusMessage = models.RunRunning, models.RunRunning })
	return s.latestJob(run)
}

// failJob ends the run's job with an error exit, and the run with it.
func (s *site) failJob(run string, exit int) {
	s.t.Helper()
	j := s.latestJob(run)
	s.updateJob(j.ID, func(j *models.Job) {
		now := time.Now()
		j.Status, j.StatusMessage, j.FinishedAt, j.ExitStatus = models.JobFailed, models.JobFailed, &now, &exit
		j.TerminationReason, j.TerminationReasonMessage = models.JobContainerExitedError, "command exited"
	})
	s.updateRun(run, func(r *models.Run) {
		r.Status, r.StatusMessage, r.TerminationReason = models.RunFailed, models.RunFailed, models.RunJobFailed
	})
}

// writeLogs appends job output to a submission's log, as the job pipeline does while it runs.
func (s *site) writeLogs(run, submission string, events ...logstore.Event) {
	s.t.Helper()
	ls := &logstore.Store{Dir: s.dir}
	if err := ls.Append(logstore.Key{Project: "main", Run: run, Submission: submission, Kind: logstore.Job}, events); err != nil {
		s.t.Fatal(err)
	}
}

func out(t time.Time, text string) logstore.Event {
	return logstore.Event{Timestamp: t, Source: logstore.Stdout, Message: []byte(text)}
}

func errOut(t time.Time, text string) logstore.Event {
	return logstore.Event{Timestamp: t, Source: logstore.Stderr, Message: []byte(text)}
}

// createFleet stores a cloud fleet with instances on OCI, as the fleet pipeline leaves one.
func (s *site) createFleet(name string, statuses ...string) {
	s.t.Helper()
	p := s.project("main")
	f := &models.Fleet{ProjectID: p.ID, Name: name, Status: models.FleetActive,
		Spec: models.FleetSpec{Configuration: models.FleetConfiguration{Type: "fleet", Name: &name, Nodes: len(statuses)},
			Profile: models.Profile{Name: "default"}}}
	var insts []*models.Instance
	for i, st := range statuses {
		insts = append(insts, &models.Instance{ProjectID: p.ID, Name: name + "-" + string(rune('0'+i)), InstanceNum: i, Status: st,
			Backend: "oci", Region: "eu-frankfurt-1", Price: 2.0, InstanceType: a10, TotalBlocks: 1})
	}
	if err := s.st.CreateFleet(context.Background(), f, insts); err != nil {
		s.t.Fatal(err)
	}
}
