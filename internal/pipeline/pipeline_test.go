package pipeline

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/resources"
	"github.com/dstackgo/dstack/internal/secrets"
	"github.com/dstackgo/dstack/internal/store"
)

func keyring(t *testing.T) *secrets.Keyring {
	t.Helper()
	key, err := secrets.LoadOrCreateDefaultKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	kr, err := secrets.NewKeyring([]secrets.Key{key})
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// databases are the URLs the tests run on: SQLite, and PostgreSQL when DSTACK_TEST_POSTGRES_URL is set.
func databases(t *testing.T) map[string]func(t *testing.T) string {
	dbs := map[string]func(t *testing.T) string{
		"sqlite": func(t *testing.T) string { return filepath.Join(t.TempDir(), "db.sqlite") },
	}
	if admin := os.Getenv("DSTACK_TEST_POSTGRES_URL"); admin != "" {
		dbs["postgres"] = func(t *testing.T) string {
			db, err := sql.Open("pgx", admin)
			if err != nil {
				t.Fatal(err)
			}
			name := "dstack_pipeline_" + uuid.NewString()[:8]
			if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _, _ = db.Exec("DROP DATABASE " + name + " WITH (FORCE)"); db.Close() })
			u, _ := url.Parse(admin)
			u.Path = "/" + name
			return u.String()
		}
	}
	return dbs
}

// seed creates n runs (rows of the runs table, all due).
func seed(t *testing.T, st *store.Store, n int) []string {
	t.Helper()
	ctx := context.Background()
	u := &models.User{Username: "u", GlobalRole: models.GlobalRoleUser, Active: true, Token: uuid.NewString()}
	if err := st.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	p := &models.Project{Name: "p", OwnerID: u.ID}
	if err := st.CreateProject(ctx, p); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range n {
		r := &models.Run{ProjectID: p.ID, UserID: u.ID, Name: "run-" + uuid.NewString()[:8], Status: models.RunSubmitted,
			Spec: models.RunSpec{Configuration: models.RunConfiguration{Task: &models.TaskConfiguration{Type: "task"}}}}
		j := &models.Job{JobNum: i, JobName: r.Name + "-0", Status: models.JobSubmitted,
			Spec: models.JobSpec{Requirements: models.Requirements{Resources: resources.Default()}}}
		if err := st.CreateRun(ctx, r, []*models.Job{j}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	return ids
}

func TestTwoReplicasProcessEachRowOnce(t *testing.T) {
	for name, newDB := range databases(t) {
		t.Run(name, func(t *testing.T) {
			dbURL := newDB(t)
			kr := keyring(t)
			var stores []*store.Store
			for range 2 {
				st, err := store.Open(context.Background(), dbURL, kr)
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				stores = append(stores, st)
			}
			ids := seed(t, stores[0], 30)
			var mu sync.Mutex
			count := map[string]int{}
			var concurrent, maxConcurrent atomic.Int32
			process := func(ctx context.Context, l store.Lease) (time.Duration, error) {
				c := concurrent.Add(1)
				defer concurrent.Add(-1)
				for {
					m := maxConcurrent.Load()
					if c <= m || maxConcurrent.CompareAndSwap(m, c) {
						break
					}
				}
				mu.Lock()
				count[l.ID]++
				mu.Unlock()
				time.Sleep(5 * time.Millisecond) // network work
				return 0, nil
			}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			for _, st := range stores {
				p := &Pipeline{Table: store.TableRuns, Store: st, Process: process, Workers: 4, Poll: 20 * time.Millisecond}
				wg.Add(1)
				go func() { defer wg.Done(); p.Run(ctx) }()
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				mu.Lock()
				n := len(count)
				mu.Unlock()
				if n == len(ids) || time.Now().After(deadline) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond) // a second processing would show up now
			cancel()
			wg.Wait()
			for _, id := range ids {
				if count[id] != 1 {
					t.Fatalf("run %s processed %d times", id, count[id])
				}
			}
			if maxConcurrent.Load() < 2 {
				t.Fatalf("rows were not processed concurrently (max %d)", maxConcurrent.Load())
			}
		})
	}
}

func TestWakeAndReschedule(t *testing.T) {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "db.sqlite"), keyring(t))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ids := seed(t, st, 1)
	var calls atomic.Int32
	seen := make(chan time.Time, 10)
	p := &Pipeline{Table: store.TableRuns, Store: st, Poll: time.Hour, Process: func(ctx context.Context, l store.Lease) (time.Duration, error) {
		seen <- time.Now()
		if calls.Add(1) == 1 {
			return 50 * time.Millisecond, nil // scheduled again shortly
		}
		return 0, nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	first := <-seen
	second := <-seen
	if d := second.Sub(first); d < 40*time.Millisecond || d > time.Second {
		t.Fatalf("rescheduled after %v, want about 50ms", d)
	}
	// Nothing scheduled now: only a wake-up brings the row back, with no poll for an hour.
	select {
	case <-seen:
		t.Fatal("processed without being due")
	case <-time.After(100 * time.Millisecond):
	}
	start := time.Now()
	if err := st.WakeRow(ctx, store.TableRuns, ids[0]); err != nil {
		t.Fatal(err)
	}
	p.Wake()
	select {
	case <-seen:
		if d := time.Since(start); d > 200*time.Millisecond {
			t.Fatalf("woken after %v", d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("wake-up lost")
	}
}

func TestExpiredLeaseIsTakenOver(t *testing.T) {
	dbURL := filepath.Join(t.TempDir(), "db.sqlite")
	kr := keyring(t)
	st, err := store.Open(context.Background(), dbURL, kr)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	seed(t, st, 1)
	// A replica that leased the row and died.
	if ls, err := st.AcquireLeases(context.Background(), store.TableRuns, 1, 100*time.Millisecond); err != nil || len(ls) != 1 {
		t.Fatalf("lease: %v %v", ls, err)
	}
	got := make(chan struct{}, 1)
	p := &Pipeline{Table: store.TableRuns, Store: st, Poll: 20 * time.Millisecond, Process: func(ctx context.Context, l store.Lease) (time.Duration, error) {
		got <- struct{}{}
		return 0, nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the expired lease was not taken over")
	}
}

func TestPanicIsContained(t *testing.T) {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "db.sqlite"), keyring(t))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	seed(t, st, 1)
	var calls atomic.Int32
	p := &Pipeline{Table: store.TableRuns, Store: st, Poll: 10 * time.Millisecond, RetryAfter: 10 * time.Millisecond,
		Process: func(ctx context.Context, l store.Lease) (time.Duration, error) {
			if calls.Add(1) == 1 {
				panic("bad row")
			}
			return 0, nil
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go p.Run(ctx)
	for calls.Load() < 2 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	if calls.Load() < 2 {
		t.Fatal("the row was not retried after a panic")
	}
}
