package shim

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/dstackgo/dstack/internal/agentapi"
)

// Handler returns the shim API v2.
func (s *Shim) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/healthcheck", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, agentapi.HealthcheckResponse{Service: agentapi.ShimService, Version: agentapi.Version})
	})
	mux.HandleFunc("GET /api/instance/health", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, agentapi.InstanceHealthResponse{})
	})
	mux.HandleFunc("GET /api/tasks", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.ListTasks())
	})
	mux.HandleFunc("GET /api/tasks/{id}", func(w http.ResponseWriter, r *http.Request) {
		info, err := s.GetTask(r.PathValue("id"))
		respond(w, info, err)
	})
	mux.HandleFunc("POST /api/tasks", func(w http.ResponseWriter, r *http.Request) {
		var cfg agentapi.TaskConfig
		if err := json.NewDecoder(io.LimitReader(r.Body, 16<<20)).Decode(&cfg); err != nil {
			http.Error(w, "invalid task config: "+err.Error(), http.StatusBadRequest)
			return
		}
		info, err := s.SubmitTask(cfg)
		respond(w, info, err)
	})
	mux.HandleFunc("POST /api/tasks/{id}/terminate", func(w http.ResponseWriter, r *http.Request) {
		req := agentapi.TerminateRequest{Timeout: 10}
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if len(body) > 0 {
			req = agentapi.TerminateRequest{}
			if err := json.Unmarshal(body, &req); err != nil {
				http.Error(w, "invalid terminate request: "+err.Error(), http.StatusBadRequest)
				return
			}
		}
		info, err := s.TerminateTask(r.Context(), r.PathValue("id"), req)
		respond(w, info, err)
	})
	mux.HandleFunc("POST /api/tasks/{id}/remove", func(w http.ResponseWriter, r *http.Request) {
		if err := s.RemoveTask(r.Context(), r.PathValue("id")); err != nil {
			respond(w, nil, err)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("GET /metrics/tasks/{id}", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "the DCGM exporter is not available", http.StatusNotFound)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func respond(w http.ResponseWriter, v any, err error) {
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, v)
	case errors.Is(err, ErrTaskNotFound):
		http.Error(w, err.Error(), http.StatusNotFound)
	case errors.Is(err, ErrConflict):
		http.Error(w, err.Error(), http.StatusConflict)
	case errors.Is(err, ErrBadRequest):
		http.Error(w, err.Error(), http.StatusBadRequest)
	default:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}
