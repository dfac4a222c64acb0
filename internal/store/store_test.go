package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/secrets"
)

// TestSQLite runs the suite against a fresh SQLite file per subtest.
func TestSQLite(t *testing.T) {
	runSuite(t, func(t *testing.T) string {
		return "sqlite://" + filepath.Join(t.TempDir(), "data", "sqlite.db")
	})
}

// TestPostgres runs the suite against PostgreSQL, creating (and finally dropping) a database per
// subtest through the admin connection in DSTACK_TEST_POSTGRES_URL.
func TestPostgres(t *testing.T) {
	admin := os.Getenv("DSTACK_TEST_POSTGRES_URL")
	if admin == "" {
		t.Skip("set DSTACK_TEST_POSTGRES_URL (e.g. postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable) to run against PostgreSQL")
	}
	runSuite(t, func(t *testing.T) string { return freshPostgresDB(t, admin) })
}

func freshPostgresDB(t *testing.T, admin string) string {
	t.Helper()
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatal(err)
	}
	name := "dstack_test_" + randomHex(t, 6)
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		db.Close()
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		defer db.Close()
		if _, err := db.Exec("DROP DATABASE " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// runSuite runs every dialect-independent test; newDB returns the URL of an empty database.
func runSuite(t *testing.T, newDB func(t *testing.T) string) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, dbURL string)
	}{
		{"Users", testUsers},
		{"Projects", testProjects},
		{"Members", testMembers},
		{"Backends", testBackends},
		{"Settings", testSettings},
		{"Transactions", testTransactions},
		{"EncryptedAtRest", testEncryptedAtRest},
		{"Reopen", testReopen},
		{"KeyRotation", testKeyRotation},
		{"Concurrent", testConcurrent},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newDB(t)) })
	}
}

var ctx = context.Background()

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func newKey(t *testing.T, name string) secrets.Key {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return secrets.Key{Type: secrets.TypeAES, Name: name, Secret: base64.StdEncoding.EncodeToString(b)}
}

