package broker

import (
	"context"
	"fmt"
	"sync"
)

// Bus is an in-process message bus joining Memory brokers, as if each were a
// node of a cluster. The embedded deployment uses a bus of one; tests use
// several nodes on one bus.
type Bus struct {
	mu    sync.RWMutex
	nodes map[string]*Memory
}

// NewBus returns an empty bus.
func NewBus() *Bus { return &Bus{nodes: make(map[string]*Memory)} }

// Node returns a new, unstarted broker attached to the bus.
func (b *Bus) Node() *Memory { return &Memory{bus: b} }

// Memory is the in-process Broker. It delivers synchronously from the
// publisher's goroutine, which gives per-publisher order for free; handlers
// never block, so a publisher is never stalled by another node.
type Memory struct {
	bus *Bus

	mu      sync.RWMutex
	node    string
	handler Handler
	counts  map[string]int64 // local subscriber count per topic, only > 0
	started bool
	closed  bool
}

var _ Broker = (*Memory)(nil)

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
	return nil
}

// Publish implements Broker.
func (m *Memory) Publish(_ context.Context, msg *Message) error {
	if err := m.usable(); err != nil {
		return err
	}
	m.bus.mu.RLock()
	defer m.bus.mu.RUnlock()
	for id, n := range m.bus.nodes {
		if id == msg.Origin || id == m.node {
			continue
		}
		n.mu.RLock()
		h, interested := n.handler, n.counts[msg.Topic] > 0
		n.mu.RUnlock()
		if interested {
			h(msg)
		}
	}
	return nil
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
	m.bus.mu.RLock()
	defer m.bus.mu.RUnlock()
	var total int64
	for id, n := range m.bus.nodes {
		if id == m.node {
			continue
		}
		n.mu.RLock()
		total += n.counts[topic]
		n.mu.RUnlock()
	}
	return total, nil
}

// Close implements Broker.
func (m *Memory) Close() error {
	m.bus.mu.Lock()
	defer m.bus.mu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	if m.started && m.bus.nodes[m.node] == m {
		delete(m.bus.nodes, m.node)
	}
	m.counts = nil
	return nil
}

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
