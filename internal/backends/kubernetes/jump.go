package kubernetes

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/bootstrap"
)

// authorizedKeysFile is the ConfigMap key the jump pod sees as /root/.ssh/authorized_keys.
const authorizedKeysFile = "authorized_keys"

// jumpProxy makes sure the project's jump pod, its NodePort service and its authorized keys
// exist (creating what is missing, adding cfg's keys) and returns where SSH reaches it.
func (c *compute) jumpProxy(ctx context.Context, cfg backends.InstanceConfig) (*backends.SSHProxy, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	name, ns := JumpName(cfg.ProjectName), c.s.namespace
	tags := map[string]string{"dstack_project": cfg.ProjectName}
	if err := c.authorizeKeys(ctx, meta(name, ns, roleJump, tags), cfg.SSHPublicKeys); err != nil {
		return nil, err
	}
	nodes, err := c.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, apiError("listing nodes", err)
	}
	if err := c.ensureJumpPod(ctx, name, ns, tags, cfg); err != nil {
		return nil, err
	}
	svcs := c.cs.CoreV1().Services(ns)
	svc, err := svcs.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		svc, err = svcs.Create(ctx, sshService(meta(name, ns, roleJump, tags), corev1.ServiceTypeNodePort, c.s.sshPort), metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			svc, err = svcs.Get(ctx, name, metav1.GetOptions{})
		}
		if apierrors.IsInvalid(err) && c.s.sshPort != 0 {
			return nil, fmt.Errorf("Kubernetes: creating the SSH jump service %s/%s on NodePort %d (networking.ssh_port): %w; choose a free port in the cluster's NodePort range (30000-32767 by default)",
				ns, name, c.s.sshPort, err)
		}
	}
	if err != nil {
		return nil, c.createError("creating the SSH jump service "+ns+"/"+name, err)
	}
	var port int32
	for _, p := range svc.Spec.Ports {
		if p.Name == "ssh" || port == 0 {
			port = p.NodePort
		}
	}
	if port == 0 {
		return nil, fmt.Errorf("Kubernetes: the SSH jump service %s/%s has no NodePort; delete it so that dstack recreates it", ns, name)
	}
	host := c.s.sshHost
	if host == "" {
		host = nodeAddress(nodes.Items)
	}
	if host == "" {
		return nil, fmt.Errorf("Kubernetes: failed to acquire an IP for the jump pod automatically: no node has an ExternalIP or InternalIP; set networking.ssh_host to the address of any node reachable from outside the cluster")
	}
	return &backends.SSHProxy{Hostname: host, Port: int(port), Username: Username}, nil
}

// nodeAddress is the first node's ExternalIP, else the first node's InternalIP.
func nodeAddress(nodes []corev1.Node) string {
	for _, want := range []corev1.NodeAddressType{corev1.NodeExternalIP, corev1.NodeInternalIP} {
		for _, n := range nodes {
			for _, a := range n.Status.Addresses {
				if a.Type == want && a.Address != "" {
					return a.Address
				}
			}
		}
	}
	return ""
}

// authorizeKeys adds keys to the jump pod's authorized_keys ConfigMap, creating it when missing.
func (c *compute) authorizeKeys(ctx context.Context, m metav1.ObjectMeta, keys []string) error {
	cms := c.cs.CoreV1().ConfigMaps(m.Namespace)
	where := m.Namespace + "/" + m.Name
	for attempt := 0; ; attempt++ {
		cm, err := cms.Get(ctx, m.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			cm = &corev1.ConfigMap{ObjectMeta: m, Data: map[string]string{authorizedKeysFile: mergeKeys("", keys)}}
			_, err = cms.Create(ctx, cm, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) && attempt < 3 {
				continue
			}
			if err != nil {
				return c.createError("creating ConfigMap "+where, err)
			}
			return nil
		}
		if err != nil {
			return apiError("reading ConfigMap "+where, err)
		}
		merged := mergeKeys(cm.Data[authorizedKeysFile], keys)
		if merged == cm.Data[authorizedKeysFile] {
			return nil
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[authorizedKeysFile] = merged
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) && attempt < 3 {
			continue // another server changed it meanwhile: merge again
		}
		if err != nil {
			return apiError("updating ConfigMap "+where, err)
		}
		return nil
	}
}

