// Package redis is a broker.Broker on Redis Pub/Sub (github.com/redis/go-redis/v9):
// stateless gateways share topics through one Redis server, with no topic
// manager (stage 4 of the scaling stages, docs/operations.md).
//
// Each topic is one Pub/Sub channel, "<prefix>:t:<topic>". A node
// subscribes to it when its first local subscriber arrives and unsubscribes
// when the last one leaves, so it receives only the topics it has
// subscribers for. Every node also subscribes to "<prefix>:cmd", the
// channel of the commands (kick-out operations and node information), which
// therefore reach every node. A message travels as a binary envelope (see
// package broker/internal/envelope) carrying its kind, id, origin node and
// topic; a node drops its own messages, which Redis sends back to it when
// it has subscribers of the topic.
//
// Cluster-wide subscriber counts live in Redis: a hash per node (topic ->
// count) that expires with the node's lease unless refreshed, and a sorted
// set of the nodes by lease end. Count runs one script that sums the
// topic's count over the live nodes: one round trip. A node that closes
// deletes its hash; one that crashes is gone from the counts when its lease
// ends (Config.Lease).
//
// All subscriptions of a node share one connection. When it fails (Redis
// restarted, network cut, a health-check ping unanswered), the broker opens
// a new one with exponential backoff and full jitter, subscribes to every
// channel the node then needs, and writes its whole count table again, so
// no client has to do anything; the outage is logged and counted (Stats).
// Messages published meanwhile are not delivered to this node. From the loss
// until Config.Settle after the restore, Publish fails with
// broker.ErrUnavailable and Ready reports not ready: a restarted Redis
// accepts a PUBLISH before the other nodes have re-subscribed, and that
// message would reach none of them (package broker/internal/settle).
//
// Publish sends the message and returns nil once Redis replied to its
// PUBLISH: concurrent publishes are pipelined on one connection, queued in
// a bounded queue (Config.PublishQueue; full, a publish fails at once). A
// failure is returned to the caller wrapping broker.ErrUnavailable when
// the message was certainly not published (Redis down, the queue full, the
// caller's context ended while it was queued: it is then cancelled and
// never sent), or broker.ErrUnknownOutcome when it was sent and no reply
// came (Redis stalled, the connection broke). Nothing is retried: delivery is at-most-once, in
// publish order per publishing node and topic (one connection delivers all
// of a node's subscriptions in Redis's order).
//
// # Sharded Pub/Sub
//
// With Config.Sharded, topic channels use SSUBSCRIBE/SPUBLISH (Redis 7),
// one channel per SSUBSCRIBE since a cluster refuses several slots in one,
// and commands stay on classic Pub/Sub. This is tested against a
// standalone Redis 7 and a Redis Cluster of one shard. A cluster of
// several shards is not served: one connection can only hold sharded
// subscriptions of the slots of the shard it is connected to, and the
// broker has one subscription connection (docs/operations.md says what
// that would take).
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/broker/internal/envelope"
	"github.com/firetower-go/firetower/broker/internal/settle"
)

// closeGrace bounds how long Close waits for Redis to delete the node's
// counts; if it cannot, they stay until the lease ends.
const closeGrace = 2 * time.Second

// maxNodeID bounds the node id, which is part of a key name.
const maxNodeID = 1024

// Broker is the Redis broker of one gateway node.
//
// Lock order: subscriber.mu -> Broker.mu -> publisher.mu. Broker.mu guards
// the interest table; subscriber.mu the subscription connection and the set
// of channels subscribed on it (held while writing SUBSCRIBE commands, never
// by SetInterest). No lock is held while calling the handler.
type Broker struct {
	cfg    Config
	log    *slog.Logger
	client *goredis.Client
	names  names

	mu       sync.Mutex
	node     string
	handler  broker.Handler
	interest map[string]int64    // latest local count per topic, only > 0
	dirty    map[string]struct{} // topics changed since the interest loop last looked
	resync   bool                // the next count write replaces the whole table
	started  bool
	closed   bool

	sub  subscriber
	pub  publisher
	gate *settle.Gate // the subscription connection's state and settle window

	wake      chan struct{} // capacity 1: interest changed
	tried     chan struct{} // closed after the first subscription attempt
	stop      chan struct{} // closed by Close
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeDone chan struct{}

	stats counters
}

