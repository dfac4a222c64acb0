package gateways

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/dstackgo/dstack/internal/fleets"
	"github.com/dstackgo/dstack/internal/gatewayd"
	"github.com/dstackgo/dstack/internal/sshpool"
)

// Where dstack-gateway lives on the gateway machine.
const (
	binaryPath = "/usr/local/bin/dstack-gateway"
	stateDir   = "/var/lib/dstack-gateway"
	unitPath   = "/etc/systemd/system/dstack-gateway.service"
)

// install makes dstack-gateway run on the machine: the server's binary for the machine's
// architecture is uploaded when the machine has another one (or none), and the service is
// (re)started when the binary changed or it is not running. It returns once the gateway answers.
func (s *Service) install(ctx context.Context, t sshpool.Target) error {
	q := sshpool.Quote
	out, err := s.Pool.Run(ctx, t, `uname -m
if [ "$(id -u)" = 0 ]; then echo sudo=root; elif sudo -n true >/dev/null 2>&1; then echo sudo=ok; else echo sudo=no; fi
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then echo systemd=yes; else echo systemd=no; fi
[ -f `+binaryPath+` ] && echo "sum=$(sha256sum `+binaryPath+` | cut -d' ' -f1)"
true`, nil)
	if err != nil {
		return fmt.Errorf("cannot reach the gateway machine over SSH (%s): %w", t, err)
	}
	var arch, sum, sudo string
	systemd := false
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		k, v, _ := strings.Cut(line, "=")
		switch {
		case line == "x86_64" || line == "amd64":
			arch = "amd64"
		case line == "aarch64" || line == "arm64":
			arch = "arm64"
		case k == "sudo" && v == "no":
			return fmt.Errorf("user %s has no passwordless sudo on the gateway machine", t.User)
		case k == "sudo" && v == "ok":
			sudo = "sudo -n "
		case k == "systemd":
			systemd = v == "yes"
		case k == "sum":
			sum = v
		}
	}
	if arch == "" {
		return fmt.Errorf("the gateway machine's architecture is not x86_64 or aarch64: %q", strings.SplitN(string(out), "\n", 2)[0])
	}
	local, err := s.Agents.Path(fleets.GatewayBinary, arch)
	if err != nil {
		return fmt.Errorf("the server has no %s binary for linux/%s: %w", fleets.GatewayBinary, arch, err)
	}
	want, err := fleets.FileSHA256(local)
	if err != nil {
		return err
	}
	changed := want != sum
	if changed {
		f, err := os.Open(local)
		if err != nil {
			return err
		}
		err = s.Pool.Upload(ctx, t, binaryPath, 0o755, f, sudo != "")
		f.Close()
		if err != nil {
			return err
		}
	}
	cmd := fmt.Sprintf("%s --api 127.0.0.1:%d --state-dir %s", binaryPath, APIPort, stateDir)
	var script string
	if systemd {
		unit := fmt.Sprintf(`[Unit]
Description=dstack-gateway
After=network-online.target

[Service]
Type=simple
Restart=always
RestartSec=2
ExecStart=%s

[Install]
WantedBy=multi-user.target
`, cmd)
		if err := s.Pool.Upload(ctx, t, unitPath, 0o644, strings.NewReader(unit), sudo != ""); err != nil {
			return err
		}
		restart := "systemctl is-active --quiet dstack-gateway || systemctl restart dstack-gateway"
		if changed {
			restart = "systemctl restart dstack-gateway"
		}
		script = "systemctl daemon-reload && systemctl enable dstack-gateway >/dev/null 2>&1; " + restart
	} else {
		// Without systemd: a loop in its own session restarts the gateway when it exits.
		supervisor := fmt.Sprintf("#!/bin/sh\necho $$ > %[1]s/supervisor.pid\nwhile true; do %[2]s >> %[1]s/gateway.log 2>&1; sleep 2; done\n", stateDir, cmd)
		if err := s.Pool.Upload(ctx, t, stateDir+"/supervisor.sh", 0o755, strings.NewReader(supervisor), sudo != ""); err != nil {
			return err
		}
		running := `[ -f ` + stateDir + `/supervisor.pid ] && kill -0 "$(cat ` + stateDir + `/supervisor.pid)" 2>/dev/null`
		start := `(command -v setsid >/dev/null 2>&1 && setsid sh ` + stateDir + `/supervisor.sh || nohup sh ` + stateDir + `/supervisor.sh) </dev/null >/dev/null 2>&1 &`
		if changed {
			// The loop starts the new binary once the old one is gone.
			script = running + ` && pkill -f '^` + binaryPath + ` ' ; ` + running + ` || ` + start
		} else {
			script = running + ` || ` + start
		}
	}
	if _, err := s.Pool.Run(ctx, t, sudo+"sh -c "+q(script), nil); err != nil {
		return fmt.Errorf("cannot start dstack-gateway: %w", err)
	}
	return s.waitHealthy(ctx, t, 30*time.Second)
}

// client is the management API of the gateway on t, through the pooled SSH connection.
func (s *Service) client(t sshpool.Target) *gatewayd.Client {
	return gatewayd.NewClient(fmt.Sprintf("http://127.0.0.1:%d", APIPort), s.Pool.HTTPClient(t, 30*time.Second))
}

func (s *Service) waitHealthy(ctx context.Context, t sshpool.Target, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	c := s.client(t)
	delay := 100 * time.Millisecond
	for {
		_, err := c.Healthcheck(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("dstack-gateway did not answer within %v: %w", wait, err)
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}
