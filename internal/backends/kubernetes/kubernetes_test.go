package kubernetes

import (
	"context"
	b64 "encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/config"
	"github.com/dstackgo/dstack/internal/offers"
	"github.com/dstackgo/dstack/internal/resources"
)

// node is a test node with GPU Feature Discovery labels when gpus > 0.
func node(name string, cpu, memGi, diskGi, gpus int, product string, ready bool) *corev1.Node {
	alloc := corev1.ResourceList{
		corev1.ResourceCPU:              *resource.NewQuantity(int64(cpu), resource.DecimalSI),
		corev1.ResourceMemory:           resource.MustParse(fmt.Sprintf("%dGi", memGi)),
		corev1.ResourceEphemeralStorage: resource.MustParse(fmt.Sprintf("%dGi", diskGi)),
		corev1.ResourcePods:             resource.MustParse("110"),
	}
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelArchStable: "amd64"}},
		Status: corev1.NodeStatus{Allocatable: alloc, Capacity: alloc,
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0." + name[len(name)-1:]}}},
	}
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status}}
	if gpus > 0 {
		n.Labels["nvidia.com/gpu.product"] = product
		n.Labels["nvidia.com/gpu.count"] = fmt.Sprint(gpus)
		n.Labels["nvidia.com/gpu.memory"] = "81920"
		n.Status.Allocatable[nvidiaGPU] = *resource.NewQuantity(int64(gpus), resource.DecimalSI)
	}
	return n
}

// pod is a pod bound to nodeName requesting cpu (millicores), memory (Mi) and GPUs.
func pod(ns, name, nodeName string, milli, memMi, gpus int, phase corev1.PodPhase) *corev1.Pod {
	req := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewMilliQuantity(int64(milli), resource.DecimalSI),
		corev1.ResourceMemory: resource.MustParse(fmt.Sprintf("%dMi", memMi)),
	}
	if gpus > 0 {
		req[nvidiaGPU] = *resource.NewQuantity(int64(gpus), resource.DecimalSI)
	}
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:   corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{Requests: req}}}},
		Status: corev1.PodStatus{Phase: phase}}
}

func byName(list []offers.Offer) map[string]offers.Offer {
	m := map[string]offers.Offer{}
	for _, o := range list {
		m[o.Instance.Name] = o
	}
	return m
}

func TestGPUNames(t *testing.T) {
	for product, want := range map[string]string{
		"NVIDIA-A100-SXM4-80GB": "A100", "Tesla-T4": "T4", "NVIDIA-H100-80GB-HBM3": "H100", "NVIDIA-RTX-A6000": "RTXA6000",
		"NVIDIA-GeForce-RTX-4090": "RTX4090", "NVIDIA-L40S": "L40S", "NVIDIA-A10G": "A10G", "Tesla-V100-SXM2-16GB": "V100",
		"NVIDIA-H100-NVL": "H100NVL", "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb": "A100", "NVIDIA-A100-PCIE-40GB-SHARED": "A100",
	} {
		if got := NvidiaGPUName(product); got != want {
			t.Errorf("NvidiaGPUName(%q) = %q, want %q", product, got, want)
		}
	}
	for _, c := range []struct{ product, dev, vram, name string }{
		{"", "74a1", "", "MI300X"}, {"AMD_Instinct_MI300X_OAM", "", "192G", "MI300X"}, {"", "74a5", "", "MI325X"},
		{"Instinct MI210", "", "64G", "MI210"},
	} {
		name, mem := AMDGPU(c.product, c.dev, c.vram)
		if name != c.name || mem <= 0 {
			t.Errorf("AMDGPU(%q, %q, %q) = %q, %d", c.product, c.dev, c.vram, name, mem)
		}
	}
	if _, mem := AMDGPU("", "74a1", "192G"); mem != 192*1024 {
		t.Errorf("MI300X memory %d MiB", mem)
	}
}

