// Package server is the all-in-one firetower application behind
// `firetower serve`: a gateway with the embedded broker, serving /ws with the
// behaviour of the original example program (the read handler republishes,
// subscriptions announce the online count, a read timeout is echoed to the
// sender) and the HTTP pages around it.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/firetower-go/firetower/auth"
	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/web"
)

// Config configures a Server. The zero value serves on DefaultAddr with
// count announcements on.
type Config struct {
	// Addr is the HTTP listen address (default DefaultAddr).
	Addr string
	// QuietCounts turns off the {"type":"onSubscribe"|"onUnsubscribe","data":N}
	// messages. They cost n²/2 deliveries for n subscribers joining a topic.
	QuietCounts bool
	// DrainWindow spreads the closing of clients on shutdown (default 5 s).
	DrainWindow time.Duration
	// ShutdownTimeout bounds the whole shutdown (default DrainWindow + 10 s).
	ShutdownTimeout time.Duration
	// ReadHeaderTimeout bounds the time a client of Addr has to send its
	// request headers, the websocket upgrade included (default
	// DefaultReadHeaderTimeout): a connection that sends nothing or half
	// its headers (slowloris) is closed then.
	ReadHeaderTimeout time.Duration
	// Broker says how this node shares topics with others: "" for the
	// embedded in-process broker (a single node),
	// "tm://host:port[,host:port...]" for topic managers (see broker/tm),
	// "redis://host:port[/db][?prefix=P]" for Redis Pub/Sub (broker/redis)
	// or "nats://host:port[,...][?prefix=P]" for NATS (broker/nats).
	// Ignored when Gateway.Broker is set.
	Broker string
	// ClusterToken is the shared secret sent to the topic managers.
	ClusterToken string
	// APIKey protects the push API and the dashboard (see package
	// internal/apikey for how it is sent). Empty: a random key is generated
	// at start and logged once, unless APIInsecure is set.
	APIKey string
	// APIInsecure opens the push API and the dashboard without a key; it
	// must be asked for explicitly and is logged as a warning.
	APIInsecure bool
	// DashboardOpen lets anyone who reaches Addr see the dashboard's views
	// of the system without the key; looking up and disconnecting
	// connections still need it.
	DashboardOpen bool
	// Pprof serves net/http/pprof under /debug/pprof/ on Addr, behind the
	// API key (header or dashboard session).
	Pprof bool
	// APIAddr, if set, serves the HTTP push API on a listener of its own
	// instead of under /api/ on Addr.
	APIAddr string
	// GRPCAddr, if set, serves the gRPC push API (`firetower serve`
	// defaults it to DefaultGRPCAddr; empty here means no gRPC).
	GRPCAddr string
	// TLSCert and TLSKey (PEM files, both or neither) serve Addr over TLS
	// (https and wss), and APIAddr and GRPCAddr too unless APITLSCert is
	// set. Server.Reload reads them again.
	TLSCert, TLSKey string
	// APITLSCert and APITLSKey (PEM files), if set, serve the APIAddr and
	// GRPCAddr listeners over TLS with a certificate of their own.
	APITLSCert, APITLSKey string
	// Identify, if set, is asked about every websocket upgrade request: it
	// returns the connection's client id ("" for a generated one) and user
	// id (FireTower.UserId, "" for none), or an error to refuse the
	// connection with 401. The push API finds connections by these ids.
	// `firetower serve` sets none: it authenticates no user.
	Identify func(r *http.Request) (clientID, userID string, err error)
	// JWT, when its Secret or KeyFile is set, requires a valid token on
	// every websocket upgrade (package auth) unless Gateway.Authenticator is
	// already set. Without them clients are not authenticated.
	JWT auth.Config
	// Gateway configures the gateway; its Logger is also the server's.
	Gateway gateway.Config
}

// DefaultAddr is where the original example listened.
const DefaultAddr = "0.0.0.0:9999"

// DefaultDrainWindow spreads client closes on shutdown.
const DefaultDrainWindow = 5 * time.Second

