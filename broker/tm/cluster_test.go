package tm_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/broker/tm"
	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/protocol"
	"github.com/firetower-go/firetower/topicmgr"
	"github.com/gorilla/websocket"
)

// End-to-end tests: real gateways with real websocket clients on loopback,
// joined by real topic managers.

// gw is a gateway behind an HTTP server whose /ws publishes what clients
// send, as the all-in-one server does.
type gw struct {
	g   *gateway.Gateway
	b   *tm.Broker
	url string
}

func startGateway(t testing.TB, name string, cfg tm.Config) *gw {
	t.Helper()
	b := newBroker(t, cfg)
	g, err := gateway.New(gateway.Config{
		NodeID: name, Broker: b, Logger: testLogger(),
		ReadLimit: 2 << 20, MaxMessageSize: 1 << 20, CloseGrace: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := g.Upgrade(w, r)
		if err != nil {
			return
		}
		tower := g.BuildTower(ws, r.URL.Query().Get("id"))
		tower.SetReadHandler(func(fire *gateway.FireInfo) bool {
			_ = tower.Publish(fire)
			return true
		})
		tower.Run()
	}))
	t.Cleanup(func() {
		_ = g.Close()
		srv.Close()
	})
	return &gw{g: g, b: b, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"}
}

// wsClient is a websocket client that reads in the background.
type wsClient struct {
	name string
	c    *websocket.Conn
	in   chan string
	done chan struct{}
}

func dialWS(t testing.TB, g *gw, name string, v2 bool) *wsClient {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	if v2 {
		d.Subprotocols = []string{protocol.SubprotocolV2}
	}
	c, resp, err := d.Dial(g.url+"?id="+name, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", g.url, err)
	}
	resp.Body.Close()
	cl := &wsClient{name: name, c: c, in: make(chan string, 10000), done: make(chan struct{})}
	go func() {
		defer close(cl.done)
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				return
			}
			if s := string(b); s != protocol.HeartbeatV1 && s != protocol.PingV2 {
				cl.in <- s
			}
		}
	}()
	t.Cleanup(func() { _ = c.Close(); <-cl.done })
	return cl
}

func (c *wsClient) send(t testing.TB, frame string) {
	t.Helper()
	if err := c.c.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		t.Fatalf("%s: write: %v", c.name, err)
	}
}

func (c *wsClient) next(t testing.TB) string {
	t.Helper()
	select {
	case s := <-c.in:
		return s
	case <-time.After(5 * time.Second):
		t.Fatalf("%s received nothing within 5s", c.name)
		return ""
	}
}

// expect checks that the next messages are exactly want, in order.
func (c *wsClient) expect(t testing.TB, want ...string) {
	t.Helper()
	for i, w := range want {
		if got := c.next(t); got != w {
			t.Fatalf("%s: message %d is %s, want %s", c.name, i, excerpt(got), excerpt(w))
		}
	}
}

func excerpt(s string) string {
	if len(s) > 80 {
		return fmt.Sprintf("%q... (%d bytes)", s[:80], len(s))
	}
	return strconv.Quote(s)
}

// clusterCount waits until every gateway sees n subscribers of topic
// cluster-wide.
func clusterCount(t testing.TB, topic string, n int64, gws ...*gw) {
	t.Helper()
	checkFor(t, 5*time.Second, func() error {
		for i, g := range gws {
			if got := g.g.ConnectNum(context.Background(), topic); got != n {
				return fmt.Errorf("gateway %d counts %d subscribers of %q, want %d", i, got, topic, n)
			}
		}
		return nil
	})
}

// marker publishes a unique message and waits until every client got it:
// since order per publisher and topic holds, anything delivered before it
// has arrived too, and a duplicate would show up before it.
func marker(t testing.TB, from *wsClient, topic string, clients ...*wsClient) {
	t.Helper()
	m := fmt.Sprintf(`"marker-%d"`, markers.Add(1))
	from.send(t, `{"type":"publish","topic":"`+topic+`","data":`+m+`}`)
	for _, c := range clients {
		c.expect(t, m)
	}
}

var markers atomic.Int64

