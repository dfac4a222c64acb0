package server

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/runs"
	"github.com/dstackgo/dstack/internal/store"
)

// volumeJSON is dstack's Volume.
type volumeJSON struct {
	ID               string                           `json:"id"`
	Name             string                           `json:"name"`
	User             string                           `json:"user"`
	ProjectName      string                           `json:"project_name"`
	Configuration    models.VolumeConfiguration       `json:"configuration"`
	External         bool                             `json:"external"`
	CreatedAt        string                           `json:"created_at"`
	LastProcessedAt  string                           `json:"last_processed_at"`
	Status           string                           `json:"status"`
	StatusMessage    *string                          `json:"status_message"`
	Deleted          bool                             `json:"deleted"`
	DeletedAt        *string                          `json:"deleted_at"`
	VolumeID         *string                          `json:"volume_id"`
	ProvisioningData *backends.VolumeProvisioningData `json:"provisioning_data"`
	Cost             float64                          `json:"cost"`
	Attachments      []volumeAttachmentJSON           `json:"attachments"`
	AttachmentData   *backends.VolumeAttachmentData   `json:"attachment_data"`
}

type volumeAttachmentJSON struct {
	Instance struct {
		Name        string  `json:"name"`
		FleetName   *string `json:"fleet_name"`
		InstanceNum int     `json:"instance_num"`
		InstanceID  *string `json:"instance_id"`
	} `json:"instance"`
	AttachmentData *backends.VolumeAttachmentData `json:"attachment_data"`
}

func (s *Server) volumeJSON(r *request, v *models.Volume, projectName string) (volumeJSON, error) {
	out := volumeJSON{ID: v.ID, Name: v.Name, ProjectName: projectName, Configuration: v.Configuration, External: v.External,
		CreatedAt: apiTime(v.CreatedAt), LastProcessedAt: apiTime(v.LastProcessedAt), Status: v.Status,
		StatusMessage: nonEmpty(v.StatusMessage), Deleted: v.Deleted, ProvisioningData: v.PD,
		Attachments: []volumeAttachmentJSON{}}
	if v.DeletedAt != nil {
		t := apiTime(*v.DeletedAt)
		out.DeletedAt = &t
	}
	if v.PD != nil {
		out.VolumeID = &v.PD.VolumeID
		// The cost so far, from the monthly price, as dstack shows it.
		out.Cost = v.PD.Price * v.LastProcessedAt.Sub(v.CreatedAt).Hours() / (30 * 24)
	}
	if u, err := s.store.GetUserByID(r.Context(), v.UserID); err == nil {
		out.User = u.Username
	}
	attached, err := s.store.VolumeAttachments(r.Context(), v.ID, "")
	if err != nil {
		return out, err
	}
	for _, a := range attached {
		inst, err := s.store.GetInstance(r.Context(), a.InstanceID)
		if err != nil {
			continue
		}
		var aj volumeAttachmentJSON
		aj.Instance.Name, aj.Instance.InstanceNum, aj.AttachmentData = inst.Name, inst.InstanceNum, a.Data
		if inst.JPD != nil {
			aj.Instance.InstanceID = &inst.JPD.InstanceID
		}
		if f, err := s.store.GetFleetByID(r.Context(), inst.FleetID); err == nil {
			aj.Instance.FleetName = &f.Name
		}
		out.Attachments = append(out.Attachments, aj)
	}
	return out, nil
}

func (s *Server) listProjectVolumes(r *request) (any, *apiError) {
	return s.volumesOf(r, map[string]string{r.project.ID: r.project.Name})
}

// listVolumes is the global /api/volumes/list: the volumes of every project the caller sees.
func (s *Server) listVolumes(r *request) (any, *apiError) {
	var req struct {
		ProjectName *string `json:"project_name"`
		OnlyActive  bool    `json:"only_active"`
		PrevCreated *string `json:"prev_created_at"`
		PrevID      *string `json:"prev_id"`
		Limit       int     `json:"limit"`
		Ascending   bool    `json:"ascending"`
	}
	if e := decode(r.Request, &req, true); e != nil {
		return nil, e
	}
	projects, e := s.visibleProjects(r, req.ProjectName)
	if e != nil {
		return nil, e
	}
	return s.volumesOf(r, projects)
}

