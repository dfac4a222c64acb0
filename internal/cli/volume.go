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

func newVolumeCmd() *cobra.Command {
	var project string
	cmd := resourceCmd("volume", "List and delete network volumes", "List the project's volumes", &project, (*client.Client).ListVolumes, printVolumes)
	var yes bool
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a volume (on the provider too, unless it was registered by volume_id)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, c, err := currentProject(project)
			if err != nil {
				return err
			}
			return deleteVolume(cmd, c, p.Name, args[0], yes)
		},
	}
	del.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	cmd.AddCommand(del)
	return cmd
}

func deleteVolume(cmd *cobra.Command, c *client.Client, project, name string, yes bool) error {
	if _, err := c.GetVolume(cmd.Context(), project, name); err != nil {
		return err
	}
	ok, err := confirm(cmd, fmt.Sprintf("Delete volume %s?", name), yes, false)
	if err != nil || !ok {
		return err
	}
	if err := c.DeleteVolumes(cmd.Context(), project, []string{name}); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Volume %s deleted\n", name)
	return nil
}

// applyVolume submits a volume configuration and, unless detached, waits until it is active or failed.
func applyVolume(cmd *cobra.Command, c *client.Client, project string, cf *configFile, yes, detach bool) error {
	ctx := cmd.Context()
	conf := cf.Conf
	name, _ := conf["name"].(string)
	if name != "" {
		if v, err := c.GetVolume(ctx, project, name); err == nil {
			fmt.Fprintf(cmd.OutOrStdout(), "Volume %s already exists (%s); delete it first to change it\n", v.Name, v.Status)
			return nil
		}
	}
	ok, err := confirm(cmd, fmt.Sprintf("Create volume %s?", orDash(name)), yes, false)
	if err != nil || !ok {
		return err
	}
	v, err := c.CreateVolume(ctx, project, conf)
	if err != nil {
		return err
	}
	for !detach && (v.Status == "submitted" || v.Status == "provisioning") {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
		if v, err = c.GetVolume(ctx, project, v.Name); err != nil {
			return err
		}
	}
	if err := printVolumes(cmd.OutOrStdout(), []client.Volume{*v}); err != nil {
		return err
	}
	if v.Status == "failed" {
		return fmt.Errorf("volume %s failed: %s", v.Name, deref(v.StatusMessage))
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "(a generated name)"
	}
	return s
}

func printVolumes(w io.Writer, vols []client.Volume) error {
	if len(vols) == 0 {
		fmt.Fprintln(w, "No volumes. Create one with `dstack apply -f volume.dstack.yml` (type: volume).")
		return nil
	}
	var rows [][]string
	for _, v := range vols {
		region, size, price := v.Configuration.Region, "-", "-"
		if pd := v.ProvisioningData; pd != nil {
			size = strconv.Itoa(pd.SizeGB) + "GB"
			if pd.AvailabilityZone != nil && *pd.AvailabilityZone != "" {
				region += " (" + *pd.AvailabilityZone + ")"
			}
			if pd.Price != nil && *pd.Price > 0 {
				price = "$" + strconv.FormatFloat(*pd.Price, 'f', 2, 64) + "/month"
			}
		}
		var attached []string
		for _, a := range v.Attachments {
			attached = append(attached, a.Instance.Name)
		}
		status := v.Status
		if m := deref(v.StatusMessage); m != "" {
			status += ": " + m
		}
		rows = append(rows, []string{v.Name, v.Configuration.Backend, region, size, price, orNone(strings.Join(attached, ", ")), status, ago(v.CreatedAt)})
	}
	return printTable(w, []string{"NAME", "BACKEND", "REGION", "SIZE", "PRICE", "ATTACHED", "STATUS", "CREATED"}, rows)
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
