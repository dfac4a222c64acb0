package catalog

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultURL is where gpuhunt publishes its v2 catalogs: {base}/version holds the current version,
// {base}/{version}/catalog.zip the CSVs.
const DefaultURL = "https://dstack-gpu-pricing.s3.eu-west-1.amazonaws.com/v2"

// EnvURL overrides the catalog location with a URL or a local directory of <provider>.csv files.
const EnvURL = "DSTACK_CATALOG_URL"

// DefaultReloadInterval is how often gpuhunt's clients look for a new catalog.
const DefaultReloadInterval = 15 * time.Minute

// maxDownload bounds the zip and version downloads.
const maxDownload = 1 << 30

// Errors of a lookup, to tell "no catalog at all" from "this provider is not in it".
var (
	ErrNotLoaded  = errors.New("no catalog loaded")
	ErrNoProvider = errors.New("provider not in catalog")
)

// ProviderStatus is the state of one provider's table.
type ProviderStatus struct {
	Provider string    `json:"provider"`
	Version  string    `json:"version"`
	Rows     int       `json:"rows"`
	Rejected int       `json:"rejected"`
	LoadedAt time.Time `json:"loaded_at"`
	// LastError is why the latest version was not taken (the previous one is still served), or "".
	LastError string `json:"last_error,omitempty"`
}

// Status is the state of a Source.
type Status struct {
	URL       string           `json:"url"`
	Version   string           `json:"version"`
	CheckedAt time.Time        `json:"checked_at"`
	LastError string           `json:"last_error,omitempty"`
	Providers []ProviderStatus `json:"providers"`
}

// Snapshot is an immutable set of tables, one per provider.
type Snapshot struct {
	Version string
	tables  map[string]*Table
	status  map[string]ProviderStatus
}

// NewSnapshot builds a snapshot from tables already loaded, e.g. by Parse.
func NewSnapshot(tables ...*Table) *Snapshot {
	s := &Snapshot{tables: map[string]*Table{}, status: map[string]ProviderStatus{}}
	for _, t := range tables {
		s.tables[t.Provider] = t
		s.status[t.Provider] = ProviderStatus{Provider: t.Provider, Version: t.Version, Rows: t.Len(),
			Rejected: t.RejectedTotal(), LoadedAt: time.Now()}
	}
	return s
}

// LoadDir reads every <provider>.csv of a directory. A provider that fails is left out and its error
// returned alongside the others.
func LoadDir(dir string) (*Snapshot, error) {
	files, err := readDir(dir)
	if err != nil {
		return nil, err
	}
	var tables []*Table
	var errs []error
	for _, f := range files {
		t, err := f.parse("")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		tables = append(tables, t)
	}
	return NewSnapshot(tables...), errors.Join(errs...)
}

