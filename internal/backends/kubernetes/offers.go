package kubernetes

import (
	"context"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/offers"
	"github.com/dstackgo/dstack/internal/resources"
)

// Offers are not catalog based (spec §4.3): one per node of the cluster, named after the node, in
// region "-", price 0, runtime `runner`. A node's free resources are its allocatable CPU, memory
// and ephemeral storage, and its GPUs, minus the requests of the pods bound to it that have not
// ended. GPUs come from the labels of NVIDIA's GPU Feature Discovery (nvidia.com/gpu.product,
// .count, .memory in MiB, .compute.major/.minor) or AMD's node labeller (amd.com/gpu.product-name
// or .device-id, .vram), their count capped by the device plugin's allocatable nvidia.com/gpu or
// amd.com/gpu.
//
// An offer is what the job's pod will request (compute.go sets requests and limits from it): for
// each resource the requirement's minimum, or the node's free amount where the requirement has
// none, provided the node has that much free. Nodes that are not Ready, are cordoned, or carry a
// NoSchedule or NoExecute taint other than a GPU one (which job pods tolerate) are not_available.

// Region is the region of every offer, as in the original.
const Region = "-"

// GPU resources and labels.
const (
	nvidiaGPU corev1.ResourceName = "nvidia.com/gpu"
	amdGPU    corev1.ResourceName = "amd.com/gpu"
)

// nodeInfo is what offers need of a node: its free resources and GPUs.
type nodeInfo struct {
	name      string
	available bool
	arch      string // "x86", "arm" or ""

	cpuMilli, memBytes, diskBytes int64 // free

	gpuVendor string // "nvidia", "amd" or ""
	gpuName   string
	gpuMemMiB int
	gpus      int64 // free
	cc        *resources.ComputeCapability
}

func (n nodeInfo) gpuResource() corev1.ResourceName {
	if n.gpuVendor == "amd" {
		return amdGPU
	}
	return nvidiaGPU
}

type liveOffers struct {
	cfg backends.Config

	mu sync.Mutex
	cs kubernetes.Interface
}

func newOffers(cfg backends.Config, _ offers.Tables) offers.Source { return &liveOffers{cfg: cfg} }

func (l *liveOffers) client() (kubernetes.Interface, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cs == nil {
		cs, err := newClient(l.cfg)
		if err != nil {
			return nil, err
		}
		l.cs = cs
	}
	return l.cs, nil
}

func (l *liveOffers) Offers(ctx context.Context, req offers.Requirements) ([]offers.Offer, error) {
	cs, err := l.client()
	if err != nil {
		return nil, err
	}
	nodes, err := listNodes(ctx, cs)
	if err != nil {
		return nil, err
	}
	return offersFor(nodes, req), nil
}

// listNodes reads every node and the pods bound to them.
func listNodes(ctx context.Context, cs kubernetes.Interface) ([]nodeInfo, error) {
	nl, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, apiError("listing nodes", err)
	}
	// Pods of every namespace take a node's resources; ended ones no longer do.
	pl, err := cs.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		FieldSelector: "status.phase!=Succeeded,status.phase!=Failed"})
	if err != nil {
		return nil, apiError("listing pods", err)
	}
	used := map[string]corev1.ResourceList{}
	for i := range pl.Items {
		p := &pl.Items[i]
		if p.Spec.NodeName == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		if used[p.Spec.NodeName] == nil {
			used[p.Spec.NodeName] = corev1.ResourceList{}
		}
		addTo(used[p.Spec.NodeName], podRequests(p))
	}
	out := make([]nodeInfo, 0, len(nl.Items))
	for i := range nl.Items {
		out = append(out, describeNode(&nl.Items[i], used[nl.Items[i].Name]))
	}
	slices.SortFunc(out, func(a, b nodeInfo) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

func addTo(sum, add corev1.ResourceList) {
	for k, v := range add {
		q := sum[k]
		q.Add(v)
		sum[k] = q
	}
}

// podRequests is what a pod takes from its node, as the scheduler counts it: its containers and
// sidecars (init containers that keep running) together, or more while an init container runs
// beside the sidecars started before it, plus the pod's overhead.
func podRequests(p *corev1.Pod) corev1.ResourceList {
	steady, sidecars, peak := corev1.ResourceList{}, corev1.ResourceList{}, corev1.ResourceList{}
	for _, c := range p.Spec.Containers {
		addTo(steady, requestsOf(c))
	}
	for _, c := range p.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			addTo(sidecars, requestsOf(c))
			continue
		}
		running := requestsOf(c)
		addTo(running, sidecars)
		maxTo(peak, running)
	}
	addTo(steady, sidecars)
	maxTo(steady, peak)
	addTo(steady, p.Spec.Overhead)
	return steady
}