// Two gateways and one manager: a publish on either gateway reaches the
// subscribers on both exactly once; counts are cluster-wide; a 1 MiB
// payload and topics with spaces, unicode and comma-separated lists arrive
// intact.
func TestTwoGatewaysOneManager(t *testing.T) {
	m := startManager(t, topicmgr.Config{})
	cfg := fastConfig(m)
	g1, g2 := startGateway(t, "gw-1", cfg), startGateway(t, "gw-2", cfg)

	const room, intl = "room 1", "ünï 世界 🚀"
	a := dialWS(t, g1, "a", false)
	b := dialWS(t, g2, "b", false)
	c := dialWS(t, g2, "c", true)
	a.send(t, `{"type":"subscribe","topic":" room 1 ,,ünï 世界 🚀","data":""}`)
	b.send(t, `{"type":"subscribe","topic":"room 1,ünï 世界 🚀","data":""}`)
	c.send(t, `{"id":1,"type":"subscribe","topics":["room 1"]}`)
	c.expect(t, `{"type":"ack","id":1}`)
	clusterCount(t, room, 3, g1, g2)
	clusterCount(t, intl, 2, g1, g2)
	if n := g1.g.LocalConnectNum(room); n != 1 {
		t.Fatalf("gateway 1 has %d local subscribers of %q, want 1", n, room)
	}

	a.send(t, `{"type":"publish","topic":"room 1","data":{"n":1}}`)
	b.send(t, `{"type":"publish","topic":"ünï 世界 🚀","data":"héllo, 世界"}`)
	for _, cl := range []*wsClient{a, b} {
		got := []string{cl.next(t), cl.next(t)}
		slices.Sort(got)
		if want := []string{`"héllo, 世界"`, `{"n":1}`}; !slices.Equal(got, want) {
			t.Fatalf("%s got %q, want %q in any order", cl.name, got, want)
		}
	}
	f := c.next(t)
	if !strings.Contains(f, `"topic":"room 1"`) || !strings.HasSuffix(f, `"data":{"n":1}}`) {
		t.Fatalf("v2 client got %s", f)
	}

	// 1 MiB of payload, published on gateway 2.
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = 'a' + byte(i%26)
	}
	big[0], big[len(big)-1] = '"', '"'
	b.send(t, `{"type":"publish","topic":"room 1","data":`+string(big)+`}`)
	a.expect(t, string(big))
	b.expect(t, string(big))
	if f := c.next(t); !strings.HasSuffix(f, `"data":`+string(big)+`}`) {
		t.Fatalf("v2 client got %s", excerpt(f))
	}

	// Exactly once: a duplicate would arrive before the marker.
	marker(t, a, room, a, b)
	marker(t, b, intl, a, b)
	if f := c.next(t); !strings.Contains(f, "marker") {
		t.Fatalf("v2 client got %s before the marker", excerpt(f))
	}

	// Counts follow unsubscribes and disconnects, cluster-wide.
	b.send(t, `{"type":"unSubscribe","topic":"room 1","data":""}`)
	clusterCount(t, room, 2, g1, g2)
	_ = c.c.Close()
	clusterCount(t, room, 1, g1, g2)
}

