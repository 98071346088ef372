package gateway_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/internal/wait"
	"github.com/firetower-go/firetower/protocol"
	"github.com/gorilla/websocket"
)

// testServer is a gateway behind a real HTTP server on 127.0.0.1.
type testServer struct {
	gw  *gateway.Gateway
	srv *httptest.Server
	url string // ws://127.0.0.1:port/ws
}

// newTestServer starts a gateway whose /ws handler builds a tower, lets
// setup install handlers (the default: publish what is read), and runs it.
func newTestServer(t testing.TB, cfg gateway.Config, setup func(*gateway.FireTower)) *testServer {
	t.Helper()
	gw, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{gw: gw}
	ts.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := gw.Upgrade(w, r)
		if err != nil {
			return
		}
		tower := gw.BuildTower(ws, r.URL.Query().Get("id"))
		if setup != nil {
			setup(tower)
		} else {
			tower.SetReadHandler(func(fire *gateway.FireInfo) bool {
				_ = tower.Publish(fire)
				return true
			})
		}
		tower.Run()
	}))
	ts.url = "ws" + strings.TrimPrefix(ts.srv.URL, "http") + "/ws"
	t.Cleanup(func() {
		_ = gw.Close()
		ts.srv.Close()
	})
	return ts
}

// dial opens a client; v2 offers the firetower.v2 subprotocol.
func dial(t testing.TB, url string, v2 bool) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	if v2 {
		d.Subprotocols = []string{protocol.SubprotocolV2}
	}
	c, resp, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	resp.Body.Close()
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t testing.TB, c *websocket.Conn, frame string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// next returns the next text message that is not a heartbeat or v2 ping.
func next(t testing.TB, c *websocket.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, b, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if s := string(b); s != protocol.HeartbeatV1 && s != protocol.PingV2 {
			return s
		}
	}
}

// checkFor polls fn until it returns nil or total elapses.
func checkFor(t testing.TB, total, interval time.Duration, fn func() error) {
	t.Helper()
	wait.For(t, total, interval, fn)
}

// skipOnNetpoll skips a test of the goroutine transport's own behaviour
// when cfg runs on the netpoll transport (FIRETOWER_TEST_TRANSPORT).
func skipOnNetpoll(t testing.TB, cfg gateway.Config, why string) {
	t.Helper()
	if gw, err := gateway.New(cfg); err == nil {
		netpoll := gw.Config().Transport == gateway.TransportNetpoll
		_ = gw.Close()
		if netpoll {
			t.Skip("netpoll transport: " + why)
		}
	}
}

// quietConfig is a Config for tests: callbacks that panic do not fill the
// test log, and a connection closed by the server gives its client only a
// short grace to answer the close frame.
func quietConfig() gateway.Config {
	return gateway.Config{
		Logger:     slog.New(slog.DiscardHandler),
		CloseGrace: 200 * time.Millisecond,
	}
}

// eventLog records callback events in order; it is safe for concurrent use.
type eventLog struct {
	mu     sync.Mutex
	events []string
}

func (l *eventLog) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, fmt.Sprintf(format, args...))
}

func (l *eventLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

// count returns how many events start with prefix.
func (l *eventLog) count(prefix string) int {
	n := 0
	for _, e := range l.list() {
		if strings.HasPrefix(e, prefix) {
			n++
		}
	}
	return n
}

// waitEvent polls until an event starting with prefix has been recorded n
// times.
func (l *eventLog) waitEvent(t testing.TB, prefix string, n int) {
	t.Helper()
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if got := l.count(prefix); got != n {
			return fmt.Errorf("%d events %q, want %d; events: %q", got, prefix, n, l.list())
		}
		return nil
	})
}

// sortedTopics formats a topic list in a stable order for an event.
func sortedTopics(topics []string) string {
	s := append([]string(nil), topics...)
	sort.Strings(s)
	return strings.Join(s, "|")
}

