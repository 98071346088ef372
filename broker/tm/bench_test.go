package tm_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/broker/tm"
	"github.com/firetower-go/firetower/internal/clustertest"
	"github.com/firetower-go/firetower/topicmgr"
)

// Benchmarks of the path gateway -> topic manager -> gateway on loopback,
// everything in one process (the 2-core machines of docs/PERFORMANCE.md run
// the manager and both brokers on the same cores). Run with
//
//	go test -run '^$' -bench . -benchtime 3s ./broker/tm

// benchCluster is a manager and a publishing node a, with receivers that
// count what they get.
type benchCluster struct {
	a         *tm.Broker
	received  atomic.Int64
	receivers int
}

func newBenchCluster(b *testing.B, managers, receivers int, topic string) *benchCluster {
	b.Helper()
	var ms []*manager
	for range managers {
		ms = append(ms, startManager(b, topicmgr.Config{}))
	}
	cfg := fastConfig(ms...)
	bc := &benchCluster{receivers: receivers}
	bc.a = newBroker(b, cfg)
	if err := bc.a.Start(context.Background(), "a", func(*broker.Message) {}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bc.a.Close() })
	for i := range receivers {
		r := newBroker(b, cfg)
		if err := r.Start(context.Background(), fmt.Sprintf("r%d", i), func(*broker.Message) { bc.received.Add(1) }); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = r.Close() })
		r.SetInterest(topic, 1)
	}
	// Wait until every receiver's interest is routed.
	checkFor(b, 5*time.Second, func() error {
		before := bc.received.Load()
		if err := bc.a.Publish(context.Background(), &broker.Message{Topic: topic, Origin: "a", Data: []byte("0")}); err != nil {
			return err
		}
		time.Sleep(5 * time.Millisecond)
		if got := bc.received.Load() - before; got < int64(receivers) {
			return fmt.Errorf("%d of %d receivers reached", got, receivers)
		}
		return nil
	})
	time.Sleep(20 * time.Millisecond)
	bc.received.Store(0)
	return bc
}

// benchWindow bounds the messages in flight (published, not yet received
// by every receiver). Without a window the publisher outruns the receivers
// on a 2-core machine, the manager's queue for a receiver overflows, and the
// receiver is cut off (by design: the manager never blocks on a gateway);
// with it the benchmark measures the sustainable rate.
const benchWindow = 2048

// BenchmarkRoutedPublish measures routed publishes per second: node a
// publishes b.N messages, keeping at most benchWindow in flight; the clock
// stops when every receiver has all of them. Each Publish returns once the
// manager has confirmed it, so this one publisher makes one round trip per
// message (2026-12-04, -benchtime 2000x, 2 shared CPUs: 128 B 83k-282k
// publishes/s before the confirmations, 15k-17k after; concurrent
// publishers share CONFIRMs).
func BenchmarkRoutedPublish(b *testing.B) {
	for _, bc := range []struct {
		managers, receivers, size int
	}{
		{1, 1, 128}, {1, 1, 4 << 10}, {1, 4, 128}, {3, 1, 128},
	} {
		b.Run(fmt.Sprintf("managers=%d/receivers=%d/payload=%d", bc.managers, bc.receivers, bc.size), func(b *testing.B) {
			const topic = "bench"
			c := newBenchCluster(b, bc.managers, bc.receivers, topic)
			data := []byte(`"` + strings.Repeat("x", bc.size-2) + `"`)
			ctx := context.Background()
			want := int64(b.N * bc.receivers)
			b.SetBytes(int64(bc.size))
			b.ResetTimer()
			began := time.Now()
			for i := range b.N {
				for int64(i)-c.received.Load()/int64(bc.receivers) > benchWindow {
					time.Sleep(20 * time.Microsecond)
				}
				if err := c.a.Publish(ctx, &broker.Message{Topic: topic, ID: uint64(i + 1), Origin: "a", Data: data}); err != nil {
					b.Fatal(err)
				}
			}
			deadline := time.Now().Add(10 * time.Second)
			for c.received.Load() < want {
				if time.Now().After(deadline) {
					b.Fatalf("received %d of %d", c.received.Load(), want)
				}
				time.Sleep(100 * time.Microsecond)
			}
			elapsed := time.Since(began)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "publishes/s")
			b.ReportMetric(float64(want)/elapsed.Seconds(), "deliveries/s")
		})
	}
}

