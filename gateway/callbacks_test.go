package gateway_test

// The callback API: what each handler is given, when it fires, and what a
// refusal, a slow handler or a panic does to the connection.

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/protocol"
	"github.com/gorilla/websocket"
)

// BeforeSubscribeHandler returning false refuses the whole subscription:
// v1 silently (nothing subscribed), v2 with error 403. It is given the
// cleaned topic list.
func TestBeforeSubscribeRefuses(t *testing.T) {
	t.Parallel()
	var log eventLog
	ts := newTestServer(t, quietConfig(), func(tower *gateway.FireTower) {
		recordingSetup(&log, nil)(tower)
		tower.SetBeforeSubscribeHandler(func(life *gateway.FireLife, topics []string) bool {
			log.add("before %s %s", life.ClientID(), strings.Join(topics, "|"))
			return !slices.Contains(topics, "secret")
		})
	})
	v1 := dial(t, ts.url+"?id=v1", false)
	v2 := dial(t, ts.url+"?id=v2", true)
	errorsBefore := ts.gw.Stats().ProtocolErrors

	send(t, v1, `{"type":"subscribe","topic":" open , secret","data":""}`)
	send(t, v1, `{"type":"subscribe","topic":"open","data":""}`)
	if got := barrier(t, v1, false); len(got) != 0 {
		t.Fatalf("v1 got replies %q", got)
	}
	send(t, v2, `{"id":7,"type":"subscribe","topics":["open2","secret"]}`)
	expectError(t, v2, "7", protocol.CodeForbidden)
	send(t, v2, `{"id":8,"type":"subscribe","topics":["open2"]}`)
	expectAck(t, v2, "8")

	for topic, want := range map[string]int64{"open": 1, "open2": 1, "secret": 0} {
		if n := ts.gw.LocalConnectNum(topic); n != want {
			t.Errorf("%s: %d subscribers, want %d", topic, n, want)
		}
	}
	for _, e := range []string{"before v1 open|secret", "before v1 open", "before v2 open2|secret", "subscribe v1 open", "subscribe v2 open2"} {
		if !slices.Contains(log.list(), e) {
			t.Errorf("event %q missing: %q", e, log.list())
		}
	}
	if n := log.count("subscribe"); n != 2 {
		t.Errorf("SubscribeHandler fired %d times, want 2 (not for refused subscriptions)", n)
	}
	if n := ts.gw.Stats().ProtocolErrors - errorsBefore; n != 2 {
		t.Errorf("ProtocolErrors grew by %d, want 2", n)
	}
}

// SubscribeHandler receives only the topics a subscription newly added and
// does not fire when nothing was new; it gets the connection's context.
func TestSubscribeHandlerGetsOnlyNewTopics(t *testing.T) {
	t.Parallel()
	var log eventLog
	lives := make(chan *gateway.FireLife, 8)
	ts := newTestServer(t, quietConfig(), func(tower *gateway.FireTower) {
		recordingSetup(&log, nil)(tower)
		tower.SetSubscribeHandler(func(life *gateway.FireLife, topics []string) bool {
			log.add("subscribe %s %s", life.ClientID(), sortedTopics(topics))
			lives <- life
			return false // ignored: the subscription stands
		})
	})
	c := dial(t, ts.url+"?id=c", false)
	send(t, c, `{"type":"subscribe","topic":"a,b","data":""}`)
	send(t, c, `{"type":"subscribe","topic":"b,c","data":""}`)
	send(t, c, `{"type":"subscribe","topic":"a","data":""}`)
	send(t, c, `{"type":"subscribe","topic":" c , a,b ","data":""}`)
	barrier(t, c, false)

	var got []string
	for _, e := range log.list() {
		if strings.HasPrefix(e, "subscribe ") {
			got = append(got, e)
		}
	}
	if want := []string{"subscribe c a|b", "subscribe c c"}; !slices.Equal(got, want) {
		t.Fatalf("SubscribeHandler calls %q, want %q", got, want)
	}
	if life := <-lives; life.ClientID() != "c" || life.RemoteAddr() != c.LocalAddr().String() {
		t.Errorf("context %q %q", life.ClientID(), life.RemoteAddr())
	}
	for _, topic := range []string{"a", "b", "c"} {
		if n := ts.gw.LocalConnectNum(topic); n != 1 {
			t.Errorf("%s: %d subscribers; SubscribeHandler's false must not undo it", topic, n)
		}
	}
}

