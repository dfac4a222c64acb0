package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/schema"
	"github.com/dstackgo/dstack/internal/store"
)

func (s *Server) listBackendTypes(*request) (any, *apiError) {
	return backends.Types(), nil
}

// schemaContext is how documents from the API are checked: no ${VAR} (the server's environment is not
// the caller's), and files are read only for global admins, who configure the server anyway; for
// everyone else a file reference is refused with a hint to send the contents.
func schemaContext(r *request) *schema.Context {
	return &schema.Context{ReadFiles: r.user.GlobalRole == models.GlobalRoleAdmin, Getenv: os.Getenv}
}

func (s *Server) createBackend(r *request) (any, *apiError) { return s.backendFromJSON(r, true) }
func (s *Server) updateBackend(r *request) (any, *apiError) { return s.backendFromJSON(r, false) }

func (s *Server) backendFromJSON(r *request, create bool) (any, *apiError) {
	var raw any
	if e := decode(r.Request, &raw, false); e != nil {
		return nil, e
	}
	if n, ok := raw.(json.Number); ok {
		raw = n.String()
	}
	cfg, issues := backends.Validate(normalizeJSON(raw), schemaContext(r))
	if len(issues) > 0 {
		items := make([]validationItem, len(issues))
		for i, is := range issues {
			loc := []any{"body"}
			for _, p := range is.Path {
				loc = append(loc, p)
			}
			items[i] = validationItem{Type: "value_error", Loc: loc, Msg: is.Msg}
		}
		return nil, unprocessable(items...)
	}
	if e := s.saveBackend(r, cfg, create); e != nil {
		return nil, e
	}
	return cfg.Values, nil
}

// normalizeJSON turns json.Number values into the int64/float64 that the schema expects.
func normalizeJSON(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = normalizeJSON(x)
		}
	case []any:
		for i, x := range t {
			t[i] = normalizeJSON(x)
		}
	case json.Number:
		if n, err := t.Int64(); err == nil {
			return n
		}
		f, _ := t.Float64()
		return f
	}
	return v
}

type yamlRequest struct {
	ConfigYAML string `json:"config_yaml" required:"true"`
}

func (s *Server) createBackendYAML(r *request) (any, *apiError) { return s.backendFromYAML(r, true) }
func (s *Server) updateBackendYAML(r *request) (any, *apiError) { return s.backendFromYAML(r, false) }

func (s *Server) backendFromYAML(r *request, create bool) (any, *apiError) {
	var req yamlRequest
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	doc, issues := schema.ParseYAML("config_yaml", []byte(req.ConfigYAML))
	if issues != nil {
		return nil, clientError(codeError, "Error parsing YAML")
	}
	cfg, issues := backends.Validate(doc.Value, schemaContext(r))
	if len(issues) > 0 {
		doc.Locate(issues)
		return nil, clientError(codeError, fmt.Sprintf("%d validation error(s) in the backend config:\n%s", len(issues), schema.AsError("config_yaml", issues)))
	}
	if e := s.saveBackend(r, cfg, create); e != nil {
		return nil, e
	}
	return nil, nil
}

