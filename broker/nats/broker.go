// Package nats is a broker.Broker on NATS core publish/subscribe
// (github.com/nats-io/nats.go): stateless gateways share topics through a
// NATS server or cluster, with no topic manager (stage 4 of the scaling
// stages, docs/operations.md).
//
// Each topic is one subject, "<prefix>.t.<topic in base64url>" (see
// subjects): any valid topic maps to one literal subject, and nothing in a
// topic can act as a separator or wildcard. A node subscribes to a topic's
// subject when its first local subscriber arrives and unsubscribes when
// the last one leaves, so it receives only the topics it has subscribers
// for. Every node subscribes to "<prefix>.cmd", the subject of the
// commands. The connection is opened with no echo, so a node never
// receives its own messages from the server; the origin in the envelope
// (package broker/internal/envelope) is checked as well.
//
// Cluster-wide counts are a scatter-gather: Count publishes a request on
// "<prefix>.count" and every other node answers with its own count of the
// topic. The asking node knows whom to wait for from the membership
// subject "<prefix>.node", where every node says hello when it connects,
// sends a heartbeat every Config.Heartbeat and says goodbye when it closes;
// a node not heard of for three heartbeats is gone, and one that missed a
// count is not waited for again until it is heard of. So Count costs one
// round trip to the slowest live node, and a crashed node's subscribers
// simply stop being counted. This needs nothing from the server (no
// JetStream); a key-value bucket would need JetStream and still a lease.
//
// All subscriptions of a node share one connection and are delivered, in
// the server's order, through one queue to one goroutine, so messages of
// one origin and topic (commands included) arrive in publish order. nats.go
// reconnects by itself, with the broker's exponential backoff and full
// jitter, and subscribes again to everything, including subscriptions made
// while it was disconnected; the outage is logged and counted (Stats).
// Messages published meanwhile are not delivered to this node. For
// Config.Settle after a reconnection, Publish keeps failing with
// broker.ErrUnavailable and Ready reports not ready: the other nodes may
// not have re-subscribed yet, and a message published meanwhile would reach
// none of them (package broker/internal/settle).
//
// Publish hands the message to the connection and returns nil once the
// server has answered a flush sent after it; concurrent publishes share
// one flush round trip. It fails at once, wrapping
// broker.ErrUnavailable, while the connection is down (not sent), with
// broker.ErrUnknownOutcome when the flush fails or the caller's context
// ends first, and with ErrTooLarge when the message and its envelope exceed the server's
// max_payload (1 MiB by default: set max_payload to at least the gateway's
// --max-message-size plus 64 KiB). Nothing is retried: delivery is
// at-most-once, in publish order per publishing node and topic.
package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/broker/internal/backoff"
	"github.com/firetower-go/firetower/broker/internal/envelope"
	"github.com/firetower-go/firetower/broker/internal/settle"
)

// ErrTooLarge is wrapped by Publish when a message with its envelope is
// larger than the server's max_payload.
var ErrTooLarge = fmt.Errorf("nats: message larger than the server's max_payload: %w", broker.ErrTooLarge)

// closeGrace bounds how long Close waits for its goodbye to be flushed and
// for the client to finish.
const closeGrace = 2 * time.Second

// maxNodeID bounds the node id, which travels in every heartbeat.
const maxNodeID = 1024