// DefaultReadHeaderTimeout is the default Config.ReadHeaderTimeout: ample
// for a slow mobile link, short enough that half-open connections do not
// pile up.
const DefaultReadHeaderTimeout = 10 * time.Second

// Validate reports nonsensical settings.
func (c *Config) Validate() error {
	if c.DrainWindow < 0 || c.ShutdownTimeout < 0 || c.ReadHeaderTimeout < 0 {
		return errors.New("server: durations must not be negative")
	}
	if c.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			return fmt.Errorf("server: bad address %q: %w", c.Addr, err)
		}
	}
	if err := validateBroker(c.Broker); err != nil {
		return err
	}
	if err := c.validateAPI(); err != nil {
		return err
	}
	if err := c.validateTLS(); err != nil {
		return err
	}
	return c.Gateway.Validate()
}

// Server is the all-in-one firetower process.
type Server struct {
	cfg  Config
	log  *slog.Logger
	gw   *gateway.Gateway
	http *http.Server
	api  *apiServer     // the push API (api.go)
	tls  serverTLS      // reloadable certificates (tls.go)
	obs  *observability // /readyz, /metrics, the dashboard, pprof (observe.go)
}

// New builds the server and its gateway.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.DrainWindow == 0 {
		cfg.DrainWindow = DefaultDrainWindow
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = cfg.DrainWindow + 10*time.Second
	}
	if cfg.ReadHeaderTimeout == 0 {
		cfg.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if cfg.Gateway.Logger == nil {
		cfg.Gateway.Logger = slog.Default()
	}
	if cfg.Gateway.Transport == "" {
		cfg.Gateway.Transport = gateway.TransportNetpoll // the server's default: the cheapest per connection
	}
	certs, err := loadTLS(&cfg) // before anything that starts goroutines
	if err != nil {
		return nil, err
	}
	if certs.main != nil && cfg.Gateway.Transport == gateway.TransportNetpoll {
		cfg.Gateway.Logger.Info("TLS connections use the goroutine transport: netpoll needs a raw socket")
	}
	if cfg.Broker != "" && cfg.Gateway.NodeID == "" {
		cfg.Gateway.Logger.Warn("no --node-id in a cluster: after a restart this gateway gets a new random id, and its old counts stay until their lease ends")
	}
	if cfg.Gateway.Broker == nil && cfg.Broker != "" {
		b, err := newBroker(cfg.Broker, cfg.ClusterToken, cfg.Gateway.Logger)
		if err != nil {
			return nil, err
		}
		cfg.Gateway.Broker = b
	}
	if cfg.Gateway.Authenticator == nil && (len(cfg.JWT.Secret) > 0 || cfg.JWT.KeyFile != "") {
		v, err := auth.New(cfg.JWT)
		if err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
		cfg.Gateway.Authenticator = v
	}
	metrics := newMetrics(&cfg)
	gw, err := gateway.New(cfg.Gateway)
	if err != nil {
		return nil, err
	}
	api, err := newAPI(&cfg, gw, cfg.Gateway.Logger, certs.apiConfig())
	if err != nil {
		_ = gw.Close()
		return nil, err
	}
	obs, err := newObservability(&cfg, gw, metrics)
	if err != nil {
		_ = gw.Close()
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Gateway.Logger, gw: gw, api: api, obs: obs, tls: certs}
	s.http = &http.Server{
		Addr:              cfg.Addr,
		Handler:           s.routes(),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Gateway.Logger.Handler(), slog.LevelWarn),
	}
	// The dashboard's event streams never go idle: end them when the
	// HTTP server starts shutting down.
	s.http.RegisterOnShutdown(obs.close)
	return s, nil
}

// Gateway returns the server's gateway.
func (s *Server) Gateway() *gateway.Gateway { return s.gw }

// Handler returns the server's HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.http.Handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", s.serveWS)
	web.Register(mux) // the chat room at / and the client library under /static/
	s.api.mount(mux)  // the push API under /api/, unless it has its own listener
	s.obs.mount(mux)  // /readyz, /metrics, /dashboard, /debug/pprof/
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// Serve accepts connections on l until ctx ends, then shuts down gracefully:
// it stops accepting, closes clients with 1001 spread over the drain window,
// and returns when everything has stopped. The push API's own listeners
// (APIAddr, GRPCAddr) are opened and served too.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	return s.ServeListeners(ctx, Listeners{HTTP: l})
}

