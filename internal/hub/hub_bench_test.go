package hub_test

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/firetower-go/firetower/internal/hub"
	"github.com/firetower-go/firetower/protocol"
)

// benchSub is the cheapest possible Subscriber, so that the benchmarks below
// measure the hub and not a connection: Deliver appends to a slice allocated
// up front and starts over when it is full, which never allocates.
type benchSub struct {
	v   protocol.Version
	got [][]byte
}

func newBenchSub(v protocol.Version) *benchSub {
	return &benchSub{v: v, got: make([][]byte, 0, 16)}
}

func (s *benchSub) Version() protocol.Version { return s.v }

func (s *benchSub) Deliver(d hub.Delivery) {
	if len(s.got) == cap(s.got) {
		s.got = s.got[:0]
	}
	s.got = append(s.got, d.Frame)
}

// benchPayload is a typical ~100-byte JSON message.
var benchPayload = []byte(`{"from":"user-1234","room":"lobby","text":"hello, this is a hundred byte payload for benchmarks..."}`)

// benchHub returns a hub with n subscribers of topic; every v2every-th
// subscriber speaks v2 (0: none).
func benchHub(topic string, n, v2every int) *hub.Hub[hub.Subscriber] {
	h := hub.New[hub.Subscriber](nil)
	for i := range n {
		v := protocol.V1
		if v2every > 0 && i%v2every == 0 {
			v = protocol.V2
		}
		h.Subscribe(topic, newBenchSub(v))
	}
	return h
}

// benchMallocs returns the process's heap allocation count so far.
func benchMallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// benchPublish publishes m b.N times to the subs subscribers of m.Topic and
// reports ns and allocations per delivery (one frame handed to one
// subscriber). It uses the b.N loop, not b.Loop, so that the allocation
// count it reads covers exactly the b.N timed iterations.
func benchPublish(b *testing.B, h *hub.Hub[hub.Subscriber], m hub.Message, subs int) {
	b.ReportAllocs()
	m0 := benchMallocs()
	b.ResetTimer()
	for range b.N {
		if got := h.Publish(m); got != subs {
			b.Fatalf("Publish reached %d subscribers, want %d", got, subs)
		}
	}
	b.StopTimer()
	allocs := benchMallocs() - m0
	deliveries := float64(b.N) * float64(subs)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/deliveries, "ns/delivery")
	b.ReportMetric(float64(allocs)/deliveries, "allocs/delivery")
}

// BenchmarkPublishFanout is the hub alone: one message to 1, 100 and 10,000
// local v1 subscribers. allocs/op stays at 1 (the frame) whatever the
// subscriber count.
func BenchmarkPublishFanout(b *testing.B) {
	for _, n := range []int{1, 100, 10_000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			h := benchHub("room", n, 0)
			benchPublish(b, h, hub.Message{Topic: "room", ID: 1, Data: benchPayload}, n)
		})
	}
}

// BenchmarkPublishFanoutMixed has every other subscriber on v2, so each
// message is encoded twice (allocs/op 2).
func BenchmarkPublishFanoutMixed(b *testing.B) {
	for _, n := range []int{2, 100, 10_000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			h := benchHub("room", n, 2)
			m := hub.Message{Topic: "room", ID: 1_234_567_890_123_456_789, Data: benchPayload}
			benchPublish(b, h, m, n)
		})
	}
}

// TestPublishAllocsDoNotGrowWithSubscribers is the allocation claim of the
// fan-out as a test: the per-subscriber path allocates nothing, only the one
// encode per protocol version does, and subscribers that take the message
// only share one copy of it.
func TestPublishAllocsDoNotGrowWithSubscribers(t *testing.T) {
	for _, tc := range []struct {
		name        string
		v2every     int
		messageOnly bool
		want        float64
	}{
		{"v1", 0, false, 1},
		{"v1+v2", 2, false, 2},
		{"message-only", 0, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, n := range []int{2, 10_000} {
				h := benchHub("room", n, tc.v2every)
				if tc.messageOnly {
					h = hub.New[hub.Subscriber](nil)
					for range n {
						h.Subscribe("room", newBenchSub(hub.MessageOnly))
					}
				}
				m := hub.Message{Topic: "room", ID: 7, Data: benchPayload}
				got := testing.AllocsPerRun(50, func() { h.Publish(m) })
				if got != tc.want {
					t.Errorf("%d subscribers: %v allocs per Publish, want %v", n, got, tc.want)
				}
			}
		})
	}
}

