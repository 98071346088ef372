package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/gateway"
)

// fakeObserver records what the gateway reports.
type fakeObserver struct {
	mu        sync.Mutex
	fanouts   []int // subscribers per fan-out
	publishes []error
}

func (o *fakeObserver) Fanout(d time.Duration, n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if d < 0 {
		n = -1 // caught below
	}
	o.fanouts = append(o.fanouts, n)
}

func (o *fakeObserver) BrokerPublish(d time.Duration, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if d < 0 {
		err = errors.New("negative duration")
	}
	o.publishes = append(o.publishes, err)
}

func (o *fakeObserver) get() ([]int, []error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.fanouts), slices.Clone(o.publishes)
}

// The Observer hears one fan-out per message that reached local
// subscribers (local publishes and messages from other nodes), never one
// per delivery, and one broker publish per local publish.
func TestObserverSeesFanoutAndBrokerPublish(t *testing.T) {
	t.Parallel()
	bus := broker.NewBus()
	var obsA, obsB fakeObserver
	cfgA, cfgB := quietConfig(), quietConfig()
	cfgA.NodeID, cfgA.Broker, cfgA.Observer, cfgA.NodeInfoInterval = "a", bus.Node(), &obsA, -1
	cfgB.NodeID, cfgB.Broker, cfgB.Observer, cfgB.NodeInfoInterval = "b", bus.Node(), &obsB, -1
	a := newTestServer(t, cfgA, nil)
	b := newTestServer(t, cfgB, nil)
	for _, ts := range []*testServer{a, a, a, b} {
		c := dial(t, ts.url, false)
		send(t, c, `{"type":"subscribe","topic":"room","data":""}`)
	}
	waitCount(t, a.gw, "room", 3)
	waitCount(t, b.gw, "room", 1)
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := a.gw.ConnectNum(context.Background(), "room"); n != 4 {
			return fmt.Errorf("cluster count %d", n)
		}
		return nil
	})

	if err := a.gw.Publish(context.Background(), "room", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	if err := a.gw.Publish(context.Background(), "nobody", []byte(`2`)); err != nil {
		t.Fatal(err)
	}
	fa, pa := obsA.get()
	if !slices.Equal(fa, []int{3}) {
		t.Errorf("a's fan-outs: %v, want [3] (none for a topic without subscribers)", fa)
	}
	if len(pa) != 2 || pa[0] != nil || pa[1] != nil {
		t.Errorf("a's broker publishes: %v, want two without error", pa)
	}
	// The in-process bus delivers synchronously: b has fanned out already.
	fb, pb := obsB.get()
	if !slices.Equal(fb, []int{1}) || len(pb) != 0 {
		t.Errorf("b saw fan-outs %v and publishes %v, want [1] and none", fb, pb)
	}
}

// failingChecker is a broker that says it cannot reach the others.
type failingChecker struct {
	*broker.Memory
	err error
}

func (f failingChecker) Ready() error { return f.err }

// Ready is nil for a running node, reports the broker's Checker error, and
// turns to ErrDraining during Shutdown and ErrGatewayClosed after it.
func TestReady(t *testing.T) {
	t.Parallel()
	down := fmt.Errorf("%w: manager m1 not connected", broker.ErrUnavailable)
	cfg := quietConfig()
	fb := failingChecker{Memory: broker.NewMemory(), err: down}
	cfg.Broker, cfg.NodeInfoInterval = fb, -1
	g, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Ready(); !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Ready with a broker that is down: %v", err)
	}
	if info := g.Info(); info.BrokerError == "" {
		t.Errorf("NodeInfo.BrokerError empty with the broker down")
	}
	_ = g.Close()

	ts := newTestServer(t, quietConfig(), nil)
	if err := ts.gw.Ready(); err != nil {
		t.Fatalf("Ready of a running node: %v", err)
	}
	if info := ts.gw.Info(); info.BrokerError != "" || info.Broker != "memory" {
		t.Errorf("NodeInfo broker %q, error %q", info.Broker, info.BrokerError)
	}
	// Two clients and a long drain window keep Shutdown in its drain.
	dial(t, ts.url, false)
	dial(t, ts.url, false)
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := ts.gw.Stats().Connections; n != 2 {
			return fmt.Errorf("%d connections", n)
		}
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- ts.gw.Shutdown(context.Background(), 2*time.Second) }()
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if err := ts.gw.Ready(); !errors.Is(err, gateway.ErrDraining) {
			return fmt.Errorf("Ready while draining: %v", err)
		}
		return nil
	})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := ts.gw.Ready(); !errors.Is(err, gateway.ErrGatewayClosed) {
		t.Errorf("Ready after Shutdown: %v", err)
	}
}

