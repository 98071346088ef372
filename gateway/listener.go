package gateway

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/firetower-go/firetower/internal/hub"
	"github.com/firetower-go/firetower/protocol"
)

// DefaultListenerQueue is the number of messages a Listener holds for its
// reader before it drops.
const DefaultListenerQueue = 1024

// Listener is a local subscriber of one topic that is not a websocket: a
// backend consumer inside the process (the push API's gRPC Subscribe
// stream). It receives every message the topic's websocket subscribers
// receive, in the same order, and counts as one subscriber of the topic:
// it makes this node interested in the topic (messages published on other
// nodes come here) and is included in ConnectNum, ClusterCount and the
// counts announced to chat rooms.
//
// The fan-out never waits for a listener: messages go to a bounded queue;
// when it is full the new message is dropped and counted (Dropped, and the
// gateway's Stats().Dropped). A listener ends when Close is called or the
// gateway shuts down; Next then returns ErrClosed.
type Listener struct {
	g       *Gateway
	topic   string
	queue   chan *hub.Message
	dropped atomic.Int64
	done    chan struct{}
	once    sync.Once
}

// Delivery is one message as a Listener receives it.
type Delivery struct {
	Topic string
	// ID is the message id (the "id" of a v2 delivery).
	ID uint64
	// Data is the published JSON value. It is shared with every other
	// subscriber of the message and must not be modified.
	Data []byte
	// Dropped is how many messages this listener had dropped, in total,
	// when this one was taken from its queue.
	Dropped int64
}

// Listen subscribes a new Listener to topic. queue bounds the messages
// waiting for Next (DefaultListenerQueue when queue <= 0).
func (g *Gateway) Listen(topic string, queue int) (*Listener, error) {
	if err := protocol.ValidateTopic(topic, g.cfg.MaxTopicLength); err != nil {
		return nil, err
	}
	if queue <= 0 {
		queue = DefaultListenerQueue
	}
	l := &Listener{g: g, topic: topic, queue: make(chan *hub.Message, queue), done: make(chan struct{})}
	g.mu.Lock()
	if g.closed.Load() {
		g.mu.Unlock()
		return nil, ErrGatewayClosed
	}
	if g.listeners == nil {
		g.listeners = make(map[*Listener]struct{})
	}
	g.listeners[l] = struct{}{}
	g.mu.Unlock()
	g.hub.Subscribe(topic, l)
	select {
	case <-l.done:
		// Shutdown closed it between the registration and the
		// subscription: Close's Unsubscribe came too early.
		g.hub.Unsubscribe(topic, l)
		return nil, ErrGatewayClosed
	default:
	}
	return l, nil
}

func (l *Listener) tower() *FireTower { return nil }

// Topic returns the topic the listener receives.
func (l *Listener) Topic() string { return l.topic }

// Version implements hub.Subscriber: a listener takes the message and no
// frame, so the fan-out encodes none for it.
func (l *Listener) Version() protocol.Version { return hub.MessageOnly }

// Deliver implements hub.Subscriber; it never blocks.
func (l *Listener) Deliver(d hub.Delivery) {
	select {
	case l.queue <- d.Message:
	default:
		l.dropped.Add(1)
		l.g.stats.dropped.Add(1)
	}
}

// Next returns the next message. It fails with ctx's error when ctx ends
// first and with ErrClosed once the listener is closed; messages still
// queued at that moment are discarded.
func (l *Listener) Next(ctx context.Context) (Delivery, error) {
	select {
	case <-l.done:
		return Delivery{}, ErrClosed
	default:
	}
	select {
	case m := <-l.queue:
		return Delivery{Topic: m.Topic, ID: m.ID, Data: m.Data, Dropped: l.dropped.Load()}, nil
	case <-l.done:
		return Delivery{}, ErrClosed
	case <-ctx.Done():
		return Delivery{}, ctx.Err()
	}
}

// Dropped returns how many messages the listener dropped because its queue
// was full.
func (l *Listener) Dropped() int64 { return l.dropped.Load() }

// Close unsubscribes the listener and ends Next. It is safe to call more
// than once and from any goroutine.
func (l *Listener) Close() {
	l.once.Do(func() {
		l.g.hub.Unsubscribe(l.topic, l)
		l.g.mu.Lock()
		delete(l.g.listeners, l)
		l.g.mu.Unlock()
		close(l.done)
	})
}

// closeListeners closes every listener; Shutdown calls it once the gateway
// is closed, so no new one can appear.
func (g *Gateway) closeListeners() {
	g.mu.Lock()
	ls := make([]*Listener, 0, len(g.listeners))
	for l := range g.listeners {
		ls = append(ls, l)
	}
	g.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
}
