package fleets

import (
	"errors"
	"fmt"
	"math"

	"github.com/dstackgo/dstack/internal/models"
)

// ErrCannotSplit is dstack's message for a host whose CPUs or GPUs do not divide into its blocks.
var ErrCannotSplit = errors.New("Cannot split into blocks")

// ParseBlocks reads a fleet's or host's `blocks`: an int >= 1, or "auto" (returned as 0); nil is 1.
func ParseBlocks(v any) (int, error) {
	switch b := v.(type) {
	case nil:
		return 1, nil
	case string:
		if b == "auto" {
			return 0, nil
		}
	case float64:
		if b >= 1 && b == math.Trunc(b) {
			return int(b), nil
		}
	case int:
		if b >= 1 {
			return b, nil
		}
	}
	return 0, fmt.Errorf(`blocks must be an integer >= 1 or "auto", not %v`, v)
}

// TotalBlocks is the number of blocks a host with the resources is split into: "auto" gives one per
// GPU (min(cpus, gpus)), or per CPU without GPUs; a number must divide both the CPUs and the GPUs.
func TotalBlocks(v any, res models.InstanceResources) (int, error) {
	n, err := ParseBlocks(v)
	if err != nil {
		return 0, err
	}
	cpus, gpus := res.CPUs, len(res.Gpus)
	if n == 0 {
		n = cpus
		if gpus > 0 {
			n = min(cpus, gpus)
		}
		return max(n, 1), nil
	}
	if n > 1 && (cpus%n != 0 || gpus%n != 0) {
		return 0, fmt.Errorf("%w: %d CPUs and %d GPUs into %d", ErrCannotSplit, cpus, gpus, n)
	}
	return n, nil
}

// BlockShare is the part of an instance's resources that k of its n blocks hold: CPUs, memory and
// GPUs divided evenly (the disk is shared).
func BlockShare(res models.InstanceResources, k, n int) models.InstanceResources {
	if n <= 1 || k >= n {
		return res
	}
	out := res
	out.CPUs = res.CPUs * k / n
	out.MemoryMiB = res.MemoryMiB * k / n
	out.Gpus = res.Gpus[:len(res.Gpus)*k/n]
	return out
}
