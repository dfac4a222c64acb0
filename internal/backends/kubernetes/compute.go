package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/backends/bootstrap"
	"github.com/dstackgo/dstack/internal/offers"
)

// Machines (spec §6.3, with the requests, limits and namespace the original lacked):
//
//   - Per project, a jump pod: dstack-runner (whose SSH server forwards connections) started with
//     --stay in DefaultImage, behind a NodePort service on networking.ssh_port (Kubernetes picks
//     one when unset), both named dstack-<project>-ssh-jump. The SSH keys it accepts are the
//     authorized_keys of a ConfigMap of that name mounted at /root/.ssh: every job adds its keys,
//     and the kubelet refreshes the file in the running pod. It is created once and reused; one
//     that ended is replaced.
//   - Per job, a pod named dstack-<project>-<instance> bound to the offer's node (spec.nodeName),
//     running the job's image with dstack-runner started directly, CPU, memory and GPU
//     (nvidia.com/gpu, amd.com/gpu) requests and limits from the offer, ephemeral storage
//     requested, and a ClusterIP service of the same name on the runner's SSH port.
//   - ProvisioningData: instance id = the pod's name, hostname = the service's ClusterIP once the
//     pod runs, internal IP = the pod's, SSHProxy = the jump pod's NodePort at networking.ssh_host
//     (default: the first node's ExternalIP, else its InternalIP), user root, Dockerized false.
//     BackendData keeps the namespace and ClusterIP.
//   - TerminateInstance deletes the service and the pod; ones already gone are success.
//   - ListInstances lists the namespace's pods labelled dstack_server, with their tags.
//
// Pods are bound to nodes by spec.nodeName rather than scheduled: the offer the user chose is a
// node, and binding needs no scheduler (the kubelet still admits the pod against the node's free
// resources, failing it with OutOf<resource> when another pod took them first).

// Username is the SSH user of the runner's SSH server, in job and jump pods.
const Username = "root"

const (
	runnerSSHPort = bootstrap.RunnerSSHPort

	// labelPod selects a pod for its service; labelRole tells jobs from jump pods.
	labelPod  = "dstack.ai/pod"
	labelRole = "dstack.ai/role"
	// annotationTags keeps InstanceConfig.Tags exactly, as JSON (label values are restricted).
	annotationTags = "dstack.ai/tags"

	roleJob  = "job"
	roleJump = "ssh-jump"
)

// JumpPodImage runs the project's jump pod: any image with sh and curl or wget does, to fetch
// dstack-runner.
const JumpPodImage = bootstrap.DefaultImage

// backendData is ProvisioningData.BackendData.
type backendData struct {
	Namespace string `json:"namespace"`
	ClusterIP string `json:"cluster_ip,omitempty"`
}

type compute struct {
	cs kubernetes.Interface
	s  settings

	mu sync.Mutex // one jump pod setup at a time
}

func newCompute(cfg backends.Config) (backends.Compute, error) {
	cs, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	return &compute{cs: cs, s: settingsOf(cfg)}, nil
}

var (
	_ backends.Compute        = (*compute)(nil)
	_ backends.InstanceLister = (*compute)(nil)
)

// dnsLabel makes s a DNS-1123 label (what pod and service names must be): lower case, other
// characters than letters, digits and '-' replaced, at most 63 characters.
func dnsLabel(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			b[i] = '-'
		}
	}
	if len(b) > 63 {
		b = b[len(b)-63:]
	}
	return strings.Trim(string(b), "-")
}

// labelValue makes s a label value: letters, digits, '-', '_' and '.', at most 63, alphanumeric at
// both ends.
func labelValue(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '-'
		}
	}
	if len(b) > 63 {
		b = b[:63]
	}
	return strings.Trim(string(b), "-_.")
}

// PodName is the name of a job's pod and service.
func PodName(project, instance string) string {
	return dnsLabel(bootstrap.ResourceName(project, instance, 63))
}

