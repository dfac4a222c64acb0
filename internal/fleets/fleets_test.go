package fleets

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/ssh"

	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/secrets"
	"github.com/dstackgo/dstack/internal/sshpool"
	"github.com/dstackgo/dstack/internal/store"
	"github.com/dstackgo/dstack/internal/testhost"
	"github.com/dstackgo/dstack/internal/testhost/sshserver"
)

type fixture struct {
	t       *testing.T
	st      *store.Store
	svc     *Service
	project *models.Project
}

func newFixture(t *testing.T, agentsDir string) *fixture {
	t.Helper()
	key, err := secrets.LoadOrCreateDefaultKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	kr, _ := secrets.NewKeyring([]secrets.Key{key})
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "db.sqlite"), kr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	u := &models.User{Username: "admin", GlobalRole: models.GlobalRoleAdmin, Active: true, Token: uuid.NewString()}
	if err := st.CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	p := &models.Project{Name: "main", OwnerID: u.ID, SSHPublicKey: "ssh-ed25519 AAAA project"}
	if err := st.CreateProject(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	pool := sshpool.New()
	pool.DialTimeout = 3 * time.Second
	t.Cleanup(pool.CloseAll)
	return &fixture{t: t, st: st, project: p, svc: &Service{Store: st, Pool: pool, Agents: Agents{Dir: agentsDir}}}
}

// addHost creates a fleet with one pending instance for remote and returns the instance's id.
func (f *fixture) addHost(remote *models.RemoteConnectionInfo) string {
	f.t.Helper()
	inst := &models.Instance{ProjectID: f.project.ID, Name: "f-0", Status: models.InstancePending, Backend: models.BackendRemote,
		Region: "remote", TotalBlocks: 1, InstanceType: models.InstanceType{Name: "ssh"}, Remote: remote}
	if err := f.st.CreateFleet(context.Background(), &models.Fleet{ProjectID: f.project.ID, Name: "f-" + uuid.NewString()[:6],
		Status: models.FleetActive}, []*models.Instance{inst}); err != nil {
		f.t.Fatal(err)
	}
	return inst.ID
}

