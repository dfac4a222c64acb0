package server

import (
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/dstackgo/dstack/internal/config"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/store"
)

type projectJSON struct {
	ProjectID     string        `json:"project_id"`
	ProjectName   string        `json:"project_name"`
	Owner         userJSON      `json:"owner"`
	CreatedAt     string        `json:"created_at"`
	Backends      []backendInfo `json:"backends"`
	Members       []memberJSON  `json:"members"`
	IsPublic      bool          `json:"is_public"`
	TemplatesRepo *string       `json:"templates_repo"`
}

// backendInfo is dstack's BackendInfo plus the credential check's outcome, which the original only logs.
type backendInfo struct {
	Name          string         `json:"name"`
	Config        map[string]any `json:"config"`
	Status        string         `json:"status"`
	StatusMessage string         `json:"status_message"`
}

type memberJSON struct {
	User        userJSON          `json:"user"`
	ProjectRole string            `json:"project_role"`
	Permissions memberPermissions `json:"permissions"`
}

type memberPermissions struct {
	CanManageSSHFleets bool `json:"can_manage_ssh_fleets"`
	CanManageSecrets   bool `json:"can_manage_secrets"`
}

// projectJSON renders a project; full adds members and backends, which dstack's list leaves empty.
func (s *Server) projectJSON(r *request, p *models.Project, full bool) (projectJSON, error) {
	ctx := r.Context()
	out := projectJSON{ProjectID: p.ID, ProjectName: p.Name, CreatedAt: apiTime(p.CreatedAt), IsPublic: p.IsPublic,
		Backends: []backendInfo{}, Members: []memberJSON{}}
	owner, err := s.store.GetUserByID(ctx, p.OwnerID)
	if errors.Is(err, store.ErrNotFound) {
		// The owner was deleted; the project lives on with its members.
		owner, err = &models.User{ID: p.OwnerID, Username: "deleted-user", GlobalRole: models.GlobalRoleUser}, nil
	}
	if err != nil {
		return out, err
	}
	out.Owner = s.userJSON(owner)
	if !full {
		return out, nil
	}
	members, err := s.store.ListMembers(ctx, p.ID)
	if err != nil {
		return out, err
	}
	perms := s.Permissions()
	for _, m := range members {
		u, err := s.store.GetUserByID(ctx, m.UserID)
		if err != nil {
			return out, err
		}
		privileged := m.Role == models.ProjectRoleAdmin || u.GlobalRole == models.GlobalRoleAdmin
		out.Members = append(out.Members, memberJSON{User: s.userJSON(u), ProjectRole: m.Role, Permissions: memberPermissions{
			CanManageSSHFleets: privileged || perms.AllowNonAdminsManageSSHFleets,
			CanManageSecrets:   privileged || m.Role == models.ProjectRoleManager,
		}})
	}
	bs, err := s.store.ListBackends(ctx, p.ID)
	if err != nil {
		return out, err
	}
	for _, b := range bs {
		cfg := map[string]any{}
		_ = json.Unmarshal([]byte(b.Config), &cfg)
		cfg["type"] = b.Type
		out.Backends = append(out.Backends, backendInfo{Name: b.Type, Config: cfg, Status: b.Status, StatusMessage: b.StatusMessage})
	}
	return out, nil
}

type listProjectsRequest struct {
	IncludeNotJoined *bool   `json:"include_not_joined"`
	ReturnTotalCount bool    `json:"return_total_count"`
	NamePattern      *string `json:"name_pattern"`
	page
}

func (s *Server) listProjects(r *request) (any, *apiError) {
	var req listProjectsRequest
	if e := decode(r.Request, &req, true); e != nil {
		return nil, e
	}
	all, err := s.store.ListProjects(r.Context())
	if err != nil {
		return nil, s.internal(err)
	}
	var visible []*models.Project
	for _, p := range all {
		if req.NamePattern != nil && !strings.Contains(strings.ToLower(p.Name), strings.ToLower(*req.NamePattern)) {
			continue
		}
		if r.user.GlobalRole != models.GlobalRoleAdmin {
			_, err := s.store.GetMember(r.Context(), p.ID, r.user.ID)
			joined := err == nil
			if !joined && !(p.IsPublic && (req.IncludeNotJoined == nil || *req.IncludeNotJoined)) {
				continue
			}
		}
		visible = append(visible, p)
	}
	visible, total := paginate(req.page, visible, func(p *models.Project) (time.Time, string) { return p.CreatedAt, p.ID })
	out := make([]projectJSON, 0, len(visible))
	for _, p := range visible {
		pj, err := s.projectJSON(r, p, false)
		if err != nil {
			return nil, s.internal(err)
		}
		out = append(out, pj)
	}
	if req.ReturnTotalCount {
		return map[string]any{"total_count": total, "projects": out}, nil
	}
	return out, nil
}

