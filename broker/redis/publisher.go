package redis

import (
	"context"
	"errors"
	"net"
	"sync"

	goredis "github.com/redis/go-redis/v9"

	"github.com/firetower-go/firetower/broker"
)

// Bounds of one pipelined batch of publishes: enough to fill a round trip
// under load, small enough that the first caller of a batch is not kept
// waiting behind megabytes.
const (
	maxBatchCommands = 512
	maxBatchBytes    = 4 << 20
)

// pubRequest is one Publish waiting for Redis's answer. cancelled and taken
// are guarded by publisher.mu.
type pubRequest struct {
	channel string
	payload []byte
	sharded bool
	done    chan error // capacity 1

	cancelled bool // the caller gave up before the publish loop took it: never sent
	taken     bool // handed to the network: the caller can no longer cancel it
}

// publisher queues the publishes for the publish loop, which sends them in
// pipelined batches on one connection at a time: the queue's order is the
// order Redis receives them in. The queue is a ring of bounded size: a
// publish that finds it full fails at once.
type publisher struct {
	mu     sync.Mutex
	ring   []*pubRequest
	head   int // index of the oldest request
	n      int // requests queued
	closed bool
	wake   chan struct{} // capacity 1
}

func newPublisher(size int) publisher {
	return publisher{ring: make([]*pubRequest, size), wake: make(chan struct{}, 1)}
}

// ErrQueueFull is wrapped, with broker.ErrUnavailable, by a Publish that
// found Config.PublishQueue publishes already waiting.
var ErrQueueFull = errors.New("redis: publish queue full")

var errStopped = errors.New("publisher stopped")

// enqueue queues r, or fails with ErrQueueFull or errStopped.
func (p *publisher) enqueue(r *pubRequest) error {
	p.mu.Lock()
	switch {
	case p.closed:
		p.mu.Unlock()
		return errStopped
	case p.n == len(p.ring):
		p.mu.Unlock()
		return ErrQueueFull
	}
	p.ring[(p.head+p.n)%len(p.ring)] = r
	p.n++
	p.mu.Unlock()
	signal(p.wake)
	return nil
}

// cancel marks r as given up by its caller, so that it is never sent, and
// reports true; false if r is already on its way to Redis (or answered).
func (p *publisher) cancel(r *pubRequest) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.taken {
		return false
	}
	r.cancelled = true
	return true
}

// take appends the next batch to batch: the oldest requests, cancelled
// ones skipped and dropped, marked taken. Only the head moves: nothing is
// shifted.
func (p *publisher) take(batch []*pubRequest) []*pubRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	size := 0
	for p.n > 0 && len(batch) < maxBatchCommands {
		r := p.ring[p.head]
		if !r.cancelled && len(batch) > 0 && size+len(r.payload) > maxBatchBytes {
			break
		}
		p.ring[p.head] = nil
		p.head = (p.head + 1) % len(p.ring)
		p.n--
		if r.cancelled {
			continue
		}
		r.taken = true
		size += len(r.payload)
		batch = append(batch, r)
	}
	return batch
}

// stop refuses new requests and fails the queued ones: never sent.
func (p *publisher) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for ; p.n > 0; p.n-- {
		if r := p.ring[p.head]; !r.cancelled {
			r.done <- broker.ErrClosed
		}
		p.ring[p.head] = nil
		p.head = (p.head + 1) % len(p.ring)
	}
}

// publishLoop sends the queued publishes until Close; a batch in flight
// then is finished (bounded by the connection's timeouts), so that its
// callers learn its outcome, and the queued ones fail as not sent.
func (b *Broker) publishLoop() {
	defer b.wg.Done()
	defer b.pub.stop()
	var batch []*pubRequest
	for {
		select {
		case <-b.pub.wake:
		case <-b.stop:
			return
		}
		for batch = b.pub.take(batch[:0]); len(batch) > 0; batch = b.pub.take(batch[:0]) {
			b.send(batch)
			clear(batch)
			select {
			case <-b.stop:
				return
			default:
			}
		}
	}
}

// send writes a batch in one pipeline and hands every caller its result:
// nil once Redis replied to its PUBLISH, an error wrapping
// broker.ErrUnavailable if it was certainly not published, one wrapping
// broker.ErrUnknownOutcome if it may have been. The pipeline runs on a
// context of its own, not cancelled by Close, and is bounded by the
// connection's read and write timeouts.
func (b *Broker) send(batch []*pubRequest) {
	ctx := context.Background()
	cmds, err := b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, r := range batch {
			if r.sharded {
				p.SPublish(ctx, r.channel, r.payload)
			} else {
				p.Publish(ctx, r.channel, r.payload)
			}
		}
		return nil
	})
	for i, r := range batch {
		e := err
		if i < len(cmds) {
			e = cmds[i].Err()
		}
		switch {
		case e == nil:
		case notSent(e):
			e = b.unavailable("publish", e)
		default:
			e = b.unknownOutcome(e.Error())
		}
		r.done <- e
	}
}

// notSent reports whether a PUBLISH that failed with err certainly did not
// publish: Redis answered with an error, or no connection could be had
// (a dial error, the pool's timeout, the client closed). A read or write
// error on an open connection may come after Redis received the command.
func notSent(err error) bool {
	var rerr goredis.Error
	var op *net.OpError
	switch {
	case errors.As(err, &rerr):
		return true
	case errors.As(err, &op) && op.Op == "dial":
		return true
	case errors.Is(err, goredis.ErrPoolTimeout), errors.Is(err, goredis.ErrClosed):
		return true
	}
	return false
}
