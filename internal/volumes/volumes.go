// Package volumes runs the lifecycle of network volumes (`type: volume`): a submitted volume is
// created on its backend (or, with volume_id, registered without being owned) and becomes active; a
// volume whose deletion is requested is deleted on the backend once no instance has it attached.
// Each volume row is processed under a lease by a pipeline (see package pipeline), so several server
// replicas never act on one volume at once.
package volumes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/store"
)

// Service processes volumes.
type Service struct {
	Store *store.Store
	// Compute returns the machine operations of a project's backend.
	Compute func(ctx context.Context, projectID, backend string) (backends.Compute, error)
	// ServerID tags what this server creates, for the orphan reconciler's kind of bookkeeping.
	ServerID string
	Log      *slog.Logger
	// RetryAfter is how long a volume whose backend failed waits before the next try (default 10s,
	// dstack's volumes pipeline period).
	RetryAfter time.Duration
}

// ErrNotSupported is a backend without network volumes.
var ErrNotSupported = errors.New("the backend has no network volumes")

// VolumeCompute returns the volume operations of the project's backend.
func (s *Service) VolumeCompute(ctx context.Context, projectID, backend string) (backends.VolumeCompute, error) {
	c, err := s.Compute(ctx, projectID, backend)
	if err != nil {
		return nil, err
	}
	vc, ok := c.(backends.VolumeCompute)
	if !ok {
		return nil, fmt.Errorf("%s: %w", backend, ErrNotSupported)
	}
	return vc, nil
}

// Process is the volumes pipeline's work on one leased volume.
func (s *Service) Process(ctx context.Context, l store.Lease) (time.Duration, error) {
	v, err := s.Store.GetVolumeByID(ctx, l.ID)
	if err != nil {
		return 0, err
	}
	if v.Deleted {
		return 0, nil
	}
	if v.DeleteRequested {
		return s.delete(ctx, l, v)
	}
	if v.Status != models.VolumeSubmitted && v.Status != models.VolumeProvisioning {
		return 0, nil
	}
	project, err := s.Store.GetProjectByID(ctx, v.ProjectID)
	if err != nil {
		return 0, err
	}
	vc, err := s.VolumeCompute(ctx, v.ProjectID, v.Configuration.Backend)
	if err != nil {
		return 0, s.fail(ctx, l, v, err.Error())
	}
	c := v.Configuration
	cfg := backends.VolumeConfig{ProjectName: project.Name, Name: v.Name, Region: c.Region,
		Tags: map[string]string{"dstack_project": project.Name, "dstack_server": s.ServerID, "dstack_volume": v.ID}}
	for k, x := range c.Tags {
		cfg.Tags[k] = x
	}
	if c.AvailabilityZone != nil {
		cfg.AvailabilityZone = *c.AvailabilityZone
	}
	var pd *backends.VolumeProvisioningData
	if c.VolumeID != nil {
		cfg.VolumeID = *c.VolumeID
		pd, err = vc.RegisterVolume(ctx, cfg)
	} else {
		cfg.SizeGB = int(*c.Size + 0.999) // whole GB, rounding up
		pd, err = vc.CreateVolume(ctx, cfg)
	}
	if err != nil {
		var ce *backends.CredentialsError
		if errors.As(err, &ce) || ctx.Err() != nil {
			return 0, err // retried: the backend may come back
		}
		return 0, s.fail(ctx, l, v, err.Error())
	}
	pd.Backend = c.Backend
	if pd.Region == "" {
		pd.Region = c.Region
	}
	v.PD, v.Status, v.StatusMessage = pd, models.VolumeActive, ""
	if err := s.Store.SaveVolumeState(ctx, l, v); err != nil {
		if c.VolumeID == nil && !errors.Is(err, store.ErrLeaseLost) {
			// Not recorded: do not leave a volume nobody knows of.
			_ = vc.DeleteVolume(context.WithoutCancel(ctx), *pd)
		}
		return 0, err
	}
	s.log().Info("volume active", "volume", v.Name, "backend", c.Backend, "volume_id", pd.VolumeID)
	return 0, nil
}

func (s *Service) fail(ctx context.Context, l store.Lease, v *models.Volume, msg string) error {
	v.Status, v.StatusMessage = models.VolumeFailed, msg
	s.log().Warn("volume failed", "volume", v.Name, "reason", msg)
	return s.Store.SaveVolumeState(ctx, l, v)
}

// delete removes a volume whose deletion was requested, once nothing has it attached; volumes dstack
// does not own (volume_id) are only forgotten.
func (s *Service) delete(ctx context.Context, l store.Lease, v *models.Volume) (time.Duration, error) {
	all, err := s.Store.VolumeAttachments(ctx, v.ID, "")
	if err != nil {
		return 0, err
	}
	var attached []models.VolumeAttachment
	for _, a := range all {
		inst, err := s.Store.GetInstance(ctx, a.InstanceID)
		if err == nil && models.InstanceActive(inst.Status) {
			attached = append(attached, a)
			continue
		}
		// The provider detached it when the instance went away.
		if err := s.Store.RemoveVolumeAttachment(ctx, a.VolumeID, a.InstanceID); err != nil {
			return 0, err
		}
	}
	if len(attached) > 0 {
		msg := fmt.Sprintf("waiting for %d instance(s) to detach it", len(attached))
		if v.StatusMessage != msg {
			v.StatusMessage = msg
			if err := s.Store.SaveVolumeState(ctx, l, v); err != nil {
				return 0, err
			}
		}
		return s.retryAfter(), nil
	}
	if v.PD != nil && !v.External {
		vc, err := s.VolumeCompute(ctx, v.ProjectID, v.Configuration.Backend)
		if err != nil {
			return 0, fmt.Errorf("volume %s: %w", v.Name, err)
		}
		if err := vc.DeleteVolume(ctx, *v.PD); err != nil {
			v.StatusMessage = "cannot delete it: " + err.Error()
			if serr := s.Store.SaveVolumeState(ctx, l, v); serr != nil {
				return 0, serr
			}
			return s.retryAfter(), nil
		}
	}
	v.Deleted = true
	if err := s.Store.SaveVolumeState(ctx, l, v); err != nil {
		return 0, err
	}
	s.log().Info("volume deleted", "volume", v.Name)
	return 0, nil
}

func (s *Service) retryAfter() time.Duration {
	if s.RetryAfter > 0 {
		return s.RetryAfter
	}
	return 10 * time.Second
}

func (s *Service) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}