// Two gateways and three managers: the topics spread over all three, and
// every publish still reaches everyone.
func TestTwoGatewaysThreeManagers(t *testing.T) {
	ms := []*manager{startManager(t, topicmgr.Config{}), startManager(t, topicmgr.Config{}), startManager(t, topicmgr.Config{})}
	cfg := fastConfig(ms...)
	g1, g2 := startGateway(t, "gw-1", cfg), startGateway(t, "gw-2", cfg)
	a, b := dialWS(t, g1, "a", false), dialWS(t, g2, "b", false)
	var topics []string
	for i := range 30 {
		topics = append(topics, fmt.Sprintf("/chat/%d", i))
	}
	list := strings.Join(topics, ",")
	a.send(t, `{"type":"subscribe","topic":"`+list+`","data":""}`)
	b.send(t, `{"type":"subscribe","topic":"`+list+`","data":""}`)
	for _, topic := range topics {
		clusterCount(t, topic, 2, g1, g2)
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
		from.send(t, fmt.Sprintf(`{"type":"publish","topic":%q,"data":%d}`, topic, i))
	}
	for _, cl := range []*wsClient{a, b} {
		var got []int
		for range topics {
			n, err := strconv.Atoi(cl.next(t))
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, n)
		}
		slices.Sort(got)
		for i, n := range got {
			if n != i {
				t.Fatalf("%s received %v, want each of 0..%d once", cl.name, got, len(topics)-1)
			}
		}
	}
	marker(t, a, topics[0], a, b)
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
	local := dialWS(t, g1, "local", false)
	remote := dialWS(t, g2, "remote", false)
	remote2 := dialWS(t, g2, "remote2", false)
	for _, cl := range []*wsClient{local, remote, remote2} {
		cl.send(t, `{"type":"subscribe","topic":"stream","data":""}`)
	}
	clusterCount(t, "stream", 3, g1, g2)

	var (
		seq       atomic.Int64
		failures  atomic.Int64
		slowFail  atomic.Int64
		otherErrs sync.Map
		wg        sync.WaitGroup
	)
	stop := make(chan struct{})
	wg.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			began := time.Now()
			err := g1.g.Publish(context.Background(), "stream", []byte(strconv.FormatInt(seq.Add(1), 10)))
			switch {
			case err == nil:
			case errors.Is(err, broker.ErrUnavailable):
				failures.Add(1)
				slowFail.Store(max(slowFail.Load(), int64(time.Since(began))))
			default:
				otherErrs.Store(err.Error(), true)
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()

	// lastOf drains a client and returns the last sequence number it got.
	lastOf := func(cl *wsClient, wait time.Duration) int64 {
		var last int64
		deadline := time.After(wait)
		for {
			select {
			case s := <-cl.in:
				if n, err := strconv.ParseInt(s, 10, 64); err == nil {
					last = n
				}
			case <-deadline:
				return last
			}
		}
	}
	if lastOf(remote, 100*time.Millisecond) == 0 {
		t.Fatal("the stream does not reach gateway 2")
	}
	connects := g1.g.Stats().ConnectsTotal + g2.g.Stats().ConnectsTotal

	m.kill()
	checkFor(t, 5*time.Second, func() error {
		if failures.Load() == 0 {
			return errors.New("no publish has failed yet")
		}
		return nil
	})
	if d := time.Duration(slowFail.Load()); d > 200*time.Millisecond {
		t.Errorf("a failing publish took %v, want it to fail fast", d)
	}
	// Local subscribers are served during the outage.
	before := lastOf(local, 50*time.Millisecond)
	if after := lastOf(local, 100*time.Millisecond); after <= before {
		t.Errorf("the local subscriber stopped receiving during the outage (%d then %d)", before, after)
	}
	lastOf(remote, 50*time.Millisecond)
	lastOf(remote2, 0)
	killedAt := seq.Load()

	restarted := time.Now()
	m.restart(t)
	checkFor(t, 5*time.Second, func() error {
		if n := lastOf(remote, 10*time.Millisecond); n <= killedAt {
			return fmt.Errorf("gateway 2 has received nothing published since the kill (seq %d)", killedAt)
		}
		return nil
	})
	t.Logf("delivery resumed %v after the restart; %d publishes failed during the outage",
		time.Since(restarted).Round(time.Millisecond), failures.Load())
	if n := lastOf(remote2, 200*time.Millisecond); n <= killedAt {
		t.Errorf("the second subscriber on gateway 2 did not resume (last %d)", n)
	}
	clusterCount(t, "stream", 3, g1, g2)
	if got := g1.g.Stats().ConnectsTotal + g2.g.Stats().ConnectsTotal; got != connects {
		t.Errorf("clients reconnected: %d connects before, %d after", connects, got)
	}
	otherErrs.Range(func(k, _ any) bool {
		t.Errorf("publish error other than ErrUnavailable: %v", k)
		return true
	})
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
	a, b, c := dialWS(t, g1, "a", false), dialWS(t, g2, "b", false), dialWS(t, g3, "c", false)
	for _, cl := range []*wsClient{a, b, c} {
		cl.send(t, `{"type":"subscribe","topic":"t","data":""}`)
	}
	clusterCount(t, "t", 3, g1, g2, g3)
	p.freeze()

	payload := `"` + strings.Repeat("x", 32<<10) + `"`
	var worst time.Duration
	for range 400 { // 12.5 MiB: far beyond the queue and the socket buffers
		began := time.Now()
		a.send(t, `{"type":"publish","topic":"t","data":`+payload+`}`)
		b.expect(t, payload)
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
// gateways in order, none lost, none twice (RELIABILITY.md, ordering). The
// publisher stays at most 128 messages ahead of the slowest subscriber, so
// that no client queue overflows: nothing is slow.
func TestOrderThroughTwoGateways(t *testing.T) {
	m := startManager(t, topicmgr.Config{})
	cfg := fastConfig(m)
	g1, g2 := startGateway(t, "gw-1", cfg), startGateway(t, "gw-2", cfg)
	subs := []*wsClient{dialWS(t, g1, "local", false), dialWS(t, g2, "remote-1", false), dialWS(t, g2, "remote-2", true)}
	for _, c := range subs {
		c.send(t, `{"type":"subscribe","topic":"order","data":""}`)
	}
	clusterCount(t, "order", 3, g1, g2)
	// The route to gateway 2 is ready once a probe gets through.
	checkFor(t, 5*time.Second, func() error {
		if err := g1.g.Publish(context.Background(), "order", []byte(`0`)); err != nil {
			return err
		}
		select {
		case <-subs[1].in:
			return nil
		case <-time.After(20 * time.Millisecond):
			return errors.New("gateway 2 is not reached yet")
		}
	})

	const n, window = 10000, 128
	next := make([]int, len(subs)) // the next sequence number each expects
	check := func(i int, s string) {
		if subs[i].name == "remote-2" { // v2: the data is the envelope's last field
			j := strings.LastIndex(s, `"data":`)
			if j < 0 {
				t.Fatalf("%s: unexpected frame %s", subs[i].name, s)
			}
			s = strings.TrimSuffix(s[j+len(`"data":`):], "}")
		}
		v, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("%s: unexpected message %s", subs[i].name, excerpt(s))
		}
		if v == 0 {
			return // a probe (they all come before the sequence)
		}
		if v != next[i]+1 {
			t.Fatalf("%s: got %d after %d (lost, duplicated or reordered)", subs[i].name, v, next[i])
		}
		next[i] = v
	}
	for seq := 1; seq <= n; seq++ {
		if err := g1.g.Publish(context.Background(), "order", []byte(strconv.Itoa(seq))); err != nil {
			t.Fatal(err)
		}
		for i, c := range subs {
			for seq-next[i] > window || (seq == n && next[i] < n) {
				select {
				case s := <-c.in:
					check(i, s)
				case <-time.After(5 * time.Second):
					t.Fatalf("%s: stuck at %d of %d", c.name, next[i], n)
				}
			}
		}
	}
}
