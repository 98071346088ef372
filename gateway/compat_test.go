package gateway_test

// Compatibility with the original firetower: its v1 wire protocol exactly as
// its JS client speaks it, and the shapes of its Go API. Each test names the
// fact of docs/protocol.md (and the compatibility notes) it proves.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/protocol"
	"github.com/gorilla/websocket"
)

// A publish reaches every subscriber, the sender included, as exactly the
// raw data JSON: the same bytes, whitespace and escapes kept, no envelope.
func TestV1PublishDeliversRawData(t *testing.T) {
	t.Parallel()
	var log eventLog
	ts := newTestServer(t, quietConfig(), recordingSetup(&log, nil))
	a := dial(t, ts.url+"?id=a", false)
	b := dial(t, ts.url+"?id=b", false)
	outsider := dial(t, ts.url+"?id=outsider", false)

	send(t, a, `{"type":"subscribe","topic":"/chat/world,/chat/7","data":""}`)
	send(t, b, `{"type":"subscribe","topic":"/chat/world","data":""}`)
	waitCount(t, ts.gw, "/chat/world", 2)
	log.waitEvent(t, "subscribe a /chat/7|/chat/world", 1)

	for _, data := range []string{
		`{"from":"1234567", "data" : "hi \u00e9\n",  "type":"publish", "n": 1.50e0, "a":[ 1,2 ]}`,
		`"just a string"`,
		`42`,
		`[true,false,null]`,
		`{"html":"<img src=x onerror=alert(1)>"}`,
	} {
		send(t, a, `{"type":"publish","topic":"/chat/world","data":`+data+`}`)
		for _, c := range []*websocket.Conn{a, b} {
			if got := next(t, c); got != data {
				t.Fatalf("delivered %q, want the raw data %q", got, data)
			}
		}
	}
	// A publisher that is not subscribed does not get its own message.
	send(t, outsider, `{"type":"publish","topic":"/chat/world","data":{"from":"outsider"}}`)
	if got := barrier(t, outsider, false); len(got) != 0 {
		t.Fatalf("unsubscribed publisher received %q", got)
	}
	for _, c := range []*websocket.Conn{a, b} {
		if got := next(t, c); got != `{"from":"outsider"}` {
			t.Fatalf("got %s", got)
		}
	}
}

// "unSubscribe" with a capital S unsubscribes and fires UnSubscribeHandler
// with what was removed; the lowercase "unsubscribe" is, in v1, just another
// type handed to the ReadHandler, as in the original; every other type goes
// to the ReadHandler too.
func TestV1UnSubscribeAndOtherTypes(t *testing.T) {
	t.Parallel()
	var log eventLog
	ts := newTestServer(t, quietConfig(), recordingSetup(&log, nil))
	c := dial(t, ts.url+"?id=c", false)

	send(t, c, `{"type":"subscribe","topic":"x,y","data":""}`)
	send(t, c, `{"type":"unSubscribe","topic":"x, nothere","data":""}`)
	send(t, c, `{"type":"unsubscribe","topic":"y","data":""}`)
	send(t, c, `{"type":"chat","topic":"y","data":{"k":[1, 2]}}`)
	barrier(t, c, false)

	if n := ts.gw.LocalConnectNum("x"); n != 0 {
		t.Errorf("x has %d subscribers after unSubscribe", n)
	}
	if n := ts.gw.LocalConnectNum("y"); n != 1 {
		t.Errorf("y has %d subscribers; a lowercase v1 unsubscribe must not unsubscribe", n)
	}
	want := []string{
		"connect c",
		"subscribe c x|y",
		"unsubscribe c x",
		`read c unsubscribe y ""`,
		`read c chat y {"k":[1, 2]}`,
	}
	if got := log.list(); !slices.Equal(got[:min(len(got), len(want))], want) {
		t.Fatalf("events %q, want them to start with %q", got, want)
	}
	// Only y is delivered now.
	send(t, c, `{"type":"publish","topic":"x","data":"to x"}`)
	send(t, c, `{"type":"publish","topic":"y","data":"to y"}`)
	if got := next(t, c); got != `"to y"` {
		t.Fatalf("got %s, want only the message to y", got)
	}
}

