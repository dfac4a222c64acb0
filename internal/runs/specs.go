package runs

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/resources"
)

// DefaultImage is the image of a run configuration without `image`, as in dstack 0.21.
const DefaultImage = "dstackai/base:0.15-base-ubuntu24.04"

// Defaults of a job spec (dstack 0.21).
const (
	defaultStopDuration = 300
	repoDir             = "/workflow"
)

// Normalise fills the defaults of a run spec as received, as dstack's model does.
func Normalise(spec models.RunSpec) models.RunSpec {
	if spec.FileArchives == nil {
		spec.FileArchives = []any{}
	}
	return spec
}

// EffectiveSpec is the run spec the server runs: the request's with dstack's defaults filled in
// (what get_plan shows as effective_run_spec and what a run stores).
func EffectiveSpec(spec models.RunSpec, userPublicKey string) models.RunSpec {
	data, _ := json.Marshal(spec)
	var out models.RunSpec
	_ = json.Unmarshal(data, &out) // a deep copy
	if out.RepoID == nil {
		none := "none"
		out.RepoID = &none
	}
	if out.RepoData == nil {
		out.RepoData = map[string]any{"repo_type": "virtual"}
	}
	if out.FileArchives == nil {
		out.FileArchives = []any{}
	}
	c := out.Configuration.Common()
	if c.Priority == nil {
		zero := 0
		c.Priority = &zero
	}
	if g := c.Resources.GPU; g != nil && g.Vendor == nil {
		nvidia := "nvidia"
		g.Vendor = &nvidia
	}
	if out.SSHKeyPub == nil && userPublicKey != "" {
		out.SSHKeyPub = &userPublicKey
	}
	return out
}

// Check refuses run specs the server cannot run.
func Check(spec models.RunSpec) error {
	cfg := spec.Configuration
	if cfg.Task == nil && cfg.Service == nil && cfg.DevEnvironment == nil {
		return errors.New("configuration: unknown type")
	}
	c := cfg.Common()
	if cfg.Task != nil && len(cfg.Task.Commands) == 0 && c.Entrypoint == nil {
		return errors.New("a task needs commands (or an entrypoint)")
	}
	if cfg.Service != nil && len(cfg.Service.Commands) == 0 && c.Entrypoint == nil && c.Image == nil {
		return errors.New("a service needs commands, an entrypoint or an image that runs something")
	}
	if n := cfg.Nodes(); n > 1 && cfg.Task == nil {
		return errors.New("nodes is for tasks only")
	}
	return nil
}

// replicas is the number of replicas a run starts with: `replicas` of a service (its minimum), else 1.
func replicas(cfg models.RunConfiguration) int {
	if cfg.Service == nil || cfg.Service.Replicas == nil {
		return 1
	}
	switch r := cfg.Service.Replicas.(type) {
	case float64:
		return max(1, int(r))
	case string:
		if rg, err := resources.ParseRange[int](r); err == nil && rg.Min != nil {
			return max(1, *rg.Min)
		}
	case map[string]any:
		if m, ok := r["min"].(float64); ok {
			return max(1, int(m))
		}
	}
	return 1
}

// JobSpecs plans the jobs of a run: one per node of each replica. defaultImage replaces the image of
// configurations without one.
func JobSpecs(runName string, spec models.RunSpec, defaultImage string) ([]models.JobSpec, error) {
	cfg := spec.Configuration
	c := cfg.Common()
	params := spec.Params()
	image := defaultImage
	if c.Image != nil && *c.Image != "" {
		image = *c.Image
	}
	commands, err := jobCommands(cfg, image == DefaultImage)
	if err != nil {
		return nil, err
	}
	req := models.Requirements{Resources: *c.Resources, MaxPrice: params.MaxPrice, Reservation: params.Reservation}
	if req.Resources.CPU.Arch == nil {
		x86 := "x86"
		req.Resources.CPU.Arch = &x86
	}
	if g := req.Resources.GPU; g != nil && g.Vendor == nil {
		nvidia := "nvidia"
		g.Vendor = &nvidia
	}
	spot := false
	if params.SpotPolicy != nil {
		switch *params.SpotPolicy {
		case "spot":
			spot = true
		case "auto":
			req.Spot = nil
		}
	}
	if params.SpotPolicy == nil || *params.SpotPolicy != "auto" {
		req.Spot = &spot
	}
	nodes := cfg.Nodes()
	multinode := nodes > 1
	req.Multinode = &multinode
	var maxDuration *int
	if d := params.MaxDuration; d != nil && !d.Off && d.Seconds > 0 {
		n := d.Seconds
		maxDuration = &n
	}
	stop := defaultStopDuration
	if d := params.StopDuration; d != nil {
		stop = d.Seconds
		if d.Off {
			stop = 0
		}
	}
	var sshKey *models.JobSSHKey
	if multinode {
		if sshKey, err = newJobKey(); err != nil {
			return nil, err
		}
	}
	var appSpecs []models.AppSpec
	var ports []models.PortMapping
	switch {
	case cfg.Task != nil:
		ports = cfg.Task.Ports
	case cfg.DevEnvironment != nil:
		ports = cfg.DevEnvironment.Ports
	}
	for i, p := range ports {
		appSpecs = append(appSpecs, models.AppSpec{Port: p.ContainerPort, MapToPort: p.LocalPort, AppName: "app" + strconv.Itoa(i)})
	}
	if appSpecs == nil {
		appSpecs = []models.AppSpec{}
	}
	single := true
	if c.SingleBranch != nil {
		single = *c.SingleBranch
	}
	var user any
	if c.User != nil {
		user = map[string]any{"username": *c.User, "uid": nil, "gid": nil, "groupname": nil}
	}
	home := c.HomeDir
	var out []models.JobSpec
	for r := range replicas(cfg) {
		for n := range nodes {
			js := models.JobSpec{
				ReplicaNum: r, JobNum: n, JobName: fmt.Sprintf("%s-%d-%d", runName, n, r), JobsPerReplica: nodes,
				ReplicaGroup: "0", AppSpecs: appSpecs, User: user, Commands: commands, Env: c.Env, HomeDir: &home,
				ImageName: image, Privileged: c.Privileged, SingleBranch: &single, MaxDuration: maxDuration,
				StopDuration: &stop, UtilizationPolicy: params.UtilizationPolicy, RegistryAuth: c.RegistryAuth,
				Requirements: req, Retry: retryJSON(params.RetryPolicy()), Volumes: c.Volumes, SSHKey: sshKey,
				WorkingDir: c.WorkingDir, RepoData: spec.RepoData, RepoCodeHash: spec.RepoCodeHash, RepoDir: repoDir,
				FileArchives: []any{}, Probes: []any{}, NodeGroupName: "0",
			}
			if cfg.Service != nil {
				port := cfg.Service.Port.ContainerPort
				js.ServicePort = &port
			}
			out = append(out, js)
		}
	}
	return out, nil
}

