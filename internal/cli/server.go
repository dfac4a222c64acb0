package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dstackgo/dstack/internal/cliconfig"
	"github.com/dstackgo/dstack/internal/config"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/schema"
	"github.com/dstackgo/dstack/internal/server"
)

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func newServerCmd() *cobra.Command {
	var (
		host, logLevel, token string
		port                  int
		yes, no               bool
	)
	defPort, _ := strconv.Atoi(envOr("DSTACK_SERVER_PORT", "3000"))
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Start the dstack server",
		Long: `Start the dstack server. It reads $DSTACK_SERVER_DIR/config.yml (default ~/.dstack/server),
keeps its state in SQLite under that directory (or in PostgreSQL when DSTACK_DATABASE_URL is a postgres:// URL),
and writes ~/.dstack/config.yml so that the CLI talks to it as project main.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if yes && no {
				return fmt.Errorf("--yes and --no cannot be used together")
			}
			log, err := newLogger(cmd.ErrOrStderr(), logLevel, envOr("DSTACK_SERVER_LOG_FORMAT", "text"))
			if err != nil {
				return err
			}
			if token == "" {
				token = os.Getenv("DSTACK_SERVER_ADMIN_TOKEN")
			}
			out := cmd.OutOrStdout()
			return server.Run(cmd.Context(), server.Options{
				Dir:            envOr("DSTACK_SERVER_DIR", server.DefaultDir()),
				Host:           host,
				Port:           port,
				AdminToken:     token,
				DatabaseURL:    os.Getenv("DSTACK_DATABASE_URL"),
				URL:            os.Getenv("DSTACK_SERVER_URL"),
				ConfigDisabled: os.Getenv("DSTACK_SERVER_CONFIG_DISABLED") != "",
				Log:            log,
				Ready: func(url string, admin *models.User) {
					if !no {
						if err := writeCLIConfig(url, admin.Token, yes, cmd.InOrStdin(), out); err != nil {
							log.Warn("cannot write the CLI config", "err", err)
						}
					}
					fmt.Fprintf(out, "The admin token is %s\n", admin.Token)
					fmt.Fprintf(out, "The dstack server %s is running at %s\n", server.Version, url)
				},
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&host, "host", envOr("DSTACK_SERVER_HOST", "127.0.0.1"), "address to bind (DSTACK_SERVER_HOST)")
	f.IntVarP(&port, "port", "p", defPort, "port to bind (DSTACK_SERVER_PORT)")
	f.StringVarP(&logLevel, "log-level", "l", envOr("DSTACK_SERVER_LOG_LEVEL", "INFO"), "DEBUG, INFO, WARNING or ERROR (DSTACK_SERVER_LOG_LEVEL)")
	f.StringVar(&token, "token", "", "the admin user's token (DSTACK_SERVER_ADMIN_TOKEN); default: kept from the last start, or generated")
	f.BoolVarP(&yes, "yes", "y", false, "overwrite the CLI's project main in ~/.dstack/config.yml without asking")
	f.BoolVarP(&no, "no", "n", false, "do not touch ~/.dstack/config.yml")
	cmd.AddCommand(newValidateCmd())
	return cmd
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	switch strings.ToUpper(level) {
	case "DEBUG":
		lv = slog.LevelDebug
	case "INFO", "":
		lv = slog.LevelInfo
	case "WARNING", "WARN":
		lv = slog.LevelWarn
	case "ERROR", "CRITICAL":
		lv = slog.LevelError
	default:
		return nil, fmt.Errorf("unknown log level %q; use DEBUG, INFO, WARNING or ERROR", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text", "rich", "standard", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("unknown DSTACK_SERVER_LOG_FORMAT %q; use text or json", format)
}

// writeCLIConfig points the CLI's project main at this server. An entry that differs is replaced when
// yes is set or the user agrees; a non-interactive start replaces it too, since the old token would no
// longer work against this server anyway.
func writeCLIConfig(url, token string, yes bool, in io.Reader, out io.Writer) error {
	c, err := cliconfig.Load()
	if err != nil {
		return err
	}
	if p, ok := c.Get("main"); ok {
		if p.URL == url && p.Token == token {
			return nil
		}
		if !yes && isTerminal(in) {
			fmt.Fprintf(out, "Update project main in %s to %s? [y/n]: ", c.File(), url)
			var answer string
			fmt.Fscanln(in, &answer)
			if !strings.HasPrefix(strings.ToLower(answer), "y") {
				return nil
			}
		}
	}
	_, hasDefault := c.Default()
	c.Upsert(cliconfig.Project{Name: "main", URL: url, Token: token}, !hasDefault)
	return c.Save()
}

func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func newValidateCmd() *cobra.Command {
	var (
		path    string
		offline bool
	)
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check a config.yml without starting the server",
		Long: `Check a config.yml without starting the server. Every problem is printed as FILE:LINE:COL: path: message.
Without --offline each backend's credentials are also checked against its provider.
Exits 0 only when everything is valid.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" {
				path = server.ConfigPath(envOr("DSTACK_SERVER_DIR", server.DefaultDir()))
			}
			return validate(cmd.Context(), cmd.OutOrStdout(), path, offline)
		},
	}
	cmd.Flags().StringVar(&path, "config", "", "the file to check (default $DSTACK_SERVER_DIR/config.yml)")
	cmd.Flags().BoolVar(&offline, "offline", false, "check only the schema; make no calls to providers")
	return cmd
}

func validate(ctx context.Context, out io.Writer, path string, offline bool) error {
	cfg, err := config.Load(path, config.Options{})
	if err != nil {
		if se, ok := schema.IsError(err); ok {
			for _, is := range se.Issues {
				fmt.Fprintln(out, schema.FormatIssue(se.Name, is))
			}
			fmt.Fprintf(out, "%s: %d problem(s)\n", path, len(se.Issues))
			return exitError{1}
		}
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECT\tBACKEND\tSTATE\tDETAILS")
	failed := false
	for _, p := range cfg.Projects {
		if len(p.Backends) == 0 {
			fmt.Fprintf(tw, "%s\t-\tvalid\tno backends\n", p.Name)
		}
		for _, b := range p.Backends {
			state, details := "valid", "schema ok (offline)"
			if !offline {
				status, reason := server.CheckBackend(ctx, b, 30*time.Second)
				state, details = status, ""
				if reason != nil {
					details = reason.Error()
				}
				failed = failed || status == models.BackendInvalid
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Name, b.Type, state, details)
		}
	}
	tw.Flush()
	for _, name := range cfg.Plugins {
		fmt.Fprintf(out, "note: plugin %q is accepted but plugins are not supported by this server\n", name)
	}
	if failed {
		return exitError{1}
	}
	return nil
}
