package topicmgr_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/internal/cluster"
	"github.com/firetower-go/firetower/internal/wait"
	"github.com/firetower-go/firetower/topicmgr"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testLogger() *slog.Logger {
	if os.Getenv("FIRETOWER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// start runs a manager on 127.0.0.1:0 until the test ends.
func start(t *testing.T, cfg topicmgr.Config) (*topicmgr.Server, string) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}
	srv, err := topicmgr.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; !errors.Is(err, topicmgr.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return srv, l.Addr().String()
}

// client is a hand-driven cluster-protocol client.
type client struct {
	t    *testing.T
	id   string
	conn net.Conn
	r    *cluster.Reader
	// confirmed is the last CONFIRM's number, versions the frame versions
	// read (frames skipped by next included).
	confirmed uint64
	versions  map[uint8]int
}

func dialRaw(t *testing.T, addr, id string) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &client{t: t, id: id, conn: conn, r: cluster.NewReader(conn, 0), versions: make(map[uint8]int)}
}

// gatewayClient connects a gateway, sends its interest table and SYNC.
func gatewayClient(t *testing.T, addr, id string, table ...cluster.Interest) *client {
	t.Helper()
	c := dialRaw(t, addr, id)
	c.hello(cluster.RoleGateway, "")
	c.send(cluster.AppendInterest(nil, table), cluster.AppendSync(nil))
	return c
}

func (c *client) hello(role cluster.Role, token string) cluster.Welcome {
	c.t.Helper()
	c.send(cluster.AppendHello(nil, cluster.Hello{Role: role, NodeID: c.id, Session: 1, Token: token, MaxFrame: cluster.DefaultMaxFrame}))
	f := c.next(5 * time.Second)
	if f.Type != cluster.TypeWelcome {
		c.t.Fatalf("%s: got %v after HELLO, want WELCOME", c.id, f.Type)
	}
	w, err := cluster.ParseWelcome(f.Body())
	if err != nil {
		c.t.Fatal(err)
	}
	return w
}

func (c *client) send(frames ...[]byte) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	for _, f := range frames {
		if _, err := c.conn.Write(f); err != nil {
			c.t.Fatalf("%s: write: %v", c.id, err)
		}
	}
}

// next returns the next frame that is not a PING, PONG or CONFIRM.
func (c *client) next(timeout time.Duration) cluster.Frame {
	c.t.Helper()
	f, err := c.tryNext(timeout)
	if err != nil {
		c.t.Fatalf("%s: read: %v", c.id, err)
	}
	return f
}

func (c *client) tryNext(timeout time.Duration) (cluster.Frame, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	for {
		f, err := c.r.ReadFrame()
		if err != nil {
			return f, err
		}
		c.versions[f.Version]++
		switch f.Type {
		case cluster.TypePing, cluster.TypePong:
		case cluster.TypeConfirm:
			n, err := cluster.ParseConfirm(f.Body())
			if err != nil || n < c.confirmed {
				c.t.Fatalf("%s: CONFIRM %d after %d: %v", c.id, n, c.confirmed, err)
			}
			c.confirmed = n
		default:
			return f, err
		}
	}
}

func (c *client) publish(topic string, data string) []byte {
	c.t.Helper()
	f := cluster.AppendMessage(nil, &broker.Message{Topic: topic, ID: 1, Origin: c.id, Data: []byte(data)})
	c.send(f)
	return f
}

// expectMessage reads the next frame and checks it is exactly raw.
func (c *client) expectMessage(raw []byte) {
	c.t.Helper()
	if f := c.next(5 * time.Second); !bytes.Equal(f.Raw, raw) {
		c.t.Fatalf("%s: got %v %q, want %q", c.id, f.Type, f.Raw, raw)
	}
}

// expectNothing fails if a frame other than PING/PONG arrives within d.
func (c *client) expectNothing(d time.Duration) {
	c.t.Helper()
	f, err := c.tryNext(d)
	var ne net.Error
	if err == nil {
		c.t.Fatalf("%s: got %v %q, want nothing", c.id, f.Type, f.Raw)
	}
	if !errors.As(err, &ne) || !ne.Timeout() {
		c.t.Fatalf("%s: %v, want a quiet open connection", c.id, err)
	}
}