// JumpName is the name of a project's jump service and ConfigMap, and the prefix of its pod's.
func JumpName(project string) string {
	return dnsLabel(bootstrap.ResourceName(project, "ssh-jump", 57))
}

// meta is the metadata of what a job or a project creates: dstack's tags as labels (for
// selection) and as an annotation (exactly).
func meta(name, ns, role string, tags map[string]string) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Name: name, Namespace: ns,
		Labels:      map[string]string{labelPod: name, labelRole: role, "app.kubernetes.io/managed-by": "dstack"},
		Annotations: map[string]string{}}
	for _, k := range []string{"dstack_project", "dstack_server", "dstack_instance"} {
		if v, ok := tags[k]; ok {
			m.Labels[k] = labelValue(v)
		}
	}
	if len(tags) > 0 {
		b, _ := json.Marshal(tags)
		m.Annotations[annotationTags] = string(b)
	}
	return m
}

// tagsOf reads a job's tags back: the annotation, else the dstack_* labels.
func tagsOf(m metav1.ObjectMeta) map[string]string {
	tags := map[string]string{}
	if s := m.Annotations[annotationTags]; s != "" && json.Unmarshal([]byte(s), &tags) == nil {
		return tags
	}
	for k, v := range m.Labels {
		if strings.HasPrefix(k, "dstack_") {
			tags[k] = v
		}
	}
	return tags
}

// jobTags are the tags of a job's pod: dstack's and the project's.
func jobTags(cfg backends.InstanceConfig) map[string]string {
	tags := map[string]string{"dstack_project": cfg.ProjectName, "dstack_instance": cfg.InstanceName}
	for k, v := range cfg.Tags {
		tags[k] = v
	}
	return tags
}

// gpuTolerations let job pods on GPU nodes that clouds taint for GPU pods.
func gpuTolerations() []corev1.Toleration {
	return []corev1.Toleration{
		{Key: string(nvidiaGPU), Operator: corev1.TolerationOpExists},
		{Key: string(amdGPU), Operator: corev1.TolerationOpExists},
	}
}

// jobResources are a job pod's requests and limits from its offer: CPUs, memory and GPUs both
// (a GPU's request must equal its limit), the disk as an ephemeral-storage request only, so that
// the kubelet does not evict a job for writing more than it asked.
func jobResources(res offers.Resources) corev1.ResourceRequirements {
	limits := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(int64(res.CPUs), resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(int64(res.MemoryMiB)<<20, resource.BinarySI),
	}
	if n := len(res.GPUs); n > 0 {
		name := nvidiaGPU
		if strings.EqualFold(res.GPUs[0].Vendor, "amd") {
			name = amdGPU
		}
		limits[name] = *resource.NewQuantity(int64(n), resource.DecimalSI)
	}
	requests := limits.DeepCopy()
	if res.Disk.SizeMiB > 0 {
		requests[corev1.ResourceEphemeralStorage] = *resource.NewQuantity(int64(res.Disk.SizeMiB)<<20, resource.BinarySI)
	}
	return corev1.ResourceRequirements{Requests: requests, Limits: limits}
}

// jobPod is the pod of a job on the offer's node.
func jobPod(name, ns string, offer offers.Offer, cfg backends.InstanceConfig) *corev1.Pod {
	image, env := bootstrap.ContainerEnv(cfg, bootstrap.DefaultImage)
	var vars []corev1.EnvVar
	for _, k := range bootstrap.SortedKeys(env) {
		vars = append(vars, corev1.EnvVar{Name: k, Value: env[k]})
	}
	return &corev1.Pod{
		ObjectMeta: meta(name, ns, roleJob, jobTags(cfg)),
		Spec: corev1.PodSpec{
			NodeName:      offer.Instance.Name,
			RestartPolicy: corev1.RestartPolicyNever,
			Tolerations:   gpuTolerations(),
			// The job needs no Kubernetes API token, nor the namespace's services as variables.
			AutomountServiceAccountToken: new(false),
			EnableServiceLinks:           new(false),
			Containers: []corev1.Container{{
				Name:      "job",
				Image:     image,
				Command:   []string{"/bin/sh", "-c", bootstrap.RunnerCommand(cfg)},
				Env:       vars,
				Ports:     []corev1.ContainerPort{{Name: "ssh", ContainerPort: runnerSSHPort, Protocol: corev1.ProtocolTCP}},
				Resources: jobResources(offer.Instance.Resources),
			}},
		},
	}
}

