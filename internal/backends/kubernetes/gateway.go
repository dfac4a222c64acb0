package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/dstackgo/dstack/internal/backends"
)

// Gateways (spec §6.3: a pod behind a LoadBalancer service on 22, 80 and 443):
//
//   - The pod dstack-gateway-<project>-<name> is what the jump pod is (sshServerPod): dstack-runner
//     kept running for its SSH server, with the keys of a ConfigMap of the pod's name. The server
//     connects to it as root through the load balancer's port 22 and uploads and starts
//     dstack-gateway itself, which listens on 80 and 443 in the pod. It is bound to an amd64 node
//     (dstack-runner comes from the amd64 cfg.ShimURL) with room for its requests: CPU and memory
//     from the configuration's instance_type, or 1 CPU and 1Gi.
//   - The LoadBalancer service <pod>-service maps 22 to the runner's SSH port, 80 and 443 to
//     themselves. The cluster's load-balancer controller (the cloud's, MetalLB) gives it its
//     external address; UpdateGateway reports it once the pod runs, and fails the gateway when
//     none came within LoadBalancerTimeout.
//   - Internal load balancers (public_ip: false) differ by cloud annotation: not supported.

const roleGateway = "gateway"

// LoadBalancerTimeout is how long a gateway's LoadBalancer service may go without an external
// address before UpdateGateway fails the gateway.
const LoadBalancerTimeout = 10 * time.Minute

// Gateway pod resources when the configuration names none.
var (
	gatewayCPU    = resource.MustParse("1")
	gatewayMemory = resource.MustParse("1Gi")
)

// gatewayData is GatewayProvisioningData.BackendData.
type gatewayData struct {
	Namespace string `json:"namespace"`
	Service   string `json:"service"`
}

var _ backends.GatewayCompute = (*compute)(nil)

// GatewayName is the name of a gateway's pod and ConfigMap, and the prefix of its service's:
// dstack-gateway-<project>-<gateway>, at most 55 characters so that <pod>-service is a DNS label
// (a long project is cut to 20 characters, then a long gateway name keeps its end).
func GatewayName(project, gateway string) string {
	if len(project) > 20 {
		project = project[:20]
	}
	prefix := "dstack-gateway-" + project + "-"
	if len(prefix)+len(gateway) > 55 {
		gateway = gateway[len(gateway)-(55-len(prefix)):]
	}
	return dnsLabel(prefix + gateway)
}

// gatewayResources parses instance_type as `cpu=<quantity>,memory=<quantity>` (Kubernetes
// quantities, either may be left out): the gateway pod's requests and limits, both, so that the
// gateway is the last pod the kubelet evicts under memory pressure.
func gatewayResources(instanceType string) (corev1.ResourceList, error) {
	rl := corev1.ResourceList{corev1.ResourceCPU: gatewayCPU, corev1.ResourceMemory: gatewayMemory}
	if strings.TrimSpace(instanceType) == "" {
		return rl, nil
	}
	bad := fmt.Errorf("Kubernetes: instance_type %q: expected cpu=<quantity>,memory=<quantity> (e.g. cpu=2,memory=4Gi); leave it unset for 1 CPU and 1Gi", instanceType)
	for _, kv := range strings.Split(instanceType, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return nil, bad
		}
		q, err := resource.ParseQuantity(strings.TrimSpace(v))
		if err != nil || q.Sign() <= 0 {
			return nil, bad
		}
		switch strings.TrimSpace(k) {
		case "cpu":
			rl[corev1.ResourceCPU] = q
		case "memory":
			rl[corev1.ResourceMemory] = q
		default:
			return nil, bad
		}
	}
	return rl, nil
}

// gatewayService is the LoadBalancer service in front of a gateway pod.
func gatewayService(m metav1.ObjectMeta, name string) *corev1.Service {
	m.Name = name
	m.Annotations = maps(m.Annotations)
	m.Labels = maps(m.Labels)
	port := func(name string, port, target int32) corev1.ServicePort {
		return corev1.ServicePort{Name: name, Protocol: corev1.ProtocolTCP, Port: port, TargetPort: intstr.FromInt32(target)}
	}
	return &corev1.Service{
		ObjectMeta: m,
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{labelPod: m.Labels[labelPod]},
			Ports:    []corev1.ServicePort{port("ssh", 22, runnerSSHPort), port("http", 80, 80), port("https", 443, 443)},
		},
	}
}

