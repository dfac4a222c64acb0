package runs

import (
	"testing"

	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/resources"
)

// TestBlocksFor takes the fewest blocks whose share fits, the whole of an instance not split.
func TestBlocksFor(t *testing.T) {
	inst := &models.Instance{Backend: models.BackendRemote, TotalBlocks: 4, InstanceType: models.InstanceType{Resources: models.InstanceResources{
		CPUs: 8, MemoryMiB: 16 << 10, Gpus: []models.Gpu{}, Disk: models.Disk{SizeMiB: 100 << 10}}}}
	for _, tc := range []struct {
		cpu  string
		want int
	}{{"1..", 1}, {"2..", 1}, {"3..", 2}, {"5..", 3}, {"8..", 4}, {"9..", 0}} {
		spec, err := resources.Parse(map[string]any{"cpu": tc.cpu, "memory": "1GB..", "disk": "1GB.."})
		if err != nil {
			t.Fatal(err)
		}
		k, why := BlocksFor(inst, "f", models.Requirements{Resources: spec}, conf(spec), models.ProfileParams{})
		if k != tc.want || (k == 0) != (why != "") {
			t.Errorf("cpu %s: %d blocks (%q), want %d", tc.cpu, k, why, tc.want)
		}
		cpu := float64(inst.InstanceType.Resources.CPUs * max(k, 1) / 4)
		if got := jobBlocks(inst, &models.Job{JRD: &models.JobRuntimeData{CPU: &cpu}}); k > 0 && got != k {
			t.Errorf("cpu %s: jobBlocks %d, want %d", tc.cpu, got, k)
		}
	}
	whole := *inst
	whole.TotalBlocks = 1
	spec, _ := resources.Parse(map[string]any{"cpu": "1..", "memory": "1GB..", "disk": "1GB.."})
	if k, _ := BlocksFor(&whole, "f", models.Requirements{Resources: spec}, conf(spec), models.ProfileParams{}); k != 1 {
		t.Fatalf("an instance not split: %d blocks", k)
	}
}

func conf(spec resources.ResourcesSpec) models.RunConfiguration {
	return models.RunConfiguration{Task: &models.TaskConfiguration{RunConfigCommon: models.RunConfigCommon{Resources: &spec}}}
}