// Providers lists the providers with a table.
func (s *Snapshot) Providers() []string {
	out := make([]string, 0, len(s.tables))
	for p := range s.tables {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// Table returns a provider's table by gpuhunt name, or nil.
func (s *Snapshot) Table(provider string) *Table { return s.tables[provider] }

// TableFor returns the table of a dstack backend type (see ProviderNames). The error wraps
// ErrNotLoaded when the snapshot is empty and ErrNoProvider when only this provider is missing.
func (s *Snapshot) TableFor(backend string) (*Table, error) {
	if s == nil || len(s.tables) == 0 {
		return nil, ErrNotLoaded
	}
	for _, p := range ProviderNames(backend) {
		if t := s.tables[p]; t != nil {
			return t, nil
		}
	}
	return nil, fmt.Errorf("%w: %s", ErrNoProvider, ProviderNames(backend)[0])
}

// Rows is the total number of rows over all tables.
func (s *Snapshot) Rows() int {
	n := 0
	for _, t := range s.tables {
		n += t.Len()
	}
	return n
}

// Options configure a Source.
type Options struct {
	// URL is a gpuhunt base URL or a local directory of CSVs; "" means $DSTACK_CATALOG_URL, else
	// DefaultURL.
	URL string
	// CacheDir keeps the downloaded zip, so that a restart serves it before the first download
	// finishes; "" keeps nothing on disk.
	CacheDir string
	// ReloadInterval defaults to DefaultReloadInterval.
	ReloadInterval time.Duration
	Client         *http.Client
	Logger         *slog.Logger
}

// Source keeps the current catalog and reloads it in the background. Reads take the current
// snapshot through an atomic pointer and never wait for a download.
type Source struct {
	opts   Options
	snap   atomic.Pointer[Snapshot]
	mu     sync.Mutex // serialises reloads
	status atomic.Pointer[Status]
}

// New returns a Source with an empty snapshot; call Load or Run to fill it.
func New(opts Options) *Source {
	if opts.URL == "" {
		opts.URL = os.Getenv(EnvURL)
	}
	if opts.URL == "" {
		opts.URL = DefaultURL
	}
	if opts.ReloadInterval <= 0 {
		opts.ReloadInterval = DefaultReloadInterval
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 5 * time.Minute}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Source{opts: opts}
	s.snap.Store(NewSnapshot())
	s.status.Store(&Status{URL: opts.URL})
	return s
}

// Snapshot returns the current snapshot (empty before the first successful load).
func (s *Source) Snapshot() *Snapshot { return s.snap.Load() }

// TableFor returns a backend's current table. Before any catalog has loaded the error wraps
// ErrNotLoaded and says why the last attempt failed.
func (s *Source) TableFor(backend string) (*Table, error) {
	t, err := s.Snapshot().TableFor(backend)
	if errors.Is(err, ErrNotLoaded) {
		if last := s.status.Load().LastError; last != "" {
			return nil, fmt.Errorf("%w (%s: %s)", ErrNotLoaded, s.opts.URL, last)
		}
		return nil, fmt.Errorf("%w yet (%s)", ErrNotLoaded, s.opts.URL)
	}
	return t, err
}

// Status reports the version, the last error and each provider's rows, rejects and load time.
func (s *Source) Status() Status {
	st := *s.status.Load()
	snap := s.Snapshot()
	st.Providers = make([]ProviderStatus, 0, len(snap.status))
	for _, p := range snap.status {
		st.Providers = append(st.Providers, p)
	}
	sort.Slice(st.Providers, func(i, j int) bool { return st.Providers[i].Provider < st.Providers[j].Provider })
	return st
}

// Run loads the cached zip (if any), then the current catalog, then reloads every interval until
// ctx ends. Failures are logged and kept in Status; the previous tables stay in service.
func (s *Source) Run(ctx context.Context) {
	if !s.isDir() {
		if err := s.loadCached(); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.opts.Logger.Warn("catalog: cached copy unusable", "err", err)
		}
	}
	tick := time.NewTicker(s.opts.ReloadInterval)
	defer tick.Stop()
	for {
		if err := s.Load(ctx); err != nil && ctx.Err() == nil {
			s.opts.Logger.Warn("catalog: reload failed", "url", s.opts.URL, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Load fetches the catalog once (a no-op when the published version is the one loaded) and swaps
// in each provider whose CSV passes the checks.
func (s *Source) Load(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := *s.status.Load()
	st.CheckedAt = time.Now()
	err := s.load(ctx)
	st.LastError = ""
	if err != nil {
		st.LastError = err.Error()
	}
	st.Version = s.Snapshot().Version
	s.status.Store(&st)
	return err
}

func (s *Source) isDir() bool {
	return !strings.HasPrefix(s.opts.URL, "http://") && !strings.HasPrefix(s.opts.URL, "https://")
}

func (s *Source) load(ctx context.Context) error {
	if s.isDir() {
		files, err := readDir(strings.TrimPrefix(s.opts.URL, "file://"))
		if err != nil {
			return err
		}
		return s.swap("", files)
	}
	base := strings.TrimRight(s.opts.URL, "/")
	raw, err := s.get(ctx, base+"/version")
	if err != nil {
		return err
	}
	version := strings.TrimSpace(string(raw))
	if version == "" || strings.ContainsAny(version, "/\\ \n") {
		return fmt.Errorf("%s/version: unusable version %q", base, version)
	}
	if cur := s.Snapshot(); cur.Version == version && len(cur.tables) > 0 {
		return nil
	}
	data, err := s.get(ctx, base+"/"+version+"/catalog.zip")
	if err != nil {
		return err
	}
	files, err := readZip(data)
	if err != nil {
		return fmt.Errorf("catalog %s: %w", version, err)
	}
	if err := s.swap(version, files); err != nil {
		return err
	}
	s.saveCache(version, data)
	return nil
}

func (s *Source) get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxDownload))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	return data, nil
}

// Cache files: the zip as downloaded and its version.
const (
	cacheZip     = "catalog.zip"
	cacheVersion = "catalog.version"
)

func (s *Source) loadCached() error {
	if s.opts.CacheDir == "" {
		return os.ErrNotExist
	}
	v, err := os.ReadFile(filepath.Join(s.opts.CacheDir, cacheVersion))
	if err != nil {
		return err
	}
	data, err := os.ReadFile(filepath.Join(s.opts.CacheDir, cacheZip))
	if err != nil {
		return err
	}
	files, err := readZip(data)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.swap(strings.TrimSpace(string(v)), files)
}

// saveCache writes the zip then its version, each through a rename, so that a crash never leaves a
// version file naming a half-written zip.
func (s *Source) saveCache(version string, data []byte) {
	if s.opts.CacheDir == "" {
		return
	}
	err := os.MkdirAll(s.opts.CacheDir, 0o755)
	if err == nil {
		err = writeAtomic(filepath.Join(s.opts.CacheDir, cacheZip), data)
	}
	if err == nil {
		err = writeAtomic(filepath.Join(s.opts.CacheDir, cacheVersion), []byte(version+"\n"))
	}
	if err != nil {
		s.opts.Logger.Warn("catalog: cannot cache the catalog", "dir", s.opts.CacheDir, "err", err)
	}
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// csvFile is one provider's CSV waiting to be parsed.
type csvFile struct {
	provider string
	open     func() (io.ReadCloser, error)
}

func (f csvFile) parse(version string) (*Table, error) {
	rc, err := f.open()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.provider, err)
	}
	defer rc.Close()
	t, err := Parse(f.provider, rc)
	if t != nil {
		t.Version = version
	}
	return t, err
}

func readDir(dir string) ([]csvFile, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.csv"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("%s: no <provider>.csv files", dir)
	}
	files := make([]csvFile, len(paths))
	for i, p := range paths {
		files[i] = csvFile{
			provider: strings.TrimSuffix(filepath.Base(p), ".csv"),
			open:     func() (io.ReadCloser, error) { return os.Open(p) },
		}
	}
	return files, nil
}

