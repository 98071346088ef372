package redis

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/firetower-go/firetower/broker/internal/settle"
)

// Schemes of the broker URL: redis:// and, with TLS, rediss://.
const (
	Scheme    = "redis"
	SchemeTLS = "rediss"
)

// Defaults applied to zero Config fields.
const (
	// DefaultAddr is the Redis server of a zero Config.
	DefaultAddr = "127.0.0.1:6379"
	// DefaultPrefix starts every channel and key name, so that several
	// firetower clusters (or tests) can share one Redis.
	DefaultPrefix = "firetower"
	// DefaultLease is how long a node's subscriber counts outlive its last
	// refresh: a crashed gateway's subscribers leave the cluster-wide
	// counts this long after it died. A live node refreshes every Lease/3.
	DefaultLease = 15 * time.Second
	// DefaultHealthCheck is how long the subscription connection may stay
	// silent before the broker pings Redis; without an answer for another
	// interval the connection is considered dead and is re-established.
	DefaultHealthCheck = 3 * time.Second
	// DefaultBackoffMin and DefaultBackoffMax bound the delay between
	// attempts to re-establish the subscription connection: attempt n waits
	// a uniformly random time in [0, min(Max, Min*2^n)] (full jitter).
	DefaultBackoffMin = 100 * time.Millisecond
	DefaultBackoffMax = 2 * time.Second
	// DefaultStartWait bounds how long Start waits for the first
	// subscription connection before returning anyway (the broker keeps
	// trying in the background).
	DefaultStartWait = 3 * time.Second
	// DefaultDialTimeout bounds one TCP connect to Redis, and so how long a
	// Publish may take to fail when the server is unreachable.
	DefaultDialTimeout = 2 * time.Second
	// DefaultIOTimeout bounds one read or write of a command: a Redis that
	// stops answering fails a Publish or Count after this long.
	DefaultIOTimeout = 3 * time.Second
	// DefaultPublishQueue bounds the publishes waiting for their turn on
	// the publishing connection: with Redis slow or unreachable, a publish
	// beyond it fails at once (broker.ErrUnavailable, 503 in the push
	// API) instead of piling up callers and memory. At the pipeline's
	// batch size (512) it is 8 round trips of backlog.
	DefaultPublishQueue = 4096
)

// DefaultSettle is the settle window with the default backoff:
// settle.Default(BackoffMax), BackoffMax + 1 s.
const DefaultSettle = DefaultBackoffMax + settle.Margin

// Config configures a Broker. The zero value connects to 127.0.0.1:6379
// with every default.
type Config struct {
	// Options are go-redis's connection options: Addr, Username,
	// Password, DB, TLSConfig, pool sizes. The broker overrides the
	// settings its guarantees depend on: no command is retried
	// (MaxRetries -1, one dial attempt), since a retried PUBLISH whose
	// first attempt reached Redis would be delivered twice; context
	// deadlines are honoured. Zero DialTimeout, ReadTimeout and
	// WriteTimeout mean DefaultDialTimeout and DefaultIOTimeout.
	Options goredis.Options
	// Prefix starts every channel and key the broker uses (default
	// DefaultPrefix). Nodes of one cluster must use the same prefix; it
	// must not contain '{' or '}' (the count keys carry a hash tag).
	Prefix string
	// Lease is how long a node's counts survive it (default DefaultLease).
	Lease time.Duration
	// Sharded carries topics with SSUBSCRIBE/SPUBLISH (Redis 7 sharded
	// Pub/Sub) instead of SUBSCRIBE/PUBLISH. Commands stay on classic
	// Pub/Sub, which reaches every node. See the package documentation for
	// what was tested.
	Sharded bool

	HealthCheck time.Duration
	BackoffMin  time.Duration
	BackoffMax  time.Duration
	StartWait   time.Duration
	// Settle is how long, after the subscription connection is restored
	// (not after the first connection), Publish keeps failing with an
	// error wrapping broker.ErrUnavailable and Ready reports not ready:
	// the other nodes, which lost Redis too, have re-subscribed by then,
	// so that no publish acknowledged meanwhile misses them. Zero means
	// BackoffMax + 1 s (DefaultSettle with the default backoff); negative
	// turns the window off (publishes are accepted as soon as Redis
	// answers, and may then reach no other node). The URL parameter
	// settle=D sets it, settle=0 turns it off.
	Settle time.Duration
	// PublishQueue is the most publishes that may wait to be sent (default
	// DefaultPublishQueue); a publish that finds the queue full fails at
	// once with an error wrapping broker.ErrUnavailable.
	PublishQueue int
	// Logger receives structured logs. Default: slog.Default().
	Logger *slog.Logger
}

