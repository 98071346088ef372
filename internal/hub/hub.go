// Package hub is the hot path of a gateway: a sharded index from topic to the
// local subscribers of it, and the fan-out that hands every one of them the
// message with one encoded frame per protocol version, without blocking.
//
// The hub knows nothing of brokers or connections: it delivers its own
// Message, and it is generic over the subscriber type of its user, so that
// the user gets its own subscribers back (Subscribers) without a type
// assertion.
package hub

import (
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/firetower-go/firetower/protocol"
)

// Message is what the hub fans out: a published JSON value on a topic.
type Message struct {
	Topic string
	// ID is the message id; v2 frames carry it.
	ID uint64
	// Data is immutable once published: MessageOnly subscribers keep it.
	Data []byte
}

// Delivery is a message as one subscriber receives it: what its Version
// asks for. It is four words, passed in registers: the whole Message and
// the frame by value (nine words) went through the stack on every call and
// made the loop about twice as slow per subscriber (stub subscribers), and
// a *Delivery would escape, one more allocation per Publish.
type Delivery struct {
	// Frame is the complete, immutable websocket text frame of the message
	// in the subscriber's protocol version, the same slice for every
	// subscriber of that version; nil for a MessageOnly subscriber.
	Frame []byte
	// Message is the message for a MessageOnly subscriber, nil for the
	// others: one copy per Publish, made the first time such a subscriber
	// is met and shared by all of them.
	Message *Message
}

// MessageOnly is the Version of a subscriber that is not a websocket: it
// takes the message and no frame, so none is encoded for it.
const MessageOnly protocol.Version = 0

// Subscriber is a local subscriber as the hub sees it: a connection or a
// consumer inside the process.
type Subscriber interface {
	// Version is the protocol of the frame the subscriber takes (V1, V2,
	// or MessageOnly); it never changes.
	Version() protocol.Version
	// Deliver hands over one message. It is called with the topic's shard
	// locked: it must not block or call into the hub. d.Frame and
	// d.Message are shared with other subscribers and must not be
	// modified; they may be kept.
	Deliver(d Delivery)
}

// InterestFunc is told the new local subscriber count of a topic each time
// it changes. It is called with the topic's shard locked, so calls for one
// topic arrive in order; it must not call back into the hub.
type InterestFunc func(topic string, count int64)

const shardCount = 64 // a power of two; enough to keep lock contention low on many-core boxes

// Hub is a sharded topic -> local subscribers index of subscribers of type S
// (an interface of the user's that embeds Subscriber, or a pointer type).
// The zero value is not usable; call New.
//
// Lock order: a caller may hold its own connection locks when it calls
// Subscribe or Unsubscribe; the hub holds a shard lock while calling
// Subscriber.Version, Subscriber.Deliver and the InterestFunc, which take
// only leaf locks.
type Hub[S Subscriber] struct {
	seed     maphash.Seed
	interest InterestFunc
	shards   [shardCount]shard
}

type shard struct {
	mu     sync.RWMutex
	topics map[string]*subscribers
}

// subscribers is a set kept as a slice for fast iteration, with an index for
// O(1) removal. It holds Subscriber, not S: Publish calls the methods of
// every element, and a method call through a type parameter goes through
// the instantiation's dictionary and a wrapper (two indirect calls instead
// of one), which made the fan-out measurably slower.
// Subscribers asserts back to S, which cannot fail: only Subscribe adds.
type subscribers struct {
	list []Subscriber
	pos  map[Subscriber]int
	// published counts the messages fanned out on the topic since it got
	// its first subscriber: one atomic add per Publish, never per delivery.
	published atomic.Int64
}

// New returns an empty hub. interest may be nil.
func New[S Subscriber](interest InterestFunc) *Hub[S] {
	h := &Hub[S]{seed: maphash.MakeSeed(), interest: interest}
	for i := range h.shards {
		h.shards[i].topics = make(map[string]*subscribers)
	}
	return h
}

func (h *Hub[S]) shard(topic string) *shard {
	return &h.shards[maphash.String(h.seed, topic)&(shardCount-1)]
}

// Subscribe adds s to topic and reports whether it was not there already.
func (h *Hub[S]) Subscribe(topic string, s S) bool {
	sub := Subscriber(s) // the sets hold Subscriber (see subscribers)
	sh := h.shard(topic)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	set := sh.topics[topic]
	if set == nil {
		set = &subscribers{pos: make(map[Subscriber]int)}
		sh.topics[topic] = set
	}
	if _, ok := set.pos[sub]; ok {
		return false
	}
	set.pos[sub] = len(set.list)
	set.list = append(set.list, sub)
	if h.interest != nil {
		h.interest(topic, int64(len(set.list)))
	}
	return true
}

// Unsubscribe removes s from topic and reports whether it was there.
func (h *Hub[S]) Unsubscribe(topic string, s S) bool {
	sub := Subscriber(s) // the sets hold Subscriber (see subscribers)
	sh := h.shard(topic)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	set := sh.topics[topic]
	if set == nil {
		return false
	}
	i, ok := set.pos[sub]
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
	delete(set.pos, sub)
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
func (h *Hub[S]) Count(topic string) int64 {
	sh := h.shard(topic)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if set := sh.topics[topic]; set != nil {
		return int64(len(set.list))
	}
	return 0
}

// Subscribers returns a snapshot of the local subscribers of topic.
func (h *Hub[S]) Subscribers(topic string) []S {
	sh := h.shard(topic)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	set := sh.topics[topic]
	if set == nil {
		return nil
	}
	typed := make([]S, len(set.list))
	for i, s := range set.list {
		typed[i] = s.(S)
	}
	return typed
}

// TopicCount returns the number of topics with at least one local subscriber.
func (h *Hub[S]) TopicCount() int {
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
func (h *Hub[S]) Range(fn func(topic string, count int64) bool) {
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
func (h *Hub[S]) RangeStats(fn func(topic string, count, published int64) bool) {
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
func (h *Hub[S]) Stat(topic string) (count, published int64) {
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
// to every subscriber of that version; MessageOnly subscribers share one
// copy of m and cause no encoding. It never blocks on a subscriber.
func (h *Hub[S]) Publish(m Message) int {
	sh := h.shard(m.Topic)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	set := sh.topics[m.Topic]
	if set == nil {
		return 0
	}
	set.published.Add(1)
	var v1, v2 []byte
	var msg *Message
	for _, s := range set.list {
		var d Delivery
		switch s.Version() {
		case protocol.V2:
			if v2 == nil {
				v2 = encodeV2(m)
			}
			d.Frame = v2
		case MessageOnly:
			if msg == nil {
				msg = new(Message)
				*msg = m
			}
			d.Message = msg
		default:
			if v1 == nil {
				v1 = protocol.TextFrame(m.Data)
			}
			d.Frame = v1
		}
		s.Deliver(d)
	}
	return len(set.list)
}

// encodeV2 returns the complete v2 text frame of m.
func encodeV2(m Message) []byte {
	n := protocol.MessageV2Len(m.Topic, m.ID, m.Data)
	b := make([]byte, 0, protocol.FrameHeaderLen(n)+n)
	b = protocol.AppendFrameHeader(b, protocol.OpText, n)
	return protocol.AppendMessageV2(b, m.Topic, m.ID, m.Data)
}
