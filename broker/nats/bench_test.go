package nats_test

import (
	"fmt"
	"testing"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/internal/clustertest"
)

// Benchmarks of the path gateway -> NATS -> gateway on loopback, against
// the shared nats-server, all nodes in the benchmark's process (the same
// shape as broker/tm's benchmarks, with NATS in place of the manager). Run
// with
//
//	go test -run '^$' -bench . -benchtime 2s ./broker/nats

func benchNodes(b *testing.B) clustertest.NewNode {
	cfg := sharedConfig(b)
	return func(b *testing.B) broker.Broker { return newBroker(b, cfg) }
}

// BenchmarkRoutedPublish: Publish returns once the server has answered a
// flush sent after the message, so one publisher makes one round trip per
// message; with several, their publishes share flushes (Stats.Flushes).
// Before the flush (2026-12-04, -benchtime 2000x -count 3, 2 shared
// CPUs): 1 publisher 86k-143k publishes/s, 16 publishers 185k-371k
// (128 B) and 24k-36k (4 KiB); after: 6.7k-7.0k, 36k-40k and 14k-17k.
func BenchmarkRoutedPublish(b *testing.B) {
	for _, bc := range []struct{ publishers, receivers, size int }{
		{1, 1, 128}, {16, 1, 128}, {16, 1, 4 << 10}, {16, 4, 128},
	} {
		b.Run(fmt.Sprintf("publishers=%d/receivers=%d/payload=%d", bc.publishers, bc.receivers, bc.size), func(b *testing.B) {
			clustertest.RoutedPublish(b, benchNodes(b), bc.publishers, bc.receivers, bc.size)
		})
	}
}

func BenchmarkLatency(b *testing.B) { clustertest.Latency(b, benchNodes(b)) }
