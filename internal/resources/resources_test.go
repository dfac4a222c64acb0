package resources

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

func ptr[T any](v T) *T { return &v }

func yamlValue(t *testing.T, src string) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(src), &v); err != nil {
		t.Fatalf("yaml %q: %v", src, err)
	}
	return v
}

func TestParseRange(t *testing.T) {
	ints := []struct {
		in   any
		want string
	}{
		{2, "2"}, {"2..", "2.."}, {"4..8", "4..8"}, {"..8", "..8"}, {" 4 .. 8 ", "4..8"},
		{map[string]any{"min": 1, "max": nil}, "1.."}, {map[string]any{"max": "3"}, "..3"},
		{uint64(5), "5"}, {json.Number("7"), "7"}, {float64(3), "3"},
	}
	for _, c := range ints {
		r, err := ParseRange[int](c.in)
		if err != nil || r.String() != c.want {
			t.Errorf("ParseRange[int](%#v) = %v, %v; want %s", c.in, r, err, c.want)
		}
	}
	mems := []struct {
		in   any
		want string
	}{
		{8, "8GB"}, {"8GB..", "8GB.."}, {"512MB", "0.5GB"}, {"1TB", "1024GB"}, {"16", "16GB"},
		{"16gb..64GB", "16GB..64GB"}, {"..1.5TB", "..1536GB"}, {0.5, "0.5GB"},
		{map[string]any{"min": "100GB", "max": 200.0}, "100GB..200GB"},
	}
	for _, c := range mems {
		r, err := ParseRange[Memory](c.in)
		if err != nil || r.String() != c.want {
			t.Errorf("ParseRange[Memory](%#v) = %v, %v; want %s", c.in, r, err, c.want)
		}
	}
	bad := []any{"..", "", "8..4", "a..b", "-1", 1.5, true, "1...2", map[string]any{"min": 1, "x": 2},
		map[string]any{}, "infGB", "nan", "0x10", []any{1}}
	for _, in := range bad {
		if r, err := ParseRange[int](in); err == nil {
			t.Errorf("ParseRange[int](%#v) = %v, want an error", in, r)
		}
	}
	for _, in := range []any{"8XB", "8GB..4GB", "inf", "1e400", "-2GB", ".."} {
		if r, err := ParseRange[Memory](in); err == nil {
			t.Errorf("ParseRange[Memory](%#v) = %v, want an error", in, r)
		}
	}
}

func TestRangeOps(t *testing.T) {
	r := Between(2, 8)
	if !r.Contains(2) || !r.Contains(8) || r.Contains(9) || r.Contains(1) {
		t.Error("Contains")
	}
	if got, ok := r.Intersect(AtLeast(4)); !ok || got.String() != "4..8" {
		t.Errorf("Intersect = %v %v", got, ok)
	}
	if _, ok := r.Intersect(AtLeast(9)); ok {
		t.Error("disjoint ranges intersect")
	}
	if got, ok := (Range[int]{}).Intersect(Range[int]{Max: ptr(3)}); !ok || got.String() != "..3" {
		t.Errorf("open Intersect = %v", got)
	}
}

func TestParseCPU(t *testing.T) {
	cases := []struct {
		yaml, arch, count string
	}{
		{"4", "", "4"},
		{"2..", "", "2.."},
		{"4..8", "", "4..8"},
		{"..8", "", "..8"},
		{"arm:4..", "arm", "4.."},
		{"x86:8", "x86", "8"},
		{"8:aarch64", "arm", "8"},
		{"arm", "arm", "2.."},
		{"{arch: arm, count: 4..}", "arm", "4.."},
		{"{count: {min: 4, max: 16}}", "", "4..16"},
		{"{min: 4}", "", "4.."},
		{"null", "", "2.."},
	}
	for _, c := range cases {
		got, err := ParseCPU(yamlValue(t, "v: "+c.yaml).(map[string]any)["v"])
		if err != nil {
			t.Errorf("%s: %v", c.yaml, err)
			continue
		}
		arch := ""
		if got.Arch != nil {
			arch = *got.Arch
		}
		if arch != c.arch || got.Count.String() != c.count {
			t.Errorf("%s: got arch=%q count=%s", c.yaml, arch, got.Count)
		}
	}
	for _, in := range []any{"mips:4", "arm:x86", "4:8", "arm::4", "", "4..2", map[string]any{"arch": "z80"},
		map[string]any{"cores": 4}, -1} {
		_, err := ParseCPU(in)
		if err == nil {
			t.Errorf("ParseCPU(%#v): want an error", in)
			continue
		}
		if !strings.HasPrefix(err.Error(), "resources.cpu") {
			t.Errorf("ParseCPU(%#v): error %q does not name the field", in, err)
		}
	}
}

