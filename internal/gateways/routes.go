package gateways

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/dstackgo/dstack/internal/fleets"
	"github.com/dstackgo/dstack/internal/gatewayd"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/sshpool"
	"github.com/dstackgo/dstack/internal/store"
)

// ErrNoGateway is a service that asks for a gateway the project does not have.
var ErrNoGateway = errors.New("no such gateway")

// ForService is the gateway a service's runs go through: none for `gateway: false`, the named one for
// `gateway: <name>`, the project's default for `gateway: true` (an error without one) and, when the
// configuration says nothing, the default if there is one — as dstack does.
func ForService(ctx context.Context, st *store.Store, projectID string, svc *models.ServiceConfiguration) (*models.Gateway, error) {
	var name string
	required := false
	switch v := svc.Gateway.(type) {
	case bool:
		if !v {
			return nil, nil
		}
		required = true
	case string:
		name, required = v, true
	case map[string]any: // an EntityReference {name, project?}
		name, _ = v["name"].(string)
		required = true
	}
	var g *models.Gateway
	var err error
	if name != "" {
		g, err = st.GetGateway(ctx, projectID, name)
	} else {
		g, err = st.DefaultGateway(ctx, projectID)
	}
	switch {
	case errors.Is(err, store.ErrNotFound) && !required:
		return nil, nil
	case errors.Is(err, store.ErrNotFound) && name != "":
		return nil, fmt.Errorf("%w: the project has no gateway %q (dstack gateway list shows them)", ErrNoGateway, name)
	case errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("%w: the service asks for the default gateway and the project has none (create one with dstack apply, type: gateway, or set gateway: false)", ErrNoGateway)
	case err != nil:
		return nil, err
	}
	if g.DeleteRequested {
		return nil, fmt.Errorf("%w: gateway %q is being deleted", ErrNoGateway, g.Name)
	}
	return g, nil
}

// ServiceHTTPS reports whether a service is served over HTTPS by its gateway (`https` true or auto,
// the default; false serves plain HTTP).
func ServiceHTTPS(svc *models.ServiceConfiguration) bool {
	b, ok := svc.HTTPS.(bool)
	return !ok || b
}

// ServiceURL is where a service is reached through gateway g, "" while g has no wildcard domain.
func ServiceURL(g *models.Gateway, runName string, svc *models.ServiceConfiguration) string {
	if g.WildcardDomain == "" {
		return ""
	}
	scheme := "https"
	if !ServiceHTTPS(svc) {
		scheme = "http"
	}
	return scheme + "://" + runName + "." + g.WildcardDomain
}

// Push sends gateway g its routes: every active service of its project that goes through it.
func (s *Service) Push(ctx context.Context, g *models.Gateway) error {
	cfg, err := s.routes(ctx, g)
	if err != nil {
		return err
	}
	t, err := s.target(ctx, g)
	if err != nil {
		return err
	}
	return s.client(*t).SetConfig(ctx, cfg)
}