// A ReadHandler returning false closes the connection (4503: do not
// reconnect).
func TestV1ReadHandlerFalseCloses(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, quietConfig(), func(tower *gateway.FireTower) {
		tower.SetReadHandler(func(fire *gateway.FireInfo) bool {
			return fire.Message.Type != "quit"
		})
	})
	c := dial(t, ts.url, false)
	send(t, c, `{"type":"publish","topic":"t","data":1}`)
	send(t, c, `{"type":"quit","topic":"t","data":""}`)
	if code := closeCode(t, c); code != protocol.CloseRejected {
		t.Fatalf("close code %d, want %d", code, protocol.CloseRejected)
	}
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := ts.gw.Stats().Connections; n != 0 {
			return fmt.Errorf("%d connections open", n)
		}
		return nil
	})
}

// v1 gets no replies: no acknowledgement, and a malformed frame is dropped
// without an error frame, counted, and the connection stays usable.
func TestV1MalformedFramesDroppedSilently(t *testing.T) {
	t.Parallel()
	var log eventLog
	ts := newTestServer(t, quietConfig(), recordingSetup(&log, nil))
	c := dial(t, ts.url+"?id=c", false)
	before := ts.gw.Stats().ProtocolErrors

	bad := []string{
		`{"type":"subscribe","topic":`,                 // truncated JSON
		`not json at all`,                              // not JSON
		`["subscribe","t"]`,                            // JSON, wrong shape
		`{"type":"subscribe","topic":"ok,bad\u0007"}`,  // control character in a topic
		`{"type":"subscribe","topic":" , ","data":""}`, // no topic left
		`{"type":"publish","topic":"","data":1}`,       // empty topic, dropped as by the original
	}
	for _, f := range bad {
		send(t, c, f)
	}
	if err := c.WriteMessage(websocket.BinaryMessage, []byte(`{"type":"subscribe","topic":"t","data":""}`)); err != nil {
		t.Fatal(err)
	}
	send(t, c, `{"type":"subscribe","topic":"t","data":""}`)
	send(t, c, `{"type":"publish","topic":"t","data":{"ok":true}}`)
	// The first frame the client sees is the delivery: nothing answered the
	// bad frames or the subscription.
	if got := next(t, c); got != `{"ok":true}` {
		t.Fatalf("first frame %q, want the delivery", got)
	}
	if got, want := ts.gw.Stats().ProtocolErrors-before, int64(len(bad)+1); got != want {
		t.Errorf("ProtocolErrors grew by %d, want %d", got, want)
	}
	if n := ts.gw.LocalConnectNum("ok"); n != 0 {
		t.Errorf("a list with one invalid topic subscribed %d to ok", n)
	}
	if n := log.count("read"); n != 1 {
		t.Errorf("ReadHandler saw %d frames, want only the valid publish: %q", n, log.list())
	}
}

// Topic lists are trimmed, empty entries and duplicates ignored; spaces
// inside a name and non-ASCII names work; an invalid topic is refused.
func TestV1TopicLists(t *testing.T) {
	t.Parallel()
	var log eventLog
	ts := newTestServer(t, quietConfig(), recordingSetup(&log, nil))
	c := dial(t, ts.url+"?id=c", false)

	send(t, c, `{"type":"subscribe","topic":" a ,,b,a, ,","data":""}`)
	send(t, c, `{"type":"subscribe","topic":"/chat/room 1,聊天/世界","data":""}`)
	send(t, c, `{"type":"subscribe","topic":"tab\there","data":""}`)
	if got := barrier(t, c, false); len(got) != 0 {
		t.Fatalf("v1 got replies %q", got)
	}
	for _, topic := range []string{"a", "b", "/chat/room 1", "聊天/世界"} {
		if n := ts.gw.LocalConnectNum(topic); n != 1 {
			t.Errorf("topic %q: %d subscribers, want 1", topic, n)
		}
	}
	for _, topic := range []string{"", " a ", "tab\there"} {
		if n := ts.gw.LocalConnectNum(topic); n != 0 {
			t.Errorf("topic %q: %d subscribers, want 0", topic, n)
		}
	}
	if got := log.list(); !slices.Contains(got, "subscribe c a|b") || !slices.Contains(got, "subscribe c /chat/room 1|聊天/世界") {
		t.Errorf("events %q", got)
	}
	for _, topic := range []string{"/chat/room 1", "聊天/世界"} {
		send(t, c, `{"type":"publish","topic":"`+topic+`","data":"`+topic+`"}`)
		if got := next(t, c); got != `"`+topic+`"` {
			t.Fatalf("publish to %q delivered %s", topic, got)
		}
	}
}