// step processes the instance once, as its pipeline would.
func (f *fixture) step(id string) *models.Instance {
	f.t.Helper()
	ctx := context.Background()
	if err := f.st.WakeRow(ctx, store.TableInstances, id); err != nil {
		f.t.Fatal(err)
	}
	ls, err := f.st.AcquireLeases(ctx, store.TableInstances, 1, time.Minute)
	if err != nil || len(ls) != 1 {
		f.t.Fatalf("lease: %v %v", ls, err)
	}
	if _, err := f.svc.ProcessInstance(ctx, ls[0]); err != nil {
		f.t.Fatal(err)
	}
	if err := f.st.ReleaseLease(ctx, ls[0], nil); err != nil {
		f.t.Fatal(err)
	}
	inst, err := f.st.GetInstance(ctx, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return inst
}

func TestProvisionTestHost(t *testing.T) {
	key, _ := sshserver.NewKey()
	h := testhost.Start(t, key)
	f := newFixture(t, testhost.AgentsDir(t))
	id := f.addHost(&models.RemoteConnectionInfo{Host: h.IP, Port: 22, User: h.User, PrivateKey: key.PrivatePEM})
	start := time.Now()
	var inst *models.Instance
	for inst = f.step(id); inst.Status != models.InstanceIdle; inst = f.step(id) {
		if time.Since(start) > time.Minute {
			t.Fatalf("not idle after a minute: %s %q", inst.Status, inst.StatusMessage)
		}
		time.Sleep(200 * time.Millisecond) // the SSH server may still be starting
	}
	t.Logf("pending to idle in %v", time.Since(start))
	r := inst.InstanceType.Resources
	if inst.InstanceType.Name != "instance" || r.CPUs < 1 || r.MemoryMiB < 100 || r.Disk.SizeMiB < 1 || inst.JPD == nil ||
		*inst.JPD.Hostname != h.IP || !inst.JPD.Dockerized || inst.HostKey == "" {
		t.Fatalf("idle instance: %+v %+v", inst, inst.JPD)
	}
	// A second pass checks health.
	if inst = f.step(id); inst.Unreachable || inst.Status != models.InstanceIdle {
		t.Fatalf("health: %+v", inst)
	}
	// Provisioning again (a re-applied fleet, a restarted server) reuses the installed binaries.
	if err := f.st.RequestInstanceTermination(context.Background(), []string{id}); err != nil {
		t.Fatal(err)
	}
	if inst = f.step(id); inst.Status != models.InstanceTerminated || inst.TerminationReason != models.InstanceTerminatedByUser {
		t.Fatalf("after termination: %s %s", inst.Status, inst.TerminationReason)
	}
	out, err := f.svc.Pool.Run(context.Background(), *Target(inst), "ls "+filepath.Join(h.SharedDir, "home")+"; pidof dstack-shim || echo no-shim", nil)
	if err != nil || !strings.Contains(string(out), "no-shim") || strings.Contains(string(out), "shim.pid") {
		t.Fatalf("shim still running after termination: %q %v", out, err)
	}
}

func TestProvisionNoDocker(t *testing.T) {
	key, _ := sshserver.NewKey()
	h := testhost.Start(t, key, testhost.Options{NoDocker: true})
	f := newFixture(t, t.TempDir())
	id := f.addHost(&models.RemoteConnectionInfo{Host: h.IP, Port: 22, User: h.User, PrivateKey: key.PrivatePEM})
	deadline := time.Now().Add(30 * time.Second)
	for {
		inst := f.step(id)
		if strings.Contains(inst.StatusMessage, "Docker is not installed") && inst.Status == models.InstancePending {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %s %q", inst.Status, inst.StatusMessage)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// inProcessHost is an SSH server in the test process whose commands run with fakeBin first in PATH.
func inProcessHost(t *testing.T, key sshserver.Key, fakeBin map[string]string) int {
	t.Helper()
	dir := t.TempDir()
	for name, script := range fakeBin {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	shell := filepath.Join(dir, "shell")
	if err := os.WriteFile(shell, []byte("#!/bin/sh\nPATH="+dir+":$PATH exec /bin/sh \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	hostKey, _ := sshserver.NewKey()
	srv := &sshserver.Server{HostKey: hostKey.Signer, AuthorizedKeys: []ssh.PublicKey{key.Signer.PublicKey()}, Shell: shell}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(srv.Close)
	return ln.Addr().(*net.TCPAddr).Port
}

func TestProvisionFailureCauses(t *testing.T) {
	key, _ := sshserver.NewKey()
	other, _ := sshserver.NewKey()
	noSudo := inProcessHost(t, key, map[string]string{"id": "echo 1000", "sudo": "exit 1"})
	// A port that accepts connections and never speaks SSH.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	f := newFixture(t, t.TempDir())
	for _, tc := range []struct {
		name   string
		remote models.RemoteConnectionInfo
		want   string
	}{
		{"auth", models.RemoteConnectionInfo{Host: "127.0.0.1", Port: noSudo, User: "root", PrivateKey: other.PrivatePEM}, "authentication refused"},
		{"sudo", models.RemoteConnectionInfo{Host: "127.0.0.1", Port: noSudo, User: "ubuntu", PrivateKey: key.PrivatePEM}, "no passwordless sudo"},
		{"timeout", models.RemoteConnectionInfo{Host: "127.0.0.1", Port: silent.Addr().(*net.TCPAddr).Port, User: "root", PrivateKey: key.PrivatePEM}, "timeout"},
		{"refused", models.RemoteConnectionInfo{Host: "127.0.0.1", Port: 1, User: "root", PrivateKey: key.PrivatePEM}, "cannot connect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inst := f.step(f.addHost(&tc.remote))
			if inst.Status != models.InstancePending || !strings.Contains(inst.StatusMessage, tc.want) {
				t.Fatalf("status %s, message %q; want %q", inst.Status, inst.StatusMessage, tc.want)
			}
		})
	}
}

func TestProvisioningTimeout(t *testing.T) {
	key, _ := sshserver.NewKey()
	f := newFixture(t, t.TempDir())
	f.svc.ProvisioningTimeout = time.Millisecond
	id := f.addHost(&models.RemoteConnectionInfo{Host: "127.0.0.1", Port: 1, User: "root", PrivateKey: key.PrivatePEM})
	time.Sleep(5 * time.Millisecond)
	if inst := f.step(id); inst.Status != models.InstanceTerminated || inst.TerminationReason != models.InstanceProvisioningTimeout {
		t.Fatalf("%s %s", inst.Status, inst.TerminationReason)
	}
}

func TestEnvFileAndInternalIP(t *testing.T) {
	got := envFile(map[string]string{"B": `a "q" $x`, "A": "1"})
	if got != "A=\"1\"\nB=\"a \\\"q\\\" \\$x\"\n" {
		t.Fatalf("env file %q", got)
	}
	netw := "10.1.0.0/16"
	ip := internalIP(&models.RemoteConnectionInfo{Network: &netw}, []string{"192.168.1.2/24", "10.1.2.3/16"})
	if ip == nil || *ip != "10.1.2.3" {
		t.Fatalf("ip %v", ip)
	}
	ip = internalIP(&models.RemoteConnectionInfo{}, []string{"8.8.8.8/24", "172.17.0.2/16"})
	if ip == nil || *ip != "172.17.0.2" {
		t.Fatalf("ip %v", ip)
	}
	if n := normaliseGPUName("NVIDIA H100 80GB HBM3"); n != "H100" {
		t.Fatal(n)
	}
	if n := normaliseGPUName("NVIDIA GeForce RTX 4090"); n != "RTX4090" {
		t.Fatal(n)
	}
}
