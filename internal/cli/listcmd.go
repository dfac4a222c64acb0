package cli

import (
	"context"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/dstackgo/dstack/internal/client"
)

// resourceCmd builds `dstack NOUN` and `dstack NOUN list` for a project resource (volumes,
// gateways): both list it, as a table or --json, refreshed every 2 seconds with --watch. project is
// the --project flag, shared with the subcommands the caller adds; list is a client method such as
// (*client.Client).ListVolumes.
func resourceCmd[T any](use, short, listShort string, project *string,
	list func(c *client.Client, ctx context.Context, project string) ([]T, error), print func(io.Writer, []T) error) *cobra.Command {
	var asJSON, watch bool
	run := func(cmd *cobra.Command, _ []string) error {
		p, c, err := currentProject(*project)
		if err != nil {
			return err
		}
		for {
			items, err := list(c, cmd.Context(), p.Name)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), items)
			}
			if err := print(cmd.OutOrStdout(), items); err != nil || !watch {
				return err
			}
			select {
			case <-cmd.Context().Done():
				return nil
			case <-time.After(2 * time.Second):
			}
		}
	}
	cmd := &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs, RunE: run}
	cmd.PersistentFlags().StringVar(project, "project", "", "project (default: the default project)")
	for _, c := range []*cobra.Command{cmd, {Use: "list", Short: listShort, Args: cobra.NoArgs, RunE: run}} {
		c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
		c.Flags().BoolVarP(&watch, "watch", "w", false, "refresh every 2 seconds")
		if c != cmd {
			cmd.AddCommand(c)
		}
	}
	return cmd
}
