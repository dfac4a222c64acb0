// Package store persists the server's records in SQLite (the default, a single file under the
// server directory) or PostgreSQL.
//
// Both dialects share one set of queries, written with `?` placeholders and rebound to `$N` for
// PostgreSQL; the schema is migrated with goose from the embedded per-dialect files in migrations/.
// The store encrypts secret columns (user tokens, SSH private keys, backend credentials) with a
// secrets.Keyring on the way in and decrypts them on the way out, so callers only see plaintext.
//
// Users and projects are soft-deleted: a deleted row stays in its table (so that references to it
// remain valid) but is invisible to every method, and its name may be taken again.
package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/dstackgo/dstack/internal/secrets"
)

// Dialects, as returned by Store.Dialect.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

// Sentinel errors; methods wrap them with what was not found or already exists.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrations embed.FS

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Store is a handle on the database. It is safe for concurrent use; the *Store that WithTx passes to
// its callback is bound to that transaction and must not outlive it.
type Store struct {
	db      *sql.DB
	q       querier // db, or the transaction of a WithTx callback
	inTx    bool
	dialect string
	kr      *secrets.Keyring
}

// Open connects to the database at dbURL and migrates it to the latest schema.
//
// dbURL is "sqlite:///abs/path/sqlite.db" or a plain file path for SQLite, or "postgres://..." /
// "postgresql://..." for PostgreSQL. A "+driver" suffix on the scheme, as in dstack's
// DSTACK_DATABASE_URL ("sqlite+aiosqlite://", "postgresql+asyncpg://"), is accepted and ignored.
func Open(ctx context.Context, dbURL string, kr *secrets.Keyring) (*Store, error) {
	if kr == nil {
		return nil, errors.New("open database: a keyring is required")
	}
	scheme, rest, hasScheme := strings.Cut(dbURL, "://")
	scheme, _, _ = strings.Cut(scheme, "+")
	var (
		db      *sql.DB
		dialect string
		err     error
	)
	switch {
	case !hasScheme:
		db, err = openSQLite(dbURL)
		dialect = DialectSQLite
	case scheme == "sqlite":
		db, err = openSQLite(rest)
		dialect = DialectSQLite
	case scheme == "postgres" || scheme == "postgresql":
		db, err = openPostgres("postgres://" + rest)
		dialect = DialectPostgres
	default:
		return nil, fmt.Errorf("open database: unsupported URL scheme %q (want sqlite:// or postgres://)", scheme)
	}
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if err := migrate(ctx, db, dialect); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate %s database: %w", dialect, err)
	}
	return &Store{db: db, q: db, dialect: dialect, kr: kr}, nil
}