// checkHeartbeat proves the periodic heartbeat: the v1 "heartbeat" text
// frame (v2: {"type":"ping"}) at the configured interval, each with a
// websocket ping.
func checkHeartbeat(t *testing.T, v2 bool) {
	const interval, beats = 200 * time.Millisecond, 3
	cfg := quietConfig()
	cfg.HeartbeatInterval = interval
	ts := newTestServer(t, cfg, nil)
	start := time.Now()
	c := dial(t, ts.url, v2)
	var pings atomic.Int32
	c.SetPingHandler(func(data string) error {
		pings.Add(1)
		return c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	want := protocol.HeartbeatV1
	if v2 {
		want = protocol.PingV2
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for range beats {
		mt, b, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if mt != websocket.TextMessage || string(b) != want {
			t.Fatalf("got frame type %d %q, want the text frame %q", mt, b, want)
		}
	}
	// The n-th heartbeat cannot come before n intervals; it must not take
	// much longer either (the default interval is 30 s).
	elapsed := time.Since(start)
	if elapsed < beats*interval || elapsed > 4*time.Second {
		t.Errorf("%d heartbeats took %v with an interval of %v", beats, elapsed, interval)
	}
	// Each heartbeat's ping follows it in the same write, so the pings of all
	// but the last one have been read.
	if n := pings.Load(); n < beats-1 {
		t.Errorf("%d websocket pings with %d heartbeats", n, beats)
	}
}

func TestV1Heartbeat(t *testing.T) {
	t.Parallel()
	checkHeartbeat(t, false)
}

// Publishing to a topic nobody holds is fine: no error, nothing delivered,
// the connection stays usable, and the counts say nobody is there.
func TestV1PublishWithoutSubscribers(t *testing.T) {
	t.Parallel()
	towers := make(chan *gateway.FireTower, 1)
	var log eventLog
	ts := newTestServer(t, quietConfig(), recordingSetup(&log, towers))
	c := dial(t, ts.url+"?id=c", false)
	tower := recvTower(t, towers)
	published := ts.gw.Stats().Published

	send(t, c, `{"type":"publish","topic":"nobody","data":{"x":1}}`)
	if got := barrier(t, c, false); len(got) != 0 {
		t.Fatalf("received %q", got)
	}
	if err := ts.gw.Publish(context.Background(), "nobody", []byte(`1`)); err != nil {
		t.Fatalf("Gateway.Publish to a topic without subscribers: %v", err)
	}
	s := ts.gw.Stats()
	if s.Published-published != 2 || s.PublishErrors != 0 {
		t.Errorf("Published grew by %d, PublishErrors %d", s.Published-published, s.PublishErrors)
	}
	if n := tower.GetConnectNum("nobody"); n != 0 {
		t.Errorf("GetConnectNum = %d", n)
	}
	if tower.CheckTopicExist("nobody") {
		t.Error("CheckTopicExist = true")
	}
	send(t, c, `{"type":"subscribe","topic":"nobody","data":""}`)
	send(t, c, `{"type":"publish","topic":"nobody","data":{"x":2}}`)
	if got := next(t, c); got != `{"x":2}` {
		t.Fatalf("got %s", got)
	}
}

// FireLife's accessors describe the connection; NewFireInfo inherits a
// non-nil context and makes one from the tower otherwise.
func TestFireLifeAndNewFireInfo(t *testing.T) {
	t.Parallel()
	type seen struct {
		fire               *gateway.FireInfo
		inherited, created *gateway.FireInfo
	}
	got := make(chan seen, 1)
	ts := newTestServer(t, quietConfig(), func(tower *gateway.FireTower) {
		tower.UserId = "user-7"
		tower.SetReadHandler(func(fire *gateway.FireInfo) bool {
			got <- seen{fire, gateway.NewFireInfo(tower, fire.Context), gateway.NewFireInfo(tower, nil)}
			return true
		})
	})
	before := time.Now()
	c := dial(t, ts.url+"?id=client-42", false)
	send(t, c, `{"type":"publish","topic":"t","data":{"a":1}}`)
	var s seen
	select {
	case s = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("ReadHandler not called")
	}

	life := s.fire.Context
	if life == nil {
		t.Fatal("FireInfo.Context is nil")
	}
	if life.ClientID() != "client-42" || life.UserID() != "user-7" {
		t.Errorf("ClientID %q UserID %q", life.ClientID(), life.UserID())
	}
	if st := life.StartTime(); st.Before(before) || st.After(time.Now()) {
		t.Errorf("StartTime %v not between %v and now", st, before)
	}
	if life.RemoteAddr() != c.LocalAddr().String() {
		t.Errorf("RemoteAddr %q, want the client's address %q", life.RemoteAddr(), c.LocalAddr())
	}
	if s.fire.MessageType != websocket.TextMessage {
		t.Errorf("MessageType %d", s.fire.MessageType)
	}
	if m := s.fire.Message; m.Type != "publish" || m.Topic != "t" || string(m.Data) != `{"a":1}` {
		t.Errorf("Message %+v", m)
	}

	if s.inherited.Context != life {
		t.Error("NewFireInfo did not inherit the given context")
	}
	if s.created.Context == nil || s.created.Context.ClientID() != "client-42" || s.created.Context.UserID() != "user-7" {
		t.Errorf("NewFireInfo(tower, nil) context %+v", s.created.Context)
	}
	for _, f := range []*gateway.FireInfo{s.inherited, s.created} {
		if f.Message == nil || f.MessageType != websocket.TextMessage {
			t.Errorf("NewFireInfo returned %+v", f)
		}
	}
}

// GetConnectNum counts a topic's subscribers, v1 and v2 alike, and follows
// unsubscriptions; CheckTopicExist says whether there is one.
func TestGetConnectNumAndCheckTopicExist(t *testing.T) {
	t.Parallel()
	towers := make(chan *gateway.FireTower, 3)
	var log eventLog
	ts := newTestServer(t, quietConfig(), recordingSetup(&log, towers))
	var clients []*websocket.Conn
	var tw []*gateway.FireTower
	for i := range 3 {
		clients = append(clients, dial(t, fmt.Sprintf("%s?id=%d", ts.url, i), i == 2))
		tw = append(tw, recvTower(t, towers))
	}
	send(t, clients[0], `{"type":"subscribe","topic":"room","data":""}`)
	send(t, clients[1], `{"type":"subscribe","topic":"room,hall","data":""}`)
	send(t, clients[2], `{"id":1,"type":"subscribe","topics":["room"]}`)
	expectAck(t, clients[2], "1")
	waitCount(t, ts.gw, "room", 3)
	waitCount(t, ts.gw, "hall", 1)

	for _, tower := range tw {
		if n := tower.GetConnectNum("room"); n != 3 {
			t.Errorf("GetConnectNum(room) = %d, want 3", n)
		}
		if n := tower.GetConnectNum("hall"); n != 1 {
			t.Errorf("GetConnectNum(hall) = %d, want 1", n)
		}
		if !tower.CheckTopicExist("room") || !tower.CheckTopicExist("hall") || tower.CheckTopicExist("attic") {
			t.Error("CheckTopicExist is wrong")
		}
	}
	send(t, clients[1], `{"type":"unSubscribe","topic":"hall","data":""}`)
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if tw[0].CheckTopicExist("hall") {
			return errors.New("hall still exists after its only subscriber left")
		}
		return nil
	})
	if n := tw[0].GetConnectNum("room"); n != 3 {
		t.Errorf("GetConnectNum(room) = %d, want 3", n)
	}
}

// ToSelf sends to one connection: v1 gets the bytes as they are (JSON or
// not), v2 gets {"type":"direct","data":...} and non-JSON is refused.
func TestToSelf(t *testing.T) {
	t.Parallel()
	towers := make(chan *gateway.FireTower, 2)
	var log eventLog
	ts := newTestServer(t, quietConfig(), recordingSetup(&log, towers))
	v1 := dial(t, ts.url+"?id=v1", false)
	t1 := recvTower(t, towers)
	v2 := dial(t, ts.url+"?id=v2", true)
	t2 := recvTower(t, towers)
	if t1.Version() != protocol.V1 || t2.Version() != protocol.V2 {
		t.Fatalf("versions %v %v", t1.Version(), t2.Version())
	}

	for _, b := range []string{`{"type":"onSubscribe","data":3}`, `plain text, not JSON`} {
		if err := t1.ToSelf([]byte(b)); err != nil {
			t.Fatalf("v1 ToSelf(%q): %v", b, err)
		}
		if got := next(t, v1); got != b {
			t.Fatalf("v1 got %q, want %q", got, b)
		}
	}

	if err := t2.ToSelf([]byte(`not json`)); !errors.Is(err, gateway.ErrInvalidData) {
		t.Fatalf("v2 ToSelf of non-JSON: %v, want ErrInvalidData", err)
	}
	if err := t2.ToSelf([]byte(`{"type":"onSubscribe","data":3}`)); err != nil {
		t.Fatalf("v2 ToSelf: %v", err)
	}
	// The refused call sent nothing: the next frame is the second one.
	if got, want := next(t, v2), `{"type":"direct","data":{"type":"onSubscribe","data":3}}`; got != want {
		t.Fatalf("v2 got %s, want %s", got, want)
	}

	// ToSelf on a closed connection fails instead of queueing forever.
	v1.Close()
	log.waitEvent(t, "offline v1", 1)
	if err := t1.ToSelf([]byte(`1`)); !errors.Is(err, gateway.ErrClosed) {
		t.Fatalf("ToSelf after the connection ended: %v, want ErrClosed", err)
	}
}

// The server can subscribe and unsubscribe a connection itself: no
// handler fires, and Gateway.Publish reaches the connection.
func TestServerSideSubscribeAndGatewayPublish(t *testing.T) {
	t.Parallel()
	towers := make(chan *gateway.FireTower, 1)
	var log eventLog
	ts := newTestServer(t, quietConfig(), recordingSetup(&log, towers))
	c := dial(t, ts.url+"?id=c", false)
	tower := recvTower(t, towers)
	ctx := context.Background()

	added, err := tower.Subscribe("srv/1", "srv/2", "srv/1")
	if err != nil || !slices.Equal(added, []string{"srv/1", "srv/2"}) {
		t.Fatalf("Subscribe = %q, %v", added, err)
	}
	if added, err := tower.Subscribe("srv/1"); err != nil || len(added) != 0 {
		t.Fatalf("Subscribe again = %q, %v; want nothing new", added, err)
	}
	if _, err := tower.Subscribe("srv/3", "bad\x00topic"); !errors.Is(err, protocol.ErrTopicInvalid) {
		t.Fatalf("Subscribe with an invalid topic: %v", err)
	}
	topics := tower.Topics()
	slices.Sort(topics)
	if !slices.Equal(topics, []string{"srv/1", "srv/2"}) {
		t.Fatalf("Topics() = %q; a failed Subscribe must change nothing", topics)
	}

	if err := ts.gw.Publish(ctx, "srv/2", []byte(`{"from":"server"}`)); err != nil {
		t.Fatal(err)
	}
	if got := next(t, c); got != `{"from":"server"}` {
		t.Fatalf("got %s", got)
	}
	if removed := tower.Unsubscribe("srv/2", "never"); !slices.Equal(removed, []string{"srv/2"}) {
		t.Fatalf("Unsubscribe = %q", removed)
	}
	if n := ts.gw.LocalConnectNum("srv/2"); n != 0 {
		t.Fatalf("srv/2 has %d subscribers", n)
	}
	// Publish from the tower (the original's tower.Publish(NewFireInfo(...))).
	fire := gateway.NewFireInfo(tower, nil)
	fire.Message.Topic, fire.Message.Data = "srv/1", []byte(`"via tower"`)
	if err := tower.Publish(fire); err != nil {
		t.Fatal(err)
	}
	if got := next(t, c); got != `"via tower"` {
		t.Fatalf("got %s", got)
	}
	if n := log.count("subscribe") + log.count("unsubscribe"); n != 0 {
		t.Fatalf("server-side (un)subscriptions fired handlers: %q", log.list())
	}

	// Gateway.Publish refuses what it cannot deliver.
	for _, tc := range []struct {
		topic, data string
		err         error
	}{
		{"", `1`, protocol.ErrTopicEmpty},
		{"a,b", `1`, protocol.ErrTopicInvalid},
		{"srv/1", `{"unterminated":`, gateway.ErrInvalidData},
		{"srv/1", ``, gateway.ErrInvalidData},
	} {
		if err := ts.gw.Publish(ctx, tc.topic, []byte(tc.data)); !errors.Is(err, tc.err) {
			t.Errorf("Publish(%q, %q) = %v, want %v", tc.topic, tc.data, err, tc.err)
		}
	}
	if got := barrier(t, c, false); len(got) != 0 {
		t.Fatalf("refused publishes delivered %q", got)
	}
}

// Gateway.CloseTopic removes every local subscriber of a topic; each gets
// OnSystemRemove and UnSubscribeHandler, and keeps its other topics.
func TestCloseTopic(t *testing.T) {
	t.Parallel()
	var log eventLog
	ts := newTestServer(t, quietConfig(), recordingSetup(&log, nil))
	a := dial(t, ts.url+"?id=a", false)
	b := dial(t, ts.url+"?id=b", true)
	send(t, a, `{"type":"subscribe","topic":"news,other","data":""}`)
	send(t, b, `{"id":1,"type":"subscribe","topics":["news","other"]}`)
	expectAck(t, b, "1")
	waitCount(t, ts.gw, "news", 2)

	if n := ts.gw.CloseTopic("news"); n != 2 {
		t.Fatalf("CloseTopic removed %d connections, want 2", n)
	}
	if n := ts.gw.LocalConnectNum("news"); n != 0 {
		t.Fatalf("news has %d subscribers after CloseTopic", n)
	}
	for _, id := range []string{"a", "b"} {
		log.waitEvent(t, "unsubscribe "+id+" news", 1) // the callbacks run in order with the connection's frames
		if log.count("systemremove "+id+" news") != 1 || log.count("unsubscribe "+id+" news") != 1 {
			t.Fatalf("handlers for %s: %q", id, log.list())
		}
	}
	if n := ts.gw.CloseTopic("news"); n != 0 {
		t.Fatalf("second CloseTopic removed %d", n)
	}
	if err := ts.gw.Publish(context.Background(), "news", []byte(`"gone"`)); err != nil {
		t.Fatal(err)
	}
	if err := ts.gw.Publish(context.Background(), "other", []byte(`"still here"`)); err != nil {
		t.Fatal(err)
	}
	if got := next(t, a); got != `"still here"` {
		t.Fatalf("v1 got %s", got)
	}
	if f, raw := nextV2(t, b); f.Type != "message" || f.Topic != "other" {
		t.Fatalf("v2 got %s", raw)
	}
}

// Two connections with the same client id are two subscribers: both work
// and both receive; closing one leaves the other.
func TestClientIDCollision(t *testing.T) {
	t.Parallel()
	var log eventLog
	ts := newTestServer(t, quietConfig(), recordingSetup(&log, nil))
	first := dial(t, ts.url+"?id=same", false)
	second := dial(t, ts.url+"?id=same", false)
	send(t, first, `{"type":"subscribe","topic":"t","data":""}`)
	send(t, second, `{"type":"subscribe","topic":"t","data":""}`)
	waitCount(t, ts.gw, "t", 2)

	send(t, second, `{"type":"publish","topic":"t","data":"from second"}`)
	for _, c := range []*websocket.Conn{first, second} {
		if got := next(t, c); got != `"from second"` {
			t.Fatalf("got %s", got)
		}
	}
	first.Close()
	waitCount(t, ts.gw, "t", 1)
	send(t, second, `{"type":"publish","topic":"t","data":"still"}`)
	if got := next(t, second); got != `"still"` {
		t.Fatalf("got %s", got)
	}
	log.waitEvent(t, "offline same", 1) // one closed connection, one offline
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := ts.gw.Stats().Connections; n != 1 {
			return fmt.Errorf("%d connections open", n)
		}
		return nil
	})
}