func retryJSON(p *models.RetryPolicy) any {
	if p == nil {
		return nil
	}
	return map[string]any{"on_events": p.OnEvents, "duration": p.Duration}
}

// jobCommands is the argv the runner executes: the configuration's commands joined with && and run
// by its shell (/bin/bash -i in dstack's base image, /bin/sh in others), or the entrypoint followed
// by the commands.
func jobCommands(cfg models.RunConfiguration, dstackImage bool) ([]string, error) {
	c := cfg.Common()
	var cmds []string
	cmds = append(cmds, c.Setup...)
	switch {
	case cfg.Task != nil:
		cmds = append(cmds, cfg.Task.Commands...)
	case cfg.Service != nil:
		cmds = append(cmds, cfg.Service.Commands...)
	case cfg.DevEnvironment != nil:
		cmds = append(cmds, cfg.DevEnvironment.Init...)
		cmds = append(cmds, "echo 'The dev environment is ready; connect with dstack attach'", "sleep infinity")
	}
	if c.Entrypoint != nil && *c.Entrypoint != "" {
		argv, err := splitArgs(*c.Entrypoint)
		if err != nil {
			return nil, fmt.Errorf("entrypoint: %w", err)
		}
		return append(argv, cmds...), nil
	}
	shell := "/bin/sh"
	if dstackImage {
		shell = "/bin/bash"
	}
	if c.Shell != nil && *c.Shell != "" {
		switch *c.Shell {
		case "bash":
			shell = "/bin/bash"
		case "sh":
			shell = "/bin/sh"
		default:
			shell = *c.Shell
		}
	}
	argv := []string{shell}
	if strings.HasSuffix(shell, "bash") {
		argv = append(argv, "-i")
	}
	return append(argv, "-c", strings.Join(cmds, " && ")), nil
}

// splitArgs splits a command line as a POSIX shell would, for quotes and backslashes.
func splitArgs(s string) ([]string, error) {
	var (
		args []string
		cur  strings.Builder
		in   rune
		has  bool
		esc  bool
	)
	for _, r := range s {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case r == '\\' && in != '\'':
			esc, has = true, true
		case in != 0:
			if r == in {
				in = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			in, has = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if has {
				args = append(args, cur.String())
				cur.Reset()
				has = false
			}
		default:
			cur.WriteRune(r)
			has = true
		}
	}
	if in != 0 || esc {
		return nil, errors.New("unterminated quote")
	}
	if has {
		args = append(args, cur.String())
	}
	return args, nil
}

// newJobKey makes the key pair the nodes of a multi-node run use to reach each other.
func newJobKey() (*models.JobSSHKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "dstack-job")
	if err != nil {
		return nil, err
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return &models.JobSSHKey{Private: string(pem.EncodeToMemory(block)), Public: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))}, nil
}

var (
	nameAdjectives = []string{"brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "kind", "lively", "nice",
		"proud", "quick", "silly", "smart", "witty", "zealous", "bold", "clever", "cool", "wise"}
	nameAnimals = []string{"ant", "bat", "cat", "dog", "eel", "fox", "gnu", "hen", "ibis", "jay", "koala", "lion",
		"mole", "newt", "owl", "pig", "quail", "rat", "seal", "tiger", "wolf", "yak", "zebra"}
)

// GenerateName makes a run name such as "brave-fox-1", as dstack does for runs without a name.
func GenerateName() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%s-%d", nameAdjectives[int(b[0])%len(nameAdjectives)], nameAnimals[int(b[1])%len(nameAnimals)], 1+int(b[2])%9)
}