func keyring(t *testing.T, keys ...secrets.Key) *secrets.Keyring {
	t.Helper()
	kr, err := secrets.NewKeyring(keys)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func open(t *testing.T, dbURL string, kr *secrets.Keyring) *Store {
	t.Helper()
	s, err := Open(ctx, dbURL, kr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openNew(t *testing.T, dbURL string) *Store {
	return open(t, dbURL, keyring(t, newKey(t, "test")))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("err = %v, want %v", err, target)
	}
}

func mkUser(t *testing.T, s *Store, name string) *models.User {
	t.Helper()
	u := &models.User{Username: name, GlobalRole: models.GlobalRoleUser, Active: true, Token: "token-" + name}
	must(t, s.CreateUser(ctx, u))
	return u
}

func mkProject(t *testing.T, s *Store, name string, owner *models.User) *models.Project {
	t.Helper()
	p := &models.Project{Name: name, OwnerID: owner.ID, SSHPublicKey: "ssh-ed25519 AAA", SSHPrivateKey: "PRIVATE-" + name}
	must(t, s.CreateProject(ctx, p))
	return p
}

func testUsers(t *testing.T, dbURL string) {
	s := openNew(t, dbURL)
	email := "alice@example.com"
	alice := &models.User{
		Username: "Alice", GlobalRole: models.GlobalRoleAdmin, Email: &email, Active: true,
		Token: "tok-alice", SSHPublicKey: "ssh-rsa AAA", SSHPrivateKey: "-----BEGIN KEY-----",
		CreatedAt: time.Date(2024, 5, 1, 12, 30, 0, 123456789, time.FixedZone("X", 3600)),
	}
	must(t, s.CreateUser(ctx, alice))
	if alice.ID == "" || alice.TokenHash != hashToken("tok-alice") {
		t.Fatalf("ID/TokenHash not filled: %+v", alice)
	}
	if want := time.Date(2024, 5, 1, 11, 30, 0, 123456000, time.UTC); !alice.CreatedAt.Equal(want) || alice.CreatedAt.Location() != time.UTC {
		t.Fatalf("CreatedAt = %v, want %v (UTC, µs)", alice.CreatedAt, want)
	}
	bob := mkUser(t, s, "bob")
	if bob.Email != nil || time.Since(bob.CreatedAt) > time.Minute {
		t.Fatalf("bob = %+v", bob)
	}

	for _, get := range []func() (*models.User, error){
		func() (*models.User, error) { return s.GetUserByName(ctx, "aLiCe") },
		func() (*models.User, error) { return s.GetUserByID(ctx, alice.ID) },
		func() (*models.User, error) { return s.GetUserByToken(ctx, "tok-alice") },
	} {
		got, err := get()
		must(t, err)
		if *got.Email != email || *got != (models.User{
			ID: alice.ID, Username: "Alice", GlobalRole: models.GlobalRoleAdmin, Email: got.Email, Active: true,
			CreatedAt: alice.CreatedAt, Token: "tok-alice", TokenHash: alice.TokenHash,
			SSHPublicKey: "ssh-rsa AAA", SSHPrivateKey: "-----BEGIN KEY-----",
		}) {
			t.Fatalf("got %+v\nwant %+v", got, alice)
		}
	}
	_, err := s.GetUserByName(ctx, "carol")
	wantErr(t, err, ErrNotFound)
	_, err = s.GetUserByToken(ctx, "nope")
	wantErr(t, err, ErrNotFound)

	wantErr(t, s.CreateUser(ctx, &models.User{Username: "BOB", GlobalRole: "user", Token: "other"}), ErrExists)
	wantErr(t, s.CreateUser(ctx, &models.User{Username: "dave", GlobalRole: "user", Token: "tok-alice"}), ErrExists)
	if err := s.CreateUser(ctx, &models.User{Username: "notoken", GlobalRole: "user"}); err == nil {
		t.Fatal("user without token accepted")
	}

	users, err := s.ListUsers(ctx)
	must(t, err)
	if len(users) != 2 || users[0].Username != "Alice" || users[1].Username != "bob" {
		t.Fatalf("ListUsers = %+v", users)
	}

	// Update: role, email, active, token, keys.
	bob.GlobalRole, bob.Email, bob.Active, bob.Token = models.GlobalRoleAdmin, &email, false, "tok-bob-2"
	bob.SSHPrivateKey = "new-private"
	must(t, s.UpdateUser(ctx, bob))
	_, err = s.GetUserByToken(ctx, "token-bob")
	wantErr(t, err, ErrNotFound)
	got, err := s.GetUserByToken(ctx, "tok-bob-2")
	must(t, err)
	if got.GlobalRole != models.GlobalRoleAdmin || *got.Email != email || got.Active || got.SSHPrivateKey != "new-private" || got.TokenHash != hashToken("tok-bob-2") {
		t.Fatalf("updated bob = %+v", got)
	}
	bob.Token = "tok-alice"
	wantErr(t, s.UpdateUser(ctx, bob), ErrExists)
	wantErr(t, s.UpdateUser(ctx, &models.User{ID: "missing", Username: "x", Token: "y"}), ErrNotFound)

	// Soft delete: invisible everywhere, name reusable; all-or-nothing on unknown names.
	err = s.DeleteUsers(ctx, []string{"BOB", "ghost"})
	wantErr(t, err, ErrNotFound)
	if !strings.Contains(err.Error(), `"ghost"`) || strings.Contains(err.Error(), "BOB") {
		t.Fatalf("error should name only the unknown user: %v", err)
	}
	must(t, s.DeleteUsers(ctx, []string{"BOB"}))
	for _, err := range []error{
		func() error { _, err := s.GetUserByName(ctx, "bob"); return err }(),
		func() error { _, err := s.GetUserByID(ctx, bob.ID); return err }(),
		func() error { _, err := s.GetUserByToken(ctx, "tok-bob-2"); return err }(),
	} {
		wantErr(t, err, ErrNotFound)
	}
	users, err = s.ListUsers(ctx)
	must(t, err)
	if len(users) != 1 {
		t.Fatalf("ListUsers after delete = %d users", len(users))
	}
	wantErr(t, s.DeleteUsers(ctx, []string{"bob"}), ErrNotFound)
	bob2 := mkUser(t, s, "Bob")
	if bob2.ID == bob.ID {
		t.Fatal("recreated user reused the ID")
	}
}

func testProjects(t *testing.T, dbURL string) {
	s := openNew(t, dbURL)
	alice, bob := mkUser(t, s, "alice"), mkUser(t, s, "bob")
	p := mkProject(t, s, "Main", alice)
	if p.ID == "" || p.CreatedAt.IsZero() {
		t.Fatalf("ID/CreatedAt not filled: %+v", p)
	}
	wantErr(t, s.CreateProject(ctx, &models.Project{Name: "MAIN", OwnerID: bob.ID}), ErrExists)
	wantErr(t, s.CreateProject(ctx, &models.Project{Name: "x", OwnerID: "nobody"}), ErrNotFound)

	got, err := s.GetProject(ctx, "main")
	must(t, err)
	if *got != *p {
		t.Fatalf("GetProject = %+v, want %+v", got, p)
	}
	got, err = s.GetProjectByID(ctx, p.ID)
	must(t, err)
	if got.SSHPrivateKey != "PRIVATE-Main" || got.OwnerID != alice.ID {
		t.Fatalf("GetProjectByID = %+v", got)
	}

	// The owner becomes admin.
	m, err := s.GetMember(ctx, p.ID, alice.ID)
	must(t, err)
	if m.Role != models.ProjectRoleAdmin {
		t.Fatalf("owner member = %+v", m)
	}
	_, err = s.GetMember(ctx, p.ID, bob.ID)
	wantErr(t, err, ErrNotFound)

	other := mkProject(t, s, "other", bob)
	all, err := s.ListProjects(ctx)
	must(t, err)
	if len(all) != 2 || all[0].Name != "Main" || all[1].Name != "other" {
		t.Fatalf("ListProjects = %+v", all)
	}
	mine, err := s.ListProjectsForUser(ctx, bob.ID)
	must(t, err)
	if len(mine) != 1 || mine[0].ID != other.ID {
		t.Fatalf("ListProjectsForUser(bob) = %+v", mine)
	}

	// Soft delete removes members and backends and frees the name.
	must(t, s.CreateBackend(ctx, &models.Backend{ProjectID: p.ID, Type: "aws", Config: "{}", Auth: "{}"}))
	wantErr(t, s.DeleteProjects(ctx, []string{"main", "ghost"}), ErrNotFound)
	must(t, s.DeleteProjects(ctx, []string{"main"}))
	_, err = s.GetProject(ctx, "Main")
	wantErr(t, err, ErrNotFound)
	_, err = s.GetProjectByID(ctx, p.ID)
	wantErr(t, err, ErrNotFound)
	members, err := s.ListMembers(ctx, p.ID)
	must(t, err)
	backends, err := s.ListBackends(ctx, p.ID)
	must(t, err)
	if len(members) != 0 || len(backends) != 0 {
		t.Fatalf("deleted project kept members %v / backends %v", members, backends)
	}
	mine, err = s.ListProjectsForUser(ctx, alice.ID)
	must(t, err)
	if len(mine) != 0 {
		t.Fatalf("ListProjectsForUser lists a deleted project: %+v", mine)
	}
	wantErr(t, s.SetMembers(ctx, p.ID, nil), ErrNotFound)
	wantErr(t, s.CreateBackend(ctx, &models.Backend{ProjectID: p.ID, Type: "gcp"}), ErrNotFound)
	p2 := mkProject(t, s, "main", bob)
	if p2.ID == p.ID {
		t.Fatal("recreated project reused the ID")
	}
}

func testMembers(t *testing.T, dbURL string) {
	s := openNew(t, dbURL)
	alice, bob, carol := mkUser(t, s, "alice"), mkUser(t, s, "bob"), mkUser(t, s, "carol")
	p := mkProject(t, s, "p", alice)

	set := []models.Member{
		{UserID: carol.ID, Role: models.ProjectRoleUser},
		{UserID: alice.ID, Role: models.ProjectRoleAdmin},
		{UserID: bob.ID, Role: models.ProjectRoleManager},
	}
	must(t, s.SetMembers(ctx, p.ID, set))
	got, err := s.ListMembers(ctx, p.ID)
	must(t, err)
	if len(got) != 3 {
		t.Fatalf("ListMembers = %+v", got)
	}
	for i := range set {
		if got[i].UserID != set[i].UserID || got[i].Role != set[i].Role || got[i].ProjectID != p.ID {
			t.Fatalf("member %d = %+v, want %+v (order kept)", i, got[i], set[i])
		}
	}

	// Replace: bob gone, carol's role changed.
	must(t, s.SetMembers(ctx, p.ID, []models.Member{{UserID: alice.ID, Role: "admin"}, {UserID: carol.ID, Role: "manager"}}))
	_, err = s.GetMember(ctx, p.ID, bob.ID)
	wantErr(t, err, ErrNotFound)
	m, err := s.GetMember(ctx, p.ID, carol.ID)
	must(t, err)
	if m.Role != "manager" {
		t.Fatalf("carol = %+v", m)
	}

	// A bad list changes nothing.
	wantErr(t, s.SetMembers(ctx, p.ID, []models.Member{{UserID: bob.ID, Role: "user"}, {UserID: "ghost", Role: "user"}}), ErrNotFound)
	if err := s.SetMembers(ctx, p.ID, []models.Member{{UserID: bob.ID, Role: "user"}, {UserID: bob.ID, Role: "admin"}}); err == nil {
		t.Fatal("duplicate member accepted")
	}
	got, err = s.ListMembers(ctx, p.ID)
	must(t, err)
	if len(got) != 2 || got[0].UserID != alice.ID || got[1].UserID != carol.ID {
		t.Fatalf("failed SetMembers changed members: %+v", got)
	}

	// Deleting a user drops their memberships.
	must(t, s.DeleteUsers(ctx, []string{"carol"}))
	got, err = s.ListMembers(ctx, p.ID)
	must(t, err)
	if len(got) != 1 || got[0].UserID != alice.ID {
		t.Fatalf("members after deleting carol: %+v", got)
	}
	wantErr(t, s.SetMembers(ctx, p.ID, []models.Member{{UserID: carol.ID, Role: "user"}}), ErrNotFound)
}

func testBackends(t *testing.T, dbURL string) {
	s := openNew(t, dbURL)
	alice := mkUser(t, s, "alice")
	p, q := mkProject(t, s, "p", alice), mkProject(t, s, "q", alice)

	aws := &models.Backend{ProjectID: p.ID, Type: "aws", Config: `{"regions":["us-east-1"]}`, Auth: `{"access_key":"AK"}`, Status: models.BackendUnchecked}
	must(t, s.CreateBackend(ctx, aws))
	if aws.ID == "" || aws.CreatedAt.IsZero() || !aws.UpdatedAt.Equal(aws.CreatedAt) || aws.CheckedAt != nil {
		t.Fatalf("created = %+v", aws)
	}
	wantErr(t, s.CreateBackend(ctx, &models.Backend{ProjectID: p.ID, Type: "aws", Config: "{}"}), ErrExists)
	must(t, s.CreateBackend(ctx, &models.Backend{ProjectID: q.ID, Type: "aws", Config: "{}"}))
	must(t, s.CreateBackend(ctx, &models.Backend{ProjectID: p.ID, Type: "gcp", Config: "{}"}))

	got, err := s.GetBackend(ctx, p.ID, "aws")
	must(t, err)
	if *got != *aws {
		t.Fatalf("GetBackend = %+v, want %+v", got, aws)
	}
	_, err = s.GetBackend(ctx, p.ID, "azure")
	wantErr(t, err, ErrNotFound)

	list, err := s.ListBackends(ctx, p.ID)
	must(t, err)
	if len(list) != 2 || list[0].Type != "aws" || list[1].Type != "gcp" {
		t.Fatalf("ListBackends = %+v", list)
	}

	checked := time.Now()
	upd := &models.Backend{ProjectID: p.ID, Type: "aws", Config: `{"regions":[]}`, Auth: `{"access_key":"AK2"}`,
		Status: models.BackendValid, CheckedAt: &checked}
	must(t, s.UpdateBackend(ctx, upd))
	if upd.ID != aws.ID || !upd.CreatedAt.Equal(aws.CreatedAt) {
		t.Fatalf("UpdateBackend did not fill ID/CreatedAt: %+v", upd)
	}
	got, err = s.GetBackend(ctx, p.ID, "aws")
	must(t, err)
	if *got.CheckedAt != checked.UTC().Truncate(time.Microsecond) || got.Auth != `{"access_key":"AK2"}` ||
		got.Config != `{"regions":[]}` || got.Status != models.BackendValid || got.UpdatedAt.Before(aws.UpdatedAt) {
		t.Fatalf("after update = %+v", got)
	}
	wantErr(t, s.UpdateBackend(ctx, &models.Backend{ProjectID: p.ID, Type: "azure"}), ErrNotFound)

	must(t, s.SetBackendStatus(ctx, aws.ID, models.BackendInvalid, "bad creds", checked))
	got, err = s.GetBackend(ctx, p.ID, "aws")
	must(t, err)
	if got.Status != models.BackendInvalid || got.StatusMessage != "bad creds" || got.Auth != `{"access_key":"AK2"}` {
		t.Fatalf("after SetBackendStatus = %+v", got)
	}
	wantErr(t, s.SetBackendStatus(ctx, "ghost", "valid", "", checked), ErrNotFound)

	wantErr(t, s.DeleteBackends(ctx, p.ID, []string{"aws", "azure"}), ErrNotFound)
	must(t, s.DeleteBackends(ctx, p.ID, []string{"aws"}))
	list, err = s.ListBackends(ctx, p.ID)
	must(t, err)
	if len(list) != 1 || list[0].Type != "gcp" {
		t.Fatalf("after delete = %+v", list)
	}
	if _, err := s.GetBackend(ctx, q.ID, "aws"); err != nil {
		t.Fatalf("other project's backend affected: %v", err)
	}
}

func testSettings(t *testing.T, dbURL string) {
	s := openNew(t, dbURL)
	if _, ok, err := s.GetSetting(ctx, "default_permissions"); err != nil || ok {
		t.Fatalf("unset setting: ok=%v err=%v", ok, err)
	}
	must(t, s.SetSetting(ctx, "default_permissions", `{"allow_non_admins_create_projects":true}`))
	must(t, s.SetSetting(ctx, "default_permissions", `{"allow_non_admins_create_projects":false}`))
	v, ok, err := s.GetSetting(ctx, "default_permissions")
	if err != nil || !ok || v != `{"allow_non_admins_create_projects":false}` {
		t.Fatalf("GetSetting = %q, %v, %v", v, ok, err)
	}
}

func testTransactions(t *testing.T, dbURL string) {
	s := openNew(t, dbURL)
	boom := errors.New("boom")
	err := s.WithTx(ctx, func(tx *Store) error {
		u := mkUser(t, tx, "alice")
		mkProject(t, tx, "p", u)
		must(t, tx.SetSetting(ctx, "k", "v"))
		// Nested calls (CreateProject uses WithTx itself) join the outer transaction.
		return tx.WithTx(ctx, func(tx *Store) error { return boom })
	})
	wantErr(t, err, boom)
	users, err := s.ListUsers(ctx)
	must(t, err)
	projects, err := s.ListProjects(ctx)
	must(t, err)
	_, ok, err := s.GetSetting(ctx, "k")
	must(t, err)
	if len(users) != 0 || len(projects) != 0 || ok {
		t.Fatalf("rolled-back transaction left %d users, %d projects, setting=%v", len(users), len(projects), ok)
	}

	must(t, s.WithTx(ctx, func(tx *Store) error {
		mkProject(t, tx, "p", mkUser(t, tx, "alice"))
		return nil
	}))
	if _, err := s.GetProject(ctx, "p"); err != nil {
		t.Fatalf("committed project: %v", err)
	}
}

// testEncryptedAtRest reads the raw columns: secrets must be ciphertext that names the key.
func testEncryptedAtRest(t *testing.T, dbURL string) {
	s := openNew(t, dbURL)
	u := mkUser(t, s, "alice")
	p := mkProject(t, s, "p", u)
	must(t, s.CreateBackend(ctx, &models.Backend{ProjectID: p.ID, Type: "aws", Config: "{}", Auth: `{"api_key":"SEKRET-123"}`}))
	for _, q := range []string{
		`SELECT token FROM users`,
		`SELECT ssh_private_key FROM projects`,
		`SELECT auth FROM backends`,
	} {
		var v string
		must(t, s.queryRow(ctx, q).Scan(&v))
		if !strings.HasPrefix(v, "enc:aes:test:") {
			t.Errorf("%s = %q, want ciphertext", q, v)
		}
	}
}

func testReopen(t *testing.T, dbURL string) {
	kr := keyring(t, newKey(t, "k"))
	s := open(t, dbURL, kr)
	u := mkUser(t, s, "alice")
	p := mkProject(t, s, "p", u)
	must(t, s.CreateBackend(ctx, &models.Backend{ProjectID: p.ID, Type: "aws", Config: "{}", Auth: "creds"}))
	must(t, s.Close())

	s = open(t, dbURL, kr) // migrations are a no-op the second time
	got, err := s.GetUserByToken(ctx, u.Token)
	must(t, err)
	if got.ID != u.ID {
		t.Fatalf("reopened user = %+v", got)
	}
	b, err := s.GetBackend(ctx, p.ID, "aws")
	must(t, err)
	if b.Auth != "creds" {
		t.Fatalf("reopened backend = %+v", b)
	}
}

func testKeyRotation(t *testing.T, dbURL string) {
	a, b := newKey(t, "a"), newKey(t, "b")
	s := open(t, dbURL, keyring(t, a))
	u := mkUser(t, s, "alice")
	p := mkProject(t, s, "p", u)
	must(t, s.CreateBackend(ctx, &models.Backend{ProjectID: p.ID, Type: "aws", Config: "{}", Auth: "creds-a", Status: models.BackendValid}))
	must(t, s.Close())

	// New key first, old key still listed: old values decrypt, new ones use the new key.
	s = open(t, dbURL, keyring(t, b, a))
	if got, err := s.GetUserByToken(ctx, u.Token); err != nil || got.Token != u.Token {
		t.Fatalf("rotated keyring: %+v, %v", got, err)
	}
	must(t, s.CreateBackend(ctx, &models.Backend{ProjectID: p.ID, Type: "gcp", Config: "{}", Auth: "creds-b"}))
	var raw string
	must(t, s.queryRow(ctx, `SELECT auth FROM backends WHERE type = 'gcp'`).Scan(&raw))
	if !strings.HasPrefix(raw, "enc:aes:b:") {
		t.Fatalf("new value encrypted with %q, want key b", raw)
	}
	must(t, s.Close())

	// Old key dropped: rows encrypted with it cannot be read, with errors that say so.
	s = open(t, dbURL, keyring(t, b))
	_, err := s.GetUserByToken(ctx, u.Token)
	if err == nil || !strings.Contains(err.Error(), `user "alice"`) || !strings.Contains(err.Error(), `aes key "a"`) {
		t.Fatalf("user with lost key: err = %v", err)
	}
	if _, err := s.GetProject(ctx, "p"); err == nil || !strings.Contains(err.Error(), `project "p"`) {
		t.Fatalf("project with lost key: err = %v", err)
	}
	list, err := s.ListBackends(ctx, p.ID)
	must(t, err)
	if len(list) != 2 || list[0].Status != models.BackendInvalid || list[0].Auth != "" ||
		!strings.HasPrefix(list[0].StatusMessage, "failed to decrypt credentials: ") ||
		list[1].Auth != "creds-b" {
		t.Fatalf("backends with lost key = %+v, %+v", list[0], list[1])
	}
}

// testConcurrent exercises the connection pool under the race detector; SQLite must not report busy.
func testConcurrent(t *testing.T, dbURL string) {
	s := openNew(t, dbURL)
	p := mkProject(t, s, "p", mkUser(t, s, "alice"))
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 20 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			typ := "t" + string(rune('a'+i))
			errs <- s.CreateBackend(ctx, &models.Backend{ProjectID: p.ID, Type: typ, Config: "{}", Auth: "x"})
		}()
		go func() {
			defer wg.Done()
			_, err := s.ListBackends(ctx, p.ID)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
}

// TestSQLiteSecretsNotInFiles checks the bytes on disk, WAL and shared memory included.
func TestSQLiteSecretsNotInFiles(t *testing.T) {
	dir := t.TempDir()
	dbURL := "sqlite://" + filepath.Join(dir, "sqlite.db")
	kr := keyring(t, newKey(t, "k"))
	s := open(t, dbURL, kr)
	const secret, token = "SEKRET-123", "TOKEN-4f0c2a9e"
	u := &models.User{Username: "alice", GlobalRole: "admin", Active: true, Token: token}
	must(t, s.CreateUser(ctx, u))
	p := mkProject(t, s, "p", u)
	must(t, s.CreateBackend(ctx, &models.Backend{ProjectID: p.ID, Type: "aws", Config: "{}", Auth: `{"api_key":"` + secret + `"}`}))

	// Check while open (the WAL holds the writes) and after Close (checkpointed into the db file).
	check := func() {
		t.Helper()
		entries, err := os.ReadDir(dir)
		must(t, err)
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			must(t, err)
			for _, needle := range []string{secret, token, "PRIVATE-p"} {
				if strings.Contains(string(b), needle) {
					t.Errorf("%s contains %q", e.Name(), needle)
				}
			}
		}
	}
	check()
	must(t, s.Close())
	check()

	s = open(t, dbURL, kr)
	b, err := s.GetBackend(ctx, p.ID, "aws")
	must(t, err)
	got, err := s.GetUserByToken(ctx, token)
	must(t, err)
	if !strings.Contains(b.Auth, secret) || got.Token != token {
		t.Fatalf("after reopen: auth %q, token %q", b.Auth, got.Token)
	}
}

func TestOpenURLs(t *testing.T) {
	kr := keyring(t, newKey(t, "k"))
	dir := t.TempDir()
	for _, u := range []string{
		filepath.Join(dir, "plain.db"),
		"sqlite://" + filepath.Join(dir, "scheme.db"),
		"sqlite+aiosqlite:///" + filepath.Join(dir, "dstack.db"),
	} {
		s, err := Open(ctx, u, kr)
		if err != nil {
			t.Fatalf("Open(%q): %v", u, err)
		}
		if s.Dialect() != DialectSQLite {
			t.Fatalf("Open(%q).Dialect() = %q", u, s.Dialect())
		}
		var mode string
		must(t, s.queryRow(ctx, "PRAGMA journal_mode").Scan(&mode))
		var fk int
		must(t, s.queryRow(ctx, "PRAGMA foreign_keys").Scan(&fk))
		if mode != "wal" || fk != 1 {
			t.Fatalf("journal_mode=%s foreign_keys=%d", mode, fk)
		}
		s.Close()
	}
	for _, u := range []string{"mysql://x", "sqlite://", filepath.Join(dir, "a?b.db")} {
		if s, err := Open(ctx, u, kr); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", u)
		}
	}
	if _, err := Open(ctx, filepath.Join(dir, "x.db"), nil); err == nil {
		t.Error("Open without keyring succeeded")
	}
}

func TestRebind(t *testing.T) {
	s := &Store{dialect: DialectPostgres}
	if got := s.rebind("a = ? AND b IN (?, ?)"); got != "a = $1 AND b IN ($2, $3)" {
		t.Fatalf("rebind = %q", got)
	}
	s.dialect = DialectSQLite
	if got := s.rebind("a = ?"); got != "a = ?" {
		t.Fatalf("sqlite rebind = %q", got)
	}
}