// SetDefault installs the gateway the package-level BuildTower uses, as the
// original's example calls gateway.BuildTower(ws, id).
func TestSetDefaultAndBuildTower(t *testing.T) {
	gw, err := gateway.New(quietConfig())
	if err != nil {
		t.Fatal(err)
	}
	prev := gateway.Default()
	gateway.SetDefault(gw)
	if gateway.Default() != gw {
		t.Fatal("Default() is not the gateway given to SetDefault")
	}
	built := make(chan *gateway.FireTower, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := gw.Upgrade(w, r)
		if err != nil {
			return
		}
		tower := gateway.BuildTower(ws, "default-1")
		tower.SetReadHandler(func(fire *gateway.FireInfo) bool {
			_ = tower.Publish(fire)
			return true
		})
		built <- tower
		tower.Run()
	}))
	t.Cleanup(func() {
		gateway.SetDefault(prev)
		_ = gw.Close()
		srv.Close()
	})
	if gateway.BuildTower(nil, "x") != nil {
		t.Fatal("BuildTower(nil) is not nil")
	}

	c := dial(t, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", false)
	tower := recvTower(t, built)
	if tower.Gateway() != gw || tower.ClientId != "default-1" {
		t.Fatalf("tower of gateway %p id %q", tower.Gateway(), tower.ClientId)
	}
	send(t, c, `{"type":"subscribe","topic":"d","data":""}`)
	send(t, c, `{"type":"publish","topic":"d","data":"via default"}`)
	if got := next(t, c); got != `"via default"` {
		t.Fatalf("got %s", got)
	}
	if n := gw.LocalConnectNum("d"); n != 1 {
		t.Fatalf("the default gateway counts %d subscribers", n)
	}
}

