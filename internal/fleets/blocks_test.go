package fleets

import (
	"errors"
	"testing"

	"github.com/dstackgo/dstack/internal/models"
)

func TestTotalBlocks(t *testing.T) {
	gpus := func(n int) []models.Gpu { return make([]models.Gpu, n) }
	for _, tc := range []struct {
		v          any
		cpus, gpus int
		want       int
		err        bool
	}{
		{nil, 8, 0, 1, false},
		{float64(2), 8, 0, 2, false},
		{2, 8, 2, 2, false},
		{"auto", 8, 0, 8, false},
		{"auto", 32, 4, 4, false},
		{"auto", 2, 4, 2, false},
		{float64(3), 8, 0, 0, true}, // 8 CPUs do not split in 3
		{float64(2), 8, 1, 0, true}, // nor 1 GPU in 2
		{float64(0), 8, 0, 0, true},
		{"many", 8, 0, 0, true},
		{1.5, 8, 0, 0, true},
	} {
		got, err := TotalBlocks(tc.v, models.InstanceResources{CPUs: tc.cpus, Gpus: gpus(tc.gpus)})
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("TotalBlocks(%v, %d CPUs, %d GPUs) = %d, %v", tc.v, tc.cpus, tc.gpus, got, err)
		}
		if err != nil && tc.cpus%max(tc.want, 1) == 0 && tc.v == float64(3) && !errors.Is(err, ErrCannotSplit) {
			t.Errorf("%v: %v is not ErrCannotSplit", tc.v, err)
		}
	}
	share := BlockShare(models.InstanceResources{CPUs: 8, MemoryMiB: 16384, Gpus: gpus(4), Disk: models.Disk{SizeMiB: 100}}, 1, 4)
	if share.CPUs != 2 || share.MemoryMiB != 4096 || len(share.Gpus) != 1 || share.Disk.SizeMiB != 100 {
		t.Fatalf("share %+v", share)
	}
}
