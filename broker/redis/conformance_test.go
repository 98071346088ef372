package redis_test

import (
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/broker/brokertest"
	"github.com/firetower-go/firetower/internal/clustertest"
)

// conformanceOptions leave room for a loaded CI machine (the whole suite
// runs packages in parallel under the race detector).
var conformanceOptions = brokertest.Options{
	InterestDelay:   5 * time.Second,
	DeliveryTimeout: 5 * time.Second,
	Quiet:           150 * time.Millisecond,
}

// conformance runs the suite on the shared Redis, each subtest's cluster
// under a prefix of its own. A node id in use is not refused: a restarted
// gateway takes its id's counts over (DuplicateNodeID is skipped).
func conformance(t *testing.T, sharded bool) {
	brokertest.Run(t, func(t *testing.T) func(*testing.T) broker.Broker {
		cfg := sharedConfig(t)
		cfg.Sharded = sharded
		return func(t *testing.T) broker.Broker { return newBroker(t, cfg) }
	}, conformanceOptions)
}

func TestConformance(t *testing.T) { conformance(t, false) }

// The suite with topics on sharded Pub/Sub (SSUBSCRIBE/SPUBLISH), on a
// standalone Redis 7.
func TestConformanceSharded(t *testing.T) { conformance(t, true) }

// The suite with sharded Pub/Sub on a Redis Cluster of one shard (a
// cluster-mode redis-server holding every slot): the cluster's rules hold
// (one slot per SSUBSCRIBE, scripts within one slot), redirections do not
// arise.
func TestConformanceShardedClusterNode(t *testing.T) {
	srv := clustertest.StartRedisClusterNode(t)
	brokertest.Run(t, func(t *testing.T) func(*testing.T) broker.Broker {
		cfg := fastConfig(srv.Addr, clustertest.UniquePrefix(t))
		cfg.Sharded = true
		return func(t *testing.T) broker.Broker { return newBroker(t, cfg) }
	}, conformanceOptions)
}
