package tm

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/firetower-go/firetower/broker/internal/settle"
	"github.com/firetower-go/firetower/internal/cluster"
)

// Scheme is the URL scheme of the topic-manager broker:
// tm://host:port[,host:port...].
const Scheme = "tm"

// SchemeTLS is Scheme over TLS: tms://host:port[,...][?ca=FILE]. The
// managers' certificates are verified against the system roots, or against
// the PEM CA certificates in FILE only; each manager's host, as written in
// the list (name or IP address), must be in its certificate.
const SchemeTLS = "tms"

// Defaults applied to zero Config fields.
const (
	// DefaultDialTimeout bounds one TCP connect to a manager.
	DefaultDialTimeout = 2 * time.Second
	// DefaultHandshakeTimeout bounds the wait for WELCOME after HELLO.
	DefaultHandshakeTimeout = 5 * time.Second
	// DefaultHeartbeat is the ping interval until a manager's WELCOME says
	// its own; a manager silent for three intervals is considered gone.
	DefaultHeartbeat = 5 * time.Second
	// DefaultBackoffMin and DefaultBackoffMax bound the reconnect delay:
	// attempt n waits a uniformly random time in [0, min(Max, Min*2^n)]
	// ("full jitter"), so that gateways reconnecting to a restarted
	// manager spread out instead of arriving together.
	DefaultBackoffMin = 100 * time.Millisecond
	DefaultBackoffMax = 2 * time.Second
	// DefaultStartWait is how long Start waits for the first connection to
	// every manager before returning anyway (the broker keeps trying).
	DefaultStartWait = 3 * time.Second
	// DefaultWriteTimeout bounds one write to a manager.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultQueueFrames and DefaultQueueBytes bound the frames waiting for
	// one manager's writer; Publish waits for room (bounded by its context).
	DefaultQueueFrames = 8192
	DefaultQueueBytes  = 64 << 20
	// DefaultConfirmTimeout is how long a publish may wait for the
	// manager's CONFIRM before the connection is declared down: a
	// confirmation normally takes one round trip (well under a
	// millisecond on a LAN, tens of milliseconds under load), while a
	// manager that is paused, or a path that silently drops packets,
	// answers nothing and would otherwise be noticed only at the
	// heartbeat deadline (three heartbeats, 15 s), every publish of the
	// meantime lost. Publishes then fail fast while the link reconnects.
	DefaultConfirmTimeout = 2 * time.Second
)

// DefaultSettle is the settle window with the default backoff:
// settle.Default(BackoffMax), BackoffMax + 1 s.
const DefaultSettle = DefaultBackoffMax + settle.Margin

// Manager is one topic manager of the list.
type Manager struct {
	// Addr is the manager's host:port.
	Addr string
	// Key is the name the rendezvous hash uses for the manager: its ID when
	// the list gives one ("tm-1@10.0.0.5:6666"), otherwise Addr as written.
	// Every gateway must use the same keys, so that all of them pick the
	// same owner for a topic; an explicit id keeps ownership stable when
	// gateways reach a manager through different addresses.
	Key string
}

// Config configures a Broker or a Publisher. Managers is required; the zero
// value of every other field means its documented default.
type Config struct {
	// Managers is the list of topic managers. The order does not matter;
	// the set of keys must be the same on every gateway.
	Managers []Manager
	// Token is the shared cluster secret sent in HELLO (empty: none).
	Token string
	// TLS, if not nil, connects to the managers over TLS with this client
	// configuration; an empty ServerName is each manager's host.
	TLS *tls.Config

	DialTimeout      time.Duration
	HandshakeTimeout time.Duration
	Heartbeat        time.Duration
	WriteTimeout     time.Duration
	BackoffMin       time.Duration
	BackoffMax       time.Duration
	// StartWait bounds how long Start waits for the first connections.
	StartWait time.Duration
	// PublishWait is how long Publish and Count wait for the owner of a
	// topic to come back when its connection is down, before failing with
	// an error wrapping broker.ErrUnavailable. The default, 0, fails at
	// once: a publisher learns of an outage immediately instead of piling
	// up waiting callers.
	PublishWait time.Duration
	// ConfirmTimeout is how long a publish waits for its confirmation by
	// the manager before the connection is declared down and re-established
	// (default DefaultConfirmTimeout). Publish itself returns earlier if
	// its context ends.
	ConfirmTimeout time.Duration
	// Settle is how long, after a connection to a manager is restored
	// (not after the first one), publishes of the topics it owns keep
	// failing with an error wrapping broker.ErrUnavailable (or wait for
	// the end, within PublishWait) and Ready reports not ready: a
	// restarted manager knows no interest until the gateways have
	// reconnected and re-sent it, and a publish acknowledged before then
	// would reach none of them. Zero means BackoffMax + 1 s (DefaultSettle
	// with the default backoff); negative turns the window off. The URL
	// parameter settle=D sets it, settle=0 turns it off.
	Settle time.Duration
	// MaxFrame is the longest frame accepted from a manager (default
	// cluster.DefaultMaxFrame). Frames sent are bounded by each manager's
	// own limit, announced in WELCOME.
	MaxFrame    int
	QueueFrames int
	QueueBytes  int
	// Logger receives structured logs. Default: slog.Default().
	Logger *slog.Logger
}

