// Package hostinfo describes the machine the shim runs on: CPUs, memory, disk, addresses, architecture
// and accelerators (from nvidia-smi or amd-smi), written as host_info.json into the shim's home for the
// server to read when it adds the host to an SSH fleet.
package hostinfo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// FileName is the name of the file in the shim's home.
const FileName = "host_info.json"

// Info is the content of host_info.json. The first eight fields are those of dstack's shim; the rest are
// additions.
type Info struct {
	GPUVendor GPUVendor `json:"gpu_vendor"`
	GPUName   string    `json:"gpu_name"`
	GPUMemory int       `json:"gpu_memory"` // MiB, of the first GPU
	GPUCount  int       `json:"gpu_count"`
	Addresses []string  `json:"addresses"` // CIDR notation, e.g. 10.0.0.5/24
	DiskSize  uint64    `json:"disk_size"` // bytes, of the file system holding the shim's home
	CPUs      int       `json:"cpus"`
	Memory    uint64    `json:"memory"` // bytes

	Arch     string `json:"arch"` // GOARCH: amd64, arm64
	Hostname string `json:"hostname,omitempty"`
	GPUs     []GPU  `json:"gpus"`
}

// Collect describes this machine; diskPath selects the file system whose size is reported.
func Collect(ctx context.Context, diskPath string) Info {
	info := Info{
		CPUs:      runtime.NumCPU(),
		Arch:      runtime.GOARCH,
		Addresses: Addresses(),
		GPUs:      DetectGPUs(ctx),
	}
	info.Hostname, _ = os.Hostname()
	info.Memory, _ = memTotal("/proc/meminfo")
	info.DiskSize, _ = DiskSize(diskPath)
	info.SetGPUs(info.GPUs)
	return info
}

// SetGPUs fills the GPU summary fields from gpus.
func (i *Info) SetGPUs(gpus []GPU) {
	if gpus == nil {
		gpus = []GPU{}
	}
	i.GPUs = gpus
	i.GPUVendor, i.GPUName, i.GPUMemory, i.GPUCount = VendorNone, "", 0, len(gpus)
	if len(gpus) > 0 {
		i.GPUVendor, i.GPUName, i.GPUMemory = gpus[0].Vendor, gpus[0].Name, gpus[0].MemoryMiB
	}
}

// Write stores info at path atomically.
func Write(path string, info Info) error {
	data, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Read loads host_info.json from path.
func Read(path string) (Info, error) {
	var info Info
	data, err := os.ReadFile(path)
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(data, &info); err != nil {
		return info, fmt.Errorf("%s: %w", path, err)
	}
	return info, nil
}

// Lookups the detection uses; tests replace them.
var (
	lookPath   = exec.LookPath
	runCommand = func(ctx context.Context, name string, args ...string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return out, fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(stderr.String()))
		}
		return out, nil
	}
)

// DetectGPUs lists the GPUs with nvidia-smi, or else amd-smi, when present in PATH; none otherwise or
// when the tool fails.
func DetectGPUs(ctx context.Context) []GPU {
	if p, err := lookPath("nvidia-smi"); err == nil {
		out, err := runCommand(ctx, p, NvidiaSMIQueryArgs...)
		if err == nil {
			if gpus, err := ParseNvidiaSMI(out); err == nil {
				return gpus
			}
		}
	}
	if p, err := lookPath("amd-smi"); err == nil {
		out, err := runCommand(ctx, p, AMDSMIArgs...)
		if err == nil {
			if gpus, err := ParseAMDSMI(out); err == nil {
				for i := range gpus {
					gpus[i].RenderNode = amdRenderNode(gpus[i].BusID)
				}
				return gpus
			}
		}
	}
	return []GPU{}
}

// GPUUsageNow reads the current usage of NVIDIA GPUs; nil when there is no nvidia-smi.
func GPUUsageNow(ctx context.Context) []GPUUsage {
	p, err := lookPath("nvidia-smi")
	if err != nil {
		return nil
	}
	out, err := runCommand(ctx, p, NvidiaSMIUsageArgs...)
	if err != nil {
		return nil
	}
	usage, _ := ParseNvidiaSMIUsage(out)
	return usage
}

// amdRenderNode resolves the udev link /dev/dri/by-path/pci-<bdf>-render to /dev/dri/renderD<N>.
func amdRenderNode(bdf string) string {
	if bdf == "" {
		return ""
	}
	p, err := filepath.EvalSymlinks("/dev/dri/by-path/pci-" + bdf + "-render")
	if err != nil {
		return ""
	}
	return p
}

// Addresses lists the IPv4 and IPv6 addresses of the interfaces that are up, in CIDR notation,
// leaving out loopback and link-local addresses.
func Addresses() []string {
	addrs := []string{}
	ifaces, err := net.Interfaces()
	if err != nil {
		return addrs
	}
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 {
			continue
		}
		ifAddrs, err := iface.Addrs()
		if err != nil {
			continue
		}
		for _, a := range ifAddrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() || ipn.IP.IsLinkLocalMulticast() {
				continue
			}
			addrs = append(addrs, ipn.String())
		}
	}
	return addrs
}

// DiskSize returns the total size in bytes of the file system holding path.
func DiskSize(path string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, err
	}
	return st.Blocks * uint64(st.Bsize), nil
}

// memTotal reads MemTotal from a meminfo file, in bytes.
func memTotal(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseUint(fields[1], 10, 64)
			if err != nil {
				return 0, err
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("%s: no MemTotal", path)
}
