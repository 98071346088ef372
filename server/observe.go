package server

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/firetower-go/firetower/dashboard"
	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/metrics"
	"github.com/firetower-go/firetower/topicmgr"
)

// observability is what the server offers operators on its main port:
// /readyz, /metrics (Prometheus), the dashboard under /dashboard, and, with
// Config.Pprof, net/http/pprof under /debug/pprof/ behind the API key.
// /healthz is in routes.
type observability struct {
	gw      *gateway.Gateway
	metrics *metrics.Metrics
	dash    *dashboard.Dashboard
	pprof   bool
}

// newMetrics makes the registry and hands it to the gateway as its
// Observer, before the gateway is built.
func newMetrics(cfg *Config) *metrics.Metrics {
	m := metrics.New(cfg.Gateway.Logger)
	if cfg.Gateway.Observer == nil {
		cfg.Gateway.Observer = m
	}
	return m
}

// newObservability attaches the metrics and the dashboard to gw. It runs
// after the push API has settled the key (cfg.APIKey).
func newObservability(cfg *Config, gw *gateway.Gateway, m *metrics.Metrics) (*observability, error) {
	if err := m.WatchGateway(gw); err != nil {
		return nil, err
	}
	dash, err := dashboard.New(dashboard.Config{
		Gateway:  gw,
		APIKey:   cfg.APIKey,
		Open:     cfg.DashboardOpen,
		Insecure: cfg.APIInsecure,
		Logger:   cfg.Gateway.Logger,
	})
	if err != nil {
		return nil, err
	}
	if cfg.DashboardOpen && !cfg.APIInsecure {
		cfg.Gateway.Logger.Warn("the dashboard is open to anyone who reaches --addr (--dashboard-open); connection lookup and disconnect still need the API key")
	}
	return &observability{gw: gw, metrics: m, dash: dash, pprof: cfg.Pprof}, nil
}

func (o *observability) mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /readyz", o.readyz)
	mux.Handle("GET /metrics", o.metrics.Handler())
	o.dash.Register(mux)
	if o.pprof {
		pm := http.NewServeMux()
		pm.HandleFunc("/debug/pprof/", pprof.Index) // and the named profiles under it
		pm.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		pm.HandleFunc("/debug/pprof/profile", pprof.Profile)
		pm.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		pm.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.Handle("/debug/pprof/", o.dash.RequireKey(pm))
	}
}

// readyz answers 200 while the node should get new clients, 503 with the
// reason while it drains, is closed, or its broker cannot reach the other
// nodes (see gateway.Ready).
func (o *observability) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := o.gw.Ready(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready: " + err.Error() + "\n"))
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// start starts the dashboard's sampler; close ends its streams and stops it.
func (o *observability) start() { o.dash.Start() }
func (o *observability) close() { o.dash.Close() }

// ManagerHandler serves a topic manager's /healthz (the process is alive)
// and /metrics (its counters and the Go runtime's), for `firetower
// topicmanager --http-addr`.
func ManagerHandler(srv *topicmgr.Server, log *slog.Logger) (http.Handler, error) {
	m := metrics.New(log)
	if err := m.WatchManager(srv); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", m.Handler())
	return mux, nil
}

// serveManagerHTTP serves ManagerHandler on addr until the returned stop
// is called.
func serveManagerHTTP(addr string, srv *topicmgr.Server, log *slog.Logger) (stop func(), err error) {
	h, err := ManagerHandler(srv, log)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(l); err != nil && err != http.ErrServerClosed {
			log.Error("topic manager HTTP stopped", "err", err)
		}
	}()
	log.Info("topic manager HTTP serving", "addr", l.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		<-done
	}, nil
}
