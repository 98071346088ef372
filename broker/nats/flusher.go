package nats

import (
	"context"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/firetower-go/firetower/broker"
)

// flushTimeout bounds one flush round trip. It is a backstop: a server
// that stops answering is found stale by the client's pings
// (Config.PingInterval, two outstanding), which fails the flushes waiting
// on it, and each Publish is bounded by its own context.
const flushTimeout = 10 * time.Second

// flusher confirms publishes: a message is accepted once the server has
// answered a flush (PING, PONG) sent after it on the same connection. One
// goroutine (Broker.flushLoop) flushes for every publish waiting at that
// time, so that concurrent publishers share one round trip: one flush per
// batch, not per message. (Measured: with 16 publishers, about 7
// publishes per flush; with four loops flushing at once, overlapping
// round trips, about 2.5, and no more throughput on a 2-CPU machine.)
type flusher struct {
	mu      sync.Mutex
	waiters []chan error  // published, waiting for the next flush
	closed  bool          // Close began: no more publishes
	wake    chan struct{} // capacity 1
}

// publish hands data to nc and registers for the next flush. Both happen
// under the lock, so that Close, once it has set closed, knows every
// message that reached the connection is registered; flushLoop then
// flushes for them before it returns.
func (f *flusher) publish(nc *natsgo.Conn, subject string, data []byte) (chan error, error) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, broker.ErrClosed
	}
	if err := nc.Publish(subject, data); err != nil {
		f.mu.Unlock()
		return nil, err
	}
	done := make(chan error, 1)
	f.waiters = append(f.waiters, done)
	f.mu.Unlock()
	signal(f.wake)
	return done, nil
}

// close refuses further publishes.
func (f *flusher) close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	signal(f.wake)
}

// take swaps the waiters out into batch, and reports whether Close began.
func (f *flusher) take(batch []chan error) ([]chan error, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	batch, f.waiters = f.waiters, batch[:0]
	return batch, f.closed
}

// flushLoop flushes for the waiting publishes, one round trip for all of
// those waiting when it wakes, until Close; it flushes for the last ones
// before it returns.
func (b *Broker) flushLoop(nc *natsgo.Conn) {
	defer b.wg.Done()
	var batch []chan error
	for {
		<-b.flush.wake
		var closed bool
		batch, closed = b.flush.take(batch)
		if len(batch) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
			err := nc.FlushWithContext(ctx)
			cancel()
			b.stats.flushes.Add(1)
			for _, done := range batch {
				done <- err
			}
			clear(batch)
		}
		if closed {
			return
		}
	}
}