func readZip(data []byte) ([]csvFile, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, err
	}
	var files []csvFile
	for _, zf := range zr.File {
		name := filepath.Base(zf.Name)
		if zf.FileInfo().IsDir() || !strings.HasSuffix(name, ".csv") {
			continue
		}
		files = append(files, csvFile{provider: strings.TrimSuffix(name, ".csv"), open: zf.Open})
	}
	if len(files) == 0 {
		return nil, errors.New("zip holds no <provider>.csv")
	}
	return files, nil
}

// swap parses the files and publishes a new snapshot. A provider whose CSV fails keeps its previous
// table, with the error in its status; so does one missing from the new files. Callers hold s.mu.
func (s *Source) swap(version string, files []csvFile) error {
	old := s.Snapshot()
	next := &Snapshot{Version: version, tables: map[string]*Table{}, status: map[string]ProviderStatus{}}
	now := time.Now()
	var errs []error
	seen := map[string]bool{}
	for _, f := range files {
		seen[f.provider] = true
		t, err := f.parse(version)
		if err != nil {
			errs = append(errs, err)
			st := old.status[f.provider]
			st.Provider, st.LastError = f.provider, err.Error()
			next.status[f.provider] = st
			if prev := old.tables[f.provider]; prev != nil {
				next.tables[f.provider] = prev
			}
			continue
		}
		next.tables[f.provider] = t
		next.status[f.provider] = ProviderStatus{Provider: f.provider, Version: version, Rows: t.Len(),
			Rejected: t.RejectedTotal(), LoadedAt: now}
	}
	for p, t := range old.tables {
		if !seen[p] {
			next.tables[p] = t
			st := old.status[p]
			st.LastError = "missing from catalog " + version
			next.status[p] = st
		}
	}
	if len(next.tables) == 0 {
		return errors.Join(append([]error{errors.New("no provider loaded")}, errs...)...)
	}
	s.snap.Store(next)
	return errors.Join(errs...)
}