// Broker is the NATS broker of one gateway node.
//
// Lock order: Broker.mu -> subsMu, peers.mu (leaves). No
// lock is held while calling the handler, and SetInterest takes only
// Broker.mu.
type Broker struct {
	cfg  Config
	log  *slog.Logger
	subj subjects

	mu       sync.Mutex
	nc       *natsgo.Conn // set by Start
	node     string
	session  uint64
	inbox    string // prefix of this node's count-reply subjects
	handler  broker.Handler
	interest map[string]int64    // latest local count per topic, only > 0
	dirty    map[string]struct{} // topics changed since the interest loop last looked
	started  bool
	closed   bool

	subsMu  sync.Mutex
	subs    map[string]*natsgo.Subscription // topic subscriptions, changed by the interest loop only
	cmdSub  *natsgo.Subscription
	dropped int64 // messages dropped by subscriptions since removed

	msgs     chan *natsgo.Msg // the topic and command subscriptions deliver here, in order
	wake     chan struct{}    // capacity 1: interest changed
	stop     chan struct{}    // closed by Close
	ncClosed chan struct{}    // closed by nats.go's closed handler, its last callback
	wg       sync.WaitGroup

	peers peers // the other nodes and the counts waiting for them
	flush flusher

	lostAt atomic.Int64 // UnixNano of the last disconnect, 0 while connected
	// gate is the connection's state as the handlers saw it, and its
	// settle window. The handlers run after the fact, on nats.go's
	// callback goroutine: reconnects counts the reconnections onUp has
	// seen, so that Publish can tell one it has not (nc.Stats().Reconnects
	// is ahead) and refuse until the window is started.
	gate       *settle.Gate
	reconnects atomic.Uint64
	// subscribed is set once Start has made its subscriptions: a hello
	// before that would have the others ask counts it cannot answer yet.
	subscribed atomic.Bool
	closeOnce  sync.Once
	closeDone  chan struct{}
	stats      counters
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
	return &Broker{
		cfg:       cfg,
		log:       cfg.Logger.With("broker", "nats"),
		subj:      newSubjects(cfg.Prefix),
		interest:  make(map[string]int64),
		dirty:     make(map[string]struct{}),
		subs:      make(map[string]*natsgo.Subscription),
		msgs:      make(chan *natsgo.Msg, cfg.QueueLen),
		wake:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		ncClosed:  make(chan struct{}),
		peers:     newPeers(),
		flush:     flusher{wake: make(chan struct{}, 1)},
		closeDone: make(chan struct{}),
		gate:      settle.NewGate(settle.Resolve(cfg.Settle, cfg.BackoffMax)),
	}, nil
}

// NewURL returns an unstarted broker for a nats:// URL (see ParseURL),
// with the other settings at their defaults but for the logger.
func NewURL(url string, log *slog.Logger) (*Broker, error) {
	cfg, err := ParseURL(url)
	if err != nil {
		return nil, err
	}
	cfg.Logger = log
	return New(cfg)
}

// Start implements broker.Broker: it connects (one attempt; if the server
// is down the broker keeps trying in the background, and Publish and Count
// fail meanwhile), subscribes to the command, membership and count
// subjects, says hello, and starts the delivery and interest goroutines.
func (b *Broker) Start(_ context.Context, nodeID string, h broker.Handler) error {
	if h == nil {
		return errors.New("nats: nil handler")
	}
	if nodeID == "" || len(nodeID) > maxNodeID {
		return fmt.Errorf("nats: node id must be 1..%d bytes", maxNodeID)
	}
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return broker.ErrClosed
	case b.started:
		b.mu.Unlock()
		return errors.New("nats: already started")
	}
	b.node, b.handler, b.session, b.started = nodeID, h, rand.Uint64(), true
	b.log = b.log.With("node", nodeID)
	b.mu.Unlock()

	cfg := &b.cfg
	opts := append(slices.Clone(cfg.Options),
		natsgo.Name("firetower "+nodeID),
		natsgo.NoEcho(),
		natsgo.RetryOnFailedConnect(true),
		natsgo.MaxReconnects(-1),
		natsgo.CustomReconnectDelay(func(attempts int) time.Duration {
			return backoff.Delay(attempts-1, cfg.BackoffMin, cfg.BackoffMax)
		}),
		// No buffering while disconnected: Publish fails instead, and
		// nothing stale is sent after a reconnect.
		natsgo.ReconnectBufSize(-1),
		natsgo.PingInterval(cfg.PingInterval),
		natsgo.MaxPingsOutstanding(2),
		natsgo.Timeout(cfg.DialTimeout),
		// Called for the first connection too, whether at once or later.
		natsgo.ConnectHandler(b.onUp),
		natsgo.ReconnectHandler(b.onUp),
		natsgo.DisconnectErrHandler(b.onDown),
		natsgo.ClosedHandler(func(*natsgo.Conn) { close(b.ncClosed) }),
		natsgo.ErrorHandler(b.onAsyncError),
	)
	nc, err := natsgo.Connect(strings.Join(cfg.Servers, ","), opts...)
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	b.inbox = nc.NewInbox() + "."
	fail := func(err error) error {
		nc.Close()
		return fmt.Errorf("nats: subscribe: %w", err)
	}
	cmdSub, err := nc.ChanSubscribe(b.subj.commands, b.msgs)
	if err != nil {
		return fail(err)
	}
	if _, err := nc.Subscribe(b.subj.nodes, b.onMember); err != nil {
		return fail(err)
	}
	if _, err := nc.Subscribe(b.subj.count, b.onCountRequest); err != nil {
		return fail(err)
	}
	if _, err := nc.Subscribe(b.inbox+"*", b.onCountReply); err != nil {
		return fail(err)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		nc.Close()
		return broker.ErrClosed
	}
	b.nc = nc
	b.subsMu.Lock()
	b.cmdSub = cmdSub
	b.subsMu.Unlock()
	b.wg.Add(3) // under mu: a concurrent Close waits for them
	b.mu.Unlock()
	go b.receiveLoop()
	go b.interestLoop()
	go b.flushLoop(nc)

	b.subscribed.Store(true)
	if nc.IsConnected() {
		b.announceOn(nc, kindHello)
	} else {
		b.log.Warn("cannot reach nats; retrying with backoff", "servers", cfg.Servers)
	}
	return nil
}

