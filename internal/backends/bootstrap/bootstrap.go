// Package bootstrap holds what the GPU-cloud backends (lambda, runpod, vultr, vastai, tensordock,
// cudo, datacrunch) give a machine to start with, and how they name what they create:
//
//   - VMs run dstack-shim (spec §5.3): ShimScript is the shell script that fetches it from
//     InstanceConfig.ShimURL, authorizes the SSH keys and starts it with the shim's environment;
//     CloudConfig wraps it as #cloud-config user data for providers that take cloud-init.
//   - Containers run dstack-runner directly with its own SSH server on 10022: RunnerCommand is the
//     container's command and ContainerEnv its image and environment.
//   - ResourceName is dstack-<project>-<name>, so that the orphan reconciler can list what a
//     project created.
package bootstrap

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/dstackgo/dstack/internal/backends"
)

// Agent ports, as dstack-shim and dstack-runner use them.
const (
	ShimHTTPPort   = 10998
	RunnerHTTPPort = 10999
	RunnerSSHPort  = 10022
)

// EnvJobImage in InstanceConfig.ShimEnv names a container backend's image (the job's image); it is
// not passed into the container.
const EnvJobImage = "DSTACK_JOB_IMAGE"

// DefaultImage is a container backend's image when the config names none.
const DefaultImage = "dstackai/base:py3.12-0.7-cuda-12.1"

// ResourceName is the name of a resource created for a project: dstack-<project>-<name>, at most
// max characters. A longer name keeps the end of <name> (where instance names are unique), so the
// prefix dstack-<project>- that the orphan reconciler looks for survives.
func ResourceName(project, name string, max int) string {
	if room := max/2 - len("dstack--"); len(project) > room {
		project = project[:room]
	}
	prefix := "dstack-" + project + "-"
	if len(prefix)+len(name) > max {
		name = name[len(name)-(max-len(prefix)):]
	}
	return prefix + name
}

// Quote quotes s for a POSIX shell.
func Quote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=,+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ShimEnv is the environment dstack-shim starts with: dstack's defaults (§5.3), the config's
// ShimEnv over them, and the SSH keys in DSTACK_PUBLIC_SSH_KEY.
func ShimEnv(cfg backends.InstanceConfig) map[string]string {
	env := map[string]string{
		"DSTACK_SHIM_HOME":          "/root/.dstack",
		"DSTACK_SHIM_HTTP_PORT":     fmt.Sprint(ShimHTTPPort),
		"DSTACK_SHIM_LOG_LEVEL":     "6",
		"DSTACK_RUNNER_BINARY_PATH": "/usr/local/bin/dstack-runner",
		"DSTACK_RUNNER_HTTP_PORT":   fmt.Sprint(RunnerHTTPPort),
		"DSTACK_RUNNER_SSH_PORT":    fmt.Sprint(RunnerSSHPort),
		"DSTACK_RUNNER_LOG_LEVEL":   "6",
	}
	if u := runnerURL(cfg); u != "" {
		env["DSTACK_RUNNER_DOWNLOAD_URL"] = u
	}
	for k, v := range cfg.ShimEnv {
		if k != EnvJobImage {
			env[k] = v
		}
	}
	env["DSTACK_PUBLIC_SSH_KEY"] = strings.Join(cfg.SSHPublicKeys, "\n")
	return env
}

