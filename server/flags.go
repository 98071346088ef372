package server

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/firetower-go/firetower/gateway"
	"github.com/pelletier/go-toml/v2"
)

// DefaultConfigFile is read when it exists and no other file is named, as
// the original read ./fireTower.toml.
const DefaultConfigFile = "fireTower.toml"

// EnvPrefix prefixes the environment variable of every flag:
// --announce-counts is FIRETOWER_ANNOUNCE_COUNTS.
const EnvPrefix = "FIRETOWER_"

// legacyKeys are keys of the original fireTower.toml that no longer apply;
// they are accepted and ignored with a log line. For `firetower gateway`,
// topicServiceAddr means broker = "tm://<addr>".
var legacyKeys = map[string]bool{"topicServiceAddr": true, "bucket": true, "grpcAddr": true}

// Options are the settings of `firetower serve` gathered from defaults, the
// config file, the environment and the command line, in that order of
// increasing precedence.
type Options struct {
	Server    Config
	LogLevel  slog.Level
	LogFormat string // "text" or "json"
	// Ignored lists config-file keys that were accepted but have no effect.
	Ignored []string
}

// ParseServe parses the arguments of `firetower serve`. getenv is
// os.Getenv outside tests.
func ParseServe(args []string, getenv func(string) string, stderr io.Writer) (*Options, error) {
	return parseServer("serve", args, getenv, stderr)
}

// ParseGateway parses the arguments of `firetower gateway`: the flags of
// serve, where --broker names the topic managers.
func ParseGateway(args []string, getenv func(string) string, stderr io.Writer) (*Options, error) {
	return parseServer("gateway", args, getenv, stderr)
}

