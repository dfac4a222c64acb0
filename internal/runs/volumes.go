package runs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dstackgo/dstack/internal/agentapi"
	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/fleets"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/offers"
	"github.com/dstackgo/dstack/internal/store"
)

// A run's `volumes` mount network volumes by name ("data:/data", or {name: [a, b], path} to take
// whichever of them is where the job runs) and instance directories ("/mnt/cache:/cache", or
// {instance_path, path, optional}). A job with network volumes runs only where they are: on their
// backend, in their region, in their availability zone; VM backends attach them to the machine
// before the job starts and detach them when it ends.

// mountPoint is one network volume entry of a job: candidate volume names and the container path.
type mountPoint struct {
	names []string
	path  string
}

// parseMounts splits a job's `volumes` into network volume mount points and instance mounts.
func parseMounts(list []any) ([]mountPoint, []agentapi.InstanceMountPoint, error) {
	var mps []mountPoint
	var inst []agentapi.InstanceMountPoint
	for i, v := range list {
		switch v := v.(type) {
		case string:
			src, dst, ok := strings.Cut(v, ":")
			if !ok || src == "" || !strings.HasPrefix(dst, "/") {
				return nil, nil, fmt.Errorf("volumes[%d]: %q is not NAME:/PATH or /HOST/PATH:/PATH", i, v)
			}
			if strings.HasPrefix(src, "/") || strings.HasPrefix(src, "~") {
				inst = append(inst, agentapi.InstanceMountPoint{InstancePath: src, Path: dst})
			} else {
				mps = append(mps, mountPoint{names: []string{src}, path: dst})
			}
		case map[string]any:
			path, _ := v["path"].(string)
			if !strings.HasPrefix(path, "/") {
				return nil, nil, fmt.Errorf("volumes[%d].path: expected an absolute path in the container", i)
			}
			if ip, ok := v["instance_path"].(string); ok {
				opt, _ := v["optional"].(bool)
				inst = append(inst, agentapi.InstanceMountPoint{InstancePath: ip, Path: path, Optional: opt})
				continue
			}
			var names []string
			switch n := v["name"].(type) {
			case string:
				names = []string{n}
			case []any:
				for _, x := range n {
					if s, ok := x.(string); ok {
						names = append(names, s)
					}
				}
			}
			if len(names) == 0 {
				return nil, nil, fmt.Errorf("volumes[%d]: expected `name` (a volume or a list of volumes) or `instance_path`", i)
			}
			mps = append(mps, mountPoint{names: names, path: path})
		default:
			return nil, nil, fmt.Errorf("volumes[%d]: expected a string or an object", i)
		}
	}
	return mps, inst, nil
}

// jobVolumes are the candidate volumes of each of a job's mount points.
type jobVolumes struct {
	points     []mountPoint
	candidates [][]*models.Volume // per mount point, its active volumes
}

// errWaitVolumes is a volume not active yet.
var errWaitVolumes = errors.New("waiting for volumes")

// volumeProblem is a reason the job cannot use its volumes: it fails with volume_error.
type volumeProblem struct{ msg string }

func (e *volumeProblem) Error() string { return e.msg }

func volumeProblemf(format string, args ...any) error {
	return &volumeProblem{fmt.Sprintf(format, args...)}
}

