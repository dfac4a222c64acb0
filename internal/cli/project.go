package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/dstackgo/dstack/internal/cliconfig"
	"github.com/dstackgo/dstack/internal/client"
	"github.com/spf13/cobra"
)

// newProjectCmd is `dstack project`: the projects of the CLI config ~/.dstack/config.yml.
func newProjectCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "project",
		Short: "Manage the projects the CLI is configured for",
		Long: "Manage the projects in the CLI config (~/.dstack/config.yml): each is a project name, the URL of\n" +
			"the server that hosts it and the user's token. Commands use the default project unless told otherwise.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newProjectAddCmd(), newProjectListCmd(), newProjectSetDefaultCmd(), newProjectDeleteCmd())
	return cmd
}

func newProjectAddCmd() *cobra.Command {
	var name, url, token string
	var yes, no, makeDefault bool
	cmd := &cobra.Command{
		Use:   "add --name NAME --url URL --token TOKEN",
		Short: "Add or update a project",
		Long: "Add a project to ~/.dstack/config.yml, or update it, after checking with the server that the\n" +
			"project exists and the token may read it.\n\n" +
			"The first project added becomes the default; --default makes this one the default. If the\n" +
			"project is already configured with another URL or token, you are asked before it is\n" +
			"overwritten: -y overwrites without asking, -n leaves it unchanged.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			url = strings.TrimRight(strings.TrimSpace(url), "/")
			if strings.TrimSpace(name) == "" {
				return errors.New("--name must not be empty")
			}
			if url == "" {
				return errors.New("--url must not be empty")
			}
			if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
				return fmt.Errorf("--url %q must start with http:// or https://", url)
			}
			if _, err := client.New(url, token).GetProject(cmd.Context(), name); err != nil {
				return fmt.Errorf("cannot add project %s: %w", name, err)
			}
			cfg, err := cliconfig.Load()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if old, ok := cfg.Get(name); ok {
				if old.URL == url && old.Token == token {
					if !makeDefault || old.Default {
						fmt.Fprintf(out, "Project %s is already configured in %s\n", name, cfg.File())
						return nil
					}
				} else {
					ok, err := confirm(cmd, fmt.Sprintf("Project %s is already configured with another URL or token. Overwrite it?", name), yes, no)
					if err != nil {
						return err
					}
					if !ok {
						fmt.Fprintf(out, "Project %s left unchanged in %s\n", name, cfg.File())
						return nil
					}
				}
			}
			_, existed := cfg.Get(name)
			cfg.Upsert(cliconfig.Project{Name: name, URL: url, Token: token}, makeDefault)
			if err := cfg.Save(); err != nil {
				return err
			}
			verb := "added"
			if existed {
				verb = "updated"
			}
			msg := fmt.Sprintf("Project %s %s", name, verb)
			if p, _ := cfg.Get(name); p != nil && p.Default {
				msg += " (default)"
			}
			fmt.Fprintf(out, "%s; configuration updated at %s\n", msg, cfg.File())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "the name of the project on the server")
	f.StringVar(&url, "url", "", "the server URL, for example http://127.0.0.1:3000")
	f.StringVar(&token, "token", "", "the user's token")
	f.BoolVarP(&yes, "yes", "y", false, "overwrite an existing entry without asking")
	f.BoolVarP(&no, "no", "n", false, "never overwrite an existing entry")
	f.BoolVar(&makeDefault, "default", false, "make this the default project")
	_ = cmd.MarkFlagRequired("name")
	_ = cmd.MarkFlagRequired("url")
	_ = cmd.MarkFlagRequired("token")
	cmd.MarkFlagsMutuallyExclusive("yes", "no")
	return cmd
}

// projectListItem is what `project list --json` prints: never the token.
type projectListItem struct {
	Name    string `json:"name"`
	URL     string `json:"url"`
	Default bool   `json:"default"`
}

func newProjectListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the configured projects",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := cliconfig.Load()
			if err != nil {
				return err
			}
			def, _ := cfg.Default()
			items := []projectListItem{}
			for _, p := range cfg.Projects {
				items = append(items, projectListItem{Name: p.Name, URL: p.URL, Default: def != nil && def.Name == p.Name})
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, items)
			}
			if len(items) == 0 {
				fmt.Fprintf(out, "No projects configured in %s. Add one with `dstack project add`.\n", cfg.File())
				return nil
			}
			rows := make([][]string, 0, len(items))
			for _, it := range items {
				mark := ""
				if it.Default {
					mark = "✓"
				}
				rows = append(rows, []string{it.Name, it.URL, mark})
			}
			return printTable(out, []string{"PROJECT", "URL", "DEFAULT"}, rows)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array of {name, url, default}")
	return cmd
}

func newProjectSetDefaultCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "set-default NAME",
		Short: "Make a configured project the default",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := cliconfig.Load()
			if err != nil {
				return err
			}
			if err := cfg.SetDefault(args[0]); err != nil {
				return notConfigured(cfg, args[0])
			}
			if err := cfg.Save(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Default project is now %s\n", args[0])
			return nil
		},
	}
}

func newProjectDeleteCmd() *cobra.Command {
	var name string
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Remove a project from the CLI config",
		Long: "Remove a project from ~/.dstack/config.yml. The project itself stays on the server.\n" +
			"Asks for confirmation unless -y is given.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if name != "" && name != args[0] {
					return fmt.Errorf("project named twice: %s and --name %s", args[0], name)
				}
				name = args[0]
			}
			if name == "" {
				return errors.New("name the project to delete: dstack project delete NAME")
			}
			cfg, err := cliconfig.Load()
			if err != nil {
				return err
			}
			if _, ok := cfg.Get(name); !ok {
				return notConfigured(cfg, name)
			}
			ok, err := confirm(cmd, fmt.Sprintf("Delete project %s from %s?", name, cfg.File()), yes, false)
			if err != nil {
				return err
			}
			if !ok {
				fmt.Fprintf(cmd.OutOrStdout(), "Project %s left in %s\n", name, cfg.File())
				return nil
			}
			if err := cfg.Delete(name); err != nil {
				return err
			}
			if err := cfg.Save(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Project %s deleted from %s\n", name, cfg.File())
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the project to delete (same as the NAME argument, as in dstack)")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

func notConfigured(cfg *cliconfig.Config, name string) error {
	return fmt.Errorf("project %s is not configured in %s; add it with `dstack project add --name %s --url URL --token TOKEN`",
		name, cfg.File(), name)
}

// currentProject returns the project named by the --project value, or the default one, from the CLI
// config, with a client for its server.
func currentProject(name string) (*cliconfig.Project, *client.Client, error) {
	cfg, err := cliconfig.Load()
	if err != nil {
		return nil, nil, err
	}
	var p *cliconfig.Project
	if name != "" {
		var ok bool
		if p, ok = cfg.Get(name); !ok {
			return nil, nil, notConfigured(cfg, name)
		}
	} else {
		var ok bool
		if p, ok = cfg.Default(); !ok {
			if len(cfg.Projects) > 0 {
				return nil, nil, fmt.Errorf("no default project in %s; pass --project or run `dstack project set-default NAME`", cfg.File())
			}
			return nil, nil, fmt.Errorf("no project configured in %s; run `dstack project add --name NAME --url URL --token TOKEN`, "+
				"or start `dstack server`, which adds its project there", cfg.File())
		}
	}
	return p, client.New(p.URL, p.Token), nil
}