// Query parameters of the broker URL read by this package; every other
// parameter is one of go-redis's (dial_timeout, pool_size, ...).
const (
	paramPrefix  = "prefix"
	paramLease   = "lease"
	paramSharded = "sharded"
	paramSettle  = settle.Param
)

// ParseURL parses
//
//	redis://[[user]:password@]host[:port][/db][?prefix=P&lease=15s&sharded=true&settle=3s]
//
// (rediss:// for TLS) into a Config with the other fields at their
// defaults. The port defaults to 6379, the database to 0. Any other query
// parameter is go-redis's (see its ParseURL), such as dial_timeout or
// pool_size; an unknown one is an error.
func ParseURL(s string) (Config, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Config{}, fmt.Errorf("redis: broker URL: %w", err)
	}
	if u.Scheme != Scheme && u.Scheme != SchemeTLS {
		return Config{}, fmt.Errorf("redis: broker URL %q does not start with %s:// or %s://", s, Scheme, SchemeTLS)
	}
	if u.Host == "" {
		return Config{}, fmt.Errorf("redis: broker URL %q names no host", s)
	}
	var cfg Config
	q := u.Query()
	if v, ok := take(q, paramPrefix); ok {
		cfg.Prefix = v
		if v == "" {
			return Config{}, errors.New("redis: broker URL: empty prefix")
		}
	}
	if v, ok := take(q, paramLease); ok {
		if cfg.Lease, err = time.ParseDuration(v); err != nil || cfg.Lease <= 0 {
			return Config{}, fmt.Errorf("redis: broker URL: lease %q is not a positive duration", v)
		}
	}
	if v, ok := take(q, paramSharded); ok {
		if cfg.Sharded, err = strconv.ParseBool(v); err != nil {
			return Config{}, fmt.Errorf("redis: broker URL: sharded %q is not a boolean", v)
		}
	}
	if v, ok := take(q, paramSettle); ok {
		if cfg.Settle, err = settle.ParseParam(v); err != nil {
			return Config{}, fmt.Errorf("redis: broker URL: %w", err)
		}
	}
	u.RawQuery = q.Encode()
	opts, err := goredis.ParseURL(u.String())
	if err != nil {
		return Config{}, fmt.Errorf("redis: broker URL: %w", err)
	}
	cfg.Options = *opts
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// take removes a query parameter given once and returns its value.
func take(q url.Values, key string) (string, bool) {
	vs, ok := q[key]
	if !ok {
		return "", false
	}
	delete(q, key)
	return vs[len(vs)-1], true
}

// maxPrefix bounds Config.Prefix: channel and key names stay short.
const maxPrefix = 200

// Validate reports every nonsensical setting, joined into one error.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Prefix) > maxPrefix {
		errs = append(errs, fmt.Errorf("Prefix is longer than %d bytes", maxPrefix))
	}
	if strings.ContainsAny(c.Prefix, "{}") {
		errs = append(errs, fmt.Errorf("Prefix %q contains '{' or '}'", c.Prefix))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"Lease", c.Lease}, {"HealthCheck", c.HealthCheck}, {"BackoffMin", c.BackoffMin},
		{"BackoffMax", c.BackoffMax}, {"StartWait", c.StartWait},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative", d.name))
		}
	}
	if c.PublishQueue < 0 {
		errs = append(errs, errors.New("PublishQueue must not be negative"))
	}
	if c.Lease > 0 && c.Lease < minLease {
		errs = append(errs, fmt.Errorf("Lease %v is below %v", c.Lease, minLease))
	}
	if c.BackoffMin > 0 && c.BackoffMax > 0 && c.BackoffMax < c.BackoffMin {
		errs = append(errs, fmt.Errorf("BackoffMax %v is below BackoffMin %v", c.BackoffMax, c.BackoffMin))
	}
	if len(errs) > 0 {
		return fmt.Errorf("redis: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

// minLease keeps the refresh interval (Lease/3) well above a round trip.
const minLease = 300 * time.Millisecond

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	def(&c.Lease, DefaultLease)
	def(&c.HealthCheck, DefaultHealthCheck)
	def(&c.BackoffMin, DefaultBackoffMin)
	def(&c.BackoffMax, max(DefaultBackoffMax, c.BackoffMin))
	def(&c.StartWait, DefaultStartWait)
	if c.PublishQueue == 0 {
		c.PublishQueue = DefaultPublishQueue
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	o := &c.Options
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	def(&o.DialTimeout, DefaultDialTimeout)
	def(&o.ReadTimeout, DefaultIOTimeout)
	def(&o.WriteTimeout, DefaultIOTimeout)
	o.MaxRetries = -1
	o.DialerRetries = 1
	o.ContextTimeoutEnabled = true
	return c
}