type createProjectRequest struct {
	ProjectName string `json:"project_name" required:"true"`
	IsPublic    bool   `json:"is_public"`
}

// userProjectQuota is how many projects a non-admin may own, as in dstack.
const userProjectQuota = 10

func (s *Server) createProject(r *request) (any, *apiError) {
	var req createProjectRequest
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	if !config.ProjectName.MatchString(req.ProjectName) {
		return nil, badRequestf("Project name should match regex '^[a-zA-Z0-9-_]{1,50}$'")
	}
	isAdmin := r.user.GlobalRole == models.GlobalRoleAdmin
	if !isAdmin && !s.Permissions().AllowNonAdminsCreateProjects {
		return nil, errAccessDenied
	}
	if !isAdmin {
		all, err := s.store.ListProjects(r.Context())
		if err != nil {
			return nil, s.internal(err)
		}
		owned := 0
		for _, p := range all {
			if p.OwnerID == r.user.ID {
				owned++
			}
		}
		if owned >= userProjectQuota {
			return nil, badRequestf("User project quota exceeded")
		}
	}
	p, err := NewProject(req.ProjectName, r.user.ID)
	if err != nil {
		return nil, s.internal(err)
	}
	p.IsPublic = req.IsPublic
	if err := s.store.CreateProject(r.Context(), p); errors.Is(err, store.ErrExists) {
		return nil, clientError(codeResourceExists, "Project with name "+req.ProjectName+" already exists")
	} else if err != nil {
		return nil, s.internal(err)
	}
	pj, err := s.projectJSON(r, p, true)
	if err != nil {
		return nil, s.internal(err)
	}
	return pj, nil
}

// NewProject builds a project with its own SSH key pair, which the server uses to reach instances.
func NewProject(name, ownerID string) (*models.Project, error) {
	priv, pub, err := newSSHKey(name)
	if err != nil {
		return nil, err
	}
	return &models.Project{ID: uuid.NewString(), Name: name, OwnerID: ownerID, SSHPrivateKey: priv, SSHPublicKey: pub}, nil
}

type deleteProjectsRequest struct {
	ProjectsNames []string `json:"projects_names" required:"true"`
}

func (s *Server) deleteProjects(r *request) (any, *apiError) {
	var req deleteProjectsRequest
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	all, err := s.store.ListProjects(r.Context())
	if err != nil {
		return nil, s.internal(err)
	}
	if len(all) <= len(req.ProjectsNames) {
		return nil, badRequestf("Cannot delete the only project")
	}
	for _, name := range req.ProjectsNames {
		p, err := s.store.GetProject(r.Context(), name)
		if err != nil {
			return nil, clientError(codeResourceNotExists, "Project "+name+" not found")
		}
		if r.user.GlobalRole != models.GlobalRoleAdmin {
			m, err := s.store.GetMember(r.Context(), p.ID, r.user.ID)
			if err != nil || m.Role != models.ProjectRoleAdmin {
				return nil, errAccessDenied
			}
		}
	}
	if err := s.store.DeleteProjects(r.Context(), req.ProjectsNames); err != nil {
		return nil, s.internal(err)
	}
	return nil, nil
}

func (s *Server) getProject(r *request) (any, *apiError) {
	pj, err := s.projectJSON(r, r.project, true)
	if err != nil {
		return nil, s.internal(err)
	}
	return pj, nil
}

type memberSetting struct {
	Username    string `json:"username" required:"true"`
	ProjectRole string `json:"project_role" required:"true"`
}

type setMembersRequest struct {
	Members []memberSetting `json:"members" required:"true"`
}

type removeMembersRequest struct {
	Usernames []string `json:"usernames" required:"true"`
}

