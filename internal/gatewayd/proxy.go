package gatewayd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
)

const acmeChallengePrefix = "/.well-known/acme-challenge/"

// Handler is the data plane, for the HTTP and the HTTPS listener alike: it routes by Host to the
// registered service.
func (g *Gateway) Handler() http.Handler { return http.HandlerFunc(g.serve) }

func (g *Gateway) serve(w http.ResponseWriter, r *http.Request) {
	st := g.state.Load()
	host := hostName(r.Host)
	svc := st.services[host]
	if svc == nil {
		http.Error(w, fmt.Sprintf("dstack-gateway: no service is registered for host %q", host), http.StatusNotFound)
		return
	}
	if st.tls == TLSLetsEncrypt && svc.HTTPS && r.TLS == nil {
		if a := g.acme.Load(); a != nil && strings.HasPrefix(r.URL.Path, acmeChallengePrefix) {
			a.challenge.ServeHTTP(w, r)
			return
		}
		http.Redirect(w, r, g.httpsURL(host, r), http.StatusPermanentRedirect)
		return
	}
	svc.counter.request()
	if svc.Auth && !authorize(w, r, svc) {
		return
	}
	svc.proxy.ServeHTTP(w, r)
}

func (g *Gateway) httpsURL(host string, r *http.Request) string {
	if g.opts.HTTPSPort != 0 && g.opts.HTTPSPort != 443 {
		host = net.JoinHostPort(host, strconv.Itoa(g.opts.HTTPSPort))
	}
	return "https://" + host + r.URL.RequestURI()
}

// authorize checks the dstack token of the request and answers 401 or 403 when it is missing or not
// one of the service's.
func authorize(w http.ResponseWriter, r *http.Request, svc *service) bool {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="dstack"`)
		writeDetail(w, http.StatusUnauthorized, "this service requires a dstack token: send Authorization: Bearer <token>")
		return false
	}
	sum := sha256.Sum256([]byte(token))
	if !svc.tokens[hex.EncodeToString(sum[:])] {
		writeDetail(w, http.StatusForbidden, "the token does not give access to this service")
		return false
	}
	return true
}

// newProxy is the reverse proxy of svc: streaming (answers are flushed as they come, for SSE and
// token streaming), upgrades (WebSocket) passed through, replicas chosen by svc.RoundTrip.
func (g *Gateway) newProxy(svc *service, tlsMode string) *httputil.ReverseProxy {
	behindLB := tlsMode == TLSNone
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = svc.Domain       // RoundTrip puts the replica's address
			pr.Out.Header.Del("Authorization") // the dstack token is not the service's business
			if behindLB {
				// The load balancer in front set these for the real client; extend them.
				if v := pr.In.Header.Values("X-Forwarded-For"); len(v) > 0 {
					pr.Out.Header["X-Forwarded-For"] = v
				}
			}
			pr.SetXForwarded()
			if p := pr.In.Header.Get("X-Forwarded-Proto"); behindLB && p != "" {
				pr.Out.Header.Set("X-Forwarded-Proto", p)
			}
		},
		Transport:     svc,
		FlushInterval: -1,
		ModifyResponse: func(resp *http.Response) error {
			if resp.StatusCode >= 500 {
				svc.counter.error()
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
				return // the client went away
			}
			svc.counter.error()
			level := slog.LevelWarn
			if errors.Is(err, errNoReplicas) {
				level = slog.LevelDebug // a service scaled to zero: expected until it scales up
			}
			g.log.Log(r.Context(), level, "service did not answer", "service", svc.Domain, "run", svc.RunName, "err", err)
			msg := strings.ReplaceAll(err.Error(), "\n", "; ")
			http.Error(w, fmt.Sprintf("dstack-gateway: the service %s did not answer: %s", svc.RunName, msg), http.StatusBadGateway)
		},
		ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
}

// hostName is the host of a Host header or a server name, without port and trailing dot, lowercase.
func hostName(hostport string) string {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	return strings.TrimSuffix(strings.ToLower(h), ".")
}