// TestOffers: one offer per node from its allocatable resources and GFD labels, minus the
// requests of the live pods bound to it; not-ready and cordoned nodes are not available.
func TestOffers(t *testing.T) {
	cordoned := node("node-4", 8, 32, 100, 0, "", true)
	cordoned.Spec.Unschedulable = true
	tainted := node("node-5", 8, 32, 100, 0, "", true)
	tainted.Spec.Taints = []corev1.Taint{{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule}}
	gpuTainted := node("node-6", 8, 32, 100, 1, "Tesla-T4", true)
	gpuTainted.Spec.Taints = []corev1.Taint{{Key: "nvidia.com/gpu", Value: "present", Effect: corev1.TaintEffectNoSchedule}}
	gpuTainted.Labels["nvidia.com/gpu.memory"] = "15360"
	cs := fake.NewClientset(
		node("node-1", 32, 256, 500, 8, "NVIDIA-A100-SXM4-80GB", true),
		node("node-2", 16, 64, 200, 0, "", true),
		node("node-3", 16, 64, 200, 0, "", false),
		cordoned, tainted, gpuTainted,
		pod("default", "running", "node-1", 4500, 16384, 2, corev1.PodRunning),
		pod("other", "pending", "node-1", 1000, 1024, 1, corev1.PodPending),
		pod("default", "done", "node-1", 8000, 65536, 4, corev1.PodSucceeded),
		pod("default", "failed", "node-2", 8000, 1024, 0, corev1.PodFailed),
		pod("default", "unbound", "", 8000, 1024, 0, corev1.PodPending),
	)
	nodes, err := listNodes(context.Background(), cs)
	if err != nil {
		t.Fatal(err)
	}
	all := byName(offersFor(nodes, offers.Requirements{}))
	if len(all) != 6 {
		t.Fatalf("%d offers, want one per node: %v", len(all), all)
	}
	n1 := all["node-1"]
	// 32 CPUs - 5.5 requested = 26.5 → 26 whole CPUs; 256Gi - 17Gi; 8 GPUs - 3.
	if r := n1.Instance.Resources; r.CPUs != 26 || r.MemoryMiB != (256-17)*1024 || len(r.GPUs) != 5 || r.Disk.SizeMiB != 500*1024 || r.CPUArch != "x86" {
		t.Errorf("node-1 resources = %+v", r)
	}
	if g := n1.Instance.Resources.GPUs[0]; g.Name != "A100" || g.MemoryMiB != 81920 || g.Vendor != "nvidia" {
		t.Errorf("node-1 GPU = %+v", g)
	}
	if n1.Price != 0 || n1.Region != Region || n1.Backend != "kubernetes" || n1.InstanceRuntime != offers.RuntimeRunner || n1.Availability != offers.Available {
		t.Errorf("node-1 offer = %+v", n1)
	}
	if r := all["node-2"].Instance.Resources; r.CPUs != 16 || len(r.GPUs) != 0 {
		t.Errorf("node-2 (only an ended pod) = %+v", r)
	}
	for name, want := range map[string]offers.Availability{"node-2": offers.Available, "node-3": offers.NotAvailable,
		"node-4": offers.NotAvailable, "node-5": offers.NotAvailable, "node-6": offers.Available} {
		if got := all[name].Availability; got != want {
			t.Errorf("%s availability = %s, want %s", name, got, want)
		}
	}

	// With requirements, an offer is the part of the node the job asks for.
	gpu, err := resources.ParseGPU("A100:2")
	if err != nil {
		t.Fatal(err)
	}
	spec := resources.Default()
	spec.GPU = gpu
	got := offersFor(nodes, offers.Requirements{Resources: spec})
	if len(got) != 1 || got[0].Instance.Name != "node-1" {
		t.Fatalf("A100:2 offers = %+v", got)
	}
	if r := got[0].Instance.Resources; r.CPUs != 2 || r.MemoryMiB != 8*1024 || len(r.GPUs) != 2 || r.Disk.SizeMiB != 100*1024 {
		t.Errorf("A100:2 offer resources = %+v, want the minimums 2 CPUs, 8GB, 2 GPUs, 100GB", r)
	}
	gpu6, _ := resources.ParseGPU("A100:6")
	spec.GPU = gpu6
	if got := offersFor(nodes, offers.Requirements{Resources: spec}); len(got) != 0 {
		t.Errorf("A100:6 with 5 free: %+v", got)
	}
	spec.GPU = &resources.GPUSpec{Count: resources.AtLeast(0)}
	spec.CPU.Count = resources.AtLeast(20)
	if got := byName(offersFor(nodes, offers.Requirements{Resources: spec})); len(got) != 1 || len(got["node-1"].Instance.Resources.GPUs) != 0 {
		t.Errorf("cpu 20.. offers = %+v, want node-1 without GPUs", got)
	}
	if got := offersFor(nodes, offers.Requirements{Spot: new(true)}); len(got) != 0 {
		t.Errorf("spot offers: %+v", got)
	}
}