var (
	_ broker.Broker  = (*Broker)(nil)
	_ broker.Checker = (*Broker)(nil)
)

// New returns an unstarted broker. It connects only in Start.
func New(cfg Config) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	opts := cfg.Options
	ctx, cancel := context.WithCancel(context.Background())
	b := &Broker{
		cfg:       cfg,
		log:       cfg.Logger.With("broker", "redis", "addr", opts.Addr),
		client:    goredis.NewClient(&opts),
		names:     newNames(cfg.Prefix),
		interest:  make(map[string]int64),
		dirty:     make(map[string]struct{}),
		resync:    true, // a previous run with this node id may have left a table
		wake:      make(chan struct{}, 1),
		tried:     make(chan struct{}),
		stop:      make(chan struct{}),
		ctx:       ctx,
		cancel:    cancel,
		closeDone: make(chan struct{}),
		gate:      settle.NewGate(settle.Resolve(cfg.Settle, cfg.BackoffMax)),
	}
	b.pub = newPublisher(cfg.PublishQueue)
	b.sub.subscribed = make(map[string]struct{})
	return b, nil
}

// NewURL returns an unstarted broker for a redis:// URL (see ParseURL),
// with the other settings at their defaults but for the logger.
func NewURL(url string, log *slog.Logger) (*Broker, error) {
	cfg, err := ParseURL(url)
	if err != nil {
		return nil, err
	}
	cfg.Logger = log
	return New(cfg)
}

// Start implements broker.Broker: it starts the subscription connection,
// the interest writer and the publisher in the background, and waits at
// most Config.StartWait (or until ctx ends) for the first subscription
// attempt. A Redis that is down is not an error: the broker keeps trying,
// and Publish and Count fail meanwhile.
func (b *Broker) Start(ctx context.Context, nodeID string, h broker.Handler) error {
	if h == nil {
		return errors.New("redis: nil handler")
	}
	if nodeID == "" || len(nodeID) > maxNodeID {
		return fmt.Errorf("redis: node id must be 1..%d bytes", maxNodeID)
	}
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return broker.ErrClosed
	case b.started:
		b.mu.Unlock()
		return errors.New("redis: already started")
	}
	b.node, b.handler, b.started = nodeID, h, true
	b.log = b.log.With("node", nodeID)
	b.wg.Add(3) // under mu: a concurrent Close waits for them
	b.mu.Unlock()

	go b.receiveLoop()
	go b.interestLoop()
	go b.publishLoop()
	timer := time.NewTimer(b.cfg.StartWait)
	defer timer.Stop()
	select {
	case <-b.tried:
	case <-timer.C:
	case <-ctx.Done():
	case <-b.stop:
	}
	return nil
}

// usable reports ErrClosed or ErrNotStarted.
func (b *Broker) usable() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return broker.ErrClosed
	case !b.started:
		return broker.ErrNotStarted
	}
	return nil
}

