package runner

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/dstackgo/dstack/internal/agentapi"
)

func newKey(t *testing.T) (ssh.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " user@test"
}

// startSSHRunner serves a runner's HTTP and SSH on random ports and returns the SSH address.
func startSSHRunner(t *testing.T, keys ...string) (*Runner, string, string) {
	t.Helper()
	dir := t.TempDir()
	r, err := New(Config{
		TempDir:    filepath.Join(dir, "tmp"),
		HomeDir:    filepath.Join(dir, "home"),
		WorkingDir: filepath.Join(dir, "work"),
		SSHKeys:    keys,
		KillGrace:  time.Second,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = os.MkdirAll(filepath.Join(dir, "home"), 0o755)
	httpLn, _ := net.Listen("tcp", "127.0.0.1:0")
	sshLn, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, httpLn, sshLn, false) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("runner did not stop")
		}
	})
	return r, sshLn.Addr().String(), "http://" + httpLn.Addr().String()
}

func dialSSH(t *testing.T, addr string, signer ssh.Signer) (*ssh.Client, error) {
	t.Helper()
	return ssh.Dial("tcp", addr, &ssh.ClientConfig{
		User:            "root",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
		Timeout:         10 * time.Second,
	})
}

func TestSSHExec(t *testing.T) {
	signer, line := newKey(t)
	other, _ := newKey(t)
	r, addr, _ := startSSHRunner(t, "# comment", line)

	if _, err := dialSSH(t, addr, other); err == nil {
		t.Fatal("an unknown key was accepted")
	}
	client, err := dialSSH(t, addr, signer)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	sess.Stdout, sess.Stderr = &stdout, &stderr
	_ = sess.Setenv("GREETING", "hi")
	err = sess.Run(`echo out $GREETING; echo err >&2; echo home=$HOME; exit 7`)
	var exitErr *ssh.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitStatus() != 7 {
		t.Fatalf("exit: %v", err)
	}
	if stdout.String() != "out hi\nhome="+r.cfg.HomeDir+"\n" || stderr.String() != "err\n" {
		t.Errorf("stdout %q stderr %q", stdout.String(), stderr.String())
	}

	// stdin reaches the command; the session ends when the command does.
	sess, _ = client.NewSession()
	sess.Stdin = strings.NewReader("piped input\n")
	out, err := sess.Output("cat")
	if err != nil || string(out) != "piped input\n" {
		t.Errorf("cat: %q %v", out, err)
	}

	// A shell reads its commands from stdin.
	sess, _ = client.NewSession()
	sess.Stdin = strings.NewReader("echo from shell\nexit 4\n")
	stdout.Reset()
	sess.Stdout = &stdout
	if err := sess.Shell(); err != nil {
		t.Fatal(err)
	}
	err = sess.Wait()
	if !errors.As(err, &exitErr) || exitErr.ExitStatus() != 4 || !strings.Contains(stdout.String(), "from shell") {
		t.Errorf("shell: %v %q", err, stdout.String())
	}
}

func TestSSHPortForward(t *testing.T) {
	signer, line := newKey(t)
	_, addr, _ := startSSHRunner(t, line)
	// A service in the "container".
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64)
				n, _ := c.Read(buf)
				_, _ = c.Write(append([]byte("echo: "), buf[:n]...))
			}()
		}
	}()
	client, err := dialSSH(t, addr, signer)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for i := range 3 {
		c, err := client.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(got) != "echo: ping" {
			t.Fatalf("forward %d: %q %v", i, got, err)
		}
	}
	if _, err := client.Dial("tcp", "127.0.0.1:1"); err == nil {
		t.Error("a closed port was reachable")
	}
}

func TestSSHPty(t *testing.T) {
	if p, err := openPTY(); err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	} else {
		p.slave.Close()
		p.master.Close()
	}
	signer, line := newKey(t)
	_, addr, _ := startSSHRunner(t, line)
	client, err := dialSSH(t, addr, signer)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	sess, _ := client.NewSession()
	if err := sess.RequestPty("xterm", 40, 100, ssh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	out, err := sess.Output("tty; echo term=$TERM; stty size")
	if err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	s := string(out)
	if !strings.Contains(s, "/dev/pts/") || !strings.Contains(s, "term=xterm") || !strings.Contains(s, "40 100") {
		t.Errorf("pty session output %q", s)
	}
}

func TestSSHJobKeyAndEnv(t *testing.T) {
	signer, line := newKey(t)
	jobSigner, jobLine := newKey(t)
	r, addr, httpURL := startSSHRunner(t, line)
	if _, err := dialSSH(t, addr, jobSigner); err == nil {
		t.Fatal("job key accepted before submit")
	}
	client := agentapi.NewRunnerClient(httpURL, nil)
	ctx := context.Background()
	body := submitBody("sleep 30")
	body.JobSpec.SSHKey = &agentapi.SSHKey{Public: jobLine}
	body.JobSpec.Env = map[string]string{"FROM_JOB": "yes"}
	if err := client.Submit(ctx, body); err != nil {
		t.Fatal(err)
	}
	_ = client.UploadCode(ctx, nil)
	if err := client.Run(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if st, ok := r.events.lastState(); ok && st.State == agentapi.JobRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("job not running")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c, err := dialSSH(t, addr, jobSigner)
	if err != nil {
		t.Fatalf("job key refused: %v", err)
	}
	defer c.Close()
	sess, _ := c.NewSession()
	out, err := sess.Output("echo $FROM_JOB $DSTACK_RUN_NAME")
	if err != nil || string(out) != "yes test-run\n" {
		t.Errorf("job env in SSH session: %q %v", out, err)
	}
	_ = signer
}
