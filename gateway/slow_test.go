package gateway_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/protocol"
	"github.com/gorilla/websocket"
)

// slowPayloadSize is the size of each published message in the slow
// consumer tests: large, so that a client that does not read fills its
// socket buffers and then its outbound queue after a few dozen messages.
const slowPayloadSize = 64 << 10

// bigPayload writes the JSON object {"seq":i,"pad":"xxx…"} of exactly
// slowPayloadSize bytes into buf and returns it. Publish copies the data,
// so the caller may reuse buf.
func bigPayload(buf []byte, i int) []byte {
	buf = fmt.Appendf(buf[:0], `{"seq":%d,"pad":"`, i)
	for len(buf) < slowPayloadSize-2 {
		buf = append(buf, 'x')
	}
	return append(buf, `"}`...)
}

// slowConfig has small outbound queues: 4 messages of 64 KiB fill the byte
// bound. The heartbeat stays at its default (30 s): no heartbeat frames
// compete with the deliveries.
func slowConfig(policy gateway.SlowConsumerPolicy, grace, writeTimeout time.Duration) gateway.Config {
	return gateway.Config{
		Logger:             silentLogger,
		OutboundQueue:      8,
		OutboundQueueBytes: 256 << 10,
		SlowConsumer:       policy,
		SlowConsumerGrace:  grace,
		WriteTimeout:       writeTimeout,
	}
}

// stuckRawSubscriber subscribes a raw v1 client to topic and never reads
// again. (Its receive buffer keeps the kernel's auto-tuning: a shrunk
// buffer would make the final drain of the server's send buffer crawl.)
func stuckRawSubscriber(t *testing.T, ts *testServer, topic string) *rawConn {
	t.Helper()
	rc := rawDial(t, ts.url, nil)
	rc.sendText(`{"type":"subscribe","topic":"` + topic + `"}`)
	return rc
}

// awaitLocalCount polls until topic has n local subscribers.
func awaitLocalCount(t *testing.T, gw *gateway.Gateway, topic string, n int64) {
	t.Helper()
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if got := gw.LocalConnectNum(topic); got != n {
			return fmt.Errorf("topic %q: %d local subscribers, want %d", topic, got, n)
		}
		return nil
	})
}

// readers are a v1 and a v2 gorilla client that read every message; the
// test reads them in lockstep with its publishes, so their own queues never
// hold more than one message.
type readers struct {
	v1, v2 *websocket.Conn
}

func subscribeReaders(t *testing.T, ts *testServer, topic string) readers {
	t.Helper()
	r := readers{v1: dial(t, ts.url, false), v2: dial(t, ts.url, true)}
	send(t, r.v1, `{"type":"subscribe","topic":"`+topic+`"}`)
	send(t, r.v2, `{"id":1,"type":"subscribe","topics":["`+topic+`"]}`)
	if got := next(t, r.v2); got != `{"type":"ack","id":1}` {
		t.Fatalf("v2 subscribe: %s", got)
	}
	return r
}

// expect checks that both readers receive message seq with payload data,
// byte for byte on v1 and inside the envelope on v2.
func (r readers) expect(t *testing.T, topic string, seq int, data []byte) {
	t.Helper()
	if got := next(t, r.v1); got != string(data) {
		head := got[:min(len(got), 40)]
		t.Fatalf("v1 reader: message %d: got %d bytes starting %q, want %d bytes", seq, len(got), head, len(data))
	}
	got := next(t, r.v2)
	prefix := `{"type":"message","topic":"` + topic + `","id":"`
	if !strings.HasPrefix(got, prefix) || !strings.HasSuffix(got, `","data":`+string(data)+`}`) {
		t.Fatalf("v2 reader: message %d: got %d bytes starting %q", seq, len(got), got[:min(len(got), 120)])
	}
}

