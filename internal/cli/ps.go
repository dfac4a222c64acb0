package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/dstackgo/dstack/internal/client"
)

func newPsCmd() *cobra.Command {
	var (
		project              string
		all, verbose, asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "ps",
		Short: "List the project's runs (active ones; -a for all)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, c, err := currentProject(project)
			if err != nil {
				return err
			}
			runs, err := c.ListRuns(cmd.Context(), p.Name, all)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), runs)
			}
			return printRuns(cmd.OutOrStdout(), runs, verbose)
		},
	}
	cmd.Flags().StringVar(&project, "project", "", "project (default: the default project)")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "show finished runs too")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "show why runs failed")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printRuns prints a row per run and, for runs of several jobs, a row per job.
func printRuns(w io.Writer, runs []client.Run, verbose bool) error {
	if len(runs) == 0 {
		fmt.Fprintln(w, "No runs. Submit one with `dstack apply -f task.dstack.yml`.")
		return nil
	}
	headers := []string{"NAME", "BACKEND", "RESOURCES", "PRICE", "STATUS", "SUBMITTED"}
	if verbose {
		headers = append(headers, "ERROR")
	}
	var rows [][]string
	for _, r := range runs {
		row := func(name string, sub *client.JobSubmission, status string) []string {
			backend, res, price := "-", "-", "-"
			errText := ""
			if sub != nil {
				if jpd := sub.JobProvisioningData; jpd != nil {
					backend = jpd.Backend
					if backend == "remote" {
						backend = "ssh"
					}
					backend += " (" + jpd.Region + ")"
					res = resourcesText(jpd.InstanceType.Resources)
					price = "$" + strconv.FormatFloat(jpd.Price, 'f', -1, 64)
				}
				if status == "failed" && sub.ExitStatus != nil {
					status = fmt.Sprintf("exited (%d)", *sub.ExitStatus)
				}
				errText = deref(sub.TerminationReason)
				if m := deref(sub.TerminationReasonMessage); m != "" && status != "done" {
					errText += ": " + m
				}
			}
			out := []string{name, backend, res, price, status, ago(r.SubmittedAt)}
			if verbose {
				out = append(out, errText)
			}
			return out
		}
		if len(r.Jobs) <= 1 {
			status := r.Status
			if sub := r.LatestJobSubmission; sub != nil && (r.Status == "running" || r.Status == "failed") {
				status = sub.Status
			}
			rows = append(rows, row(r.Name(), r.LatestJobSubmission, status))
			continue
		}
		rows = append(rows, []string{r.Name(), "", "", "", r.Status, ago(r.SubmittedAt)})
		if verbose {
			rows[len(rows)-1] = append(rows[len(rows)-1], "")
		}
		for _, j := range r.Jobs {
			if n := len(j.JobSubmissions); n > 0 {
				sub := j.JobSubmissions[n-1]
				rows = append(rows, row("  "+j.JobSpec.JobName, &sub, sub.Status))
			}
		}
	}
	return printTable(w, headers, rows)
}

func unmarshalJSON(data []byte, v any) error { return json.Unmarshal(data, v) }
