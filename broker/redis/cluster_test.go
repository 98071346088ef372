package redis_test

import (
	"testing"

	"github.com/firetower-go/firetower/broker/redis"
	"github.com/firetower-go/firetower/internal/clustertest"
)

// End-to-end tests: real gateways with real websocket clients on loopback,
// joined by a real Redis.

// twoGateways starts two gateways on one Redis cluster (one prefix).
func twoGateways(t *testing.T, cfg redis.Config) (*clustertest.Gateway, *clustertest.Gateway) {
	t.Helper()
	g1, g2, _, _ := twoGatewaysBrokers(t, cfg)
	return g1, g2
}

func twoGatewaysBrokers(t *testing.T, cfg redis.Config) (g1, g2 *clustertest.Gateway, b1, b2 *redis.Broker) {
	t.Helper()
	b1, b2 = newBroker(t, cfg), newBroker(t, cfg)
	g1 = clustertest.StartGateway(t, "gw-1", b1, testLogger())
	g2 = clustertest.StartGateway(t, "gw-2", b2, testLogger())
	return g1, g2, b1, b2
}

func TestTwoGateways(t *testing.T) {
	g1, g2 := twoGateways(t, sharedConfig(t))
	clustertest.TwoGateways(t, g1, g2, 1<<20)
}

func TestTwoGatewaysSharded(t *testing.T) {
	cfg := sharedConfig(t)
	cfg.Sharded = true
	g1, g2 := twoGateways(t, cfg)
	clustertest.TwoGateways(t, g1, g2, 1<<20)
}

func TestTopicNamesThroughGateways(t *testing.T) {
	g1, g2 := twoGateways(t, sharedConfig(t))
	clustertest.TopicNames(t, g1, g2)
}

func TestOrderThroughTwoGateways(t *testing.T) {
	g1, g2 := twoGateways(t, sharedConfig(t))
	clustertest.OrderThroughTwoGateways(t, g1, g2)
}

// A private redis-server is killed with SIGKILL and restarted (empty, as it
// has no persistence) under a stream of publishes.
func TestRedisKilledUnderStream(t *testing.T) {
	srv := clustertest.StartRedis(t)
	g1, g2, b1, b2 := twoGatewaysBrokers(t, fastConfig(srv.Addr, clustertest.UniquePrefix(t)))
	clustertest.KilledUnderStream(t, g1, g2, srv.Kill, srv.Start)
	for i, b := range []*redis.Broker{b1, b2} {
		if s := b.Stats(); !s.Connected || s.Outages < 1 || s.Sessions < 2 || s.LastOutage <= 0 || s.PublishErrors < 1 && i == 0 {
			t.Errorf("broker %d: stats after the outage: %+v", i+1, s)
		}
	}
}
