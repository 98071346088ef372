package gateway_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/protocol"
)

// The tests of this file are about the netpoll transport itself; the rest
// of the suite runs on it with FIRETOWER_TEST_TRANSPORT=netpoll.

func netpollConfig(t *testing.T) gateway.Config {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the netpoll transport needs epoll")
	}
	cfg := quietConfig()
	cfg.Transport = gateway.TransportNetpoll
	cfg.NodeInfoInterval = -1
	return cfg
}

// An idle connection on netpoll holds no goroutine: 200 subscribed
// connections add none once their handshakes are over (the goroutine
// transport would add 600).
func TestNetpollIdleConnectionsHoldNoGoroutine(t *testing.T) {
	gw, err := gateway.New(netpollConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ws, err := gw.Upgrade(w, r); err == nil {
			gw.BuildTower(ws, "").Start() // not Run: that would keep this goroutine
		}
	}))
	t.Cleanup(func() {
		_ = gw.Close()
		srv.Close()
	})
	ts := &testServer{gw: gw, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"}
	before := runtime.NumGoroutine()
	const n = 200
	conns := make([]*rawConn, n)
	for i := range conns {
		conns[i] = rawDial(t, ts.url, nil)
		conns[i].sendText(`{"type":"subscribe","topic":"idle","data":""}`)
	}
	waitCount(t, ts.gw, "idle", n)
	// The HTTP server's per-connection goroutines end once the handler
	// returned; a few may still be on their way out.
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if now := runtime.NumGoroutine(); now > before+5 {
			return fmt.Errorf("%d goroutines with %d idle connections, %d before", now, n, before)
		}
		return nil
	})
	// And they all work.
	if err := ts.gw.Publish(t.Context(), "idle", []byte(`"hi"`)); err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		if got := c.nextData(5 * time.Second); got != `"hi"` {
			t.Fatalf("got %q", got)
		}
	}
}

// A burst of publishes read at once is written to each subscriber with few
// system calls, not one per message: while the poller writes, the worker
// that runs the publisher's frames (inbox.go) queues the next messages,
// and the poller takes them all in its next round. The count depends on
// how the worker and the poller overlap (about 2 writes per burst of 8
// here); without batching it would be 8.
func TestNetpollBurstIsOneWritePerConnection(t *testing.T) {
	cfg := netpollConfig(t)
	cfg.Pollers = 1
	ts := newTestServer(t, cfg, nil)
	const subs, burst, rounds = 20, 8, 10
	conns := make([]*rawConn, subs)
	for i := range conns {
		conns[i] = rawDial(t, ts.url, nil)
		conns[i].sendText(`{"type":"subscribe","topic":"burst","data":""}`)
	}
	waitCount(t, ts.gw, "burst", subs)
	pub := rawDial(t, ts.url, nil)
	seq := 0
	var writes, out int64
	for range rounds {
		before := ts.gw.Stats()
		frames := make([]rawFrame, burst)
		for i := range frames {
			frames[i] = rawFrame{op: protocol.OpText, payload: fmt.Appendf(nil, `{"type":"publish","topic":"burst","data":%d}`, seq+i)}
		}
		pub.writeFrames(frames...) // one TCP write: one read on the server
		for _, c := range conns {
			for i := range burst {
				if got, want := c.nextData(5*time.Second), fmt.Sprint(seq+i); got != want {
					t.Fatalf("got %q, want %q", got, want)
				}
			}
		}
		seq += burst
		after := ts.gw.Stats()
		writes += after.Writes - before.Writes
		out += after.FramesOut - before.FramesOut
	}
	if perConn := float64(writes) / float64(subs*rounds); perConn > burst/2 {
		t.Fatalf("%d writes for %d frames: %.2f writes per connection per burst of %d, want about 1", writes, out, perConn, burst)
	}
}

// A client that stops reading fills its socket; the rest waits in the
// queue and goes out, in order, when the client reads again (EPOLLOUT).
func TestNetpollPartialWritesResume(t *testing.T) {
	cfg := netpollConfig(t)
	cfg.OutboundQueue = 1024
	cfg.OutboundQueueBytes = 64 << 20
	cfg.SlowConsumerGrace = time.Minute
	ts := newTestServer(t, cfg, nil)
	c := rawDial(t, ts.url, nil)
	c.sendText(`{"type":"subscribe","topic":"big","data":""}`)
	waitCount(t, ts.gw, "big", 1)
	pad := strings.Repeat("x", 32<<10)
	const n = 300 // ~10 MB: far more than the socket buffers hold
	for i := range n {
		if err := ts.gw.Publish(t.Context(), "big", fmt.Appendf(nil, `{"i":%d,"p":%q}`, i, pad)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		got := c.nextData(10 * time.Second)
		if want := fmt.Sprintf(`{"i":%d,`, i); !strings.HasPrefix(got, want) {
			t.Fatalf("message %d: got %.20q, want prefix %q", i, got, want)
		}
	}
	if s := ts.gw.Stats(); s.Dropped != 0 {
		t.Fatalf("%d dropped", s.Dropped)
	}
}

// Config.Pollers sets the number of epoll loops; one serves everything.
func TestNetpollOnePoller(t *testing.T) {
	cfg := netpollConfig(t)
	cfg.Pollers = 1
	ts := newTestServer(t, cfg, nil)
	conns := make([]*rawConn, 10)
	for i := range conns {
		conns[i] = rawDial(t, ts.url, nil)
		conns[i].sendText(`{"type":"subscribe","topic":"one","data":""}`)
	}
	waitCount(t, ts.gw, "one", int64(len(conns)))
	pub := rawDial(t, ts.url, nil)
	pub.sendText(`{"type":"publish","topic":"one","data":"x"}`)
	for _, c := range conns {
		if got := c.nextData(5 * time.Second); got != `"x"` {
			t.Fatalf("got %q", got)
		}
	}
	bad := netpollConfig(t)
	bad.Pollers = -1
	if _, err := gateway.New(bad); err == nil {
		t.Fatal("Pollers -1 accepted")
	}
}