func (c *compute) CreateGateway(ctx context.Context, cfg backends.GatewayConfig) (*backends.GatewayProvisioningData, error) {
	if !cfg.PublicIP {
		return nil, fmt.Errorf("Kubernetes: gateways without a public IP (public_ip: false) are not supported: internal load balancers take cloud-specific service annotations; remove public_ip: false")
	}
	if cfg.ShimURL == "" {
		return nil, fmt.Errorf("Kubernetes: the gateway pod cannot fetch dstack-runner: the server gave no dstack-shim URL (GatewayConfig.ShimURL)")
	}
	limits, err := gatewayResources(cfg.InstanceType)
	if err != nil {
		return nil, err
	}
	ns, name := c.s.namespace, GatewayName(cfg.ProjectName, cfg.Name)
	svcName, where := name+"-service", ns+"/"+name
	tags := maps(cfg.Tags)
	for k, v := range map[string]string{"dstack_project": cfg.ProjectName, "dstack_gateway": cfg.Name} {
		if tags[k] == "" {
			tags[k] = v
		}
	}
	m := meta(name, ns, roleGateway, tags)

	// A pod of that name is this gateway's from an earlier try (reused), or someone else's (left alone).
	pods := c.cs.CoreV1().Pods(ns)
	old, err := pods.Get(ctx, name, metav1.GetOptions{})
	exists := err == nil
	switch {
	case exists && !sameGateway(old.ObjectMeta, tags):
		return nil, fmt.Errorf("Kubernetes: pod %s exists and belongs to another gateway or dstack server; delete it or name the gateway differently", where)
	case exists && old.DeletionTimestamp != nil:
		return nil, fmt.Errorf("Kubernetes: the pod %s of a deleted gateway of that name is still terminating; create the gateway again in a minute", where)
	case !exists && !apierrors.IsNotFound(err):
		return nil, apiError("reading pod "+where, err)
	}
	if err := c.authorizeKeys(ctx, m, cfg.SSHPublicKeys); err != nil {
		return nil, err
	}
	// A failed gateway leaves nothing behind, except a service of that name that is not its own.
	fail := func(err error, svc string) (*backends.GatewayProvisioningData, error) {
		_ = c.deleteGateway(context.WithoutCancel(ctx), ns, name, svc)
		return nil, err
	}
	if !exists {
		if err := c.createGatewayPod(ctx, m, limits, cfg.ShimURL); err != nil {
			return fail(err, svcName)
		}
	}
	svcs := c.cs.CoreV1().Services(ns)
	_, err = svcs.Create(ctx, gatewayService(m, svcName), metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		var svc *corev1.Service
		if svc, err = svcs.Get(ctx, svcName, metav1.GetOptions{}); err == nil &&
			(svc.Spec.Type != corev1.ServiceTypeLoadBalancer || !sameGateway(svc.ObjectMeta, tags)) {
			return fail(fmt.Errorf("Kubernetes: service %s/%s exists and is not this gateway's LoadBalancer service; delete it or name the gateway differently", ns, svcName), "")
		}
	}
	if err != nil {
		return fail(c.createError("creating the gateway's LoadBalancer service "+ns+"/"+svcName, err), svcName)
	}
	bd, _ := json.Marshal(gatewayData{Namespace: ns, Service: svcName})
	return &backends.GatewayProvisioningData{
		Backend:     typ,
		InstanceID:  name,
		Region:      Region,
		Username:    Username,
		SSHPort:     22,
		BackendData: string(bd),
	}, nil
}

// sameGateway says whether m is of the gateway tags describe (the same server, project and name).
func sameGateway(m metav1.ObjectMeta, tags map[string]string) bool {
	have := tagsOf(m)
	for _, k := range []string{"dstack_server", "dstack_project", "dstack_gateway"} {
		if have[k] != tags[k] {
			return false
		}
	}
	return m.Labels[labelRole] == roleGateway
}

// createGatewayPod creates a gateway's pod on an amd64 node with room for it.
func (c *compute) createGatewayPod(ctx context.Context, m metav1.ObjectMeta, limits corev1.ResourceList, shimURL string) error {
	nodes, err := listNodes(ctx, c.cs)
	if err != nil {
		return err
	}
	cpu, mem := limits[corev1.ResourceCPU], limits[corev1.ResourceMemory]
	node := roomyNode(nodes, cpu, mem, "x86")
	if node == "" {
		return &backends.NoCapacityError{Msg: fmt.Sprintf("Kubernetes: no Ready amd64 node has %s CPU and %s of memory free for the gateway pod", cpu.String(), mem.String())}
	}
	res := corev1.ResourceRequirements{Requests: limits, Limits: limits.DeepCopy()}
	pod := sshServerPod(m, node, "gateway", m.Name, res, backends.InstanceConfig{ShimURL: shimURL},
		corev1.ContainerPort{Name: "http", ContainerPort: 80, Protocol: corev1.ProtocolTCP},
		corev1.ContainerPort{Name: "https", ContainerPort: 443, Protocol: corev1.ProtocolTCP})
	if _, err := c.cs.CoreV1().Pods(m.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return c.createError("creating the gateway pod "+m.Namespace+"/"+m.Name, err)
	}
	return nil
}

