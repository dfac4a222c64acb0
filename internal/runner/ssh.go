package runner

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// minUserConnDuration: SSH connections shorter than this are taken for the server's own (it tunnels to
// the runner's HTTP API) and do not count as user activity in no_connections_secs.
const minUserConnDuration = 10 * time.Second

// connTracker measures how long the container has had no user SSH connection.
type connTracker struct {
	mu      sync.Mutex
	since   time.Time // start of the current period without connections
	active  map[int]time.Time
	nextID  int
	minConn time.Duration
}

func newConnTracker(start time.Time) *connTracker {
	return &connTracker{since: start, active: map[int]time.Time{}, minConn: minUserConnDuration}
}

func (t *connTracker) open(now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.nextID++
	t.active[t.nextID] = now
	return t.nextID
}

func (t *connTracker) close(id int, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if start, ok := t.active[id]; ok && now.Sub(start) >= t.minConn && now.After(t.since) {
		t.since = now
	}
	delete(t.active, id)
}

// noConnectionsSecs is 0 while a user connection is open, else the seconds since the last one closed
// (or since the runner started).
func (t *connTracker) noConnectionsSecs(now time.Time) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, start := range t.active {
		if now.Sub(start) >= t.minConn {
			return 0
		}
	}
	return int64(now.Sub(t.since) / time.Second)
}

// sshServer is the SSH server of the container: sessions (exec, shell, optional pty) run as the
// runner's user with the job's environment, and direct-tcpip channels forward to any address the
// container reaches (ssh -L).
type sshServer struct {
	r      *Runner
	config *ssh.ServerConfig

	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
	closed bool
}

func newSSHServer(r *Runner) (*sshServer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	s := &sshServer{r: r, conns: map[net.Conn]struct{}{}}
	s.config = &ssh.ServerConfig{
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if keyAuthorized(key, r.authorizedKeys()) {
				return &ssh.Permissions{}, nil
			}
			return nil, fmt.Errorf("key %s of %s is not authorized", ssh.FingerprintSHA256(key), meta.User())
		},
		ServerVersion: "SSH-2.0-dstack-runner",
	}
	s.config.AddHostKey(signer)
	return s, nil
}

// keyAuthorized reports whether key is among authorized_keys lines (options and comments allowed).
func keyAuthorized(key ssh.PublicKey, lines []string) bool {
	want := key.Marshal()
	for _, line := range lines {
		rest := []byte(strings.TrimSpace(line))
		for len(rest) > 0 {
			k, _, _, next, err := ssh.ParseAuthorizedKey(rest)
			if err != nil {
				break
			}
			if bytes.Equal(k.Marshal(), want) {
				return true
			}
			rest = next
		}
	}
	return false
}

func (s *sshServer) serve(ln net.Listener) error {
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return err
		}
		go s.handleConn(c)
	}
}

func (s *sshServer) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.ln != nil {
		s.ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
}

func (s *sshServer) handleConn(c net.Conn) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()

	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	sc, chans, reqs, err := ssh.NewServerConn(c, s.config)
	if err != nil {
		return
	}
	_ = c.SetDeadline(time.Time{})
	id := s.r.conns.open(time.Now())
	defer s.r.conns.close(id, time.Now())
	go func() {
		for req := range reqs {
			// keepalive@openssh.com and the like: a failure reply keeps OpenSSH clients happy.
			if req.WantReply {
				_ = req.Reply(false, nil)
			}
		}
	}()
	var wg sync.WaitGroup
	for nc := range chans {
		switch nc.ChannelType() {
		case "session":
			wg.Add(1)
			go func() { defer wg.Done(); s.handleSession(nc) }()
		case "direct-tcpip":
			wg.Add(1)
			go func() { defer wg.Done(); s.handleDirectTCPIP(nc) }()
		default:
			_ = nc.Reject(ssh.UnknownChannelType, "unsupported channel type "+nc.ChannelType())
		}
	}
	_ = sc.Close()
	wg.Wait()
}

// handleDirectTCPIP forwards the channel to host:port (RFC 4254 §7.2).
func (s *sshServer) handleDirectTCPIP(nc ssh.NewChannel) {
	var p struct {
		Host       string
		Port       uint32
		OriginHost string
		OriginPort uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil {
		_ = nc.Reject(ssh.ConnectionFailed, "invalid direct-tcpip payload")
		return
	}
	addr := net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port)))
	target, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		_ = nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		target.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(target, ch)
		if tc, ok := target.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(ch, target)
		_ = ch.CloseWrite()
		done <- struct{}{}
	}()
	<-done
	<-done
	ch.Close()
	target.Close()
}

type ptyRequest struct {
	Term     string
	Columns  uint32
	Rows     uint32
	Width    uint32
	Height   uint32
	Modelist string
}

