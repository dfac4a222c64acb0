package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/dstackgo/dstack/internal/client"
)

// newGatewayCmd is `dstack gateway [list | create | delete | update]`.
func newGatewayCmd() *cobra.Command {
	var project string
	cmd := resourceCmd("gateway", "List, create, update and delete gateways", "List the project's gateways", &project, (*client.Client).ListGateways, printGateways)

	var (
		backend, region, domain, name string
		setDefault, yes, detach       bool
	)
	create := &cobra.Command{
		Use:   "create --backend B --region R [--domain D]",
		Short: "Create a gateway (the same as dstack apply with type: gateway)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, c, err := currentProject(project)
			if err != nil {
				return err
			}
			conf := map[string]any{"type": "gateway", "backend": backend, "region": region}
			if domain != "" {
				conf["domain"] = domain
			}
			if name != "" {
				conf["name"] = name
			}
			if setDefault {
				conf["default"] = true
			}
			return applyGateway(cmd, c, p.Name, &configFile{Type: "gateway", Conf: conf}, true, detach)
		},
	}
	create.Flags().StringVar(&backend, "backend", "", "backend: aws, azure, gcp or kubernetes")
	create.Flags().StringVar(&region, "region", "", "region of the gateway machine")
	create.Flags().StringVar(&domain, "domain", "", "wildcard domain: services are served at <run>.<domain>")
	create.Flags().StringVar(&name, "name", "", "gateway name (default: generated)")
	create.Flags().BoolVar(&setDefault, "set-default", false, "make it the project's default gateway")
	create.Flags().BoolVarP(&detach, "detach", "d", false, "do not wait for the gateway to be running")
	_ = create.MarkFlagRequired("backend")
	_ = create.MarkFlagRequired("region")

	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a gateway and its machine",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, c, err := currentProject(project)
			if err != nil {
				return err
			}
			return deleteGateway(cmd, c, p.Name, args[0], yes)
		},
	}
	del.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")

	var updDefault bool
	var updDomain string
	update := &cobra.Command{
		Use:   "update NAME [--set-default] [--domain D]",
		Short: "Make a gateway the default or change its wildcard domain",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, c, err := currentProject(project)
			if err != nil {
				return err
			}
			if !updDefault && updDomain == "" {
				return fmt.Errorf("nothing to update: pass --set-default and/or --domain")
			}
			if updDefault {
				if err := c.SetDefaultGateway(cmd.Context(), p.Name, args[0]); err != nil {
					return err
				}
			}
			if updDomain != "" {
				if err := c.SetGatewayDomain(cmd.Context(), p.Name, args[0], updDomain); err != nil {
					return err
				}
			}
			g, err := c.GetGateway(cmd.Context(), p.Name, args[0])
			if err != nil {
				return err
			}
			return printGateways(cmd.OutOrStdout(), []client.Gateway{*g})
		},
	}
	update.Flags().BoolVar(&updDefault, "set-default", false, "make it the project's default gateway")
	update.Flags().StringVar(&updDomain, "domain", "", "new wildcard domain")
	cmd.AddCommand(create, del, update)
	return cmd
}

func deleteGateway(cmd *cobra.Command, c *client.Client, project, name string, yes bool) error {
	if _, err := c.GetGateway(cmd.Context(), project, name); err != nil {
		return err
	}
	ok, err := confirm(cmd, fmt.Sprintf("Delete gateway %s?", name), yes, false)
	if err != nil || !ok {
		return err
	}
	if err := c.DeleteGateways(cmd.Context(), project, []string{name}); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Gateway %s deleted\n", name)
	return nil
}

// applyGateway submits a gateway configuration and, unless detached, waits until it is running or
// failed, then says where to point the wildcard domain.
func applyGateway(cmd *cobra.Command, c *client.Client, project string, cf *configFile, yes, detach bool) error {
	ctx := cmd.Context()
	name, _ := cf.Conf["name"].(string)
	if name != "" {
		if g, err := c.GetGateway(ctx, project, name); err == nil {
			fmt.Fprintf(cmd.OutOrStdout(), "Gateway %s already exists (%s); delete it first to change it, or use dstack gateway update\n", g.Name, g.Status)
			return nil
		}
	}
	ok, err := confirm(cmd, fmt.Sprintf("Create gateway %s?", orDash(name)), yes, false)
	if err != nil || !ok {
		return err
	}
	g, err := c.CreateGateway(ctx, project, cf.Conf)
	if err != nil {
		return err
	}
	for !detach && (g.Status == "submitted" || g.Status == "provisioning") {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
		if g, err = c.GetGateway(ctx, project, g.Name); err != nil {
			return err
		}
	}
	if err := printGateways(cmd.OutOrStdout(), []client.Gateway{*g}); err != nil {
		return err
	}
	if g.Status == "failed" {
		return fmt.Errorf("gateway %s failed: %s", g.Name, deref(g.StatusMessage))
	}
	if g.Status == "running" && g.Hostname != nil {
		domain := "<your domain>"
		if g.WildcardDomain != nil {
			domain = *g.WildcardDomain
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Point the DNS record *.%s at %s; services are then served at https://<run name>.%s\n",
			domain, *g.Hostname, domain)
	}
	return nil
}

func printGateways(w io.Writer, gws []client.Gateway) error {
	if len(gws) == 0 {
		fmt.Fprintln(w, "No gateways. Create one with `dstack apply -f gateway.dstack.yml` (type: gateway).")
		return nil
	}
	var rows [][]string
	for _, g := range gws {
		def := ""
		if g.Default {
			def = "✓"
		}
		status := g.Status
		if m := deref(g.StatusMessage); m != "" {
			status += ": " + m
		}
		rows = append(rows, []string{g.Name, g.Backend, g.Region, orNone(deref(g.Hostname)), orNone(deref(g.WildcardDomain)),
			def, status, ago(g.CreatedAt)})
	}
	return printTable(w, []string{"NAME", "BACKEND", "REGION", "HOSTNAME", "DOMAIN", "DEFAULT", "STATUS", "CREATED"}, rows)
}
