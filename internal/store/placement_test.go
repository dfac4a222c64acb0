package store

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/models"
)

func TestPlacementGroupsSQLite(t *testing.T) {
	testPlacementGroups(t, "sqlite://"+filepath.Join(t.TempDir(), "data", "sqlite.db"))
}

func TestPlacementGroupsPostgres(t *testing.T) {
	admin := os.Getenv("DSTACK_TEST_POSTGRES_URL")
	if admin == "" {
		t.Skip("set DSTACK_TEST_POSTGRES_URL to run against PostgreSQL")
	}
	testPlacementGroups(t, freshPostgresDB(t, admin))
}

// testPlacementGroups: a fleet has one live placement group at a time; groups to be deleted and
// deleted ones make room; a node's machine is recorded only while the instance is pending, leased
// and not to be terminated.
func testPlacementGroups(t *testing.T, dbURL string) {
	s := openNew(t, dbURL)
	p := mkProject(t, s, "p", mkUser(t, s, "alice"))
	f, _ := mkFleet(t, s, p, "f", 0)
	first := &PlacementGroup{ProjectID: p.ID, FleetID: f.ID, Name: "f-a",
		Data: backends.PlacementGroupData{Backend: "nebius", Region: "eu-north1", ID: "computegpucluster-1", BackendData: `{"fabric":"fabric-2"}`}}
	must(t, s.CreatePlacementGroup(ctx, first))
	second := &PlacementGroup{ProjectID: p.ID, FleetID: f.ID, Name: "f-b", Data: backends.PlacementGroupData{Backend: "nebius", Region: "eu-west1", ID: "computegpucluster-2"}}
	wantErr(t, s.CreatePlacementGroup(ctx, second), ErrExists)
	must(t, s.RequestPlacementGroupDeletion(ctx, first.ID))
	must(t, s.CreatePlacementGroup(ctx, second))
	groups, err := s.ListPlacementGroups(ctx, f.ID)
	must(t, err)
	if len(groups) != 2 || groups[0].ID != first.ID || !groups[0].DeleteRequested || groups[1].DeleteRequested ||
		groups[0].Data != first.Data || groups[1].Data.Region != "eu-west1" {
		t.Fatalf("groups %+v", groups)
	}
	must(t, s.SetPlacementGroupDeleted(ctx, first.ID))
	wantErr(t, s.SetPlacementGroupDeleted(ctx, "nope"), ErrNotFound)
	if groups, _ = s.ListPlacementGroups(ctx, f.ID); len(groups) != 1 || groups[0].ID != second.ID {
		t.Fatalf("after deleting the first: %+v", groups)
	}

	node := &models.Instance{ProjectID: p.ID, FleetID: f.ID, Name: "f-0", Status: models.InstancePending, TotalBlocks: 1}
	must(t, s.CreateInstance(ctx, node))
	leases, err := s.AcquireLeases(ctx, TableInstances, 10, time.Minute)
	must(t, err)
	if len(leases) != 1 || leases[0].ID != node.ID {
		t.Fatalf("leases %+v", leases)
	}
	node.Backend, node.Region, node.Price, node.StatusMessage = "nebius", "eu-west1", 28, "created"
	node.InstanceType = models.InstanceType{Name: "gpu-h200-sxm 8gpu-128vcpu-1600gb"}
	node.JPD = &models.JobProvisioningData{Backend: "nebius", InstanceID: "computeinstance-1", Region: "eu-west1"}
	must(t, s.RecordNodeMachine(ctx, leases[0], node))
	got, err := s.GetInstance(ctx, node.ID)
	must(t, err)
	if got.Status != models.InstanceProvisioning || got.Backend != "nebius" || got.Price != 28 || got.JPD == nil ||
		got.JPD.InstanceID != "computeinstance-1" || got.InstanceType.Name != node.InstanceType.Name {
		t.Fatalf("recorded node %+v", got)
	}
	// Not pending any more: a second record is refused.
	wantErr(t, s.RecordNodeMachine(ctx, leases[0], node), ErrLeaseLost)
}