// ReadTimeoutHandler fires when the client produces faster than the
// handlers consume: with an inbound queue of 1 and a blocked ReadHandler, a
// third frame waits ReadTimeout and is handed to ReadTimeoutHandler instead;
// a v2 client is told with error 429. The frames that fitted are handled
// afterwards, in order, and the connection goes on.
func TestReadTimeoutHandler(t *testing.T) {
	t.Parallel()
	for _, v2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("v2=%v", v2), func(t *testing.T) {
			t.Parallel()
			cfg := quietConfig()
			skipOnNetpoll(t, cfg, "handlers run on the poller, with no inbound queue to time out on")
			cfg.InboundQueue, cfg.ReadTimeout = 1, 50*time.Millisecond
			var log eventLog
			entered := make(chan struct{}, 3)
			release := make(chan struct{})
			unblock := sync.OnceFunc(func() { close(release) })
			ts := newTestServer(t, cfg, func(tower *gateway.FireTower) {
				recordingSetup(&log, nil)(tower)
				tower.SetReadHandler(func(fire *gateway.FireInfo) bool {
					log.add("read %s", fire.Message.Data)
					if fire.Message.Type == "block" {
						entered <- struct{}{}
						<-release
					}
					if fire.Message.Type == "echo" {
						_ = tower.ToSelf(fire.Message.Data)
					}
					return true
				})
			})
			t.Cleanup(unblock) // runs before the server's cleanup
			c := dial(t, ts.url+"?id=c", v2)

			frame := func(n int) string {
				if v2 {
					return fmt.Sprintf(`{"id":%d,"type":"block","topic":"t","data":%d}`, n, n)
				}
				return fmt.Sprintf(`{"type":"block","topic":"t","data":%d}`, n)
			}
			send(t, c, frame(1))
			select {
			case <-entered:
			case <-time.After(5 * time.Second):
				t.Fatal("ReadHandler not called")
			}
			send(t, c, frame(2)) // fills the queue
			send(t, c, frame(3)) // waits ReadTimeout, then times out
			log.waitEvent(t, "timeout c 3", 1)
			if v2 {
				expectError(t, c, "3", protocol.CodeLimitExceeded)
			}
			if n := ts.gw.Stats().ReadTimeouts; n != 1 {
				t.Errorf("ReadTimeouts = %d", n)
			}

			unblock()
			if v2 {
				expectAck(t, c, "1")
				expectAck(t, c, "2")
			}
			barrier(t, c, v2)
			var reads []string
			for _, e := range log.list() {
				if strings.HasPrefix(e, "read ") {
					reads = append(reads, e)
				}
			}
			if want := []string{"read 1", "read 2"}; !slices.Equal(reads[:min(2, len(reads))], want) || slices.Contains(reads, "read 3") {
				t.Fatalf("ReadHandler saw %q, want 1 and 2 only", reads)
			}
			if n := log.count("timeout"); n != 1 {
				t.Fatalf("%d timeouts", n)
			}
		})
	}
}

