// Command dstack-gateway is the data plane of a dstack gateway: it serves the project's services at
// their domains (HTTPS with Let's Encrypt, or plain HTTP behind a load balancer) and proxies to their
// replicas over SSH. The dstack server uploads it, starts it as root and configures it through the
// management API on loopback (internal/gatewayd).
//
//	dstack-gateway [--api 127.0.0.1:8000] [--http :80] [--https :443] [--state-dir /var/lib/dstack-gateway]
//	               [--acme-directory URL] [--log-level info]
//
// Every flag can also come from DSTACK_GATEWAY_<FLAG> (e.g. DSTACK_GATEWAY_STATE_DIR).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/dstackgo/dstack/internal/gatewayd"
)

func env(name, def string) string {
	if v, ok := os.LookupEnv("DSTACK_GATEWAY_" + name); ok && v != "" {
		return v
	}
	return def
}

func main() {
	fs := flag.NewFlagSet("dstack-gateway", flag.ExitOnError)
	apiAddr := fs.String("api", env("API", "127.0.0.1:8000"), "management API address, loopback only (env DSTACK_GATEWAY_API)")
	httpAddr := fs.String("http", env("HTTP", ":80"), "HTTP address (env DSTACK_GATEWAY_HTTP)")
	httpsAddr := fs.String("https", env("HTTPS", ":443"), "HTTPS address, empty for none (env DSTACK_GATEWAY_HTTPS)")
	stateDir := fs.String("state-dir", env("STATE_DIR", "/var/lib/dstack-gateway"), "certificates and ACME account (env DSTACK_GATEWAY_STATE_DIR)")
	acmeDir := fs.String("acme-directory", env("ACME_DIRECTORY", gatewayd.LetsEncryptURL), "ACME directory URL (env DSTACK_GATEWAY_ACME_DIRECTORY)")
	logLevel := fs.String("log-level", env("LOG_LEVEL", "info"), "debug, info, warn or error (env DSTACK_GATEWAY_LOG_LEVEL)")
	version := fs.Bool("version", false, "print the version and exit")
	_ = fs.Parse(os.Args[1:])
	if *version {
		fmt.Println(gatewayd.Version)
		return
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "dstack-gateway: --log-level %q: use debug, info, warn or error\n", *logLevel)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err := run(logger, *apiAddr, *httpAddr, *httpsAddr, *stateDir, *acmeDir); err != nil {
		logger.Error("dstack-gateway failed", "err", err)
		os.Exit(1)
	}
}

func run(logger *slog.Logger, apiAddr, httpAddr, httpsAddr, stateDir, acmeDir string) error {
	if err := checkLoopback(apiAddr); err != nil {
		return err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w (set --state-dir to a writable directory)", err)
	}
	var l gatewayd.Listeners
	var err error
	if l.API, err = net.Listen("tcp", apiAddr); err != nil {
		return fmt.Errorf("management API: %w", err)
	}
	if l.HTTP, err = net.Listen("tcp", httpAddr); err != nil {
		return fmt.Errorf("HTTP: %w", err)
	}
	httpsPort := 0
	if httpsAddr != "" {
		if l.HTTPS, err = net.Listen("tcp", httpsAddr); err != nil {
			return fmt.Errorf("HTTPS: %w", err)
		}
		_, p, _ := net.SplitHostPort(l.HTTPS.Addr().String())
		httpsPort, _ = strconv.Atoi(p)
	}
	g := gatewayd.New(gatewayd.Options{StateDir: stateDir, ACMEDirectory: acmeDir, HTTPSPort: httpsPort, Logger: logger})
	defer g.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	attrs := []any{"version", gatewayd.Version, "api", l.API.Addr().String(), "http", l.HTTP.Addr().String()}
	if l.HTTPS != nil {
		attrs = append(attrs, "https", l.HTTPS.Addr().String())
	}
	logger.Info("dstack-gateway started", attrs...)
	err = g.Serve(ctx, l)
	logger.Info("dstack-gateway stopped")
	return err
}

// checkLoopback refuses to expose the management API, which has no authentication of its own.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--api %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return errors.New("--api " + addr + ": the management API has no authentication and must listen on a loopback address (e.g. 127.0.0.1:8000)")
	}
	return nil
}