// volumes resolves the job's mount points; a volume that does not exist or failed is a
// *volumeProblem, one still being created errWaitVolumes.
func (p *job) volumes(ctx context.Context) (*jobVolumes, error) {
	mps, _, err := parseMounts(p.j.Spec.Volumes)
	if err != nil {
		return nil, &volumeProblem{err.Error()}
	}
	if len(mps) == 0 {
		return nil, nil
	}
	out := &jobVolumes{points: mps}
	for _, mp := range mps {
		var active []*models.Volume
		pending := false
		for _, name := range mp.names {
			v, err := p.Store.GetVolume(ctx, p.j.ProjectID, name)
			if errors.Is(err, store.ErrNotFound) {
				return nil, volumeProblemf("volume %s does not exist; create it with `dstack apply` (type: volume)", name)
			}
			if err != nil {
				return nil, err
			}
			switch {
			case v.DeleteRequested:
				return nil, volumeProblemf("volume %s is being deleted", name)
			case v.Status == models.VolumeActive && v.PD != nil:
				active = append(active, v)
			case v.Status == models.VolumeSubmitted || v.Status == models.VolumeProvisioning:
				pending = true
			}
		}
		if len(active) == 0 {
			if pending {
				return nil, errWaitVolumes
			}
			return nil, volumeProblemf("no volume of %s is active", strings.Join(mp.names, ", "))
		}
		out.candidates = append(out.candidates, active)
	}
	return out, nil
}

// pick chooses, for each mount point, a volume on the backend and region given and, when zone is not
// empty, in that zone; ok is false when some mount point has none there.
func (jv *jobVolumes) pick(backend, region, zone string) (chosen []*models.Volume, ok bool) {
	for _, cands := range jv.candidates {
		var got *models.Volume
		for _, v := range cands {
			if v.Configuration.Backend != backend || v.PD.Region != region {
				continue
			}
			if az := v.PD.AvailabilityZone; zone != "" && az != nil && *az != "" && *az != zone {
				continue
			}
			got = v
			break
		}
		if got == nil {
			return nil, false
		}
		chosen = append(chosen, got)
	}
	return chosen, true
}

// zone is the one availability zone the chosen volumes require ("" for none).
func zoneOf(vols []*models.Volume) string {
	for _, v := range vols {
		if az := v.PD.AvailabilityZone; az != nil && *az != "" && !models.VolumeBackends[v.Configuration.Backend] {
			return *az
		}
	}
	return ""
}

// fitsInstance says whether an existing instance is where the job's volumes are.
func (jv *jobVolumes) fitsInstance(inst *models.Instance) bool {
	if jv == nil {
		return true
	}
	zone := ""
	if inst.JPD != nil && inst.JPD.AvailabilityZone != nil {
		zone = *inst.JPD.AvailabilityZone
	}
	_, ok := jv.pick(inst.Backend, inst.Region, zone)
	return ok
}

// restrict narrows an offer query to the volumes' backends and regions.
func (jv *jobVolumes) restrict(q *offers.Query) {
	if jv == nil {
		return
	}
	var bs, rs []string
	for _, v := range jv.candidates[0] {
		if !slices.Contains(bs, v.Configuration.Backend) {
			bs = append(bs, v.Configuration.Backend)
		}
		if !slices.Contains(rs, v.PD.Region) {
			rs = append(rs, v.PD.Region)
		}
	}
	q.Backends, q.Regions = intersect(q.Backends, bs), intersect(q.Regions, rs)
}

func intersect(have, want []string) []string {
	if len(have) == 0 {
		return want
	}
	var out []string
	for _, x := range want {
		if slices.Contains(have, x) {
			out = append(out, x)
		}
	}
	if out == nil {
		out = []string{} // nothing in common: no offer
	}
	return out
}

// fitOffer narrows an offer to the volumes' zone; ok is false when the volumes are not there.
func (jv *jobVolumes) fitOffer(o offers.Offer) (offers.Offer, []*models.Volume, bool) {
	if jv == nil {
		return o, nil, true
	}
	vols, ok := jv.pick(o.Backend, o.Region, "")
	if !ok {
		return o, nil, false
	}
	if zone := zoneOf(vols); zone != "" {
		if len(o.AvailabilityZones) > 0 && !slices.Contains(o.AvailabilityZones, zone) {
			return o, nil, false
		}
		o.AvailabilityZones = []string{zone}
		if vols, ok = jv.pick(o.Backend, o.Region, zone); !ok {
			return o, nil, false
		}
	}
	return o, vols, true
}

