package hostinfo

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// GPUVendor is the vendor of a host's accelerators.
type GPUVendor string

// GPU vendors.
const (
	VendorNone   GPUVendor = "none"
	VendorNvidia GPUVendor = "nvidia"
	VendorAMD    GPUVendor = "amd"
)

// GPU is one accelerator of the host.
type GPU struct {
	Vendor    GPUVendor `json:"vendor"`
	Name      string    `json:"name"`
	MemoryMiB int       `json:"memory_mib"`
	// ID is the NVIDIA UUID (GPU-…), which Docker device requests accept; empty for AMD.
	ID string `json:"id,omitempty"`
	// BusID is the PCI address (AMD), used to find the GPU's /dev/dri render node.
	BusID string `json:"bus_id,omitempty"`
	// RenderNode is /dev/dri/renderD<N> of an AMD GPU, when found.
	RenderNode string `json:"render_node,omitempty"`
}

// NvidiaSMIQueryArgs are the arguments of the nvidia-smi call that ParseNvidiaSMI reads.
var NvidiaSMIQueryArgs = []string{"--query-gpu=name,memory.total,uuid", "--format=csv,noheader,nounits"}

// ParseNvidiaSMI parses the output of `nvidia-smi --query-gpu=name,memory.total,uuid
// --format=csv,noheader,nounits`: one line per GPU, fields separated by ", ". A memory value that is
// not a number ("[N/A]") reads as 0.
func ParseNvidiaSMI(out []byte) ([]GPU, error) {
	records, err := readCSV(out, 3)
	if err != nil {
		return nil, fmt.Errorf("nvidia-smi output: %w", err)
	}
	gpus := make([]GPU, 0, len(records))
	for _, rec := range records {
		mem, _ := strconv.Atoi(rec[1])
		gpus = append(gpus, GPU{Vendor: VendorNvidia, Name: rec[0], MemoryMiB: mem, ID: rec[2]})
	}
	return gpus, nil
}

// GPUUsage is the current usage of one GPU.
type GPUUsage struct {
	MemoryUsedMiB  uint64
	UtilPercent    uint64
	MemoryTotalMiB uint64
}

// NvidiaSMIUsageArgs are the arguments of the nvidia-smi call that ParseNvidiaSMIUsage reads.
var NvidiaSMIUsageArgs = []string{"--query-gpu=memory.used,utilization.gpu", "--format=csv,noheader,nounits"}

// ParseNvidiaSMIUsage parses the output of `nvidia-smi --query-gpu=memory.used,utilization.gpu
// --format=csv,noheader,nounits`.
func ParseNvidiaSMIUsage(out []byte) ([]GPUUsage, error) {
	records, err := readCSV(out, 2)
	if err != nil {
		return nil, fmt.Errorf("nvidia-smi output: %w", err)
	}
	usage := make([]GPUUsage, 0, len(records))
	for _, rec := range records {
		mem, _ := strconv.ParseUint(rec[0], 10, 64)
		util, _ := strconv.ParseUint(rec[1], 10, 64)
		usage = append(usage, GPUUsage{MemoryUsedMiB: mem, UtilPercent: util})
	}
	return usage, nil
}

func readCSV(out []byte, fields int) ([][]string, error) {
	r := csv.NewReader(bytes.NewReader(out))
	r.TrimLeadingSpace = true
	r.FieldsPerRecord = fields
	var records [][]string
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return records, nil
		}
		if err != nil {
			return nil, err
		}
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i])
		}
		records = append(records, rec)
	}
}

// AMDSMIArgs are the arguments of the amd-smi call that ParseAMDSMI reads.
var AMDSMIArgs = []string{"static", "--json"}

type amdSMIGPU struct {
	GPU  json.RawMessage `json:"gpu"`
	Asic struct {
		MarketName string `json:"market_name"`
	} `json:"asic"`
	Vram struct {
		Size json.RawMessage `json:"size"`
	} `json:"vram"`
	Bus struct {
		BDF string `json:"bdf"`
	} `json:"bus"`
}

// ParseAMDSMI parses the output of `amd-smi static --json`: a JSON array of GPUs (ROCm 6.x) or an
// object whose gpu_data holds that array (ROCm 7.x). The VRAM size is {"value": N, "unit": "MB"}
// (amd-smi's MB are MiB), or, in older releases, a string such as "196592 MB".
func ParseAMDSMI(out []byte) ([]GPU, error) {
	out = bytes.TrimSpace(out)
	var list []amdSMIGPU
	if len(out) > 0 && out[0] == '{' {
		var wrapped struct {
			GPUData []amdSMIGPU `json:"gpu_data"`
		}
		if err := json.Unmarshal(out, &wrapped); err != nil {
			return nil, fmt.Errorf("amd-smi output: %w", err)
		}
		list = wrapped.GPUData
	} else if err := json.Unmarshal(out, &list); err != nil {
		return nil, fmt.Errorf("amd-smi output: %w", err)
	}
	gpus := make([]GPU, 0, len(list))
	for _, g := range list {
		gpus = append(gpus, GPU{
			Vendor:    VendorAMD,
			Name:      strings.TrimSpace(g.Asic.MarketName),
			MemoryMiB: amdSizeMiB(g.Vram.Size),
			BusID:     strings.TrimSpace(g.Bus.BDF),
		})
	}
	return gpus, nil
}

// amdSizeMiB reads a VRAM size in any of amd-smi's shapes and returns MiB (0 when unknown).
func amdSizeMiB(raw json.RawMessage) int {
	if len(raw) == 0 {
		return 0
	}
	var value float64
	unit := "MB"
	var obj struct {
		Value json.RawMessage `json:"value"`
		Unit  string          `json:"unit"`
	}
	var s string
	switch {
	case json.Unmarshal(raw, &obj) == nil && obj.Value != nil:
		if obj.Unit != "" {
			unit = obj.Unit
		}
		if err := json.Unmarshal(obj.Value, &value); err != nil {
			var vs string
			if json.Unmarshal(obj.Value, &vs) != nil {
				return 0
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(vs), 64)
			if err != nil {
				return 0
			}
			value = v
		}
	case json.Unmarshal(raw, &value) == nil:
	case json.Unmarshal(raw, &s) == nil:
		fields := strings.Fields(s)
		if len(fields) == 0 {
			return 0
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0
		}
		value = v
		if len(fields) > 1 {
			unit = fields[1]
		}
	default:
		return 0
	}
	switch strings.ToUpper(unit) {
	case "B":
		value /= 1 << 20
	case "KB", "KIB":
		value /= 1 << 10
	case "GB", "GIB":
		value *= 1 << 10
	}
	return int(math.Round(value))
}