// Topic figures: message counters, rates, the top topics in NodeInfo,
// search and the subscription count.
func TestTopicStats(t *testing.T) {
	t.Parallel()
	cfg := quietConfig()
	cfg.NodeInfoInterval = -1
	ts := newTestServer(t, cfg, nil)
	subscribe := func(topics string) {
		c := dial(t, ts.url, false)
		send(t, c, `{"type":"subscribe","topic":"`+topics+`","data":""}`)
	}
	subscribe("busy,quiet")
	subscribe("busy")
	subscribe("busy,other")
	waitCount(t, ts.gw, "busy", 3)
	waitCount(t, ts.gw, "other", 1)
	if n := ts.gw.Subscriptions(); n != 5 {
		t.Errorf("Subscriptions = %d, want 5", n)
	}

	ts.gw.Info() // the first sample: no rates yet
	for range 10 {
		if err := ts.gw.Publish(context.Background(), "busy", []byte(`"x"`)); err != nil {
			t.Fatal(err)
		}
	}
	if st := ts.gw.LocalTopic("busy"); st.Subscribers != 3 || st.Messages != 10 {
		t.Fatalf("LocalTopic(busy) = %+v, want 3 subscribers, 10 messages", st)
	}
	var busy gateway.TopicStat
	checkFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		top := ts.gw.Info().Topics
		for _, st := range top {
			if st.Topic == "busy" && st.Rate > 0 {
				busy = st
				return nil
			}
		}
		return fmt.Errorf("no rate for busy in %+v", top)
	})
	if busy.Subscribers != 3 || busy.Messages != 10 || busy.Rate > 10 {
		t.Errorf("busy in NodeInfo: %+v", busy)
	}
	if got := ts.gw.LocalTopic("busy").Rate; got != busy.Rate {
		t.Errorf("LocalTopic rate %v, NodeInfo rate %v", got, busy.Rate)
	}
	if st := ts.gw.LocalTopic("nobody"); st.Subscribers != 0 || st.Messages != 0 || st.Rate != 0 {
		t.Errorf("LocalTopic(nobody) = %+v", st)
	}

	found, matched := ts.gw.SearchTopics("u", 10)
	if matched != 2 || len(found) != 2 || found[0].Topic != "busy" || found[1].Topic != "quiet" {
		t.Errorf("SearchTopics(u) = %+v, %d", found, matched)
	}
	found, matched = ts.gw.SearchTopics("", 1)
	if matched != 3 || len(found) != 1 || found[0].Topic != "busy" {
		t.Errorf("SearchTopics('', 1) = %+v, %d", found, matched)
	}
}

// NodeInfo lists at most TopTopics topics by subscribers (and as many by
// rate), the largest first.
func TestNodeInfoTopTopicsBounded(t *testing.T) {
	t.Parallel()
	cfg := quietConfig()
	cfg.NodeInfoInterval, cfg.MaxSubscriptions = -1, -1
	ts := newTestServer(t, cfg, nil)
	const topics = gateway.TopTopics + 10
	// Topic i gets i+1 subscribers from clients 0..i.
	for c := range topics {
		conn := dial(t, ts.url, false)
		list := ""
		for i := c; i < topics; i++ {
			if list != "" {
				list += ","
			}
			list += fmt.Sprintf("t%02d", i)
		}
		send(t, conn, `{"type":"subscribe","topic":"`+list+`","data":""}`)
	}
	waitCount(t, ts.gw, "t00", 1)
	waitCount(t, ts.gw, fmt.Sprintf("t%02d", topics-1), topics)
	top := ts.gw.Info().Topics
	if len(top) != gateway.TopTopics {
		t.Fatalf("%d top topics, want %d: %+v", len(top), gateway.TopTopics, top)
	}
	for i, st := range top {
		if want := fmt.Sprintf("t%02d", topics-1-i); st.Topic != want || st.Subscribers != int64(topics-i) {
			t.Fatalf("top[%d] = %+v, want %s with %d subscribers", i, st, want, topics-i)
		}
	}
}

// FindConnections looks connections up by client id or user id.
func TestFindConnections(t *testing.T) {
	t.Parallel()
	cfg := quietConfig()
	cfg.NodeInfoInterval = -1
	ts := newTestServer(t, cfg, func(tower *gateway.FireTower) {
		tower.UserId = "user-of-" + tower.ClientId[:1]
	})
	for i, id := range []string{"a1", "a2", "b1"} {
		c := dial(t, ts.url+"?id="+id, id == "a2")
		send(t, c, `{"type":"subscribe","topic":"z,y","data":""}`)
		waitCount(t, ts.gw, "z", int64(i+1)) // in order: a1 is the oldest
	}
	found, n := ts.gw.FindConnections("a2", "", 10)
	if n != 1 || len(found) != 1 {
		t.Fatalf("by client id: %+v, %d", found, n)
	}
	if c := found[0]; c.ClientID != "a2" || c.UserID != "user-of-a" || c.Protocol != 2 ||
		!slices.Equal(c.Topics, []string{"y", "z"}) || c.RemoteAddr == "" || c.ConnectedAt.IsZero() {
		t.Errorf("connection a2: %+v", c)
	}
	found, n = ts.gw.FindConnections("", "user-of-a", 1)
	if n != 2 || len(found) != 1 || found[0].ClientID != "a1" {
		t.Errorf("by user id, limit 1: %+v, %d matched (want a1, the oldest, of 2)", found, n)
	}
	if found, n = ts.gw.FindConnections("", "", 10); n != 0 || len(found) != 0 {
		t.Errorf("empty ids matched %+v", found)
	}
	if found, n = ts.gw.FindConnections("nobody", "nobody", 10); n != 0 {
		t.Errorf("unknown ids matched %+v", found)
	}
}