func (b *Broker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// unavailable wraps a Redis failure: broker.ErrClosed once Close has begun
// (it cancels the calls in flight), broker.ErrUnavailable otherwise.
func (b *Broker) unavailable(what string, err error) error {
	if b.isClosed() {
		return broker.ErrClosed
	}
	return fmt.Errorf("%w: redis %s: %s: %w", broker.ErrUnavailable, b.cfg.Options.Addr, what, err)
}

// Publish implements broker.Broker: it sends m on its topic's channel (a
// command on the command channel) and returns nil once Redis has replied
// to the PUBLISH. Concurrent calls share pipelined round trips. It fails
// at once with an error wrapping broker.ErrUnavailable when the publish
// queue (Config.PublishQueue) is full. When ctx ends first, a publish still
// queued is cancelled, never sent (ErrUnavailable and ctx's error), and
// one already sent fails with broker.ErrUnknownOutcome.
func (b *Broker) Publish(ctx context.Context, m *broker.Message) error {
	if err := b.usable(); err != nil {
		return err
	}
	if err := envelope.Check(m); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	if err := b.gate.Err(b.linkName()); err != nil {
		b.stats.publishErrors.Add(1)
		return err
	}
	r := &pubRequest{payload: envelope.Append(nil, m), done: make(chan error, 1)}
	if m.Kind == broker.KindCommand {
		r.channel = b.names.commands
	} else {
		r.channel, r.sharded = b.names.topic(m.Topic), b.cfg.Sharded
	}
	switch err := b.pub.enqueue(r); {
	case errors.Is(err, errStopped):
		return broker.ErrClosed
	case err != nil:
		b.stats.publishErrors.Add(1)
		return b.unavailable("publish", fmt.Errorf("%w (%d publishes waiting for redis)", err, b.cfg.PublishQueue))
	}
	select {
	case err := <-r.done:
		if err != nil {
			b.stats.publishErrors.Add(1)
			return err
		}
		b.stats.published.Add(1)
		return nil
	case <-ctx.Done():
	}
	b.stats.publishErrors.Add(1)
	if b.pub.cancel(r) {
		return b.unavailable("publish not sent", ctx.Err())
	}
	select {
	case err := <-r.done: // answered meanwhile
		if err == nil {
			b.stats.publishErrors.Add(-1)
			b.stats.published.Add(1)
		}
		return err
	default:
	}
	return b.unknownOutcome("sent, no reply before the caller gave up: " + ctx.Err().Error())
}

// unknownOutcome wraps broker.ErrUnknownOutcome: a PUBLISH sent without a
// reply.
func (b *Broker) unknownOutcome(why string) error {
	return fmt.Errorf("%w: redis %s: %s", broker.ErrUnknownOutcome, b.cfg.Options.Addr, why)
}

// SetInterest implements broker.Broker: it records the count and wakes the
// interest loop, which subscribes or unsubscribes and writes the count to
// Redis in the background. It never blocks on the network.
func (b *Broker) SetInterest(topic string, localCount int64) {
	b.mu.Lock()
	if !b.started || b.closed {
		b.mu.Unlock()
		return
	}
	if localCount > 0 {
		b.interest[topic] = localCount
	} else {
		delete(b.interest, topic)
	}
	b.dirty[topic] = struct{}{}
	b.mu.Unlock()
	signal(b.wake)
}

// Count implements broker.Broker: one script run in Redis sums the topic's
// count over the other live nodes.
func (b *Broker) Count(ctx context.Context, topic string) (int64, error) {
	if err := b.usable(); err != nil {
		return 0, err
	}
	n, err := countScript.Run(ctx, b.client, []string{b.names.nodes}, topic, b.node, b.names.nodePrefix).Int64()
	if err != nil {
		return 0, b.unavailable("count", err)
	}
	return n, nil
}

// Close implements broker.Broker: it stops the background work, deletes
// the node's counts (waiting at most two seconds for Redis; if that fails
// they stay until the lease ends) and closes the connections. After it
// returns the handler is never called. Every call waits for that.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		started := b.started
		b.mu.Unlock()
		close(b.stop)
		b.cancel() // ends the Redis calls in flight
		b.sub.shutdown()
		b.wg.Wait()
		if started {
			ctx, cancel := context.WithTimeout(context.Background(), closeGrace)
			err := leaveScript.Run(ctx, b.client, []string{b.names.nodes, b.names.node(b.node)}, b.node).Err()
			cancel()
			if err != nil {
				b.log.Warn("cannot remove this node's subscriber counts from redis; they stay until the lease ends",
					"lease", b.cfg.Lease, "err", err)
			}
		}
		_ = b.client.Close()
		close(b.closeDone)
	})
	<-b.closeDone
	return nil
}

