package gatewayd

import (
	"encoding/json"
	"errors"
	"net/http"
)

// maxConfigBytes bounds a configuration body: thousands of services fit.
const maxConfigBytes = 32 << 20

// Health is GET /healthcheck.
type Health struct {
	Service string `json:"service"`
	Version string `json:"version"`
}

// APIHandler is the management API. It has no authentication: it must listen on loopback only, where
// the server reaches it through its SSH connection to the gateway.
func (g *Gateway) APIHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthcheck", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, Health{Service: "dstack-gateway", Version: Version})
	})
	mux.HandleFunc("POST /api/config", g.setConfig)
	mux.HandleFunc("GET /api/stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, g.Stats())
	})
	return mux
}

func (g *Gateway) setConfig(w http.ResponseWriter, r *http.Request) {
	var cfg Config
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxConfigBytes))
	if err := dec.Decode(&cfg); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeDetail(w, http.StatusRequestEntityTooLarge, "the configuration is larger than 32 MiB")
			return
		}
		writeDetail(w, http.StatusBadRequest, "the body is not a gateway configuration: "+err.Error())
		return
	}
	if err := g.Apply(cfg); err != nil {
		g.log.Warn("configuration refused", "err", err)
		writeDetail(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"services": len(cfg.Services)})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeDetail(w http.ResponseWriter, code int, detail string) {
	writeJSON(w, code, map[string]string{"detail": detail})
}