// mountedVolumes is what a container backend mounts when it creates the machine.
func mountedVolumes(jv *jobVolumes, vols []*models.Volume) []backends.MountedVolume {
	var out []backends.MountedVolume
	for i, v := range vols {
		out = append(out, backends.MountedVolume{Volume: *v.PD, Path: jv.points[i].path})
	}
	return out
}

// attachVolumes attaches the job's volumes to its instance (where the backend attaches volumes) and
// fills in the task's volumes and mounts. An error fails the job with volume_error.
func (p *job) attachVolumes(ctx context.Context, inst *models.Instance, cfg *agentapi.TaskConfig) error {
	_, instMounts, err := parseMounts(p.j.Spec.Volumes)
	if err != nil {
		return &volumeProblem{err.Error()}
	}
	cfg.InstanceMounts = append(cfg.InstanceMounts, instMounts...)
	jv, err := p.volumes(ctx)
	if err != nil || jv == nil {
		return err
	}
	zone := ""
	if inst.JPD != nil && inst.JPD.AvailabilityZone != nil {
		zone = *inst.JPD.AvailabilityZone
	}
	vols, ok := jv.pick(inst.Backend, inst.Region, zone)
	if !ok {
		return volumeProblemf("instance %s is not where the job's volumes are", inst.Name)
	}
	var attacher backends.VolumeAttacher
	if c, err := p.Compute(ctx, inst.ProjectID, inst.Backend); err == nil {
		attacher, _ = c.(backends.VolumeAttacher)
	}
	for i, v := range vols {
		info := agentapi.VolumeInfo{Backend: v.Configuration.Backend, Name: v.Name, VolumeID: v.PD.VolumeID, InitFS: !v.External}
		if attacher != nil && v.PD.Attachable && inst.JPD != nil {
			att, err := attacher.AttachVolume(ctx, *v.PD, *fleets.ToBackend(*inst.JPD))
			if err != nil {
				return volumeProblemf("cannot attach volume %s: %v", v.Name, err)
			}
			if err := p.Store.AddVolumeAttachment(ctx, models.VolumeAttachment{VolumeID: v.ID, InstanceID: inst.ID, Data: att}); err != nil {
				return err
			}
			info.DeviceName = att.DeviceName
		}
		cfg.Volumes = append(cfg.Volumes, info)
		cfg.VolumeMounts = append(cfg.VolumeMounts, agentapi.VolumeMountPoint{Name: v.Name, Path: jv.points[i].path})
	}
	return nil
}

// detachVolumes detaches the job's volumes from its instance, best effort: a volume left attached
// is detached when its instance terminates.
func (p *job) detachVolumes(ctx context.Context, inst *models.Instance) {
	mps, _, _ := parseMounts(p.j.Spec.Volumes)
	mine := map[string]bool{}
	for _, mp := range mps {
		for _, name := range mp.names {
			mine[name] = true
		}
	}
	atts, err := p.Store.VolumeAttachments(ctx, "", inst.ID)
	if err != nil || len(atts) == 0 || inst.JPD == nil {
		return
	}
	c, err := p.Compute(ctx, inst.ProjectID, inst.Backend)
	if err != nil {
		return
	}
	attacher, ok := c.(backends.VolumeAttacher)
	if !ok {
		return
	}
	for _, a := range atts {
		v, err := p.Store.GetVolumeByID(ctx, a.VolumeID)
		if err != nil || v.PD == nil || !mine[v.Name] {
			continue
		}
		if err := attacher.DetachVolume(ctx, *v.PD, *fleets.ToBackend(*inst.JPD)); err != nil {
			p.log().Warn("cannot detach a volume", "volume", v.Name, "instance", inst.Name, "err", err)
			continue
		}
		if err := p.Store.RemoveVolumeAttachment(ctx, v.ID, inst.ID); err != nil {
			p.log().Warn("cannot record a volume detached", "volume", v.Name, "err", err)
		}
		p.wakeRow(ctx, store.TableVolumes, v.ID)
	}
}
