package gateway

import (
	"fmt"
	"testing"
	"time"

	"github.com/firetower-go/firetower/internal/hub"
	"github.com/firetower-go/firetower/protocol"
)

type nopSub struct{ _ byte }

func (*nopSub) Version() protocol.Version { return protocol.V1 }
func (*nopSub) Deliver(hub.Delivery)      {}
func (*nopSub) tower() *FireTower         { return nil }

// BenchmarkTopicSample is the cost of one topic sample (rates and top
// lists), taken at most once a second, for 1,000 and 100,000 local topics.
func BenchmarkTopicSample(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("topics=%d", n), func(b *testing.B) {
			h := hub.New[subscriber](nil)
			for i := range n {
				h.Subscribe(fmt.Sprintf("topic-%d", i), new(nopSub))
			}
			var tr topicTracker
			now := time.Now()
			tr.sample(h, now)
			b.ReportAllocs()
			for b.Loop() {
				now = now.Add(topicSampleEvery)
				if top := tr.sample(h, now); len(top) != TopTopics {
					b.Fatalf("%d top topics", len(top))
				}
			}
		})
	}
}