func maxTo(m, other corev1.ResourceList) {
	for k, v := range other {
		if q, ok := m[k]; !ok || v.Cmp(q) > 0 {
			m[k] = v.DeepCopy()
		}
	}
}

// requestsOf is a container's requests; a limit without a request is the request, as the API
// server defaults it.
func requestsOf(c corev1.Container) corev1.ResourceList {
	out := corev1.ResourceList{}
	for k, v := range c.Resources.Limits {
		out[k] = v
	}
	for k, v := range c.Resources.Requests {
		out[k] = v
	}
	return out
}

func free(alloc, used corev1.ResourceList, name corev1.ResourceName, milli bool) int64 {
	a, u := alloc[name], used[name]
	if milli {
		return max(a.MilliValue()-u.MilliValue(), 0)
	}
	return max(a.Value()-u.Value(), 0)
}

// describeNode reads a node's free resources and GPUs.
func describeNode(n *corev1.Node, used corev1.ResourceList) nodeInfo {
	alloc := n.Status.Allocatable
	if len(alloc) == 0 {
		alloc = n.Status.Capacity
	}
	info := nodeInfo{
		name:      n.Name,
		available: nodeAvailable(n),
		cpuMilli:  free(alloc, used, corev1.ResourceCPU, true),
		memBytes:  free(alloc, used, corev1.ResourceMemory, false),
		diskBytes: free(alloc, used, corev1.ResourceEphemeralStorage, false),
	}
	switch n.Labels[corev1.LabelArchStable] {
	case "amd64":
		info.arch = "x86"
	case "arm64":
		info.arch = "arm"
	}
	l := n.Labels
	var count int64
	switch {
	case l["nvidia.com/gpu.product"] != "" || l["nvidia.com/gpu.count"] != "":
		info.gpuVendor, info.gpuName = "nvidia", NvidiaGPUName(l["nvidia.com/gpu.product"])
		info.gpuMemMiB, _ = strconv.Atoi(l["nvidia.com/gpu.memory"])
		if m := productMemory.FindStringSubmatch(l["nvidia.com/gpu.product"]); info.gpuMemMiB <= 0 && m != nil {
			gb, _ := strconv.Atoi(m[1]) // an older GFD without gpu.memory: "...-80GB"
			info.gpuMemMiB = gb * 1024
		}
		count, _ = strconv.ParseInt(l["nvidia.com/gpu.count"], 10, 64)
		major, err1 := strconv.Atoi(l["nvidia.com/gpu.compute.major"])
		minor, err2 := strconv.Atoi(l["nvidia.com/gpu.compute.minor"])
		if err1 == nil && err2 == nil {
			info.cc = &resources.ComputeCapability{Major: major, Minor: minor}
		}
	case l["amd.com/gpu.product-name"] != "" || l["amd.com/gpu.device-id"] != "":
		info.gpuVendor = "amd"
		info.gpuName, info.gpuMemMiB = AMDGPU(l["amd.com/gpu.product-name"], l["amd.com/gpu.device-id"], l["amd.com/gpu.vram"])
		count, _ = strconv.ParseInt(l["amd.com/gpu.count"], 10, 64)
	case !quantity(alloc, nvidiaGPU).IsZero():
		info.gpuVendor = "nvidia" // a device plugin without GPU Feature Discovery: no name
	case !quantity(alloc, amdGPU).IsZero():
		info.gpuVendor = "amd"
	}
	if info.gpuVendor != "" {
		// The device plugin's count is what pods can request; the label only says what is installed.
		if q, ok := alloc[info.gpuResource()]; ok && (count == 0 || q.Value() < count) {
			count = q.Value()
		}
		u := used[info.gpuResource()]
		info.gpus = max(count-u.Value(), 0)
		if info.gpuName == "" || info.gpuMemMiB <= 0 {
			info.gpuVendor, info.gpus = "", 0 // unnamed GPUs cannot be matched or shown
		}
	}
	return info
}

