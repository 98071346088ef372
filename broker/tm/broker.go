// Package tm is the gateway's side of the topic manager (package topicmgr):
// a broker.Broker that connects a gateway to one or several managers over
// the cluster protocol, and a Publisher for programs that publish into the
// cluster without being a gateway.
//
// With several managers, each topic is owned by one of them, chosen by
// rendezvous hashing (Owner) over the configured list, identically on every
// gateway: the topic's interest, publishes and counts go to its owner only.
// Commands (kick-out operations) go to the owner of their topic when it is
// up, else to the next manager in the topic's ranking; every manager
// forwards them to all of its gateways, and every gateway is connected to
// every manager.
//
// Every connection is re-established with exponential backoff and full
// jitter, capped, after every failure; after each (re)connect the broker
// sends the manager the whole interest table of the topics it owns, then
// SYNC, so a restarted manager is repopulated without any client action.
// Publish returns once the owner has confirmed the message (CONFIRM,
// protocol version 2); a connection on which a publish waits
// Config.ConfirmTimeout for its confirmation is declared down. While a
// topic's owner is down, Publish and Count fail fast with an error
// wrapping broker.ErrUnavailable; Publish keeps failing so for
// Config.Settle after the connection is back, until the other gateways
// have re-sent their interest (package broker/internal/settle).
package tm

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/internal/cluster"
)

// ErrTooLarge is wrapped by Publish when a message does not fit a frame of
// the owner manager's limit.
var ErrTooLarge = fmt.Errorf("tm: message larger than the manager's frame limit: %w", broker.ErrTooLarge)

// closeGrace bounds how long Close waits for the goodbyes to be written
// (after what was already queued) before it drops the connections; a
// manager that does not get the goodbye keeps the node's counts for its
// lease.
const closeGrace = 2 * time.Second

// Broker is the topic-manager broker of one gateway node.
//
// Lock order: Broker.mu -> link.mu. Broker.mu guards the interest table and
// every link's set of changed topics; link.mu guards one connection's queue
// and pending count requests. Neither is held while calling the handler or
// doing network I/O.
type Broker struct {
	cfg   Config
	log   *slog.Logger
	role  cluster.Role
	keys  []string
	links []*link

	mu       sync.Mutex
	node     string
	session  uint64
	handler  broker.Handler
	interest map[string]interest // only counts > 0
	started  bool
	closed   bool

	stop      chan struct{} // closed by Close
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeDone chan struct{}
	reqIDs    atomic.Uint64
}

// interest is a topic's latest local count and its owner (an index in
// Broker.links), computed once.
type interest struct {
	count int64
	owner int
}

var (
	_ broker.Broker  = (*Broker)(nil)
	_ broker.Checker = (*Broker)(nil)
)

// New returns an unstarted broker for the managers of cfg.
func New(cfg Config) (*Broker, error) {
	return newBroker(cfg, cluster.RoleGateway)
}

// NewURL returns an unstarted broker for a "tm://host:port[,...]" URL, with
// the other settings at their defaults but for the logger.
func NewURL(url string, log *slog.Logger) (*Broker, error) {
	cfg, err := ParseURL(url)
	if err != nil {
		return nil, err
	}
	cfg.Logger = log
	return New(cfg)
}

func newBroker(cfg Config, role cluster.Role) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	b := &Broker{
		cfg:       cfg,
		log:       cfg.Logger,
		role:      role,
		interest:  make(map[string]interest),
		stop:      make(chan struct{}),
		closeDone: make(chan struct{}),
	}
	for i, m := range cfg.Managers {
		b.keys = append(b.keys, m.Key)
		b.links = append(b.links, newLink(b, i, m))
	}
	return b, nil
}