// When a client goes away, by a close frame or by dropping TCP, all its
// topics are unsubscribed, UnSubscribeHandler fires once with every topic it
// still held, then OnOfflineHandler fires once.
func TestDisconnectUnsubscribesEverything(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		v2   bool
		quit func(*websocket.Conn) error
	}{
		{"close frame", false, func(c *websocket.Conn) error {
			return c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"))
		}},
		{"tcp drop", false, func(c *websocket.Conn) error { return c.NetConn().Close() }},
		{"v2 tcp drop", true, func(c *websocket.Conn) error { return c.NetConn().Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var log eventLog
			ts := newTestServer(t, quietConfig(), recordingSetup(&log, nil))
			stay := dial(t, ts.url+"?id=stay", false)
			send(t, stay, `{"type":"subscribe","topic":"a","data":""}`)
			leave := dial(t, ts.url+"?id=leave", tc.v2)
			if tc.v2 {
				send(t, leave, `{"id":1,"type":"subscribe","topic":"a,b"}`)
				send(t, leave, `{"id":2,"type":"subscribe","topics":["c","d"]}`)
				send(t, leave, `{"id":3,"type":"unsubscribe","topic":"d"}`)
				expectAck(t, leave, "1")
				expectAck(t, leave, "2")
				expectAck(t, leave, "3")
			} else {
				send(t, leave, `{"type":"subscribe","topic":"a,b","data":""}`)
				send(t, leave, `{"type":"subscribe","topic":"c,d","data":""}`)
				send(t, leave, `{"type":"unSubscribe","topic":"d","data":""}`)
				barrier(t, leave, false)
			}
			waitCount(t, ts.gw, "a", 2)
			if n := ts.gw.Stats().Topics; n != 3 {
				t.Fatalf("%d topics, want a, b, c", n)
			}

			if err := tc.quit(leave); err != nil {
				t.Fatal(err)
			}
			log.waitEvent(t, "offline leave", 1)
			for topic, want := range map[string]int64{"a": 1, "b": 0, "c": 0, "d": 0} {
				if n := ts.gw.LocalConnectNum(topic); n != want {
					t.Errorf("topic %s: %d subscribers, want %d", topic, n, want)
				}
			}
			var mine []string // the leaver's subscription and offline events, in order
			for _, e := range log.list() {
				f := strings.Fields(e)
				if f[1] == "leave" && (f[0] == "subscribe" || f[0] == "unsubscribe" || f[0] == "offline") {
					mine = append(mine, e)
				}
			}
			want := []string{"subscribe leave a|b", "subscribe leave c|d", "unsubscribe leave d", "unsubscribe leave a|b|c", "offline leave"}
			if !slices.Equal(mine, want) {
				t.Fatalf("events %q, want %q", mine, want)
			}
			checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
				if s := ts.gw.Stats(); s.Connections != 1 || s.Topics != 1 {
					return fmt.Errorf("after the disconnect: %d connections, %d topics", s.Connections, s.Topics)
				}
				return nil
			})
			// The one who stayed is unaffected.
			send(t, stay, `{"type":"publish","topic":"a","data":"hi"}`)
			if got := next(t, stay); got != `"hi"` {
				t.Fatalf("got %s", got)
			}
		})
	}
}