// TestSlowConsumerOthersUnaffected publishes large messages to a topic with
// two subscribers that never read (a raw socket and a gorilla client) and
// two that do: the readers get every message in order, the stuck ones have
// their messages dropped and counted, and under the drop policy (with a
// long grace) they stay connected.
func TestSlowConsumerOthersUnaffected(t *testing.T) {
	const n = 200
	ts := newTestServer(t, slowConfig(gateway.SlowConsumerDrop, time.Minute, time.Minute), nil)
	r := subscribeReaders(t, ts, "big")
	stuckRawSubscriber(t, ts, "big")
	stuckWS := dial(t, ts.url, true) // never read from
	send(t, stuckWS, `{"id":1,"type":"subscribe","topics":["big"]}`)
	awaitLocalCount(t, ts.gw, "big", 4)

	buf := make([]byte, 0, slowPayloadSize)
	for i := range n {
		data := bigPayload(buf, i)
		if err := ts.gw.Publish(t.Context(), "big", data); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		r.expect(t, "big", i, data)
	}
	s := ts.gw.Stats()
	t.Logf("after %d messages of %d bytes: dropped %d, slow disconnects %d", n, slowPayloadSize, s.Dropped, s.SlowDisconnects)
	// Socket buffers absorb a few MiB per stuck client; the rest of the
	// 12.5 MiB each was offered must have been dropped.
	if s.Dropped < n/2 {
		t.Errorf("Dropped = %d, want at least %d", s.Dropped, n/2)
	}
	if s.SlowDisconnects != 0 || s.Connections != 4 {
		t.Errorf("within the grace the stuck clients stay: slow disconnects %d, connections %d", s.SlowDisconnects, s.Connections)
	}
}

// TestSlowConsumerMemoryAndPublisher publishes as fast as it can to stuck
// subscribers only: every Publish returns (the fan-out never waits for a
// client) and the heap grows by a small part of what the stuck clients were
// offered, which unbounded queues would retain.
func TestSlowConsumerMemoryAndPublisher(t *testing.T) {
	const n = 256 // 16 MiB offered to each stuck client
	ts := newTestServer(t, slowConfig(gateway.SlowConsumerDrop, time.Minute, time.Minute), nil)
	stuckRawSubscriber(t, ts, "big")
	stuckWS := dial(t, ts.url, true)
	send(t, stuckWS, `{"id":1,"type":"subscribe","topics":["big"]}`)
	awaitLocalCount(t, ts.gw, "big", 2)

	before := heapInuse()
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 0, slowPayloadSize)
		for i := range n {
			if err := ts.gw.Publish(t.Context(), "big", bigPayload(buf, i)); err != nil {
				done <- fmt.Errorf("publish %d: %w", i, err)
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		// The goroutine stays blocked; the test binary's timeout and
		// goleak report it. This is the failure under test.
		t.Fatalf("publishing %d messages to stuck subscribers did not complete: the publisher is blocked", n)
	}
	after := heapInuse()

	s := ts.gw.Stats()
	offered := int64(n * slowPayloadSize)
	growth := int64(after) - int64(before)
	t.Logf("heap in use %d -> %d (%+d bytes) after offering %d bytes to each of 2 stuck clients; dropped %d",
		before, after, growth, offered, s.Dropped)
	if s.Published != n || s.Connections != 2 {
		t.Fatalf("published %d (want %d), connections %d (want 2)", s.Published, n, s.Connections)
	}
	if s.Dropped < n/2 {
		t.Errorf("Dropped = %d, want at least %d", s.Dropped, n/2)
	}
	// Bounded queues hold at most 256 KiB per client; unbounded ones
	// would hold nearly everything offered. A quarter is far from both.
	if growth > offered/4 {
		t.Errorf("heap grew by %d bytes, more than a quarter of the %d bytes offered: the stuck clients' queues are not bounded", growth, offered)
	}
}

// readRecorder is a server setup whose ReadHandler records the topic of
// every client frame it is given, then publishes it.
type readRecorder struct {
	mu     sync.Mutex
	topics []string
}

func (rr *readRecorder) setup(tower *gateway.FireTower) {
	tower.SetReadHandler(func(fire *gateway.FireInfo) bool {
		rr.mu.Lock()
		rr.topics = append(rr.topics, fire.Message.Topic)
		rr.mu.Unlock()
		_ = tower.Publish(fire)
		return true
	})
}

func (rr *readRecorder) saw(topic string) bool {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	for _, t := range rr.topics {
		if t == topic {
			return true
		}
	}
	return false
}