// conn returns the connection, or an error if the broker is not usable.
func (b *Broker) conn() (*natsgo.Conn, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return nil, broker.ErrClosed
	case !b.started || b.nc == nil:
		return nil, broker.ErrNotStarted
	}
	return b.nc, nil
}

func (b *Broker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// unavailable wraps a NATS failure: broker.ErrClosed once Close has begun,
// broker.ErrUnavailable otherwise.
func (b *Broker) unavailable(what string, err error) error {
	if b.isClosed() {
		return broker.ErrClosed
	}
	return fmt.Errorf("%w: nats: %s: %w", broker.ErrUnavailable, what, err)
}

var errNotConnected = errors.New("not connected")

// Publish implements broker.Broker: it hands m to the connection and
// returns nil once the server has answered a flush sent after it
// (concurrent publishes share one flush). It fails at once, wrapping
// broker.ErrUnavailable, while the connection is down, and with
// ErrTooLarge if the envelope exceeds the server's max_payload: m was not
// sent. Once m is in the connection's buffer, a failed flush or the end of
// ctx before the answer fails it with broker.ErrUnknownOutcome.
func (b *Broker) Publish(ctx context.Context, m *broker.Message) error {
	nc, err := b.conn()
	if err != nil {
		return err
	}
	if err := envelope.Check(m); err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	subject := b.subj.commands
	if m.Kind != broker.KindCommand {
		subject = b.subj.topic(m.Topic)
	}
	// lostAt first: while nats.go reconnects it may hold the
	// connection's lock for a whole dial (a server that accepts and says
	// nothing), and IsConnected or Publish would wait for it.
	if b.lostAt.Load() != 0 || !nc.IsConnected() {
		b.stats.publishErrors.Add(1)
		return b.unavailable("publish", errNotConnected)
	}
	if err := b.settled(nc); err != nil {
		b.stats.publishErrors.Add(1)
		return err
	}
	size := envelope.Len(m)
	if limit := nc.MaxPayload(); limit > 0 && int64(size) > limit {
		b.stats.publishErrors.Add(1)
		return fmt.Errorf("%w: %d bytes of data make a %d-byte message; the server's max_payload is %d (raise it to the gateway's --max-message-size + 64 KiB)",
			ErrTooLarge, len(m.Data), size, limit)
	}
	if err := ctx.Err(); err != nil {
		b.stats.publishErrors.Add(1)
		return b.unavailable("publish not sent", err) // once handed over, it could only be unknown
	}
	done, err := b.flush.publish(nc, subject, envelope.Append(nil, m))
	if err != nil {
		if errors.Is(err, broker.ErrClosed) {
			return err
		}
		b.stats.publishErrors.Add(1)
		if errors.Is(err, natsgo.ErrMaxPayload) {
			return fmt.Errorf("%w: %w", ErrTooLarge, err)
		}
		return b.unavailable("publish", err)
	}
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		b.stats.publishErrors.Add(1)
		return fmt.Errorf("%w: nats: published, the server did not answer the flush after it: %v", broker.ErrUnknownOutcome, err)
	}
	b.stats.published.Add(1)
	return nil
}

// SetInterest implements broker.Broker: it records the count and wakes the
// interest loop, which subscribes or unsubscribes in the background. It
// never blocks on the network.
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

