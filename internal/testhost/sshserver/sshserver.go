// Package sshserver is a small SSH server for tests: public-key authentication against a list of
// authorized keys, "exec" sessions run by a shell, and "direct-tcpip" channels (the port forwarding the
// dstack server uses to reach the shim and the runner). It is what a test host runs instead of
// OpenSSH's sshd, in process for unit tests and as the static binary of ../sshd in test containers.
package sshserver

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// Server accepts SSH connections. Set the fields before Serve.
type Server struct {
	HostKey        ssh.Signer
	AuthorizedKeys []ssh.PublicKey
	// AuthorizedKeysFile, when set, is read at each login for more keys, as sshd reads
	// ~/.ssh/authorized_keys (the shim adds the keys of a run's user there).
	AuthorizedKeysFile string
	// Shell runs exec requests as Shell -c COMMAND; default /bin/sh.
	Shell string
	// Env is added to the environment of commands.
	Env []string
	Log *slog.Logger

	mu    sync.Mutex
	conns map[*ssh.ServerConn]struct{}
	lns   []net.Listener
}

// Serve accepts connections on ln until it is closed.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.lns = append(s.lns, ln)
	s.mu.Unlock()
	cfg := &ssh.ServerConfig{PublicKeyCallback: s.checkKey}
	cfg.AddHostKey(s.HostKey)
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go s.handle(c, cfg)
	}
}

// Close stops the listeners and drops every connection, like a host that goes away.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ln := range s.lns {
		ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
}

// DropConnections closes the established connections but keeps listening, like a network blip.
func (s *Server) DropConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func (s *Server) checkKey(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	keys := s.AuthorizedKeys
	if s.AuthorizedKeysFile != "" {
		if data, err := os.ReadFile(s.AuthorizedKeysFile); err == nil {
			more, _ := ParseAuthorizedKeys(data)
			keys = append(append([]ssh.PublicKey(nil), keys...), more...)
		}
	}
	for _, k := range keys {
		if string(k.Marshal()) == string(key.Marshal()) {
			return &ssh.Permissions{}, nil
		}
	}
	return nil, fmt.Errorf("unknown public key for %s", meta.User())
}

func (s *Server) handle(c net.Conn, cfg *ssh.ServerConfig) {
	conn, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		s.log().Debug("handshake failed", "remote", c.RemoteAddr(), "err", err)
		c.Close()
		return
	}
	s.mu.Lock()
	if s.conns == nil {
		s.conns = map[*ssh.ServerConn]struct{}{}
	}
	s.conns[conn] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
	}()
	go ssh.DiscardRequests(reqs) // keepalive@openssh.com gets its (negative) reply
	for nc := range chans {
		switch nc.ChannelType() {
		case "session":
			go s.session(nc)
		case "direct-tcpip":
			go s.directTCPIP(nc)
		default:
			_ = nc.Reject(ssh.UnknownChannelType, "unsupported channel type")
		}
	}
}

func (s *Server) session(nc ssh.NewChannel) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	var env []string
	for req := range reqs {
		switch req.Type {
		case "env":
			var kv struct{ Name, Value string }
			if ssh.Unmarshal(req.Payload, &kv) == nil {
				env = append(env, kv.Name+"="+kv.Value)
			}
			_ = req.Reply(true, nil)
		case "exec":
			var p struct{ Command string }
			if err := ssh.Unmarshal(req.Payload, &p); err != nil {
				_ = req.Reply(false, nil)
				continue
			}
			_ = req.Reply(true, nil)
			code := s.exec(ch, reqs, p.Command, env)
			_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(code)}))
			return
		default:
			_ = req.Reply(false, nil)
		}
	}
}

// exec runs command with the channel as its stdio. The command gets its own process group, which is
// killed when the client sends a signal or goes away; daemons detach with setsid.
func (s *Server) exec(ch ssh.Channel, reqs <-chan *ssh.Request, command string, env []string) int {
	shell := s.Shell
	if shell == "" {
		shell = "/bin/sh"
	}
	cmd := exec.Command(shell, "-c", command)
	cmd.Env = append(append(os.Environ(), s.Env...), env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A background child that keeps our pipes open must not keep the session open forever.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(ch.Stderr(), err)
		return 127
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case req, ok := <-reqs:
				if !ok {
					_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
					return
				}
				if req.Type == "signal" {
					_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				}
				_ = req.Reply(false, nil)
			case <-done:
				return
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ee.ExitCode() < 0 {
			return 255
		}
		return ee.ExitCode()
	}
	if err != nil {
		return 255
	}
	return 0
}

func (s *Server) directTCPIP(nc ssh.NewChannel) {
	var p struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil {
		_ = nc.Reject(ssh.ConnectionFailed, "bad payload")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var d net.Dialer
	target, err := d.DialContext(ctx, "tcp", net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port))))
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
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(target, ch)
		if tc, ok := target.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	go func() {
		defer wg.Done()
		_, _ = io.Copy(ch, target)
		_ = ch.CloseWrite()
	}()
	wg.Wait()
	target.Close()
	ch.Close()
}

// ParseAuthorizedKeys reads every key of an authorized_keys file.
func ParseAuthorizedKeys(data []byte) ([]ssh.PublicKey, error) {
	var keys []ssh.PublicKey
	for {
		k, _, _, rest, err := ssh.ParseAuthorizedKey(data)
		if err != nil {
			if len(keys) == 0 {
				return nil, err
			}
			return keys, nil
		}
		keys = append(keys, k)
		data = rest
	}
}

// Key is a fresh ed25519 key pair in the forms tests need.
type Key struct {
	Signer     ssh.Signer
	PrivatePEM string // OpenSSH PEM
	Public     string // authorized_keys line
}

// NewKey generates an ed25519 key pair.
func NewKey() (Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Key{}, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return Key{}, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return Key{}, err
	}
	return Key{Signer: signer, PrivatePEM: string(pem.EncodeToMemory(block)),
		Public: string(ssh.MarshalAuthorizedKey(signer.PublicKey()))}, nil
}
