package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/dstackgo/dstack/internal/client"
	"github.com/dstackgo/dstack/internal/resources"
	"github.com/dstackgo/dstack/internal/schema"
)

// configFile is a parsed .dstack.yml.
type configFile struct {
	Path string
	Type string // fleet, volume, gateway, task, dev-environment, service
	Conf map[string]any
}

// loadConfigFile reads a configuration file; an empty path looks for .dstack.yml.
func loadConfigFile(path string) (*configFile, error) {
	if path == "" {
		for _, p := range []string{".dstack.yml", ".dstack.yaml"} {
			if _, err := os.Stat(p); err == nil {
				path = p
				break
			}
		}
		if path == "" {
			return nil, errors.New("no configuration file: pass -f FILE (or create .dstack.yml)")
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var conf map[string]any
	if err := yaml.Unmarshal(data, &conf); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if conf == nil {
		return nil, fmt.Errorf("%s is empty", path)
	}
	typ, _ := conf["type"].(string)
	switch typ {
	case "fleet", "task", "dev-environment", "service", "volume", "gateway":
	case "":
		return nil, fmt.Errorf("%s: `type` is missing (fleet, volume, gateway, task, dev-environment or service)", path)
	default:
		return nil, fmt.Errorf("%s: type %q is not supported by this CLI (fleet, volume, gateway, task, dev-environment or service)", path, typ)
	}
	if r, ok := conf["resources"]; ok && r != nil {
		// Send the full object form, as dstack's CLI does.
		spec, err := resources.Parse(toJSONValue(r))
		if err != nil {
			return nil, fmt.Errorf("%s: resources: %w", path, err)
		}
		var full any
		data, _ := json.Marshal(spec)
		_ = json.Unmarshal(data, &full)
		conf["resources"] = full
	}
	if p, ok := conf["python"]; ok && p != nil {
		conf["python"] = fmt.Sprint(p) // 3.10 read as a number would lose its 0
	}
	return &configFile{Path: path, Type: typ, Conf: conf}, nil
}

// toJSONValue turns a decoded YAML value into what encoding/json would decode (float64 numbers).
func toJSONValue(v any) any {
	data, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(data, &out)
	return out
}

func defaultProfile() map[string]any { return map[string]any{"name": "default", "default": false} }

// fleetSpec builds the FleetSpec of a fleet configuration, reading its identity files: the server
// gets the keys, as with dstack's CLI.
func (c *configFile) fleetSpec() (map[string]any, error) {
	conf := c.Conf
	base := filepath.Dir(c.Path)
	if sc, ok := conf["ssh_config"].(map[string]any); ok {
		if err := addSSHKey(sc, base); err != nil {
			return nil, fmt.Errorf("ssh_config: %w", err)
		}
		if pj, ok := sc["proxy_jump"].(map[string]any); ok {
			if err := addSSHKey(pj, base); err != nil {
				return nil, fmt.Errorf("ssh_config.proxy_jump: %w", err)
			}
		}
		hosts, _ := sc["hosts"].([]any)
		for i, h := range hosts {
			hm, ok := h.(map[string]any)
			if !ok {
				continue
			}
			if err := addSSHKey(hm, base); err != nil {
				return nil, fmt.Errorf("ssh_config.hosts[%d]: %w", i, err)
			}
			if pj, ok := hm["proxy_jump"].(map[string]any); ok {
				if err := addSSHKey(pj, base); err != nil {
					return nil, fmt.Errorf("ssh_config.hosts[%d].proxy_jump: %w", i, err)
				}
			}
		}
	}
	return map[string]any{"configuration": conf, "configuration_path": c.Path, "profile": defaultProfile()}, nil
}

// addSSHKey reads m["identity_file"] into m["ssh_key"] = {public, private}.
func addSSHKey(m map[string]any, base string) error {
	path, _ := m["identity_file"].(string)
	if path == "" {
		return nil
	}
	p := schema.ExpandHome(path)
	if !filepath.IsAbs(p) {
		if _, err := os.Stat(p); err != nil {
			p = filepath.Join(base, p)
		}
	}
	private, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("identity_file: %w", err)
	}
	public, err := os.ReadFile(p + ".pub")
	if err != nil {
		signer, perr := ssh.ParsePrivateKey(private)
		if perr != nil {
			return fmt.Errorf("identity_file %s: %w", path, perr)
		}
		public = ssh.MarshalAuthorizedKey(signer.PublicKey())
	}
	m["ssh_key"] = map[string]any{"public": string(public), "private": string(private)}
	return nil
}

// runSpec builds the RunSpec of a run configuration (a run without a repository).
func (c *configFile) runSpec(name string) map[string]any {
	conf := c.Conf
	if name != "" {
		conf["name"] = name
	}
	var runName any
	if n, ok := conf["name"].(string); ok && n != "" {
		runName = n
	}
	return map[string]any{"run_name": runName, "repo_id": "none", "repo_data": map[string]any{"repo_type": "virtual"},
		"repo_code_hash": nil, "repo_dir": nil, "file_archives": []any{}, "working_dir": nil, "configuration_path": c.Path,
		"configuration": conf, "profile": defaultProfile(), "ssh_key_pub": nil}
}

func newApplyCmd() *cobra.Command {
	var (
		file, project, name string
		yes, detach, force  bool
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Apply a configuration: create or update a fleet, or submit a run",
		Long: "Apply a .dstack.yml configuration. A fleet (type: fleet) is created or updated; with ssh_config\n" +
			"its hosts are provisioned over SSH. A run (task, dev-environment, service) is planned, then\n" +
			"submitted; unless -d is given, its logs are streamed until it finishes (Ctrl-C detaches, the run\n" +
			"goes on).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cf, err := loadConfigFile(file)
			if err != nil {
				return err
			}
			p, c, err := currentProject(project)
			if err != nil {
				return err
			}
			switch cf.Type {
			case "fleet":
				return applyFleet(cmd, c, p.Name, cf, yes, detach, force)
			case "volume":
				return applyVolume(cmd, c, p.Name, cf, yes, detach)
			case "gateway":
				return applyGateway(cmd, c, p.Name, cf, yes, detach)
			}
			return applyRun(cmd, c, p.Name, cf, name, yes, detach, force)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "configuration file (default .dstack.yml)")
	cmd.Flags().StringVar(&project, "project", "", "project (default: the default project)")
	cmd.Flags().StringVarP(&name, "name", "n", "", "run name (overrides the configuration's)")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "do not wait: exit once submitted")
	cmd.Flags().BoolVar(&force, "force", false, "apply even if the resource changed since the plan")
	return cmd
}