// localCount returns the node's own count of topic.
func (b *Broker) localCount(topic string) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.interest[topic]
}

// Close implements broker.Broker: it stops the delivery and interest
// goroutines, says goodbye (so that the other nodes stop counting this one
// at once) and closes the connection. After it returns the handler is
// never called. Every call waits for that.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		nc := b.nc
		b.mu.Unlock()
		b.flush.close() // flushLoop answers the publishes in flight, then returns
		close(b.stop)
		b.wg.Wait()
		if nc != nil {
			if nc.IsConnected() {
				b.announce(kindBye)
				if err := nc.FlushTimeout(closeGrace); err != nil {
					b.log.Debug("goodbye not flushed; the other nodes stop counting this one after missing its heartbeats", "err", err)
				}
			}
			nc.Close()
			select {
			case <-b.ncClosed:
			case <-time.After(closeGrace):
			}
		}
		close(b.closeDone)
	})
	<-b.closeDone
	return nil
}

// receiveLoop hands the messages of the topic and command subscriptions to
// the handler, one at a time, in the order the server sent them.
func (b *Broker) receiveLoop() {
	defer b.wg.Done()
	for {
		select {
		case <-b.stop:
			return
		case m := <-b.msgs:
			b.deliver(m)
		}
	}
}

// deliver hands a message to the handler, unless it is the node's own,
// malformed, or on a topic the node no longer has.
func (b *Broker) deliver(msg *natsgo.Msg) {
	m, err := envelope.Parse(msg.Data)
	if err != nil {
		b.stats.malformed.Add(1)
		b.log.Debug("dropped a malformed message", "subject", msg.Subject, "err", err)
		return
	}
	if m.Origin == b.node {
		return
	}
	if m.Kind == broker.KindCommand {
		if msg.Subject != b.subj.commands {
			b.stats.malformed.Add(1)
			return
		}
	} else {
		if !b.subj.isTopic(msg.Subject, m.Topic) {
			b.stats.malformed.Add(1)
			b.log.Debug("dropped a message whose topic is not its subject's", "subject", msg.Subject, "topic", m.Topic)
			return
		}
		// An unsubscribe is asynchronous: a message may still arrive
		// after the last local subscriber left.
		if b.localCount(m.Topic) <= 0 {
			return
		}
	}
	b.stats.received.Add(1)
	b.handler(m)
}

// settled returns an error wrapping broker.ErrUnavailable while the
// connection settles after a reconnection (or is reconnected but onUp has
// not run yet), nil otherwise.
func (b *Broker) settled(nc *natsgo.Conn) error {
	if nc.Stats().Reconnects != b.reconnects.Load() {
		return b.unavailable("publish", errors.New("reconnected a moment ago; settling"))
	}
	return b.gate.Err("nats")
}

// onUp runs when the connection is (re)established: nats.go has sent every
// subscription again; the broker says hello so that the others count it.
func (b *Broker) onUp(nc *natsgo.Conn) {
	if b.isClosed() {
		return
	}
	settling := b.gate.Up()
	b.reconnects.Store(nc.Stats().Reconnects) // after Up: Publish sees the window
	b.stats.sessions.Add(1)
	b.stats.connected.Store(true)
	if lost := b.lostAt.Swap(0); lost != 0 {
		gap := time.Since(time.Unix(0, lost))
		b.stats.lastOutage.Store(int64(gap))
		b.stats.totalOutage.Add(int64(gap))
		b.log.Info("nats connection restored; messages published during the outage were not received; publishes are refused while the other nodes re-subscribe",
			"outage", gap, "settle", settling)
	} else {
		b.log.Info("connected to nats", "server", nc.ConnectedUrlRedacted())
	}
	if b.subscribed.Load() {
		b.announceOn(nc, kindHello)
	}
}

// onDown runs when the connection is lost.
func (b *Broker) onDown(_ *natsgo.Conn, err error) {
	if b.isClosed() {
		return
	}
	b.gate.Down()
	b.stats.connected.Store(false)
	b.stats.outages.Add(1)
	b.lostAt.CompareAndSwap(0, time.Now().UnixNano())
	b.log.Warn("nats connection lost; reconnecting with backoff", "err", err)
}

// slowLogEvery spaces the log lines about slow-consumer drops.
const slowLogEvery = 10 * time.Second

