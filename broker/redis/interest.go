package redis

import (
	"context"
	"strconv"
	"time"

	"github.com/firetower-go/firetower/broker/internal/backoff"
)

// applyChunk bounds the topic/count pairs of one applyScript run.
const applyChunk = 1000

// interestLoop applies interest changes until Close: it (un)subscribes the
// changed topics on the live subscription connection and writes their
// counts to the node's hash, and renews the node's lease every Lease/3.
// After a failed write it retries with backoff, writing the whole table.
func (b *Broker) interestLoop() {
	defer b.wg.Done()
	refresh := time.NewTicker(b.cfg.Lease / 3)
	defer refresh.Stop()
	var retry <-chan time.Time // set while waiting to retry a failed write
	failures := 0
	var stored int64 // the length of the node's hash after the last write
	for {
		select {
		case <-b.stop:
			return
		case <-b.wake:
		case <-refresh.C:
		case <-retry:
			retry = nil
		}
		topics := b.takeDirty()
		b.syncSubscriptions(topics)
		if retry != nil {
			continue // the retry writes the whole table
		}
		lost, n, err := b.writeCounts(topics, stored)
		if err != nil {
			if b.isClosed() {
				return
			}
			b.stats.countWriteErrors.Add(1)
			b.mu.Lock()
			b.resync = true
			b.mu.Unlock()
			failures++
			if failures == 1 {
				b.log.Warn("cannot write subscriber counts to redis; retrying with backoff", "err", err)
			}
			retry = time.After(backoff.Delay(failures-1, b.cfg.BackoffMin, b.cfg.BackoffMax))
			continue
		}
		if failures > 0 {
			b.log.Info("subscriber counts written to redis again", "after_failures", failures)
		}
		failures = 0
		if lost {
			// Redis lost the hash: restarted, or the lease ran out.
			b.log.Warn("this node's subscriber counts vanished from redis; writing them again")
			b.mu.Lock()
			b.resync = true
			b.mu.Unlock()
			signal(b.wake)
		}
		stored = n
	}
}

// takeDirty returns the topics changed since the last call.
func (b *Broker) takeDirty() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	topics := make([]string, 0, len(b.dirty))
	for topic := range b.dirty {
		topics = append(topics, topic)
	}
	clear(b.dirty)
	return topics
}

// writeCounts writes the counts of topics (or, after a resync request, the
// whole table) and renews the lease. It returns the length of the node's
// hash after the write, and whether the hash had vanished although stored,
// its length after the previous write, was not 0.
func (b *Broker) writeCounts(topics []string, stored int64) (lost bool, n int64, err error) {
	b.mu.Lock()
	full := b.resync
	b.resync = false
	var pairs []any
	if full {
		pairs = make([]any, 0, 2*len(b.interest))
		for topic, c := range b.interest {
			pairs = append(pairs, topic, strconv.FormatInt(c, 10))
		}
	} else {
		pairs = make([]any, 0, 2*len(topics))
		for _, topic := range topics {
			pairs = append(pairs, topic, strconv.FormatInt(b.interest[topic], 10))
		}
	}
	b.mu.Unlock()

	keys := []string{b.names.nodes, b.names.node(b.node)}
	lease := strconv.FormatInt(b.cfg.Lease.Milliseconds(), 10)
	first := true
	for first || len(pairs) > 0 {
		k := min(len(pairs), 2*applyChunk)
		reset := "0"
		if full && first {
			reset = "1"
		}
		args := append([]any{b.node, lease, reset}, pairs[:k]...)
		ctx, cancel := context.WithTimeout(b.ctx, b.callTimeout())
		res, err := applyScript.Run(ctx, b.client, keys, args...).Int64Slice()
		cancel()
		if err != nil {
			return false, 0, err
		}
		if first && len(res) == 2 {
			lost = !full && res[0] == 0 && stored > 0
		}
		if len(res) == 2 {
			n = res[1]
		}
		first = false
		pairs = pairs[k:]
	}
	return lost, n, nil
}

// callTimeout bounds one background call to Redis: a write and a read.
func (b *Broker) callTimeout() time.Duration {
	o := &b.cfg.Options
	if o.ReadTimeout <= 0 || o.WriteTimeout <= 0 { // go-redis's "no timeout" settings
		return 2 * DefaultIOTimeout
	}
	return o.ReadTimeout + o.WriteTimeout
}
