package runs

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/dstackgo/dstack/internal/fleets"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/resources"
)

// Mismatch says why an instance cannot take a job ("" when it can).
//
// The CPU architecture is compared only when the configuration names one: the job spec carries
// dstack's default (x86) for display, and an arm host of an SSH fleet is fine for a configuration
// that did not ask.
func Mismatch(inst *models.Instance, fleetName string, req models.Requirements, cfg models.RunConfiguration, params models.ProfileParams) string {
	if names := params.FleetNames(); len(names) > 0 && !slices.Contains(names, fleetName) {
		return "fleet " + fleetName + " is not in fleets"
	}
	if len(params.Backends) > 0 && !slices.Contains(params.Backends, inst.Backend) && !(inst.Backend == models.BackendRemote && slices.Contains(params.Backends, "ssh")) {
		return "backend " + inst.Backend + " is not in backends"
	}
	r := inst.InstanceType.Resources
	want := req.Resources
	if !want.CPU.Count.Contains(r.CPUs) {
		return fmt.Sprintf("%d CPUs, need %s", r.CPUs, want.CPU.Count)
	}
	if arch := cfg.Common().Resources.CPU.Arch; arch != nil && r.CPUArch != nil && !strings.EqualFold(*arch, *r.CPUArch) {
		return fmt.Sprintf("%s CPU, need %s", *r.CPUArch, *arch)
	}
	if mem := resources.Memory(float64(r.MemoryMiB) / 1024); !want.Memory.Contains(mem) {
		return fmt.Sprintf("%s memory, need %s", mem, want.Memory)
	}
	if want.Disk != nil {
		if disk := resources.Memory(float64(r.Disk.SizeMiB) / 1024); !want.Disk.Size.Contains(disk) {
			return fmt.Sprintf("%s disk, need %s", disk, want.Disk.Size)
		}
	}
	if g := want.GPU; g != nil {
		if !g.Count.Contains(len(r.Gpus)) {
			return fmt.Sprintf("%d GPUs, need %s", len(r.Gpus), g.Count)
		}
		if len(r.Gpus) > 0 {
			if why := gpuMismatch(r.Gpus, *g, cfg.Common().Resources.GPU); why != "" {
				return why
			}
		}
	}
	return ""
}

func gpuMismatch(gpus []models.Gpu, want resources.GPUSpec, asked *resources.GPUSpec) string {
	gpu := gpus[0]
	// The vendor defaults to nvidia in the job spec; only a vendor the user named excludes others.
	if asked != nil && asked.Vendor != nil && gpu.Vendor != nil && !strings.EqualFold(*asked.Vendor, *gpu.Vendor) {
		return fmt.Sprintf("%s GPUs, need %s", *gpu.Vendor, *asked.Vendor)
	}
	if len(want.Name) > 0 && !slices.ContainsFunc(want.Name, func(n string) bool { return strings.EqualFold(n, gpu.Name) }) {
		return fmt.Sprintf("%s GPUs, need %s", gpu.Name, strings.Join(want.Name, " or "))
	}
	if want.Memory != nil {
		if m := resources.Memory(float64(gpu.MemoryMiB) / 1024); !want.Memory.Contains(m) {
			return fmt.Sprintf("%s of GPU memory, need %s", m, *want.Memory)
		}
	}
	if want.TotalMemory != nil {
		if m := resources.Memory(float64(gpu.MemoryMiB*len(gpus)) / 1024); !want.TotalMemory.Contains(m) {
			return fmt.Sprintf("%s of total GPU memory, need %s", m, *want.TotalMemory)
		}
	}
	return ""
}

// BlocksFor is the smallest number of the instance's blocks whose share of its resources fits the
// job, or 0 with the reason the whole instance does not. An instance not split into blocks is taken
// whole (1 of 1).
func BlocksFor(inst *models.Instance, fleetName string, req models.Requirements, cfg models.RunConfiguration, params models.ProfileParams) (int, string) {
	n := max(inst.TotalBlocks, 1)
	for k := 1; k < n; k++ {
		share := *inst
		share.InstanceType.Resources = fleets.BlockShare(inst.InstanceType.Resources, k, n)
		if Mismatch(&share, fleetName, req, cfg, params) == "" {
			return k, ""
		}
	}
	if why := Mismatch(inst, fleetName, req, cfg, params); why != "" {
		return 0, why
	}
	return n, ""
}

// jobBlocks is how many blocks of an instance split into blocks the job holds, from the CPU share
// recorded in its runtime data.
func jobBlocks(inst *models.Instance, j *models.Job) int {
	n, cpus := max(inst.TotalBlocks, 1), inst.InstanceType.Resources.CPUs
	if j.JRD == nil || j.JRD.CPU == nil || cpus <= 0 {
		return 1
	}
	return min(max(int(math.Round(*j.JRD.CPU*float64(n)/float64(cpus))), 1), n)
}
