package fleets

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/offers"
)

// stubCompute is a backend whose machines are a list.
type stubCompute struct {
	mu            sync.Mutex
	machines      []backends.Tagged
	terminated    []string
	failTerminate int // the next calls that fail
	update        func(pd *backends.ProvisioningData) error
}

func (c *stubCompute) CreateInstance(context.Context, offers.Offer, backends.InstanceConfig) (*backends.ProvisioningData, error) {
	return nil, errors.New("not used")
}

func (c *stubCompute) UpdateProvisioningData(_ context.Context, pd *backends.ProvisioningData) error {
	return c.update(pd)
}

func (c *stubCompute) TerminateInstance(_ context.Context, id, _, _ string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failTerminate > 0 {
		c.failTerminate--
		return errors.New("HTTP 503: try again")
	}
	c.terminated = append(c.terminated, id)
	return nil
}

func (c *stubCompute) ListInstances(context.Context) ([]backends.Tagged, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []backends.Tagged
	for _, m := range c.machines {
		if !slices.Contains(c.terminated, m.InstanceID) {
			out = append(out, m)
		}
	}
	return out, nil
}

func (c *stubCompute) gone() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.terminated...)
}

// addCloud records a provisioning cloud instance of machine id in a run's fleet.
func (f *fixture) addCloud(id string, idle *models.Duration) string {
	f.t.Helper()
	name := "run-" + id
	inst := &models.Instance{ProjectID: f.project.ID, Name: name + "-0", Status: models.InstanceProvisioning, Backend: "stub",
		Region: "r1", TotalBlocks: 1, InstanceType: models.InstanceType{Name: "t1"},
		JPD: &models.JobProvisioningData{Backend: "stub", InstanceID: id, Region: "r1", Username: "ubuntu", Dockerized: true}}
	fleet := &models.Fleet{ProjectID: f.project.ID, Name: name, Status: models.FleetActive,
		Spec: models.FleetSpec{Autocreated: true, Configuration: models.FleetConfiguration{Type: "fleet", Name: &name, IdleDuration: idle}}}
	if err := f.st.CreateFleet(context.Background(), fleet, []*models.Instance{inst}); err != nil {
		f.t.Fatal(err)
	}
	return inst.ID
}

// TestReconciler: machines with this server's mark that no instance has are terminated once seen
// for the grace period; known machines and other servers' machines are left alone.
func TestReconciler(t *testing.T) {
	f := newFixture(t, "")
	f.addCloud("known", nil)
	c := &stubCompute{machines: []backends.Tagged{
		{InstanceID: "known", Name: "dstack-main-run-0-5e7a11aa"},
		{InstanceID: "orphan", Name: "dstack-main-run-1-5e7a11aa"},
		{InstanceID: "tagged-orphan", Name: "anything", Tags: map[string]string{"dstack_server": "5e7a11aa"}},
		{InstanceID: "other-server", Name: "dstack-main-run-1-0b0b0b0b"},
		{InstanceID: "other-tagged", Name: "dstack-main-run-1-5e7a11aa", Tags: map[string]string{"dstack_server": "0b0b0b0b"}},
		{InstanceID: "not-dstack", Name: "my-notebook-5e7a11aa"},
		{InstanceID: "leaving", Name: "dstack-main-run-2-5e7a11aa", State: "terminating"},
	}}
	r := &Reconciler{Store: f.st, ServerID: "5e7a11aa", Grace: 100 * time.Millisecond,
		Backends: func(context.Context) ([]CloudBackend, error) {
			return []CloudBackend{{ProjectID: f.project.ID, ProjectName: "main", Type: "stub", Compute: c}}, nil
		}}
	ctx := context.Background()
	if err := r.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if gone := c.gone(); len(gone) != 0 || r.Report().Pending != 2 {
		t.Fatalf("terminated %v before the grace period; report %+v", gone, r.Report())
	}
	time.Sleep(150 * time.Millisecond)
	if err := r.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	gone := c.gone()
	slices.Sort(gone)
	rep := r.Report()
	if !slices.Equal(gone, []string{"orphan", "tagged-orphan"}) || rep.Terminated != 2 || rep.Pending != 0 || len(rep.Events) != 2 {
		t.Fatalf("terminated %v; report %+v", gone, rep)
	}
}

// TestCloudInstanceLifecycle: a machine the provider reports failed is terminated (with the
// reason), a termination call that fails is retried until it succeeds, and an idle instance ends
// after its fleet's idle_duration.
func TestCloudInstanceLifecycle(t *testing.T) {
	f := newFixture(t, "")
	c := &stubCompute{failTerminate: 2, update: func(pd *backends.ProvisioningData) error {
		return &backends.ProvisioningError{Msg: "the machine failed"}
	}}
	f.svc.Compute = func(context.Context, string, string) (backends.Compute, error) { return c, nil }
	f.svc.TerminateRetry = time.Millisecond
	id := f.addCloud("m-1", nil)
	inst := f.step(id)
	if inst.Status != models.InstanceTerminating || inst.TerminationReason != models.InstanceError || inst.StatusMessage == "" {
		t.Fatalf("after a failed termination call: %s %s %q", inst.Status, inst.TerminationReason, inst.StatusMessage)
	}
	f.step(id)
	if inst = f.step(id); inst.Status != models.InstanceTerminated || !slices.Equal(c.gone(), []string{"m-1"}) {
		t.Fatalf("instance %s, terminated %v", inst.Status, c.gone())
	}

	// A machine that comes up on a host the server cannot reach stays provisioning, with the cause.
	c.update = func(pd *backends.ProvisioningData) error {
		host, port := "127.0.0.1", 1 // nothing listens
		pd.Hostname, pd.SSHPort = &host, &port
		return nil
	}
	zero := models.Duration(0)
	id = f.addCloud("m-2", &zero)
	if inst = f.step(id); inst.Status != models.InstanceProvisioning || inst.Remote == nil || inst.Hostname != "127.0.0.1" {
		t.Fatalf("instance %s (%q), remote %+v", inst.Status, inst.StatusMessage, inst.Remote)
	}
	// Once idle (as if it had come up) with idle_duration 0, it is terminated at once.
	ctx := context.Background()
	_ = f.st.WakeRow(ctx, "instances", id)
	ls, _ := f.st.AcquireLeases(ctx, "instances", 1, time.Minute)
	if len(ls) != 1 {
		t.Fatal("no lease")
	}
	if err := f.st.SetInstanceReady(ctx, ls[0], inst.InstanceType, inst.JPD, 1); err != nil {
		t.Fatal(err)
	}
	_ = f.st.ReleaseLease(ctx, ls[0], nil)
	if inst = f.step(id); inst.Status != models.InstanceTerminated || inst.TerminationReason != models.InstanceIdleTimeout {
		t.Fatalf("idle instance: %s %s", inst.Status, inst.TerminationReason)
	}
	// The run's fleet goes with its last instance.
	fl, err := f.st.GetFleetByID(ctx, inst.FleetID)
	if err != nil {
		t.Fatal(err)
	}
	_ = f.st.WakeRow(ctx, "fleets", fl.ID)
	ls, _ = f.st.AcquireLeases(ctx, "fleets", 5, time.Minute)
	for _, l := range ls {
		if _, err := f.svc.ProcessFleet(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	if fl, _ = f.st.GetFleetByID(ctx, fl.ID); !fl.Deleted {
		t.Fatalf("fleet %s not deleted: %s", fl.Name, fl.Status)
	}
}
