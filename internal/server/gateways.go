package server

import (
	"encoding/json"
	"errors"

	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/runs"
	"github.com/dstackgo/dstack/internal/store"
)

// gatewayJSON is dstack's Gateway (0.21: the resource, with one replica; the top-level hostname,
// backend, region, ip_address and instance_id are kept for older clients).
type gatewayJSON struct {
	ID             string                      `json:"id"`
	Name           string                      `json:"name"`
	ProjectName    string                      `json:"project_name"`
	Configuration  models.GatewayConfiguration `json:"configuration"`
	CreatedAt      string                      `json:"created_at"`
	Status         string                      `json:"status"`
	StatusMessage  *string                     `json:"status_message"`
	Hostname       *string                     `json:"hostname"`
	WildcardDomain *string                     `json:"wildcard_domain"`
	Default        bool                        `json:"default"`
	Replicas       []gatewayReplicaJSON        `json:"replicas"`
	Backend        string                      `json:"backend"`
	Region         string                      `json:"region"`
	IPAddress      *string                     `json:"ip_address"`
	InstanceID     *string                     `json:"instance_id"`
}

type gatewayReplicaJSON struct {
	Hostname      *string `json:"hostname"`
	ReplicaNum    int     `json:"replica_num"`
	Backend       string  `json:"backend"`
	Region        string  `json:"region"`
	CreatedAt     string  `json:"created_at"`
	Status        string  `json:"status"`
	StatusMessage *string `json:"status_message"`
}

func gatewayOut(g *models.Gateway, projectName string) gatewayJSON {
	c := g.Configuration
	out := gatewayJSON{ID: g.ID, Name: g.Name, ProjectName: projectName, Configuration: c, CreatedAt: apiTime(g.CreatedAt),
		Status: g.Status, StatusMessage: nonEmpty(g.StatusMessage), WildcardDomain: nonEmpty(g.WildcardDomain),
		Default: g.Default, Backend: c.Backend, Region: c.Region}
	if g.PD != nil {
		out.IPAddress, out.InstanceID = nonEmpty(g.PD.IPAddress), nonEmpty(g.PD.InstanceID)
		// Users point their wildcard domain at the load balancer's name when there is one.
		out.Hostname = nonEmpty(g.PD.Hostname)
		if out.Hostname == nil {
			out.Hostname = out.IPAddress
		}
	}
	replica := map[string]string{models.GatewaySubmitted: "submitted", models.GatewayProvisioning: "provisioning",
		models.GatewayRunning: "running", models.GatewayFailed: "terminated"}[g.Status]
	out.Replicas = []gatewayReplicaJSON{{Hostname: out.Hostname, Backend: c.Backend, Region: c.Region,
		CreatedAt: out.CreatedAt, Status: replica, StatusMessage: out.StatusMessage}}
	return out
}

// listGateways answers gateways/list (the CLI sends {"include_imported": true}; this server has no
// imports, so it changes nothing).
func (s *Server) listGateways(r *request) (any, *apiError) {
	var req struct {
		IncludeImported bool `json:"include_imported"`
	}
	if e := decode(r.Request, &req, true); e != nil {
		return nil, e
	}
	list, err := s.store.ListGateways(r.Context(), []string{r.project.ID})
	if err != nil {
		return nil, s.internal(err)
	}
	out := []gatewayJSON{}
	for _, g := range list {
		out = append(out, gatewayOut(g, r.project.Name))
	}
	return out, nil
}

func (s *Server) getGateway(r *request) (any, *apiError) {
	var req struct {
		Name string `json:"name" required:"true"`
	}
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	g, e := s.findGateway(r, req.Name)
	if e != nil {
		return nil, e
	}
	return gatewayOut(g, r.project.Name), nil
}

