package clustertest

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker"
)

// Benchmarks of the path gateway -> broker -> gateway, shared by the
// external brokers so that their figures compare: the same publishers,
// receivers, payloads and flow control as broker/tm's benchmarks.

// NewNode returns a new, unstarted node of one benchmark cluster.
type NewNode func(b *testing.B) broker.Broker

// benchWindow bounds the messages in flight (published, not yet received
// by every receiver), as in broker/tm's benchmarks: without it a
// publisher outruns the receivers on a 2-core machine and the run measures
// the server's or the client's overflow path instead of the sustainable
// rate.
const benchWindow = 2048

// startNode starts a node whose handler calls h.
func startNode(b *testing.B, newNode NewNode, id string, h broker.Handler) broker.Broker {
	b.Helper()
	n := newNode(b)
	if err := n.Start(context.Background(), id, h); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = n.Close() })
	return n
}

// waitRouted publishes probes from pub until received has grown by want.
func waitRouted(b *testing.B, pub broker.Broker, topic string, received *atomic.Int64, want int64) {
	b.Helper()
	CheckFor(b, 10*time.Second, func() error {
		before := received.Load()
		if err := pub.Publish(context.Background(), &broker.Message{Topic: topic, Origin: "pub", Data: []byte("0")}); err != nil {
			return err
		}
		deadline := time.Now().Add(50 * time.Millisecond)
		for received.Load()-before < want && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if got := received.Load() - before; got < want {
			return fmt.Errorf("%d of %d receivers reached", got, want)
		}
		return nil
	})
}

// RoutedPublish measures cross-node deliveries per second: publishers
// goroutines on one node publish b.N messages of size bytes in all, each
// call after the previous one returned, keeping at most benchWindow
// messages in flight; receivers other nodes have interest in the topic.
// The clock stops when every receiver has every message.
func RoutedPublish(b *testing.B, newNode NewNode, publishers, receivers, size int) {
	const topic = "bench"
	var received atomic.Int64
	pub := startNode(b, newNode, "pub", func(*broker.Message) {})
	for i := range receivers {
		r := startNode(b, newNode, fmt.Sprintf("r%d", i), func(*broker.Message) { received.Add(1) })
		r.SetInterest(topic, 1)
	}
	waitRouted(b, pub, topic, &received, int64(receivers))
	time.Sleep(50 * time.Millisecond) // let the last probes land before resetting
	received.Store(0)

	data := []byte(`"` + strings.Repeat("x", size-2) + `"`)
	want := int64(b.N * receivers)
	var next atomic.Int64 // messages claimed by the publishers
	var failed atomic.Value
	b.SetBytes(int64(size))
	b.ResetTimer()
	began := time.Now()
	var wg sync.WaitGroup
	for range publishers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				for i-received.Load()/int64(receivers) > benchWindow {
					time.Sleep(20 * time.Microsecond)
				}
				if err := pub.Publish(context.Background(), &broker.Message{Topic: topic, ID: uint64(i), Origin: "pub", Data: data}); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for received.Load() < want {
		if time.Now().After(deadline) {
			b.Fatalf("received %d of %d", received.Load(), want)
		}
		time.Sleep(100 * time.Microsecond)
	}
	elapsed := time.Since(began)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "publishes/s")
	b.ReportMetric(float64(want)/elapsed.Seconds(), "deliveries/s")
}

// Latency measures the time from Publish on one node to the handler call
// on another, one message at a time (no queueing): p50 and p99.
func Latency(b *testing.B, newNode NewNode) {
	const topic = "latency"
	arrived := make(chan time.Time, 1)
	var received atomic.Int64
	pub := startNode(b, newNode, "pub", func(*broker.Message) {})
	r := startNode(b, newNode, "r", func(m *broker.Message) {
		received.Add(1)
		if len(m.Data) == 8 {
			arrived <- time.Now()
		}
	})
	r.SetInterest(topic, 1)
	waitRouted(b, pub, topic, &received, 1)
	data := make([]byte, 8) // not JSON: the broker carries bytes
	samples := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		binary.BigEndian.PutUint64(data, uint64(i))
		sent := time.Now()
		if err := pub.Publish(context.Background(), &broker.Message{Topic: topic, ID: uint64(i + 1), Origin: "pub", Data: slices.Clone(data)}); err != nil {
			b.Fatal(err)
		}
		select {
		case at := <-arrived:
			samples = append(samples, at.Sub(sent))
		case <-time.After(5 * time.Second):
			b.Fatal("a message was lost")
		}
	}
	b.StopTimer()
	if len(samples) == 0 {
		return
	}
	slices.Sort(samples)
	at := func(p float64) time.Duration { return samples[min(len(samples)-1, int(p*float64(len(samples))))] }
	b.ReportMetric(float64(at(0.50).Microseconds()), "p50-µs")
	b.ReportMetric(float64(at(0.99).Microseconds()), "p99-µs")
}