func applyFleet(cmd *cobra.Command, c *client.Client, project string, cf *configFile, yes, detach, force bool) error {
	ctx := cmd.Context()
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	spec, err := cf.fleetSpec()
	if err != nil {
		return err
	}
	plan, err := c.GetFleetPlan(ctx, project, spec)
	if err != nil {
		return err
	}
	name, _ := cf.Conf["name"].(string)
	rows := [][]string{{"Project", plan.ProjectName}, {"User", plan.User}, {"Configuration", cf.Path}, {"Type", "fleet"}}
	if name != "" {
		rows = append(rows, []string{"Fleet", name})
	}
	if sc, ok := cf.Conf["ssh_config"].(map[string]any); ok {
		hosts, _ := sc["hosts"].([]any)
		var names []string
		for _, h := range hosts {
			if hm, ok := h.(map[string]any); ok {
				names = append(names, fmt.Sprint(hm["hostname"]))
			} else {
				names = append(names, fmt.Sprint(h))
			}
		}
		rows = append(rows, []string{"Hosts", strings.Join(names, ", ")})
	}
	printProperties(out, rows)
	update := len(plan.CurrentResource) > 0 && string(plan.CurrentResource) != "null"
	if update {
		var cur struct {
			Spec json.RawMessage `json:"spec"`
		}
		_ = json.Unmarshal(plan.CurrentResource, &cur)
		if sameJSON(cur.Spec, plan.EffectiveSpec, "autocreated") {
			fmt.Fprintln(out, "\nNo configuration changes detected.")
			return nil
		}
	}
	question := "Create the fleet?"
	if update {
		question = fmt.Sprintf("Update fleet %s?", name)
	}
	ok, err := confirm(cmd, question, yes, false)
	if err != nil || !ok {
		return err
	}
	f, err := c.ApplyFleet(ctx, project, spec, plan.CurrentResource, force)
	if err != nil {
		return err
	}
	if detach {
		fmt.Fprintf(out, "Fleet %s submitted; its hosts are provisioned in the background. `dstack fleet` shows them.\n", f.Name)
		return nil
	}
	fmt.Fprintf(errOut, "Provisioning fleet %s (Ctrl-C to stop waiting; provisioning goes on)...\n", f.Name)
	last := ""
	for {
		state := fleetState(f)
		if state != last {
			if err := printFleets(out, []client.Fleet{*f}, false); err != nil {
				return err
			}
			last = state
		}
		if fleetSettled(f) {
			return nil
		}
		select {
		case <-ctx.Done():
			fmt.Fprintln(errOut, "\nFleet provisioning will continue in the background.")
			return nil
		case <-time.After(500 * time.Millisecond):
		}
		if f, err = c.GetFleet(ctx, project, f.Name); err != nil {
			if ctx.Err() != nil {
				fmt.Fprintln(errOut, "\nFleet provisioning will continue in the background.")
				return nil
			}
			return err
		}
	}
}