func (s *Server) findGateway(r *request, name string) (*models.Gateway, *apiError) {
	g, err := s.store.GetGateway(r.Context(), r.project.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, clientError(codeResourceNotExists, "Gateway "+name+" not found")
	}
	if err != nil {
		return nil, s.internal(err)
	}
	return g, nil
}

// createGateway is gateways/create, what `dstack apply` and `dstack gateway create` send. The
// project's first gateway becomes its default, as in dstack.
func (s *Server) createGateway(r *request) (any, *apiError) {
	var req struct {
		Configuration json.RawMessage `json:"configuration" required:"true"`
	}
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	conf, err := models.ParseGatewayConfiguration(req.Configuration)
	if err != nil {
		return nil, badRequestf("Invalid gateway configuration: %v", err)
	}
	if _, err := s.store.GetBackend(r.Context(), r.project.ID, conf.Backend); errors.Is(err, store.ErrNotFound) {
		return nil, badRequestf("Backend %s is not configured for project %s; add it on the project's settings page or in config.yml", conf.Backend, r.project.Name)
	} else if err != nil {
		return nil, s.internal(err)
	}
	existing, err := s.store.ListGateways(r.Context(), []string{r.project.ID})
	if err != nil {
		return nil, s.internal(err)
	}
	name := runs.GenerateName()
	if conf.Name != nil {
		name = *conf.Name
	}
	conf.Name = &name
	g := &models.Gateway{ProjectID: r.project.ID, Name: name, Configuration: conf, Status: models.GatewaySubmitted,
		Default: len(existing) == 0 || conf.Default != nil && *conf.Default}
	if conf.Domain != nil {
		g.WildcardDomain = *conf.Domain
	}
	if err := s.store.CreateGateway(r.Context(), g); errors.Is(err, store.ErrExists) {
		return nil, clientError(codeResourceExists, "Gateway with name "+name+" already exists")
	} else if err != nil {
		return nil, s.internal(err)
	}
	s.work().wake(store.TableGateways)
	return gatewayOut(g, r.project.Name), nil
}

// deleteGateways requests the deletion of gateways; the pipeline terminates their machines.
func (s *Server) deleteGateways(r *request) (any, *apiError) {
	var req struct {
		Names []string `json:"names" required:"true"`
	}
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	var ids []string
	for _, name := range req.Names {
		g, e := s.findGateway(r, name)
		if e != nil {
			return nil, e
		}
		ids = append(ids, g.ID)
	}
	if err := s.store.RequestGatewayDeletion(r.Context(), ids); err != nil {
		return nil, s.internal(err)
	}
	s.work().wake(store.TableGateways)
	return nil, nil
}

func (s *Server) setDefaultGateway(r *request) (any, *apiError) {
	var req struct {
		Name string `json:"name" required:"true"`
	}
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	g, e := s.findGateway(r, req.Name)
	if e != nil {
		return nil, e
	}
	if err := s.store.SetDefaultGateway(r.Context(), r.project.ID, g.ID); err != nil {
		return nil, s.internal(err)
	}
	s.work().wake(store.TableGateways)
	return nil, nil
}

// setGatewayDomain is gateways/set_wildcard_domain: services of the gateway move to
// <run>.<domain> at its next sync (at once: the gateway is woken).
func (s *Server) setGatewayDomain(r *request) (any, *apiError) {
	var req struct {
		Name           string `json:"name" required:"true"`
		WildcardDomain string `json:"wildcard_domain" required:"true"`
	}
	if e := decode(r.Request, &req, false); e != nil {
		return nil, e
	}
	g, e := s.findGateway(r, req.Name)
	if e != nil {
		return nil, e
	}
	domain, err := models.NormalizeDomain(req.WildcardDomain)
	if err != nil {
		return nil, badRequestf("wildcard_domain: %v", err)
	}
	if err := s.store.SetGatewayDomain(r.Context(), g.ID, domain); err != nil {
		return nil, s.internal(err)
	}
	g.WildcardDomain = domain
	return gatewayOut(g, r.project.Name), nil
}