// ServeListeners is Serve with the push API's listeners given (tests use
// 127.0.0.1:0); see Listeners.
func (s *Server) ServeListeners(ctx context.Context, ls Listeners) error {
	if ls.HTTP == nil {
		_ = s.gw.Close()
		return errors.New("server: no HTTP listener")
	}
	if err := s.api.listen(&s.cfg, &ls); err != nil {
		_ = ls.HTTP.Close()
		_ = s.gw.Close()
		return err
	}
	s.obs.start()
	defer s.obs.close()
	s.log.Info("firetower serving", "addr", ls.HTTP.Addr().String(), "node", s.gw.NodeID(), "tls", s.tls.main != nil)
	errc := make(chan error, 3)
	hl := s.tls.listener(ls.HTTP)
	go func() { errc <- s.http.Serve(hl) }()
	running := 1 + s.api.serve(ls, s.log, errc)
	select {
	case err := <-errc:
		// One listener failed: stop the others at once.
		_ = s.http.Close()
		s.api.close()
		for running--; running > 0; running-- {
			<-errc
		}
		_ = s.gw.Close()
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down", "drain", s.cfg.DrainWindow)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	// Stop accepting first; hijacked websockets are not touched by this.
	herr := s.http.Shutdown(sctx)
	aerr := s.api.shutdown(sctx)
	for ; running > 0; running-- {
		<-errc
	}
	gerr := s.gw.Shutdown(sctx, s.cfg.DrainWindow)
	s.log.Info("stopped")
	return errors.Join(herr, aerr, gerr)
}

// ListenAndServe listens on the configured address and calls Serve.
func (s *Server) ListenAndServe(ctx context.Context) error {
	l, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, l)
}

// chatMessage is the chat page's message shape, used for the timeout notice.
// From and Data stay raw so the notice echoes them exactly: decoding them
// into any would round numbers beyond 2^53 and reorder object keys.
type chatMessage struct {
	From json.RawMessage `json:"from"`
	Data json.RawMessage `json:"data"`
	Type string          `json:"type"`
}

// serveWS is the original example's websocket handler.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	var clientID, userID string
	if s.cfg.Identify != nil {
		var err error
		if clientID, userID, err = s.cfg.Identify(r); err != nil {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
	}
	ws, err := s.gw.Upgrade(w, r)
	if err != nil {
		return
	}
	if clientID == "" {
		clientID = strconv.FormatUint(s.gw.NewID(), 10)
	}
	tower := s.gw.BuildTower(ws, clientID)
	if userID != "" {
		tower.UserId = userID
	}
	tower.SetReadHandler(func(fire *gateway.FireInfo) bool {
		_ = tower.Publish(fire) // a failure is logged, counted and answered (v2) by the gateway
		return true
	})
	tower.SetReadTimeoutHandler(func(fire *gateway.FireInfo) {
		var msg chatMessage
		_ = json.Unmarshal(fire.Message.Data, &msg)
		msg.Type = "timeout"
		b, _ := json.Marshal(msg)
		_ = tower.ToSelf(b)
	})
	if !s.cfg.QuietCounts {
		announce := func(kind string) func(*gateway.FireLife, []string) bool {
			return func(life *gateway.FireLife, topics []string) bool {
				for _, topic := range topics {
					fire := gateway.NewFireInfo(tower, life)
					fire.Message.Topic = topic
					fire.Message.Data = fmt.Appendf(nil, `{"type":%q,"data":%d}`, kind, tower.GetConnectNum(topic))
					_ = tower.Publish(fire)
				}
				return true
			}
		}
		tower.SetSubscribeHandler(announce("onSubscribe"))
		tower.SetUnSubscribeHandler(announce("onUnsubscribe"))
	}
	tower.Start() // this goroutine ends; the netpoll transport keeps none
}
