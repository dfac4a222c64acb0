package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newStopCmd() *cobra.Command {
	var (
		project    string
		abort, yes bool
	)
	cmd := &cobra.Command{
		Use:   "stop RUN",
		Short: "Stop a run (-x aborts it: no graceful stop period)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, c, err := currentProject(project)
			if err != nil {
				return err
			}
			name := args[0]
			if _, err := c.GetRun(cmd.Context(), p.Name, name); err != nil {
				return err
			}
			verb := "Stop"
			if abort {
				verb = "Abort"
			}
			ok, err := confirm(cmd, fmt.Sprintf("%s run %s?", verb, name), yes, false)
			if err != nil || !ok {
				return err
			}
			if err := c.StopRuns(cmd.Context(), p.Name, []string{name}, abort); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Run %s is stopping\n", name)
			return nil
		},
	}
	cmd.Flags().StringVar(&project, "project", "", "project (default: the default project)")
	cmd.Flags().BoolVarP(&abort, "abort", "x", false, "abort: stop at once, without the graceful stop period")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}