func (s *Server) volumesOf(r *request, projects map[string]string) (any, *apiError) {
	list, err := s.store.ListVolumes(r.Context(), slices.Collect(maps.Keys(projects)))
	if err != nil {
		return nil, s.internal(err)
	}
	out := []volumeJSON{}
	for _, v := range list {
		vj, err := s.volumeJSON(r, v, projects[v.ProjectID])
		if err != nil {
			return nil, s.internal(err)
		}
		out = append(out, vj)
	}
	return out, nil
}

func (s *Server) getVolume(r *request) (any, *apiError) {
	var req struct {
		Name string `json:"name" required:"true"`
	}
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	v, e := s.findVolume(r, req.Name)
	if e != nil {
		return nil, e
	}
	vj, err := s.volumeJSON(r, v, r.project.Name)
	if err != nil {
		return nil, s.internal(err)
	}
	return vj, nil
}

func (s *Server) findVolume(r *request, name string) (*models.Volume, *apiError) {
	v, err := s.store.GetVolume(r.Context(), r.project.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errResourceNotFound
	}
	if err != nil {
		return nil, s.internal(err)
	}
	return v, nil
}

// createVolume is /volumes/create, what `dstack apply` sends for `type: volume`.
func (s *Server) createVolume(r *request) (any, *apiError) {
	var req struct {
		Configuration json.RawMessage `json:"configuration" required:"true"`
	}
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	conf, err := models.ParseVolumeConfiguration(req.Configuration)
	if err != nil {
		return nil, badRequestf("Invalid volume configuration: %v", err)
	}
	if _, err := s.store.GetBackend(r.Context(), r.project.ID, conf.Backend); errors.Is(err, store.ErrNotFound) {
		return nil, badRequestf("Backend %s is not configured for project %s; add it on the project's settings page or in config.yml", conf.Backend, r.project.Name)
	} else if err != nil {
		return nil, s.internal(err)
	}
	name := ""
	if conf.Name != nil {
		name = *conf.Name
	} else {
		name = runs.GenerateName()
		conf.Name = &name
	}
	v := &models.Volume{ProjectID: r.project.ID, UserID: r.user.ID, Name: name, Configuration: conf,
		External: conf.VolumeID != nil, Status: models.VolumeSubmitted}
	if err := s.store.CreateVolume(r.Context(), v); errors.Is(err, store.ErrExists) {
		return nil, clientError(codeResourceExists, "Volume with name "+name+" already exists")
	} else if err != nil {
		return nil, s.internal(err)
	}
	s.work().wake(store.TableVolumes)
	vj, err := s.volumeJSON(r, v, r.project.Name)
	if err != nil {
		return nil, s.internal(err)
	}
	return vj, nil
}

// deleteVolumes refuses volumes that a running job uses; the others are deleted by the pipeline once
// their instances have detached them.
func (s *Server) deleteVolumes(r *request) (any, *apiError) {
	var req struct {
		Names []string `json:"names" required:"true"`
	}
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	var ids []string
	for _, name := range req.Names {
		v, e := s.findVolume(r, name)
		if e != nil {
			return nil, e
		}
		attached, err := s.store.VolumeAttachments(r.Context(), v.ID, "")
		if err != nil {
			return nil, s.internal(err)
		}
		for _, a := range attached {
			if inst, err := s.store.GetInstance(r.Context(), a.InstanceID); err == nil && inst.JobID != "" {
				return nil, badRequestf("Failed to delete volume %s. Volume is in use by instance %s.", v.Name, inst.Name)
			}
		}
		ids = append(ids, v.ID)
	}
	if err := s.store.RequestVolumeDeletion(r.Context(), ids); err != nil {
		return nil, s.internal(err)
	}
	s.work().wake(store.TableVolumes)
	return nil, nil
}
