package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/dstackgo/dstack/internal/agentapi"
	"github.com/dstackgo/dstack/internal/client"
	"github.com/dstackgo/dstack/internal/sshpool"
)

func newAttachCmd() *cobra.Command {
	var (
		project         string
		ports           []string
		replica, jobNum int
		noLogs          bool
	)
	cmd := &cobra.Command{
		Use:   "attach RUN",
		Short: "Forward a running job's ports to this machine and follow its output",
		Long: "Forward the ports of a running job (those of its configuration, and -p LOCAL:REMOTE ones) to\n" +
			"127.0.0.1 and follow its output until it finishes; Ctrl-C detaches.\n\n" +
			"The connection goes over SSH with your user's key, which the server gives to the job's host and\n" +
			"container: to the host as the fleet's user, then to the SSH server of dstack-runner in the\n" +
			"container. Host keys of runs are not checked (each job has a fresh one).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, c, err := currentProject(project)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			name := args[0]
			run, err := c.GetRun(ctx, p.Name, name)
			if err != nil {
				return err
			}
			sub := jobSubmission(run, replica, jobNum)
			if sub == nil || sub.Status != "running" || sub.JobProvisioningData == nil {
				return fmt.Errorf("run %s is not running (%s)", name, run.Status)
			}
			forwards, err := attachPorts(run, replica, jobNum, ports)
			if err != nil {
				return err
			}
			key, err := c.SSHPrivateKey(ctx)
			if err != nil {
				return err
			}
			pool := sshpool.New()
			defer pool.CloseAll()
			target := containerTarget(sub, key)
			if _, err := pool.Client(ctx, target); err != nil {
				return fmt.Errorf("cannot reach the job's container: %w", err)
			}
			out := cmd.ErrOrStderr()
			var wg sync.WaitGroup
			defer wg.Wait()
			fctx, cancel := context.WithCancel(ctx)
			defer cancel()
			for _, f := range forwards {
				ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(f.local)))
				if err != nil {
					return fmt.Errorf("port %d: %w", f.local, err)
				}
				wg.Add(1)
				go func() { defer wg.Done(); forward(fctx, ln, pool, target, f.remote) }()
				fmt.Fprintf(out, "Forwarded 127.0.0.1:%d to port %d of the job\n", ln.Addr().(*net.TCPAddr).Port, f.remote)
			}
			if run.Type() == "dev-environment" {
				if err := connectHint(fctx, &wg, out, pool, target, key, name); err != nil {
					return err
				}
			}
			if noLogs {
				<-ctx.Done()
				return nil
			}
			return followRun(cmd, c, p.Name, name, true)
		},
	}
	cmd.Flags().StringVar(&project, "project", "", "project (default: the default project)")
	cmd.Flags().StringArrayVarP(&ports, "port", "p", nil, "forward LOCAL:REMOTE (or PORT) besides the configuration's ports")
	cmd.Flags().IntVar(&replica, "replica", 0, "replica number")
	cmd.Flags().IntVar(&jobNum, "job", 0, "job number (node) of the replica")
	cmd.Flags().BoolVar(&noLogs, "no-logs", false, "only forward ports, until Ctrl-C")
	return cmd
}

// connectHint forwards a local port to the SSH server of dstack-runner in the dev environment's
// container, saves the user's key for ssh, and prints how to connect with ssh and VS Code.
func connectHint(ctx context.Context, wg *sync.WaitGroup, out io.Writer, pool *sshpool.Pool, target sshpool.Target, key, run string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	wg.Add(1)
	go func() { defer wg.Done(); forward(ctx, ln, pool, target, agentapi.RunnerSSHPort) }()
	home, err := os.UserHomeDir()
	if err != nil {
		return err
	}
	keyPath := filepath.Join(home, ".dstack", "ssh", "id_dstack")
	if err := os.MkdirAll(filepath.Dir(keyPath), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(keyPath, []byte(key), 0o600); err != nil {
		return err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	fmt.Fprintf(out, "\nThe dev environment %s is reachable while this command runs:\n", run)
	fmt.Fprintf(out, "  ssh -i %s -p %d -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null root@127.0.0.1\n", keyPath, port)
	fmt.Fprintf(out, "  VS Code (Remote - SSH, with that key in your ssh config): vscode://vscode-remote/ssh-remote+root@127.0.0.1:%d/workflow\n\n", port)
	return nil
}

type portForward struct{ local, remote int }

// attachPorts lists the forwards: the job's app ports (to map_to_port or the same port), then extra.
func attachPorts(run *client.Run, replica, jobNum int, extra []string) ([]portForward, error) {
	var out []portForward
	for _, j := range run.Jobs {
		if j.JobSpec.ReplicaNum != replica || j.JobSpec.JobNum != jobNum {
			continue
		}
		for _, a := range j.JobSpec.AppSpecs {
			local := a.Port
			if a.MapToPort != nil {
				local = *a.MapToPort
			}
			out = append(out, portForward{local: local, remote: a.Port})
		}
	}
	for _, e := range extra {
		l, r, ok := strings.Cut(e, ":")
		if !ok {
			r = l
		}
		ln, err1 := strconv.Atoi(l)
		rn, err2 := strconv.Atoi(r)
		if err1 != nil || err2 != nil || rn <= 0 || ln < 0 {
			return nil, fmt.Errorf("--port %q: want LOCAL:REMOTE or PORT", e)
		}
		out = append(out, portForward{local: ln, remote: rn})
	}
	return out, nil
}

// containerTarget is the runner's SSH server in the job's container, reached through its host.
func containerTarget(sub *client.JobSubmission, key string) sshpool.Target {
	jpd := sub.JobProvisioningData
	host := sshpool.Target{User: jpd.Username, Host: deref(jpd.Hostname), PrivateKey: key}
	if jpd.SSHPort != nil {
		host.Port = *jpd.SSHPort
	}
	if p := jpd.SSHProxy; p != nil {
		host.Proxy = &sshpool.Target{User: p.Username, Host: p.Hostname, Port: p.Port, PrivateKey: key}
	}
	port := agentapi.RunnerSSHPort
	if jrd := sub.JobRuntimeData; jrd != nil {
		if hp, ok := jrd.Ports[strconv.Itoa(port)]; ok {
			port = hp
		}
	}
	return sshpool.Target{User: "root", Host: "127.0.0.1", Port: port, PrivateKey: key, Proxy: &host}
}

// forward serves ln until ctx ends, piping each connection to port of the container.
func forward(ctx context.Context, ln net.Listener, pool *sshpool.Pool, target sshpool.Target, port int) {
	go func() { <-ctx.Done(); ln.Close() }()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			remote, err := pool.DialContext(dctx, target, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			cancel()
			if err != nil {
				return
			}
			defer remote.Close()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(remote, c); done <- struct{}{} }()
			go func() { _, _ = io.Copy(c, remote); done <- struct{}{} }()
			select {
			case <-done:
			case <-ctx.Done():
			}
		}()
	}
}