func openSQLite(path string) (*sql.DB, error) {
	if path == "" {
		return nil, errors.New("empty SQLite path")
	}
	// The driver takes everything after '?' as its own parameters.
	if strings.Contains(path, "?") {
		return nil, fmt.Errorf("SQLite path %q must not contain '?'", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	// WAL makes small commits cheap and lets other processes (backups, inspection) read during a
	// write. Immediate transactions take the write lock up front, so a second process writing the
	// same file waits on busy_timeout instead of failing with SQLITE_BUSY halfway through.
	db, err := sql.Open("sqlite", path+"?_busy_timeout=10000&_journal_mode=WAL&_foreign_keys=1&_txlock=immediate")
	if err != nil {
		return nil, err
	}
	// SQLite allows one writer at a time anyway; a single connection serializes our statements in
	// Go instead of in SQLite's lock, which cannot deadlock or time out under load.
	db.SetMaxOpenConns(1)
	return db, nil
}

func openPostgres(dsn string) (*sql.DB, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, err
	}
	// Stay well below PostgreSQL's default max_connections (100), which other servers may share.
	db.SetMaxOpenConns(10)
	return db, nil
}

func migrate(ctx context.Context, db *sql.DB, dialect string) error {
	fsys, err := fs.Sub(migrations, "migrations/"+dialect)
	if err != nil {
		return err
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	gooseDialect := goose.DialectSQLite3
	if dialect == DialectPostgres {
		gooseDialect = goose.DialectPostgres
		// Several server replicas may start at once against one PostgreSQL database.
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(gooseDialect, db, fsys, opts...)
	if err != nil {
		return err
	}
	_, err = p.Up(ctx)
	return err
}

// Close closes the database. It must not be called on the *Store given to a WithTx callback.
func (s *Store) Close() error {
	if s.inTx {
		return errors.New("store: Close called inside WithTx")
	}
	return s.db.Close()
}

// Dialect is DialectSQLite or DialectPostgres.
func (s *Store) Dialect() string { return s.dialect }

// WithTx runs fn in a transaction: everything fn does through tx is committed if it returns nil and
// rolled back otherwise. fn must use tx, not s (with SQLite, s would wait for the transaction to end).
// A WithTx inside fn joins the outer transaction.
func (s *Store) WithTx(ctx context.Context, fn func(tx *Store) error) error {
	if s.inTx {
		return fn(s)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer tx.Rollback() // no-op after Commit; undoes everything if fn fails or panics
	txStore := *s
	txStore.q, txStore.inTx = tx, true
	if err := fn(&txStore); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// rebind turns `?` placeholders into PostgreSQL's `$1, $2, ...`. Queries in this package never
// contain a literal '?'.
func (s *Store) rebind(query string) string {
	if s.dialect != DialectPostgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return s.q.ExecContext(ctx, s.rebind(query), args...)
}

func (s *Store) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return s.q.QueryContext(ctx, s.rebind(query), args...)
}

func (s *Store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return s.q.QueryRowContext(ctx, s.rebind(query), args...)
}

// execOne runs an UPDATE that must hit a row; notFound describes the row for ErrNotFound.
func (s *Store) execOne(ctx context.Context, notFound string, query string, args ...any) error {
	res, err := s.exec(ctx, query, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", notFound, ErrNotFound)
	}
	return nil
}

// placeholders returns "?, ?, ..." with n entries, for IN lists.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505"
	}
	var sqliteErr *sqlite.Error
	if errors.As(err, &sqliteErr) {
		return sqliteErr.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || sqliteErr.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// encrypt leaves empty values empty: there is nothing to hide, and "" reads back as "" anyway.
func (s *Store) encrypt(plain string) (string, error) {
	if plain == "" {
		return "", nil
	}
	return s.kr.Encrypt(plain)
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Timestamps are kept in UTC with microsecond precision, the resolution both databases store.
const sqliteTimeLayout = "2006-01-02T15:04:05.000000Z"

func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// stamp normalizes t as it will read back from the database, or returns now() if t is zero.
func stamp(t time.Time) time.Time {
	if t.IsZero() {
		return now()
	}
	return t.UTC().Truncate(time.Microsecond)
}

// timeArg converts a timestamp for a query; nil pointers become NULL.
func (s *Store) timeArg(t *time.Time) any {
	switch {
	case t == nil:
		return nil
	case s.dialect == DialectSQLite:
		return t.UTC().Format(sqliteTimeLayout)
	default:
		return t.UTC()
	}
}

// dbTime scans a timestamp column of either dialect (TEXT in SQLite, TIMESTAMPTZ in PostgreSQL).
type dbTime struct {
	t     time.Time
	valid bool
}

func (d *dbTime) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*d = dbTime{}
		return nil
	case time.Time:
		*d = dbTime{t: v.UTC(), valid: true}
		return nil
	case string:
		return d.parse(v)
	case []byte:
		return d.parse(string(v))
	default:
		return fmt.Errorf("timestamp: unexpected %T", src)
	}
}

func (d *dbTime) parse(v string) error {
	t, err := time.Parse(time.RFC3339Nano, v) // also reads sqliteTimeLayout
	if err != nil {
		return fmt.Errorf("timestamp: %w", err)
	}
	*d = dbTime{t: t.UTC(), valid: true}
	return nil
}

func (d dbTime) ptr() *time.Time {
	if !d.valid {
		return nil
	}
	t := d.t
	return &t
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// notFound maps sql.ErrNoRows to ErrNotFound described by what.
func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return err
}

// collect scans every row with scan and closes rows.
func collect[T any](rows *sql.Rows, err error, scan func(scanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// missingNames returns the names in want that have no case-insensitive match in have.
func missingNames(want, have []string) []string {
	var missing []string
	for _, w := range want {
		found := false
		for _, h := range have {
			if strings.EqualFold(w, h) {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, w)
		}
	}
	return missing
}

func stringArgs(ss []string) []any {
	args := make([]any, len(ss))
	for i, s := range ss {
		args[i] = s
	}
	return args
}

// quoteList renders names for error messages: "a", "b".
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}
