// Package sshpool is the server's only way to reach hosts: in-process SSH with golang.org/x/crypto/ssh,
// one pooled connection per host, reused by every command and by every HTTP request to the host's
// agents. No `ssh` processes are spawned (they dominated the original dstack server's CPU).
//
// A connection is keyed by user, host, port, private key and proxy jump. It is dialled on first use,
// through the proxy jump's own pooled connection when there is one, kept alive with
// keepalive@openssh.com requests, and dropped when a keepalive or a channel open fails, so that the
// next use dials again.
//
// Host keys are trusted on first use: a Target without HostKey accepts the key the host presents and
// reports it through Pool.OnHostKey, which the server stores with the instance; later connections to
// that instance pass the stored key in Target.HostKey and a different key is refused
// (*HostKeyMismatchError). The pool also remembers keys it has seen, so a key change between two dials
// of the same target is refused even before the caller has stored the first one.
package sshpool

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Target is an SSH endpoint and the credentials to log in.
type Target struct {
	User       string
	Host       string
	Port       int    // 22 when 0
	PrivateKey string // PEM (OpenSSH or PKCS#1/8)
	// HostKey is the host's public key in authorized_keys format; empty trusts the first key seen.
	HostKey string
	// Proxy, when set, is the jump host the connection goes through.
	Proxy *Target
}

func (t Target) addr() string {
	port := t.Port
	if port == 0 {
		port = 22
	}
	return net.JoinHostPort(t.Host, strconv.Itoa(port))
}

// String is user@host:port, for messages.
func (t Target) String() string { return t.User + "@" + t.addr() }

// key identifies the pooled connection: the same host with another key or another jump is another
// connection.
func (t Target) key() string {
	sum := sha256.Sum256([]byte(t.PrivateKey))
	k := t.User + "@" + t.addr() + "#" + hex.EncodeToString(sum[:8])
	if t.Proxy != nil {
		k += " via " + t.Proxy.key()
	}
	return k
}

// host identifies the machine: its address as reached through its jump hosts.
func (t Target) host() string {
	h := t.addr()
	if t.Proxy != nil {
		h += " via " + t.Proxy.host()
	}
	return h
}

// HostKeyMismatchError is a host presenting another key than the one trusted for it.
type HostKeyMismatchError struct {
	Target    string
	Want, Got string // SHA256 fingerprints
}

func (e *HostKeyMismatchError) Error() string {
	return fmt.Sprintf("host key of %s changed: trusted %s, presented %s", e.Target, e.Want, e.Got)
}

// ExitError is a command that ran and exited with a non-zero status.
type ExitError struct {
	Command string
	Code    int
	Stderr  string
}

func (e *ExitError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if len(msg) > 500 {
		msg = msg[:500] + "…"
	}
	if msg == "" {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return fmt.Sprintf("exit status %d: %s", e.Code, msg)
}

// IsAuthError reports a connection refused at authentication (wrong user or key).
func IsAuthError(err error) bool {
	return err != nil && strings.Contains(err.Error(), "unable to authenticate")
}

// Pool holds the connections. The zero value is not usable; use New.
type Pool struct {
	// DialTimeout bounds TCP connect plus SSH handshake (default 15s).
	DialTimeout time.Duration
	// KeepAlive is the interval of keepalive requests (default 15s); a host that does not answer
	// within the interval is dropped.
	KeepAlive time.Duration
	// OnHostKey, when set, is called with the key line (authorized_keys format) of a host whose
	// Target had no HostKey.
	OnHostKey func(t Target, keyLine string)

	mu         sync.Mutex
	conns      map[string]*conn
	seen       map[string]string // host (address and jump chain) -> key line first seen
	transports map[string]*http.Transport
	closed     bool
}

type conn struct {
	ready  chan struct{} // closed once the dial has finished
	client *ssh.Client
	err    error
}

// New returns an empty pool.
func New() *Pool {
	return &Pool{conns: map[string]*conn{}, seen: map[string]string{}, transports: map[string]*http.Transport{}}
}

func (p *Pool) dialTimeout() time.Duration {
	if p.DialTimeout > 0 {
		return p.DialTimeout
	}
	return 15 * time.Second
}

func (p *Pool) keepAlive() time.Duration {
	if p.KeepAlive > 0 {
		return p.KeepAlive
	}
	return 15 * time.Second
}

// Client returns the pooled connection to t, dialling it if needed.
func (p *Pool) Client(ctx context.Context, t Target) (*ssh.Client, error) {
	k := t.key()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errors.New("ssh pool closed")
	}
	c, ok := p.conns[k]
	if !ok {
		c = &conn{ready: make(chan struct{})}
		p.conns[k] = c
		p.mu.Unlock()
		c.client, c.err = p.dial(ctx, t)
		if c.err != nil {
			p.forget(k, c)
		} else {
			go p.watch(k, c)
		}
		close(c.ready)
		return c.client, c.err
	}
	p.mu.Unlock()
	select {
	case <-c.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return c.client, c.err
}

func (p *Pool) forget(k string, c *conn) {
	p.mu.Lock()
	if p.conns[k] == c {
		delete(p.conns, k)
	}
	p.mu.Unlock()
}

// drop closes the connection to t if it is still the given client, so that the next use redials.
func (p *Pool) drop(t Target, client *ssh.Client) {
	k := t.key()
	p.mu.Lock()
	c := p.conns[k]
	if c != nil && c.client == client {
		delete(p.conns, k)
	}
	p.mu.Unlock()
	if client != nil {
		client.Close()
	}
}

// Close closes the connection to t and its HTTP transport, e.g. when its instance is terminated.
func (p *Pool) Close(t Target) {
	k := t.key()
	p.mu.Lock()
	c := p.conns[k]
	delete(p.conns, k)
	tr := p.transports[k]
	delete(p.transports, k)
	p.mu.Unlock()
	if tr != nil {
		tr.CloseIdleConnections()
	}
	if c != nil {
		<-c.ready
		if c.client != nil {
			c.client.Close()
		}
	}
}

// Forget closes the connection to t and forgets the host key seen for its address: the machine is
// gone, and its provider may give the address to another machine, with its own key.
func (p *Pool) Forget(t Target) {
	p.Close(t)
	p.mu.Lock()
	delete(p.seen, t.host())
	p.mu.Unlock()
}

// CloseAll closes every connection; the pool refuses new ones afterwards.
func (p *Pool) CloseAll() {
	p.mu.Lock()
	p.closed = true
	conns := p.conns
	p.conns = map[string]*conn{}
	p.mu.Unlock()
	for _, c := range conns {
		<-c.ready
		if c.client != nil {
			c.client.Close()
		}
	}
}

// HostKey is the key line the host of t presented when the pool first connected to it ("" if it
// has not connected yet).
func (p *Pool) HostKey(t Target) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[t.host()]
}