func (b *Broker) onAsyncError(_ *natsgo.Conn, sub *natsgo.Subscription, err error) {
	if errors.Is(err, natsgo.ErrSlowConsumer) {
		b.stats.slowConsumer.Add(1)
		now := time.Now().UnixNano()
		if last := b.stats.slowLogged.Load(); now-last >= int64(slowLogEvery) && b.stats.slowLogged.CompareAndSwap(last, now) {
			b.log.Warn("nats: messages dropped: the delivery queue is full (slow consumer)", "queue", b.cfg.QueueLen)
		}
		return
	}
	subject := ""
	if sub != nil {
		subject = sub.Subject
	}
	b.log.Warn("nats asynchronous error", "subject", subject, "err", err)
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Stats are the broker's counters.
type Stats struct {
	// Connected says whether the connection to NATS is up.
	Connected bool
	// Sessions counts the connections established: 1 plus the reconnects.
	Sessions int64
	// Outages counts the connections lost; LastOutage is how long the last
	// one took to come back (messages from other nodes were missed
	// meanwhile), TotalOutage the sum.
	Outages     int64
	LastOutage  time.Duration
	TotalOutage time.Duration
	// Published and PublishErrors count Publish calls that succeeded and
	// failed; Received the messages handed to the handler; Malformed the
	// messages dropped because they did not parse or came on the wrong
	// subject.
	Published     int64
	PublishErrors int64
	Received      int64
	Malformed     int64
	// Flushes counts the flush round trips that confirmed publishes:
	// concurrent publishes share one, so under load it grows slower than
	// Published.
	Flushes int64
	// Dropped counts the messages the client dropped because the delivery
	// queue was full; SlowConsumer the times that began.
	Dropped      int64
	SlowConsumer int64
	// Members is the number of other live nodes this node knows of.
	Members int
}

type counters struct {
	connected                                     atomic.Bool
	sessions, outages                             atomic.Int64
	lastOutage, totalOutage                       atomic.Int64 // nanoseconds
	published, publishErrors, received, malformed atomic.Int64
	slowConsumer, slowLogged                      atomic.Int64
	flushes                                       atomic.Int64
}

// Stats returns a snapshot of the counters.
func (b *Broker) Stats() Stats {
	c := &b.stats
	s := Stats{
		Connected: c.connected.Load(), Sessions: c.sessions.Load(), Outages: c.outages.Load(),
		LastOutage: time.Duration(c.lastOutage.Load()), TotalOutage: time.Duration(c.totalOutage.Load()),
		Published: c.published.Load(), PublishErrors: c.publishErrors.Load(), Received: c.received.Load(),
		Malformed: c.malformed.Load(), SlowConsumer: c.slowConsumer.Load(), Flushes: c.flushes.Load(),
		Members: len(b.peers.alive(time.Now(), b.cfg.Heartbeat)),
	}
	b.subsMu.Lock()
	s.Dropped = b.dropped
	for _, sub := range b.subs {
		if n, err := sub.Dropped(); err == nil {
			s.Dropped += int64(n)
		}
	}
	if sub := b.cmdSub; sub != nil {
		if n, err := sub.Dropped(); err == nil {
			s.Dropped += int64(n)
		}
	}
	b.subsMu.Unlock()
	return s
}

// Ready implements broker.Checker: nil while the connection to NATS is up
// and not settling after a reconnection (Config.Settle).
func (b *Broker) Ready() error {
	nc, err := b.conn()
	if err != nil {
		return err
	}
	if !nc.IsConnected() {
		return fmt.Errorf("%w: nats: %w", broker.ErrUnavailable, errNotConnected)
	}
	return b.settled(nc)
}

// Reconnects returns how often the connection was lost and established
// again (for the metrics).
func (b *Broker) Reconnects() int64 { return max(b.stats.sessions.Load()-1, 0) }

// Describe names the broker in the cluster view (gateway.BrokerDescriber):
// the servers, without credentials, and the prefix.
func (b *Broker) Describe() string {
	servers := make([]string, len(b.cfg.Servers))
	for i, s := range b.cfg.Servers {
		if u, err := url.Parse(s); err == nil {
			u.User = nil
			s = u.String()
		}
		servers[i] = s
	}
	return strings.Join(servers, ",") + "?prefix=" + b.cfg.Prefix
}
