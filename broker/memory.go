package broker

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Bus is an in-process message bus joining Memory brokers, as if each were a
// node of a cluster. The embedded deployment uses a bus of one; tests use
// several nodes on one bus.
//
// Lock order: Bus.mu -> Memory.mu. Publish and Count take neither Bus.mu nor
// any lock across a handler call: they read the copy-on-write peers list, so
// a handler may call back into any broker of the bus.
type Bus struct {
	mu    sync.Mutex
	nodes map[string]*Memory
	peers atomic.Pointer[[]*Memory] // the started nodes; replaced, never changed, under mu
}

// NewBus returns an empty bus.
func NewBus() *Bus { return &Bus{nodes: make(map[string]*Memory)} }

// Node returns a new, unstarted broker attached to the bus.
func (b *Bus) Node() *Memory { return &Memory{bus: b} }

// publishPeers makes the current node set visible to Publish and Count.
// Called with b.mu held.
func (b *Bus) publishPeers() {
	peers := make([]*Memory, 0, len(b.nodes))
	for _, n := range b.nodes {
		peers = append(peers, n)
	}
	b.peers.Store(&peers)
}

func (b *Bus) snapshot() []*Memory {
	if p := b.peers.Load(); p != nil {
		return *p
	}
	return nil
}

// Memory is the in-process Broker. It delivers synchronously from the
// publisher's goroutine, which gives per-publisher order for free; handlers
// never block, so a publisher is never stalled by another node. A handler may
// call the brokers of the bus, except Close of a node whose delivery it is
// part of: Close waits for the deliveries in progress to its own handler, so
// that the handler is never called once Close has returned.
type Memory struct {
	bus *Bus

	mu       sync.RWMutex
	node     string // set once by Start
	handler  Handler
	counts   map[string]int64 // local subscriber count per topic, only > 0
	started  bool
	closed   bool
	inflight sync.WaitGroup // calls of handler in progress; Add only while !closed, under mu
}

var (
	_ Broker  = (*Memory)(nil)
	_ Checker = (*Memory)(nil)
)

// NewMemory returns a broker on a bus of its own: the single-node default.
func NewMemory() *Memory { return NewBus().Node() }

// Start implements Broker.
func (m *Memory) Start(_ context.Context, nodeID string, h Handler) error {
	if h == nil {
		return fmt.Errorf("broker: nil handler")
	}
	m.bus.mu.Lock()
	defer m.bus.mu.Unlock()
	if _, dup := m.bus.nodes[nodeID]; dup {
		return fmt.Errorf("broker: node id %q already on the bus", nodeID)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if m.started {
		return fmt.Errorf("broker: already started")
	}
	m.node, m.handler, m.counts, m.started = nodeID, h, make(map[string]int64), true
	m.bus.nodes[nodeID] = m
	m.bus.publishPeers()
	return nil
}

// Publish implements Broker.
func (m *Memory) Publish(_ context.Context, msg *Message) error {
	if err := m.usable(); err != nil {
		return err
	}
	for _, n := range m.bus.snapshot() {
		if n == m || n.node == msg.Origin {
			continue
		}
		n.deliver(msg)
	}
	return nil
}

// deliver calls m's handler if m is open and interested in msg.Topic, or
// msg is a command.
func (m *Memory) deliver(msg *Message) {
	m.mu.RLock()
	h, interested := m.handler, !m.closed && (msg.Kind == KindCommand || m.counts[msg.Topic] > 0)
	if interested {
		m.inflight.Add(1)
	}
	m.mu.RUnlock()
	if !interested {
		return
	}
	defer m.inflight.Done()
	h(msg)
}

// SetInterest implements Broker.
func (m *Memory) SetInterest(topic string, localCount int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.started || m.closed {
		return
	}
	if localCount > 0 {
		m.counts[topic] = localCount
	} else {
		delete(m.counts, topic)
	}
}

// Count implements Broker.
func (m *Memory) Count(_ context.Context, topic string) (int64, error) {
	if err := m.usable(); err != nil {
		return 0, err
	}
	var total int64
	for _, n := range m.bus.snapshot() {
		if n == m {
			continue
		}
		n.mu.RLock()
		total += n.counts[topic]
		n.mu.RUnlock()
	}
	return total, nil
}

// KnownCount implements KnownCounter: the in-process bus knows every
// node's count without a network round trip.
func (m *Memory) KnownCount(topic string) (int64, bool) {
	n, err := m.Count(context.Background(), topic)
	return n, err == nil
}

// Close implements Broker. It returns once no delivery to m's handler is in
// progress; every Close, not only the first, waits for that.
func (m *Memory) Close() error {
	m.bus.mu.Lock()
	m.mu.Lock()
	if !m.closed {
		m.closed = true
		if m.started && m.bus.nodes[m.node] == m {
			delete(m.bus.nodes, m.node)
			m.bus.publishPeers()
		}
		m.counts = nil
	}
	m.mu.Unlock()
	m.bus.mu.Unlock()
	m.inflight.Wait()
	return nil
}

// Ready implements Checker: the in-process bus is always connected between
// Start and Close.
func (m *Memory) Ready() error { return m.usable() }

// InterestDelay is 0: SetInterest shows in the other nodes' Count at once
// (gateway.InterestDelayer), so a gateway claims its message-id node number
// without waiting.
func (m *Memory) InterestDelay() time.Duration { return 0 }

// Describe names the broker in the cluster view (gateway.BrokerDescriber).
func (m *Memory) Describe() string { return "memory" }

func (m *Memory) usable() error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	switch {
	case m.closed:
		return ErrClosed
	case !m.started:
		return ErrNotStarted
	}
	return nil
}