// Len is the number of pooled connections.
func (p *Pool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// watch sends keepalives until the connection fails, then forgets it.
func (p *Pool) watch(k string, c *conn) {
	closed := make(chan struct{})
	go func() { _ = c.client.Wait(); close(closed) }()
	tick := time.NewTicker(p.keepAlive())
	defer tick.Stop()
	for {
		select {
		case <-closed:
			p.forget(k, c)
			return
		case <-tick.C:
			replied := make(chan error, 1)
			go func() {
				_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
				replied <- err
			}()
			select {
			case err := <-replied:
				if err == nil {
					continue
				}
			case <-time.After(p.keepAlive()):
			case <-closed:
			}
			p.forget(k, c)
			c.client.Close()
			return
		}
	}
}

func (p *Pool) dial(ctx context.Context, t Target) (*ssh.Client, error) {
	signer, err := ssh.ParsePrivateKey([]byte(t.PrivateKey))
	if err != nil {
		return nil, fmt.Errorf("private key for %s: %w", t, err)
	}
	ctx, cancel := context.WithTimeout(ctx, p.dialTimeout())
	defer cancel()
	var nc net.Conn
	if t.Proxy != nil {
		jump, err := p.Client(ctx, *t.Proxy)
		if err != nil {
			return nil, fmt.Errorf("proxy jump %s: %w", t.Proxy, err)
		}
		nc, err = jump.DialContext(ctx, "tcp", t.addr())
		if err != nil {
			p.drop(*t.Proxy, jump)
			return nil, fmt.Errorf("connect to %s through %s: %w", t.addr(), t.Proxy, err)
		}
	} else {
		var d net.Dialer
		nc, err = d.DialContext(ctx, "tcp", t.addr())
		if err != nil {
			return nil, fmt.Errorf("connect to %s: %w", t.addr(), err)
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	cfg := &ssh.ClientConfig{
		User:            t.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: p.hostKeyCallback(t),
		Timeout:         p.dialTimeout(),
	}
	sc, chans, reqs, err := ssh.NewClientConn(nc, t.addr(), cfg)
	if !stop() || err != nil {
		nc.Close()
		if ctx.Err() != nil {
			// The deadline closed the connection under the handshake; say so rather than "closed".
			return nil, fmt.Errorf("ssh %s: handshake: %w", t, ctx.Err())
		}
		return nil, fmt.Errorf("ssh %s: %w", t, err)
	}
	_ = nc.SetDeadline(time.Time{})
	return ssh.NewClient(sc, chans, reqs), nil
}

func (p *Pool) hostKeyCallback(t Target) ssh.HostKeyCallback {
	return func(_ string, _ net.Addr, key ssh.PublicKey) error {
		line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
		want := t.HostKey
		p.mu.Lock()
		if want == "" {
			want = p.seen[t.host()]
		}
		if want == "" {
			p.seen[t.host()] = line
		}
		p.mu.Unlock()
		if want == "" {
			if p.OnHostKey != nil {
				p.OnHostKey(t, line)
			}
			return nil
		}
		wk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(want))
		if err != nil {
			return fmt.Errorf("trusted host key of %s: %w", t, err)
		}
		if !bytes.Equal(wk.Marshal(), key.Marshal()) {
			return &HostKeyMismatchError{Target: t.String(), Want: ssh.FingerprintSHA256(wk), Got: ssh.FingerprintSHA256(key)}
		}
		return nil
	}
}

// Run runs cmd on t with stdin (nil for none) and returns its stdout. A non-zero exit is an
// *ExitError carrying stderr. When ctx ends, the command is killed. A connection that turns out to be
// broken is dropped and the command retried once on a fresh one.
func (p *Pool) Run(ctx context.Context, t Target, cmd string, stdin io.Reader) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		client, err := p.Client(ctx, t)
		if err != nil {
			return nil, err
		}
		sess, err := client.NewSession()
		if err != nil {
			p.drop(t, client)
			if attempt == 0 && stdin == nil && ctx.Err() == nil {
				continue
			}
			return nil, fmt.Errorf("ssh %s: open session: %w", t, err)
		}
		return runSession(ctx, sess, cmd, stdin)
	}
}