// BenchmarkLatency measures the time from Publish on node a to the handler
// call on node b, one message at a time (no queueing): p50 and p99.
func BenchmarkLatency(b *testing.B) {
	const topic = "latency"
	ms := startManager(b, topicmgr.Config{})
	cfg := fastConfig(ms)
	arrived := make(chan time.Time, 1)
	a := startNode(b, "a", cfg)
	r := newBroker(b, cfg)
	if err := r.Start(context.Background(), "b", func(m *broker.Message) {
		if len(m.Data) >= 8 {
			arrived <- time.Now()
		}
	}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Close() })
	r.SetInterest(topic, 1)
	data := make([]byte, 8) // not JSON: the broker carries bytes
	checkFor(b, 5*time.Second, func() error {
		if err := a.b.Publish(context.Background(), &broker.Message{Topic: topic, Origin: "a", Data: data}); err != nil {
			return err
		}
		select {
		case <-arrived:
			return nil
		case <-time.After(20 * time.Millisecond):
			return fmt.Errorf("not routed yet")
		}
	})
	samples := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		binary.BigEndian.PutUint64(data, uint64(i))
		sent := time.Now()
		if err := a.b.Publish(context.Background(), &broker.Message{Topic: topic, ID: uint64(i + 1), Origin: "a", Data: data}); err != nil {
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
	reportPercentiles(b, samples)
}

// BenchmarkWebsocketLatency measures a chat message from a websocket client
// on gateway 1 to a websocket client on gateway 2 through the manager:
// client -> gateway -> manager -> gateway -> client, one at a time.
func BenchmarkWebsocketLatency(b *testing.B) {
	m := startManager(b, topicmgr.Config{})
	cfg := fastConfig(m)
	g1, g2 := startGateway(b, "gw-1", cfg), startGateway(b, "gw-2", cfg)
	from, to := clustertest.Dial(b, g1, "from", false), clustertest.Dial(b, g2, "to", false)
	to.Send(b, `{"type":"subscribe","topic":"bench","data":""}`)
	clustertest.ClusterCount(b, "bench", 1, g1)
	// Wait for the route, then measure.
	checkFor(b, 5*time.Second, func() error {
		from.Send(b, `{"type":"publish","topic":"bench","data":0}`)
		select {
		case <-to.In:
			return nil
		case <-time.After(20 * time.Millisecond):
			return fmt.Errorf("not routed yet")
		}
	})
	for len(to.In) > 0 {
		<-to.In
	}
	samples := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		want := strconv.Itoa(i + 1)
		sent := time.Now()
		from.Send(b, `{"type":"publish","topic":"bench","data":`+want+`}`)
		for got := ""; got != want; {
			select {
			case got = <-to.In:
			case <-time.After(5 * time.Second):
				b.Fatal("a message was lost")
			}
		}
		samples = append(samples, time.Since(sent))
	}
	b.StopTimer()
	reportPercentiles(b, samples)
}

func reportPercentiles(b *testing.B, samples []time.Duration) {
	if len(samples) == 0 {
		return
	}
	slices.Sort(samples)
	at := func(p float64) time.Duration { return samples[min(len(samples)-1, int(p*float64(len(samples))))] }
	b.ReportMetric(float64(at(0.50).Microseconds()), "p50-µs")
	b.ReportMetric(float64(at(0.99).Microseconds()), "p99-µs")
}