func runnerURL(cfg backends.InstanceConfig) string {
	if u := cfg.ShimEnv["DSTACK_RUNNER_DOWNLOAD_URL"]; u != "" {
		return u
	}
	if strings.Contains(cfg.ShimURL, "dstack-shim") {
		return strings.Replace(cfg.ShimURL, "dstack-shim", "dstack-runner", 1)
	}
	return ""
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// fetch downloads url to path with curl or wget, whichever the image has.
func fetch(url, path string) string {
	u, p := Quote(url), Quote(path)
	return fmt.Sprintf("(command -v curl >/dev/null 2>&1 && curl -fsSL --retry 5 -o %s %s || wget -q -O %s %s)", p, u, p, u)
}

// ShimScript is the shell script a VM runs as root on first boot: authorize the SSH keys for root
// and for user (when not root), download dstack-shim, and start it in the background with ShimEnv.
func ShimScript(cfg backends.InstanceConfig, user string) string {
	var b strings.Builder
	b.WriteString("#!/bin/sh\nset -e\n")
	keys := strings.Join(cfg.SSHPublicKeys, "\n")
	homes := []string{"/root"}
	if user != "" && user != "root" {
		homes = append(homes, "/home/"+user)
	}
	for _, h := range homes {
		fmt.Fprintf(&b, "mkdir -p %[1]s/.ssh && printf '%%s\\n' %[2]s >> %[1]s/.ssh/authorized_keys && chmod 700 %[1]s/.ssh && chmod 600 %[1]s/.ssh/authorized_keys\n",
			h, Quote(keys))
		if h != "/root" {
			fmt.Fprintf(&b, "chown -R %s: %s/.ssh || true\n", Quote(user), h)
		}
	}
	b.WriteString("mkdir -p /root/.dstack /usr/local/bin\n")
	b.WriteString(fetch(cfg.ShimURL, "/usr/local/bin/dstack-shim") + "\n")
	b.WriteString("chmod +x /usr/local/bin/dstack-shim\n")
	env := ShimEnv(cfg)
	for _, k := range sortedKeys(env) {
		fmt.Fprintf(&b, "export %s=%s\n", k, Quote(env[k]))
	}
	b.WriteString("cd /root/.dstack && nohup /usr/local/bin/dstack-shim > /root/.dstack/shim.log 2>&1 &\n")
	return b.String()
}

// CloudConfig is #cloud-config user data that authorizes the SSH keys for the image's default user
// and runs ShimScript.
func CloudConfig(cfg backends.InstanceConfig, user string) string {
	var b strings.Builder
	b.WriteString(KeysCloudConfig(cfg.SSHPublicKeys))
	script, _ := json.Marshal(ShimScript(cfg, user))
	fmt.Fprintf(&b, "runcmd:\n  - [sh, -c, %s]\n", script)
	return b.String()
}

// ContainerEnv splits an instance config into a container's image and environment: ShimEnv without
// EnvJobImage (which names the image; defaultImage when unset), plus DSTACK_PUBLIC_SSH_KEY (the
// authorized keys, one a line) and the runner's ports.
func ContainerEnv(cfg backends.InstanceConfig, defaultImage string) (string, map[string]string) {
	env := map[string]string{}
	for k, v := range cfg.ShimEnv {
		env[k] = v
	}
	image := env[EnvJobImage]
	delete(env, EnvJobImage)
	if image == "" {
		image = defaultImage
	}
	env["DSTACK_PUBLIC_SSH_KEY"] = strings.Join(cfg.SSHPublicKeys, "\n")
	env["DSTACK_RUNNER_SSH_PORT"] = fmt.Sprint(RunnerSSHPort)
	env["DSTACK_RUNNER_HTTP_PORT"] = fmt.Sprint(RunnerHTTPPort)
	return image, env
}

// RunnerCommand is a container's shell command: fetch dstack-runner (DSTACK_RUNNER_DOWNLOAD_URL, or
// beside the shim) with curl or wget and start it with its own SSH server, as dstack's container
// backends do.
func RunnerCommand(cfg backends.InstanceConfig) string {
	return strings.Join([]string{
		"mkdir -p /usr/local/bin /tmp/runner /workflow",
		fetch(runnerURL(cfg), "/usr/local/bin/dstack-runner"),
		"chmod +x /usr/local/bin/dstack-runner",
		fmt.Sprintf("exec /usr/local/bin/dstack-runner --http-port %d --ssh-port %d --temp-dir /tmp/runner --home-dir /root --working-dir /workflow",
			RunnerHTTPPort, RunnerSSHPort),
	}, " && ")
}

// SortedKeys returns a map's keys in order.
func SortedKeys(m map[string]string) []string { return sortedKeys(m) }

// KeysCloudConfig is #cloud-config user data that only authorizes keys for the image's default
// user: what a gateway machine starts with (the server installs the rest over SSH).
func KeysCloudConfig(keys []string) string {
	var b strings.Builder
	b.WriteString("#cloud-config\n")
	if len(keys) > 0 {
		b.WriteString("ssh_authorized_keys:\n")
		for _, k := range keys {
			q, _ := json.Marshal(strings.TrimSpace(k))
			fmt.Fprintf(&b, "  - %s\n", q)
		}
	}
	return b.String()
}
