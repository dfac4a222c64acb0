package server

import (
	"errors"

	"github.com/google/uuid"

	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/store"
)

type instanceJSON struct {
	ID                       string               `json:"id"`
	ProjectName              string               `json:"project_name"`
	Backend                  *string              `json:"backend"`
	InstanceType             *models.InstanceType `json:"instance_type"`
	Name                     string               `json:"name"`
	FleetID                  *string              `json:"fleet_id"`
	FleetName                *string              `json:"fleet_name"`
	InstanceNum              int                  `json:"instance_num"`
	JobName                  *string              `json:"job_name"`
	Hostname                 *string              `json:"hostname"`
	Status                   string               `json:"status"`
	Unreachable              bool                 `json:"unreachable"`
	HealthStatus             string               `json:"health_status"`
	TerminationReason        *string              `json:"termination_reason"`
	TerminationReasonMessage *string              `json:"termination_reason_message"`
	Created                  string               `json:"created"`
	FinishedAt               *string              `json:"finished_at"`
	Region                   *string              `json:"region"`
	AvailabilityZone         *string              `json:"availability_zone"`
	Price                    *float64             `json:"price"`
	TotalBlocks              *int                 `json:"total_blocks"`
	BusyBlocks               int                  `json:"busy_blocks"`
	GpuDriver                any                  `json:"gpu_driver"`
	// StatusMessage is an addition: why a host is not ready (its last provisioning failure) or not
	// reachable. The original CLI ignores it; ours shows it in `dstack fleet`.
	StatusMessage *string `json:"status_message"`
}

func (s *Server) instanceJSON(r *request, inst *models.Instance, projectName, fleetName string) (instanceJSON, error) {
	it := inst.InstanceType
	price, blocks := inst.Price, inst.TotalBlocks
	out := instanceJSON{ID: inst.ID, ProjectName: projectName, Backend: nonEmpty(inst.Backend), InstanceType: &it,
		Name: inst.Name, FleetID: nonEmpty(inst.FleetID), InstanceNum: inst.InstanceNum, Hostname: nonEmpty(inst.Hostname),
		Status: inst.Status, Unreachable: inst.Unreachable, HealthStatus: "healthy",
		TerminationReason: nonEmpty(inst.TerminationReason), TerminationReasonMessage: nonEmpty(inst.TerminationReasonMessage),
		Created: apiTime(inst.CreatedAt), Region: nonEmpty(inst.Region), Price: &price, TotalBlocks: &blocks,
		BusyBlocks: inst.BusyBlocks, StatusMessage: nonEmpty(inst.StatusMessage)}
	if inst.FinishedAt != nil {
		t := apiTime(*inst.FinishedAt)
		out.FinishedAt = &t
	}
	if inst.TerminateRequested && models.InstanceActive(inst.Status) && inst.Status != models.InstanceBusy {
		out.Status = models.InstanceTerminating
	}
	if fleetName == "" && inst.FleetID != "" {
		if f, err := s.store.GetFleetByID(r.Context(), inst.FleetID); err == nil {
			fleetName = f.Name
		}
	}
	out.FleetName = nonEmpty(fleetName)
	if inst.JobID != "" {
		if j, err := s.store.GetJob(r.Context(), inst.JobID); err == nil {
			out.JobName = &j.JobName
		} else if !errors.Is(err, store.ErrNotFound) {
			return out, err
		}
	}
	return out, nil
}

type listInstancesRequest struct {
	ProjectNames    []string `json:"project_names"`
	FleetIDs        []string `json:"fleet_ids"`
	OnlyActive      bool     `json:"only_active"`
	IncludeImported bool     `json:"include_imported"`
	PrevCreatedAt   *string  `json:"prev_created_at"`
	PrevID          *string  `json:"prev_id"`
	Limit           *int     `json:"limit"`
	Ascending       bool     `json:"ascending"`
}

func (s *Server) listInstances(r *request) (any, *apiError) {
	var req listInstancesRequest
	if e := decode(r.Request, &req, true); e != nil {
		return nil, e
	}
	names, e := s.visibleProjects(r, nil)
	if e != nil {
		return nil, e
	}
	if req.ProjectNames != nil {
		want := map[string]bool{}
		for _, n := range req.ProjectNames {
			want[n] = true
		}
		for id, n := range names {
			if !want[n] {
				delete(names, id)
			}
		}
	}
	page, e := pageOf("prev_created_at", req.PrevCreatedAt, req.PrevID, req.Limit, 1000, 1<<30, req.Ascending)
	if e != nil {
		return nil, e
	}
	list, err := s.store.ListInstances(r.Context(), store.InstanceFilter{ProjectIDs: keys(names), FleetIDs: req.FleetIDs,
		OnlyActive: req.OnlyActive, Page: page})
	if err != nil {
		return nil, s.internal(err)
	}
	out := []instanceJSON{}
	for _, inst := range list {
		ij, err := s.instanceJSON(r, inst, names[inst.ProjectID], "")
		if err != nil {
			return nil, s.internal(err)
		}
		out = append(out, ij)
	}
	return out, nil
}

type getInstanceRequest struct {
	ID string `json:"id" required:"true"`
}

func (s *Server) getInstance(r *request) (any, *apiError) {
	var req getInstanceRequest
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	if _, err := uuid.Parse(req.ID); err != nil {
		return nil, unprocessable(validationItem{Type: "uuid_parsing", Loc: []any{"body", "id"}, Msg: "Input should be a valid UUID", Input: req.ID})
	}
	inst, err := s.store.GetInstance(r.Context(), req.ID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && inst.ProjectID != r.project.ID) {
		return nil, errResourceNotFound
	}
	if err != nil {
		return nil, s.internal(err)
	}
	ij, err := s.instanceJSON(r, inst, r.project.Name, "")
	if err != nil {
		return nil, s.internal(err)
	}
	return ij, nil
}