func TestParseGPU(t *testing.T) {
	cases := []struct {
		in   any
		want GPUSpec
	}{
		{2, GPUSpec{Count: Exact(2)}},
		{"A100", GPUSpec{Name: []string{"A100"}, Count: AtLeast(1)}},
		{"A100:80GB:2", GPUSpec{Name: []string{"A100"}, Memory: ptr(Exact[Memory](80)), Count: Exact(2)}},
		{"24GB..", GPUSpec{Memory: ptr(AtLeast[Memory](24)), Count: AtLeast(1)}},
		{"H100,A100:8", GPUSpec{Name: []string{"H100", "A100"}, Count: Exact(8)}},
		{"amd:MI300X:1..", GPUSpec{Vendor: ptr("amd"), Name: []string{"MI300X"}, Count: AtLeast(1)}},
		{"nvidia:1..8", GPUSpec{Vendor: ptr("nvidia"), Count: Between(1, 8)}},
		{"tpu:v5litepod-8", GPUSpec{Vendor: ptr("google"), Name: []string{"v5litepod-8"}, Count: AtLeast(1)}},
		{"tpu-v2-8", GPUSpec{Vendor: ptr("google"), Name: []string{"v2-8"}, Count: AtLeast(1)}},
		{"v2-8", GPUSpec{Name: []string{"v2-8"}, Count: AtLeast(1)}},
		{"TT:n150", GPUSpec{Vendor: ptr("tenstorrent"), Name: []string{"n150"}, Count: AtLeast(1)}},
		{"A10G:16GB..24GB:..4", GPUSpec{Name: []string{"A10G"}, Memory: ptr(Between[Memory](16, 24)), Count: Range[int]{Max: ptr(4)}}},
		{"1..", GPUSpec{Count: AtLeast(1)}},
		{map[string]any{"min": 1, "max": 2}, GPUSpec{Count: Between(1, 2)}},
		{map[string]any{"name": "A100"}, GPUSpec{Name: []string{"A100"}, Count: AtLeast(1)}},
		{map[string]any{"vendor": "AMD", "name": []any{"MI300X", "MI325X"}, "count": "2..4", "memory": "192GB..",
			"total_memory": "1TB..", "compute_capability": "9.0"},
			GPUSpec{Vendor: ptr("amd"), Name: []string{"MI300X", "MI325X"}, Count: Between(2, 4),
				Memory: ptr(AtLeast[Memory](192)), TotalMemory: ptr(AtLeast[Memory](1024)),
				ComputeCapability: &ComputeCapability{9, 0}}},
		{map[string]any{"compute_capability": []any{8, 6}}, GPUSpec{Count: AtLeast(1), ComputeCapability: &ComputeCapability{8, 6}}},
		{map[string]any{"compute_capability": 7.5}, GPUSpec{Count: AtLeast(1), ComputeCapability: &ComputeCapability{7, 5}}},
	}
	for _, c := range cases {
		got, err := ParseGPU(c.in)
		if err != nil {
			t.Errorf("ParseGPU(%#v): %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(*got, c.want) {
			t.Errorf("ParseGPU(%#v) = %s, want %s", c.in, got, c.want)
		}
	}
	if g, err := ParseGPU(nil); g != nil || err != nil {
		t.Errorf("ParseGPU(nil) = %v, %v", g, err)
	}
}

func TestParseGPUErrors(t *testing.T) {
	cases := map[any]string{
		"A100:xx":       `resources.gpu: "A100:xx" is not valid: expected [vendor:]name[,name...][:memory][:count], e.g. A100:80GB:2 (two name tokens: "A100" and "xx"; list names with commas)`,
		"A100::2":       "empty token",
		"nvidia:amd":    "two vendors",
		"80GB:40GB":     "two memory tokens",
		"1:2":           "two count tokens",
		"8XB":           `memory "8XB"`,
		"A100,":         "empty GPU name",
		"2..1":          "greater than max",
		"amd:tpu-v2-8":  "TPU",
		"-1":            "count",
		"..":            "empty range",
		true:            "resources.gpu",
		1.5:             "resources.gpu",
		"tpu-":          "TPU name",
		"A100:80GB:2:x": "two name tokens",
	}
	for in, want := range cases {
		_, err := ParseGPU(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseGPU(%#v) = %v, want an error containing %q", in, err, want)
		}
	}
	objs := map[string]string{
		`{vendor: ati}`:                "resources.gpu.vendor",
		`{name: 5}`:                    "resources.gpu.name",
		`{count: x}`:                   "resources.gpu.count",
		`{memory: 8XB}`:                "resources.gpu.memory",
		`{total_memory: ..}`:           "resources.gpu.total_memory",
		`{compute_capability: [8]}`:    "resources.gpu.compute_capability",
		`{compute_capability: "x.y"}`:  "resources.gpu.compute_capability",
		`{cores: 4}`:                   `unknown key "cores"`,
		`{name: [A100, ""], count: 1}`: "empty GPU name",
	}
	for src, want := range objs {
		_, err := ParseGPU(yamlValue(t, src))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseGPU(%s) = %v, want an error containing %q", src, err, want)
		}
	}
}

func TestParseResources(t *testing.T) {
	spec, err := Parse(yamlValue(t, `
cpu: arm:8..
memory: 32GB..
shm_size: 16GB
gpu: H100:80GB:8
disk: {size: 500GB..1TB}
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.String(); got != "cpu=arm:8.. mem=32GB.. shm=16GB disk=500GB..1024GB gpu=H100:80GB:8" {
		t.Errorf("String = %s", got)
	}

	def, err := Parse(yamlValue(t, "gpu: 24GB.."))
	if err != nil {
		t.Fatal(err)
	}
	if def.CPU.Count.String() != "2.." || def.Memory.String() != "8GB.." || def.Disk.Size.String() != "100GB.." ||
		def.GPU.Count.String() != "1.." {
		t.Errorf("defaults: %s", def)
	}
	none, _ := Parse(nil)
	if none.GPU == nil || none.GPU.Count.String() != "0.." || none.String() != "cpu=2.. mem=8GB.. disk=100GB.." {
		t.Errorf("Parse(nil) = %s", none)
	}
	noDisk, _ := Parse(map[string]any{"disk": nil, "gpu": nil})
	if noDisk.Disk != nil || noDisk.GPU != nil {
		t.Errorf("explicit nulls lost: %+v", noDisk)
	}
	disk, err := Parse(map[string]any{"disk": "200GB"})
	if err != nil || disk.Disk.Size.String() != "200GB" {
		t.Errorf("disk size form: %v %v", disk, err)
	}

	bad := map[string]string{
		"memory: lots":                  "resources.memory",
		"shm_size: 8GB..":               "resources.shm_size",
		"disk: {size: x}":               "resources.disk",
		"disk: {sise: 100GB}":           "resources.disk",
		"disk: {}":                      "resources.disk",
		"cpus: 4":                       "resources.cpus",
		"cpu: {arch: arm, count: four}": "resources.cpu.count",
	}
	for src, want := range bad {
		_, err := Parse(yamlValue(t, src))
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Parse(%s) = %v, want an error starting with %q", src, err, want)
		}
	}
	if _, err := Parse("4"); err == nil || !strings.HasPrefix(err.Error(), "resources: ") {
		t.Errorf("Parse(scalar) = %v", err)
	}
}

// The dstack 0.21.2 CLI sends this for `dstack offer --gpu A100 --json` (recording 04).
const cliJSON = `{"cpu": {"arch": null, "count": {"min": 1, "max": null}}, "memory": {"min": 0.0, "max": null}, "shm_size": null, "gpu": {"vendor": null, "name": ["A100"], "count": {"min": 1, "max": null}, "memory": null, "total_memory": null, "compute_capability": null}, "disk": null}`

func TestJSONWire(t *testing.T) {
	var spec ResourcesSpec
	if err := json.Unmarshal([]byte(cliJSON), &spec); err != nil {
		t.Fatal(err)
	}
	if spec.Disk != nil || spec.GPU == nil || spec.GPU.Name[0] != "A100" || spec.CPU.Count.String() != "1.." {
		t.Fatalf("decoded %+v", spec)
	}
	out, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"cpu":{"arch":null,"count":{"min":1,"max":null}},"memory":{"min":0,"max":null},"shm_size":null,"gpu":{"vendor":null,"name":["A100"],"count":{"min":1,"max":null},"memory":null,"total_memory":null,"compute_capability":null},"disk":null}`
	if string(out) != want {
		t.Errorf("marshal:\n got %s\nwant %s", out, want)
	}

	full, _ := Parse(yamlValue(t, "{cpu: x86:4, gpu: {name: A100, compute_capability: '8.0', memory: 40GB..}, disk: 200GB.., shm_size: 1GB}"))
	b, _ := json.Marshal(full)
	var back ResourcesSpec
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(full, back) {
		t.Errorf("round trip through %s:\n got %+v\nwant %+v", b, back, full)
	}
	if !strings.Contains(string(b), `"compute_capability":[8,0]`) {
		t.Errorf("compute_capability not a list: %s", b)
	}

	// Short forms inside JSON are accepted too.
	var short ResourcesSpec
	if err := json.Unmarshal([]byte(`{"gpu": "A100:2", "memory": "16GB..", "cpu": 4}`), &short); err != nil ||
		short.String() != "cpu=4 mem=16GB.. disk=100GB.. gpu=A100:2" {
		t.Errorf("short JSON: %s %v", short, err)
	}
	var bad ResourcesSpec
	if err := json.Unmarshal([]byte(`{"gpu": "A100:xx"}`), &bad); err == nil || !strings.HasPrefix(err.Error(), "resources.gpu") {
		t.Errorf("bad JSON: %v", err)
	}
}

func FuzzParseGPU(f *testing.F) {
	for _, s := range []string{"A100:80GB:2", "24GB..", "H100,A100:8", "amd:MI300X:1..", "nvidia:1..8",
		"tpu:v5litepod-8", "v2-8", "tpu-v3-8", "..80GB:..4", "512MB", "A100::", "é:1", "1e3GB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g, err := ParseGPU(s)
		if err != nil {
			return
		}
		formatted := g.String()
		again, err := ParseGPU(formatted)
		if err != nil {
			t.Fatalf("%q -> %q does not parse: %v", s, formatted, err)
		}
		if !reflect.DeepEqual(g, again) {
			t.Fatalf("%q -> %q -> %s: round trip changed the spec", s, formatted, again)
		}
	})
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"2..", "4..8", "..8", "8", "8GB..", "512MB..1TB", "..", "1e2", ".5..1", "8..."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if r, err := ParseRange[int](s); err == nil {
			again, err := ParseRange[int](r.String())
			if err != nil || !again.Equal(r) {
				t.Fatalf("int %q -> %q -> %v, %v", s, r, again, err)
			}
		}
		if r, err := ParseRange[Memory](s); err == nil {
			again, err := ParseRange[Memory](r.String())
			if err != nil || !again.Equal(r) {
				t.Fatalf("memory %q -> %q -> %v, %v", s, r, again, err)
			}
		}
		if c, err := ParseCPU(s); err == nil {
			again, err := ParseCPU(c.String())
			if err != nil || !reflect.DeepEqual(c, again) {
				t.Fatalf("cpu %q -> %q -> %v, %v", s, c, again, err)
			}
		}
	})
}
