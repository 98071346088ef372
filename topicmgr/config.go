package topicmgr

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/firetower-go/firetower/internal/cluster"
)

// DefaultAddr is where `firetower topicmanager` listens, as the original
// topicService did.
const DefaultAddr = "0.0.0.0:6666"

// Defaults applied to zero Config fields.
const (
	// DefaultLease is how long a gateway's counts outlive its connection
	// when it vanishes without saying goodbye: long enough to ride out a
	// network blip or a manager-side cut-off (the gateway reconnects within
	// its backoff cap and takes its state over), short enough that a dead
	// gateway's subscribers soon leave the counts.
	DefaultLease = 15 * time.Second
	// DefaultHeartbeat is the ping interval of both sides; a session from
	// which nothing is heard for HeartbeatMisses intervals is closed.
	DefaultHeartbeat = 5 * time.Second
	// DefaultHandshakeTimeout bounds the wait for a new connection's HELLO.
	DefaultHandshakeTimeout = 5 * time.Second
	// DefaultWriteTimeout bounds one write to a session; a gateway that does
	// not read for this long is cut off.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultQueueFrames bounds the frames waiting for one session's writer:
	// a few tens of milliseconds of a full-speed stream of small messages
	// (the frames are shared, immutable buffers; the queue holds references).
	DefaultQueueFrames = 65536
	// DefaultQueueBytes bounds the bytes waiting for one session's writer
	// (one frame larger than this is still accepted into an empty queue).
	DefaultQueueBytes = 64 << 20
)

// HeartbeatMisses is how many heartbeat intervals of silence end a session.
const HeartbeatMisses = 3

// Config configures a Server. The zero value is valid and means the
// documented defaults.
type Config struct {
	// NodeID names the manager in WELCOME and in logs. Default: the host
	// name and the process id.
	NodeID string
	// Lease is how long a disconnected gateway's counts are kept (default
	// DefaultLease). A gateway that says goodbye (its broker closed) is
	// dropped at once.
	Lease time.Duration
	// Heartbeat is the ping interval (default DefaultHeartbeat).
	Heartbeat        time.Duration
	HandshakeTimeout time.Duration
	WriteTimeout     time.Duration
	// MaxFrame is the longest frame accepted, in bytes after the length
	// prefix (default cluster.DefaultMaxFrame: a 1 MiB payload and 64 KiB
	// of headers). A longer frame ends the session before its body is read.
	MaxFrame int
	// QueueFrames and QueueBytes bound one session's outbound queue; a
	// session over either is cut off (its gateway reconnects and resyncs).
	QueueFrames int
	QueueBytes  int
	// Token is the shared cluster secret every HELLO must carry; empty
	// accepts any client (bind the manager to a private address then).
	Token string
	// TLS, if not nil, makes Serve speak TLS on its listeners (gateways
	// dial tms://). A GetCertificate may change the certificate while the
	// manager runs (`firetower topicmanager` rereads its files on SIGHUP).
	TLS *tls.Config
	// Logger receives structured logs. Default: slog.Default().
	Logger *slog.Logger
}

// Validate reports every nonsensical setting, joined into one error.
func (c *Config) Validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Lease", c.Lease}, {"Heartbeat", c.Heartbeat}, {"HandshakeTimeout", c.HandshakeTimeout}, {"WriteTimeout", c.WriteTimeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative", d.name))
		}
	}
	if c.Heartbeat > 0 && c.Heartbeat < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("Heartbeat %v is below 10ms", c.Heartbeat))
	}
	if c.MaxFrame != 0 && (c.MaxFrame < cluster.MinMaxFrame || c.MaxFrame > 1<<30) {
		errs = append(errs, fmt.Errorf("MaxFrame %d out of range %d..%d", c.MaxFrame, cluster.MinMaxFrame, 1<<30))
	}
	if c.QueueFrames < 0 || c.QueueBytes < 0 {
		errs = append(errs, errors.New("queue limits must not be negative"))
	}
	if len(c.NodeID) > cluster.MaxStr16 || len(c.Token) > cluster.MaxStr16 {
		errs = append(errs, fmt.Errorf("NodeID and Token are at most %d bytes", cluster.MaxStr16))
	}
	if len(errs) > 0 {
		return fmt.Errorf("topicmgr: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Lease, DefaultLease)
	def(&c.Heartbeat, DefaultHeartbeat)
	def(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	def(&c.WriteTimeout, DefaultWriteTimeout)
	if c.MaxFrame == 0 {
		c.MaxFrame = cluster.DefaultMaxFrame
	}
	if c.QueueFrames == 0 {
		c.QueueFrames = DefaultQueueFrames
	}
	if c.QueueBytes == 0 {
		c.QueueBytes = DefaultQueueBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.NodeID == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "topicmanager"
		}
		c.NodeID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	return c
}
