// Command dstack-shim is the agent on each host: it runs job containers through the Docker Engine,
// each with dstack-runner as its entrypoint, and serves the shim HTTP API v2 on port 10998.
//
// Every flag has an environment variable, as in dstack (see --help). DSTACK_SHIM_NETWORK_CONTAINER /
// --network-container is for test harnesses only: job containers join the network namespace of that
// container (the "host" container the shim itself runs in on a shared Docker Engine), so the runner
// is reachable at the shim's own 127.0.0.1 as on a real host.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/dstackgo/dstack/internal/agentapi"
	"github.com/dstackgo/dstack/internal/shim"
)

func envString(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func envBool(name string) bool {
	v, _ := strconv.ParseBool(os.Getenv(name))
	return v
}

func main() {
	fs := flag.NewFlagSet("dstack-shim", flag.ExitOnError)
	home := fs.String("shim-home", envString("DSTACK_SHIM_HOME", "/root/.dstack"), "shim home (env DSTACK_SHIM_HOME)")
	httpPort := fs.Int("shim-http-port", envInt("DSTACK_SHIM_HTTP_PORT", agentapi.ShimHTTPPort), "API port (env DSTACK_SHIM_HTTP_PORT)")
	httpHost := fs.String("shim-http-host", envString("DSTACK_SHIM_HTTP_HOST", ""), "address to bind the API to, default all (env DSTACK_SHIM_HTTP_HOST)")
	logLevel := fs.Int("shim-log-level", envInt("DSTACK_SHIM_LOG_LEVEL", 4), "log level, dstack's 0-6; 5 and more is debug (env DSTACK_SHIM_LOG_LEVEL)")
	runnerURL := fs.String("runner-download-url", envString("DSTACK_RUNNER_DOWNLOAD_URL", ""), "where to fetch dstack-runner when the binary is missing (env DSTACK_RUNNER_DOWNLOAD_URL)")
	runnerPath := fs.String("runner-binary-path", envString("DSTACK_RUNNER_BINARY_PATH", "/usr/local/bin/dstack-runner"), "dstack-runner binary on the host (env DSTACK_RUNNER_BINARY_PATH)")
	runnerHTTP := fs.Int("runner-http-port", envInt("DSTACK_RUNNER_HTTP_PORT", agentapi.RunnerHTTPPort), "runner API port (env DSTACK_RUNNER_HTTP_PORT)")
	runnerSSH := fs.Int("runner-ssh-port", envInt("DSTACK_RUNNER_SSH_PORT", agentapi.RunnerSSHPort), "runner SSH port (env DSTACK_RUNNER_SSH_PORT)")
	_ = fs.Int("runner-log-level", envInt("DSTACK_RUNNER_LOG_LEVEL", 4), "accepted for compatibility (env DSTACK_RUNNER_LOG_LEVEL)")
	sshKey := fs.String("ssh-key", envString("DSTACK_PUBLIC_SSH_KEY", ""), "authorized_keys lines for the job containers (env DSTACK_PUBLIC_SSH_KEY)")
	privileged := fs.Bool("privileged", envBool("DSTACK_DOCKER_PRIVILEGED"), "run job containers privileged (env DSTACK_DOCKER_PRIVILEGED)")
	netContainer := fs.String("network-container", envString("DSTACK_SHIM_NETWORK_CONTAINER", ""), "test harness only: job containers join this container's network namespace (env DSTACK_SHIM_NETWORK_CONTAINER)")
	volumesRoot := fs.String("volumes-root", envString("DSTACK_SHIM_VOLUMES_ROOT", "/mnt/disks"), "where volumes are mounted on the host (env DSTACK_SHIM_VOLUMES_ROOT)")
	_ = fs.Int("dcgm-exporter-http-port", envInt("DSTACK_DCGM_EXPORTER_HTTP_PORT", 10997), "accepted for compatibility; DCGM is not wired")
	_ = fs.Int("dcgm-exporter-interval", envInt("DSTACK_DCGM_EXPORTER_INTERVAL", 5000), "accepted for compatibility; DCGM is not wired")
	pjrt := fs.String("pjrt-device", envString("PJRT_DEVICE", ""), "PJRT_DEVICE for job containers, TPU on TPU VMs (env PJRT_DEVICE)")
	_ = fs.Bool("service", envBool("DSTACK_SERVICE_MODE"), "accepted for compatibility")
	version := fs.Bool("version", false, "print the version and exit")
	_ = fs.Parse(os.Args[1:])
	if *version {
		fmt.Println(agentapi.Version)
		return
	}

	level := slog.LevelInfo
	if *logLevel >= 5 {
		level = slog.LevelDebug
	}
	var out io.Writer = os.Stderr
	if err := os.MkdirAll(*home, 0o755); err == nil {
		if f, err := os.OpenFile(filepath.Join(*home, "shim.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
			defer f.Close()
			out = io.MultiWriter(os.Stderr, f)
		}
	}
	logger := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: level}))

	var keys []string
	for _, line := range strings.Split(*sshKey, "\n") {
		if strings.TrimSpace(line) != "" {
			keys = append(keys, strings.TrimSpace(line))
		}
	}
	rt, err := shim.NewDockerRuntime()
	if err != nil {
		logger.Error("cannot reach Docker", "err", err)
		os.Exit(1)
	}
	defer rt.Close()
	s, err := shim.New(shim.Config{
		Home:              *home,
		HTTPPort:          *httpPort,
		ListenHost:        *httpHost,
		RunnerBinaryPath:  *runnerPath,
		RunnerDownloadURL: *runnerURL,
		RunnerHTTPPort:    *runnerHTTP,
		RunnerSSHPort:     *runnerSSH,
		SSHKeys:           keys,
		Privileged:        *privileged,
		PJRTDevice:        *pjrt,
		NetworkContainer:  *netContainer,
		VolumesRoot:       *volumesRoot,
		Logger:            logger,
	}, rt)
	if err != nil {
		logger.Error("cannot start", "err", err)
		os.Exit(1)
	}
	defer s.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := s.Start(ctx); err != nil {
		logger.Error("cannot start", "err", err)
		os.Exit(1)
	}
	if err := s.ListenAndServe(ctx); err != nil {
		logger.Error("shim failed", "err", err)
		os.Exit(1)
	}
}
