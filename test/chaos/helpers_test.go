package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/internal/wait"
	"github.com/firetower-go/firetower/protocol"
	"github.com/firetower-go/firetower/server"
)

// Timing of the tests, generous for a shared two-core machine under -race.
const (
	// pollEvery is how often a condition is polled.
	pollEvery = 10 * time.Millisecond
	// dialTimeout bounds a websocket handshake.
	dialTimeout = 5 * time.Second
	// replyWait is how long a v2 publisher waits for the ack or error of
	// one publish before calling it hung: far beyond failFast, so that a
	// hang is measured rather than cut short.
	replyWait = 10 * time.Second
	// settleWithin bounds waits for things that take no time on an idle
	// machine: counts to spread, messages to arrive, goroutines to end.
	settleWithin = 15 * time.Second
)

// testLogger discards logs unless FIRETOWER_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("FIRETOWER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// node is an all-in-one server (firetower serve) on a loopback port.
type node struct {
	srv    *server.Server
	ws     string // ws://127.0.0.1:port/ws
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// startNode starts a server named name on the broker brokerURL ("" for the
// embedded one). It is stopped in t.Cleanup unless the test stops it.
func startNode(t testing.TB, name, brokerURL string) *node {
	t.Helper()
	srv, err := server.New(server.Config{
		Addr:        "127.0.0.1:0",
		Broker:      brokerURL,
		QuietCounts: true, // the chaos clients count messages: no announcements
		DrainWindow: 50 * time.Millisecond,
		Gateway:     gateway.Config{NodeID: name, Logger: testLogger()},
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{srv: srv, ws: "ws://" + l.Addr().String() + "/ws", cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		if err := n.stop(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	})
	return n
}

// gw is the node's gateway.
func (n *node) gw() *gateway.Gateway { return n.srv.Gateway() }

// stop shuts the server down and waits for Serve to return.
func (n *node) stop() error {
	n.once.Do(func() {
		n.cancel()
		select {
		case err := <-n.done:
			if err != nil && !errors.Is(err, context.Canceled) {
				n.err = err
			}
		case <-time.After(30 * time.Second):
			n.err = errors.New("Serve did not return within 30s of the cancel")
		}
	})
	return n.err
}

// client is a gorilla websocket client whose reading goroutine hands every
// frame but heartbeats to a handler.
type client struct {
	v2   bool
	c    *websocket.Conn
	wmu  sync.Mutex // gorilla allows one writer at a time
	done chan struct{}
}

// dial connects to url (v2 if v2 is set); handle runs on the reading
// goroutine for every frame but the heartbeats.
func dial(url string, v2 bool, handle func([]byte)) (*client, error) {
	d := websocket.Dialer{HandshakeTimeout: dialTimeout}
	if v2 {
		d.Subprotocols = []string{protocol.SubprotocolV2}
	}
	c, resp, err := d.Dial(url, nil)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	resp.Body.Close()
	cl := &client{v2: v2, c: c, done: make(chan struct{})}
	go func() {
		defer close(cl.done)
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				return
			}
			if s := string(b); s != protocol.HeartbeatV1 && s != protocol.PingV2 {
				handle(b)
			}
		}
	}()
	return cl, nil
}

// send writes one text frame.
func (c *client) send(frame string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.c.SetWriteDeadline(time.Now().Add(replyWait))
	return c.c.WriteMessage(websocket.TextMessage, []byte(frame))
}

// close closes the connection (no close frame: as a client that vanishes)
// and waits for the reading goroutine.
func (c *client) close() {
	_ = c.c.Close()
	<-c.done
}

// closeGracefully sends a close frame first.
func (c *client) closeGracefully() {
	c.wmu.Lock()
	_ = c.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
	c.wmu.Unlock()
	c.close()
}

// payload is what the tests publish: a publisher's name and its sequence
// number.
type payload struct {
	P string `json:"p"`
	N int64  `json:"n"`
}

func (p payload) json() string { return `{"p":"` + p.P + `","n":` + strconv.FormatInt(p.N, 10) + `}` }

// decode reads a delivery: v1 delivers the published data as it is, v2 a
// "message" frame around it.
func decode(v2 bool, b []byte) (payload, error) {
	if v2 {
		var f struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(b, &f); err != nil || f.Type != "message" {
			return payload{}, fmt.Errorf("not a v2 delivery: %.120s", b)
		}
		b = f.Data
	}
	var p payload
	if err := json.Unmarshal(b, &p); err != nil || p.P == "" || p.N <= 0 {
		return payload{}, fmt.Errorf("not a test message: %.120s", b)
	}
	return p, nil
}

// reply is a v2 ack or error frame.
type reply struct {
	Type  string          `json:"type"`
	ID    json.RawMessage `json:"id"`
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// unmarshalReply reports whether m is a v2 ack or error frame, and reads
// it into r.
func unmarshalReply(m []byte, r *reply) bool {
	return json.Unmarshal(m, r) == nil && (r.Type == "ack" || r.Type == "error")
}

// errHung is the result of a publish that got no reply within replyWait.
var errHung = errors.New("chaos: no reply to the publish")

// replyError is a v2 error frame as an error.
type replyError struct {
	Code    int
	Message string
}

func (e *replyError) Error() string { return fmt.Sprintf("v2 error %d: %s", e.Code, e.Message) }

// wsPublisher publishes with v2 request ids over a websocket and waits for
// each publish's ack or error frame.
type wsPublisher struct {
	c       *client
	topic   string
	name    string
	replies chan reply
}

func dialPublisher(url, name, topic string) (*wsPublisher, error) {
	p := &wsPublisher{topic: topic, name: name, replies: make(chan reply, 64)}
	c, err := dial(url, true, func(b []byte) {
		var r reply
		if unmarshalReply(b, &r) {
			select {
			case p.replies <- r:
			default: // only a reply nobody waits for any more can overflow
			}
		}
	})
	if err != nil {
		return nil, err
	}
	p.c = c
	return p, nil
}

// publish sends message seq and waits for its reply.
func (p *wsPublisher) publish(seq int64) error {
	id := strconv.FormatInt(seq, 10)
	if err := p.c.send(`{"id":` + id + `,"type":"publish","topic":"` + p.topic + `","data":` + payload{p.name, seq}.json() + `}`); err != nil {
		return err
	}
	timeout := time.After(replyWait)
	for {
		select {
		case r := <-p.replies:
			if string(r.ID) != id {
				continue // a late reply to an earlier publish
			}
			if r.Type == "ack" {
				return nil
			}
			return &replyError{r.Error.Code, r.Error.Message}
		case <-timeout:
			return errHung
		}
	}
}

// subscribe sends a subscribe of topic and, for v2, waits for its ack
// (which comes once the subscription is registered).
func subscribe(c *client, topic string, acks <-chan reply) error {
	if !c.v2 {
		return c.send(`{"type":"subscribe","topic":"` + topic + `","data":""}`)
	}
	if err := c.send(`{"id":"sub","type":"subscribe","topics":["` + topic + `"]}`); err != nil {
		return err
	}
	select {
	case r := <-acks:
		if r.Type != "ack" {
			return fmt.Errorf("subscribe refused: %d %s", r.Error.Code, r.Error.Message)
		}
		return nil
	case <-time.After(replyWait):
		return errors.New("no ack to the subscribe")
	}
}

// stream is what one subscriber received from each publisher. Per
// publisher the sequence numbers must strictly increase: anything else is
// a duplicate or a reordering, and is recorded as a violation.
// A gapless stream keeps no record of what it received (a soak's memory
// must not grow with it): there each number must be the previous one plus
// one.
type stream struct {
	gapless    bool
	mu         sync.Mutex
	last       map[string]int64
	count      map[string]int64
	got        map[string][]int64 // unless gapless
	violations []string
}

func newStream() *stream {
	return &stream{last: make(map[string]int64), count: make(map[string]int64), got: make(map[string][]int64)}
}

func newGaplessStream() *stream {
	s := newStream()
	s.gapless = true
	return s
}

func (s *stream) add(p payload) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch last := s.last[p.P]; {
	case p.N <= last:
		s.violationLocked("%s %d after %d (duplicated or reordered)", p.P, p.N, last)
		return
	case s.gapless && p.N != last+1:
		s.violationLocked("%s %d after %d (lost)", p.P, p.N, last)
	}
	s.last[p.P] = p.N
	s.count[p.P]++
	if !s.gapless {
		s.got[p.P] = append(s.got[p.P], p.N)
	}
}

// counted is how many messages of p were received.
func (s *stream) counted(p string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count[p]
}

func (s *stream) violation(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.violationLocked(format, args...)
}

func (s *stream) violationLocked(format string, args ...any) {
	if len(s.violations) < 20 {
		s.violations = append(s.violations, fmt.Sprintf(format, args...))
	}
}

// lastOf is the last sequence number received from publisher p.
func (s *stream) lastOf(p string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last[p]
}

// received returns the set of sequence numbers received from p.
func (s *stream) received(p string) map[int64]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := make(map[int64]bool, len(s.got[p]))
	for _, n := range s.got[p] {
		set[n] = true
	}
	return set
}

