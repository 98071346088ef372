package tm_test

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker/tm"
	"github.com/firetower-go/firetower/internal/clustertest"
	"github.com/firetower-go/firetower/topicmgr"
)

// End-to-end tests: real gateways with real websocket clients on loopback,
// joined by real topic managers. The scenarios shared with the Redis and
// NATS brokers live in internal/clustertest.

// startGateway starts a gateway whose broker is a tm broker with cfg.
func startGateway(t testing.TB, name string, cfg tm.Config) *clustertest.Gateway {
	t.Helper()
	return clustertest.StartGateway(t, name, newBroker(t, cfg), testLogger())
}

// Two gateways and one manager: a publish on either gateway reaches the
// subscribers on both exactly once; counts are cluster-wide; a 1 MiB
// payload and topics with spaces, unicode and comma-separated lists arrive
// intact.
func TestTwoGatewaysOneManager(t *testing.T) {
	cfg := fastConfig(startManager(t, topicmgr.Config{}))
	clustertest.TwoGateways(t, startGateway(t, "gw-1", cfg), startGateway(t, "gw-2", cfg), 1<<20)
}

// Topic names that mean something to other engines are only themselves.
func TestTopicNames(t *testing.T) {
	cfg := fastConfig(startManager(t, topicmgr.Config{}))
	clustertest.TopicNames(t, startGateway(t, "gw-1", cfg), startGateway(t, "gw-2", cfg))
}

// Two gateways and three managers: the topics spread over all three, and
// every publish still reaches everyone.
func TestTwoGatewaysThreeManagers(t *testing.T) {
	ms := []*manager{startManager(t, topicmgr.Config{}), startManager(t, topicmgr.Config{}), startManager(t, topicmgr.Config{})}
	cfg := fastConfig(ms...)
	g1, g2 := startGateway(t, "gw-1", cfg), startGateway(t, "gw-2", cfg)
	a, b := clustertest.Dial(t, g1, "a", false), clustertest.Dial(t, g2, "b", false)
	var topics []string
	for i := range 30 {
		topics = append(topics, fmt.Sprintf("/chat/%d", i))
	}
	list := strings.Join(topics, ",")
	a.Send(t, `{"type":"subscribe","topic":"`+list+`","data":""}`)
	b.Send(t, `{"type":"subscribe","topic":"`+list+`","data":""}`)
	for _, topic := range topics {
		clustertest.ClusterCount(t, topic, 2, g1, g2)
	}
	for _, m := range ms {
		if n := len(m.srv.Topics()); n == 0 || n == len(topics) {
			t.Errorf("manager %s holds %d of %d topics; want a share", m.addr, n, len(topics))
		}
	}
	for i, topic := range topics {
		from := a
		if i%2 == 1 {
			from = b
		}
		from.Send(t, fmt.Sprintf(`{"type":"publish","topic":%q,"data":%d}`, topic, i))
	}
	for _, cl := range []*clustertest.Client{a, b} {
		var got []int
		for range topics {
			n, err := strconv.Atoi(cl.Next(t))
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, n)
		}
		slices.Sort(got)
		for i, n := range got {
			if n != i {
				t.Fatalf("%s received %v, want each of 0..%d once", cl.Name, got, len(topics)-1)
			}
		}
	}
	clustertest.Marker(t, a, topics[0], a, b)
}

// The manager is killed (listener and connections closed at once) under a
// steady stream of publishes on gateway 1: those publishes fail fast while
// it is down (local subscribers still get them), delivery to gateway 2
// resumes within a few seconds of the restart with no client reconnecting,
// and the counts are right again.
func TestManagerKilledUnderStream(t *testing.T) {
	m := startManager(t, topicmgr.Config{})
	cfg := fastConfig(m)
	g1, g2 := startGateway(t, "gw-1", cfg), startGateway(t, "gw-2", cfg)
	clustertest.KilledUnderStream(t, g1, g2, m.kill, func() { m = m.restart(t) })
}

// A gateway whose connection to the manager stops being read does not
// delay the others: one broker's socket is left unread while the others
// are served promptly, and the stuck one is cut off.
func TestStuckGatewayDoesNotDelayOthers(t *testing.T) {
	m := startManager(t, topicmgr.Config{QueueFrames: 256, QueueBytes: 4 << 20})
	p := newProxy(t, m.addr)
	cfg := fastConfig(m)
	g1, g2 := startGateway(t, "gw-1", cfg), startGateway(t, "gw-2", cfg)
	// gw-3 reaches the manager through a proxy that stops relaying to it.
	cfg3 := fastConfig(m)
	cfg3.Managers[0].Addr = p.addr
	g3 := startGateway(t, "gw-3", cfg3)
	a, b, c := clustertest.Dial(t, g1, "a", false), clustertest.Dial(t, g2, "b", false), clustertest.Dial(t, g3, "c", false)
	for _, cl := range []*clustertest.Client{a, b, c} {
		cl.Send(t, `{"type":"subscribe","topic":"t","data":""}`)
	}
	clustertest.ClusterCount(t, "t", 3, g1, g2, g3)
	p.freeze()

	payload := `"` + strings.Repeat("x", 32<<10) + `"`
	var worst time.Duration
	for range 400 { // 12.5 MiB: far beyond the queue and the socket buffers
		began := time.Now()
		a.Send(t, `{"type":"publish","topic":"t","data":`+payload+`}`)
		b.Expect(t, payload)
		worst = max(worst, time.Since(began))
	}
	if worst > time.Second {
		t.Errorf("a delivery to gateway 2 took %v while gateway 3 was stuck", worst)
	}
	checkFor(t, 5*time.Second, func() error {
		if n := m.srv.Stats().SlowCutoffs; n < 1 {
			return errors.New("the stuck gateway was not cut off")
		}
		return nil
	})
}

// 10,000 sequential publishes on gateway 1 reach subscribers on both
// gateways in order, none lost, none twice (RELIABILITY.md, ordering).
func TestOrderThroughTwoGateways(t *testing.T) {
	cfg := fastConfig(startManager(t, topicmgr.Config{}))
	clustertest.OrderThroughTwoGateways(t, startGateway(t, "gw-1", cfg), startGateway(t, "gw-2", cfg))
}