func parseServer(name string, args []string, getenv func(string) string, stderr io.Writer) (*Options, error) {
	o := &Options{LogFormat: "text"}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	gw := &o.Server.Gateway
	var origins, configPath string
	announce := true
	fs.StringVar(&configPath, "config", "", "config file (TOML); default ./"+DefaultConfigFile+" when it exists")
	fs.StringVar(&o.Server.Addr, "addr", DefaultAddr, "HTTP listen address HOST:PORT")
	fs.BoolVar(&announce, "announce-counts", true, "publish {\"type\":\"onSubscribe\"|\"onUnsubscribe\",\"data\":N} online counts")
	fs.DurationVar(&o.Server.DrainWindow, "drain-window", DefaultDrainWindow, "spread client closes over this long on shutdown")
	fs.DurationVar(&o.Server.ReadHeaderTimeout, "read-header-timeout", DefaultReadHeaderTimeout, "time a client has to send its request headers, websocket upgrade included (slowloris); also on --api-addr")
	fs.StringVar(&o.Server.Broker, "broker", "", "how nodes share topics: empty for the embedded broker (one node), tm://host:port[,host:port...] for topic managers, redis://host:port[/db][?prefix=P] for Redis Pub/Sub, or nats://host:port[,host:port...][?prefix=P] for NATS")
	var brokerSettle time.Duration
	fs.DurationVar(&brokerSettle, "broker-settle", defaultBrokerSettle, "after the link to a restarted --broker comes back, refuse publishes (v2 error 503, API 503) this long, until the other gateways have re-subscribed, so that nothing acknowledged is lost; 0: off (accepted at once; some may then reach no other gateway). Sets settle= in the --broker URL")
	fs.StringVar(&o.Server.ClusterToken, "cluster-token", "", "shared secret sent to the topic managers (their --cluster-token); Redis and NATS credentials go in the --broker URL")
	fs.StringVar(&gw.NodeID, "node-id", "", "stable node id (default: host-pid-random); set it in a cluster")
	fs.Var(clusterIDFlag{&gw.ClusterID}, "cluster-id", "node number in the message ids, unique in the cluster: auto (claim a free one through --broker) or 0..1023 (1024 means 0; start fails if another gateway holds it)")
	fs.DurationVar(&gw.HeartbeatInterval, "heartbeat", gateway.DefaultHeartbeatInterval, "heartbeat and websocket ping interval")
	fs.DurationVar(&gw.PongTimeout, "pong-timeout", gateway.DefaultPongTimeout, "extra time a silent client gets after a heartbeat")
	fs.DurationVar(&gw.WriteTimeout, "write-timeout", gateway.DefaultWriteTimeout, "deadline of one write to a client")
	fs.Int64Var(&gw.ReadLimit, "read-limit", gateway.DefaultReadLimit, "largest client message in bytes (close 1009 above)")
	fs.IntVar(&gw.MaxMessageSize, "max-message-size", gateway.DefaultMaxMessageSize, "largest published payload in bytes")
	fs.IntVar(&gw.MaxTopicLength, "max-topic-length", 255, "longest topic name in bytes")
	fs.IntVar(&gw.MaxSubscriptions, "max-subscriptions", gateway.DefaultMaxSubscriptions, "topics per connection (-1: no limit)")
	fs.StringVar((*string)(&gw.Transport), "transport", string(gateway.TransportNetpoll), "how connections are served: netpoll (epoll, no goroutine or buffer per idle connection; handlers run on a worker pool) or goroutine (gorilla's reader and writer per connection, as the original)")
	fs.IntVar(&gw.Pollers, "pollers", 0, "netpoll transport: epoll loops (0: one per CPU, GOMAXPROCS)")
	fs.IntVar(&gw.Workers, "workers", gateway.DefaultWorkers, "netpoll transport: most goroutines running the handlers at once (a handler that blocks holds one)")
	fs.IntVar(&gw.PublishQueue, "publish-queue", gateway.DefaultPublishQueue, "messages waiting for the broker; a publish beyond is refused at once (503)")
	fs.DurationVar(&gw.PublishTimeout, "publish-timeout", gateway.DefaultPublishTimeout, "how long a message may wait for the broker before its publish fails")
	fs.IntVar(&gw.InboundQueue, "inbound-queue", gateway.DefaultInboundQueue, "client frames waiting for the handlers (the original's chanLens)")
	fs.DurationVar(&gw.ReadTimeout, "read-timeout", gateway.DefaultReadTimeout, "wait on a full inbound queue before the read-timeout callback")
	fs.IntVar(&gw.OutboundQueue, "outbound-queue", gateway.DefaultOutboundQueue, "frames waiting for one client's writer")
	fs.IntVar(&gw.OutboundQueueBytes, "outbound-queue-bytes", gateway.DefaultOutboundQueueBytes, "bytes waiting for one client's writer")
	fs.StringVar((*string)(&gw.SlowConsumer), "slow-consumer", string(gateway.SlowConsumerDrop), "drop or disconnect when a client's queue is full")
	fs.DurationVar(&gw.SlowConsumerGrace, "slow-consumer-grace", gateway.DefaultSlowConsumerGrace, "how long a queue may overflow before the client is closed (drop policy)")
	fs.StringVar(&origins, "allowed-origins", "", "comma-separated browser origins allowed besides same-origin (\"*\": any)")
	fs.StringVar(&o.Server.APIKey, "api-key", "", "key of the push API (prefer FIRETOWER_API_KEY: flags show in ps); default: a random key, logged at start")
	fs.BoolVar(&o.Server.APIInsecure, "api-insecure", false, "open the push API without a key (only where nobody else can reach it)")
	fs.StringVar(&o.Server.APIAddr, "api-addr", "", "serve the HTTP push API on this address instead of under /api/ on --addr")
	fs.StringVar(&o.Server.GRPCAddr, "grpc-addr", DefaultGRPCAddr, "gRPC push API listen address HOST:PORT (empty or \"off\": no gRPC)")
	fs.StringVar(&o.Server.TLSCert, "tls-cert", "", "PEM certificate (chain): serve --addr over TLS (https, wss), and --api-addr and --grpc-addr unless --api-tls-cert is set; reread on SIGHUP")
	fs.StringVar(&o.Server.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&o.Server.APITLSCert, "api-tls-cert", "", "PEM certificate: serve --api-addr and --grpc-addr over TLS (instead of --tls-cert); reread on SIGHUP")
	fs.StringVar(&o.Server.APITLSKey, "api-tls-key", "", "PEM private key of --api-tls-cert")
	fs.BoolVar(&o.Server.DashboardOpen, "dashboard-open", false, "let anyone see /dashboard without the API key (connection lookup and disconnect still need it)")
	fs.BoolVar(&o.Server.Pprof, "pprof", false, "serve net/http/pprof under /debug/pprof/, behind the API key")
	fs.DurationVar(&gw.NodeInfoInterval, "node-info-interval", gateway.DefaultNodeInfoInterval, "how often this node describes itself to the cluster view (negative: never)")
	var jwtSecret string
	fs.StringVar(&jwtSecret, "jwt-secret", "", "require an HS256 JWT signed with this secret on every websocket (prefer FIRETOWER_JWT_SECRET: flags show in ps)")
	fs.StringVar(&o.Server.JWT.KeyFile, "jwt-key", "", "require an RS256/ES256 JWT verified with this PEM public key or JWKS file on every websocket")
	fs.StringVar(&o.Server.JWT.Audience, "jwt-audience", "", "required \"aud\" of the websocket tokens")
	fs.StringVar(&o.Server.JWT.Issuer, "jwt-issuer", "", "required \"iss\" of the websocket tokens")
	fs.DurationVar(&o.Server.JWT.Leeway, "jwt-leeway", 30*time.Second, "clock skew allowed on the tokens' exp and nbf")
	fs.IntVar(&gw.MaxConnections, "max-connections", 0, "websocket connections on this node, 503 above (0: no limit)")
	fs.IntVar(&gw.MaxConnectionsPerIP, "max-connections-per-ip", 0, "websocket connections from one IP address, 429 above (0: no limit)")
	fs.Float64Var(&gw.ConnectRate, "connect-rate", 0, "new websocket connections per second per IP address (IPv6: per /64), 429 with Retry-After above (0: no limit)")
	fs.IntVar(&gw.ConnectBurst, "connect-burst", 0, "burst of new connections above --connect-rate (0: the rate rounded up)")
	fs.Float64Var(&gw.PublishRate, "publish-rate", 0, "client publishes per second per connection, dropped above (v2 error 429; 0: no limit)")
	fs.IntVar(&gw.PublishBurst, "publish-burst", 0, "burst of client publishes above --publish-rate (0: the rate rounded up)")
	fs.TextVar(&o.LogLevel, "log-level", slog.LevelInfo, "debug, info, warn or error")
	fs.StringVar(&o.LogFormat, "log-format", "text", "text or json")

	ignored, err := parseLayers(fs, args, getenv, true)
	if err != nil {
		return nil, err
	}
	o.Ignored = ignored
	if isSet(fs, "broker-settle") {
		if o.Server.Broker, err = withSettle(o.Server.Broker, brokerSettle); err != nil {
			return nil, fmt.Errorf("%s: --broker-settle: %w", name, err)
		}
	}
	o.Server.QuietCounts = !announce
	o.Server.JWT.Secret = []byte(jwtSecret)
	if jwtSecret != "" && o.Server.JWT.KeyFile != "" {
		return nil, fmt.Errorf("%s: give --jwt-secret or --jwt-key, not both", name)
	}
	if o.Server.JWT.Leeway == 0 {
		o.Server.JWT.Leeway = -1 // auth's "no leeway"; 0 there means the default
	}
	if gw.NodeInfoInterval < 0 {
		gw.NodeInfoInterval = -1 // the gateway's "off"
	}
	if o.Server.GRPCAddr == "off" { // an empty variable would not override the default
		o.Server.GRPCAddr = ""
	}
	if origins != "" {
		for _, s := range strings.Split(origins, ",") {
			if s = strings.TrimSpace(s); s != "" {
				gw.AllowedOrigins = append(gw.AllowedOrigins, s)
			}
		}
	}
	if o.LogFormat != "text" && o.LogFormat != "json" {
		return nil, fmt.Errorf("%s: --log-format must be text or json, not %q", name, o.LogFormat)
	}
	if err := o.Server.Validate(); err != nil {
		return nil, err
	}
	return o, nil
}

