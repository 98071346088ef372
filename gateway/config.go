package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/protocol"
)

// SlowConsumerPolicy says what happens when a connection's outbound queue is
// full.
type SlowConsumerPolicy string

// Slow-consumer policies.
const (
	// SlowConsumerDrop drops the new frame and counts it; if the queue stays
	// full for longer than Config.SlowConsumerGrace the connection is closed
	// with code 4008. This is the default.
	SlowConsumerDrop SlowConsumerPolicy = "drop"
	// SlowConsumerDisconnect closes the connection with code 4008 at the
	// first overflow.
	SlowConsumerDisconnect SlowConsumerPolicy = "disconnect"
)

// Defaults applied to zero Config fields.
const (
	// DefaultHeartbeatInterval is how often a connection gets the v1
	// "heartbeat" text frame (v2: {"type":"ping"}) and a websocket ping, as
	// in the original's example configuration.
	DefaultHeartbeatInterval = 30 * time.Second
	// DefaultPongTimeout is how long after a heartbeat a silent client is
	// still considered alive: a connection from which no frame (a pong
	// included) arrives for HeartbeatInterval+PongTimeout is closed.
	DefaultPongTimeout = 10 * time.Second
	// DefaultWriteTimeout bounds one write to a client; a client that does
	// not read for this long is disconnected.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultHandshakeTimeout bounds the websocket upgrade.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultReadLimit is the largest client message accepted (close 1009
	// above it).
	DefaultReadLimit = 64 << 10
	// DefaultMaxMessageSize is the largest payload Publish accepts.
	DefaultMaxMessageSize = 1 << 20
	// DefaultMaxSubscriptions bounds the topics one connection may hold.
	DefaultMaxSubscriptions = 128
	// DefaultInboundQueue is the original's chanLens: client frames waiting
	// for the callbacks.
	DefaultInboundQueue = 64
	// DefaultReadTimeout is how long the reader waits on a full inbound
	// queue before it gives the frame to the ReadTimeoutHandler (the
	// original used 3 s).
	DefaultReadTimeout = 3 * time.Second
	// DefaultOutboundQueue bounds the frames waiting for one connection's
	// writer.
	DefaultOutboundQueue = 256
	// DefaultOutboundQueueBytes bounds the bytes waiting for one connection's
	// writer (a single frame larger than this is still accepted into an
	// empty queue).
	DefaultOutboundQueueBytes = 4 << 20
	// DefaultSlowConsumerGrace is how long a queue may stay in overflow
	// before the connection is closed under SlowConsumerDrop.
	DefaultSlowConsumerGrace = 5 * time.Second
	// DefaultPublishTimeout bounds a publish to the broker.
	DefaultPublishTimeout = 5 * time.Second
	// DefaultPublishQueue bounds the messages of a node waiting for the
	// broker (sender.go): at 1 KiB each, 16 MiB at most.
	DefaultPublishQueue = 16384
	// DefaultWorkers is the most goroutines running the callbacks of netpoll
	// connections at once (workers.go): as many callbacks may block before
	// other connections wait.
	DefaultWorkers = 256
	// DefaultConnectRateMaxAddresses is the default
	// Config.ConnectRateMaxAddresses: a few MiB of buckets at most.
	DefaultConnectRateMaxAddresses = 1 << 16
	// DefaultCloseGrace is how long the server waits for the client's close
	// frame after sending its own before it drops the TCP connection.
	DefaultCloseGrace = time.Second
)