// TestPodRequests: init containers count at their largest, sidecars and overhead add up.
func TestPodRequests(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	cpu := func(m int64) corev1.ResourceRequirements {
		return corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: *resource.NewMilliQuantity(m, resource.DecimalSI)}}
	}
	p := &corev1.Pod{Spec: corev1.PodSpec{
		Containers:     []corev1.Container{{Resources: cpu(500)}, {Resources: cpu(500)}},
		InitContainers: []corev1.Container{{Resources: cpu(2000)}, {Resources: cpu(100), RestartPolicy: &always}},
		Overhead:       corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m")},
	}}
	q := podRequests(p)[corev1.ResourceCPU]
	if got := q.MilliValue(); got != 2050 {
		t.Errorf("pod CPU = %dm, want 2050m (the 2-CPU init container, plus the overhead)", got)
	}
	p.Spec.InitContainers[0].Resources = cpu(200)
	q = podRequests(p)[corev1.ResourceCPU]
	if got := q.MilliValue(); got != 1150 {
		t.Errorf("pod CPU = %dm, want 1150m (containers, sidecar, overhead)", got)
	}
}

// testCluster is a fake clientset that, like the API server, names pods from generateName and
// gives services a ClusterIP and NodePort.
func testCluster(t *testing.T, objs ...runtime.Object) *fake.Clientset {
	cs := fake.NewClientset(objs...)
	var seq atomic.Int32
	cs.PrependReactor("create", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		obj := a.(k8stesting.CreateAction).GetObject()
		if m, ok := obj.(metav1.Object); ok && m.GetName() == "" && m.GetGenerateName() != "" {
			m.SetName(fmt.Sprintf("%s%05d", m.GetGenerateName(), seq.Add(1)))
		}
		if s, ok := obj.(*corev1.Service); ok {
			n := seq.Add(1)
			s.Spec.ClusterIP = fmt.Sprintf("10.96.0.%d", n)
			for i := range s.Spec.Ports {
				if s.Spec.Type == corev1.ServiceTypeNodePort && s.Spec.Ports[i].NodePort == 0 {
					s.Spec.Ports[i].NodePort = 30000 + n
				}
			}
		}
		return false, nil, nil
	})
	return cs
}

func instanceConfig(instance string, keys ...string) backends.InstanceConfig {
	return backends.InstanceConfig{ProjectName: "Main_Project", InstanceName: instance, SSHPublicKeys: keys,
		ShimURL: "http://server:3000/api/agents/dstack-shim-linux-amd64",
		ShimEnv: map[string]string{"DSTACK_JOB_IMAGE": "python:3.12", "HF_TOKEN": "x"},
		Tags:    map[string]string{"dstack_server": "srv-1", "dstack_instance": instance, "dstack_project": "Main_Project"}}
}