// clusterIDFlag is --cluster-id: "auto", gateway.Config.ClusterID 0, or a
// node number 0..1023, where 0 is stored as 1024 (the Config's spelling of
// number 0, from the original's numbering 1..1024, which is accepted too).
type clusterIDFlag struct{ v *int64 }

func (f clusterIDFlag) String() string {
	if f.v == nil || *f.v == 0 {
		return "auto"
	}
	return strconv.FormatInt(*f.v%1024, 10)
}

func (f clusterIDFlag) Set(s string) error {
	if strings.EqualFold(strings.TrimSpace(s), "auto") {
		*f.v = 0
		return nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 || n > 1024 {
		return fmt.Errorf("%q is not auto or a node number 0..1023 (1024 means 0)", s)
	}
	if n == 0 {
		n = 1024
	}
	*f.v = n
	return nil
}

func (f clusterIDFlag) Get() any { return *f.v }

// parseLayers sets the flags of fs from the config file, the environment and
// args, in increasing precedence, and returns the ignored config-file keys.
// With defaultFile, ./fireTower.toml is read when it exists and no file is
// named.
func parseLayers(fs *flag.FlagSet, args []string, getenv func(string) string, defaultFile bool) ([]string, error) {
	var ignored []string
	path, explicit := findConfigPath(args, getenv, defaultFile)
	if path != "" {
		var err error
		if ignored, err = applyFile(fs, path, explicit); err != nil {
			return nil, err
		}
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" && f.Name != "config" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", envName(f.Name), err))
			}
		}
	})
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return ignored, nil
}

