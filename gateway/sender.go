package gateway

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/firetower-go/firetower/broker"
)

// The sender hands the gateway's messages to the broker, for the other
// nodes, off the publishers' goroutines: a connection's publish is
// delivered to the local subscribers at once and queued here, and the
// connection goes on with its next frame while the broker works (a Redis
// round trip, a topic manager's confirmation). Its v2 ack or error follows
// when the broker has answered.
//
// Order: the broker contract keeps order per origin node and topic when
// Publish calls on a topic do not overlap. Messages are spread over
// senderLanes lanes by topic; each lane calls Publish for one message at a
// time, in queue order, so a topic's messages reach the broker in the
// order they were published, and a slow topic holds up only its lane.
//
// Bounds: a lane holds at most Config.PublishQueue/senderLanes messages; a
// publish that finds its lane full fails at once with ErrPublishQueueFull,
// before any local delivery. A message also fails, unsent, when it waited
// past its deadline (PublishTimeout, or the caller's context).
//
// A lane runs a goroutine only while it has messages.
type sender struct {
	g     *Gateway
	limit int // per lane
	lanes [senderLanes]lane
	wg    sync.WaitGroup
}

// senderLanes is the number of independent queues to the broker.
const senderLanes = 16

type lane struct {
	mu      sync.Mutex // a leaf lock
	queue   []*outgoing
	head    int
	running bool // a goroutine serves the lane
	closed  bool
}

// The states of an outgoing message: queued, then sending or cancelled
// (its caller gave up before the lane reached it: it is never sent).
const (
	outQueued uint32 = iota
	outSending
	outCancelled
)

// outgoing is one message waiting for the broker.
type outgoing struct {
	m        *broker.Message
	ctx      context.Context
	deadline time.Time
	state    atomic.Uint32
	// done gets the outcome once: nil when the broker accepted m. It runs
	// on the lane's goroutine and must not block.
	done func(error)
}

func newSender(g *Gateway) *sender {
	return &sender{g: g, limit: max(1, g.cfg.PublishQueue/senderLanes)}
}

func (s *sender) laneOf(topic string) *lane {
	// FNV-1a: cheap, and only this process needs to agree with itself.
	h := uint32(2166136261)
	for i := 0; i < len(topic); i++ {
		h ^= uint32(topic[i])
		h *= 16777619
	}
	return &s.lanes[h%senderLanes]
}

// queue appends o to its topic's lane; it fails at once when the lane is
// full or closed.
func (s *sender) queue(o *outgoing) error {
	l := s.laneOf(o.m.Topic)
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrGatewayClosed
	}
	if len(l.queue)-l.head >= s.limit {
		l.mu.Unlock()
		s.g.stats.publishQueueFull.Add(1)
		return fmt.Errorf("%w: %d messages wait for the broker on this lane", ErrPublishQueueFull, s.limit)
	}
	if l.head > 0 && l.head == len(l.queue) {
		l.queue, l.head = l.queue[:0], 0
	}
	l.queue = append(l.queue, o)
	start := !l.running
	l.running = true
	if start {
		s.wg.Add(1)
	}
	l.mu.Unlock()
	if start {
		go s.run(l)
	}
	return nil
}

// run serves l until it is empty.
func (s *sender) run(l *lane) {
	defer s.wg.Done()
	for {
		l.mu.Lock()
		if l.head == len(l.queue) {
			l.queue, l.head = l.queue[:0], 0
			if cap(l.queue) > 256 {
				l.queue = nil
			}
			l.running = false
			l.mu.Unlock()
			return
		}
		o := l.queue[l.head]
		l.queue[l.head] = nil
		l.head++
		l.mu.Unlock()
		s.send(o)
	}
}

// send gives o to the broker, unless its caller gave up or its deadline
// passed while it waited.
func (s *sender) send(o *outgoing) {
	if !o.state.CompareAndSwap(outQueued, outSending) {
		return // cancelled: its caller was told it failed
	}
	if !time.Now().Before(o.deadline) {
		o.done(fmt.Errorf("%w: the message waited for the broker until its deadline", broker.ErrUnavailable))
		return
	}
	ctx, cancel := context.WithDeadline(o.ctx, o.deadline)
	err := s.g.brokerPublish(ctx, o.m)
	cancel()
	o.done(err)
}

// close refuses new messages; the queued ones are still sent.
func (s *sender) close() {
	for i := range s.lanes {
		l := &s.lanes[i]
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
	}
}

// wait waits until every lane is empty, or ctx ends (false).
func (s *sender) wait(ctx context.Context) bool {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// brokerPublish sends m to the other nodes, timed for the Observer when m
// is a publish (commands and node descriptions are not timed).
func (g *Gateway) brokerPublish(ctx context.Context, m *broker.Message) error {
	o := g.cfg.Observer
	if o == nil || m.Kind != broker.KindPublish {
		return g.broker.Publish(ctx, m)
	}
	start := time.Now()
	err := g.broker.Publish(ctx, m)
	o.BrokerPublish(time.Since(start), err)
	return err
}
