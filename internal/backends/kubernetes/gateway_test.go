package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/dstackgo/dstack/internal/backends"
)

func gatewayConfig(name string, keys ...string) backends.GatewayConfig {
	return backends.GatewayConfig{ProjectName: "Main_Project", Name: name, Region: "-", PublicIP: true,
		SSHPublicKeys: keys, ShimURL: "http://server:3000/api/agents/dstack-shim-linux-amd64",
		Tags: map[string]string{"dstack_server": "srv-1", "dstack_project": "Main_Project", "dstack_gateway": name}}
}

func setPodPhase(t *testing.T, cs *fake.Clientset, ns, name string, phase corev1.PodPhase) {
	t.Helper()
	p, err := cs.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Status.Phase, p.Status.Reason = phase, ""
	if phase == corev1.PodFailed {
		p.Status.Reason = "Evicted"
	}
	if _, err := cs.CoreV1().Pods(ns).UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// setIngress plays the cloud controller: it writes the service's load balancer status.
func setIngress(t *testing.T, cs *fake.Clientset, ns, name string, ing ...corev1.LoadBalancerIngress) {
	t.Helper()
	s, err := cs.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Status.LoadBalancer.Ingress = ing
	if _, err := cs.CoreV1().Services(ns).UpdateStatus(context.Background(), s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestGateway drives a gateway's lifecycle against the fake clientset: the pod and service made,
// the address once the cluster assigns one, failures, terminate twice.
func TestGateway(t *testing.T) {
	ctx := context.Background()
	// The arm node has the most free CPU and no GPU, yet dstack-runner comes for amd64.
	arm := node("node-3", 64, 256, 100, 0, "", true)
	arm.Labels[corev1.LabelArchStable] = "arm64"
	cs := testCluster(t, node("node-1", 32, 256, 500, 8, "NVIDIA-A100-SXM4-80GB", true), node("node-2", 4, 16, 100, 0, "", true), arm)
	var comp backends.Compute = &compute{cs: cs, s: settings{namespace: "team"}}
	c, ok := comp.(backends.GatewayCompute)
	if !ok {
		t.Fatal("the kubernetes compute is not a GatewayCompute")
	}

	gpd, err := c.CreateGateway(ctx, gatewayConfig("gw", "ssh-ed25519 AAAA project"))
	if err != nil {
		t.Fatal(err)
	}
	name := "dstack-gateway-main-project-gw"
	var bd gatewayData
	if err := json.Unmarshal([]byte(gpd.BackendData), &bd); err != nil {
		t.Fatal(err)
	}
	if gpd.Backend != "kubernetes" || gpd.InstanceID != name || gpd.Region != Region || gpd.Username != "root" || gpd.SSHPort != 22 ||
		gpd.IPAddress != "" || bd != (gatewayData{Namespace: "team", Service: name + "-service"}) {
		t.Fatalf("provisioning data %+v", gpd)
	}

	p, err := cs.CoreV1().Pods("team").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctr := p.Spec.Containers[0]
	if p.Spec.NodeName != "node-2" || !strings.HasSuffix(ctr.Command[2], "--stay") ||
		!strings.Contains(ctr.Command[2], "http://server:3000/api/agents/dstack-runner-linux-amd64") ||
		p.Spec.Volumes[0].ConfigMap.Name != name || ctr.VolumeMounts[0].MountPath != "/root/.ssh" {
		t.Errorf("gateway pod on %s: %+v", p.Spec.NodeName, ctr)
	}
	ports := map[string]int32{}
	for _, cp := range ctr.Ports {
		ports[cp.Name] = cp.ContainerPort
	}
	if ports["ssh"] != runnerSSHPort || ports["http"] != 80 || ports["https"] != 443 {
		t.Errorf("container ports %v", ports)
	}
	if !qty(ctr.Resources.Requests, "cpu", "1") || !qty(ctr.Resources.Limits, "cpu", "1") ||
		!qty(ctr.Resources.Requests, "memory", "1Gi") || !qty(ctr.Resources.Limits, "memory", "1Gi") {
		t.Errorf("resources %+v", ctr.Resources)
	}
	if tags := tagsOf(p.ObjectMeta); tags["dstack_gateway"] != "gw" || tags["dstack_server"] != "srv-1" || p.Labels["dstack_project"] != "Main_Project" {
		t.Errorf("labels %v annotations %v", p.Labels, p.Annotations)
	}
	cm, err := cs.CoreV1().ConfigMaps("team").Get(ctx, name, metav1.GetOptions{})
	if err != nil || cm.Data[authorizedKeysFile] != "ssh-ed25519 AAAA project\n" {
		t.Errorf("keys ConfigMap %v %v", cm, err)
	}
	svc, err := cs.CoreV1().Services("team").Get(ctx, name+"-service", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sp := map[int32]int32{}
	for _, port := range svc.Spec.Ports {
		sp[port.Port] = port.TargetPort.IntVal
	}
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.Spec.Selector[labelPod] != name || len(sp) != 3 ||
		sp[22] != runnerSSHPort || sp[80] != 80 || sp[443] != 443 || tagsOf(svc.ObjectMeta)["dstack_gateway"] != "gw" {
		t.Errorf("service %+v", svc.Spec)
	}
	// The orphan reconciler's job listing leaves gateways alone.
	if tagged, err := comp.(backends.InstanceLister).ListInstances(ctx); err != nil || len(tagged) != 0 {
		t.Errorf("ListInstances = %+v, %v", tagged, err)
	}

	// No address before the cluster assigns one, nor while the pod is pending.
	if err := c.UpdateGateway(ctx, gpd); err != nil || gpd.IPAddress != "" {
		t.Fatalf("no ingress: %v, %+v", err, gpd)
	}
	setIngress(t, cs, "team", name+"-service", corev1.LoadBalancerIngress{IP: "203.0.113.10"})
	if err := c.UpdateGateway(ctx, gpd); err != nil || gpd.IPAddress != "" {
		t.Fatalf("pending pod: %v, %+v", err, gpd)
	}
	setPodPhase(t, cs, "team", name, corev1.PodRunning)
	if err := c.UpdateGateway(ctx, gpd); err != nil || gpd.IPAddress != "203.0.113.10" || gpd.Hostname != "" {
		t.Fatalf("ingress IP: %v, %+v", err, gpd)
	}
	// A load balancer known by name only (AWS ELB): its hostname is the address too.
	setIngress(t, cs, "team", name+"-service", corev1.LoadBalancerIngress{Hostname: "a1b2.elb.amazonaws.com"})
	if err := c.UpdateGateway(ctx, gpd); err != nil || gpd.IPAddress != "a1b2.elb.amazonaws.com" || gpd.Hostname != "a1b2.elb.amazonaws.com" {
		t.Fatalf("ingress hostname: %v, %+v", err, gpd)
	}

	// Creating it again (a retried call) keeps the pod and the service.
	again, err := c.CreateGateway(ctx, gatewayConfig("gw", "ssh-ed25519 AAAA project"))
	if err != nil || again.InstanceID != name {
		t.Fatalf("create again: %+v, %v", again, err)
	}
	if n := len(podsWith(t, cs, "team", labelRole+"="+roleGateway)); n != 1 {
		t.Errorf("%d gateway pods after creating it again", n)
	}

	// The pod failing fails the gateway.
	setPodPhase(t, cs, "team", name, corev1.PodFailed)
	var pe *backends.ProvisioningError
	if err := c.UpdateGateway(ctx, gpd); !errors.As(err, &pe) || !strings.Contains(pe.Msg, "Evicted") {
		t.Errorf("failed pod: %v", err)
	}

	// Terminate twice: everything goes, the second finds nothing.
	for i := range 2 {
		if err := c.TerminateGateway(ctx, *gpd); err != nil {
			t.Fatalf("terminate %d: %v", i, err)
		}
	}
	if _, err := cs.CoreV1().Pods("team").Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("pod after terminate: %v", err)
	}
	if _, err := cs.CoreV1().Services("team").Get(ctx, name+"-service", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("service after terminate: %v", err)
	}
	if _, err := cs.CoreV1().ConfigMaps("team").Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("ConfigMap after terminate: %v", err)
	}
	if err := c.UpdateGateway(ctx, gpd); !errors.As(err, &pe) {
		t.Errorf("update after terminate = %v, want a ProvisioningError", err)
	}
}

// TestGatewayNoAddress: a LoadBalancer service without an address for longer than
// LoadBalancerTimeout fails the gateway with a message that says what the cluster lacks.
func TestGatewayNoAddress(t *testing.T) {
	ctx := context.Background()
	cs := testCluster(t, node("node-1", 8, 32, 100, 0, "", true))
	c := &compute{cs: cs, s: settings{namespace: "default"}}
	gpd, err := c.CreateGateway(ctx, gatewayConfig("gw"))
	if err != nil {
		t.Fatal(err)
	}
	setPodPhase(t, cs, "default", gpd.InstanceID, corev1.PodRunning)
	svcs := cs.CoreV1().Services("default")
	svc, err := svcs.Get(ctx, gpd.InstanceID+"-service", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, age := range []time.Duration{LoadBalancerTimeout - time.Minute, LoadBalancerTimeout + time.Minute} {
		svc.CreationTimestamp = metav1.NewTime(time.Now().Add(-age))
		if svc, err = svcs.Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		err := c.UpdateGateway(ctx, gpd)
		var pe *backends.ProvisioningError
		switch {
		case age < LoadBalancerTimeout && err != nil:
			t.Errorf("service %s old: %v, want nothing yet", age, err)
		case age > LoadBalancerTimeout && (!errors.As(err, &pe) || pe.Msg != NoAddressMessage("default/"+gpd.InstanceID+"-service")):
			t.Errorf("service %s old: %v, want the no-address ProvisioningError", age, err)
		}
	}
	if msg := NoAddressMessage("default/x-service"); !strings.Contains(msg, "the cluster assigned no external address to the LoadBalancer service default/x-service") ||
		!strings.Contains(msg, "kubectl describe service -n default x-service") {
		t.Errorf("message %q", msg)
	}
}

// TestGatewayRefusals: what CreateGateway refuses, and that a refused gateway leaves nothing of
// its own behind and nothing of others' touched.
func TestGatewayRefusals(t *testing.T) {
	ctx := context.Background()
	cs := testCluster(t, node("node-1", 8, 32, 100, 0, "", true))
	c := &compute{cs: cs, s: settings{namespace: "default"}}
	left := func(what string) {
		t.Helper()
		if l, _ := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: labelRole + "=" + roleGateway}); len(l.Items) != 0 {
			t.Errorf("%s: pods left %v", what, l.Items)
		}
		if l, _ := cs.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{LabelSelector: labelRole + "=" + roleGateway}); len(l.Items) != 0 {
			t.Errorf("%s: ConfigMaps left %v", what, l.Items)
		}
	}

	private := gatewayConfig("gw")
	private.PublicIP = false
	if _, err := c.CreateGateway(ctx, private); err == nil || !strings.Contains(err.Error(), "public_ip: false") {
		t.Errorf("private gateway: %v", err)
	}
	noURL := gatewayConfig("gw")
	noURL.ShimURL = ""
	if _, err := c.CreateGateway(ctx, noURL); err == nil || !strings.Contains(err.Error(), "ShimURL") {
		t.Errorf("no shim URL: %v", err)
	}
	for _, it := range []string{"t3.micro", "cpu=2,disk=10Gi", "cpu=-1", "memory=lots"} {
		cfg := gatewayConfig("gw")
		cfg.InstanceType = it
		if _, err := c.CreateGateway(ctx, cfg); err == nil || !strings.Contains(err.Error(), "cpu=2,memory=4Gi") {
			t.Errorf("instance_type %q: %v", it, err)
		}
	}
	left("refused configurations")

	big := gatewayConfig("gw")
	big.InstanceType = "cpu=16"
	var nc *backends.NoCapacityError
	if _, err := c.CreateGateway(ctx, big); !errors.As(err, &nc) {
		t.Errorf("16 CPUs on an 8-CPU node: %v, want a NoCapacityError", err)
	}
	left("no capacity")

	sized := gatewayConfig("sized")
	sized.InstanceType = "cpu=500m, memory=2Gi"
	gpd, err := c.CreateGateway(ctx, sized)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := cs.CoreV1().Pods("default").Get(ctx, gpd.InstanceID, metav1.GetOptions{})
	if r := p.Spec.Containers[0].Resources; !qty(r.Limits, "cpu", "500m") || !qty(r.Requests, "memory", "2Gi") {
		t.Errorf("instance_type cpu=500m,memory=2Gi: %+v", r)
	}
	if err := c.TerminateGateway(ctx, *gpd); err != nil {
		t.Fatal(err)
	}

	// A service of that name that is not a gateway's: refused, the service kept, the rest removed.
	name := GatewayName("Main_Project", "gw")
	other := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name + "-service", Namespace: "default"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP}}
	if _, err := cs.CoreV1().Services("default").Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateGateway(ctx, gatewayConfig("gw")); err == nil || !strings.Contains(err.Error(), "not this gateway's") {
		t.Errorf("foreign service: %v", err)
	}
	if _, err := cs.CoreV1().Services("default").Get(ctx, name+"-service", metav1.GetOptions{}); err != nil {
		t.Errorf("the foreign service was deleted: %v", err)
	}
	left("foreign service")

	// Another server's gateway of the same name: refused and left alone.
	theirs := gatewayConfig("gw")
	theirs.Tags["dstack_server"] = "srv-2"
	if err := cs.CoreV1().Services("default").Delete(ctx, name+"-service", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateGateway(ctx, theirs); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateGateway(ctx, gatewayConfig("gw")); err == nil || !strings.Contains(err.Error(), "another gateway or dstack server") {
		t.Errorf("another server's pod: %v", err)
	}
	_, errPod := cs.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
	_, errSvc := cs.CoreV1().Services("default").Get(ctx, name+"-service", metav1.GetOptions{})
	_, errKeys := cs.CoreV1().ConfigMaps("default").Get(ctx, name, metav1.GetOptions{})
	if err := errors.Join(errPod, errSvc, errKeys); err != nil {
		t.Errorf("another server's gateway was touched: %v", err)
	}
}