// deliver hands a message received on channel to the handler, unless it is
// the node's own, malformed, or on a topic the node no longer has.
func (b *Broker) deliver(channel string, payload string) {
	m, err := envelope.Parse([]byte(payload))
	if err != nil {
		b.stats.malformed.Add(1)
		b.log.Debug("dropped a malformed message", "channel", channel, "err", err)
		return
	}
	if m.Origin == b.node {
		return
	}
	if m.Kind == broker.KindCommand {
		if channel != b.names.commands {
			b.stats.malformed.Add(1)
			return
		}
	} else {
		if topic, ok := strings.CutPrefix(channel, b.names.topicPrefix); !ok || topic != m.Topic {
			b.stats.malformed.Add(1)
			b.log.Debug("dropped a message whose topic is not its channel's", "channel", channel, "topic", m.Topic)
			return
		}
		// An unsubscribe is asynchronous: a message may still arrive
		// after the last local subscriber left.
		b.mu.Lock()
		wanted := b.interest[m.Topic] > 0
		b.mu.Unlock()
		if !wanted {
			return
		}
	}
	b.stats.received.Add(1)
	b.handler(m)
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Stats are the broker's counters.
type Stats struct {
	// Connected says whether the subscription connection is up.
	Connected bool
	// Sessions counts the subscription connections established: 1 plus
	// the reconnects.
	Sessions int64
	// Outages counts the subscription connections lost; LastOutage is how
	// long the last one took to come back (messages from other nodes were
	// missed meanwhile), TotalOutage the sum.
	Outages     int64
	LastOutage  time.Duration
	TotalOutage time.Duration
	// Published and PublishErrors count Publish calls that succeeded and
	// failed; Received the messages handed to the handler; Malformed the
	// messages dropped because they did not parse or came on the wrong
	// channel.
	Published     int64
	PublishErrors int64
	Received      int64
	Malformed     int64
	// CountWriteErrors counts failed writes of this node's counts.
	CountWriteErrors int64
}

type counters struct {
	connected                                     atomic.Bool
	sessions, outages                             atomic.Int64
	lastOutage, totalOutage                       atomic.Int64 // nanoseconds
	published, publishErrors, received, malformed atomic.Int64
	countWriteErrors                              atomic.Int64
}

// Stats returns a snapshot of the counters.
func (b *Broker) Stats() Stats {
	c := &b.stats
	return Stats{
		Connected: c.connected.Load(), Sessions: c.sessions.Load(), Outages: c.outages.Load(),
		LastOutage: time.Duration(c.lastOutage.Load()), TotalOutage: time.Duration(c.totalOutage.Load()),
		Published: c.published.Load(), PublishErrors: c.publishErrors.Load(), Received: c.received.Load(),
		Malformed: c.malformed.Load(), CountWriteErrors: c.countWriteErrors.Load(),
	}
}

// Ready implements broker.Checker: nil while the subscription connection
// is up and not settling. While it is being re-established the node misses
// the other nodes' messages, so it is not ready; during the settle window
// after it is restored its publishes are refused (Config.Settle).
func (b *Broker) Ready() error {
	if err := b.usable(); err != nil {
		return err
	}
	if !b.stats.connected.Load() {
		return fmt.Errorf("%w: %s down", broker.ErrUnavailable, b.linkName())
	}
	return b.gate.Err(b.linkName())
}

// linkName names the subscription connection in errors.
func (b *Broker) linkName() string {
	return "redis " + b.cfg.Options.Addr + ": subscription connection"
}

// Reconnects returns how often the subscription connection was lost and
// established again (for the metrics).
func (b *Broker) Reconnects() int64 { return max(b.stats.sessions.Load()-1, 0) }

// Describe names the broker in the cluster view (gateway.BrokerDescriber):
// the server, database and prefix, never the credentials.
func (b *Broker) Describe() string {
	scheme := Scheme
	if b.cfg.Options.TLSConfig != nil {
		scheme = SchemeTLS
	}
	d := fmt.Sprintf("%s://%s/%d?prefix=%s", scheme, b.cfg.Options.Addr, b.cfg.Options.DB, b.cfg.Prefix)
	if b.cfg.Sharded {
		d += "&sharded=true"
	}
	return d
}

var routeOnce sync.Once

// LogClientTo sends go-redis's own log lines (one per failed dial, among
// others; by default they go to the standard error) to log, at debug
// level: the broker logs what matters once per outage. go-redis has one
// logger per process, so the first call wins and later calls do nothing;
// call it before creating any broker.
func LogClientTo(log *slog.Logger) {
	routeOnce.Do(func() { goredis.SetLogger(clientLogger{log}) })
}

type clientLogger struct{ log *slog.Logger }

func (l clientLogger) Printf(ctx context.Context, format string, args ...any) {
	l.log.DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, args...))
}
