package redis

import (
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

// pubRequest is one Publish waiting for Redis's answer.
type pubRequest struct {
	channel string
	payload []byte
	sharded bool
	done    chan error // capacity 1
}

// publisher queues the publishes for the publish loop, which sends them in
// pipelined batches on one connection at a time: the queue's order is the
// order Redis receives them in.
type publisher struct {
	mu    sync.Mutex
	queue []*pubRequest
	wake  chan struct{} // capacity 1
}

func (p *publisher) enqueue(r *pubRequest) {
	p.mu.Lock()
	p.queue = append(p.queue, r)
	p.mu.Unlock()
	signal(p.wake)
}

// take removes the next batch from the queue.
func (p *publisher) take() []*pubRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, size := 0, 0
	for n < len(p.queue) && n < maxBatchCommands && (n == 0 || size+len(p.queue[n].payload) <= maxBatchBytes) {
		size += len(p.queue[n].payload)
		n++
	}
	batch := make([]*pubRequest, n)
	copy(batch, p.queue)
	rest := copy(p.queue, p.queue[n:])
	clear(p.queue[rest:])
	p.queue = p.queue[:rest]
	return batch
}

// publishLoop sends the queued publishes until Close, then fails those
// still queued.
func (b *Broker) publishLoop() {
	defer b.wg.Done()
	for {
		select {
		case <-b.pub.wake:
		case <-b.stop:
			for batch := b.pub.take(); len(batch) > 0; batch = b.pub.take() {
				for _, r := range batch {
					r.done <- broker.ErrClosed
				}
			}
			return
		}
		for batch := b.pub.take(); len(batch) > 0; batch = b.pub.take() {
			b.send(batch)
		}
	}
}

// send writes a batch in one pipeline and hands every caller its result.
func (b *Broker) send(batch []*pubRequest) {
	cmds, err := b.client.Pipelined(b.ctx, func(p goredis.Pipeliner) error {
		for _, r := range batch {
			if r.sharded {
				p.SPublish(b.ctx, r.channel, r.payload)
			} else {
				p.Publish(b.ctx, r.channel, r.payload)
			}
		}
		return nil
	})
	for i, r := range batch {
		e := err
		if i < len(cmds) {
			e = cmds[i].Err()
		}
		r.done <- e
	}
}
