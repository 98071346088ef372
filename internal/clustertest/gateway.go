package clustertest

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/internal/wait"
	"github.com/firetower-go/firetower/protocol"
)

// CheckFor polls fn every 10 ms until it returns nil, and fails the test
// with fn's last error if that has not happened within total.
func CheckFor(t testing.TB, total time.Duration, fn func() error) {
	t.Helper()
	wait.For(t, total, 10*time.Millisecond, fn)
}

// Gateway is a gateway behind an HTTP server whose /ws publishes what the
// clients send, as the all-in-one server does.
type Gateway struct {
	G   *gateway.Gateway
	URL string
}

// StartGateway starts a gateway named name on b; it is closed in t.Cleanup.
func StartGateway(t testing.TB, name string, b broker.Broker, log *slog.Logger) *Gateway {
	t.Helper()
	g, err := gateway.New(gateway.Config{
		NodeID: name, Broker: b, Logger: log,
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
	return &Gateway{G: g, URL: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"}
}

// Client is a websocket client that reads in the background; heartbeats
// are left out of In.
type Client struct {
	Name string
	C    *websocket.Conn
	In   chan string
	done chan struct{}
}

// Dial connects a client named name to g, speaking v2 if v2 is set.
func Dial(t testing.TB, g *Gateway, name string, v2 bool) *Client {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	if v2 {
		d.Subprotocols = []string{protocol.SubprotocolV2}
	}
	c, resp, err := d.Dial(g.URL+"?id="+name, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", g.URL, err)
	}
	resp.Body.Close()
	cl := &Client{Name: name, C: c, In: make(chan string, 20000), done: make(chan struct{})}
	go func() {
		defer close(cl.done)
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				return
			}
			if s := string(b); s != protocol.HeartbeatV1 && s != protocol.PingV2 {
				cl.In <- s
			}
		}
	}()
	t.Cleanup(func() { _ = c.Close(); <-cl.done })
	return cl
}

// Send writes one text frame.
func (c *Client) Send(t testing.TB, frame string) {
	t.Helper()
	if err := c.C.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		t.Fatalf("%s: write: %v", c.Name, err)
	}
}

// Next returns the next message, failing the test after 5 s.
func (c *Client) Next(t testing.TB) string {
	t.Helper()
	select {
	case s := <-c.In:
		return s
	case <-time.After(5 * time.Second):
		t.Fatalf("%s received nothing within 5s", c.Name)
		return ""
	}
}

// Expect checks that the next messages are exactly want, in order.
func (c *Client) Expect(t testing.TB, want ...string) {
	t.Helper()
	for i, w := range want {
		if got := c.Next(t); got != w {
			t.Fatalf("%s: message %d is %s, want %s", c.Name, i, Excerpt(got), Excerpt(w))
		}
	}
}

// Quiet fails the test if c receives anything within d.
func (c *Client) Quiet(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case s := <-c.In:
		t.Fatalf("%s received %s, want nothing", c.Name, Excerpt(s))
	case <-time.After(d):
	}
}

// Excerpt quotes s, shortened.
func Excerpt(s string) string {
	if len(s) > 80 {
		return fmt.Sprintf("%q... (%d bytes)", s[:80], len(s))
	}
	return strconv.Quote(s)
}

// ClusterCount waits until every gateway sees n subscribers of topic
// cluster-wide.
func ClusterCount(t testing.TB, topic string, n int64, gws ...*Gateway) {
	t.Helper()
	CheckFor(t, 5*time.Second, func() error {
		for i, g := range gws {
			if got := g.G.ConnectNum(context.Background(), topic); got != n {
				return fmt.Errorf("gateway %d counts %d subscribers of %q, want %d", i, got, topic, n)
			}
		}
		return nil
	})
}

// WaitRoute publishes probes (the JSON string "probe") on topic from g
// until to receives one, then drops every probe that reaches to and the
// clients of drain (the other subscribers of topic) within a moment: the
// route from g to to's gateway is established.
func WaitRoute(t testing.TB, g *Gateway, topic string, to *Client, drain ...*Client) {
	t.Helper()
	isProbe := func(s string) bool { return s == `"probe"` || strings.HasSuffix(s, `"data":"probe"}`) }
	CheckFor(t, 5*time.Second, func() error {
		if err := g.G.Publish(context.Background(), topic, []byte(`"probe"`)); err != nil {
			return err
		}
		select {
		case s := <-to.In:
			if !isProbe(s) {
				t.Fatalf("%s received %s while waiting for a probe", to.Name, Excerpt(s))
			}
			return nil
		case <-time.After(20 * time.Millisecond):
			return fmt.Errorf("%s has received no probe on %q yet", to.Name, topic)
		}
	})
	for _, c := range append([]*Client{to}, drain...) {
		for done := false; !done; {
			select {
			case s := <-c.In:
				if !isProbe(s) {
					t.Fatalf("%s received %s while draining probes", c.Name, Excerpt(s))
				}
			case <-time.After(100 * time.Millisecond):
				done = true
			}
		}
	}
}

// Marker publishes a unique message from a client and waits until every
// client got it: since order per publisher and topic holds, anything
// delivered before it has arrived too, and a duplicate would show up
// before it.
func Marker(t testing.TB, from *Client, topic string, clients ...*Client) {
	t.Helper()
	m := fmt.Sprintf(`"marker-%d"`, markers.Add(1))
	from.Send(t, fmt.Sprintf(`{"type":"publish","topic":%q,"data":%s}`, topic, m))
	for _, c := range clients {
		c.Expect(t, m)
	}
}

var markers atomic.Int64