// handleSession serves one session channel: env, pty-req, window-change, shell, exec, signal.
func (s *sshServer) handleSession(nc ssh.NewChannel) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	var env []string
	var pty *ptyRequest
	var tty *ptyPair
	var proc *os.Process
	exited := make(chan struct{})
	started := false
	for {
		select {
		case req, ok := <-reqs:
			if !ok {
				if proc != nil {
					_ = syscall.Kill(-proc.Pid, syscall.SIGHUP)
				}
				if started {
					<-exited
				}
				if tty != nil {
					tty.close()
				}
				return
			}
			switch req.Type {
			case "env":
				var kv struct{ Name, Value string }
				if ssh.Unmarshal(req.Payload, &kv) == nil {
					env = append(env, kv.Name+"="+kv.Value)
				}
				_ = req.Reply(true, nil)
			case "pty-req":
				var p ptyRequest
				if started || ssh.Unmarshal(req.Payload, &p) != nil {
					_ = req.Reply(false, nil)
					continue
				}
				t, err := openPTY()
				if err != nil {
					s.r.log.Warn("cannot allocate a pty", "err", err)
					_ = req.Reply(false, nil)
					continue
				}
				t.resize(p.Columns, p.Rows)
				pty, tty = &p, t
				_ = req.Reply(true, nil)
			case "window-change":
				var wc struct{ Columns, Rows, Width, Height uint32 }
				if tty != nil && ssh.Unmarshal(req.Payload, &wc) == nil {
					tty.resize(wc.Columns, wc.Rows)
				}
				if req.WantReply {
					_ = req.Reply(tty != nil, nil)
				}
			case "shell", "exec":
				if started {
					_ = req.Reply(false, nil)
					continue
				}
				command := ""
				if req.Type == "exec" {
					var c struct{ Command string }
					if ssh.Unmarshal(req.Payload, &c) != nil {
						_ = req.Reply(false, nil)
						continue
					}
					command = c.Command
				}
				p, err := s.startSessionProcess(ch, command, env, pty, tty, exited)
				if err != nil {
					s.r.log.Warn("cannot start an SSH session", "err", err)
					_ = req.Reply(false, nil)
					continue
				}
				proc, started = p, true
				_ = req.Reply(true, nil)
			case "signal":
				var sig struct{ Signal string }
				if proc != nil && ssh.Unmarshal(req.Payload, &sig) == nil {
					if n, ok := signals[sig.Signal]; ok {
						_ = proc.Signal(n)
					}
				}
				if req.WantReply {
					_ = req.Reply(proc != nil, nil)
				}
			default:
				if req.WantReply {
					_ = req.Reply(false, nil)
				}
			}
		case <-exited:
			if tty != nil {
				tty.close()
			}
			return
		}
	}
}

var signals = map[string]syscall.Signal{
	"ABRT": syscall.SIGABRT, "ALRM": syscall.SIGALRM, "FPE": syscall.SIGFPE, "HUP": syscall.SIGHUP,
	"ILL": syscall.SIGILL, "INT": syscall.SIGINT, "KILL": syscall.SIGKILL, "PIPE": syscall.SIGPIPE,
	"QUIT": syscall.SIGQUIT, "SEGV": syscall.SIGSEGV, "TERM": syscall.SIGTERM, "USR1": syscall.SIGUSR1,
	"USR2": syscall.SIGUSR2,
}

// sessionShell picks the shell for sessions: $SHELL of the job's environment, else bash, else sh.
func sessionShell(env []string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "SHELL="); ok && v != "" {
			if _, err := os.Stat(v); err == nil {
				return v
			}
		}
	}
	for _, sh := range []string{"/bin/bash", "/bin/sh"} {
		if _, err := os.Stat(sh); err == nil {
			return sh
		}
	}
	return "/bin/sh"
}

// startSessionProcess starts the shell (command "" ) or `shell -c command`, wired to the channel, and
// closes exited after it ended and its exit status was sent.
func (s *sshServer) startSessionProcess(ch ssh.Channel, command string, reqEnv []string, pty *ptyRequest, tty *ptyPair, exited chan struct{}) (*os.Process, error) {
	env, dir := s.r.jobContext()
	env = append(env, reqEnv...)
	if pty != nil && pty.Term != "" {
		env = append(env, "TERM="+pty.Term)
	}
	shell := sessionShell(env)
	var cmd *exec.Cmd
	if command == "" {
		cmd = exec.Command(shell, "-l")
	} else {
		cmd = exec.Command(shell, "-c", command)
	}
	cmd.Env = env
	cmd.Dir = dir

	var copyDone chan struct{}
	var stdin io.WriteCloser
	if tty != nil {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = tty.slave, tty.slave, tty.slave
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	} else {
		pr, pw, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		cmd.Stdin = pr
		stdin = pw
		cmd.Stdout, cmd.Stderr = ch, ch.Stderr()
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		defer pr.Close()
	}
	if err := cmd.Start(); err != nil {
		if stdin != nil {
			stdin.Close()
		}
		return nil, err
	}
	if tty != nil {
		tty.slave.Close()
		tty.slave = nil
		copyDone = make(chan struct{})
		go func() { _, _ = io.Copy(tty.master, ch) }()
		go func() { _, _ = io.Copy(ch, tty.master); close(copyDone) }()
	} else {
		go func() { _, _ = io.Copy(stdin, ch); stdin.Close() }()
	}
	go func() {
		err := cmd.Wait()
		if copyDone != nil {
			select {
			case <-copyDone:
			case <-time.After(2 * time.Second):
			}
		}
		code := 0
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			code = exitErr.ExitCode()
			if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
		} else if err != nil {
			code = 255
		}
		status := make([]byte, 4)
		binary.BigEndian.PutUint32(status, uint32(code))
		_, _ = ch.SendRequest("exit-status", false, status)
		_ = ch.CloseWrite()
		close(exited)
	}()
	return cmd.Process, nil
}
