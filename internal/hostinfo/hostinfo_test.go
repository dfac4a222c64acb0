package hostinfo

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseNvidiaSMI(t *testing.T) {
	tests := []struct {
		file      string
		count     int
		first     GPU
		lastMem   int
		lastIDHas string
	}{
		{"nvidia-smi-h100x8.csv", 8, GPU{Vendor: VendorNvidia, Name: "NVIDIA H100 80GB HBM3", MemoryMiB: 81559, ID: "GPU-2b79666e-d81f-f3f8-fd47-9903f118c3f5"}, 81559, "GPU-4c5d6e7f"},
		{"nvidia-smi-a10g.csv", 1, GPU{Vendor: VendorNvidia, Name: "NVIDIA A10G", MemoryMiB: 23028, ID: "GPU-3e7c9b0a-5d21-4f86-b0c9-7e1a2d3f4b5c"}, 23028, "GPU-3e7c9b0a"},
		{"nvidia-smi-mixed-na.csv", 2, GPU{Vendor: VendorNvidia, Name: "Tesla T4", MemoryMiB: 15360, ID: "GPU-6b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"}, 0, "GPU-8f7e6d5c"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			gpus, err := ParseNvidiaSMI(readTestdata(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if len(gpus) != tt.count {
				t.Fatalf("got %d GPUs, want %d", len(gpus), tt.count)
			}
			if gpus[0] != tt.first {
				t.Errorf("first = %+v, want %+v", gpus[0], tt.first)
			}
			last := gpus[len(gpus)-1]
			if last.MemoryMiB != tt.lastMem || !strings.HasPrefix(last.ID, tt.lastIDHas) {
				t.Errorf("last = %+v", last)
			}
		})
	}
	gpus, err := ParseNvidiaSMI(readTestdata(t, "nvidia-smi-empty.csv"))
	if err != nil || len(gpus) != 0 {
		t.Errorf("empty output: %v %v", gpus, err)
	}
	if _, err := ParseNvidiaSMI([]byte("NVIDIA A10G, 23028\n")); err == nil {
		t.Error("two fields: want an error")
	}
}

func TestParseNvidiaSMIUsage(t *testing.T) {
	usage, err := ParseNvidiaSMIUsage(readTestdata(t, "nvidia-smi-usage.csv"))
	if err != nil {
		t.Fatal(err)
	}
	want := []GPUUsage{{MemoryUsedMiB: 1024, UtilPercent: 37}, {MemoryUsedMiB: 81000, UtilPercent: 100}}
	if !reflect.DeepEqual(usage, want) {
		t.Errorf("got %+v, want %+v", usage, want)
	}
}

func TestParseAMDSMI(t *testing.T) {
	tests := []struct {
		file string
		want []GPU
	}{
		{"amd-smi-static-rocm6.json", []GPU{
			{Vendor: VendorAMD, Name: "AMD Instinct MI300X", MemoryMiB: 196592, BusID: "0000:0c:00.0"},
			{Vendor: VendorAMD, Name: "AMD Instinct MI300X", MemoryMiB: 196592, BusID: "0000:22:00.0"},
		}},
		{"amd-smi-static-rocm7.json", []GPU{
			{Vendor: VendorAMD, Name: "AMD Instinct MI325X", MemoryMiB: 262128, BusID: "0000:05:00.0"},
		}},
		{"amd-smi-static-rocm60-string-size.json", []GPU{
			{Vendor: VendorAMD, Name: "AMD Instinct MI210", MemoryMiB: 65520, BusID: "0000:83:00.0"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			gpus, err := ParseAMDSMI(readTestdata(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(gpus, tt.want) {
				t.Errorf("got %+v, want %+v", gpus, tt.want)
			}
		})
	}
	if _, err := ParseAMDSMI([]byte("not json")); err == nil {
		t.Error("invalid JSON: want an error")
	}
}

func TestAMDSizeUnits(t *testing.T) {
	for raw, want := range map[string]int{
		`{"value": 64, "unit": "GB"}`:        65536,
		`{"value": "1024", "unit": "MB"}`:    1024,
		`{"value": 1073741824, "unit": "B"}`: 1024,
		`"N/A"`:                              0,
		`8192`:                               8192,
		`null`:                               0,
	} {
		if got := amdSizeMiB([]byte(raw)); got != want {
			t.Errorf("%s: got %d, want %d", raw, got, want)
		}
	}
}

func TestDetectGPUsUsesTools(t *testing.T) {
	oldLook, oldRun := lookPath, runCommand
	t.Cleanup(func() { lookPath, runCommand = oldLook, oldRun })
	h100 := readTestdata(t, "nvidia-smi-h100x8.csv")
	amd := readTestdata(t, "amd-smi-static-rocm6.json")

	lookPath = func(name string) (string, error) { return "/usr/bin/" + name, nil }
	var calls []string
	runCommand = func(_ context.Context, name string, args ...string) ([]byte, error) {
		calls = append(calls, name+" "+strings.Join(args, " "))
		if strings.HasSuffix(name, "nvidia-smi") {
			return h100, nil
		}
		return amd, nil
	}
	if gpus := DetectGPUs(context.Background()); len(gpus) != 8 || gpus[0].Vendor != VendorNvidia {
		t.Fatalf("nvidia: %+v", gpus)
	}
	if calls[0] != "/usr/bin/nvidia-smi --query-gpu=name,memory.total,uuid --format=csv,noheader,nounits" {
		t.Errorf("call = %q", calls[0])
	}

	lookPath = func(name string) (string, error) {
		if name == "amd-smi" {
			return "/opt/rocm/bin/amd-smi", nil
		}
		return "", errors.New("not found")
	}
	calls = nil
	if gpus := DetectGPUs(context.Background()); len(gpus) != 2 || gpus[0].Vendor != VendorAMD {
		t.Fatalf("amd: %+v", gpus)
	}
	if calls[0] != "/opt/rocm/bin/amd-smi static --json" {
		t.Errorf("call = %q", calls[0])
	}

	lookPath = func(string) (string, error) { return "", errors.New("not found") }
	if gpus := DetectGPUs(context.Background()); gpus == nil || len(gpus) != 0 {
		t.Fatalf("none: %+v", gpus)
	}
}

func TestCollectAndWrite(t *testing.T) {
	oldLook := lookPath
	t.Cleanup(func() { lookPath = oldLook })
	lookPath = func(string) (string, error) { return "", errors.New("not found") }

	dir := t.TempDir()
	info := Collect(context.Background(), dir)
	if info.CPUs < 1 || info.Memory == 0 || info.DiskSize == 0 || info.Arch != runtime.GOARCH {
		t.Fatalf("collected %+v", info)
	}
	if info.GPUVendor != VendorNone || info.GPUCount != 0 || info.GPUs == nil {
		t.Fatalf("gpus: %+v", info)
	}
	for _, a := range info.Addresses {
		if strings.HasPrefix(a, "127.") || strings.HasPrefix(a, "::1/") || strings.HasPrefix(a, "fe80:") {
			t.Errorf("address %s should be left out", a)
		}
	}
	gpus, _ := ParseNvidiaSMI(readTestdata(t, "nvidia-smi-a10g.csv"))
	info.SetGPUs(gpus)
	path := filepath.Join(dir, FileName)
	if err := Write(path, info); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	for _, key := range []string{`"gpu_vendor": "nvidia"`, `"gpu_name": "NVIDIA A10G"`, `"gpu_memory": 23028`, `"gpu_count": 1`, `"addresses"`, `"disk_size"`, `"cpus"`, `"memory"`, `"arch"`} {
		if !strings.Contains(string(raw), key) {
			t.Errorf("host_info.json lacks %s:\n%s", key, raw)
		}
	}
	back, err := Read(path)
	if err != nil || !reflect.DeepEqual(back, info) {
		t.Errorf("read back %+v, %v", back, err)
	}
}
