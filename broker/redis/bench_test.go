package redis_test

import (
	"fmt"
	"testing"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/internal/clustertest"
)

// Benchmarks of the path gateway -> Redis -> gateway on loopback, against
// the shared redis-server, all nodes in the benchmark's process (the same
// shape as broker/tm's benchmarks, with Redis in place of the manager). Run
// with
//
//	go test -run '^$' -bench . -benchtime 2s ./broker/redis

func benchNodes(b *testing.B) clustertest.NewNode {
	cfg := sharedConfig(b)
	return func(b *testing.B) broker.Broker { return newBroker(b, cfg) }
}

// BenchmarkRoutedPublish: Publish waits for Redis's answer, so one
// publisher makes one round trip per message; with several, their
// publishes share pipelined round trips.
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
