package nats

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/firetower-go/firetower/broker/internal/settle"
)

// Schemes of the broker URL: nats:// and, with TLS, tls://.
const (
	Scheme    = "nats"
	SchemeTLS = "tls"
)

// Defaults applied to zero Config fields.
const (
	// DefaultURL is the server of a zero Config.
	DefaultURL = "nats://127.0.0.1:4222"
	// DefaultPrefix is the first token(s) of every subject, so that several
	// firetower clusters (or tests) can share NATS servers.
	DefaultPrefix = "firetower"
	// DefaultHeartbeat is how often a node announces itself to the others;
	// a node not heard of for three heartbeats is gone from the membership
	// (and no Count waits for its answer).
	DefaultHeartbeat = time.Second
	// DefaultCountTimeout bounds how long Count waits for the other nodes'
	// answers; a node that has not answered by then is left out of the sum.
	DefaultCountTimeout = 500 * time.Millisecond
	// DefaultPingInterval is how often the client pings the server; two
	// unanswered pings end the connection, which is then re-established.
	DefaultPingInterval = 2 * time.Second
	// DefaultBackoffMin and DefaultBackoffMax bound the reconnect delay:
	// attempt n waits a uniformly random time in [0, min(Max, Min*2^n)]
	// (full jitter).
	DefaultBackoffMin = 100 * time.Millisecond
	DefaultBackoffMax = 2 * time.Second
	// DefaultDialTimeout bounds one connection attempt.
	DefaultDialTimeout = 2 * time.Second
	// DefaultQueueLen bounds the messages received but not yet handed to
	// the gateway; beyond it NATS's client drops them (a slow consumer,
	// counted in Stats).
	DefaultQueueLen = 8192
)

// DefaultSettle is the settle window with the default backoff:
// settle.Default(BackoffMax), BackoffMax + 1 s.
const DefaultSettle = DefaultBackoffMax + settle.Margin

// Config configures a Broker. The zero value connects to
// nats://127.0.0.1:4222 with every default.
type Config struct {
	// Servers are the NATS server URLs (nats://[user:password@]host:port,
	// tls://...). Default: DefaultURL.
	Servers []string
	// Options are extra nats.go options (credentials, TLS, a name), applied
	// before the broker's own: the broker sets the reconnect, ping, echo
	// and buffer options its guarantees depend on, and the handlers.
	Options []natsgo.Option
	// Prefix is the subject prefix, one or more tokens without wildcards
	// (default DefaultPrefix). Nodes of one cluster must use the same.
	Prefix string

	Heartbeat    time.Duration
	CountTimeout time.Duration
	PingInterval time.Duration
	BackoffMin   time.Duration
	BackoffMax   time.Duration
	DialTimeout  time.Duration
	QueueLen     int
	// Settle is how long, after the connection is restored (not after the
	// first connection), Publish keeps failing with an error wrapping
	// broker.ErrUnavailable and Ready reports not ready: the other nodes,
	// which lost the server too, have reconnected and re-subscribed by
	// then, so that no publish acknowledged meanwhile misses them. Zero
	// means BackoffMax + 1 s (DefaultSettle with the default backoff);
	// negative turns the window off. The URL parameter settle=D sets it,
	// settle=0 turns it off.
	Settle time.Duration
	// Logger receives structured logs. Default: slog.Default().
	Logger *slog.Logger
}

// Query parameters of the broker URL: paramPrefix sets Prefix,
// paramSettle Settle.
const (
	paramPrefix = "prefix"
	paramSettle = settle.Param
)

