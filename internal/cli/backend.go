package cli

import (
	"fmt"

	"github.com/dstackgo/dstack/internal/client"
	"github.com/spf13/cobra"
)

// newBackendCmd is `dstack backend`: the backends of a project on the server.
func newBackendCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backend",
		Short: "Inspect the backends of a project",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newBackendListCmd())
	return cmd
}

func newBackendListCmd() *cobra.Command {
	var project string
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the project's backends and whether their credentials work",
		Long: "List the backends configured in the project, each with the result of the server's credential\n" +
			"check: valid, invalid (MESSAGE says why) or unchecked.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, c, err := currentProject(project)
			if err != nil {
				return err
			}
			proj, err := c.GetProject(cmd.Context(), p.Name)
			if err != nil {
				return err
			}
			backends := proj.Backends
			if backends == nil {
				backends = []client.Backend{}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, backends)
			}
			if len(backends) == 0 {
				fmt.Fprintf(out, "No backends configured in project %s.\n", p.Name)
				return nil
			}
			rows := make([][]string, 0, len(backends))
			for _, b := range backends {
				rows = append(rows, []string{b.Name, b.Status, b.StatusMessage})
			}
			return printTable(out, []string{"TYPE", "STATUS", "MESSAGE"}, rows)
		},
	}
	cmd.Flags().StringVar(&project, "project", "", "the project (default: the default project of ~/.dstack/config.yml)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the backends as JSON")
	return cmd
}
