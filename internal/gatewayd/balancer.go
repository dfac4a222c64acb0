package gatewayd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/dstackgo/dstack/internal/sshpool"
)

// replica is an upstream: the app port of a replica as seen from its host. Each has its own HTTP
// transport, so that kept-alive connections always go back to the replica they were opened to.
type replica struct {
	target    sshpool.Target
	addr      string // 127.0.0.1:<app_port>
	transport *http.Transport
}

// dialError is a failure to open a connection to a replica: nothing was sent, so another replica can
// take the request.
type dialError struct {
	target sshpool.Target
	addr   string
	err    error
}

func (e *dialError) Error() string {
	return fmt.Sprintf("cannot reach %s on %s: %v", e.addr, e.target, e.err)
}

func (e *dialError) Unwrap() error { return e.err }

func (g *Gateway) newReplica(t sshpool.Target, addr string) *replica {
	r := &replica{target: t, addr: addr}
	r.transport = &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			c, err := g.pool.DialContext(ctx, t, network, addr)
			if err != nil {
				return nil, &dialError{target: t, addr: addr, err: err}
			}
			return c, nil
		},
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     90 * time.Second,
		// The client's Accept-Encoding goes through; the answer comes back as the app encoded it.
		DisableCompression: true,
	}
	return r
}

var errNoReplicas = errors.New("the service has no running replica")

// RoundTrip sends req to the service's replicas in turn. When the chosen replica cannot be reached,
// the next one gets the request once (nothing was sent yet); any other failure is final.
func (s *service) RoundTrip(req *http.Request) (*http.Response, error) {
	reps := s.replicas
	if len(reps) == 0 {
		return nil, errNoReplicas
	}
	first := int((s.next.Add(1) - 1) % uint64(len(reps)))
	var body *replayBody
	if req.Body != nil && req.Body != http.NoBody {
		body = &replayBody{src: req.Body}
	}
	var errs []error
	for i := range min(2, len(reps)) {
		rep := reps[(first+i)%len(reps)]
		out := *req
		u := *req.URL
		u.Host = rep.addr
		out.URL = &u
		if body != nil {
			v, err := body.view()
			if err != nil {
				errs = append(errs, err)
				break
			}
			out.Body, out.GetBody = v, body.view
		}
		resp, err := rep.transport.RoundTrip(&out)
		if err == nil {
			return resp, nil
		}
		errs = append(errs, err)
		if de := (*dialError)(nil); !errors.As(err, &de) {
			break
		}
	}
	return nil, errors.Join(errs...)
}