func podsWith(t *testing.T, cs *fake.Clientset, ns, selector string) []corev1.Pod {
	t.Helper()
	l, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

// TestCompute drives a job's lifecycle against the fake clientset: the job pod's spec, the jump
// pod reused by a second job, provisioning data, terminate twice, the orphan listing.
func TestCompute(t *testing.T) {
	ctx := context.Background()
	n1 := node("node-1", 32, 256, 500, 8, "NVIDIA-A100-SXM4-80GB", true)
	n1.Status.Addresses = append(n1.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "203.0.113.7"})
	cs := testCluster(t, n1, node("node-2", 4, 16, 100, 0, "", true))
	c := &compute{cs: cs, s: settings{namespace: "team"}}

	nodes, err := listNodes(ctx, cs)
	if err != nil {
		t.Fatal(err)
	}
	gpu, _ := resources.ParseGPU("A100:2")
	spec := resources.Default()
	spec.GPU = gpu
	list := offersFor(nodes, offers.Requirements{Resources: spec})
	if len(list) != 1 {
		t.Fatalf("offers = %+v", list)
	}
	offer := list[0]

	pd, err := c.CreateInstance(ctx, offer, instanceConfig("fleet-0-abcd", "ssh-ed25519 AAAA project"))
	if err != nil {
		t.Fatal(err)
	}
	name := PodName("Main_Project", "fleet-0-abcd")
	if name != "dstack-main-project-fleet-0-abcd" || pd.InstanceID != name {
		t.Fatalf("instance id %q, pod name %q", pd.InstanceID, name)
	}
	p, err := cs.CoreV1().Pods("team").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Spec.NodeName != "node-1" || p.Namespace != "team" || p.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("pod on %q in %q restart %s", p.Spec.NodeName, p.Namespace, p.Spec.RestartPolicy)
	}
	ctr := p.Spec.Containers[0]
	for res, want := range map[corev1.ResourceName]string{corev1.ResourceCPU: "2", corev1.ResourceMemory: "8Gi", nvidiaGPU: "2"} {
		req, lim := ctr.Resources.Requests[res], ctr.Resources.Limits[res]
		if w := resource.MustParse(want); req.Cmp(w) != 0 || lim.Cmp(w) != 0 {
			t.Errorf("%s request %s limit %s, want %s both", res, req.String(), lim.String(), want)
		}
	}
	if d := ctr.Resources.Requests[corev1.ResourceEphemeralStorage]; d.Cmp(resource.MustParse("100Gi")) != 0 {
		t.Errorf("ephemeral-storage request %s", d.String())
	}
	if _, ok := ctr.Resources.Limits[corev1.ResourceEphemeralStorage]; ok {
		t.Error("ephemeral-storage has a limit; the kubelet would evict the job for writing more")
	}
	if ctr.Image != "python:3.12" || len(ctr.Command) != 3 || !strings.Contains(ctr.Command[2], "dstack-runner") ||
		!strings.Contains(ctr.Command[2], "http://server:3000/api/agents/dstack-runner-linux-amd64") {
		t.Errorf("container %s %q", ctr.Image, ctr.Command)
	}
	env := map[string]string{}
	for _, e := range ctr.Env {
		env[e.Name] = e.Value
	}
	if env["HF_TOKEN"] != "x" || env["DSTACK_PUBLIC_SSH_KEY"] != "ssh-ed25519 AAAA project" || env["DSTACK_JOB_IMAGE"] != "" {
		t.Errorf("env %v", env)
	}
	if p.Labels["dstack_server"] != "srv-1" || tagsOf(p.ObjectMeta)["dstack_project"] != "Main_Project" {
		t.Errorf("labels %v annotations %v", p.Labels, p.Annotations)
	}
	svc, err := cs.CoreV1().Services("team").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.Type != corev1.ServiceTypeClusterIP || svc.Spec.Selector[labelPod] != name || svc.Spec.Ports[0].Port != 10022 {
		t.Errorf("service %+v", svc.Spec)
	}
	if pd.Dockerized || pd.Username != "root" || pd.Hostname != nil || pd.Price != 0 {
		t.Errorf("provisioning data %+v", pd)
	}
	if pd.SSHProxy == nil || pd.SSHProxy.Hostname != "203.0.113.7" || pd.SSHProxy.Port < 30000 || pd.SSHProxy.Username != "root" {
		t.Fatalf("ssh proxy %+v, want the first node's ExternalIP and the NodePort", pd.SSHProxy)
	}

	// Pending: no address yet. Running: the ClusterIP.
	if err := c.UpdateProvisioningData(ctx, pd); err != nil || pd.Hostname != nil {
		t.Fatalf("pending: %v, hostname %v", err, pd.Hostname)
	}
	p.Status.Phase, p.Status.PodIP = corev1.PodRunning, "10.244.1.5"
	if _, err := cs.CoreV1().Pods("team").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.UpdateProvisioningData(ctx, pd); err != nil {
		t.Fatal(err)
	}
	if pd.Hostname == nil || *pd.Hostname != svc.Spec.ClusterIP || *pd.SSHPort != 10022 || *pd.InternalIP != "10.244.1.5" {
		t.Errorf("running: hostname %v port %v internal %v", pd.Hostname, pd.SSHPort, pd.InternalIP)
	}

	// The jump pod: dstack-runner with --stay, keys from the ConfigMap, on the node without GPUs.
	jump := JumpName("Main_Project")
	jumps := podsWith(t, cs, "team", labelPod+"="+jump)
	if len(jumps) != 1 {
		t.Fatalf("%d jump pods", len(jumps))
	}
	jp := jumps[0]
	if jp.Spec.NodeName != "node-2" || !strings.HasSuffix(jp.Spec.Containers[0].Command[2], "--stay") ||
		jp.Spec.Volumes[0].ConfigMap.Name != jump || jp.Spec.Containers[0].VolumeMounts[0].MountPath != "/root/.ssh" {
		t.Errorf("jump pod %+v", jp.Spec)
	}
	if jp.Labels["dstack_server"] != "" {
		t.Error("the jump pod has a dstack_server label: the orphan reconciler would delete it")
	}

	// A second job reuses the jump pod and its service, and adds its key.
	pd2, err := c.CreateInstance(ctx, offer, instanceConfig("fleet-1-efgh", "ssh-ed25519 AAAA project", "ssh-ed25519 BBBB user"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(podsWith(t, cs, "team", labelPod+"="+jump)); n != 1 {
		t.Errorf("%d jump pods after the second job, want 1", n)
	}
	if *pd2.SSHProxy != *pd.SSHProxy {
		t.Errorf("second job's proxy %+v, first %+v", pd2.SSHProxy, pd.SSHProxy)
	}
	cm, err := cs.CoreV1().ConfigMaps("team").Get(ctx, jump, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := cm.Data[authorizedKeysFile]; got != "ssh-ed25519 AAAA project\nssh-ed25519 BBBB user\n" {
		t.Errorf("authorized_keys %q", got)
	}

	// A jump pod that ended is replaced.
	jp.Status.Phase = corev1.PodFailed
	if _, err := cs.CoreV1().Pods("team").UpdateStatus(ctx, &jp, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.jumpProxy(ctx, instanceConfig("x")); err != nil {
		t.Fatal(err)
	}
	if got := podsWith(t, cs, "team", labelPod+"="+jump); len(got) != 1 || got[0].Name == jp.Name {
		t.Errorf("jump pods after the first failed: %v", got)
	}

	// The orphan reconciler sees both jobs, not the jump pod.
	tagged, err := c.ListInstances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(tagged) != 2 || tagged[0].Tags["dstack_server"] != "srv-1" || tagged[0].Tags["dstack_instance"] == "" {
		t.Errorf("ListInstances = %+v", tagged)
	}

	// Terminate twice: the second finds nothing and succeeds.
	for i := range 2 {
		if err := c.TerminateInstance(ctx, pd.InstanceID, pd.Region, pd.BackendData); err != nil {
			t.Fatalf("terminate %d: %v", i, err)
		}
	}
	if _, err := cs.CoreV1().Pods("team").Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("pod after terminate: %v", err)
	}
	if _, err := cs.CoreV1().Services("team").Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("service after terminate: %v", err)
	}
	var pe *backends.ProvisioningError
	if err := c.UpdateProvisioningData(ctx, pd); !errors.As(err, &pe) {
		t.Errorf("update after terminate = %v, want a ProvisioningError", err)
	}
}

// TestComputeSettings: ssh_host and ssh_port from the config; a failed pod is a provisioning error.
func TestComputeSettings(t *testing.T) {
	ctx := context.Background()
	cs := testCluster(t, node("node-1", 8, 32, 100, 0, "", true))
	c := &compute{cs: cs, s: settings{namespace: "default", sshHost: "gw.example.com", sshPort: 32000}}
	nodes, _ := listNodes(ctx, cs)
	offer := offersFor(nodes, offers.Requirements{})[0]
	pd, err := c.CreateInstance(ctx, offer, instanceConfig("i-1"))
	if err != nil {
		t.Fatal(err)
	}
	if pd.SSHProxy.Hostname != "gw.example.com" || pd.SSHProxy.Port != 32000 {
		t.Errorf("proxy %+v", pd.SSHProxy)
	}
	p, _ := cs.CoreV1().Pods("default").Get(ctx, pd.InstanceID, metav1.GetOptions{})
	p.Status.Phase, p.Status.Reason, p.Status.Message = corev1.PodFailed, "OutOfcpu", "Node didn't have enough resource: cpu"
	if _, err := cs.CoreV1().Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var pe *backends.ProvisioningError
	if err := c.UpdateProvisioningData(ctx, pd); !errors.As(err, &pe) || !strings.Contains(pe.Msg, "OutOfcpu") {
		t.Errorf("failed pod: %v", err)
	}
	// A cluster whose nodes have no address needs ssh_host.
	bare := node("node-1", 8, 32, 100, 0, "", true)
	bare.Status.Addresses = nil
	c = &compute{cs: testCluster(t, bare), s: settings{namespace: "default"}}
	if _, err := c.CreateInstance(ctx, offer, instanceConfig("i-2")); err == nil || !strings.Contains(err.Error(), "networking.ssh_host") {
		t.Errorf("no node address: %v", err)
	}
}

// TestErrors: a kubeconfig that does not load or is refused names `kubeconfig` and leaves the
// secret out; other API errors say what failed.
func TestErrors(t *testing.T) {
	secret := "s3cr3t-t0ken-value-123456"
	for _, kc := range []string{"", "not: [a kubeconfig", "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user: {token: " + secret + "}\n"} {
		_, err := restConfig(kc)
		var ce *backends.CredentialsError
		if !errors.As(err, &ce) || len(ce.Fields) != 1 || strings.Join(ce.Fields[0], ".") != "kubeconfig" {
			t.Errorf("restConfig(%q) = %v, want a CredentialsError on kubeconfig", kc, err)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("the error shows the token: %v", err)
		}
	}
	gr := schema.GroupResource{Resource: "nodes"}
	for _, err := range []error{apierrors.NewUnauthorized("Unauthorized"), apierrors.NewForbidden(gr, "", errors.New("no"))} {
		var ce *backends.CredentialsError
		if !errors.As(apiError("listing nodes", err), &ce) || ce.Fields[0][0] != "kubeconfig" {
			t.Errorf("apiError(%v) is not a CredentialsError", err)
		}
	}
	var ce *backends.CredentialsError
	if err := apiError("listing nodes", apierrors.NewInternalError(errors.New("etcd"))); err == nil || errors.As(err, &ce) || !strings.Contains(err.Error(), "listing nodes") {
		t.Errorf("500: %v", err)
	}
	if got := redact("error near "+secret, "token: "+secret); strings.Contains(got, secret) {
		t.Errorf("redact = %q", got)
	}
}

// TestSeedExamples: the seed's kubeconfig examples (self-managed with ssh_host and ssh_port,
// managed with ssh_port only) load with the kubeconfig read from ~/.kube/config.
func TestSeedExamples(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	kubeconfig := writeKubeconfig(t, filepath.Join(home, ".kube", "config"), "https://127.0.0.1:6443", "tok")
	for name, yaml := range map[string]string{
		"self-managed": `projects:
- name: main
  backends:
    - type: kubernetes
      kubeconfig:
        filename: ~/.kube/config
      networking:
        ssh_host: localhost
        ssh_port: 32000
`,
		"managed": `projects:
  - name: main
    backends:
      - type: kubernetes
        kubeconfig:
          filename: ~/.kube/config
        networking:
          ssh_port: 32000
`,
	} {
		srv, err := config.Parse(name, []byte(yaml), config.Options{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		cfg := srv.Projects[0].Backends[0]
		s := settingsOf(cfg)
		if s.kubeconfig != kubeconfig || s.sshPort != 32000 || s.namespace != "default" {
			t.Errorf("%s: settings %+v", name, s)
		}
		if name == "self-managed" && s.sshHost != "localhost" {
			t.Errorf("ssh_host %q", s.sshHost)
		}
		rc, err := restConfig(s.kubeconfig)
		if err != nil || rc.Host != "https://127.0.0.1:6443" || rc.BearerToken != "tok" {
			t.Errorf("%s: rest config %v %v", name, rc, err)
		}
		if _, err := newCompute(cfg); err != nil {
			t.Errorf("%s: newCompute: %v", name, err)
		}
	}
}

// writeKubeconfig writes a kubeconfig for server with a bearer token (and the CA, when given) and
// returns its contents.
func writeKubeconfig(t *testing.T, path, server, token string, caPEM ...byte) string {
	t.Helper()
	cluster := "    insecure-skip-tls-verify: true\n"
	if len(caPEM) > 0 {
		cluster = fmt.Sprintf("    certificate-authority-data: %s\n", base64(caPEM))
	}
	data := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
%scontexts:
- name: test
  context: {cluster: test, user: test}
current-context: test
users:
- name: test
  user: {token: %s}
`, server, cluster, token)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return data
}

func base64(b []byte) string { return b64.StdEncoding.EncodeToString(b) }