// Config configures a Gateway. The zero value is valid and means the
// documented defaults.
type Config struct {
	// NodeID names this node to the broker and to other nodes. It must stay
	// the same across restarts behind NAT or load balancers. Default: the
	// host name, the process id and a random suffix.
	NodeID string
	// ClusterID is the node number in this node's message ids (the
	// snowflake ids: 10 bits, 0..1023), which must differ between the
	// nodes of a cluster. Default 0: automatic, a free number claimed
	// through the broker at start (Gateway.ClusterID says which). 1..1023:
	// that number; 1024 is number 0 (the original numbered 1..1024). New
	// fails with ErrClusterIDTaken when another node holds the number.
	ClusterID int64
	// ClusterIDWait is how long New gives its claim of a node number to
	// reach the other nodes before it checks that nobody else holds the
	// number (at most 10 s). Default: 0 for the in-process broker (no
	// wait), DefaultClusterIDWait for the others.
	ClusterIDWait time.Duration
	// Broker links this node to the others. Default: an in-process broker
	// (a single-node deployment).
	Broker broker.Broker
	// Logger receives structured logs. Default: slog.Default().
	Logger *slog.Logger

	// AllowedOrigins lists the browser origins ("https://app.example.com")
	// allowed to open a websocket with Gateway.Upgrade, besides the
	// same-origin requests that are always allowed. "*" allows every origin;
	// "https://*.example.com" allows its subdomains. Requests without an
	// Origin header (non-browser clients) are accepted.
	AllowedOrigins []string

	HeartbeatInterval time.Duration
	PongTimeout       time.Duration
	WriteTimeout      time.Duration
	HandshakeTimeout  time.Duration
	CloseGrace        time.Duration
	PublishTimeout    time.Duration

	// ReadLimit is the largest client message in bytes (default 64 KiB).
	ReadLimit int64
	// MaxMessageSize is the largest payload Publish accepts (default 1 MiB).
	MaxMessageSize int
	// MaxTopicLength is the longest topic in bytes (default 255).
	MaxTopicLength int
	// MaxSubscriptions bounds topics per connection (default 128; -1 means
	// no limit).
	MaxSubscriptions int

	// InboundQueue is the original's chanLens (default 64).
	InboundQueue int
	// ReadTimeout is the wait on a full inbound queue before the
	// ReadTimeoutHandler fires (default 3 s).
	ReadTimeout time.Duration

	OutboundQueue      int
	OutboundQueueBytes int
	SlowConsumer       SlowConsumerPolicy
	SlowConsumerGrace  time.Duration

	// NodeInfoInterval is how often the node describes itself to the
	// others (Gateway.Nodes); default DefaultNodeInfoInterval, -1 turns the
	// broadcast off.
	NodeInfoInterval time.Duration
	// Version is reported in the node's description (NodeInfo.Version).
	Version string
	// Authenticator, if set, checks every Gateway.Upgrade (HTTP 401 without
	// valid credentials) and gives the connection BuildTower makes of it its
	// UserId, topic grants and expiry (see Identity). Connections upgraded
	// by other means are not checked. Default: none, every client is
	// accepted. Package auth implements it for JWTs.
	Authenticator Authenticator

	// MaxConnections bounds the connections of this node; Upgrade answers
	// 503 above it. Default 0: no limit.
	MaxConnections int
	// MaxConnectionsPerIP bounds the connections from one client IP
	// address; Upgrade answers 429 above it. Default 0: no limit (clients
	// behind one NAT or proxy share an address).
	MaxConnectionsPerIP int
	// ConnectRate is the sustained new websocket upgrades per second one
	// client address may make, with bursts of ConnectBurst; Upgrade answers
	// 429 with Retry-After above it (Stats.ConnRateLimited). An IPv6
	// address is counted with its whole /64. Default 0: no limit.
	ConnectRate float64
	// ConnectBurst is the connection token bucket's size (default:
	// ConnectRate rounded up, at least 1).
	ConnectBurst int
	// ConnectRateMaxAddresses bounds the addresses whose connection rate is
	// tracked at once (default DefaultConnectRateMaxAddresses, about 100
	// bytes each). An address is forgotten once its bucket has refilled;
	// while the table is full of addresses still refilling, upgrades from
	// new addresses get 429 too.
	ConnectRateMaxAddresses int
	// PublishRate is the sustained client frames per second one connection
	// may hand to the ReadHandler (publishes), with bursts of PublishBurst;
	// above it the frame is dropped, counted (Stats.RateLimited) and
	// answered with a v2 error 429. Default 0: no limit.
	PublishRate float64
	// PublishBurst is the token bucket's size (default: PublishRate rounded
	// up, at least 1).
	PublishBurst int

	// Transport is how connections are served once BuildTower has them:
	// TransportGoroutine (the default) keeps gorilla's connection with a
	// reader and a writer goroutine each; TransportNetpoll (Linux) takes the
	// socket away from gorilla to the gateway's epoll pollers, so an idle
	// connection holds no goroutine and no buffer, and the handlers run on
	// the worker pool (Workers), never on a poller. Connections netpoll
	// cannot take (TLS, other systems) stay on goroutines.
	Transport Transport
	// Pollers is the number of epoll loops of the netpoll transport
	// (default: GOMAXPROCS). Each is one goroutine serving its share of
	// the connections.
	Pollers int
	// Workers bounds the goroutines that run the callbacks of netpoll
	// connections (default DefaultWorkers). They start when needed; a
	// callback that blocks holds one.
	Workers int
	// PublishQueue bounds the messages waiting for the broker; a publish
	// that finds its share full fails at once with ErrPublishQueueFull
	// (default DefaultPublishQueue).
	PublishQueue int

	// Observer, if set, receives the timings of the publish path (fan-out
	// and broker publish) for metrics. Default: none.
	Observer Observer
}

