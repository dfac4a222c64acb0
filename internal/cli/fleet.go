package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dstackgo/dstack/internal/client"
)

func newFleetCmd() *cobra.Command {
	var (
		project         string
		verbose, asJSON bool
	)
	list := func(cmd *cobra.Command, _ []string) error {
		p, c, err := currentProject(project)
		if err != nil {
			return err
		}
		fleets, err := c.ListFleets(cmd.Context(), p.Name)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(cmd.OutOrStdout(), fleets)
		}
		return printFleets(cmd.OutOrStdout(), fleets, verbose)
	}
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "List and delete fleets",
		Args:  cobra.NoArgs,
		RunE:  list,
	}
	cmd.PersistentFlags().StringVar(&project, "project", "", "project (default: the default project)")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "show terminated instances too")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	listCmd := &cobra.Command{Use: "list", Short: "List the project's fleets and their instances", Args: cobra.NoArgs, RunE: list}
	listCmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "show terminated instances too")
	listCmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(listCmd, newFleetGetCmd(&project), newFleetDeleteCmd(&project))
	return cmd
}

func newFleetGetCmd(project *string) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a fleet",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, c, err := currentProject(*project)
			if err != nil {
				return err
			}
			if asJSON {
				raw, err := c.GetFleetRaw(cmd.Context(), p.Name, args[0])
				if err != nil {
					return err
				}
				var v any
				_ = unmarshalJSON(raw, &v)
				return printJSON(cmd.OutOrStdout(), v)
			}
			f, err := c.GetFleet(cmd.Context(), p.Name, args[0])
			if err != nil {
				return err
			}
			return printFleets(cmd.OutOrStdout(), []client.Fleet{*f}, true)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newFleetDeleteCmd(project *string) *cobra.Command {
	var (
		nums []int
		yes  bool
	)
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a fleet, or some of its instances (-i)",
		Long: "Delete a fleet: its instances are terminated (the shim of SSH fleet hosts is stopped; the hosts\n" +
			"themselves stay as they are) and then the fleet. With -i, only those instances are deleted.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, c, err := currentProject(*project)
			if err != nil {
				return err
			}
			name := args[0]
			if _, err := c.GetFleet(cmd.Context(), p.Name, name); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(nums) > 0 {
				ok, err := confirm(cmd, fmt.Sprintf("Delete instances %v of fleet %s?", nums, name), yes, false)
				if err != nil || !ok {
					return err
				}
				if err := c.DeleteFleetInstances(cmd.Context(), p.Name, name, nums); err != nil {
					return err
				}
				fmt.Fprintf(out, "Instances %v of fleet %s deleted\n", nums, name)
				return nil
			}
			ok, err := confirm(cmd, fmt.Sprintf("Delete fleet %s?", name), yes, false)
			if err != nil || !ok {
				return err
			}
			if err := c.DeleteFleets(cmd.Context(), p.Name, []string{name}); err != nil {
				return err
			}
			fmt.Fprintf(out, "Fleet %s deleted\n", name)
			return nil
		},
	}
	cmd.Flags().IntSliceVarP(&nums, "instance", "i", nil, "instance number to delete (repeatable)")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

// printFleets prints one row per instance (a fleet without instances gets its own row), with an
// ERROR column when any instance has a problem to show: why it is not ready or not reachable, or
// why it was terminated.
func printFleets(w io.Writer, fleets []client.Fleet, verbose bool) error {
	if len(fleets) == 0 {
		fmt.Fprintln(w, "No fleets. Create one with `dstack apply -f fleet.dstack.yml`.")
		return nil
	}
	var rows [][]string
	withErrors := false
	for _, f := range fleets {
		shown := 0
		for _, i := range f.Instances {
			if i.Status == "terminated" && !verbose {
				continue
			}
			backend := deref(i.Backend)
			if backend == "remote" {
				backend = "ssh"
			}
			resources := "-"
			if i.InstanceType != nil && i.Status != "pending" && i.Status != "provisioning" {
				resources = resourcesText(i.InstanceType.Resources)
			}
			price := "-"
			if i.Price != nil {
				price = "$" + strconv.FormatFloat(*i.Price, 'f', -1, 64)
			}
			status := i.Status
			if i.Unreachable {
				status += " (unreachable)"
			}
			errText := deref(i.StatusMessage)
			if r := deref(i.TerminationReason); r != "" && i.Status == "terminated" {
				errText = strings.TrimSpace(r + " " + deref(i.TerminationReasonMessage))
			}
			withErrors = withErrors || errText != ""
			name := ""
			if shown == 0 {
				name = f.Name
			}
			host := strconv.Itoa(i.InstanceNum)
			if h := deref(i.Hostname); h != "" {
				host += " " + h
			}
			rows = append(rows, []string{name, host, backend, resources, price, status, ago(i.Created), errText})
			shown++
		}
		if shown == 0 {
			rows = append(rows, []string{f.Name, "-", "-", "-", "-", f.Status, ago(f.CreatedAt), deref(f.StatusMessage)})
		}
	}
	headers := []string{"FLEET", "INSTANCE", "BACKEND", "RESOURCES", "PRICE", "STATUS", "CREATED", "ERROR"}
	if !withErrors {
		headers = headers[:len(headers)-1]
		for i := range rows {
			rows[i] = rows[i][:len(rows[i])-1]
		}
	}
	return printTable(w, headers, rows)
}

// ago formats a time as dstack's CLI does: "5 sec ago", "3 mins ago", "2 hours ago", or the date.
func ago(t time.Time) string {
	d := time.Since(t)
	switch {
	case t.IsZero():
		return "-"
	case d < time.Minute:
		return fmt.Sprintf("%d sec ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d mins ago", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%d hours ago", int(d.Hours()))
	}
	return t.Local().Format("2006-01-02 15:04")
}