// A panic in a callback is recovered: only that connection is closed, with
// 1011, the panic is counted, and the other connections go on.
func TestCallbackPanicClosesOnlyThatConnection(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		handler string
		trigger string // what the panicking client sends; "" for none
	}{
		{"OnConnect", ""},
		{"Read", `{"type":"publish","topic":"t","data":"boom"}`},
		{"Subscribe", `{"type":"subscribe","topic":"boom","data":""}`},
		{"BeforeSubscribe", `{"type":"subscribe","topic":"boom","data":""}`},
		{"UnSubscribe", `{"type":"unSubscribe","topic":"t","data":""}`},
	} {
		t.Run(tc.handler, func(t *testing.T) {
			t.Parallel()
			var log eventLog
			ts := newTestServer(t, quietConfig(), func(tower *gateway.FireTower) {
				recordingSetup(&log, nil)(tower)
				if tower.ClientId != "boom" {
					return
				}
				boom := func() bool { panic("boom in " + tc.handler) }
				// Topic handlers panic on the trigger only, so that the
				// client's first subscription to t succeeds.
				boomOn := func(_ *gateway.FireLife, topics []string) bool {
					if slices.Contains(topics, "boom") || tc.handler == "UnSubscribe" {
						boom()
					}
					return true
				}
				switch tc.handler {
				case "OnConnect":
					tower.SetOnConnectHandler(boom)
				case "Read":
					tower.SetReadHandler(func(*gateway.FireInfo) bool { return boom() })
				case "Subscribe":
					tower.SetSubscribeHandler(boomOn)
				case "BeforeSubscribe":
					tower.SetBeforeSubscribeHandler(boomOn)
				case "UnSubscribe":
					tower.SetUnSubscribeHandler(boomOn)
				}
			})
			good := dial(t, ts.url+"?id=good", false)
			send(t, good, `{"type":"subscribe","topic":"t","data":""}`)
			waitCount(t, ts.gw, "t", 1)

			bad := dial(t, ts.url+"?id=boom", false)
			if tc.trigger != "" {
				send(t, bad, `{"type":"subscribe","topic":"t","data":""}`)
				waitCount(t, ts.gw, "t", 2)
				send(t, bad, tc.trigger)
			}
			if code := closeCode(t, bad); code != protocol.CloseInternal {
				t.Fatalf("close code %d, want %d", code, protocol.CloseInternal)
			}
			if n := ts.gw.Stats().Panics; n != 1 {
				t.Fatalf("Panics = %d, want 1", n)
			}
			log.waitEvent(t, "offline boom", 1)
			waitCount(t, ts.gw, "t", 1)
			waitCount(t, ts.gw, "boom", 0)

			send(t, good, `{"type":"publish","topic":"t","data":"still alive"}`)
			if got := next(t, good); got != `"still alive"` {
				t.Fatalf("got %s", got)
			}
			again := dial(t, ts.url+"?id=again", true)
			send(t, again, `{"id":1,"type":"subscribe","topic":"t"}`)
			expectAck(t, again, "1")
		})
	}
}

// Handlers run in a fixed order over a connection's life: OnConnect first,
// then frame by frame, and at the end UnSubscribeHandler (with what was
// left) before OnOffline; OnOffline also fires when nothing was held.
func TestHandlerOrderOverALife(t *testing.T) {
	t.Parallel()
	var log eventLog
	ts := newTestServer(t, quietConfig(), recordingSetup(&log, nil))
	c := dial(t, ts.url+"?id=c", false)
	send(t, c, `{"type":"subscribe","topic":"x","data":""}`)
	send(t, c, `{"type":"publish","topic":"x","data":1}`)
	if got := next(t, c); got != `1` {
		t.Fatalf("got %s", got)
	}
	if err := c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "")); err != nil {
		t.Fatal(err)
	}
	log.waitEvent(t, "offline c", 1)
	want := []string{"connect c", "subscribe c x", "read c publish x 1", "unsubscribe c x", "offline c"}
	if got := log.list(); !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}

	quiet := dial(t, ts.url+"?id=q", true)
	quiet.Close()
	log.waitEvent(t, "offline q", 1)
	if n := log.count("unsubscribe q"); n != 0 {
		t.Fatalf("UnSubscribeHandler fired for a connection that held nothing: %q", log.list())
	}
}

// OnConnect runs before any frame is handled, and the UserId it sets (after
// an authentication round trip, say) is in the context of every frame, even
// of frames the client sent while OnConnect was still running.
func TestUserIDSetInOnConnect(t *testing.T) {
	t.Parallel()
	got := make(chan string, 2)
	sent := make(chan struct{})
	ts := newTestServer(t, quietConfig(), func(tower *gateway.FireTower) {
		tower.SetOnConnectHandler(func() bool {
			// Finish only once the client has sent its frames (both
			// transports read them only after OnConnect).
			select {
			case <-sent:
			case <-time.After(5 * time.Second):
			}
			tower.UserId = "user-" + tower.ClientId
			return true
		})
		tower.SetReadHandler(func(fire *gateway.FireInfo) bool {
			got <- fire.Context.UserID()
			return true
		})
	})
	c := dial(t, ts.url+"?id=7", false)
	send(t, c, `{"type":"publish","topic":"t","data":1}`)
	send(t, c, `{"type":"publish","topic":"t","data":2}`)
	close(sent)
	for range 2 {
		select {
		case u := <-got:
			if u != "user-7" {
				t.Fatalf("UserID %q in a frame's context, want the one OnConnect set", u)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("ReadHandler not called")
		}
	}
}
