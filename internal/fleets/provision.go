package fleets

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dstackgo/dstack/internal/agentapi"
	"github.com/dstackgo/dstack/internal/hostinfo"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/sshpool"
)

// Defaults of the shim's environment on a host (dstack-spec §5.3); the fleet's env overrides them.
const (
	defaultShimHome   = "/root/.dstack"
	shimBinaryPath    = "/usr/local/bin/dstack-shim"
	defaultRunnerPath = "/usr/local/bin/dstack-runner"
	systemdUnitPath   = "/etc/systemd/system/dstack-shim.service"
)

// ProvisionError is a host that cannot be added, with the cause shown to the user.
type ProvisionError struct{ Msg string }

func (e *ProvisionError) Error() string { return e.Msg }

func provisionErrorf(format string, args ...any) error {
	return &ProvisionError{Msg: fmt.Sprintf(format, args...)}
}

// hostSetup is what provisioning learns about a host and decides for it.
type hostSetup struct {
	arch    string // amd64, arm64
	sudo    string // "" for root, else "sudo -n "
	systemd bool
	sums    map[string]string // remote path -> sha256 of the installed file
	env     map[string]string // the shim's environment
}

func (h hostSetup) home() string       { return h.env["DSTACK_SHIM_HOME"] }
func (h hostSetup) runnerPath() string { return h.env["DSTACK_RUNNER_BINARY_PATH"] }

func (h hostSetup) shimPort() int {
	if p, err := strconv.Atoi(h.env["DSTACK_SHIM_HTTP_PORT"]); err == nil && p > 0 {
		return p
	}
	return agentapi.ShimHTTPPort
}

// shimEnv is the shim's environment: dstack's defaults, then the fleet's env. The shim's home and
// the runner's path are resolved on the host (see hostPaths).
func shimEnv(remote *models.RemoteConnectionInfo, projectPublicKey string) map[string]string {
	env := map[string]string{
		"DSTACK_SHIM_HOME":          defaultShimHome,
		"DSTACK_SHIM_HTTP_PORT":     strconv.Itoa(agentapi.ShimHTTPPort),
		"DSTACK_SHIM_HTTP_HOST":     "127.0.0.1", // the server comes through SSH
		"DSTACK_SHIM_LOG_LEVEL":     "4",
		"DSTACK_RUNNER_BINARY_PATH": defaultRunnerPath,
		"DSTACK_RUNNER_HTTP_PORT":   strconv.Itoa(agentapi.RunnerHTTPPort),
		"DSTACK_RUNNER_SSH_PORT":    strconv.Itoa(agentapi.RunnerSSHPort),
		"DSTACK_RUNNER_LOG_LEVEL":   "4",
	}
	if projectPublicKey != "" {
		env["DSTACK_PUBLIC_SSH_KEY"] = strings.TrimSpace(projectPublicKey)
	}
	for k, v := range remote.Env {
		env[k] = v
	}
	return env
}

// envFile renders env for both a shell (`. file`) and systemd's EnvironmentFile.
func envFile(env map[string]string) string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "$", `\$`, "`", "\\`", "\n", " ")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=\"%s\"\n", k, r.Replace(env[k]))
	}
	return b.String()
}

// hostPaths are shell expressions of the shim's home and the runner binary's path: the fleet's env
// when it sets them, else the host's own environment (a test harness sets them there), else
// dstack's defaults. They are expanded by the login user's shell, outside sudo.
func hostPaths(remote *models.RemoteConnectionInfo) (home, runner string) {
	home, runner = `"${DSTACK_SHIM_HOME:-`+defaultShimHome+`}"`, `"${DSTACK_RUNNER_BINARY_PATH:-`+defaultRunnerPath+`}"`
	if v := remote.Env["DSTACK_SHIM_HOME"]; v != "" {
		home = sshpool.Quote(v)
	}
	if v := remote.Env["DSTACK_RUNNER_BINARY_PATH"]; v != "" {
		runner = sshpool.Quote(v)
	}
	return home, runner
}

