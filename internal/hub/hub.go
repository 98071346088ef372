// Package hub is the hot path of a gateway: a sharded index from topic to the
// local connections subscribed to it, and the fan-out that hands one encoded
// frame per protocol version to every one of them without blocking.
package hub

import (
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/protocol"
)

// Subscriber is a local connection as the hub sees it.
type Subscriber interface {
	// Version is the connection's protocol; it never changes.
	Version() protocol.Version
	// Enqueue queues one complete, immutable websocket frame for writing.
	// It must not block and must not retain frame beyond writing it; the same
	// slice is shared by every subscriber of the message.
	Enqueue(frame []byte)
}

// InterestFunc is told the new local subscriber count of a topic each time
// it changes. It is called with the topic's shard locked, so calls for one
// topic arrive in order; it must not call back into the hub.
type InterestFunc func(topic string, count int64)

const shardCount = 64 // a power of two; enough to keep lock contention low on many-core boxes

// Hub is a sharded topic -> local subscribers index. The zero value is not
// usable; call New.
//
// Lock order: a caller may hold its own connection locks when it calls
// Subscribe or Unsubscribe; the hub holds a shard lock while calling
// Subscriber.Enqueue and the InterestFunc, which take only leaf locks.
type Hub struct {
	seed     maphash.Seed
	interest InterestFunc
	shards   [shardCount]shard
}

type shard struct {
	mu     sync.RWMutex
	topics map[string]*subscribers
}

// subscribers is a set kept as a slice for fast iteration, with an index for
// O(1) removal.
type subscribers struct {
	list []Subscriber
	pos  map[Subscriber]int
	// published counts the messages fanned out on the topic since it got
	// its first subscriber: one atomic add per Publish, never per delivery.
	published atomic.Int64
}

// New returns an empty hub. interest may be nil.
func New(interest InterestFunc) *Hub {
	h := &Hub{seed: maphash.MakeSeed(), interest: interest}
	for i := range h.shards {
		h.shards[i].topics = make(map[string]*subscribers)
	}
	return h
}

func (h *Hub) shard(topic string) *shard {
	return &h.shards[maphash.String(h.seed, topic)&(shardCount-1)]
}

// Subscribe adds s to topic and reports whether it was not there already.
func (h *Hub) Subscribe(topic string, s Subscriber) bool {
	sh := h.shard(topic)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	set := sh.topics[topic]
	if set == nil {
		set = &subscribers{pos: make(map[Subscriber]int)}
		sh.topics[topic] = set
	}
	if _, ok := set.pos[s]; ok {
		return false
	}
	set.pos[s] = len(set.list)
	set.list = append(set.list, s)
	if h.interest != nil {
		h.interest(topic, int64(len(set.list)))
	}
	return true
}

// Unsubscribe removes s from topic and reports whether it was there.
func (h *Hub) Unsubscribe(topic string, s Subscriber) bool {
	sh := h.shard(topic)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	set := sh.topics[topic]
	if set == nil {
		return false
	}
	i, ok := set.pos[s]
	if !ok {
		return false
	}
	last := len(set.list) - 1
	if i != last {
		moved := set.list[last]
		set.list[i] = moved
		set.pos[moved] = i
	}
	set.list[last] = nil
	set.list = set.list[:last]
	delete(set.pos, s)
	if last == 0 {
		delete(sh.topics, topic)
	} else if cap(set.list) > 64 && len(set.list) < cap(set.list)/4 {
		set.list = append([]Subscriber(nil), set.list...) // give memory back after a crowd leaves
	}
	if h.interest != nil {
		h.interest(topic, int64(last))
	}
	return true
}

// Count returns the number of local subscribers of topic.
func (h *Hub) Count(topic string) int64 {
	sh := h.shard(topic)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if set := sh.topics[topic]; set != nil {
		return int64(len(set.list))
	}
	return 0
}

// Subscribers returns a snapshot of the local subscribers of topic.
func (h *Hub) Subscribers(topic string) []Subscriber {
	sh := h.shard(topic)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if set := sh.topics[topic]; set != nil {
		return append([]Subscriber(nil), set.list...)
	}
	return nil
}

// TopicCount returns the number of topics with at least one local subscriber.
func (h *Hub) TopicCount() int {
	n := 0
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		n += len(sh.topics)
		sh.mu.RUnlock()
	}
	return n
}

// Range calls fn with every topic and its local subscriber count, one shard
// at a time, until fn returns false. fn must not call into the hub.
func (h *Hub) Range(fn func(topic string, count int64) bool) {
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		for t, set := range sh.topics {
			if !fn(t, int64(len(set.list))) {
				sh.mu.RUnlock()
				return
			}
		}
		sh.mu.RUnlock()
	}
}

// RangeStats is Range with the number of messages each topic has fanned out
// since it got its first local subscriber (the counter restarts at 0 when a
// topic loses its last subscriber and comes back).
func (h *Hub) RangeStats(fn func(topic string, count, published int64) bool) {
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		for t, set := range sh.topics {
			if !fn(t, int64(len(set.list)), set.published.Load()) {
				sh.mu.RUnlock()
				return
			}
		}
		sh.mu.RUnlock()
	}
}

// Stat returns a topic's local subscriber count and its published counter
// (see RangeStats); both are 0 for a topic without local subscribers.
func (h *Hub) Stat(topic string) (count, published int64) {
	sh := h.shard(topic)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if set := sh.topics[topic]; set != nil {
		return int64(len(set.list)), set.published.Load()
	}
	return 0, 0
}

// Publish hands m to every local subscriber of m.Topic and returns how many
// there were. The frame for each protocol version is encoded at most once,
// the first time a subscriber of that version is met, and the same bytes go
// to every subscriber. It never blocks on a subscriber.
func (h *Hub) Publish(m *broker.Message) int {
	sh := h.shard(m.Topic)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	set := sh.topics[m.Topic]
	if set == nil {
		return 0
	}
	set.published.Add(1)
	var v1, v2 []byte
	for _, s := range set.list {
		if s.Version() == protocol.V2 {
			if v2 == nil {
				v2 = EncodeV2(m)
			}
			s.Enqueue(v2)
		} else {
			if v1 == nil {
				v1 = protocol.TextFrame(m.Data)
			}
			s.Enqueue(v1)
		}
	}
	return len(set.list)
}

// EncodeV2 returns the complete v2 text frame of m.
func EncodeV2(m *broker.Message) []byte {
	n := protocol.MessageV2Len(m.Topic, m.ID, m.Data)
	b := make([]byte, 0, protocol.FrameHeaderLen(n)+n)
	b = protocol.AppendFrameHeader(b, protocol.OpText, n)
	return protocol.AppendMessageV2(b, m.Topic, m.ID, m.Data)
}
