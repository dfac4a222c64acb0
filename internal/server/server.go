// Package server is dstack's control plane API: the REST endpoints of dstack 0.21 (paths, JSON shapes,
// status codes and error bodies), authentication and roles, and the application of config.yml.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/config"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/offers"
	"github.com/dstackgo/dstack/internal/runs"
	"github.com/dstackgo/dstack/internal/store"
	"github.com/dstackgo/dstack/internal/ui"
)

// Version is the dstack API version this server speaks; the original CLI refuses servers whose
// major.minor is older than its own.
const Version = "0.21.2"

// Server holds what every request needs.
type Server struct {
	store *store.Store
	log   *slog.Logger

	mu    sync.RWMutex
	perms config.DefaultPermissions

	// checks runs credential checks in the background; tests wait on it.
	checks sync.WaitGroup
	// checkTimeout bounds one credential check.
	checkTimeout time.Duration

	catalog offers.Tables            // guarded by mu; nil until a catalog source is set
	live    map[string]offers.Source // guarded by mu; cached live offer sources by backend record

	computes  map[string]backends.Compute // guarded by mu; by backend record and config
	publicURL string                      // guarded by mu; how machines reach the server
	// capacity remembers capacity refusals: jobs skip those offers, plans show them not_available.
	capacity *runs.CapacityMemory

	bg work // background work: fleets, runs (see runs.go)
}

// New returns a server over an opened store.
func New(st *store.Store, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{store: st, log: log, perms: config.DefaultPermissions{AllowNonAdminsCreateProjects: true,
		AllowNonAdminsManageSSHFleets: true}, checkTimeout: 20 * time.Second, capacity: &runs.CapacityMemory{}}
}

// Permissions returns the server-wide default permissions.
func (s *Server) Permissions() config.DefaultPermissions {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.perms
}

func (s *Server) setPermissions(p config.DefaultPermissions) {
	s.mu.Lock()
	s.perms = p
	s.mu.Unlock()
}

// WaitChecks blocks until background credential checks have finished.
func (s *Server) WaitChecks() { s.checks.Wait() }

// request is what a handler gets: the authenticated user and, for project routes, the project and the
// user's role in it.
type request struct {
	*http.Request
	user    *models.User
	project *models.Project
	role    string // the caller's project role; "" for global admins who are not members
}

type handler func(r *request) (any, *apiError)

// access is who may call an endpoint.
type access int

const (
	public         access = iota // no token
	authenticated                // any active user
	globalAdmin                  // global role admin
	projectMember                // any role in the project
	projectManager               // admin or manager
	projectAdmin                 // admin
)

