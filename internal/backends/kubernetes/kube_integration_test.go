package kubernetes

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/config"
	"github.com/dstackgo/dstack/internal/offers"
	"github.com/dstackgo/dstack/internal/resources"
)

// The integration test runs the backend against a real cluster control plane: etcd, kube-apiserver
// and kwok (which plays the kubelets of fake nodes, so that pods reach Running without containers),
// built by scripts/kube.sh into the directory DSTACK_TEST_KUBE_BIN names. No controller manager
// or scheduler runs: the test creates each namespace's default ServiceAccount itself, and the
// backend binds pods to nodes.

const kubeBinEnv = "DSTACK_TEST_KUBE_BIN"

// kubeCluster is a running test control plane.
type kubeCluster struct {
	kubeconfig string // its contents, with an admin token
	server     string
	caPEM      []byte
	cs         kubernetes.Interface
}

func TestKubeIntegration(t *testing.T) {
	bin := os.Getenv(kubeBinEnv)
	if bin == "" {
		t.Skip(kubeBinEnv + " is not set: run scripts/kube.sh (it builds kube-apiserver, etcd and kwok once, ~20 minutes) and set " +
			kubeBinEnv + " to the directory it prints; scripts/test does both")
	}
	for _, f := range []string{"etcd", "kube-apiserver", "kwok", "kwok-stages.yaml"} {
		if _, err := os.Stat(filepath.Join(bin, f)); err != nil {
			t.Fatalf("%s=%s lacks %s (%v): rerun scripts/kube.sh", kubeBinEnv, bin, f, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	k := startCluster(t, ctx, bin)
	const ns = "team"
	for _, n := range []string{"default", ns} {
		ensureNamespace(t, ctx, k.cs, n)
	}

	// Two kwok nodes with 8 A100s each, GFD labels and the device plugin's allocatable.
	for i := 1; i <= 2; i++ {
		createFakeNode(t, ctx, k.cs, fmt.Sprintf("kwok-node-%d", i))
	}
	waitFor(t, ctx, "both nodes Ready", func() (bool, error) {
		l, err := k.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		ready := 0
		var not []string
		for i := range l.Items {
			n := &l.Items[i]
			// The API server taints new nodes not-ready; the controller manager's node lifecycle
			// controller, which does not run here, lifts the taint once kwok reports Ready.
			if len(n.Spec.Taints) > 0 && len(n.Status.Conditions) > 0 {
				n.Spec.Taints = nil
				if _, err := k.cs.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
					return false, err
				}
			}
			if nodeAvailable(n) {
				ready++
			} else {
				not = append(not, fmt.Sprintf("%s: conditions %v, taints %v", n.Name, n.Status.Conditions, n.Spec.Taints))
			}
		}
		return ready == 2, fmt.Errorf("not ready: %v", not)
	})
	// Someone else's pod on node 1: 4 CPUs, 16Gi, 2 GPUs.
	busy := pod("default", "busy", "kwok-node-1", 4000, 16*1024, 2, "")
	busy.Spec.Containers[0].Image = "busybox"
	busy.Spec.Containers[0].Resources.Limits = busy.Spec.Containers[0].Resources.Requests
	if _, err := k.cs.CoreV1().Pods("default").Create(ctx, busy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, ctx, k.cs, "default", "busy")

	// The seed's kubeconfig examples load from ~/.kube/config and pass the credential check.
	home := t.TempDir()
	t.Setenv("HOME", home)
	if err := os.MkdirAll(filepath.Join(home, ".kube"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".kube", "config"), []byte(k.kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	d, ok := backends.Lookup("kubernetes")
	if !ok {
		t.Fatal("kubernetes is not registered")
	}
	seed := `projects:
- name: main
  backends:
    - type: kubernetes
      kubeconfig:
        filename: ~/.kube/config
      networking:
        ssh_host: localhost
        ssh_port: 32000
`
	managed := `projects:
  - name: main
    backends:
      - type: kubernetes
        kubeconfig:
          filename: ~/.kube/config
        networking:
          ssh_port: 32000
`
	var cfg backends.Config
	for i, y := range []string{seed, managed} {
		srv, err := config.Parse("config.yml", []byte(y), config.Options{})
		if err != nil {
			t.Fatalf("seed example %d: %v", i, err)
		}
		c := srv.Projects[0].Backends[0]
		if err := d.Check(ctx, c); err != nil {
			t.Fatalf("Check(seed example %d) = %v", i, err)
		}
		if i == 0 {
			cfg = c
		}
	}
	cfg.Values["namespace"] = ns

	// A wrong token is refused on `kubeconfig`, without showing the token.
	bad := backends.Config{Type: "kubernetes", Values: map[string]any{"type": "kubernetes",
		"kubeconfig": map[string]any{"data": strings.Replace(k.kubeconfig, "admin-token-0123456789", "wrong-token-9876543210", 1)}}}
	err := d.Check(ctx, bad)
	var ce *backends.CredentialsError
	if !errors.As(err, &ce) || strings.Join(ce.Fields[0], ".") != "kubeconfig" || strings.Contains(err.Error(), "wrong-token") {
		t.Fatalf("Check(wrong token) = %v, want a CredentialsError on kubeconfig", err)
	}

	// Offers: node 1 minus the busy pod, node 2 whole.
	src := d.NewOffers(cfg, nil)
	list, err := src.Offers(ctx, offers.Requirements{})
	if err != nil {
		t.Fatal(err)
	}
	all := byName(list)
	if r := all["kwok-node-1"].Instance.Resources; len(all) != 2 || r.CPUs != 28 || r.MemoryMiB != 240*1024 || len(r.GPUs) != 6 ||
		r.GPUs[0].Name != "A100" || r.GPUs[0].MemoryMiB != 81920 || r.Disk.SizeMiB != 500*1024 {
		t.Fatalf("offers %+v", list)
	}
	if r := all["kwok-node-2"].Instance.Resources; r.CPUs != 32 || len(r.GPUs) != 8 || all["kwok-node-2"].Availability != offers.Available {
		t.Fatalf("node 2 offer %+v", all["kwok-node-2"])
	}

	// Two jobs, one per node, each asking for 2 CPUs, 8GB and 2 A100s.
	gpu, err := resources.ParseGPU("A100:2")
	if err != nil {
		t.Fatal(err)
	}
	spec := resources.Default()
	spec.GPU = gpu
	list, err = src.Offers(ctx, offers.Requirements{Resources: spec})
	if err != nil || len(list) != 2 {
		t.Fatalf("A100:2 offers %+v %v", list, err)
	}
	comp, err := d.NewCompute(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var pds []*backends.ProvisioningData
	for i, o := range list {
		ic := backends.InstanceConfig{ProjectName: "main", InstanceName: fmt.Sprintf("fleet-%d-abcd", i),
			SSHPublicKeys: []string{"ssh-ed25519 AAAA project", fmt.Sprintf("ssh-ed25519 USER%d user", i)},
			ShimURL:       "http://127.0.0.1:3000/api/agents/dstack-shim-linux-amd64",
			ShimEnv:       map[string]string{"DSTACK_JOB_IMAGE": "python:3.12"},
			Tags:          map[string]string{"dstack_server": "srv-1", "dstack_project": "main", "dstack_instance": fmt.Sprintf("fleet-%d-abcd", i)}}
		pd, err := comp.CreateInstance(ctx, o, ic)
		if err != nil {
			t.Fatalf("CreateInstance on %s: %v", o.Instance.Name, err)
		}
		if pd.SSHProxy == nil || pd.SSHProxy.Hostname != "localhost" || pd.SSHProxy.Port != 32000 {
			t.Fatalf("ssh proxy %+v, want localhost:32000 (networking)", pd.SSHProxy)
		}
		p, err := k.cs.CoreV1().Pods(ns).Get(ctx, pd.InstanceID, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		r := p.Spec.Containers[0].Resources
		if p.Spec.NodeName != o.Instance.Name || !qty(r.Requests, "cpu", "2") || !qty(r.Limits, "cpu", "2") ||
			!qty(r.Requests, "memory", "8Gi") || !qty(r.Limits, "nvidia.com/gpu", "2") || !qty(r.Requests, "ephemeral-storage", "100Gi") {
			t.Errorf("job pod on %s: %+v", p.Spec.NodeName, r)
		}
		// kwok runs it: the pod reaches Running and the provisioning data gets its address.
		waitFor(t, ctx, "job pod "+pd.InstanceID+" running", func() (bool, error) {
			if err := comp.UpdateProvisioningData(ctx, pd); err != nil {
				return false, err
			}
			return pd.Hostname != nil, nil
		})
		svc, err := k.cs.CoreV1().Services(ns).Get(ctx, pd.InstanceID, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if *pd.Hostname != svc.Spec.ClusterIP || !strings.HasPrefix(svc.Spec.ClusterIP, "10.96.") || *pd.SSHPort != 10022 || pd.InternalIP == nil {
			t.Errorf("provisioning data host %v port %v internal %v; service %s", *pd.Hostname, *pd.SSHPort, pd.InternalIP, svc.Spec.ClusterIP)
		}
		pds = append(pds, pd)
	}

	// One jump pod for both jobs, Running under kwok, behind NodePort 32000, with both users' keys.
	jumps, err := k.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: labelPod + "=" + JumpName("main")})
	if err != nil {
		t.Fatal(err)
	}
	if len(jumps.Items) != 1 {
		t.Fatalf("%d jump pods, want 1 reused across the jobs", len(jumps.Items))
	}
	waitRunning(t, ctx, k.cs, ns, jumps.Items[0].Name)
	cm, err := k.cs.CoreV1().ConfigMaps(ns).Get(ctx, JumpName("main"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if keys := cm.Data[authorizedKeysFile]; !strings.Contains(keys, "USER0") || !strings.Contains(keys, "USER1") {
		t.Errorf("jump authorized_keys %q", keys)
	}

	// Offers reflect the jobs' requests.
	list, err = src.Offers(ctx, offers.Requirements{})
	if err != nil {
		t.Fatal(err)
	}
	if r := byName(list)["kwok-node-1"].Instance.Resources; len(r.GPUs) != 4 || r.CPUs >= 28 {
		t.Errorf("node 1 after a job: %+v", r)
	}

	tagged, err := comp.(backends.InstanceLister).ListInstances(ctx)
	if err != nil || len(tagged) != 2 {
		t.Errorf("ListInstances = %+v, %v", tagged, err)
	}

	// Terminate twice is harmless; the pods go away (kwok plays the kubelet's part of deletion).
	for _, pd := range pds {
		for i := range 2 {
			if err := comp.TerminateInstance(ctx, pd.InstanceID, pd.Region, pd.BackendData); err != nil {
				t.Fatalf("terminate %s (%d): %v", pd.InstanceID, i, err)
			}
		}
		waitFor(t, ctx, "pod "+pd.InstanceID+" deleted", func() (bool, error) {
			_, err := k.cs.CoreV1().Pods(ns).Get(ctx, pd.InstanceID, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return true, nil
			}
			return false, err
		})
		var pe *backends.ProvisioningError
		if err := comp.UpdateProvisioningData(ctx, pd); !errors.As(err, &pe) {
			t.Errorf("UpdateProvisioningData after terminate = %v", err)
		}
	}
	if _, err := k.cs.CoreV1().Services(ns).Get(ctx, pds[0].InstanceID, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("service after terminate: %v", err)
	}

	gatewayStep(t, ctx, k, comp, ns)
}

// gatewayStep: a gateway's pod runs under kwok behind a LoadBalancer service the API server
// accepts; its address appears once a cloud controller (the test, here) writes the service's
// status; terminate twice.
func gatewayStep(t *testing.T, ctx context.Context, k *kubeCluster, comp backends.Compute, ns string) {
	gc, ok := comp.(backends.GatewayCompute)
	if !ok {
		t.Fatal("the kubernetes compute is not a GatewayCompute")
	}
	gpd, err := gc.CreateGateway(ctx, backends.GatewayConfig{ProjectName: "main", Name: "gw", Region: "-", PublicIP: true,
		SSHPublicKeys: []string{"ssh-ed25519 AAAA project"},
		ShimURL:       "http://127.0.0.1:3000/api/agents/dstack-shim-linux-amd64",
		Tags:          map[string]string{"dstack_server": "srv-1", "dstack_project": "main", "dstack_gateway": "gw"}})
	if err != nil {
		t.Fatalf("CreateGateway: %v", err)
	}
	var bd gatewayData
	if err := json.Unmarshal([]byte(gpd.BackendData), &bd); err != nil {
		t.Fatal(err)
	}
	svc, err := k.cs.CoreV1().Services(ns).Get(ctx, bd.Service, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || len(svc.Spec.Ports) != 3 || svc.Spec.Ports[0].Port != 22 || svc.Spec.Ports[0].NodePort == 0 {
		t.Errorf("gateway service %+v", svc.Spec)
	}
	waitRunning(t, ctx, k.cs, ns, gpd.InstanceID)
	// No cloud controller runs: no address yet, and that is not a failure.
	if err := gc.UpdateGateway(ctx, gpd); err != nil || gpd.IPAddress != "" {
		t.Fatalf("UpdateGateway before an address: %v, %+v", err, gpd)
	}
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.20", IPMode: new(corev1.LoadBalancerIPModeVIP)}}
	if _, err := k.cs.CoreV1().Services(ns).UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("writing the service's load balancer status: %v", err)
	}
	if err := gc.UpdateGateway(ctx, gpd); err != nil || gpd.IPAddress != "203.0.113.20" {
		t.Fatalf("UpdateGateway with an address: %v, %+v", err, gpd)
	}
	for i := range 2 {
		if err := gc.TerminateGateway(ctx, *gpd); err != nil {
			t.Fatalf("TerminateGateway (%d): %v", i, err)
		}
	}
	waitFor(t, ctx, "gateway pod deleted", func() (bool, error) {
		_, err := k.cs.CoreV1().Pods(ns).Get(ctx, gpd.InstanceID, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	_, errSvc := k.cs.CoreV1().Services(ns).Get(ctx, bd.Service, metav1.GetOptions{})
	_, errKeys := k.cs.CoreV1().ConfigMaps(ns).Get(ctx, gpd.InstanceID, metav1.GetOptions{})
	if !apierrors.IsNotFound(errSvc) || !apierrors.IsNotFound(errKeys) {
		t.Errorf("after TerminateGateway: service %v, ConfigMap %v; want both not found", errSvc, errKeys)
	}
}

func qty(l corev1.ResourceList, name corev1.ResourceName, want string) bool {
	q, ok := l[name]
	return ok && q.Cmp(resource.MustParse(want)) == 0
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var last error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s (last error: %v)", what, last)
}

func waitRunning(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, name string) {
	t.Helper()
	waitFor(t, ctx, "pod "+ns+"/"+name+" Running", func() (bool, error) {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return p.Status.Phase == corev1.PodRunning, nil
	})
}

// ensureNamespace creates a namespace (when missing) and its default ServiceAccount, which the
// ServiceAccount admission plugin requires of every pod and no controller creates here.
func ensureNamespace(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns string) {
	t.Helper()
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	_, err = cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func createFakeNode(t *testing.T, ctx context.Context, cs kubernetes.Interface, name string) {
	t.Helper()
	n := node(name, 32, 256, 500, 8, "NVIDIA-A100-SXM4-80GB", false)
	n.Annotations = map[string]string{"kwok.x-k8s.io/node": "fake"}
	n.Labels["kubernetes.io/hostname"] = name
	n.Labels["type"] = "kwok"
	n.Status.Capacity = n.Status.Allocatable.DeepCopy()
	n.Status.Conditions = nil
	created, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(created.Status.Allocatable) == 0 {
		created.Status = n.Status
		if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startProcess runs a binary with its output in dir/<name>.log, stopped at the end of the test;
// the log's end is printed when the test failed.
func startProcess(t *testing.T, dir, name string, env []string, path string, args ...string) {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("--- end of %s's log:\n%s", name, b)
		}
	})
}

// startCluster starts etcd, kube-apiserver (token auth, AlwaysAllow) and kwok on free ports.
func startCluster(t *testing.T, ctx context.Context, bin string) *kubeCluster {
	dir := t.TempDir()
	etcdClient, etcdPeer, apiPort, kwokPort := freePort(t), freePort(t), freePort(t), freePort(t)
	clientURL, peerURL := fmt.Sprintf("http://127.0.0.1:%d", etcdClient), fmt.Sprintf("http://127.0.0.1:%d", etcdPeer)
	startProcess(t, dir, "etcd", nil, filepath.Join(bin, "etcd"),
		"--name=test", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+clientURL, "--advertise-client-urls="+clientURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL, "--initial-cluster=test="+peerURL,
		"--unsafe-no-fsync", "--log-level=warn")
	waitFor(t, ctx, "etcd health", func() (bool, error) {
		res, err := http.Get(clientURL + "/health")
		if err != nil {
			return false, err
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK, nil
	})

	caPEM, certPEM, keyPEM := servingCert(t)
	saKey := pemKey(t)
	const token = "admin-token-0123456789"
	files := map[string][]byte{"ca.crt": caPEM, "tls.crt": certPEM, "tls.key": keyPEM, "sa.key": saKey,
		"tokens.csv": []byte(token + ",admin,admin-uid,system:masters\n")}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f := func(name string) string { return filepath.Join(dir, name) }
	startProcess(t, dir, "kube-apiserver", nil, filepath.Join(bin, "kube-apiserver"),
		"--etcd-servers="+clientURL,
		fmt.Sprintf("--secure-port=%d", apiPort), "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--tls-cert-file="+f("tls.crt"), "--tls-private-key-file="+f("tls.key"), "--cert-dir="+f("certs"),
		"--token-auth-file="+f("tokens.csv"), "--authorization-mode=AlwaysAllow",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+f("sa.key"), "--service-account-signing-key-file="+f("sa.key"),
		"--service-cluster-ip-range=10.96.0.0/16",
		// On loopback the endpoint reconciler refuses the address; no one needs the kubernetes endpoints here.
		"--endpoint-reconciler-type=none",
		"--enable-priority-and-fairness=false")
	server := fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	waitFor(t, ctx, "kube-apiserver /readyz", func() (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, server+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := hc.Do(req)
		if err != nil {
			return false, err
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK, fmt.Errorf("HTTP %d", res.StatusCode)
	})

	kcPath := f("kubeconfig")
	kc := writeKubeconfig(t, kcPath, server, token, caPEM...)
	rc, err := restConfig(kc)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	startProcess(t, dir, "kwok", []string{"HOME=" + dir}, filepath.Join(bin, "kwok"),
		"--kubeconfig="+kcPath, "--config="+filepath.Join(bin, "kwok-stages.yaml"),
		"--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		fmt.Sprintf("--server-address=127.0.0.1:%d", kwokPort), "--node-ip=10.0.0.100", "--cidr=10.244.0.0/16")
	return &kubeCluster{kubeconfig: kc, server: server, caPEM: caPEM, cs: cs}
}

// servingCert makes a CA and a serving certificate for 127.0.0.1 and localhost it signed.
func servingCert(t *testing.T) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dstack-test-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// pemKey is the service-account signing key.
func pemKey(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
}