// publishUntil publishes numbered messages to topic in lockstep with r
// until stop reports true, and returns how many it published. It fails
// after max messages.
func publishUntil(t *testing.T, ts *testServer, r readers, topic string, max int, stop func(gateway.Stats) bool) int {
	t.Helper()
	buf := make([]byte, 0, slowPayloadSize)
	for i := range max {
		data := bigPayload(buf, i)
		if err := ts.gw.Publish(t.Context(), topic, data); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		r.expect(t, topic, i, data)
		if stop(ts.gw.Stats()) {
			return i + 1
		}
	}
	t.Fatalf("condition not reached after %d messages: %+v", max, ts.gw.Stats())
	return 0
}

// TestSlowConsumerDisconnectPolicy: under SlowConsumerDisconnect the first
// overflow closes the stuck client and counts it; the readers miss nothing;
// frames the stuck client sends after its close are not handed to the
// application.
func TestSlowConsumerDisconnectPolicy(t *testing.T) {
	var rec readRecorder
	ts := newTestServer(t, slowConfig(gateway.SlowConsumerDisconnect, 0, 2*time.Second), rec.setup)
	r := subscribeReaders(t, ts, "big")
	stuck := stuckRawSubscriber(t, ts, "big")
	awaitLocalCount(t, ts.gw, "big", 3)

	sent := publishUntil(t, ts, r, "big", 2000, func(s gateway.Stats) bool { return s.SlowDisconnects > 0 })
	s := ts.gw.Stats()
	t.Logf("stuck client closed after %d messages; dropped %d", sent, s.Dropped)
	if s.SlowDisconnects != 1 || s.Dropped != 1 {
		t.Fatalf("slow disconnects %d, dropped %d: want 1 and 1 (closed at the first overflow)", s.SlowDisconnects, s.Dropped)
	}

	// The server still reads the stuck client (only its own reading is
	// stuck) until the write timeout drops it: this frame is read but
	// belongs to a closed connection.
	framesIn := s.FramesIn
	stuck.sendText(`{"type":"publish","topic":"after-close","data":1}`)
	waitStats(t, ts.gw, "frame read after the close", func(s gateway.Stats) bool { return s.FramesIn > framesIn })

	// The write timeout ends the blocked write and the connection.
	waitStats(t, ts.gw, "stuck client gone", func(s gateway.Stats) bool { return s.Connections == 2 })
	if rec.saw("after-close") {
		t.Error("a frame read after the slow-consumer close was dispatched to the ReadHandler")
	}
	stuck.expectEOF(10 * time.Second)
	// The readers are still served.
	data := []byte(`{"still":"here"}`)
	if err := ts.gw.Publish(t.Context(), "big", data); err != nil {
		t.Fatal(err)
	}
	r.expect(t, "big", sent, data)
}

// TestSlowConsumerDropPolicyGrace: under the default drop policy the stuck
// client's frames are dropped for SlowConsumerGrace before it is closed.
func TestSlowConsumerDropPolicyGrace(t *testing.T) {
	const grace = 100 * time.Millisecond
	// The write timeout is longer than the grace, so that it is the
	// slow-consumer policy, not the blocked write, that ends the client.
	ts := newTestServer(t, slowConfig("", grace, 2*time.Second), nil)
	r := subscribeReaders(t, ts, "big")
	stuck := stuckRawSubscriber(t, ts, "big")
	awaitLocalCount(t, ts.gw, "big", 3)

	var beforeFirstDrop time.Time // taken before the Publish that dropped first
	buf := make([]byte, 0, slowPayloadSize)
	i := 0
	for ; ts.gw.Stats().SlowDisconnects == 0; i++ {
		if i == 5000 {
			t.Fatalf("no slow disconnect after %d messages: %+v", i, ts.gw.Stats())
		}
		data := bigPayload(buf, i)
		start := time.Now()
		if err := ts.gw.Publish(t.Context(), "big", data); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if beforeFirstDrop.IsZero() && ts.gw.Stats().Dropped > 0 {
			beforeFirstDrop = start
		}
		r.expect(t, "big", i, data)
	}
	closedAfter := time.Since(beforeFirstDrop)
	s := ts.gw.Stats()
	t.Logf("%d messages; first drop to close: %v; dropped %d", i, closedAfter, s.Dropped)
	// Publish runs the fan-out synchronously, so the overflow began after
	// beforeFirstDrop and the close came more than grace after it.
	if closedAfter <= grace {
		t.Errorf("closed %v after the first drop, before the %v grace", closedAfter, grace)
	}
	if s.SlowDisconnects != 1 || s.Dropped < 2 {
		t.Errorf("slow disconnects %d, dropped %d: want 1 and several", s.SlowDisconnects, s.Dropped)
	}
	waitStats(t, ts.gw, "stuck client gone", func(s gateway.Stats) bool { return s.Connections == 2 })
	stuck.expectEOF(10 * time.Second)
}