// Handler returns the HTTP handler of the whole API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	route := func(path string, a access, h handler) { mux.Handle(path, s.endpoint(a, h)) }

	mux.HandleFunc("/healthcheck", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeError(w, errMethodNotAllowed)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "running"})
	})
	route("/api/server/get_info", public, func(*request) (any, *apiError) {
		return map[string]any{"server_version": Version}, nil
	})

	route("/api/users/list", authenticated, s.listUsers)
	route("/api/users/get_my_user", authenticated, s.getMyUser)
	route("/api/users/get_user", authenticated, s.getUser)
	route("/api/users/create", globalAdmin, s.createUser)
	route("/api/users/update", globalAdmin, s.updateUser)
	route("/api/users/refresh_token", authenticated, s.refreshToken)
	route("/api/users/delete", globalAdmin, s.deleteUsers)

	route("/api/projects/list", authenticated, s.listProjects)
	route("/api/projects/create", authenticated, s.createProject)
	route("/api/projects/delete", authenticated, s.deleteProjects)
	route("/api/projects/{project}/get", projectMember, s.getProject)
	route("/api/projects/{project}/set_members", projectManager, s.setMembers)
	route("/api/projects/{project}/add_members", projectManager, s.addMembers)
	route("/api/projects/{project}/remove_members", projectManager, s.removeMembers)

	route("/api/backends/list_types", public, s.listBackendTypes)
	route("/api/project/{project}/backends/create", projectAdmin, s.createBackend)
	route("/api/project/{project}/backends/update", projectAdmin, s.updateBackend)
	route("/api/project/{project}/backends/delete", projectAdmin, s.deleteBackends)
	route("/api/project/{project}/backends/{type}/config_info", projectAdmin, s.backendConfigInfo)
	route("/api/project/{project}/backends/create_yaml", projectAdmin, s.createBackendYAML)
	route("/api/project/{project}/backends/update_yaml", projectAdmin, s.updateBackendYAML)
	route("/api/project/{project}/backends/{type}/get_yaml", projectAdmin, s.getBackendYAML)

	route("/api/project/{project}/fleets/list", projectMember, s.listProjectFleets)
	route("/api/project/{project}/fleets/get", projectMember, s.getFleet)
	route("/api/project/{project}/fleets/get_plan", projectMember, s.getFleetPlan)
	route("/api/project/{project}/fleets/apply", projectMember, s.applyFleet)
	route("/api/project/{project}/fleets/delete", projectMember, s.deleteFleets)
	route("/api/project/{project}/fleets/delete_instances", projectMember, s.deleteFleetInstances)
	route("/api/fleets/list", authenticated, s.listFleets)
	route("/api/instances/list", authenticated, s.listInstances)
	route("/api/volumes/list", authenticated, s.listVolumes)
	route("/api/project/{project}/volumes/list", projectMember, s.listProjectVolumes)
	route("/api/project/{project}/volumes/get", projectMember, s.getVolume)
	route("/api/project/{project}/volumes/create", projectMember, s.createVolume)
	route("/api/project/{project}/volumes/delete", projectMember, s.deleteVolumes)
	route("/api/project/{project}/instances/get", projectMember, s.getInstance)
	route("/api/project/{project}/gateways/list", projectMember, s.listGateways)
	route("/api/project/{project}/gateways/get", projectMember, s.getGateway)
	route("/api/project/{project}/gateways/create", projectAdmin, s.createGateway)
	route("/api/project/{project}/gateways/delete", projectAdmin, s.deleteGateways)
	route("/api/project/{project}/gateways/set_default", projectAdmin, s.setDefaultGateway)
	route("/api/project/{project}/gateways/set_wildcard_domain", projectAdmin, s.setGatewayDomain)
	mux.HandleFunc("GET /api/agents/{name}/{platform}", s.serveAgent)
	route("/api/project/{project}/repos/init", projectMember, s.initRepo)
	route("/api/project/{project}/runs/get_plan", projectMember, s.getRunPlan)
	route("/api/project/{project}/runs/apply", projectMember, s.applyRun)
	route("/api/project/{project}/runs/get", projectMember, s.getRun)
	route("/api/project/{project}/runs/stop", projectMember, s.stopRuns)
	route("/api/project/{project}/runs/delete", projectMember, s.deleteRuns)
	route("/api/runs/list", authenticated, s.listRuns)
	route("/api/project/{project}/logs/poll", projectMember, s.pollLogs)
	mux.Handle("GET /api/project/{project}/metrics/job/{run_name}", s.getEndpoint(projectMember, s.getJobMetrics))
	mux.HandleFunc("/proxy/services/{project}/{run}/", s.serviceProxy)

	// Everything that is not the API is the web console, itself a client of this mux; unknown API
	// paths stay the API's 404.
	console := ui.New(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api" || strings.HasPrefix(r.URL.Path, "/api/") {
			writeError(w, errRouteNotFound)
			return
		}
		console.ServeHTTP(w, r)
	})
	return s.logRequests(mux)
}

// endpoint serves a POST endpoint: dstack's API is POST with JSON bodies, with few exceptions.
func (s *Server) endpoint(a access, h handler) http.Handler {
	return s.methodEndpoint(http.MethodPost, a, h)
}

