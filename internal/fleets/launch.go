package fleets

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/offers"
)

// Launcher creates one machine from a list of offers, trying them in turn (dstack-spec §5.6). Jobs
// (package runs) and the instances of cloud fleets (nodes.go) share it.
type Launcher struct {
	// Compute returns the machine operations of a project's backend.
	Compute func(ctx context.Context, projectID, backend string) (backends.Compute, error)
	// Refused records an offer a provider refused for want of capacity, so that jobs skip it and
	// plans show it not_available for a while (nil: not recorded).
	Refused func(offers.Offer)
	Log     *slog.Logger
}

// Launched is the machine a backend created for one of the offers.
type Launched struct {
	Offer   offers.Offer
	Compute backends.Compute
	PD      *backends.ProvisioningData
	Took    time.Duration
}

// Prepare gives the config of the machine of offer i of the list on its backend's compute c. A non-empty skip
// passes the offer over with that reason (it counts as a failed offer); err is a failure of the
// server itself and ends the launch.
type Prepare func(ctx context.Context, i int, o offers.Offer, c backends.Compute) (cfg backends.InstanceConfig, skip string, err error)

// DescribeOffer names an offer in status messages: "lambda us-east-1 gpu_1x_a10 $1.29/h".
func DescribeOffer(o offers.Offer) string {
	return fmt.Sprintf("%s %s %s $%g/h", o.Backend, o.Region, o.Instance.Name, o.Price)
}

// Launch tries the offers in order until a backend creates a machine. Before each try, progress
// gets the status message to show ("trying offer 2 of 5: … (the previous one failed: …)"). It
// returns the machine, or nil and the failures ("<offer>: <why>") when every offer failed; err is
// a failure of progress or prepare, or the end of ctx (a machine made meanwhile is an orphan).
func (l Launcher) Launch(ctx context.Context, projectID string, list []offers.Offer, prepare Prepare, progress func(msg string) error) (*Launched, []string, error) {
	var failures []string
	for i, o := range list {
		msg := fmt.Sprintf("trying offer %d of %d: %s", i+1, len(list), DescribeOffer(o))
		if n := len(failures); n > 0 {
			msg += " (the previous one failed: " + failures[n-1] + ")"
		}
		if err := progress(msg); err != nil {
			return nil, failures, err
		}
		m, why, err := l.try(ctx, projectID, i, o, prepare)
		if err != nil || m != nil {
			return m, failures, err
		}
		failures = append(failures, DescribeOffer(o)+": "+why)
	}
	return nil, failures, nil
}

// try asks the offer's backend for a machine; why says how it refused.
func (l Launcher) try(ctx context.Context, projectID string, i int, o offers.Offer, prepare Prepare) (*Launched, string, error) {
	compute, err := l.Compute(ctx, projectID, o.Backend)
	if err != nil {
		return nil, err.Error(), nil
	}
	cfg, skip, err := prepare(ctx, i, o, compute)
	if err != nil || skip != "" {
		return nil, skip, err
	}
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	pd, err := compute.CreateInstance(cctx, o, cfg)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		if backends.IsNoCapacity(err) && l.Refused != nil {
			l.Refused(o)
		}
		l.log().Warn("offer failed", "offer", DescribeOffer(o), "err", err)
		return nil, err.Error(), nil
	}
	return &Launched{Offer: o, Compute: compute, PD: pd, Took: time.Since(start)}, "", nil
}

func (l Launcher) log() *slog.Logger {
	if l.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l.Log
}

// InstanceTypeOf converts an offer's instance type for storage.
func InstanceTypeOf(it offers.InstanceType) models.InstanceType {
	r := it.Resources
	res := models.InstanceResources{CPUs: r.CPUs, MemoryMiB: r.MemoryMiB, Gpus: []models.Gpu{}, Spot: r.Spot,
		Disk: models.Disk{SizeMiB: r.Disk.SizeMiB}, Description: r.Description}
	if r.CPUArch != "" {
		arch := r.CPUArch
		res.CPUArch = &arch
	}
	for _, g := range r.GPUs {
		vendor := g.Vendor
		res.Gpus = append(res.Gpus, models.Gpu{Name: g.Name, MemoryMiB: g.MemoryMiB, Vendor: &vendor})
	}
	return models.InstanceType{Name: it.Name, Resources: res}
}