// ParseURL parses "tm://[id@]host:port[,[id@]host:port...]" into a Config
// with the other fields at their defaults. Spaces around entries are
// trimmed; an empty list, an entry without a port, and a key given twice
// are errors.
//
// "tms://...[?ca=FILE]" connects over TLS (see SchemeTLS); the CA file is
// read here. Both take settle=D (Config.Settle; settle=0 turns the window
// off).
func ParseURL(s string) (Config, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || (scheme != Scheme && scheme != SchemeTLS) {
		return Config{}, fmt.Errorf("tm: broker URL %q does not start with %s:// or %s://", s, Scheme, SchemeTLS)
	}
	var cfg Config
	rest, query, _ := strings.Cut(rest, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		return Config{}, fmt.Errorf("tm: broker URL options %q: %w", query, err)
	}
	if vs, ok := q[settle.Param]; ok {
		if cfg.Settle, err = settle.ParseParam(vs[len(vs)-1]); err != nil {
			return Config{}, fmt.Errorf("tm: broker URL: %w", err)
		}
		delete(q, settle.Param)
	}
	if scheme == SchemeTLS {
		if cfg.TLS, err = parseTLSQuery(q); err != nil {
			return Config{}, err
		}
	} else if len(q) > 0 {
		return Config{}, fmt.Errorf("tm: broker URL %q: %s:// takes no option but %s", s, Scheme, settle.Param)
	}
	for _, entry := range strings.Split(rest, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		m := Manager{Addr: entry, Key: entry}
		if id, addr, ok := strings.Cut(entry, "@"); ok {
			m = Manager{Addr: strings.TrimSpace(addr), Key: strings.TrimSpace(id)}
		}
		cfg.Managers = append(cfg.Managers, m)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// parseTLSQuery builds the client TLS configuration of a tms:// URL from
// its options but settle.
func parseTLSQuery(q url.Values) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	for key := range q {
		if key != "ca" {
			return nil, fmt.Errorf("tm: unknown broker URL option %q (want ca=FILE or %s=D)", key, settle.Param)
		}
	}
	if file := q.Get("ca"); file != "" {
		pem, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("tm: CA file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tm: CA file %s holds no PEM certificate", file)
		}
	}
	return cfg, nil
}

// clientTLS wraps a connection to the manager at addr in TLS, or returns
// it as it is when c.TLS is nil.
func (c *Config) clientTLS(conn net.Conn, addr string) net.Conn {
	if c.TLS == nil {
		return conn
	}
	cfg := c.TLS.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(addr)
	}
	return tls.Client(conn, cfg)
}

// Validate reports every nonsensical setting, joined into one error.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Managers) == 0 {
		errs = append(errs, errors.New("no topic manager address"))
	}
	keys := make(map[string]bool)
	for _, m := range c.Managers {
		if _, port, err := net.SplitHostPort(m.Addr); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("manager address %q is not host:port", m.Addr))
		}
		if m.Key == "" {
			errs = append(errs, fmt.Errorf("manager %q has an empty key", m.Addr))
		}
		if keys[m.Key] {
			errs = append(errs, fmt.Errorf("manager key %q given twice", m.Key))
		}
		keys[m.Key] = true
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"DialTimeout", c.DialTimeout}, {"HandshakeTimeout", c.HandshakeTimeout}, {"Heartbeat", c.Heartbeat},
		{"WriteTimeout", c.WriteTimeout}, {"BackoffMin", c.BackoffMin}, {"BackoffMax", c.BackoffMax},
		{"StartWait", c.StartWait}, {"PublishWait", c.PublishWait}, {"ConfirmTimeout", c.ConfirmTimeout},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative", d.name))
		}
	}
	if c.BackoffMin > 0 && c.BackoffMax > 0 && c.BackoffMax < c.BackoffMin {
		errs = append(errs, fmt.Errorf("BackoffMax %v is below BackoffMin %v", c.BackoffMax, c.BackoffMin))
	}
	if c.MaxFrame != 0 && (c.MaxFrame < cluster.MinMaxFrame || c.MaxFrame > 1<<30) {
		errs = append(errs, fmt.Errorf("MaxFrame %d out of range %d..%d", c.MaxFrame, cluster.MinMaxFrame, 1<<30))
	}
	if c.QueueFrames < 0 || c.QueueBytes < 0 {
		errs = append(errs, errors.New("queue limits must not be negative"))
	}
	if len(c.Token) > cluster.MaxStr16 {
		errs = append(errs, fmt.Errorf("Token is longer than %d bytes", cluster.MaxStr16))
	}
	if len(errs) > 0 {
		return fmt.Errorf("tm: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.DialTimeout, DefaultDialTimeout)
	def(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	def(&c.Heartbeat, DefaultHeartbeat)
	def(&c.WriteTimeout, DefaultWriteTimeout)
	def(&c.BackoffMin, DefaultBackoffMin)
	def(&c.BackoffMax, max(DefaultBackoffMax, c.BackoffMin))
	def(&c.StartWait, DefaultStartWait)
	def(&c.ConfirmTimeout, DefaultConfirmTimeout)
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
	return c
}
