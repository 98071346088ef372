package gateway_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/gateway"
)

// Two gateways on one bus see each other in Nodes(), with the other's
// figures, and a closed node leaves the view after three intervals.
func TestNodesClusterView(t *testing.T) {
	t.Parallel()
	bus := broker.NewBus()
	cfg := func(id string) gateway.Config {
		c := quietConfig()
		c.NodeID, c.Broker, c.NodeInfoInterval, c.Version = id, bus.Node(), 50*time.Millisecond, "v-test"
		return c
	}
	a := newTestServer(t, cfg("node-a"), nil)
	b, err := gateway.New(cfg("node-b"))
	if err != nil {
		t.Fatal(err)
	}
	bClosed := false
	t.Cleanup(func() {
		if !bClosed {
			_ = b.Close()
		}
	})

	c := dial(t, a.url, false)
	send(t, c, `{"type":"subscribe","topic":"x","data":""}`)
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		nodes := b.Nodes()
		if len(nodes) != 2 {
			return fmt.Errorf("b sees %d nodes", len(nodes))
		}
		na, nb := nodes[0], nodes[1] // sorted by id
		if na.ID != "node-a" || na.Self || na.Version != "v-test" || na.Stats.Connections != 1 || na.Stats.Topics != 1 {
			return fmt.Errorf("b's view of a: %+v", na)
		}
		if nb.ID != "node-b" || !nb.Self || na.Broker == "" || na.StartedAt.IsZero() {
			return fmt.Errorf("b's view of itself: %+v / a %+v", nb, na)
		}
		return nil
	})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	bClosed = true
	// Pruned in the background: nobody reads the view meanwhile.
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if n := a.gw.PeerCount(); n != 0 {
			return fmt.Errorf("a still holds %d peers", n)
		}
		return nil
	})
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if nodes := a.gw.Nodes(); len(nodes) != 1 || nodes[0].ID != "node-a" {
			return fmt.Errorf("a still sees %+v", nodes)
		}
		return nil
	})
}

// A negative interval turns the broadcast off: only the node itself.
func TestNodesBroadcastOff(t *testing.T) {
	t.Parallel()
	bus := broker.NewBus()
	c := quietConfig()
	c.NodeID, c.Broker, c.NodeInfoInterval = "solo", bus.Node(), -1
	g, err := gateway.New(c)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	c2 := quietConfig()
	c2.NodeID, c2.Broker, c2.NodeInfoInterval = "other", bus.Node(), 20*time.Millisecond
	g2, err := gateway.New(c2)
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Close()
	// g2 hears nothing from g; g still hears g2 (receiving is always on).
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if n := len(g.Nodes()); n != 2 {
			return fmt.Errorf("solo sees %d nodes", n)
		}
		return nil
	})
	if nodes := g2.Nodes(); len(nodes) != 1 {
		t.Fatalf("other sees %+v although solo does not broadcast", nodes)
	}
}