func gatewayDataOf(c *compute, gpd backends.GatewayProvisioningData) gatewayData {
	var bd gatewayData
	_ = json.Unmarshal([]byte(gpd.BackendData), &bd)
	if bd.Namespace == "" {
		bd.Namespace = c.s.namespace
	}
	if bd.Service == "" {
		bd.Service = gpd.InstanceID + "-service"
	}
	return bd
}

// UpdateGateway reports the load balancer's address once the pod runs and the cluster assigned
// one; a pod that ended or cannot start, a service that is gone, or no address within
// LoadBalancerTimeout fail the gateway.
func (c *compute) UpdateGateway(ctx context.Context, gpd *backends.GatewayProvisioningData) error {
	bd := gatewayDataOf(c, *gpd)
	where := bd.Namespace + "/" + gpd.InstanceID
	pod, err := c.cs.CoreV1().Pods(bd.Namespace).Get(ctx, gpd.InstanceID, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return &backends.ProvisioningError{Msg: "the gateway's Kubernetes pod " + where + " no longer exists"}
	}
	if err != nil {
		return apiError("reading pod "+where, err)
	}
	if err := podFailure(pod, where); err != nil {
		return err
	}
	svcWhere := bd.Namespace + "/" + bd.Service
	svc, err := c.cs.CoreV1().Services(bd.Namespace).Get(ctx, bd.Service, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return &backends.ProvisioningError{Msg: "the gateway's LoadBalancer service " + svcWhere + " no longer exists"}
	}
	if err != nil {
		return apiError("reading service "+svcWhere, err)
	}
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.IP == "" && ing.Hostname == "" {
			continue
		}
		if pod.Status.Phase != corev1.PodRunning {
			return nil // the server's SSH would find nothing to talk to yet
		}
		if ing.IP != "" {
			gpd.IPAddress, gpd.Hostname = ing.IP, ""
		} else {
			gpd.IPAddress, gpd.Hostname = ing.Hostname, ing.Hostname
		}
		return nil
	}
	if created := svc.CreationTimestamp.Time; !created.IsZero() && time.Since(created) > LoadBalancerTimeout {
		return &backends.ProvisioningError{Msg: NoAddressMessage(svcWhere)}
	}
	return nil
}

// NoAddressMessage says why a gateway failed when its LoadBalancer service (namespace/name) got
// no external address.
func NoAddressMessage(service string) string {
	return fmt.Sprintf("the cluster assigned no external address to the LoadBalancer service %s within %s: the cluster needs a load-balancer controller (the cloud provider's, or MetalLB on bare metal); `kubectl describe service -n %s` shows its events",
		service, LoadBalancerTimeout, strings.Replace(service, "/", " ", 1))
}

func (c *compute) TerminateGateway(ctx context.Context, gpd backends.GatewayProvisioningData) error {
	bd := gatewayDataOf(c, gpd)
	return c.deleteGateway(ctx, bd.Namespace, gpd.InstanceID, bd.Service)
}

// deleteGateway deletes a gateway's service (unless ""), pod and keys; what is already gone is
// success.
func (c *compute) deleteGateway(ctx context.Context, ns, name, service string) error {
	core := c.cs.CoreV1()
	gone := func(what string, err error) error {
		if err != nil && !apierrors.IsNotFound(err) {
			return apiError("deleting the gateway's "+what, err)
		}
		return nil
	}
	if service != "" {
		if err := gone("service "+ns+"/"+service, core.Services(ns).Delete(ctx, service, metav1.DeleteOptions{})); err != nil {
			return err
		}
	}
	if err := gone("pod "+ns+"/"+name, core.Pods(ns).Delete(ctx, name, metav1.DeleteOptions{})); err != nil {
		return err
	}
	return gone("ConfigMap "+ns+"/"+name, core.ConfigMaps(ns).Delete(ctx, name, metav1.DeleteOptions{}))
}
