package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/dstackgo/dstack/internal/catalog"
	"github.com/dstackgo/dstack/internal/config"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/secrets"
	"github.com/dstackgo/dstack/internal/store"
)

// Options are the settings of `dstack server`, from flags and DSTACK_* variables.
type Options struct {
	Dir            string // DSTACK_SERVER_DIR, default ~/.dstack/server
	Host           string
	Port           int
	AdminToken     string // DSTACK_SERVER_ADMIN_TOKEN or --token
	DatabaseURL    string // DSTACK_DATABASE_URL; default SQLite in Dir/data
	URL            string // DSTACK_SERVER_URL: how clients reach the server; default http://host:port
	ConfigDisabled bool   // DSTACK_SERVER_CONFIG_DISABLED: neither read nor write config.yml
	Log            *slog.Logger
	// Ready, when set, is called with the server's URL and admin once it serves requests.
	Ready func(url string, admin *models.User)
}

// ConfigPath is where config.yml lives in a server directory.
func ConfigPath(dir string) string { return filepath.Join(dir, "config.yml") }

// Run starts the server and serves until ctx is done, then shuts down cleanly. A config.yml that does
// not parse or validate stops it before anything in the database changes.
func Run(ctx context.Context, o Options) error {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	var cfg *config.Server
	cfgPath := ConfigPath(o.Dir)
	if !o.ConfigDisabled {
		c, err := config.Load(cfgPath, config.Options{})
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return fmt.Errorf("config.yml is not valid; the server was not started and nothing was changed:\n%w", err)
		default:
			cfg = c
		}
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, "data"), 0o700); err != nil {
		return fmt.Errorf("create server directory: %w", err)
	}
	kr, err := Keyring(o.Dir, cfg)
	if err != nil {
		return err
	}
	dbURL := o.DatabaseURL
	if dbURL == "" {
		dbURL = "sqlite://" + filepath.Join(o.Dir, "data", "sqlite.db")
	}
	st, err := store.Open(ctx, dbURL, kr)
	if err != nil {
		return err
	}
	defer st.Close()

	srv := New(st, log)
	cat := catalog.New(catalog.Options{CacheDir: filepath.Join(o.Dir, "data", "catalog"), Logger: log})
	go cat.Run(ctx)
	srv.SetCatalog(cat)
	admin, err := srv.Bootstrap(ctx, o.AdminToken)
	if err != nil {
		return err
	}
	if cfg != nil {
		if err := srv.ApplyConfig(ctx, cfg, admin); err != nil {
			return fmt.Errorf("apply %s: %w", cfgPath, err)
		}
	} else if !o.ConfigDisabled {
		if err := writeDefaultConfig(cfgPath); err != nil {
			log.Warn("cannot write a default config.yml", "path", cfgPath, "err", err)
		}
	}

	srv.ConfigureWork(WorkOptionsFromEnv(o.Dir))
	workCtx, stopWork := context.WithCancel(context.Background())
	waitWork := srv.StartWork(workCtx)
	defer func() { stopWork(); waitWork() }()

	ln, err := net.Listen("tcp", net.JoinHostPort(o.Host, fmt.Sprint(o.Port)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	url := o.URL
	if url == "" {
		url = "http://" + ln.Addr().String()
	}
	srv.SetPublicURL(url)
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	if o.Ready != nil {
		o.Ready(url, admin)
	}
	log.Info("the dstack server is running", "url", url, "version", Version)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = hs.Shutdown(sctx)
	srv.Shutdown(sctx)
	return err
}

// Keyring builds the encryption keyring: the keys of config.yml first (the first one encrypts), then
// the server's generated default key so that secrets written before keys were configured stay readable.
// With no keys configured the default key encrypts: secrets are never stored in plain text by default.
func Keyring(dir string, cfg *config.Server) (*secrets.Keyring, error) {
	def, err := secrets.LoadOrCreateDefaultKey(dir)
	if err != nil {
		return nil, fmt.Errorf("encryption key: %w", err)
	}
	var keys []secrets.Key
	if cfg != nil {
		for _, k := range cfg.EncryptionKeys {
			keys = append(keys, secrets.Key{Type: k.Type, Name: k.Name, Secret: k.Secret})
		}
	}
	kr, err := secrets.NewKeyring(append(keys, def))
	if err != nil {
		return nil, fmt.Errorf("config.yml encryption.keys: %w", err)
	}
	return kr, nil
}

// defaultConfig lists no project: a project listed here is owned by the file (its other backends are
// deleted on start), and backends added through the API or UI must not vanish on the next restart.
const defaultConfig = `# dstack server configuration, applied on every start. Example:
#
# projects:
#   - name: main
#     backends:
#       - type: lambda
#         creds:
#           type: api_key
#           api_key: ${LAMBDA_API_KEY}
#
# A project listed here is owned by this file: backends that the file does not list are deleted
# from it on start. See README.md, "config.yml reference".
projects: []
`

func writeDefaultConfig(path string) error {
	if err := os.WriteFile(path, []byte(defaultConfig), 0o600); err != nil {
		return err
	}
	return nil
}

// DefaultDir is ~/.dstack/server.
func DefaultDir() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ".dstack/server"
	}
	return filepath.Join(home, ".dstack", "server")
}