func runSession(ctx context.Context, sess *ssh.Session, cmd string, stdin io.Reader) ([]byte, error) {
	defer sess.Close()
	var stdout, stderr bytes.Buffer
	sess.Stdout, sess.Stderr = &stdout, &stderr
	if stdin != nil {
		sess.Stdin = stdin
	}
	if err := sess.Start(cmd); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err := <-done:
		var ee *ssh.ExitError
		if errors.As(err, &ee) {
			return stdout.Bytes(), &ExitError{Command: cmd, Code: ee.ExitStatus(), Stderr: stderr.String()}
		}
		if err != nil {
			return stdout.Bytes(), fmt.Errorf("%s: %w", firstWord(cmd), err)
		}
		return stdout.Bytes(), nil
	case <-ctx.Done():
		_ = sess.Signal(ssh.SIGKILL)
		sess.Close()
		return nil, ctx.Err() // the buffers may still be written to

	}
}

func firstWord(cmd string) string {
	f := strings.Fields(cmd)
	if len(f) == 0 {
		return cmd
	}
	return f[0]
}

// Upload writes data to path on t (mode in octal, e.g. 0o755) through a temporary file, so that a
// running binary at path is replaced rather than overwritten. sudo prefixes the shell with sudo.
func (p *Pool) Upload(ctx context.Context, t Target, path string, mode uint32, data io.Reader, sudo bool) error {
	tmp := path + ".upload"
	script := fmt.Sprintf("mkdir -p %s && cat > %s && chmod %o %s && mv -f %s %s",
		Quote(dir(path)), Quote(tmp), mode, Quote(tmp), Quote(tmp), Quote(path))
	cmd := "sh -c " + Quote(script)
	if sudo {
		cmd = "sudo -n " + cmd
	}
	_, err := p.Run(ctx, t, cmd, data)
	if err != nil {
		return fmt.Errorf("upload %s: %w", path, err)
	}
	return nil
}

func dir(path string) string {
	i := strings.LastIndex(path, "/")
	if i <= 0 {
		return "/"
	}
	return path[:i]
}

// Quote quotes s for a POSIX shell.
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// HTTPClient returns an HTTP client whose connections are direct-tcpip channels of t's pooled SSH
// connection: a URL such as http://127.0.0.1:10998 reaches port 10998 as seen from the host. Clients
// for the same target share one transport, so idle channels are reused between requests.
func (p *Pool) HTTPClient(t Target, timeout time.Duration) *http.Client {
	k := t.key()
	p.mu.Lock()
	tr := p.transports[k]
	if tr == nil {
		tr = &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return p.DialContext(ctx, t, network, addr)
			},
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     30 * time.Second,
			DisableCompression:  true,
		}
		p.transports[k] = tr
	}
	p.mu.Unlock()
	return &http.Client{Transport: tr, Timeout: timeout}
}

// DialContext opens a direct-tcpip channel from t to addr (as seen from t). A failure to open the
// channel on a connection that has died drops the connection and retries once.
func (p *Pool) DialContext(ctx context.Context, t Target, network, addr string) (net.Conn, error) {
	for attempt := 0; ; attempt++ {
		client, err := p.Client(ctx, t)
		if err != nil {
			return nil, err
		}
		c, err := client.DialContext(ctx, network, addr)
		if err == nil {
			return c, nil
		}
		var oce *ssh.OpenChannelError
		if errors.As(err, &oce) || ctx.Err() != nil {
			// The host answered: nothing listens there. The connection itself is fine.
			return nil, err
		}
		p.drop(t, client)
		if attempt > 0 {
			return nil, err
		}
	}
}