// Liveness: a 200 ms heartbeat and a 200 ms pong timeout.
const (
	testHeartbeat   = 200 * time.Millisecond
	testPongTimeout = 200 * time.Millisecond
)

func livenessConfig() gateway.Config {
	return gateway.Config{Logger: silentLogger, HeartbeatInterval: testHeartbeat, PongTimeout: testPongTimeout}
}

// TestLivenessSilentClientClosed: raw clients (v1 and v2) that answer no
// ping and send nothing are closed with 4009 once HeartbeatInterval +
// PongTimeout pass without a frame from them.
func TestLivenessSilentClientClosed(t *testing.T) {
	ts := newTestServer(t, livenessConfig(), nil)
	window := testHeartbeat + testPongTimeout
	for _, v2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("v2=%v", v2), func(t *testing.T) {
			h := http.Header{}
			if v2 {
				h.Set("Sec-WebSocket-Protocol", protocol.SubprotocolV2)
			}
			start := time.Now()
			rc := rawDial(t, ts.url, h)
			// The slack covers scheduling on a loaded machine, not the
			// policy: the server's deadline is exactly the window.
			got := rc.awaitClose(window + time.Second)
			elapsed := time.Since(start)
			t.Logf("%v after %v, %d pings ignored", got, elapsed, got.pings)
			if got.code != protocol.CloseNoPong {
				t.Fatalf("got %v, want close %d", got, protocol.CloseNoPong)
			}
			if got.pings == 0 {
				t.Error("closed before the server sent a ping")
			}
			if elapsed < window {
				t.Errorf("closed after %v, before the %v liveness window", elapsed, window)
			}
		})
	}
	waitStats(t, ts.gw, "silent clients gone", func(s gateway.Stats) bool { return s.Connections == 0 })
}

// TestLivenessPongingClientStays: gorilla clients answer the server's pings
// (while they read) and send nothing else; they stay connected across many
// heartbeat periods.
func TestLivenessPongingClientStays(t *testing.T) {
	ts := newTestServer(t, livenessConfig(), nil)
	const periods = 6 // three liveness windows
	var beats [2]atomic.Int64
	errs := make(chan error, 2)
	for i, v2 := range []bool{false, true} {
		c := dial(t, ts.url, v2)
		go func() {
			for {
				_, b, err := c.ReadMessage()
				if err != nil {
					errs <- err
					return
				}
				if s := string(b); s == protocol.HeartbeatV1 || s == protocol.PingV2 {
					beats[i].Add(1)
				}
			}
		}()
		t.Cleanup(func() {
			c.Close()
			<-errs
		})
	}
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		select {
		case err := <-errs:
			errs <- err // for the cleanup
			t.Fatalf("a ponging client was disconnected after %d/%d heartbeats: %v", beats[0].Load(), beats[1].Load(), err)
		default:
		}
		if b1, b2 := beats[0].Load(), beats[1].Load(); b1 < periods || b2 < periods {
			return fmt.Errorf("heartbeats seen: v1 %d, v2 %d", b1, b2)
		}
		return nil
	})
	if s := ts.gw.Stats(); s.Connections != 2 || s.DisconnectsTotal != 0 {
		t.Fatalf("connections %d, disconnects %d: want 2 and 0", s.Connections, s.DisconnectsTotal)
	}
}
