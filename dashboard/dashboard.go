// Package dashboard is the runtime web dashboard of a firetower node, served
// at /dashboard on every gateway: the cluster at a glance (every node of the
// gateway's cluster view, the topic managers), traffic charts, the busiest
// topics with search and per-node detail, and a lookup of this node's
// connections with a cluster-wide "disconnect".
//
// The page, its script and its style are embedded in the binary (no CDN, no
// build step); the charts are drawn on canvas by the page's own script. The
// page gets a snapshot every second over Server-Sent Events
// (/dashboard/events): a sampler goroutine reads the gateway's counters
// once per second, keeps the last ten minutes of 1-second samples in a ring
// buffer, and encodes one snapshot per second that every open stream shares.
//
// Access: the API key (internal/apikey: "Authorization: Bearer KEY" or
// "X-API-Key"), or a session cookie set by the login form (HttpOnly,
// SameSite=Strict, holding an expiry and an HMAC keyed by the API key, never
// the key). Config.Open opens the views of the system to anyone; looking up
// and disconnecting connections always needs the key. Config.Insecure
// (the server's --api-insecure) opens everything.
package dashboard

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/firetower-go/firetower/gateway"
)

// Defaults applied to zero Config fields.
const (
	// DefaultMaxStreams bounds the open event streams: each is a goroutine
	// and a connection that the node holds for as long as a page is open.
	DefaultMaxStreams = 16
	// DefaultInterval is the sampling period: one chart point and one
	// snapshot per stream per interval.
	DefaultInterval = time.Second
	// DefaultHistory is how many samples the charts keep: ten minutes.
	DefaultHistory = 600
	// DefaultSessionTTL is how long a login lasts.
	DefaultSessionTTL = 12 * time.Hour
)

// writeWait bounds one write to an event stream: a page that does not read
// for this long is dropped (it reconnects by itself when it can).
const writeWait = 10 * time.Second

// Config configures a Dashboard.
type Config struct {
	// Gateway is the node the dashboard shows (required).
	Gateway *gateway.Gateway
	// APIKey is the key that opens the dashboard (required unless
	// Insecure).
	APIKey string
	// Open lets anyone see the system's views (cluster, charts, topics)
	// without the key; connection lookup and disconnect still need it.
	Open bool
	// Insecure opens everything without a key (the server's
	// --api-insecure).
	Insecure bool
	// Logger receives the dashboard's logs (default slog.Default()).
	Logger *slog.Logger
	// MaxStreams bounds the open event streams (default DefaultMaxStreams);
	// one more is refused with 503.
	MaxStreams int
	// Interval is the sampling period (default DefaultInterval).
	Interval time.Duration
	// History is how many samples are kept (default DefaultHistory).
	History int
	// SessionTTL is how long a login lasts (default DefaultSessionTTL).
	SessionTTL time.Duration
}

// Validate reports a missing gateway or key and negative settings.
func (c *Config) Validate() error {
	var errs []error
	if c.Gateway == nil {
		errs = append(errs, errors.New("no gateway"))
	}
	if c.APIKey == "" && !c.Insecure {
		errs = append(errs, errors.New("no API key (set one, or Insecure)"))
	}
	if c.MaxStreams < 0 || c.Interval < 0 || c.History < 0 || c.SessionTTL < 0 {
		errs = append(errs, errors.New("MaxStreams, Interval, History and SessionTTL must not be negative"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("dashboard: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

// Dashboard serves the dashboard of one gateway. Build it with New, mount it
// with Register, start the sampler with Start and stop everything with
// Close.
//
// Lock order: sampleMu -> the gateway's locks -> mu. Dashboard.mu is a
// leaf: it is never held while calling the gateway or writing to a stream.
type Dashboard struct {
	cfg  Config
	log  *slog.Logger
	g    *gateway.Gateway
	auth auth

	mu       sync.Mutex
	ring     []Sample // History slots; the last n samples end before ring[next]
	n, next  int
	snapshot []byte        // the last encoded snapshot event, when streams were open
	tick     chan struct{} // closed and replaced after every sample
	streams  int
	started  bool
	closed   bool

	sampleMu sync.Mutex // serialises sample
	rates    rateState  // guarded by sampleMu (sampler.go)

	stop      chan struct{} // closed by Close
	closeOnce sync.Once
	wg        sync.WaitGroup // the sampler and the open streams
}

// New validates cfg and returns a dashboard whose sampler is not started.
func New(cfg Config) (*Dashboard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxStreams == 0 {
		cfg.MaxStreams = DefaultMaxStreams
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.History == 0 {
		cfg.History = DefaultHistory
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	d := &Dashboard{
		cfg:  cfg,
		log:  cfg.Logger,
		g:    cfg.Gateway,
		auth: newAuth(cfg.APIKey, cfg.SessionTTL),
		ring: make([]Sample, cfg.History),
		tick: make(chan struct{}),
		stop: make(chan struct{}),
	}
	return d, nil
}

// Start starts the sampler goroutine; Close stops it. Without Start the
// pages work but the charts stay empty and the streams get no snapshot.
func (d *Dashboard) Start() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.started || d.closed {
		return
	}
	d.started = true
	d.wg.Add(1)
	go d.run()
}

// Close ends every event stream (each gets a final "bye" event), stops the
// sampler and waits for them. Call it when the HTTP server starts its
// shutdown (http.Server.RegisterOnShutdown): open streams never become idle
// by themselves. It is safe to call more than once.
func (d *Dashboard) Close() {
	d.closeOnce.Do(func() {
		d.mu.Lock()
		d.closed = true
		d.mu.Unlock()
		close(d.stop)
	})
	d.wg.Wait()
}

// run samples every Interval until Close.
func (d *Dashboard) run() {
	defer d.wg.Done()
	t := time.NewTicker(d.cfg.Interval)
	defer t.Stop()
	d.sample(time.Now())
	for {
		select {
		case now := <-t.C:
			d.sample(now)
		case <-d.stop:
			return
		}
	}
}

// history returns the samples, oldest first.
func (d *Dashboard) history() []Sample {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.n < len(d.ring) {
		return append([]Sample(nil), d.ring[:d.n]...)
	}
	return append(append(make([]Sample, 0, d.n), d.ring[d.next:]...), d.ring[:d.next]...)
}

// recordLocked appends s to the ring, over the oldest sample once full.
func (d *Dashboard) recordLocked(s Sample) {
	d.ring[d.next] = s
	d.next = (d.next + 1) % len(d.ring)
	if d.n < len(d.ring) {
		d.n++
	}
}