// inspect checks what the host needs (dstack-spec §6.1): its architecture, passwordless sudo for
// a non-root user, Docker, and whether systemd runs; it resolves the shim's paths and reads the
// checksums of installed agents.
func (s *Service) inspect(ctx context.Context, t sshpool.Target, remote *models.RemoteConnectionInfo, setup *hostSetup) error {
	q := sshpool.Quote
	home, runner := hostPaths(remote)
	script := `uname -m
if [ "$(id -u)" = 0 ]; then echo sudo=root; elif sudo -n true >/dev/null 2>&1; then echo sudo=ok; else echo sudo=no; fi
if [ -S /var/run/docker.sock ] || command -v docker >/dev/null 2>&1; then echo docker=ok; else echo docker=no; fi
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then echo systemd=yes; else echo systemd=no; fi
echo home=` + home + `
runner=` + runner + `
echo "runner=$runner"
for f in ` + q(shimBinaryPath) + ` "$runner"; do [ -f "$f" ] && echo "sum=$(sha256sum "$f")"; done
true`
	out, err := s.Pool.Run(ctx, t, script, nil)
	if err != nil {
		return connectError(t, err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	first := true
	setup.sums = map[string]string{}
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if first {
			first = false
			switch line {
			case "x86_64", "amd64":
				setup.arch = "amd64"
			case "aarch64", "arm64":
				setup.arch = "arm64"
			default:
				return provisionErrorf("unsupported architecture %q (dstack-shim runs on x86_64 and aarch64)", line)
			}
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "sudo":
			switch v {
			case "no":
				return provisionErrorf("user %s has no passwordless sudo on %s (hosts need it to install dstack-shim)", t.User, t.Host)
			case "ok":
				setup.sudo = "sudo -n "
			}
		case "docker":
			if v == "no" {
				return provisionErrorf("Docker is not installed on %s (no /var/run/docker.sock and no docker command)", t.Host)
			}
		case "systemd":
			setup.systemd = v == "yes"
		case "home":
			setup.env["DSTACK_SHIM_HOME"] = v
		case "runner":
			setup.env["DSTACK_RUNNER_BINARY_PATH"] = v
		case "sum":
			if f := strings.Fields(v); len(f) == 2 {
				setup.sums[f[1]] = f[0]
			}
		}
	}
	return nil
}

// connectError words an SSH failure for `dstack fleet`.
func connectError(t sshpool.Target, err error) error {
	var mm *sshpool.HostKeyMismatchError
	var ne net.Error
	switch {
	case sshpool.IsAuthError(err):
		return provisionErrorf("SSH authentication refused for %s: check the user and identity_file", t)
	case errors.As(err, &mm):
		return provisionErrorf("%v; if the host was reinstalled, delete the instance and apply the fleet again", mm)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return provisionErrorf("timeout connecting to %s over SSH: %v", t, err)
	}
	var ee *sshpool.ExitError
	if errors.As(err, &ee) {
		return provisionErrorf("a command failed on %s: %v", t.Host, ee)
	}
	return provisionErrorf("cannot connect to %s over SSH: %v", t, err)
}

// install uploads the agents that differ from the server's, writes the shim's environment and
// (re)starts the shim as a systemd service, or as a supervised background process where there is
// no systemd.
func (s *Service) install(ctx context.Context, t sshpool.Target, setup *hostSetup) error {
	for _, a := range []struct{ name, path string }{{ShimBinary, shimBinaryPath}, {RunnerBinary, setup.runnerPath()}} {
		local, err := s.Agents.Path(a.name, setup.arch)
		if err != nil {
			return provisionErrorf("the server has no %s binary for linux/%s: %v", a.name, setup.arch, err)
		}
		sum, err := FileSHA256(local)
		if err != nil {
			return err
		}
		if setup.sums[a.path] == sum {
			continue
		}
		f, err := os.Open(local)
		if err != nil {
			return err
		}
		err = s.Pool.Upload(ctx, t, a.path, 0o755, f, setup.sudo != "")
		f.Close()
		if err != nil {
			return connectError(t, err)
		}
	}
	home := setup.home()
	q := sshpool.Quote
	if err := s.Pool.Upload(ctx, t, home+"/shim.env", 0o600, strings.NewReader(envFile(setup.env)), setup.sudo != ""); err != nil {
		return connectError(t, err)
	}
	var script string
	if setup.systemd {
		unit := fmt.Sprintf(`[Unit]
Description=dstack-shim
After=network-online.target

[Service]
Type=simple
User=root
Restart=always
RestartSec=10
WorkingDirectory=%s
EnvironmentFile=%s/shim.env
ExecStart=%s

[Install]
WantedBy=multi-user.target
`, home, home, shimBinaryPath)
		if err := s.Pool.Upload(ctx, t, systemdUnitPath, 0o644, strings.NewReader(unit), setup.sudo != ""); err != nil {
			return connectError(t, err)
		}
		script = `rm -f ` + q(home+"/host_info.json") + ` && systemctl daemon-reload && systemctl enable dstack-shim >/dev/null 2>&1 && systemctl restart dstack-shim`
	} else {
		// Restart=always without systemd: a loop that restarts the shim, in its own session so that
		// it outlives the SSH session.
		supervisor := fmt.Sprintf(`#!/bin/sh
# Runs dstack-shim and restarts it when it exits, like systemd's Restart=always.
cd %[1]s || exit 1
echo $$ > shim-supervisor.pid
trap 'kill "$child" 2>/dev/null; exit 0' TERM INT
while true; do
  set -a; . ./shim.env; set +a
  %[2]s >> shim.log 2>&1 &
  child=$!
  echo "$child" > shim.pid
  wait "$child"
  sleep 1
done
`, q(home), shimBinaryPath)
		if err := s.Pool.Upload(ctx, t, home+"/shim-supervisor.sh", 0o755, strings.NewReader(supervisor), setup.sudo != ""); err != nil {
			return connectError(t, err)
		}
		script = stopSupervisorScript(q(home)) + `rm -f ` + q(home+"/host_info.json") + `
cd ` + q(home) + ` || exit 1
if command -v setsid >/dev/null 2>&1; then setsid sh ./shim-supervisor.sh </dev/null >/dev/null 2>&1 &
else nohup sh ./shim-supervisor.sh </dev/null >/dev/null 2>&1 &
fi`
	}
	if _, err := s.Pool.Run(ctx, t, setup.sudo+"sh -c "+q(script), nil); err != nil {
		return provisionErrorf("cannot start dstack-shim on %s: %v", t.Host, err)
	}
	return nil
}

// stopSupervisorScript stops a supervised shim started by install: the supervisor first (SIGKILL, so
// that it cannot start the shim again), then the shim, waiting up to 10s for it to exit. home is a
// shell word: a quoted path or a parameter such as "$1".
func stopSupervisorScript(home string) string {
	return `H=` + home + `
if [ -f "$H/shim-supervisor.pid" ]; then kill -9 "$(cat "$H/shim-supervisor.pid")" 2>/dev/null; rm -f "$H/shim-supervisor.pid"; fi
if [ -f "$H/shim.pid" ]; then
  pid="$(cat "$H/shim.pid")"
  kill "$pid" 2>/dev/null
  i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
  kill -9 "$pid" 2>/dev/null
  rm -f "$H/shim.pid"
fi
`
}

// stopCommand stops and removes the shim service of a host (both kinds), leaving the binaries.
func stopCommand(remote *models.RemoteConnectionInfo, sudo string) string {
	home, _ := hostPaths(remote)
	// The home is expanded by the login shell and handed to the script as $1.
	return sudo + "sh -c " + sshpool.Quote(stopScript(`"$1"`)) + " sh " + home
}

// stopScript is the body of stopCommand; home may be a shell expression.
func stopScript(home string) string {
	return `if command -v systemctl >/dev/null 2>&1 && [ -f ` + systemdUnitPath + ` ]; then
  systemctl disable --now dstack-shim >/dev/null 2>&1; rm -f ` + systemdUnitPath + `; systemctl daemon-reload
fi
` + stopSupervisorScript(home) + `true`
}

// waitShim polls the shim's healthcheck and host_info.json until both answer or wait passes.
func (s *Service) waitShim(ctx context.Context, t sshpool.Target, setup *hostSetup, wait time.Duration) (*hostinfo.Info, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	shim := agentapi.NewShimClient(fmt.Sprintf("http://127.0.0.1:%d", setup.shimPort()), s.Pool.HTTPClient(t, 5*time.Second))
	delay := 50 * time.Millisecond
	var lastErr error
	for {
		_, err := shim.Healthcheck(ctx)
		if err == nil {
			out, rerr := s.Pool.Run(ctx, t, setup.sudo+"cat "+sshpool.Quote(setup.home()+"/"+hostinfo.FileName), nil)
			if rerr == nil {
				var info hostinfo.Info
				if jerr := json.Unmarshal(out, &info); jerr == nil && info.CPUs > 0 {
					return &info, nil
				}
				rerr = errors.New("host_info.json is not complete yet")
			}
			err = rerr
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return nil, provisionErrorf("dstack-shim on %s did not become ready in %v: %v", t.Host, wait, lastErr)
		case <-time.After(delay):
		}
		delay = min(delay*2, time.Second)
	}
}

// FileSHA256 is the hex sha256 of a file, to tell whether a host already has an agent binary.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// instanceType describes the host from its host_info.json.
func instanceType(info *hostinfo.Info, arch string) models.InstanceType {
	res := models.InstanceResources{
		CPUs:      info.CPUs,
		MemoryMiB: int(info.Memory / (1 << 20)),
		Gpus:      []models.Gpu{},
		Disk:      models.Disk{SizeMiB: int(info.DiskSize / (1 << 20))},
	}
	a := "x86"
	if arch == "arm64" {
		a = "arm"
	}
	res.CPUArch = &a
	for _, g := range info.GPUs {
		v := string(g.Vendor)
		res.Gpus = append(res.Gpus, models.Gpu{Name: normaliseGPUName(g.Name), MemoryMiB: g.MemoryMiB, Vendor: &v})
	}
	return models.InstanceType{Name: "instance", Resources: res}
}

// normaliseGPUName turns "NVIDIA H100 80GB HBM3" into "H100", as dstack names GPUs in offers.
func normaliseGPUName(name string) string {
	n := strings.TrimSpace(name)
	for _, p := range []string{"NVIDIA ", "Tesla ", "GeForce ", "AMD Instinct ", "AMD "} {
		n = strings.TrimPrefix(n, p)
	}
	if f := strings.Fields(n); len(f) > 0 {
		if len(f) > 1 && (f[0] == "RTX" || f[0] == "A") {
			return f[0] + f[1]
		}
		return f[0]
	}
	return name
}

// internalIP picks the address other hosts reach this one on: the configured one, else one within
// the fleet's network, else the first private address.
func internalIP(remote *models.RemoteConnectionInfo, addrs []string) *string {
	if remote.InternalIP != nil && *remote.InternalIP != "" {
		return remote.InternalIP
	}
	var network *netip.Prefix
	if remote.Network != nil {
		if p, err := netip.ParsePrefix(*remote.Network); err == nil {
			network = &p
		}
	}
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			continue
		}
		ip := p.Addr()
		if network != nil {
			if network.Contains(ip) {
				s := ip.String()
				return &s
			}
			continue
		}
		if ip.IsPrivate() {
			s := ip.String()
			return &s
		}
	}
	return nil
}
