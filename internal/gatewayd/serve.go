package gatewayd

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Listeners are where the gateway serves. HTTPS may be nil (no HTTPS listener).
type Listeners struct {
	API, HTTP, HTTPS net.Listener
}

// ShutdownGrace is how long Serve waits for requests in flight (streams included) once ctx ends.
const ShutdownGrace = 10 * time.Second

// Serve serves the management API and the data plane until ctx ends, then shuts down gracefully. It
// returns the first listener failure, or nil after a shutdown.
func (g *Gateway) Serve(ctx context.Context, l Listeners) error {
	errLog := slog.NewLogLogger(g.log.Handler(), slog.LevelWarn)
	newServer := func(h http.Handler) *http.Server {
		// No write timeout: answers stream for as long as the service streams.
		return &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: errLog}
	}
	type served struct {
		srv   *http.Server
		serve func() error
	}
	api, plain := newServer(g.APIHandler()), newServer(g.Handler())
	all := []served{
		{api, func() error { return api.Serve(l.API) }},
		{plain, func() error { return plain.Serve(l.HTTP) }},
	}
	if l.HTTPS != nil {
		secure := newServer(g.Handler())
		secure.TLSConfig = g.TLSConfig()
		all = append(all, served{secure, func() error { return secure.ServeTLS(l.HTTPS, "", "") }})
	}
	errs := make(chan error, len(all))
	var wg sync.WaitGroup
	for _, s := range all {
		wg.Go(func() {
			if err := s.serve(); !errors.Is(err, http.ErrServerClosed) {
				errs <- err
			}
		})
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errs:
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	defer cancel()
	for _, s := range all {
		wg.Go(func() {
			if s.srv.Shutdown(sctx) != nil {
				s.srv.Close() // streams still open after the grace period
			}
		})
	}
	wg.Wait()
	return err
}