func (s *stream) problems() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.violations...)
}

// resources are the figures of the test process that must not grow.
type resources struct {
	goroutines int
	fds        int
	heapInuse  uint64
}

func (r resources) String() string {
	return fmt.Sprintf("%d goroutines, %d fds, %.1f MiB heap in use", r.goroutines, r.fds, float64(r.heapInuse)/(1<<20))
}

// measure samples the process after a collection, so that the heap figure
// is what is live rather than what awaits the collector.
func measure() resources {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return resources{goroutines: runtime.NumGoroutine(), fds: openFDs(), heapInuse: ms.HeapInuse}
}

// openFDs counts the process's open descriptors.
func openFDs() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(entries) - 1 // the directory being read
}

// baseline records goroutines and fds before a test starts anything and
// registers, as the test's last cleanup, the check that both are back to
// it once everything is closed. The runtime's poller descriptors, created
// at the first network use and kept for ever, are created first.
func baseline(t *testing.T) resources {
	t.Helper()
	if l, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		_ = l.Close()
	}
	base := measure()
	t.Cleanup(func() {
		var now resources
		err := wait.Poll(settleWithin, 50*time.Millisecond, func() error {
			now = measure()
			if now.goroutines > base.goroutines || now.fds > base.fds {
				return fmt.Errorf("%v after closing everything, %v before", now, base)
			}
			return nil
		})
		if err != nil {
			buf := make([]byte, 1<<20)
			t.Errorf("not back to the baseline: %v\n%s", err, buf[:runtime.Stack(buf, true)])
			return
		}
		t.Logf("back to the baseline: %d goroutines (before %d), %d fds (before %d)", now.goroutines, base.goroutines, now.fds, base.fds)
	})
	return base
}

// counter is a publisher's live figures.
type counter struct {
	attempted, ok, failed atomic.Int64
	lastOK                atomic.Int64
}

// maxDuration keeps the largest duration stored.
type maxDuration struct{ v atomic.Int64 }

func (m *maxDuration) store(d time.Duration) {
	for {
		old := m.v.Load()
		if int64(d) <= old || m.v.CompareAndSwap(old, int64(d)) {
			return
		}
	}
}

func (m *maxDuration) load() time.Duration { return time.Duration(m.v.Load()) }

// joinProblems formats up to a few problems.
func joinProblems(ps []string) string {
	if len(ps) > 10 {
		ps = append(ps[:10], fmt.Sprintf("... %d more", len(ps)-10))
	}
	return strings.Join(ps, "; ")
}