// Start implements broker.Broker: it connects to every manager in the
// background and waits, at most Config.StartWait (or until ctx ends), for
// each first attempt to succeed or fail. A manager that is down is not an
// error: the broker keeps trying, and its topics are unavailable meanwhile.
func (b *Broker) Start(ctx context.Context, nodeID string, h broker.Handler) error {
	if h == nil && b.role == cluster.RoleGateway {
		return errors.New("tm: nil handler")
	}
	if nodeID == "" || len(nodeID) > cluster.MaxStr16 {
		return fmt.Errorf("tm: node id must be 1..%d bytes", cluster.MaxStr16)
	}
	var s [8]byte
	_, _ = rand.Read(s[:])
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return broker.ErrClosed
	case b.started:
		b.mu.Unlock()
		return errors.New("tm: already started")
	}
	b.node, b.handler, b.session, b.started = nodeID, h, binary.BigEndian.Uint64(s[:]), true
	b.log = b.log.With("node", nodeID)
	b.wg.Add(len(b.links)) // under mu: a concurrent Close waits for them
	b.mu.Unlock()

	for _, l := range b.links {
		go l.run()
	}
	timer := time.NewTimer(b.cfg.StartWait)
	defer timer.Stop()
	for _, l := range b.links {
		select {
		case <-l.tried:
		case <-timer.C:
			return nil
		case <-ctx.Done():
			return nil
		case <-b.stop:
			return nil // closed meanwhile; every later call says so
		}
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

// owner returns the link that owns topic.
func (b *Broker) owner(topic string) *link { return b.links[Owner(b.keys, topic)] }

// Publish implements broker.Broker. A publish goes to the owner of its
// topic; a command to the first manager of its topic's ranking that is up.
// It returns nil once that manager has confirmed the message (CONFIRM,
// docs/protocol.md), having routed it to the gateways with interest. It
// waits for room in the connection's queue and for the confirmation,
// bounded by ctx, and fails with an error wrapping broker.ErrUnavailable
// if the manager is down (after Config.PublishWait) or the message could
// not be sent before ctx ended (it is then never sent), or with one
// wrapping broker.ErrUnknownOutcome if it was sent but not confirmed. A
// connection on which a publish waits Config.ConfirmTimeout for its
// confirmation is declared down and re-established.
func (b *Broker) Publish(ctx context.Context, m *broker.Message) error {
	if err := b.usable(); err != nil {
		return err
	}
	if err := cluster.CheckMessage(m, b.cfg.MaxFrame); err != nil {
		return fmt.Errorf("%w: %w", ErrTooLarge, err)
	}
	frame := cluster.AppendMessage(nil, m)
	l := b.owner(m.Topic)
	if m.Kind == broker.KindCommand {
		l = b.firstUp(m.Topic)
	}
	return l.publish(ctx, frame)
}

// firstUp returns the best-ranked manager for topic that is connected and
// not settling, or the owner if none is.
func (b *Broker) firstUp(topic string) *link {
	order := ranked(b.keys, topic)
	for _, i := range order {
		if l := b.links[i]; l.isUp() && !l.settling() {
			return l
		}
	}
	return b.links[order[0]]
}

// SetInterest implements broker.Broker. It records the count and marks the
// topic for the owner's writer, which sends the latest value in its next
// batch; it never blocks on the network.
func (b *Broker) SetInterest(topic string, localCount int64) {
	if b.role != cluster.RoleGateway {
		return
	}
	b.mu.Lock()
	if !b.started || b.closed {
		b.mu.Unlock()
		return
	}
	e, ok := b.interest[topic]
	if !ok {
		e.owner = Owner(b.keys, topic)
	}
	if localCount > 0 {
		e.count = localCount
		b.interest[topic] = e
	} else {
		delete(b.interest, topic)
	}
	l := b.links[e.owner]
	l.dirty[topic] = struct{}{}
	b.mu.Unlock()
	l.signal()
}

// Count implements broker.Broker: the owner of topic answers with the sum
// of the other gateways' counts (for a Publisher: of all gateways).
func (b *Broker) Count(ctx context.Context, topic string) (int64, error) {
	if err := b.usable(); err != nil {
		return 0, err
	}
	if len(topic) > cluster.MaxStr16 {
		return 0, fmt.Errorf("tm: topic longer than %d bytes", cluster.MaxStr16)
	}
	return b.owner(topic).count(ctx, topic, b.reqIDs.Add(1))
}

// Close implements broker.Broker: it says goodbye to every manager (which
// drops this gateway's counts at once), waits at most two seconds for that
// to be written, closes the connections and waits for every goroutine. After
// it returns the handler is never called. Every call waits for that.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		for _, l := range b.links {
			l.leave()
		}
		close(b.stop)
		done := make(chan struct{})
		go func() { b.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(closeGrace):
			b.log.Warn("goodbye to the topic managers not written in time; closing the connections")
			for _, l := range b.links {
				l.drop()
			}
			<-done
		}
		close(b.closeDone)
	})
	<-b.closeDone
	return nil
}

// deliver hands a message from a manager to the handler.
func (b *Broker) deliver(m *broker.Message) {
	if b.role != cluster.RoleGateway || m.Origin == b.node {
		return
	}
	b.handler(m)
}

// ManagerState describes the connection to one manager.
type ManagerState struct {
	Key, Addr string
	Up        bool
	// ManagerID and Epoch are those of the manager's last WELCOME: a new
	// epoch means the manager restarted.
	ManagerID string
	Epoch     uint64
	// Connects counts the successful handshakes.
	Connects int64
}

// Managers returns the state of the connection to every manager, in the
// configured order.
func (b *Broker) Managers() []ManagerState {
	out := make([]ManagerState, len(b.links))
	for i, l := range b.links {
		out[i] = l.state()
	}
	return out
}

// Ready implements broker.Checker: nil while the broker is connected to
// every manager of its list and none is in its settle window
// (Config.Settle). With one manager down, the topics it owns are
// unavailable (their publishes and counts fail), so the node is not ready.
func (b *Broker) Ready() error {
	if err := b.usable(); err != nil {
		return err
	}
	var down, settling []string
	for _, l := range b.links {
		switch {
		case !l.isUp():
			down = append(down, l.m.Key)
		case l.settling():
			settling = append(settling, l.m.Key)
		}
	}
	if len(down) > 0 {
		return fmt.Errorf("%w: topic manager %s not connected", broker.ErrUnavailable, strings.Join(down, ", "))
	}
	if len(settling) > 0 {
		return fmt.Errorf("%w: topic manager %s reconnected; settling until the other gateways have re-subscribed", broker.ErrUnavailable, strings.Join(settling, ", "))
	}
	return nil
}

// Reconnects returns the number of successful handshakes with a manager
// after the first one with it: how often the broker lost a manager and got
// it back.
func (b *Broker) Reconnects() int64 {
	var n int64
	for _, l := range b.links {
		if c := l.state().Connects; c > 1 {
			n += c - 1
		}
	}
	return n
}

// Describe names the broker in the cluster view (gateway.BrokerDescriber):
// "tm://" and the manager list.
func (b *Broker) Describe() string {
	keys := make([]string, len(b.links))
	for i, l := range b.links {
		keys[i] = l.m.Addr
		if l.m.Key != l.m.Addr {
			keys[i] = l.m.Key + "@" + l.m.Addr
		}
	}
	return Scheme + "://" + strings.Join(keys, ",")
}

// OwnerOf returns the key of the manager that owns topic.
func (b *Broker) OwnerOf(topic string) string { return b.keys[Owner(b.keys, topic)] }
