// Command dstack-runner is the agent inside a job container: it takes one job over HTTP (port 10999),
// runs it, serves its logs and states, and serves SSH into the container (port 10022). The shim
// bind-mounts it into the container at /usr/local/bin/dstack-runner; it is static, so any image works.
//
//	dstack-runner [start] --http-port 10999 --ssh-port 10022 --temp-dir /tmp/runner --home-dir /root --working-dir /workflow
//
// DSTACK_PUBLIC_SSH_KEY holds the authorized_keys lines the SSH server accepts.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dstackgo/dstack/internal/agentapi"
	"github.com/dstackgo/dstack/internal/runner"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "start" { // the original's subcommand
		args = args[1:]
	}
	fs := flag.NewFlagSet("dstack-runner", flag.ExitOnError)
	httpPort := fs.Int("http-port", envInt("DSTACK_RUNNER_HTTP_PORT", agentapi.RunnerHTTPPort), "HTTP API port")
	sshPort := fs.Int("ssh-port", envInt("DSTACK_RUNNER_SSH_PORT", agentapi.RunnerSSHPort), "SSH server port")
	listen := fs.String("listen-host", "", "address to bind to (default: all)")
	tempDir := fs.String("temp-dir", agentapi.RunnerTempDirInJob, "directory for logs and the uploaded code")
	homeDir := fs.String("home-dir", agentapi.RunnerHomeDirInJob, "home directory of the job's user")
	workingDir := fs.String("working-dir", agentapi.RunnerWorkingDir, "directory the code is extracted into")
	logLevel := fs.Int("log-level", envInt("DSTACK_RUNNER_LOG_LEVEL", 4), "log level (dstack's 0-6; 5 and more is debug)")
	killGrace := fs.Duration("kill-grace", 10*time.Second, "time between SIGTERM and SIGKILL when the job is stopped")
	stay := fs.Bool("stay", false, "keep running after the server pulled the job's final state")
	version := fs.Bool("version", false, "print the version and exit")
	_ = fs.Parse(args)
	if *version {
		fmt.Println(agentapi.Version)
		return
	}

	level := slog.LevelInfo
	if *logLevel >= 5 {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	var keys []string
	for _, line := range strings.Split(os.Getenv("DSTACK_PUBLIC_SSH_KEY"), "\n") {
		if strings.TrimSpace(line) != "" {
			keys = append(keys, line)
		}
	}
	r, err := runner.New(runner.Config{
		HTTPPort:   *httpPort,
		SSHPort:    *sshPort,
		ListenHost: *listen,
		TempDir:    *tempDir,
		HomeDir:    *homeDir,
		WorkingDir: *workingDir,
		SSHKeys:    keys,
		KillGrace:  *killGrace,
		Logger:     logger,
	})
	if err != nil {
		logger.Error("cannot start", "err", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := r.ListenAndServe(ctx, !*stay); err != nil {
		logger.Error("runner failed", "err", err)
		os.Exit(1)
	}
}