func quantity(l corev1.ResourceList, name corev1.ResourceName) *resource.Quantity {
	q := l[name]
	return &q
}

// nodeAvailable is false for a node that is not Ready, is cordoned, or has a taint a job pod does
// not tolerate.
func nodeAvailable(n *corev1.Node) bool {
	if n.Spec.Unschedulable {
		return false
	}
	ready := false
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			ready = c.Status == corev1.ConditionTrue
		}
	}
	if !ready {
		return false
	}
	for _, t := range n.Spec.Taints {
		if (t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute) && !gpuTaint(t.Key) {
			return false
		}
	}
	return true
}

// gpuTaint says whether job pods tolerate a taint: the GPU ones that clouds put on GPU nodes.
func gpuTaint(key string) bool { return key == string(nvidiaGPU) || key == string(amdGPU) }

// gpuSuffix matches the parts of a GFD product name that are not the model: form factor, memory,
// HBM generation, sharing.
var gpuSuffix = regexp.MustCompile(`(?i)^(SXM\d*|PCIE|\d+GB|HBM\d*E?|SHARED)$`)

var productMemory = regexp.MustCompile(`(?i)(?:^|-)(\d+)GB(?:-|$)`)

// NvidiaGPUName is dstack's name of a GPU Feature Discovery product: "NVIDIA-A100-SXM4-80GB" is
// A100, "Tesla-T4" T4, "NVIDIA-H100-80GB-HBM3" H100, "NVIDIA-RTX-A6000" RTXA6000,
// "NVIDIA-GeForce-RTX-4090" RTX4090. A MIG profile ("...-MIG-1g.10gb") keeps the model name.
func NvidiaGPUName(product string) string {
	var parts []string
	for i, p := range strings.FieldsFunc(product, func(r rune) bool { return r == '-' || r == '_' || r == ' ' }) {
		if i == 0 && slices.Contains([]string{"NVIDIA", "Tesla", "GeForce", "Quadro"}, p) {
			continue
		}
		if strings.EqualFold(p, "MIG") {
			break
		}
		if p == "GeForce" || gpuSuffix.MatchString(p) {
			continue
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "")
}

// amdDevices are the AMD Instinct PCI device ids the AMD node labeller reports (amd.com/gpu.device-id)
// with dstack's GPU names and memory.
var amdDevices = map[string]struct {
	name string
	gb   int
}{
	"738c": {"MI100", 32}, "740f": {"MI210", 64}, "7408": {"MI250X", 128}, "740c": {"MI250", 128},
	"74a0": {"MI300A", 128}, "74a1": {"MI300X", 192}, "74b5": {"MI300X", 192}, "74a5": {"MI325X", 256},
	"75a0": {"MI350X", 288}, "75a3": {"MI355X", 288},
}

var amdModel = regexp.MustCompile(`(?i)^MI\d+[A-Z]*$`)

// AMDGPU is the name and memory (MiB) of an AMD GPU from the node labeller's product name (e.g.
// "AMD_Instinct_MI300X_OAM"), device id (74a1) and VRAM label ("192G").
func AMDGPU(product, deviceID, vram string) (string, int) {
	dev := amdDevices[strings.ToLower(deviceID)]
	name := dev.name
	for _, p := range strings.FieldsFunc(product, func(r rune) bool { return r == '-' || r == '_' || r == ' ' }) {
		if amdModel.MatchString(p) {
			name = strings.ToUpper(p)
			break
		}
	}
	mem := dev.gb * 1024
	if v := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(vram), "B"), "G"); v != "" {
		if gb, err := strconv.Atoi(v); err == nil && gb > 0 {
			mem = gb * 1024
		}
	}
	return name, mem
}

// offersFor is the nodes' offers for req.
func offersFor(nodes []nodeInfo, req offers.Requirements) []offers.Offer {
	if req.Spot != nil && *req.Spot {
		return nil // Kubernetes has no spot
	}
	var out []offers.Offer
	for _, n := range nodes {
		res, ok := fit(n, req.Resources)
		if !ok {
			continue
		}
		o := offers.Offer{
			Backend:         typ,
			Instance:        offers.InstanceType{Name: n.name, Resources: res},
			Region:          Region,
			Availability:    offers.Available,
			InstanceRuntime: offers.RuntimeRunner,
		}
		if !n.available {
			o.Availability = offers.NotAvailable
		}
		out = append(out, o)
	}
	return out
}