// envName maps a flag name to its environment variable.
func envName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// findConfigPath returns the config file named by --config or
// FIRETOWER_CONFIG, or (with defaultFile) the default file when it exists.
func findConfigPath(args []string, getenv func(string) string, defaultFile bool) (path string, explicit bool) {
	for i, arg := range args {
		if arg == "--" {
			break // the flags end here
		}
		if !strings.HasPrefix(arg, "-") {
			continue // a flag's value, such as --node-id config
		}
		a := strings.TrimLeft(arg, "-")
		if v, ok := strings.CutPrefix(a, "config="); ok {
			return v, true
		}
		if a == "config" && i+1 < len(args) {
			return args[i+1], true
		}
	}
	if v := getenv(EnvPrefix + "CONFIG"); v != "" {
		return v, true
	}
	if _, err := os.Stat(DefaultConfigFile); defaultFile && err == nil {
		return DefaultConfigFile, false
	}
	return "", false
}

// applyFile reads a TOML file whose keys are flag names in camelCase
// ("announceCounts") or kebab-case; the original's keys chanLens and
// heartbeat (whole seconds) are understood. It returns the ignored legacy
// keys.
func applyFile(fs *flag.FlagSet, path string, explicit bool) ([]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		if !explicit && errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	var m map[string]any
	if err := toml.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	var ignored []string
	for key, val := range m {
		if key == "topicServiceAddr" && fs.Name() == "gateway" && m["broker"] == nil {
			// The original gateway's topic manager address. serve stays
			// all-in-one with an original config file, as before.
			if err := fs.Set("broker", fmt.Sprintf("tm://%v", val)); err != nil {
				return nil, fmt.Errorf("config %s: %s: %w", path, key, err)
			}
			continue
		}
		if legacyKeys[key] {
			ignored = append(ignored, key)
			continue
		}
		name := kebab(key)
		if key == "chanLens" {
			name = "inbound-queue"
		}
		if fs.Lookup(name) == nil || name == "config" {
			return nil, fmt.Errorf("config %s: unknown key %q", path, key)
		}
		var s string
		switch v := val.(type) {
		case []any:
			parts := make([]string, len(v))
			for i, p := range v {
				parts[i] = fmt.Sprint(p)
			}
			s = strings.Join(parts, ",")
		case int64:
			s = fmt.Sprint(v)
			if isDurationFlag(fs, name) {
				s += "s" // the original wrote durations as whole seconds
			}
		default:
			s = fmt.Sprint(v)
		}
		if err := fs.Set(name, s); err != nil {
			return nil, fmt.Errorf("config %s: %s: %w", path, key, err)
		}
	}
	return ignored, nil
}

// isSet reports whether a flag was given on the command line, in the
// environment or in the config file.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func isDurationFlag(fs *flag.FlagSet, name string) bool {
	f := fs.Lookup(name)
	_, ok := f.Value.(flag.Getter).Get().(time.Duration)
	return ok
}

// kebab turns "announceCounts" into "announce-counts".
func kebab(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('-')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// NewLogger builds the process logger from the options.
func (o *Options) NewLogger(w io.Writer) *slog.Logger { return newLogger(w, o.LogLevel, o.LogFormat) }

func newLogger(w io.Writer, level slog.Level, format string) *slog.Logger {
	hopts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, hopts))
	}
	return slog.New(slog.NewTextHandler(w, hopts))
}