// OnConnectHandler returning false refuses the client with 4503; its
// handlers see no frame.
func TestOnConnectFalseRefuses(t *testing.T) {
	t.Parallel()
	var log eventLog
	ts := newTestServer(t, quietConfig(), func(tower *gateway.FireTower) {
		recordingSetup(&log, nil)(tower)
		tower.SetOnConnectHandler(func() bool { return tower.ClientId != "refused" })
	})
	c := dial(t, ts.url+"?id=refused", false)
	// The server may already have closed: the write's outcome does not matter.
	_ = c.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","topic":"t","data":""}`))
	if code := closeCode(t, c); code != protocol.CloseRejected {
		t.Fatalf("close code %d, want %d", code, protocol.CloseRejected)
	}
	ok := dial(t, ts.url+"?id=ok", false)
	send(t, ok, `{"type":"subscribe","topic":"t","data":""}`)
	barrier(t, ok, false)
	if n := ts.gw.LocalConnectNum("t"); n != 1 {
		t.Fatalf("t has %d subscribers; the refused client must not subscribe", n)
	}
	if n := log.count("subscribe refused"); n != 0 {
		t.Fatalf("refused client's frames were handled: %q", log.list())
	}
}

// Two gateways joined by one broker are one cluster: a publish on A reaches
// subscribers on B in their own protocol, and counts are cluster-wide.
func TestClusterTwoGateways(t *testing.T) {
	t.Parallel()
	bus := broker.NewBus()
	cfgA, cfgB := quietConfig(), quietConfig()
	cfgA.Broker, cfgA.NodeID = bus.Node(), "node-a"
	cfgB.Broker, cfgB.NodeID = bus.Node(), "node-b"
	towersA := make(chan *gateway.FireTower, 1)
	var logA, logB eventLog
	a := newTestServer(t, cfgA, recordingSetup(&logA, towersA))
	b := newTestServer(t, cfgB, recordingSetup(&logB, nil))

	onA := dial(t, a.url+"?id=a1", false)
	towerA := recvTower(t, towersA)
	b1 := dial(t, b.url+"?id=b1", false)
	b2 := dial(t, b.url+"?id=b2", true)
	send(t, onA, `{"type":"subscribe","topic":"/chat/world","data":""}`)
	send(t, b1, `{"type":"subscribe","topic":"/chat/world","data":""}`)
	send(t, b2, `{"id":1,"type":"subscribe","topics":["/chat/world"]}`)
	expectAck(t, b2, "1")
	waitCount(t, a.gw, "/chat/world", 1)
	waitCount(t, b.gw, "/chat/world", 2)

	if n := towerA.GetConnectNum("/chat/world"); n != 3 {
		t.Fatalf("GetConnectNum on A = %d, want 3 (1 on A, 2 on B)", n)
	}
	if n := a.gw.ConnectNum(context.Background(), "/chat/world"); n != 3 {
		t.Fatalf("ConnectNum on A = %d", n)
	}
	if !towerA.CheckTopicExist("/chat/world") {
		t.Fatal("CheckTopicExist on A is false")
	}

	send(t, onA, `{"type":"publish","topic":"/chat/world","data":{"from":"a1","data":"hi"}}`)
	for _, c := range []*websocket.Conn{onA, b1} {
		if got := next(t, c); got != `{"from":"a1","data":"hi"}` {
			t.Fatalf("v1 got %s", got)
		}
	}
	if f, raw := nextV2(t, b2); f.Type != "message" || f.Topic != "/chat/world" || string(f.Data) != `{"from":"a1","data":"hi"}` {
		t.Fatalf("v2 on B got %s", raw)
	}
	if n := b.gw.Stats().RemoteIn; n != 1 {
		t.Errorf("B received %d remote messages, want 1", n)
	}

	// And back: Gateway.Publish on B reaches A's subscriber.
	if err := b.gw.Publish(context.Background(), "/chat/world", []byte(`"from b"`)); err != nil {
		t.Fatal(err)
	}
	if got := next(t, onA); got != `"from b"` {
		t.Fatalf("A got %s", got)
	}

	// B's subscribers leaving shows in A's count.
	b1.Close()
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := towerA.GetConnectNum("/chat/world"); n != 2 {
			return fmt.Errorf("GetConnectNum on A = %d, want 2", n)
		}
		return nil
	})
}