// sshService is the service of a pod's SSH port.
func sshService(m metav1.ObjectMeta, typ corev1.ServiceType, nodePort int32) *corev1.Service {
	m.Annotations = maps(m.Annotations)
	return &corev1.Service{
		ObjectMeta: m,
		Spec: corev1.ServiceSpec{
			Type:     typ,
			Selector: map[string]string{labelPod: m.Labels[labelPod]},
			Ports: []corev1.ServicePort{{Name: "ssh", Protocol: corev1.ProtocolTCP, Port: runnerSSHPort,
				TargetPort: intstr.FromInt32(runnerSSHPort), NodePort: nodePort}},
		},
	}
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (c *compute) CreateInstance(ctx context.Context, offer offers.Offer, cfg backends.InstanceConfig) (*backends.ProvisioningData, error) {
	if offer.Instance.Name == "" {
		return nil, fmt.Errorf("Kubernetes: the offer names no node")
	}
	proxy, err := c.jumpProxy(ctx, cfg)
	if err != nil {
		return nil, err
	}
	ns, name := c.s.namespace, PodName(cfg.ProjectName, cfg.InstanceName)
	pods := c.cs.CoreV1().Pods(ns)
	pod := jobPod(name, ns, offer, cfg)
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			return nil, c.createError("creating pod "+ns+"/"+name, err)
		}
		// A repeated CreateInstance of the same instance keeps the first pod.
		old, gerr := pods.Get(ctx, name, metav1.GetOptions{})
		if gerr != nil {
			return nil, apiError("reading pod "+ns+"/"+name, gerr)
		}
		if tagsOf(old.ObjectMeta)["dstack_instance"] != cfg.InstanceName {
			return nil, fmt.Errorf("Kubernetes: pod %s/%s exists and belongs to another instance", ns, name)
		}
	}
	svc := sshService(pod.ObjectMeta, corev1.ServiceTypeClusterIP, 0)
	created, err := c.cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		created, err = c.cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		// Without its service the pod is unreachable: do not leave it behind.
		_ = pods.Delete(context.WithoutCancel(ctx), name, metav1.DeleteOptions{})
		return nil, c.createError("creating service "+ns+"/"+name, err)
	}
	bd, _ := json.Marshal(backendData{Namespace: ns, ClusterIP: created.Spec.ClusterIP})
	return &backends.ProvisioningData{
		Backend:         typ,
		InstanceType:    offer.Instance,
		InstanceID:      name,
		PublicIPEnabled: false,
		Region:          offer.Region,
		Price:           offer.Price,
		Username:        Username,
		Dockerized:      false,
		BackendData:     string(bd),
		SSHProxy:        proxy,
	}, nil
}

// createError maps a failed create: a quota or an admission refusal of resources is a capacity
// refusal, so that the caller tries the next offer.
func (c *compute) createError(what string, err error) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("Kubernetes: %s: %w; does namespace %q exist? Create it or set `namespace` in the backend's config", what, err, c.s.namespace)
	}
	if apierrors.IsForbidden(err) && strings.Contains(err.Error(), "exceeded quota") {
		return &backends.NoCapacityError{Msg: fmt.Sprintf("Kubernetes: %s: %v", what, err)}
	}
	return apiError(what, err)
}