// resolveMembers turns usernames (or emails) and roles into members, refusing what the caller may not do:
// only project admins (and global admins) grant or take away the admin role.
func (s *Server) resolveMembers(r *request, settings []memberSetting) ([]models.Member, *apiError) {
	var out []models.Member
	for i, ms := range settings {
		switch ms.ProjectRole {
		case models.ProjectRoleAdmin, models.ProjectRoleManager, models.ProjectRoleUser:
		default:
			return nil, unprocessable(validationItem{Type: "enum", Loc: []any{"body", "members", i, "project_role"},
				Msg: "Input should be 'admin', 'manager' or 'user'", Input: ms.ProjectRole})
		}
		u, err := s.findUser(r, ms.Username)
		if err != nil {
			return nil, clientError(codeResourceNotExists, "User "+ms.Username+" not found")
		}
		out = append(out, models.Member{ProjectID: r.project.ID, UserID: u.ID, Role: ms.ProjectRole})
	}
	return out, nil
}

func (s *Server) findUser(r *request, nameOrEmail string) (*models.User, error) {
	u, err := s.store.GetUserByName(r.Context(), nameOrEmail)
	if err == nil {
		return u, nil
	}
	all, lerr := s.store.ListUsers(r.Context())
	if lerr != nil {
		return nil, lerr
	}
	for _, u := range all {
		if u.Email != nil && strings.EqualFold(*u.Email, nameOrEmail) {
			return u, nil
		}
	}
	return nil, err
}

// applyMembers stores the new member list after checking that a manager neither touches admins nor
// leaves the project without one.
func (s *Server) applyMembers(r *request, next []models.Member) (any, *apiError) {
	current, err := s.store.ListMembers(r.Context(), r.project.ID)
	if err != nil {
		return nil, s.internal(err)
	}
	if r.user.GlobalRole != models.GlobalRoleAdmin && r.role != models.ProjectRoleAdmin {
		before, after := adminSet(current), adminSet(next)
		for id := range before {
			if !after[id] {
				return nil, badRequestf("Only project admins can change the role of an admin")
			}
		}
		for id := range after {
			if !before[id] {
				return nil, badRequestf("Only project admins can grant the admin role")
			}
		}
	}
	if len(adminSet(next)) == 0 {
		return nil, badRequestf("A project must keep at least one admin")
	}
	if err := s.store.SetMembers(r.Context(), r.project.ID, next); err != nil {
		return nil, s.internal(err)
	}
	return s.getProject(r)
}

func adminSet(ms []models.Member) map[string]bool {
	out := map[string]bool{}
	for _, m := range ms {
		if m.Role == models.ProjectRoleAdmin {
			out[m.UserID] = true
		}
	}
	return out
}

func (s *Server) setMembers(r *request) (any, *apiError) {
	var req setMembersRequest
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	next, e := s.resolveMembers(r, req.Members)
	if e != nil {
		return nil, e
	}
	return s.applyMembers(r, next)
}

func (s *Server) addMembers(r *request) (any, *apiError) {
	var req setMembersRequest
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	added, e := s.resolveMembers(r, req.Members)
	if e != nil {
		return nil, e
	}
	current, err := s.store.ListMembers(r.Context(), r.project.ID)
	if err != nil {
		return nil, s.internal(err)
	}
	byUser := map[string]int{}
	for i, m := range current {
		byUser[m.UserID] = i
	}
	for _, m := range added {
		if i, ok := byUser[m.UserID]; ok {
			current[i].Role = m.Role
		} else {
			current = append(current, m)
		}
	}
	return s.applyMembers(r, current)
}

func (s *Server) removeMembers(r *request) (any, *apiError) {
	var req removeMembersRequest
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	current, err := s.store.ListMembers(r.Context(), r.project.ID)
	if err != nil {
		return nil, s.internal(err)
	}
	drop := map[string]bool{}
	for _, name := range req.Usernames {
		u, err := s.findUser(r, name)
		if err != nil {
			return nil, clientError(codeResourceNotExists, "User "+name+" not found")
		}
		drop[u.ID] = true
	}
	var next []models.Member
	for _, m := range current {
		if !drop[m.UserID] {
			next = append(next, m)
		}
	}
	return s.applyMembers(r, next)
}
