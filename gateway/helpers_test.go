package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/gateway"
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
	deadline := time.Now().Add(total)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %v", total, err)
		}
		time.Sleep(interval)
	}
}