// fleetState summarises a fleet's instances, to print only changes.
func fleetState(f *client.Fleet) string {
	var b strings.Builder
	for _, i := range f.Instances {
		fmt.Fprintf(&b, "%s %s %v;", i.Name, i.Status, deref(i.StatusMessage))
	}
	return b.String()
}

// fleetSettled reports that no instance is still being provisioned.
func fleetSettled(f *client.Fleet) bool {
	for _, i := range f.Instances {
		if i.Status == "pending" || i.Status == "provisioning" {
			return false
		}
	}
	return true
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// sameJSON compares two JSON documents, ignoring top-level keys in skip.
func sameJSON(a, b json.RawMessage, skip ...string) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	for _, m := range []any{x, y} {
		if mm, ok := m.(map[string]any); ok {
			for _, k := range skip {
				delete(mm, k)
			}
		}
	}
	return reflect.DeepEqual(x, y)
}

func printProperties(w io.Writer, rows [][]string) {
	width := 0
	for _, r := range rows {
		width = max(width, len(r[0]))
	}
	for _, r := range rows {
		fmt.Fprintf(w, " %-*s  %s\n", width, r[0], r[1])
	}
}

func applyRun(cmd *cobra.Command, c *client.Client, project string, cf *configFile, name string, yes, detach, force bool) error {
	ctx := cmd.Context()
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	if err := c.InitRepo(ctx, project); err != nil {
		return err
	}
	plan, err := c.GetRunPlan(ctx, project, cf.runSpec(name), 3)
	if err != nil {
		return err
	}
	printRunPlan(out, plan, cf)
	fleets, err := c.ListFleets(ctx, project)
	if err != nil {
		return err
	}
	if len(fleets) == 0 && (len(plan.JobPlans) == 0 || len(plan.JobPlans[0].Offers) == 0) {
		fmt.Fprintln(errOut, "\nThe project has no fleets and no backend offers: create a fleet (dstack apply -f fleet.dstack.yml) or add a backend for the run to have a place to run.")
	}
	if plan.Action == "update" && !force {
		fmt.Fprintln(errOut, "\nA run of this name is active; it is not updated in place by this server. Stop it first.")
	}
	ok, err := confirm(cmd, "Submit a new run?", yes, false)
	if err != nil || !ok {
		return err
	}
	run, err := c.ApplyRun(ctx, project, plan, force)
	if err != nil {
		return err
	}
	runName := run.Name()
	if detach {
		fmt.Fprintf(out, "Run %s submitted, detaching.\n", runName)
		return nil
	}
	fmt.Fprintf(errOut, "Run %s submitted (Ctrl-C detaches; the run goes on).\n", runName)
	return followRun(cmd, c, project, runName, true)
}