const benchTopics = 10_000

// benchIndex returns a hub holding benchTopics topics of one subscriber each,
// and their names.
func benchIndex() (*hub.Hub[hub.Subscriber], []string) {
	h := hub.New[hub.Subscriber](nil)
	topics := make([]string, benchTopics)
	for i := range topics {
		topics[i] = fmt.Sprintf("topic-%d", i)
		h.Subscribe(topics[i], newBenchSub(protocol.V1))
	}
	return h, topics
}

// BenchmarkTopicIndex measures the index operations with 10,000 topics
// present: a subscription that creates and deletes a topic, one that joins
// and leaves an existing topic, Count, and Publish to a topic nobody holds.
func BenchmarkTopicIndex(b *testing.B) {
	b.Run("subscribe+unsubscribe/new-topic", func(b *testing.B) {
		h, _ := benchIndex()
		s := newBenchSub(protocol.V1)
		b.ReportAllocs()
		for b.Loop() {
			h.Subscribe("fresh-topic", s)
			h.Unsubscribe("fresh-topic", s)
		}
	})
	b.Run("subscribe+unsubscribe/existing-topic", func(b *testing.B) {
		h, topics := benchIndex()
		s := newBenchSub(protocol.V1)
		topic := topics[benchTopics/2]
		b.ReportAllocs()
		for b.Loop() {
			h.Subscribe(topic, s)
			h.Unsubscribe(topic, s)
		}
	})
	b.Run("count", func(b *testing.B) {
		h, topics := benchIndex()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			h.Count(topics[i])
			i = (i + 1) % benchTopics
		}
	})
	b.Run("publish-no-subscribers", func(b *testing.B) {
		h, _ := benchIndex()
		m := hub.Message{Topic: "nobody-here", ID: 1, Data: benchPayload}
		b.ReportAllocs()
		for b.Loop() {
			if h.Publish(m) != 0 {
				b.Fatal("unexpected subscriber")
			}
		}
	})
}

// BenchmarkPublishParallel publishes from every P at once, each goroutine to
// a topic of its own with 100 subscribers (so the subscribers are not shared
// and the shards mostly differ); ns/delivery is wall time over all
// goroutines.
func BenchmarkPublishParallel(b *testing.B) {
	const subs = 100
	goroutines := runtime.GOMAXPROCS(0) // RunParallel's default parallelism of 1
	h := hub.New[hub.Subscriber](nil)
	msgs := make([]hub.Message, goroutines)
	for g := range msgs {
		topic := fmt.Sprintf("parallel-%d", g)
		for range subs {
			h.Subscribe(topic, newBenchSub(protocol.V1))
		}
		msgs[g] = hub.Message{Topic: topic, ID: 1, Data: benchPayload}
	}
	var next atomic.Int32
	b.ReportAllocs()
	m0 := benchMallocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		m := msgs[int(next.Add(1)-1)%goroutines]
		for pb.Next() {
			h.Publish(m)
		}
	})
	b.StopTimer()
	allocs := benchMallocs() - m0
	deliveries := float64(b.N) * subs
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/deliveries, "ns/delivery")
	b.ReportMetric(float64(allocs)/deliveries, "allocs/delivery")
}

// BenchmarkPublishParallelSameTopic publishes from every P at once to one
// topic of 100 subscribers: the worst case for the topic's shared state
// (its published counter is one atomic add per Publish, on one cache line
// shared by all publishers). The subscribers do nothing, as several
// goroutines hand them frames at once. ns/delivery is wall time over all
// goroutines.
func BenchmarkPublishParallelSameTopic(b *testing.B) {
	const subs = 100
	h := hub.New[hub.Subscriber](nil)
	for range subs {
		h.Subscribe("shared", new(nopSub))
	}
	m := hub.Message{Topic: "shared", ID: 1, Data: benchPayload}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h.Publish(m)
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/(float64(b.N)*subs), "ns/delivery")
}

// nopSub is a Subscriber that drops every frame: safe for concurrent use.
type nopSub struct{ _ byte }

func (*nopSub) Version() protocol.Version { return protocol.V1 }
func (*nopSub) Deliver(hub.Delivery)      {}