// Validate reports every nonsensical setting, joined into one error.
func (c *Config) Validate() error {
	var errs []error
	if c.ClusterID < 0 || c.ClusterID > 1024 {
		errs = append(errs, fmt.Errorf("ClusterID %d out of range 0..1024 (0: automatic)", c.ClusterID))
	}
	if c.ClusterIDWait < 0 || c.ClusterIDWait > maxClusterIDWait {
		errs = append(errs, fmt.Errorf("ClusterIDWait %v out of range 0..%v", c.ClusterIDWait, maxClusterIDWait))
	}
	for name, d := range map[string]time.Duration{
		"HeartbeatInterval": c.HeartbeatInterval, "PongTimeout": c.PongTimeout,
		"WriteTimeout": c.WriteTimeout, "HandshakeTimeout": c.HandshakeTimeout,
		"CloseGrace": c.CloseGrace, "PublishTimeout": c.PublishTimeout,
		"ReadTimeout": c.ReadTimeout, "SlowConsumerGrace": c.SlowConsumerGrace,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative", name))
		}
	}
	for name, n := range map[string]int64{
		"ReadLimit": c.ReadLimit, "MaxMessageSize": int64(c.MaxMessageSize),
		"MaxTopicLength": int64(c.MaxTopicLength), "InboundQueue": int64(c.InboundQueue),
		"OutboundQueue": int64(c.OutboundQueue), "OutboundQueueBytes": int64(c.OutboundQueueBytes),
		"Workers": int64(c.Workers), "PublishQueue": int64(c.PublishQueue),
	} {
		if n < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative", name))
		}
	}
	for name, n := range map[string]int{
		"MaxConnections": c.MaxConnections, "MaxConnectionsPerIP": c.MaxConnectionsPerIP, "PublishBurst": c.PublishBurst,
		"ConnectBurst": c.ConnectBurst, "ConnectRateMaxAddresses": c.ConnectRateMaxAddresses,
	} {
		if n < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative", name))
		}
	}
	if c.PublishRate < 0 {
		errs = append(errs, fmt.Errorf("PublishRate must not be negative"))
	}
	if !(c.ConnectRate >= 0) || math.IsInf(c.ConnectRate, 0) {
		errs = append(errs, fmt.Errorf("ConnectRate %v must be 0 (no limit) or a positive number", c.ConnectRate))
	}
	if c.NodeInfoInterval < -1 {
		errs = append(errs, fmt.Errorf("NodeInfoInterval must be -1 (off), 0 (default) or positive"))
	}
	if c.MaxSubscriptions < -1 {
		errs = append(errs, fmt.Errorf("MaxSubscriptions must be -1 (no limit), 0 (default) or positive"))
	}
	switch c.SlowConsumer {
	case "", SlowConsumerDrop, SlowConsumerDisconnect:
	default:
		errs = append(errs, fmt.Errorf("SlowConsumer %q is not %q or %q", c.SlowConsumer, SlowConsumerDrop, SlowConsumerDisconnect))
	}
	if c.Pollers < 0 {
		errs = append(errs, fmt.Errorf("Pollers must not be negative"))
	}
	switch c.Transport {
	case "", TransportGoroutine, TransportNetpoll:
	default:
		errs = append(errs, fmt.Errorf("Transport %q is not %q or %q", c.Transport, TransportGoroutine, TransportNetpoll))
	}
	if c.HeartbeatInterval > 0 && c.HeartbeatInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("HeartbeatInterval %v is below 100ms", c.HeartbeatInterval))
	}
	for _, o := range c.AllowedOrigins {
		if o != "*" && !strings.Contains(o, "://") {
			errs = append(errs, fmt.Errorf("allowed origin %q must be \"*\" or scheme://host[:port]", o))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("gateway: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

// Transport names how a gateway serves its connections (Config.Transport).
type Transport string

// The transports.
const (
	TransportGoroutine Transport = "goroutine"
	TransportNetpoll   Transport = "netpoll"
)

// defaultTransport is the Transport of a Config that names none; tests
// change it to run the whole suite on the other transport.
var defaultTransport = TransportGoroutine

// withDefaults returns a copy of c with every zero field set to its default.
func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	defInt := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	def(&c.HeartbeatInterval, DefaultHeartbeatInterval)
	def(&c.PongTimeout, DefaultPongTimeout)
	def(&c.WriteTimeout, DefaultWriteTimeout)
	def(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	def(&c.CloseGrace, DefaultCloseGrace)
	def(&c.PublishTimeout, DefaultPublishTimeout)
	def(&c.ReadTimeout, DefaultReadTimeout)
	def(&c.SlowConsumerGrace, DefaultSlowConsumerGrace)
	def(&c.NodeInfoInterval, DefaultNodeInfoInterval)
	if c.ReadLimit == 0 {
		c.ReadLimit = DefaultReadLimit
	}
	defInt(&c.MaxMessageSize, DefaultMaxMessageSize)
	defInt(&c.MaxTopicLength, protocol.DefaultMaxTopicLength)
	defInt(&c.MaxSubscriptions, DefaultMaxSubscriptions)
	defInt(&c.InboundQueue, DefaultInboundQueue)
	defInt(&c.OutboundQueue, DefaultOutboundQueue)
	defInt(&c.OutboundQueueBytes, DefaultOutboundQueueBytes)
	defInt(&c.Workers, DefaultWorkers)
	defInt(&c.PublishQueue, DefaultPublishQueue)
	if c.PublishRate > 0 && c.PublishBurst == 0 {
		c.PublishBurst = max(1, int(math.Ceil(c.PublishRate)))
	}
	if c.ConnectRate > 0 && c.ConnectBurst == 0 {
		c.ConnectBurst = max(1, int(math.Ceil(c.ConnectRate)))
	}
	defInt(&c.ConnectRateMaxAddresses, DefaultConnectRateMaxAddresses)
	if c.SlowConsumer == "" {
		c.SlowConsumer = SlowConsumerDrop
	}
	if c.Transport == "" {
		c.Transport = defaultTransport
	}
	if c.Transport == TransportNetpoll && !netpollSupported {
		c.Transport = TransportGoroutine
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
