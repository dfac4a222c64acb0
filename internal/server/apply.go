package server

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/dstackgo/dstack/internal/backends"
	"github.com/dstackgo/dstack/internal/config"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/store"
)

// Bootstrap ensures the global admin `admin` (with token when given, else the stored or a new one) and
// the project `main`, and returns the admin.
func (s *Server) Bootstrap(ctx context.Context, token string) (*models.User, error) {
	admin, err := s.store.GetUserByName(ctx, "admin")
	switch {
	case errors.Is(err, store.ErrNotFound):
		if admin, err = NewUser("admin", models.GlobalRoleAdmin, nil, token); err != nil {
			return nil, err
		}
		if err := s.store.CreateUser(ctx, admin); err != nil {
			return nil, fmt.Errorf("create admin user: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("load admin user: %w", err)
	case token != "" && admin.Token != token:
		admin.Token = token
		if err := s.store.UpdateUser(ctx, admin); err != nil {
			return nil, fmt.Errorf("set admin token: %w", err)
		}
	}
	if _, err := s.store.GetProject(ctx, "main"); errors.Is(err, store.ErrNotFound) {
		p, err := NewProject("main", admin.ID)
		if err != nil {
			return nil, err
		}
		if err := s.store.CreateProject(ctx, p); err != nil {
			return nil, fmt.Errorf("create project main: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("load project main: %w", err)
	}
	return admin, nil
}

// ApplyConfig makes the database match config.yml in one transaction: it sets the default permissions,
// creates listed projects that are missing (owned by owner), creates or updates their listed backends,
// and deletes the other backends of listed projects (config.yml is authoritative for the projects it
// lists, as in dstack; unlisted projects are left alone). Changed backends get their credential check in
// the background, so a slow provider never delays start-up; the outcome is stored on the backend.
func (s *Server) ApplyConfig(ctx context.Context, cfg *config.Server, owner *models.User) error {
	var changed []*models.Backend
	err := s.store.WithTx(ctx, func(tx *store.Store) error {
		changed = nil
		for _, pc := range cfg.Projects {
			p, err := tx.GetProject(ctx, pc.Name)
			if errors.Is(err, store.ErrNotFound) {
				if p, err = NewProject(pc.Name, owner.ID); err != nil {
					return err
				}
				if err := tx.CreateProject(ctx, p); err != nil {
					return fmt.Errorf("create project %s: %w", pc.Name, err)
				}
			} else if err != nil {
				return err
			}
			listed := map[string]bool{}
			for _, bc := range pc.Backends {
				listed[bc.Type] = true
				b, err := s.applyBackend(ctx, tx, p, bc)
				if err != nil {
					return fmt.Errorf("project %s, backend %s: %w", pc.Name, bc.Type, err)
				}
				if b != nil {
					changed = append(changed, b)
				}
			}
			stored, err := tx.ListBackends(ctx, p.ID)
			if err != nil {
				return err
			}
			var drop []string
			for _, b := range stored {
				if !listed[b.Type] {
					drop = append(drop, b.Type)
				}
			}
			if len(drop) > 0 {
				s.log.Warn("deleting backends that config.yml no longer lists", "project", pc.Name, "backends", drop)
				if err := tx.DeleteBackends(ctx, p.ID, drop); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.setPermissions(cfg.DefaultPermissions)
	for _, name := range cfg.Plugins {
		s.log.Warn("plugins are not supported by this server; ignoring", "plugin", name)
	}
	for _, b := range changed {
		s.checkInBackground(b)
	}
	return nil
}

// applyBackend creates or updates one backend; it returns nil when the stored one is identical.
func (s *Server) applyBackend(ctx context.Context, tx *store.Store, p *models.Project, bc backends.Config) (*models.Backend, error) {
	rec, err := recordFor(p.ID, bc)
	if err != nil {
		return nil, err
	}
	existing, err := tx.GetBackend(ctx, p.ID, bc.Type)
	switch {
	case errors.Is(err, store.ErrNotFound):
		rec.Status, rec.StatusMessage = models.BackendUnchecked, "credential check in progress"
		return rec, tx.CreateBackend(ctx, rec)
	case err != nil:
		return nil, err
	}
	if sameJSON(existing.Config, rec.Config) && sameJSON(existing.Auth, rec.Auth) && existing.Status != models.BackendUnchecked {
		return nil, nil
	}
	rec.ID, rec.CreatedAt = existing.ID, existing.CreatedAt
	rec.Status, rec.StatusMessage = models.BackendUnchecked, "credential check in progress"
	return rec, tx.UpdateBackend(ctx, rec)
}

func sameJSON(a, b string) bool {
	var x, y any
	if jsonUnmarshal(a, &x) != nil || jsonUnmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// checkInBackground runs a stored backend's credential check and records the outcome.
func (s *Server) checkInBackground(b *models.Backend) {
	s.checks.Add(1)
	go func() {
		defer s.checks.Done()
		cfg, err := configOf(b)
		if err != nil {
			s.log.Error("cannot read backend config", "backend", b.Type, "err", err)
			return
		}
		status, reason := s.runCheck(context.Background(), cfg)
		now := time.Now().UTC()
		if err := s.store.SetBackendStatus(context.Background(), b.ID, status, errText(reason), now); err != nil {
			s.log.Error("cannot store credential check result", "backend", b.Type, "err", err)
			return
		}
		if status == models.BackendInvalid {
			s.log.Warn("backend credentials are invalid; it stays configured and is shown as invalid", "backend", b.Type, "reason", errText(reason))
		} else {
			s.log.Info("backend checked", "backend", b.Type, "status", status)
		}
	}()
}