// routes builds the gateway's whole routing state.
func (s *Service) routes(ctx context.Context, g *models.Gateway) (gatewayd.Config, error) {
	project, err := s.Store.GetProjectByID(ctx, g.ProjectID)
	if err != nil {
		return gatewayd.Config{}, err
	}
	cfg := gatewayd.Config{TLS: gatewayd.TLSLetsEncrypt, SSHPrivateKey: project.SSHPrivateKey, Services: []gatewayd.Service{}}
	if g.PD != nil && g.PD.TLSTerminated {
		cfg.TLS = gatewayd.TLSNone
	}
	if g.WildcardDomain == "" {
		return cfg, nil
	}
	runs, err := s.Store.ListRuns(ctx, store.RunFilter{ProjectIDs: []string{g.ProjectID}, OnlyActive: true})
	if err != nil {
		return cfg, err
	}
	var tokens []string
	for _, run := range runs {
		svc := run.Spec.Configuration.Service
		if svc == nil || run.Deleted {
			continue
		}
		via, err := ForService(ctx, s.Store, g.ProjectID, svc)
		if err != nil || via == nil || via.ID != g.ID {
			continue
		}
		route := gatewayd.Service{Project: project.Name, RunName: run.Name, Domain: run.Name + "." + g.WildcardDomain,
			HTTPS: ServiceHTTPS(svc), Auth: svc.Auth == nil || *svc.Auth, Replicas: []gatewayd.Replica{}}
		if route.Auth {
			if tokens == nil {
				if tokens, err = s.memberTokens(ctx, g.ProjectID); err != nil {
					return cfg, err
				}
			}
			route.AuthTokensSHA256 = tokens
		}
		if route.Replicas, err = s.replicas(ctx, run, svc.Port.ContainerPort, project.SSHPrivateKey); err != nil {
			return cfg, err
		}
		cfg.Services = append(cfg.Services, route)
	}
	return cfg, nil
}

// Upstream is a running replica of a service: its machine's SSH endpoint and the service's port as
// seen on that machine (the host port in bridge mode).
type Upstream struct {
	JobID  string
	Target sshpool.Target
	Port   int
}

// Upstreams lists the running replicas of a run, by job id: where both the server's own proxy and
// gateways send a service's requests.
func Upstreams(ctx context.Context, st *store.Store, run *models.Run, port int) ([]Upstream, error) {
	jobs, err := st.ListJobs(ctx, run.ID)
	if err != nil {
		return nil, err
	}
	var out []Upstream
	for _, j := range jobs {
		if j.Status != models.JobRunning || j.InstanceID == "" {
			continue
		}
		inst, err := st.GetInstance(ctx, j.InstanceID)
		if err != nil {
			continue
		}
		t := fleets.Target(inst)
		if t == nil {
			continue
		}
		hostPort := port
		if j.JRD != nil {
			if p, ok := j.JRD.Ports[strconv.Itoa(port)]; ok {
				hostPort = p
			}
		}
		out = append(out, Upstream{JobID: j.ID, Target: *t, Port: hostPort})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].JobID < out[b].JobID })
	return out, nil
}

// replicas lists the running jobs of a run as the gateway reaches them.
func (s *Service) replicas(ctx context.Context, run *models.Run, port int, projectKey string) ([]gatewayd.Replica, error) {
	ups, err := Upstreams(ctx, s.Store, run, port)
	if err != nil {
		return nil, err
	}
	out := []gatewayd.Replica{}
	for _, u := range ups {
		out = append(out, gatewayd.Replica{ID: u.JobID, AppPort: u.Port, SSH: sshOf(u.Target, projectKey)})
	}
	return out, nil
}

func sshOf(t sshpool.Target, projectKey string) gatewayd.SSH {
	out := gatewayd.SSH{Host: t.Host, Port: t.Port, User: t.User, HostKey: t.HostKey}
	if t.PrivateKey != projectKey {
		out.PrivateKey = t.PrivateKey
	}
	if t.Proxy != nil {
		p := sshOf(*t.Proxy, projectKey)
		out.Proxy = &p
	}
	if out.Port == 0 {
		out.Port = 22
	}
	return out
}

// memberTokens are the sha256 hashes of the tokens of the project's members and of the global
// admins: who may call a service with auth.
func (s *Service) memberTokens(ctx context.Context, projectID string) ([]string, error) {
	members, err := s.Store.ListMembers(ctx, projectID)
	if err != nil {
		return nil, err
	}
	member := map[string]bool{}
	for _, m := range members {
		member[m.UserID] = true
	}
	users, err := s.Store.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, u := range users {
		if (member[u.ID] || u.GlobalRole == models.GlobalRoleAdmin) && u.Active && u.TokenHash != "" {
			out = append(out, u.TokenHash)
		}
	}
	sort.Strings(out)
	return out, nil
}