func (c *compute) UpdateProvisioningData(ctx context.Context, pd *backends.ProvisioningData) error {
	var bd backendData
	_ = json.Unmarshal([]byte(pd.BackendData), &bd)
	if bd.Namespace == "" {
		bd.Namespace = c.s.namespace
	}
	where := bd.Namespace + "/" + pd.InstanceID
	pod, err := c.cs.CoreV1().Pods(bd.Namespace).Get(ctx, pd.InstanceID, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return &backends.ProvisioningError{Msg: "Kubernetes pod " + where + " no longer exists"}
	}
	if err != nil {
		return apiError("reading pod "+where, err)
	}
	if err := podFailure(pod, where); err != nil || pod.Status.Phase != corev1.PodRunning {
		return err
	}
	if bd.ClusterIP == "" {
		svc, err := c.cs.CoreV1().Services(bd.Namespace).Get(ctx, pd.InstanceID, metav1.GetOptions{})
		if err != nil {
			return apiError("reading service "+where, err)
		}
		bd.ClusterIP = svc.Spec.ClusterIP
	}
	if bd.ClusterIP == "" || bd.ClusterIP == corev1.ClusterIPNone {
		return &backends.ProvisioningError{Msg: "Kubernetes service " + where + " has no ClusterIP"}
	}
	host, port := bd.ClusterIP, int(runnerSSHPort)
	pd.Hostname, pd.SSHPort = &host, &port
	if ip := pod.Status.PodIP; ip != "" {
		pd.InternalIP = &ip
	}
	return nil
}

// podFailure is a *backends.ProvisioningError when the pod ended or cannot start, else nil.
func podFailure(pod *corev1.Pod, where string) error {
	switch pod.Status.Phase {
	case corev1.PodFailed, corev1.PodSucceeded:
		msg := fmt.Sprintf("Kubernetes pod %s is %s", where, pod.Status.Phase)
		if r := strings.TrimSpace(pod.Status.Reason + ": " + pod.Status.Message); r != ":" {
			msg += " (" + strings.Trim(r, ": ") + ")"
		}
		return &backends.ProvisioningError{Msg: msg}
	case corev1.PodRunning:
		return nil
	}
	for _, s := range pod.Status.ContainerStatuses {
		// These never resolve by waiting.
		if w := s.State.Waiting; w != nil && slices.Contains([]string{"InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError"}, w.Reason) {
			return &backends.ProvisioningError{Msg: fmt.Sprintf("Kubernetes pod %s cannot start: %s: %s", where, w.Reason, w.Message)}
		}
	}
	return nil
}

func (c *compute) TerminateInstance(ctx context.Context, instanceID, region, backendData string) error {
	var bd struct {
		Namespace string `json:"namespace"`
	}
	_ = json.Unmarshal([]byte(backendData), &bd)
	if bd.Namespace == "" {
		bd.Namespace = c.s.namespace
	}
	where := bd.Namespace + "/" + instanceID
	err := c.cs.CoreV1().Services(bd.Namespace).Delete(ctx, instanceID, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return apiError("deleting service "+where, err)
	}
	err = c.cs.CoreV1().Pods(bd.Namespace).Delete(ctx, instanceID, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return apiError("deleting pod "+where, err)
	}
	return nil
}

// ListInstances lists the job pods of the namespace that carry a dstack_server label, whatever its
// value, with their tags (backends.InstanceLister). Jump pods have no dstack_server label.
func (c *compute) ListInstances(ctx context.Context) ([]backends.Tagged, error) {
	list, err := c.cs.CoreV1().Pods(c.s.namespace).List(ctx, metav1.ListOptions{LabelSelector: "dstack_server," + labelRole + "=" + roleJob})
	if err != nil {
		return nil, apiError("listing pods in "+c.s.namespace, err)
	}
	var out []backends.Tagged
	for _, p := range list.Items {
		out = append(out, backends.Tagged{
			Backend:    typ,
			InstanceID: p.Name,
			Region:     Region,
			Name:       p.Name,
			State:      strings.ToLower(string(p.Status.Phase)),
			Tags:       tagsOf(p.ObjectMeta),
			LaunchedAt: p.CreationTimestamp.Time,
		})
	}
	return out, nil
}
