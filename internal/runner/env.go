package runner

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/dstackgo/dstack/internal/agentapi"
)

var secretRef = regexp.MustCompile(`\$\{\{\s*secrets\.([A-Za-z0-9_.\-]+)\s*\}\}`)

// interpolateSecrets replaces ${{ secrets.NAME }} in s with the secret's value, as dstack does with the
// job's env; an unknown secret is an error.
func interpolateSecrets(s string, secrets map[string]string) (string, error) {
	var missing []string
	out := secretRef.ReplaceAllStringFunc(s, func(ref string) string {
		name := secretRef.FindStringSubmatch(ref)[1]
		v, ok := secrets[name]
		if !ok {
			missing = append(missing, name)
			return ref
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("unknown secret %s", strings.Join(missing, ", "))
	}
	return out, nil
}

// jobEnv builds the job's environment: base (the runner's own, normally the image's), then the
// DSTACK_* variables of the run and cluster, then the job spec's env with secrets interpolated.
func jobEnv(base []string, body agentapi.SubmitBody, hostfile string) (map[string]string, error) {
	env := map[string]string{}
	for _, kv := range base {
		k, v, ok := strings.Cut(kv, "=")
		if ok && k != "" {
			env[k] = v
		}
	}
	spec := body.Spec()
	js := body.JobSpec
	ci := body.ClusterInfo
	nodes := js.JobsPerReplica
	if nodes < 1 {
		nodes = 1
	}
	env["DSTACK_RUN_NAME"] = spec.RunName
	env["DSTACK_REPO_ID"] = spec.RepoID
	if body.Run != nil && body.Run.ID != "" {
		env["DSTACK_RUN_ID"] = body.Run.ID
	}
	if body.JobSubmission != nil && body.JobSubmission.ID != "" {
		env["DSTACK_JOB_ID"] = body.JobSubmission.ID
	}
	env["DSTACK_NODE_RANK"] = strconv.Itoa(js.JobNum)
	env["DSTACK_NODES_NUM"] = strconv.Itoa(nodes)
	env["DSTACK_GPUS_PER_NODE"] = strconv.Itoa(ci.GPUsPerJob)
	env["DSTACK_GPUS_NUM"] = strconv.Itoa(nodes * ci.GPUsPerJob)
	env["DSTACK_MASTER_NODE_IP"] = ci.MasterJobIP
	env["DSTACK_NODES_IPS"] = strings.Join(ci.JobIPs, "\n")
	if hostfile != "" {
		env["DSTACK_MPI_HOSTFILE"] = hostfile
	}
	keys := make([]string, 0, len(js.Env))
	for k := range js.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, err := interpolateSecrets(js.Env[k], body.Secrets)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", k, err)
		}
		env[k] = v
	}
	return env, nil
}

func renderEnv(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// writeHostfile writes an MPI hostfile ("ip slots=N" per node) into dir; "" when there are no nodes.
func writeHostfile(dir string, ci agentapi.ClusterInfo) (string, error) {
	if len(ci.JobIPs) == 0 {
		return "", nil
	}
	var b strings.Builder
	for _, ip := range ci.JobIPs {
		if ci.GPUsPerJob > 0 {
			fmt.Fprintf(&b, "%s slots=%d\n", ip, ci.GPUsPerJob)
		} else {
			fmt.Fprintf(&b, "%s\n", ip)
		}
	}
	path := filepath.Join(dir, "hostfile")
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}

var shells = map[string]bool{"sh": true, "bash": true, "zsh": true, "dash": true, "ash": true, "ksh": true}

// jobArgv turns the job spec into the argv to execute. dstack servers send commands as a complete argv
// ([shell, "-i", "-c", "cmd1 && cmd2"]), which is kept; a list of plain shell commands is joined with
// " && " and run by /bin/sh -c. A non-empty entrypoint is prepended to the commands.
func jobArgv(js agentapi.JobSpec) ([]string, error) {
	if len(js.Entrypoint) > 0 {
		return append(append([]string{}, js.Entrypoint...), js.Commands...), nil
	}
	if len(js.Commands) == 0 {
		return nil, fmt.Errorf("the job has no commands")
	}
	if isShellArgv(js.Commands) {
		return append([]string{}, js.Commands...), nil
	}
	return []string{"/bin/sh", "-c", strings.Join(js.Commands, " && ")}, nil
}

func isShellArgv(cmds []string) bool {
	if len(cmds) < 3 || !shells[filepath.Base(cmds[0])] {
		return false
	}
	for _, a := range cmds[1 : len(cmds)-1] {
		if a == "-c" || (strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && strings.HasSuffix(a, "c")) {
			return true
		}
	}
	return false
}

// resolveDir returns the job's working directory: the spec's working_dir taken relative to root unless
// absolute, or root.
func resolveDir(root string, wd *string) string {
	if wd == nil || *wd == "" {
		return root
	}
	if filepath.IsAbs(*wd) {
		return filepath.Clean(*wd)
	}
	return filepath.Join(root, *wd)
}