// saveBackend runs the credential check and stores the backend. Through the API an invalid credential
// is refused (the caller is there to fix it); config.yml instead stores it as invalid (see ApplyConfig).
func (s *Server) saveBackend(r *request, cfg backends.Config, create bool) *apiError {
	ctx := r.Context()
	existing, err := s.store.GetBackend(ctx, r.project.ID, cfg.Type)
	switch {
	case err == nil && create:
		return clientError(codeResourceExists, "Backend "+cfg.Type+" already exists")
	case errors.Is(err, store.ErrNotFound) && !create:
		return clientError(codeResourceNotExists, "Backend "+cfg.Type+" does not exist")
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return s.internal(err)
	}
	status, reason := s.runCheck(ctx, cfg)
	if status == models.BackendInvalid {
		var ce *backends.CredentialsError
		if errors.As(reason, &ce) {
			return fieldsError(codeInvalidCredentials, ce.Error(), ce.Fields)
		}
		return fieldsError(codeInvalidCredentials, reason.Error(), nil)
	}
	b, err := recordFor(r.project.ID, cfg)
	if err != nil {
		return s.internal(err)
	}
	now := time.Now().UTC()
	b.Status, b.StatusMessage, b.CheckedAt = status, errText(reason), &now
	if create {
		err = s.store.CreateBackend(ctx, b)
	} else {
		b.ID, b.CreatedAt = existing.ID, existing.CreatedAt
		err = s.store.UpdateBackend(ctx, b)
	}
	if errors.Is(err, store.ErrExists) {
		return clientError(codeResourceExists, "Backend "+cfg.Type+" already exists")
	}
	if err != nil {
		return s.internal(err)
	}
	return nil
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (s *Server) runCheck(ctx context.Context, cfg backends.Config) (string, error) {
	return CheckBackend(ctx, cfg, s.checkTimeout)
}

// CheckBackend runs a backend's credential check with a deadline and returns the backend's status and,
// unless it is valid, the reason.
func CheckBackend(ctx context.Context, cfg backends.Config, timeout time.Duration) (string, error) {
	d, ok := backends.Lookup(cfg.Type)
	if !ok {
		return models.BackendInvalid, fmt.Errorf("backend type %s is not available in this build", cfg.Type)
	}
	if d.Check == nil {
		return models.BackendUnchecked, fmt.Errorf("this build has no credential check for %s yet; the credentials were stored unverified", cfg.Type)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := d.Check(ctx, cfg); err != nil {
		var ce *backends.CredentialsError
		if !errors.As(err, &ce) {
			err = fmt.Errorf("cannot check the credentials: %w", err)
		}
		return models.BackendInvalid, err
	}
	return models.BackendValid, nil
}

// recordFor splits a config into the stored record: public fields in Config, secret ones in Auth.
func recordFor(projectID string, cfg backends.Config) (*models.Backend, error) {
	public, secret := backends.Split(cfg)
	delete(public, "type")
	pj, err := json.Marshal(public)
	if err != nil {
		return nil, err
	}
	sj, err := json.Marshal(secret)
	if err != nil {
		return nil, err
	}
	return &models.Backend{ProjectID: projectID, Type: cfg.Type, Config: string(pj), Auth: string(sj)}, nil
}

// configOf rebuilds the full config (with creds) of a stored backend.
func configOf(b *models.Backend) (backends.Config, error) {
	public, secret := map[string]any{}, map[string]any{}
	if err := json.Unmarshal([]byte(b.Config), &public); err != nil {
		return backends.Config{}, err
	}
	if b.Auth != "" {
		if err := json.Unmarshal([]byte(b.Auth), &secret); err != nil {
			return backends.Config{}, err
		}
	}
	return backends.Join(b.Type, public, secret), nil
}

type deleteBackendsRequest struct {
	BackendsNames []string `json:"backends_names" required:"true"`
}

func (s *Server) deleteBackends(r *request) (any, *apiError) {
	var req deleteBackendsRequest
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	for _, t := range req.BackendsNames {
		if _, err := s.store.GetBackend(r.Context(), r.project.ID, t); err != nil {
			return nil, clientError(codeResourceNotExists, "Backend "+t+" does not exist")
		}
	}
	if err := s.store.DeleteBackends(r.Context(), r.project.ID, req.BackendsNames); err != nil {
		return nil, s.internal(err)
	}
	return nil, nil
}

func (s *Server) storedBackend(r *request) (backends.Config, *apiError) {
	b, err := s.store.GetBackend(r.Context(), r.project.ID, r.PathValue("type"))
	if errors.Is(err, store.ErrNotFound) {
		return backends.Config{}, clientError(codeResourceNotExists, "Backend "+r.PathValue("type")+" does not exist")
	}
	if err != nil {
		return backends.Config{}, s.internal(err)
	}
	cfg, err := configOf(b)
	if err != nil {
		return backends.Config{}, s.internal(err)
	}
	return cfg, nil
}

func (s *Server) backendConfigInfo(r *request) (any, *apiError) {
	cfg, e := s.storedBackend(r)
	if e != nil {
		return nil, e
	}
	return cfg.Values, nil
}

func (s *Server) getBackendYAML(r *request) (any, *apiError) {
	cfg, e := s.storedBackend(r)
	if e != nil {
		return nil, e
	}
	text, err := backendYAML(cfg)
	if err != nil {
		return nil, s.internal(err)
	}
	return map[string]any{"name": cfg.Type, "config_yaml": text}, nil
}

// backendYAML dumps a config with `type` first, the rest in key order.
func backendYAML(cfg backends.Config) (string, error) {
	rest := yaml.MapSlice{}
	for _, k := range sortedKeys(cfg.Values) {
		if k != "type" {
			rest = append(rest, yaml.MapItem{Key: k, Value: cfg.Values[k]})
		}
	}
	out, err := yaml.Marshal(append(yaml.MapSlice{{Key: "type", Value: cfg.Type}}, rest...))
	return strings.TrimLeft(string(out), "\n"), err
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