// TestGatewayName: names stay DNS labels short enough for the service's, with the prefix the
// orphan reconciler looks for.
func TestGatewayName(t *testing.T) {
	for _, tc := range []struct{ project, gateway, want string }{
		{"main", "gw", "dstack-gateway-main-gw"},
		{"Main_Project", "my-gateway", "dstack-gateway-main-project-my-gateway"},
		{"a-very-long-project-name-indeed", "g" + strings.Repeat("x", 39) + "end", ""},
	} {
		got := GatewayName(tc.project, tc.gateway)
		if tc.want != "" && got != tc.want {
			t.Errorf("GatewayName(%q, %q) = %q, want %q", tc.project, tc.gateway, got, tc.want)
		}
		if len(got) > 55 || !strings.HasPrefix(got, "dstack-gateway-") || len(validation.IsDNS1123Label(got+"-service")) != 0 {
			t.Errorf("GatewayName(%q, %q) = %q (%d characters)", tc.project, tc.gateway, got, len(got))
		}
		if strings.Contains(tc.gateway, "end") && !strings.HasSuffix(got, "end") {
			t.Errorf("GatewayName(%q, %q) = %q lost the name's end", tc.project, tc.gateway, got)
		}
	}
}

func TestGatewayResources(t *testing.T) {
	rl, err := gatewayResources("")
	if err != nil || !qty(rl, "cpu", "1") || !qty(rl, "memory", "1Gi") {
		t.Errorf("default: %v %v", rl, err)
	}
	rl, err = gatewayResources("memory=512Mi")
	if err != nil || !qty(rl, "cpu", "1") || rl.Memory().Cmp(resource.MustParse("512Mi")) != 0 {
		t.Errorf("memory only: %v %v", rl, err)
	}
}