// pick is the amount of a resource to take from free for r: r's minimum, else all of free, at
// most r's maximum; false when free has not that much or r excludes it.
func pick[T int | float64](r resources.Range[T], free T) (T, bool) {
	v := free
	if r.Min != nil {
		v = *r.Min
	}
	if r.Max != nil && v > *r.Max {
		v = *r.Max
	}
	return v, v <= free && r.Contains(v)
}

// fit is the part of node n that spec asks for, or false when n has not that much free.
func fit(n nodeInfo, spec resources.ResourcesSpec) (offers.Resources, bool) {
	var res offers.Resources
	if a := spec.CPU.Arch; a != nil && n.arch != "" && !strings.EqualFold(*a, n.arch) {
		return res, false
	}
	cpus, ok := pick(spec.CPU.Count, int(n.cpuMilli/1000))
	if !ok || cpus < 1 {
		return res, false
	}
	freeMemGB := float64(n.memBytes) / (1 << 30)
	memGB, ok := pick(rangeOf(spec.Memory), freeMemGB)
	if !ok || memGB <= 0 {
		return res, false
	}
	memMiB := int(n.memBytes >> 20)
	if memGB != freeMemGB {
		memMiB = int(math.Round(memGB * 1024))
	}
	diskMiB := int(n.diskBytes >> 20)
	if spec.Disk != nil {
		freeGB := float64(n.diskBytes) / (1 << 30)
		gb, ok := pick(rangeOf(spec.Disk.Size), freeGB)
		if !ok {
			return res, false
		}
		if gb != freeGB {
			diskMiB = int(math.Round(gb * 1024))
		}
	}
	gpus, ok := fitGPUs(n, spec.GPU)
	if !ok {
		return res, false
	}
	res = offers.Resources{CPUs: cpus, MemoryMiB: memMiB, Disk: offers.Disk{SizeMiB: diskMiB}, CPUArch: n.arch, GPUs: []offers.GPU{}}
	for range gpus {
		res.GPUs = append(res.GPUs, offers.GPU{Name: n.gpuName, MemoryMiB: n.gpuMemMiB, Vendor: n.gpuVendor})
	}
	return res, true
}

// fitGPUs is how many of n's free GPUs spec asks for: all of them without a spec, else the
// count's minimum (1 when the spec names a model, memory or compute capability but allows 0).
func fitGPUs(n nodeInfo, spec *resources.GPUSpec) (int, bool) {
	if spec == nil {
		return int(n.gpus), true
	}
	r := spec.Count
	if (r.Min == nil || *r.Min == 0) && (len(spec.Name) > 0 || spec.Memory != nil || spec.TotalMemory != nil || spec.ComputeCapability != nil) &&
		r.Contains(1) {
		r.Min = new(1)
	}
	want, ok := pick(r, int(n.gpus))
	if !ok {
		return 0, false
	}
	if want == 0 {
		return 0, true
	}
	if v := spec.Vendor; v != nil && !strings.EqualFold(*v, n.gpuVendor) {
		return 0, false
	}
	if len(spec.Name) > 0 && !slices.ContainsFunc(spec.Name, func(s string) bool { return strings.EqualFold(s, n.gpuName) }) {
		return 0, false
	}
	memGB := resources.Memory(float64(n.gpuMemMiB) / 1024)
	if spec.Memory != nil && !spec.Memory.Contains(memGB) {
		return 0, false
	}
	if spec.TotalMemory != nil && !spec.TotalMemory.Contains(memGB*resources.Memory(want)) {
		return 0, false
	}
	if cc := spec.ComputeCapability; cc != nil && (n.cc == nil || n.cc.Less(*cc)) {
		return 0, false
	}
	return want, true
}

// rangeOf converts a range of sizes (GB) to float64 for pick.
func rangeOf(r resources.Range[resources.Memory]) resources.Range[float64] {
	var out resources.Range[float64]
	if r.Min != nil {
		out.Min = new(float64(*r.Min))
	}
	if r.Max != nil {
		out.Max = new(float64(*r.Max))
	}
	return out
}
