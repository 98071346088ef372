package gateway_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/protocol"
)

// claimTopic is the documented reserved topic that claims node number n.
func claimTopic(n int) string { return protocol.ReservedTopicPrefix + "node/" + strconv.Itoa(n) }

// startOn starts a gateway with cfg on bus, closed in t.Cleanup.
func startOn(t *testing.T, bus *broker.Bus, name string, cfg gateway.Config) (*gateway.Gateway, error) {
	t.Helper()
	cfg.NodeID, cfg.Broker, cfg.NodeInfoInterval = name, bus.Node(), -1
	if cfg.Logger == nil {
		cfg.Logger = quietConfig().Logger
	}
	g, err := gateway.New(cfg)
	if err == nil {
		t.Cleanup(func() { _ = g.Close() })
	}
	return g, err
}

// holder starts a bare broker node on bus that holds the claims of numbers.
func holder(t *testing.T, bus *broker.Bus, numbers ...int) *broker.Memory {
	t.Helper()
	m := bus.Node()
	if err := m.Start(context.Background(), "holder", func(*broker.Message) {}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	for _, n := range numbers {
		m.SetInterest(claimTopic(n), 1)
	}
	return m
}

// Gateways with the default config on one broker, started together, get
// different node numbers, and their message ids never collide.
func TestClusterIDAutoUnique(t *testing.T) {
	bus := broker.NewBus()
	const nodes, perNode = 8, 20000
	gws := make([]*gateway.Gateway, nodes)
	var wg sync.WaitGroup
	errs := make([]error, nodes)
	for i := range gws {
		wg.Go(func() {
			cfg := quietConfig()
			cfg.NodeID, cfg.Broker, cfg.NodeInfoInterval = "node-"+strconv.Itoa(i), bus.Node(), -1
			gws[i], errs[i] = gateway.New(cfg)
		})
	}
	wg.Wait()
	numbers := map[int64]int{}
	for i, g := range gws {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		t.Cleanup(func() { _ = g.Close() })
		if prev, dup := numbers[g.ClusterID()]; dup {
			t.Errorf("gateways %d and %d both have node number %d", prev, i, g.ClusterID())
		}
		numbers[g.ClusterID()] = i
	}
	ids := make([][]uint64, nodes)
	for i, g := range gws {
		wg.Go(func() {
			ids[i] = make([]uint64, perNode)
			for k := range ids[i] {
				ids[i][k] = g.NewID()
			}
		})
	}
	wg.Wait()
	seen := make(map[uint64]int, nodes*perNode)
	for i, list := range ids {
		for _, id := range list {
			if node := int64(id>>12) & 0x3ff; node != gws[i].ClusterID() {
				t.Fatalf("id %d of gateway %d has node %d, want %d", id, i, node, gws[i].ClusterID())
			}
			if prev, dup := seen[id]; dup {
				t.Fatalf("id %d made by gateways %d and %d", id, prev, i)
			}
			seen[id] = i
		}
	}
}

// An automatic number is never one another node holds; with none left, New
// fails with ErrNoClusterID.
func TestClusterIDAutoAvoidsHeldNumbers(t *testing.T) {
	bus := broker.NewBus()
	held := make([]int, 256)
	for i := range held {
		held[i] = i
	}
	holder(t, bus, held...)
	for i := range 20 {
		g, err := startOn(t, bus, "auto-"+strconv.Itoa(i), gateway.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if n := g.ClusterID(); n < 256 {
			t.Errorf("gateway %d took node number %d, held by another node", i, n)
		}
	}

	full := broker.NewBus()
	all := make([]int, 1024)
	for i := range all {
		all[i] = i
	}
	holder(t, full, all...)
	_, err := startOn(t, full, "late", gateway.Config{})
	if !errors.Is(err, gateway.ErrNoClusterID) {
		t.Fatalf("New with every number held: %v, want ErrNoClusterID", err)
	}
}

// A configured number that another node holds makes New fail with an
// error naming it; numbers are told apart modulo 1024 (1024 is 0).
func TestClusterIDExplicitConflict(t *testing.T) {
	bus := broker.NewBus()
	a, err := startOn(t, bus, "a", gateway.Config{ClusterID: 5})
	if err != nil || a.ClusterID() != 5 {
		t.Fatalf("first gateway on 5: %v, number %d", err, a.ClusterID())
	}
	_, err = startOn(t, bus, "b", gateway.Config{ClusterID: 5})
	if !errors.Is(err, gateway.ErrClusterIDTaken) || !strings.Contains(err.Error(), "5 is held by another node") {
		t.Fatalf("second gateway on 5: %v, want ErrClusterIDTaken naming 5", err)
	}
	zero, err := startOn(t, bus, "zero", gateway.Config{ClusterID: 1024})
	if err != nil || zero.ClusterID() != 0 {
		t.Fatalf("gateway on 1024: %v, number %d; want 0", err, zero.ClusterID())
	}
	if id := zero.NewID(); (id>>12)&0x3ff != 0 {
		t.Errorf("id %d of node 0 has node bits %d", id, (id>>12)&0x3ff)
	}
	if _, err = startOn(t, bus, "zero-again", gateway.Config{ClusterID: 1024}); !errors.Is(err, gateway.ErrClusterIDTaken) {
		t.Fatalf("second gateway on 1024: %v, want ErrClusterIDTaken", err)
	}
	// A closed gateway's number is free again.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := startOn(t, bus, "b", gateway.Config{ClusterID: 5}); err != nil {
		t.Fatalf("number 5 after its holder closed: %v", err)
	}
}

// Two gateways claiming the same number at the same instant never both
// get it, when the broker's interest takes time to show (ClusterIDWait).
func TestClusterIDSimultaneousClaims(t *testing.T) {
	for round := range 5 {
		bus := broker.NewBus()
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range errs {
			wg.Go(func() {
				_, errs[i] = startOn(t, bus, "n"+strconv.Itoa(i), gateway.Config{ClusterID: 9, ClusterIDWait: 20 * time.Millisecond})
			})
		}
		wg.Wait()
		if errs[0] == nil && errs[1] == nil {
			t.Fatalf("round %d: both gateways claimed number 9", round)
		}
		for _, err := range errs {
			if err != nil && !errors.Is(err, gateway.ErrClusterIDTaken) {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
}

// A conflict found after the start (a claim the broker had lost) is
// counted; an automatic number is exchanged for a free one, a configured
// one is kept.
func TestClusterIDLaterConflict(t *testing.T) {
	bus := broker.NewBus()
	// ClusterIDWait makes the gateways check their claim in the
	// background, as on an external broker.
	auto, err := startOn(t, bus, "auto", gateway.Config{ClusterIDWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	fixed, err := startOn(t, bus, "fixed", gateway.Config{ClusterID: 3, ClusterIDWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	before := auto.ClusterID()
	holder(t, bus, int(before), 3)

	auto.CheckClaim()
	if got := auto.Stats().ClusterIDConflicts; got != 1 {
		t.Errorf("auto: %d conflicts counted, want 1", got)
	}
	if after := auto.ClusterID(); after == before || after == 3 {
		t.Errorf("auto: node number %d after a conflict on %d", after, before)
	} else if id := auto.NewID(); int64(id>>12)&0x3ff != after {
		t.Errorf("auto: id %d does not carry the new number %d", id, after)
	}
	fixed.CheckClaim()
	if got, n := fixed.Stats().ClusterIDConflicts, fixed.ClusterID(); got != 1 || n != 3 {
		t.Errorf("fixed: %d conflicts, number %d; want 1 and 3 kept", got, n)
	}
}

// The claim is no subscriber anywhere users look: not in the topics, the
// counts or the stats.
func TestClusterIDClaimInvisible(t *testing.T) {
	bus := broker.NewBus()
	a, err := startOn(t, bus, "a", gateway.Config{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := startOn(t, bus, "b", gateway.Config{})
	if err != nil {
		t.Fatal(err)
	}
	a.RangeTopics(func(topic string, _ int64) bool {
		t.Errorf("RangeTopics lists %q", topic)
		return true
	})
	if s := a.Stats(); s.Topics != 0 {
		t.Errorf("Stats().Topics = %d", s.Topics)
	}
	if _, _, err := b.ClusterCount(context.Background(), claimTopic(int(a.ClusterID()))); err != nil {
		t.Logf("ClusterCount of a claim topic: %v", err)
	}
	if err := b.Publish(context.Background(), claimTopic(int(a.ClusterID())), []byte(`1`)); !errors.Is(err, protocol.ErrTopicReserved) {
		t.Errorf("Publish on a claim topic: %v, want ErrTopicReserved", err)
	}
}

// A client cannot subscribe to a reserved topic: v2 clients get an
// invalid-topic error saying why, and no subscription is made.
func TestSubscribeReservedTopicRefused(t *testing.T) {
	var log eventLog
	ts := newTestServer(t, quietConfig(), recordingSetup(&log, nil))
	c := dial(t, ts.url+"?id=c", true)
	send(t, c, `{"type":"subscribe","id":"s1","topics":["/ok","$firetower/node/1"]}`)
	e := expectError(t, c, `"s1"`, protocol.CodeInvalidTopic)
	if !strings.Contains(e.Message, "reserved") {
		t.Errorf("error message %q does not say the topic is reserved", e.Message)
	}
	v1 := dial(t, ts.url+"?id=v1", false)
	send(t, v1, `{"type":"subscribe","topic":"$firetower/node/1","data":""}`)
	barrier(t, v1, false)
	barrier(t, c, true)
	for _, topic := range []string{"/ok", claimTopic(1)} {
		if n := ts.gw.LocalConnectNum(topic); n != 0 {
			t.Errorf("%d local subscribers of %q", n, topic)
		}
	}
}