// expectClose reads until a CLOSE frame and checks its code, then that the
// connection ends.
func (c *client) expectClose(code cluster.Code) {
	c.t.Helper()
	f := c.next(5 * time.Second)
	if f.Type != cluster.TypeClose {
		c.t.Fatalf("%s: got %v, want CLOSE %v", c.id, f.Type, code)
	}
	cl, err := cluster.ParseClose(f.Body())
	if err != nil || cl.Code != code {
		c.t.Fatalf("%s: CLOSE %v %q (%v), want %v", c.id, cl.Code, cl.Reason, err, code)
	}
	if _, err := c.tryNext(5 * time.Second); !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		c.t.Fatalf("%s: after CLOSE: %v, want the connection closed", c.id, err)
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

// count asks the manager for a count.
func (c *client) count(topic string) int64 {
	c.t.Helper()
	c.send(cluster.AppendCount(nil, cluster.CountRequest{ReqID: 77, Topic: topic}))
	f := c.next(5 * time.Second)
	if f.Type != cluster.TypeCountReply {
		c.t.Fatalf("%s: got %v, want COUNT_REPLY", c.id, f.Type)
	}
	r, err := cluster.ParseCountReply(f.Body())
	if err != nil || r.ReqID != 77 {
		c.t.Fatalf("%s: COUNT_REPLY %+v, %v", c.id, r, err)
	}
	return r.Count
}

// A version-2 client's publishes and commands are confirmed cumulatively,
// frames sent in one write with one CONFIRM; a version-1 client (a gateway
// not upgraded yet) gets no CONFIRM, and every frame it gets, a version-2
// client's forwarded publish included, is stamped version 1.
func TestConfirm(t *testing.T) {
	srv, addr := start(t, topicmgr.Config{})
	old := dialRaw(t, addr, "old")
	old.send(withVersion(t, cluster.AppendHello(nil, cluster.Hello{Role: cluster.RoleGateway, NodeID: "old", Session: 1, MaxFrame: cluster.DefaultMaxFrame}), 1))
	if f := old.next(5 * time.Second); f.Type != cluster.TypeWelcome || f.Version != 1 {
		t.Fatalf("got %v version %d, want a WELCOME of version 1", f.Type, f.Version)
	}
	old.send(withVersion(t, cluster.AppendInterest(nil, []cluster.Interest{{Topic: "t", Count: 1}}), 1), withVersion(t, cluster.AppendSync(nil), 1))
	waitCount(t, srv, "t", 1)

	gw := gatewayClient(t, addr, "new")
	var batch []byte
	for i := range 3 {
		batch = cluster.AppendMessage(batch, &broker.Message{Topic: "t", ID: uint64(i), Origin: "new", Data: []byte("1")})
	}
	batch = cluster.AppendMessage(batch, &broker.Message{Kind: broker.KindCommand, ID: 4, Origin: "new", Data: []byte("{}")})
	gw.send(batch)
	for range 4 {
		if f := old.next(5 * time.Second); f.Version != 1 {
			t.Fatalf("forwarded %v of version %d to a version-1 gateway", f.Type, f.Version)
		}
	}
	gw.waitConfirmed(4)
	gw.publish("t", "5")
	gw.waitConfirmed(5)
	if f := old.next(5 * time.Second); f.Type != cluster.TypePublish || f.Version != 1 {
		t.Fatalf("got %v of version %d, want the fifth publish, version 1", f.Type, f.Version)
	}
	if n := gw.versions[1]; n != 0 {
		t.Errorf("%d frames of version 1 to a version-2 client", n)
	}

	old.send(withVersion(t, cluster.AppendMessage(nil, &broker.Message{Topic: "t", ID: 1, Origin: "old", Data: []byte("1")}), 1))
	old.expectNothing(200 * time.Millisecond)
	if old.confirmed != 0 || old.versions[2] != 0 {
		t.Errorf("version-1 client got CONFIRM %d and %d frames of version 2", old.confirmed, old.versions[2])
	}
}

// waitConfirmed reads frames until a CONFIRM of at least n; any other
// frame but PING and PONG fails the test.
func (c *client) waitConfirmed(n uint64) {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for c.confirmed < n {
		f, err := c.r.ReadFrame()
		if err != nil {
			c.t.Fatalf("%s: confirmed %d of %d: %v", c.id, c.confirmed, n, err)
		}
		switch f.Type {
		case cluster.TypePing, cluster.TypePong:
		case cluster.TypeConfirm:
			if c.confirmed, err = cluster.ParseConfirm(f.Body()); err != nil {
				c.t.Fatal(err)
			}
		default:
			c.t.Fatalf("%s: got %v, want CONFIRM", c.id, f.Type)
		}
	}
	if c.confirmed != n {
		c.t.Fatalf("%s: CONFIRM %d, want %d", c.id, c.confirmed, n)
	}
}

func withVersion(t *testing.T, frame []byte, v uint8) []byte {
	var b bytes.Buffer
	if err := cluster.WriteVersion(&b, frame, v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func checkFor(t *testing.T, total time.Duration, fn func() error) {
	t.Helper()
	wait.For(t, total, 5*time.Millisecond, fn)
}

// waitCount waits until the manager's total for topic is n.
func waitCount(t *testing.T, srv *topicmgr.Server, topic string, n int64) {
	t.Helper()
	checkFor(t, 5*time.Second, func() error {
		if got := srv.Count(topic); got != n {
			return fmt.Errorf("count of %q is %d, want %d", topic, got, n)
		}
		return nil
	})
}

func TestWelcome(t *testing.T) {
	_, addr := start(t, topicmgr.Config{NodeID: "tm-x", Lease: 7 * time.Second, Heartbeat: 3 * time.Second, MaxFrame: 1 << 16})
	w := dialRaw(t, addr, "gw").hello(cluster.RoleGateway, "")
	if w.ManagerID != "tm-x" || w.Lease != 7*time.Second || w.Heartbeat != 3*time.Second || w.MaxFrame != 1<<16 || w.Epoch == 0 {
		t.Fatalf("WELCOME %+v", w)
	}
}

// A publish reaches exactly the other gateways with interest in its topic,
// byte for byte, never its origin; binary-safe topics work.
func TestRouting(t *testing.T) {
	srv, addr := start(t, topicmgr.Config{})
	topic := "room 1, ü\x7f"
	a := gatewayClient(t, addr, "a", cluster.Interest{Topic: topic, Count: 1})
	b := gatewayClient(t, addr, "b", cluster.Interest{Topic: topic, Count: 2})
	x := gatewayClient(t, addr, "x", cluster.Interest{Topic: "elsewhere", Count: 1})
	waitCount(t, srv, topic, 3)

	raw := a.publish(topic, `{"n":1}`)
	b.expectMessage(raw)
	raw2 := b.publish(topic, `"back"`)
	a.expectMessage(raw2)
	a.publish("nobody", `1`)
	a.expectNothing(100 * time.Millisecond)
	b.expectNothing(10 * time.Millisecond)
	x.expectNothing(10 * time.Millisecond)
	if st := srv.Stats(); st.Published != 3 || st.Routed != 2 {
		t.Errorf("stats %+v, want 3 published, 2 routed", st)
	}
}

// Withdrawn interest stops routing; Count excludes the asker, and a
// publisher sees the total.
func TestInterestAndCount(t *testing.T) {
	srv, addr := start(t, topicmgr.Config{})
	a := gatewayClient(t, addr, "a", cluster.Interest{Topic: "t", Count: 3})
	b := gatewayClient(t, addr, "b", cluster.Interest{Topic: "t", Count: 4}, cluster.Interest{Topic: "u", Count: 1})
	waitCount(t, srv, "t", 7)
	if n := a.count("t"); n != 4 {
		t.Errorf("a: Count(t) = %d, want 4", n)
	}
	if n := b.count("t"); n != 3 {
		t.Errorf("b: Count(t) = %d, want 3", n)
	}
	pub := dialRaw(t, addr, "pub")
	pub.hello(cluster.RolePublisher, "")
	if n := pub.count("t"); n != 7 {
		t.Errorf("publisher: Count(t) = %d, want 7", n)
	}
	b.send(cluster.AppendInterest(nil, []cluster.Interest{{Topic: "t", Count: 0}}))
	waitCount(t, srv, "t", 3)
	a.publish("t", `1`)
	b.expectNothing(100 * time.Millisecond)
	if got := srv.Topics(); !slices.Equal(got, []string{"t", "u"}) {
		t.Errorf("Topics() = %q", got)
	}
}

// A command reaches every other gateway, with or without interest, and
// never a publisher.
func TestCommandsGoToEveryGateway(t *testing.T) {
	_, addr := start(t, topicmgr.Config{})
	a := gatewayClient(t, addr, "a")
	b := gatewayClient(t, addr, "b", cluster.Interest{Topic: "t", Count: 1})
	c := gatewayClient(t, addr, "c")
	pub := dialRaw(t, addr, "pub")
	pub.hello(cluster.RolePublisher, "")
	m, err := broker.Command{Op: broker.OpCloseTopic, Topic: "t"}.Message(5, "pub")
	if err != nil {
		t.Fatal(err)
	}
	raw := cluster.AppendMessage(nil, m)
	pub.send(raw)
	a.expectMessage(raw)
	b.expectMessage(raw)
	c.expectMessage(raw)
	m.Origin = "a"
	raw = cluster.AppendMessage(nil, m)
	a.send(raw)
	b.expectMessage(raw)
	c.expectMessage(raw)
	a.expectNothing(100 * time.Millisecond)
	pub.expectNothing(10 * time.Millisecond)
}

// A gateway that vanishes keeps its counts for the lease, then they go; one
// that says goodbye is dropped at once.
func TestLease(t *testing.T) {
	const lease = 400 * time.Millisecond
	srv, addr := start(t, topicmgr.Config{Lease: lease})
	watcher := gatewayClient(t, addr, "w")
	gone := gatewayClient(t, addr, "gone", cluster.Interest{Topic: "t", Count: 5})
	bye := gatewayClient(t, addr, "bye", cluster.Interest{Topic: "t", Count: 2})
	waitCount(t, srv, "t", 7)

	bye.send(cluster.AppendClose(nil, cluster.Close{Code: cluster.CodeBye}))
	waitCount(t, srv, "t", 5)
	if n := watcher.count("t"); n != 5 {
		t.Fatalf("after a goodbye: Count = %d, want 5", n)
	}

	_ = gone.conn.Close() // no goodbye
	checkFor(t, 5*time.Second, func() error {
		if _, connected := srv.Gateways(); connected != 1 {
			return fmt.Errorf("%d gateways connected, want 1", connected)
		}
		return nil
	})
	dropped := time.Now()
	if n := watcher.count("t"); n != 5 {
		t.Fatalf("during the lease: Count = %d, want 5", n)
	}
	waitCount(t, srv, "t", 0)
	if held := time.Since(dropped); held < lease/2 {
		t.Errorf("counts dropped %v after the disconnect, before the %v lease", held, lease)
	}
	if st := srv.Stats(); st.LeaseExpiries != 1 || st.Gateways != 1 {
		t.Errorf("stats %+v, want 1 lease expiry and 1 gateway left", st)
	}
}

// A gateway reconnecting within its lease takes its state over: the old
// counts hold until the new table's SYNC, which then replaces them.
func TestResyncReplacesTable(t *testing.T) {
	srv, addr := start(t, topicmgr.Config{Lease: time.Minute})
	a := gatewayClient(t, addr, "a", cluster.Interest{Topic: "old", Count: 2}, cluster.Interest{Topic: "kept", Count: 1})
	waitCount(t, srv, "old", 2)
	_ = a.conn.Close()

	a2 := dialRaw(t, addr, "a")
	a2.hello(cluster.RoleGateway, "")
	a2.send(cluster.AppendInterest(nil, []cluster.Interest{{Topic: "kept", Count: 3}, {Topic: "new", Count: 1}}))
	// Before SYNC the old table still counts.
	watcher := gatewayClient(t, addr, "w")
	if n := watcher.count("old"); n != 2 {
		t.Fatalf("before SYNC: Count(old) = %d, want 2", n)
	}
	a2.send(cluster.AppendSync(nil))
	waitCount(t, srv, "old", 0)
	waitCount(t, srv, "kept", 3)
	waitCount(t, srv, "new", 1)
}

// A second live session with the same node id replaces the first, which is
// told so.
func TestReplacedSession(t *testing.T) {
	srv, addr := start(t, topicmgr.Config{})
	first := gatewayClient(t, addr, "dup", cluster.Interest{Topic: "t", Count: 1})
	waitCount(t, srv, "t", 1)
	second := gatewayClient(t, addr, "dup", cluster.Interest{Topic: "t", Count: 4})
	first.expectClose(cluster.CodeReplaced)
	waitCount(t, srv, "t", 4)
	pub := gatewayClient(t, addr, "p")
	raw := pub.publish("t", `"x"`)
	second.expectMessage(raw)
	if st := srv.Stats(); st.Replaced != 1 {
		t.Errorf("Replaced = %d, want 1", st.Replaced)
	}
}

// A gateway that stops reading is cut off when its queue overflows, and the
// other gateways keep receiving without delay meanwhile.
func TestSlowGatewayIsCutOff(t *testing.T) {
	srv, addr := start(t, topicmgr.Config{QueueFrames: 64, QueueBytes: 1 << 20, WriteTimeout: 30 * time.Second})
	fast := gatewayClient(t, addr, "fast", cluster.Interest{Topic: "t", Count: 1})
	slow := gatewayClient(t, addr, "slow", cluster.Interest{Topic: "t", Count: 1})
	pub := gatewayClient(t, addr, "pub")
	waitCount(t, srv, "t", 2)
	_ = slow // never read from again

	payload := `"` + string(bytes.Repeat([]byte("x"), 64<<10)) + `"`
	const n = 400 // 25 MiB: far beyond the socket buffers and the queue
	var worst time.Duration
	for i := range n {
		sent := time.Now()
		raw := cluster.AppendMessage(nil, &broker.Message{Topic: "t", ID: uint64(i), Origin: "pub", Data: []byte(payload)})
		pub.send(raw)
		fast.expectMessage(raw)
		worst = max(worst, time.Since(sent))
	}
	if worst > 2*time.Second {
		t.Errorf("a delivery to the fast gateway took %v", worst)
	}
	checkFor(t, 5*time.Second, func() error {
		if st := srv.Stats(); st.SlowCutoffs != 1 {
			return fmt.Errorf("%d slow cut-offs, want 1", st.SlowCutoffs)
		}
		return nil
	})
	// The slow gateway's counts stay for its lease: it reconnects and
	// resyncs.
	if got := srv.Count("t"); got != 2 {
		t.Errorf("count %d right after the cut-off, want 2 (lease)", got)
	}
}

// A frame over the limit is refused from its length prefix: the session
// gets CLOSE "frame too large" and the manager keeps serving.
func TestFrameTooLarge(t *testing.T) {
	const limit = 64 << 10
	srv, addr := start(t, topicmgr.Config{MaxFrame: limit})
	big := gatewayClient(t, addr, "big")
	var hdr [6]byte
	binary.BigEndian.PutUint32(hdr[:], limit+1)
	hdr[4], hdr[5] = cluster.Version, byte(cluster.TypePublish)
	big.send(hdr[:]) // the body never comes: the refusal must not wait for it
	big.expectClose(cluster.CodeFrameTooLarge)

	// Exactly the limit passes.
	a := gatewayClient(t, addr, "a", cluster.Interest{Topic: "t", Count: 1})
	b := gatewayClient(t, addr, "b")
	waitCount(t, srv, "t", 1)
	m := &broker.Message{Topic: "t", Origin: "b"}
	m.Data = bytes.Repeat([]byte("1"), limit-2-cluster.MessageLen(m))
	raw := cluster.AppendMessage(nil, m)
	b.send(raw)
	a.expectMessage(raw)
}

func TestProtocolErrors(t *testing.T) {
	_, addr := start(t, topicmgr.Config{Token: "secret"})
	hello := func(id string, role cluster.Role, token string) []byte {
		return cluster.AppendHello(nil, cluster.Hello{Role: role, NodeID: id, Token: token, MaxFrame: cluster.DefaultMaxFrame})
	}
	badVersion := cluster.AppendPing(nil, 1)
	badVersion[cluster.LengthLen] = 9
	for _, tc := range []struct {
		name   string
		frames [][]byte
		code   cluster.Code
	}{
		{"no HELLO first", [][]byte{cluster.AppendPing(nil, 1)}, cluster.CodeProtocolError},
		{"wrong token", [][]byte{hello("g", cluster.RoleGateway, "guess")}, cluster.CodeUnauthorized},
		{"unknown role", [][]byte{hello("g", 9, "secret")}, cluster.CodeProtocolError},
		{"empty id", [][]byte{hello("", cluster.RoleGateway, "secret")}, cluster.CodeProtocolError},
		{"bad version", [][]byte{badVersion}, cluster.CodeUnsupportedVersion},
		{"foreign origin", [][]byte{hello("g", cluster.RoleGateway, "secret"),
			cluster.AppendMessage(nil, &broker.Message{Topic: "t", Origin: "someone else"})}, cluster.CodeProtocolError},
		{"publisher interest", [][]byte{hello("p", cluster.RolePublisher, "secret"),
			cluster.AppendInterest(nil, []cluster.Interest{{Topic: "t", Count: 1}})}, cluster.CodeProtocolError},
		{"second HELLO", [][]byte{hello("g", cluster.RoleGateway, "secret"), hello("g", cluster.RoleGateway, "secret")}, cluster.CodeProtocolError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, addr, "x")
			c.send(tc.frames...)
			f := c.next(5 * time.Second)
			if f.Type == cluster.TypeWelcome {
				f = c.next(5 * time.Second)
			}
			if f.Type != cluster.TypeClose {
				t.Fatalf("got %v, want CLOSE", f.Type)
			}
			if cl, _ := cluster.ParseClose(f.Body()); cl.Code != tc.code {
				t.Fatalf("CLOSE %v %q, want %v", cl.Code, cl.Reason, tc.code)
			}
		})
	}
}

// A client that goes silent is closed after three heartbeats; one that
// answers pings (or sends anything) is kept.
func TestHeartbeatDeadline(t *testing.T) {
	const hb = 50 * time.Millisecond
	_, addr := start(t, topicmgr.Config{Heartbeat: hb})
	silent := dialRaw(t, addr, "silent")
	silent.hello(cluster.RoleGateway, "")
	began := time.Now()
	silent.expectClose(cluster.CodeTimeout)
	if d := time.Since(began); d < 2*hb {
		t.Errorf("closed after %v, before the deadline", d)
	}

	alive := dialRaw(t, addr, "alive")
	alive.hello(cluster.RoleGateway, "")
	deadline := time.Now().Add(10 * topicmgr.HeartbeatMisses * hb)
	for time.Now().Before(deadline) {
		_ = alive.conn.SetReadDeadline(time.Now().Add(time.Second))
		f, err := alive.r.ReadFrame()
		if err != nil {
			t.Fatalf("a client answering pings was dropped: %v", err)
		}
		if f.Type == cluster.TypePing {
			nonce, _ := cluster.ParseNonce(f.Body())
			alive.send(cluster.AppendPong(nil, nonce))
		}
	}
}

// Shutdown tells every session the manager is going away.
func TestShutdown(t *testing.T) {
	srv, addr := start(t, topicmgr.Config{})
	a := gatewayClient(t, addr, "a")
	p := dialRaw(t, addr, "p")
	p.hello(cluster.RolePublisher, "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	a.expectClose(cluster.CodeGoingAway)
	p.expectClose(cluster.CodeGoingAway)
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("the manager still accepts connections after Shutdown")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, cfg := range []topicmgr.Config{
		{Lease: -1}, {Heartbeat: time.Millisecond}, {MaxFrame: 100}, {QueueFrames: -1},
	} {
		if _, err := topicmgr.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}