// getEndpoint serves one of the GET exceptions with the same checks.
func (s *Server) getEndpoint(a access, h handler) http.Handler {
	return s.methodEndpoint(http.MethodGet, a, h)
}

func (s *Server) methodEndpoint(method string, a access, h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method {
			writeError(w, errMethodNotAllowed)
			return
		}
		if e := checkAPIVersion(r.Header.Get("X-API-VERSION")); e != nil {
			writeError(w, e)
			return
		}
		req := &request{Request: r}
		if e := s.authorize(req, a); e != nil {
			writeError(w, e)
			return
		}
		out, e := h(req)
		if e != nil {
			writeError(w, e)
			return
		}
		writeJSON(w, http.StatusOK, out)
	})
}

func (s *Server) authorize(r *request, a access) *apiError {
	if a == public {
		return nil
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return errNotAuthenticated
	}
	u, err := s.store.GetUserByToken(r.Context(), token)
	if err != nil || !u.Active {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.Error("token lookup failed", "err", err)
		}
		return errInvalidToken
	}
	r.user = u
	switch a {
	case authenticated:
		return nil
	case globalAdmin:
		if u.GlobalRole != models.GlobalRoleAdmin {
			return errAccessDenied
		}
		return nil
	}
	p, err := s.store.GetProject(r.Context(), r.PathValue("project"))
	if err != nil {
		return errProjectNotFound
	}
	r.project = p
	m, err := s.store.GetMember(r.Context(), p.ID, u.ID)
	if err == nil {
		r.role = m.Role
	}
	if u.GlobalRole == models.GlobalRoleAdmin {
		return nil
	}
	allowed := map[access][]string{
		projectMember:  {models.ProjectRoleAdmin, models.ProjectRoleManager, models.ProjectRoleUser},
		projectManager: {models.ProjectRoleAdmin, models.ProjectRoleManager},
		projectAdmin:   {models.ProjectRoleAdmin},
	}[a]
	for _, role := range allowed {
		if r.role == role {
			return nil
		}
	}
	return errAccessDenied
}

// checkAPIVersion refuses clients newer (in major.minor) than the server, as dstack does; a missing
// header, `latest` and 0.0.0 development builds pass.
func checkAPIVersion(v string) *apiError {
	if v == "" || v == "latest" {
		return nil
	}
	parts := strings.SplitN(strings.SplitN(v, "+", 2)[0], ".", 3)
	nums := make([]int, 0, 3)
	for i, p := range parts {
		if i == 2 {
			// The patch may carry a pre-release suffix such as 0rc1: keep its leading digits.
			if j := strings.IndexFunc(p, func(r rune) bool { return r < '0' || r > '9' }); j > 0 {
				p = p[:j]
			}
		}
		n, err := strconv.Atoi(p)
		if err != nil {
			return &apiError{http.StatusBadRequest, map[string]any{"detail": []errorItem{{Msg: "Invalid version: " + v}}}}
		}
		nums = append(nums, n)
	}
	if len(nums) < 2 {
		return &apiError{http.StatusBadRequest, map[string]any{"detail": []errorItem{{Msg: "Invalid version: " + v}}}}
	}
	if nums[0] == 0 && nums[1] == 0 && (len(nums) < 3 || nums[2] == 0) {
		return nil
	}
	server := strings.Split(Version, ".")
	sMajor, _ := strconv.Atoi(server[0])
	sMinor, _ := strconv.Atoi(server[1])
	if nums[0] > sMajor || (nums[0] == sMajor && nums[1] > sMinor) {
		return clientError(codeError, "The client/CLI version ("+v+") is incompatible with the server version ("+Version+").")
	}
	return nil
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }

// logRequests logs method, path, status and duration; never headers or bodies, which carry secrets.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", rec.status, "duration", time.Since(start))
	})
}

// Shutdown waits for background work started by the server.
func (s *Server) Shutdown(ctx context.Context) {
	done := make(chan struct{})
	go func() { s.checks.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