// ParseURL parses
//
//	nats://[user:password@]host[:port][,[user:password@]host[:port]...][?prefix=P&settle=3s]
//
// (tls:// for TLS) into a Config with the other fields at their defaults.
// The port defaults to 4222. Every entry is a server of the same NATS
// cluster; the client connects to one and fails over to the others.
func ParseURL(s string) (Config, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || (scheme != Scheme && scheme != SchemeTLS) {
		return Config{}, fmt.Errorf("nats: broker URL %q does not start with %s:// or %s://", s, Scheme, SchemeTLS)
	}
	var cfg Config
	if list, query, ok := strings.Cut(rest, "?"); ok {
		rest = list
		q, err := url.ParseQuery(query)
		if err != nil {
			return Config{}, fmt.Errorf("nats: broker URL: %w", err)
		}
		for key, vs := range q {
			switch key {
			case paramPrefix:
				cfg.Prefix = vs[len(vs)-1]
				if cfg.Prefix == "" {
					return Config{}, errors.New("nats: broker URL: empty prefix")
				}
			case paramSettle:
				if cfg.Settle, err = settle.ParseParam(vs[len(vs)-1]); err != nil {
					return Config{}, fmt.Errorf("nats: broker URL: %w", err)
				}
			default:
				return Config{}, fmt.Errorf("nats: broker URL: unknown parameter %q", key)
			}
		}
	}
	for _, entry := range strings.Split(rest, ",") {
		entry = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(entry), scheme+"://"))
		if entry == "" {
			continue
		}
		u, err := url.Parse(scheme + "://" + entry)
		if err != nil || u.Hostname() == "" || (u.Path != "" && u.Path != "/") {
			return Config{}, fmt.Errorf("nats: broker URL: bad server %q", entry)
		}
		if u.Port() == "" {
			u.Host = net.JoinHostPort(u.Hostname(), "4222")
		}
		u.Path = ""
		cfg.Servers = append(cfg.Servers, u.String())
	}
	if len(cfg.Servers) == 0 {
		return Config{}, fmt.Errorf("nats: broker URL %q names no server", s)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// maxPrefix bounds Config.Prefix: subjects stay short.
const maxPrefix = 200

// Validate reports every nonsensical setting, joined into one error.
func (c *Config) Validate() error {
	var errs []error
	if c.Prefix != "" {
		if err := validPrefix(c.Prefix); err != nil {
			errs = append(errs, err)
		}
	}
	for _, s := range c.Servers {
		if s == "" {
			errs = append(errs, errors.New("empty server URL"))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"Heartbeat", c.Heartbeat}, {"CountTimeout", c.CountTimeout}, {"PingInterval", c.PingInterval},
		{"BackoffMin", c.BackoffMin}, {"BackoffMax", c.BackoffMax}, {"DialTimeout", c.DialTimeout},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative", d.name))
		}
	}
	if c.BackoffMin > 0 && c.BackoffMax > 0 && c.BackoffMax < c.BackoffMin {
		errs = append(errs, fmt.Errorf("BackoffMax %v is below BackoffMin %v", c.BackoffMax, c.BackoffMin))
	}
	if c.QueueLen < 0 {
		errs = append(errs, errors.New("QueueLen must not be negative"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("nats: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

// validPrefix accepts literal subject tokens: no wildcard, no whitespace,
// no empty token.
func validPrefix(p string) error {
	if len(p) > maxPrefix {
		return fmt.Errorf("Prefix is longer than %d bytes", maxPrefix)
	}
	for _, tok := range strings.Split(p, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n\f\v*>") {
			return fmt.Errorf("Prefix %q is not a literal NATS subject (empty token, wildcard or whitespace)", p)
		}
	}
	return nil
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if len(c.Servers) == 0 {
		c.Servers = []string{DefaultURL}
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	def(&c.Heartbeat, DefaultHeartbeat)
	def(&c.CountTimeout, DefaultCountTimeout)
	def(&c.PingInterval, DefaultPingInterval)
	def(&c.BackoffMin, DefaultBackoffMin)
	def(&c.BackoffMax, max(DefaultBackoffMax, c.BackoffMin))
	def(&c.DialTimeout, DefaultDialTimeout)
	if c.QueueLen == 0 {
		c.QueueLen = DefaultQueueLen
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