func printRunPlan(w io.Writer, plan *client.RunPlan, cf *configFile) {
	var spec struct {
		Configuration struct {
			Resources json.RawMessage `json:"resources"`
		} `json:"configuration"`
	}
	_ = json.Unmarshal(plan.EffectiveRunSpec, &spec)
	res := "-"
	if r, err := resources.Parse(toJSONValue(json.RawMessage(spec.Configuration.Resources))); err == nil {
		res = r.String()
	}
	rows := [][]string{{"Project", plan.ProjectName}, {"User", plan.User}, {"Configuration", cf.Path}, {"Type", cf.Type},
		{"Resources", res}}
	for _, k := range []string{"spot_policy", "max_price", "retry", "max_duration", "idle_duration"} {
		if v, ok := cf.Conf[k]; ok && v != nil {
			rows = append(rows, []string{strings.ReplaceAll(strings.ToUpper(k[:1])+k[1:], "_", " "), fmt.Sprint(v)})
		}
	}
	printProperties(w, rows)
	if len(plan.JobPlans) == 0 {
		return
	}
	jp := plan.JobPlans[0]
	fmt.Fprintln(w)
	if len(jp.Offers) == 0 {
		fmt.Fprintln(w, "No offers: no fleet instance and no backend offer matches the requirements.")
		if jp.Explanation != "" {
			fmt.Fprintln(w, jp.Explanation)
		}
		return
	}
	rows = nil
	for i, o := range jp.Offers {
		backend := o.Backend
		if backend == "remote" {
			backend = "ssh"
		}
		name := o.Instance.Name
		if o.TotalBlocks > 1 {
			name += fmt.Sprintf(" (%d/%d)", o.Blocks, o.TotalBlocks)
		}
		rows = append(rows, []string{fmt.Sprint(i + 1), fmt.Sprintf("%s (%s)", backend, o.Region), resourcesText(o.Instance.Resources),
			name, fmt.Sprintf("$%g", o.Price), o.Availability})
	}
	_ = printTable(w, []string{" #", "BACKEND", "RESOURCES", "INSTANCE TYPE", "PRICE", ""}, rows)
	maxPrice := 0.0
	if jp.MaxPrice != nil {
		maxPrice = *jp.MaxPrice
	}
	fmt.Fprintf(w, "Shown %d of %d offers, $%g max\n", len(jp.Offers), jp.TotalOffers, maxPrice)
}

// resourcesText describes instance resources as dstack does: 2xCPU, 8GB, 1xA100 (80GB), 100.0GB (disk).
func resourcesText(r client.Resources) string {
	parts := []string{fmt.Sprintf("%dxCPU", r.CPUs), fmt.Sprintf("%gGB", math.Round(float64(r.MemoryMiB)/1024*10)/10)}
	if n := len(r.Gpus); n > 0 {
		parts = append(parts, fmt.Sprintf("%dx%s (%dGB)", n, r.Gpus[0].Name, r.Gpus[0].MemoryMiB/1024))
	}
	if r.Disk.SizeMiB > 0 {
		parts = append(parts, fmt.Sprintf("%.1fGB (disk)", float64(r.Disk.SizeMiB)/1024))
	}
	return strings.Join(parts, ", ")
}

func newDeleteCmd() *cobra.Command {
	var (
		file, project string
		yes           bool
	)
	cmd := &cobra.Command{
		Use:   "delete -f FILE",
		Short: "Delete the fleet, volume or gateway a configuration file describes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cf, err := loadConfigFile(file)
			if err != nil {
				return err
			}
			if cf.Type != "fleet" && cf.Type != "volume" && cf.Type != "gateway" {
				return fmt.Errorf("%s is a %s configuration: stop runs with `dstack stop NAME`", cf.Path, cf.Type)
			}
			name, _ := cf.Conf["name"].(string)
			if name == "" {
				return fmt.Errorf("%s has no name: delete it with `dstack %s delete NAME`", cf.Path, cf.Type)
			}
			p, c, err := currentProject(project)
			if err != nil {
				return err
			}
			switch cf.Type {
			case "volume":
				return deleteVolume(cmd, c, p.Name, name, yes)
			case "gateway":
				return deleteGateway(cmd, c, p.Name, name, yes)
			}
			if _, err := c.GetFleet(cmd.Context(), p.Name, name); err != nil {
				return err
			}
			ok, err := confirm(cmd, fmt.Sprintf("Delete fleet %s?", name), yes, false)
			if err != nil || !ok {
				return err
			}
			if err := c.DeleteFleets(cmd.Context(), p.Name, []string{name}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Fleet %s deleted\n", name)
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "configuration file (default .dstack.yml)")
	cmd.Flags().StringVar(&project, "project", "", "project (default: the default project)")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}
