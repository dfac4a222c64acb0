package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"

	"github.com/dstackgo/dstack/internal/gateways"
	"github.com/dstackgo/dstack/internal/models"
	"github.com/dstackgo/dstack/internal/sshpool"
	"github.com/dstackgo/dstack/internal/store"
)

// serviceProxy serves /proxy/services/{project}/{run}/...: requests go to the service's port on the
// machine of one of its running jobs, through the pooled SSH connection to that machine (the server
// never needs a route to the job's network). Unless the service sets `auth: false`, callers need the
// token of a project member, as with dstack's proxy without a gateway.
func (s *Server) serviceProxy(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	project, err := s.store.GetProject(ctx, r.PathValue("project"))
	if err != nil {
		writeError(w, errProjectNotFound)
		return
	}
	run, err := s.store.GetRun(ctx, project.ID, r.PathValue("run"))
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, clientError(codeResourceNotExists, "Service "+r.PathValue("run")+" not found"))
		return
	} else if err != nil {
		writeError(w, s.internal(err))
		return
	}
	svc := run.Spec.Configuration.Service
	if svc == nil {
		writeError(w, badRequestf("Run %s is not a service", run.Name))
		return
	}
	if svc.Auth == nil || *svc.Auth {
		req := &request{Request: r}
		r.SetPathValue("project", project.Name)
		if e := s.authorize(req, projectMember); e != nil {
			writeError(w, e)
			return
		}
	}
	target, addr, e := s.serviceUpstream(ctx, run, svc.Port.ContainerPort)
	if e != nil {
		writeError(w, e)
		return
	}
	prefix := "/proxy/services/" + project.Name + "/" + run.Name
	strip := svc.StripPrefix == nil || *svc.StripPrefix
	pool := s.work().pool
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = &url.URL{Scheme: "http", Host: addr, Path: pr.In.URL.Path, RawQuery: pr.In.URL.RawQuery}
			if strip {
				pr.Out.URL.Path = "/" + strings.TrimLeft(strings.TrimPrefix(pr.In.URL.Path, prefix), "/")
			}
			pr.Out.Header.Del("Authorization") // the dstack token is not the service's business
			pr.SetXForwarded()
		},
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			return pool.DialContext(ctx, *target, network, a)
		}},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			s.log.Warn("service proxy", "run", run.Name, "err", err)
			http.Error(w, fmt.Sprintf("the service %s did not answer: %v", run.Name, err), http.StatusBadGateway)
		},
	}
	proxy.ServeHTTP(w, r)
}

// serviceUpstream finds a running job of the run and the address of its service port as seen from its
// machine (the host port in bridge mode).
func (s *Server) serviceUpstream(ctx context.Context, run *models.Run, port int) (*sshpool.Target, string, *apiError) {
	if run.Status != models.RunRunning {
		return nil, "", clientError(codeError, fmt.Sprintf("Service %s is not running (status %s)", run.Name, run.Status))
	}
	ups, err := gateways.Upstreams(ctx, s.store, run, port)
	if err != nil {
		return nil, "", s.internal(err)
	}
	if len(ups) == 0 {
		return nil, "", clientError(codeError, "Service "+run.Name+" has no running replica")
	}
	return &ups[0].Target, net.JoinHostPort("127.0.0.1", strconv.Itoa(ups[0].Port)), nil
}
