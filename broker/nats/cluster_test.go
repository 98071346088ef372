package nats_test

import (
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker/nats"
	"github.com/firetower-go/firetower/internal/clustertest"
)

// End-to-end tests: real gateways with real websocket clients on loopback,
// joined by a real NATS server.

func twoGatewaysBrokers(t *testing.T, cfg nats.Config) (g1, g2 *clustertest.Gateway, b1, b2 *nats.Broker) {
	t.Helper()
	b1, b2 = newBroker(t, cfg), newBroker(t, cfg)
	g1 = clustertest.StartGateway(t, "gw-1", b1, testLogger())
	g2 = clustertest.StartGateway(t, "gw-2", b2, testLogger())
	return g1, g2, b1, b2
}

func twoGateways(t *testing.T, cfg nats.Config) (*clustertest.Gateway, *clustertest.Gateway) {
	t.Helper()
	g1, g2, _, _ := twoGatewaysBrokers(t, cfg)
	return g1, g2
}

// On the shared server, the largest payload is what its max_payload leaves
// after the envelope (TestPayloadLimit); 1 MiB if it allows.
func TestTwoGateways(t *testing.T) {
	cfg := sharedConfig(t)
	big := min(1<<20, int(serverMaxPayload(t, clustertest.NATSAddr))-1024)
	g1, g2 := twoGateways(t, cfg)
	clustertest.TwoGateways(t, g1, g2, big)
}

func TestTopicNamesThroughGateways(t *testing.T) {
	g1, g2 := twoGateways(t, sharedConfig(t))
	clustertest.TopicNames(t, g1, g2)
}

func TestOrderThroughTwoGateways(t *testing.T) {
	g1, g2 := twoGateways(t, sharedConfig(t))
	clustertest.OrderThroughTwoGateways(t, g1, g2)
}

// A private nats-server is killed with SIGKILL and restarted under a
// stream of publishes.
func TestNATSKilledUnderStream(t *testing.T) {
	srv := clustertest.StartNATS(t, "")
	g1, g2, b1, b2 := twoGatewaysBrokers(t, fastConfig("nats://"+srv.Addr, clustertest.UniquePrefix(t)))
	clustertest.KilledUnderStream(t, g1, g2, srv.Kill, srv.Start)
	for i, b := range []*nats.Broker{b1, b2} {
		if s := b.Stats(); !s.Connected || s.Outages < 1 || s.Sessions < 2 || s.LastOutage <= 0 || s.PublishErrors < 1 && i == 0 {
			t.Errorf("broker %d: stats after the outage: %+v", i+1, s)
		}
	}
}

// A nats-server paused with SIGSTOP for 3 s under a stream of publishes
// with a 300 ms context: none begun during the pause returns nil (its
// flush is not answered), every acknowledged one is delivered, and none
// that failed as not sent ever is.
func TestStalledNATS(t *testing.T) {
	srv := clustertest.StartNATS(t, "")
	cfg := fastConfig("nats://"+srv.Addr, clustertest.UniquePrefix(t))
	clustertest.StalledServer(t, srv, newBroker(t, cfg), newBroker(t, cfg), 3*time.Second)
}