// mergeKeys adds the keys that file lacks, one a line.
func mergeKeys(file string, keys []string) string {
	lines := strings.Split(strings.TrimSpace(file), "\n")
	if lines[0] == "" {
		lines = nil
	}
	for _, k := range keys {
		if k = strings.TrimSpace(k); k != "" && !slices.Contains(lines, k) {
			lines = append(lines, k)
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}

// ensureJumpPod keeps one live jump pod: a running or pending one is reused; ended ones are
// deleted and a new one is created on the available node with the most free CPU, preferring
// nodes without GPUs.
func (c *compute) ensureJumpPod(ctx context.Context, name, ns string, tags map[string]string, cfg backends.InstanceConfig) error {
	pods := c.cs.CoreV1().Pods(ns)
	list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: labelPod + "=" + name})
	if err != nil {
		return apiError("listing the SSH jump pods of "+ns, err)
	}
	for _, p := range list.Items {
		switch {
		case p.DeletionTimestamp != nil:
		case p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded:
			if err := pods.Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return apiError("deleting the ended SSH jump pod "+ns+"/"+p.Name, err)
			}
		default:
			return nil // reuse it
		}
	}
	nodes, err := listNodes(ctx, c.cs)
	if err != nil {
		return err
	}
	node := roomyNode(nodes, jumpCPU, jumpMemory, "")
	if node == "" {
		return &backends.NoCapacityError{Msg: "Kubernetes: no Ready node has 0.1 CPU and 256MiB of memory free for the SSH jump pod"}
	}
	pod := jumpPod(name, ns, node, tags, cfg)
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return c.createError("creating the SSH jump pod in "+ns, err)
	}
	return nil
}

// Jump pod resources: dstack-runner forwarding a few SSH connections.
var (
	jumpCPU    = resource.MustParse("100m")
	jumpMemory = resource.MustParse("256Mi")
)

// better prefers a node without GPUs, then the one with more free CPU.
func better(a, b *nodeInfo) bool {
	if (a.gpuVendor == "") != (b.gpuVendor == "") {
		return a.gpuVendor == ""
	}
	return a.cpuMilli > b.cpuMilli
}

// roomyNode is the node for a new pod requesting cpu and mem, "" when none has room: an available
// one of arch (any when "" or unknown), preferring nodes without GPUs, then more free CPU.
func roomyNode(nodes []nodeInfo, cpu, mem resource.Quantity, arch string) string {
	var best *nodeInfo
	for i := range nodes {
		n := &nodes[i]
		if !n.available || n.cpuMilli < cpu.MilliValue() || n.memBytes < mem.Value() ||
			arch != "" && n.arch != "" && n.arch != arch {
			continue
		}
		if best == nil || better(n, best) {
			best = n
		}
	}
	if best == nil {
		return ""
	}
	return best.name
}

// jumpPod is a project's jump pod on node: dstack-runner's SSH server forwarding the connections
// to the jobs, with the keys of the ConfigMap named name.
func jumpPod(name, ns, node string, tags map[string]string, cfg backends.InstanceConfig) *corev1.Pod {
	m := meta("", ns, roleJump, tags)
	m.GenerateName = name + "-"
	m.Labels[labelPod] = name
	res := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: jumpCPU, corev1.ResourceMemory: jumpMemory},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: jumpMemory}}
	return sshServerPod(m, node, "ssh-jump", name, res, cfg)
}

// sshServerPod is a pod on node (bound, as job pods: no scheduler needed) whose one container keeps
// dstack-runner running (--stay) for its SSH server on runnerSSHPort, with the authorized_keys of
// ConfigMap keys in /root/.ssh: a project's jump pod, a gateway. Only cfg's dstack-runner download
// URL is used; the keys come from the ConfigMap alone.
func sshServerPod(m metav1.ObjectMeta, node, container, keys string, res corev1.ResourceRequirements, cfg backends.InstanceConfig, ports ...corev1.ContainerPort) *corev1.Pod {
	runnerCfg := backends.InstanceConfig{ShimURL: cfg.ShimURL, ShimEnv: map[string]string{}}
	if u := cfg.ShimEnv["DSTACK_RUNNER_DOWNLOAD_URL"]; u != "" {
		runnerCfg.ShimEnv["DSTACK_RUNNER_DOWNLOAD_URL"] = u
	}
	mode := int32(0o600)
	return &corev1.Pod{
		ObjectMeta: m,
		Spec: corev1.PodSpec{
			NodeName:                     node,
			RestartPolicy:                corev1.RestartPolicyAlways,
			AutomountServiceAccountToken: new(false),
			EnableServiceLinks:           new(false),
			Containers: []corev1.Container{{
				Name:    container,
				Image:   JumpPodImage,
				Command: []string{"/bin/sh", "-c", bootstrap.RunnerCommand(runnerCfg) + " --stay"},
				Ports: append([]corev1.ContainerPort{{Name: "ssh", ContainerPort: runnerSSHPort, Protocol: corev1.ProtocolTCP}},
					ports...),
				Resources:    res,
				VolumeMounts: []corev1.VolumeMount{{Name: "ssh", MountPath: "/root/.ssh", ReadOnly: true}},
			}},
			Volumes: []corev1.Volume{{Name: "ssh", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: keys}, DefaultMode: &mode}}}},
		},
	}
}
