package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/internal/apikey"
	"github.com/firetower-go/firetower/pushapi"
	"github.com/firetower-go/firetower/pushapi/grpcapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// DefaultGRPCAddr is the --grpc-addr of `firetower serve` and `firetower
// gateway`. A Config with an empty GRPCAddr serves no gRPC.
const DefaultGRPCAddr = "0.0.0.0:9998"

// Listeners are the sockets ServeListeners serves. HTTP is required. A nil
// API or GRPC listener is opened on Config.APIAddr or Config.GRPCAddr when
// that is set; a listener given here is served whatever the Config says.
type Listeners struct {
	HTTP, API, GRPC net.Listener
}

// apiServer is the push API of a Server: the service, its key, and the
// optional listeners of its own (HTTP on APIAddr, gRPC on GRPCAddr).
type apiServer struct {
	svc      *pushapi.Service
	auth     pushapi.Auth
	handler  http.Handler
	separate bool        // Config.APIAddr is set: /api/ is not on the main port
	tls      *tls.Config // for the API and gRPC listeners; nil: plain
	http     *http.Server
	grpc     *grpc.Server
}

func (c *Config) validateAPI() error {
	if c.APIKey != "" && c.APIInsecure {
		return errors.New("server: an API key and --api-insecure exclude each other")
	}
	for name, addr := range map[string]string{"api-addr": c.APIAddr, "grpc-addr": c.GRPCAddr} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("server: bad --%s %q: %w", name, addr, err)
		}
	}
	if (c.APITLSCert == "") != (c.APITLSKey == "") {
		return errors.New("server: --api-tls-cert and --api-tls-key go together")
	}
	if c.APITLSCert != "" && c.APIAddr == "" && c.GRPCAddr == "" {
		return errors.New("server: API TLS applies to --api-addr and --grpc-addr, and neither is set")
	}
	return nil
}

// newAPI builds the push API. With no key and no APIInsecure it generates
// a key, stores it in cfg.APIKey and logs it once: the API never runs open
// by accident.
// tlsConf, if not nil, serves the API and gRPC listeners over TLS (tls.go).
func newAPI(cfg *Config, gw *gateway.Gateway, log *slog.Logger, tlsConf *tls.Config) (*apiServer, error) {
	a := &apiServer{separate: cfg.APIAddr != "", tls: tlsConf}
	if cfg.APIInsecure {
		a.auth = pushapi.InsecureAuth()
		log.Warn("the push API is open without a key (--api-insecure): anyone who reaches it can publish and disconnect clients")
	} else {
		if cfg.APIKey == "" {
			cfg.APIKey = apikey.Generate()
			log.Warn("no API key configured (--api-key or FIRETOWER_API_KEY): generated one for this run", "apiKey", cfg.APIKey)
		}
		var err error
		if a.auth, err = pushapi.NewAuth(cfg.APIKey); err != nil {
			return nil, err
		}
	}
	a.svc = pushapi.New(gw, pushapi.Config{Logger: log, DrainWindow: cfg.DrainWindow})
	a.handler = a.svc.Handler(a.auth)
	a.http = &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	var opts []grpc.ServerOption
	if a.tls != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(a.tls)))
	}
	a.grpc = grpcapi.New(a.svc, a.auth, opts...)
	return a, nil
}

// mount puts the HTTP API under /api/ on the main port, unless it has a
// listener of its own.
func (a *apiServer) mount(mux *http.ServeMux) {
	if !a.separate {
		mux.Handle("/api/", a.handler)
	}
}

// listen opens the listeners ls lacks that cfg asks for.
func (a *apiServer) listen(cfg *Config, ls *Listeners) error {
	var err error
	if ls.API == nil && cfg.APIAddr != "" {
		if ls.API, err = net.Listen("tcp", cfg.APIAddr); err != nil {
			return fmt.Errorf("server: push API: %w", err)
		}
	}
	if ls.GRPC == nil && cfg.GRPCAddr != "" {
		if ls.GRPC, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
			if ls.API != nil {
				_ = ls.API.Close()
			}
			return fmt.Errorf("server: gRPC push API: %w", err)
		}
	}
	return nil
}

// serve starts serving the API listeners of ls; each server's result goes
// to errc. It returns how many it started.
func (a *apiServer) serve(ls Listeners, log *slog.Logger, errc chan<- error) int {
	n := 0
	if ls.API != nil {
		l := ls.API
		if a.tls != nil {
			l = tls.NewListener(l, a.tls)
		}
		log.Info("push API serving", "addr", ls.API.Addr().String(), "tls", a.tls != nil)
		go func() { errc <- a.http.Serve(l) }()
		n++
	}
	if ls.GRPC != nil {
		log.Info("gRPC push API serving", "addr", ls.GRPC.Addr().String(), "tls", a.tls != nil)
		go func() { errc <- a.grpc.Serve(ls.GRPC) }()
		n++
	}
	return n
}

// shutdown ends the Subscribe streams, then stops both servers gracefully
// until ctx ends, and abruptly after that.
func (a *apiServer) shutdown(ctx context.Context) error {
	a.svc.Close()
	err := a.http.Shutdown(ctx)
	stopped := make(chan struct{})
	go func() { a.grpc.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		a.grpc.Stop()
		<-stopped
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// close stops everything at once.
func (a *apiServer) close() {
	a.svc.Close()
	_ = a.http.Close()
	a.grpc.Stop()
}

// API returns the server's push API, for other parts of the process (the
// dashboard) to call.
func (s *Server) API() *pushapi.Service { return s.api.svc }

// APIAuth returns the check of the push API's key, which the dashboard
// shares.
func (s *Server) APIAuth() pushapi.Auth { return s.api.auth }

// APIKey returns the push API's key: the configured one or the one
// generated at start ("" with APIInsecure).
func (s *Server) APIKey() string { return s.cfg.APIKey }