// recordingSetup returns a newTestServer setup that records every callback
// in log and hands each tower to towers (buffered; size it for the test).
// Its ReadHandler publishes "publish" frames and answers "echo" frames with
// ToSelf(data). Since a connection's frames are handled in order, reading
// the echo back proves every frame sent before it was handled: v1, which
// has no acknowledgements, uses that as a barrier (see barrier).
func recordingSetup(log *eventLog, towers chan<- *gateway.FireTower) func(*gateway.FireTower) {
	return func(tower *gateway.FireTower) {
		id := tower.ClientId
		tower.SetOnConnectHandler(func() bool { log.add("connect %s", id); return true })
		tower.SetOnOfflineHandler(func() { log.add("offline %s", id) })
		tower.SetReadHandler(func(fire *gateway.FireInfo) bool {
			m := fire.Message
			log.add("read %s %s %s %s", fire.Context.ClientID(), m.Type, m.Topic, m.Data)
			switch m.Type {
			case "publish":
				_ = tower.Publish(fire)
			case "echo":
				_ = tower.ToSelf(m.Data)
			}
			return true
		})
		tower.SetReadTimeoutHandler(func(fire *gateway.FireInfo) {
			log.add("timeout %s %s", fire.Context.ClientID(), fire.Message.Data)
		})
		tower.SetSubscribeHandler(func(life *gateway.FireLife, topics []string) bool {
			log.add("subscribe %s %s", life.ClientID(), sortedTopics(topics))
			return true
		})
		tower.SetUnSubscribeHandler(func(life *gateway.FireLife, topics []string) bool {
			log.add("unsubscribe %s %s", life.ClientID(), sortedTopics(topics))
			return true
		})
		tower.SetOnSystemRemove(func(topic string) { log.add("systemremove %s %s", id, topic) })
		if towers != nil {
			towers <- tower
		}
	}
}

// barrier sends an "echo" frame through a recordingSetup connection and
// waits for its answer: every frame the client sent before was handled.
// Deliveries read meanwhile are returned.
func barrier(t testing.TB, c *websocket.Conn, v2 bool) []string {
	t.Helper()
	token := fmt.Sprintf(`"barrier-%d"`, barrierSeq.Add(1))
	send(t, c, `{"type":"echo","topic":"-","data":`+token+`}`)
	want := token
	if v2 {
		want = `{"type":"direct","data":` + token + `}`
	}
	var before []string
	for {
		got := next(t, c)
		if got == want {
			return before
		}
		before = append(before, got)
	}
}

var barrierSeq atomic.Int64

// recvTower returns the next tower the server built.
func recvTower(t testing.TB, towers <-chan *gateway.FireTower) *gateway.FireTower {
	t.Helper()
	select {
	case tower := <-towers:
		return tower
	case <-time.After(5 * time.Second):
		t.Fatal("no connection reached the server")
		return nil
	}
}

// waitCount polls until topic has n local subscribers on gw.
func waitCount(t testing.TB, gw *gateway.Gateway, topic string, n int64) {
	t.Helper()
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if got := gw.LocalConnectNum(topic); got != n {
			return fmt.Errorf("topic %q has %d local subscribers, want %d", topic, got, n)
		}
		return nil
	})
}

// closeCode reads until the server closes the connection and returns the
// close code it sent; it fails the test if the connection ends otherwise.
func closeCode(t testing.TB, c *websocket.Conn) int {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("connection ended without a close frame: %v", err)
		}
		return ce.Code
	}
}

// v2Frame is any server-to-client v2 frame.
type v2Frame struct {
	Type  string          `json:"type"`
	ID    json.RawMessage `json:"id"`
	Topic string          `json:"topic"`
	Data  json.RawMessage `json:"data"`
	Error *v2Error        `json:"error"`
}

type v2Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// nextV2 reads and decodes the next v2 frame that is not a ping; raw is the
// frame as received.
func nextV2(t testing.TB, c *websocket.Conn) (f v2Frame, raw string) {
	t.Helper()
	raw = next(t, c)
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("server frame %s: %v", raw, err)
	}
	return f, raw
}

// expectError reads the next v2 frame and checks it is an error with the
// given id (a JSON literal, "null" for none) and code.
func expectError(t testing.TB, c *websocket.Conn, id string, code int) v2Error {
	t.Helper()
	f, raw := nextV2(t, c)
	if f.Type != "error" || f.Error == nil || string(f.ID) != id || f.Error.Code != code || f.Error.Message == "" {
		t.Fatalf("got %s, want an error frame with id %s and code %d", raw, id, code)
	}
	return *f.Error
}

// expectAck reads the next v2 frame and checks it is exactly the ack of id.
func expectAck(t testing.TB, c *websocket.Conn, id string) {
	t.Helper()
	if got, want := next(t, c), `{"type":"ack","id":`+id+`}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}
