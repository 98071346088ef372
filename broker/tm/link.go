package tm

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/broker/internal/settle"
	"github.com/firetower-go/firetower/internal/cluster"
)

// link is the broker's connection to one manager, re-established for ever
// until Close. Its run goroutine dials, handshakes and then reads; a writer
// goroutine per connection is the only one that writes to it, coalescing
// the queued frames and the changed interest into one buffered write.
type link struct {
	b     *Broker
	idx   int
	m     Manager
	tried chan struct{} // closed once the first connection attempt is up or has failed
	wake  chan struct{} // capacity 1: something to write

	// dirty holds the topics owned by this manager whose count changed
	// since the writer last sent them. Guarded by Broker.mu.
	dirty map[string]struct{}
	// gate follows up (changed with it, under mu; its own lock is a leaf)
	// and holds publishes back for the settle window after a reconnection.
	gate *settle.Gate

	mu      sync.Mutex
	conn    net.Conn // the live connection, nil while down
	up      bool     // handshake done and not yet torn down
	upCh    chan struct{}
	downCh  chan struct{} // closed when the live connection ends
	peerMax int           // the manager's frame limit
	queue   []outFrame
	bytes   int
	// Publishes of the live connection taken by the writer (numbered
	// from 1 in the order written, as the manager counts them) and not
	// yet confirmed, oldest first; watchdog fires when the oldest has
	// waited ConfirmTimeout.
	taken    uint64
	inflight []*publish
	watchdog *time.Timer
	stalled  bool          // the watchdog closed the connection
	settled  chan struct{} // capacity 1: the last publish in flight was confirmed
	room     chan struct{} // capacity 1: the writer took the queue
	pending  map[uint64]chan int64
	leaving  bool // Close asked for a goodbye
	byeSent  bool // the goodbye was written
	mgrID    string
	epoch    uint64
	connects int64
}

// outFrame is a frame queued for the writer: a publish or command (pub set)
// or a control frame.
type outFrame struct {
	b   []byte
	pub *publish
}

// publish is the state of one Publish call's frame, guarded by link.mu:
// queued (seq 0), then taken by the writer (seq set: handed to the network),
// then resolved through done. A caller that gives up while it is queued
// cancels it, and the writer skips it: a publish reported failed never goes
// out later.
type publish struct {
	seq       uint64
	at        time.Time // when the writer took it
	cancelled bool
	done      chan error // capacity 1: nil once confirmed, or why not
}

func newLink(b *Broker, idx int, m Manager) *link {
	return &link{
		b: b, idx: idx, m: m,
		tried:   make(chan struct{}),
		wake:    make(chan struct{}, 1),
		dirty:   make(map[string]struct{}),
		upCh:    make(chan struct{}),
		downCh:  make(chan struct{}),
		room:    make(chan struct{}, 1),
		settled: make(chan struct{}, 1),
		gate:    settle.NewGate(settle.Resolve(b.cfg.Settle, b.cfg.BackoffMax)),
	}
}

func (l *link) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *link) isUp() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.up
}

func (l *link) state() ManagerState {
	l.mu.Lock()
	defer l.mu.Unlock()
	return ManagerState{Key: l.m.Key, Addr: l.m.Addr, Up: l.up, ManagerID: l.mgrID, Epoch: l.epoch, Connects: l.connects}
}

func (l *link) logger() *slog.Logger {
	return l.b.log.With("manager", l.m.Key, "addr", l.m.Addr)
}

// errUnavailable wraps broker.ErrUnavailable with the manager's name.
func (l *link) errUnavailable(why string) error {
	return fmt.Errorf("%w: %s %s", broker.ErrUnavailable, l.name(), why)
}

func (l *link) name() string { return fmt.Sprintf("topic manager %s (%s)", l.m.Key, l.m.Addr) }

// settling reports whether the link is up but in its settle window.
func (l *link) settling() bool { return l.gate.Remaining() > 0 }

// awaitSettled waits for the end of the settle window, at most
// PublishWait, bounded by ctx. Called without l.mu.
func (l *link) awaitSettled(ctx context.Context) error {
	timer := time.NewTimer(min(l.gate.Remaining(), l.b.cfg.PublishWait))
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return l.errUnavailable("is settling after a reconnection: " + ctx.Err().Error())
	case <-l.b.stop:
		return broker.ErrClosed
	}
}

// awaitUp waits up to PublishWait for the connection, bounded by ctx.
// Called without l.mu.
func (l *link) awaitUp(ctx context.Context, upCh chan struct{}) error {
	wait := l.b.cfg.PublishWait
	if wait <= 0 {
		return l.errUnavailable("is not connected")
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-upCh:
		return nil
	case <-timer.C:
		return l.errUnavailable(fmt.Sprintf("is not connected (waited %v)", wait))
	case <-ctx.Done():
		return l.errUnavailable("is not connected: " + ctx.Err().Error())
	case <-l.b.stop:
		return broker.ErrClosed
	}
}

// publish queues a PUBLISH or COMMAND frame and waits for the manager to
// confirm it. It fails with an error wrapping broker.ErrUnavailable, ctx's
// error too if ctx ended, when the frame was not sent (the link is down or
// settling, the queue stayed full, ctx ended before the writer took the
// frame: it is then cancelled and never sent), and with one wrapping
// broker.ErrUnknownOutcome when the frame was handed to the network but
// not confirmed (ctx ended, or the connection failed, first).
func (l *link) publish(ctx context.Context, frame []byte) error {
	p := &publish{done: make(chan error, 1)}
	if err := l.enqueue(ctx, frame, p); err != nil {
		return err
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case err := <-p.done: // resolved meanwhile
		return err
	default:
	}
	if p.seq == 0 {
		p.cancelled = true
		return fmt.Errorf("%w: %s: not sent: %w", broker.ErrUnavailable, l.name(), ctx.Err())
	}
	return l.errUnknown(fmt.Sprintf("sent, not confirmed before the caller gave up (%v)", ctx.Err()))
}

// errUnknown wraps broker.ErrUnknownOutcome with the manager's name.
func (l *link) errUnknown(why string) error {
	return fmt.Errorf("%w: %s: %s", broker.ErrUnknownOutcome, l.name(), why)
}

// enqueue queues frame for the writer. With pub (a publish), it fails
// during the settle window after a reconnection (or waits for its end,
// within PublishWait) and waits for room in a full queue (bounded by ctx);
// control frames (pub nil) always go in.
func (l *link) enqueue(ctx context.Context, frame []byte, pub *publish) error {
	cfg := &l.b.cfg
	limit := pub != nil
	waited, settleWaited := false, false
	for {
		l.mu.Lock()
		if l.leaving {
			l.mu.Unlock()
			return broker.ErrClosed
		}
		if !l.up {
			upCh := l.upCh
			l.mu.Unlock()
			if waited {
				return l.errUnavailable("is not connected")
			}
			waited = true
			if err := l.awaitUp(ctx, upCh); err != nil {
				return err
			}
			continue
		}
		if limit {
			if err := l.gate.Err(l.name()); err != nil {
				l.mu.Unlock()
				if settleWaited || cfg.PublishWait <= 0 {
					return err
				}
				settleWaited = true
				if err := l.awaitSettled(ctx); err != nil {
					return err
				}
				continue
			}
		}
		if n := len(frame) - cluster.LengthLen; n > l.peerMax {
			l.mu.Unlock()
			return fmt.Errorf("%w: %d bytes, limit of manager %s is %d", ErrTooLarge, n, l.m.Key, l.peerMax)
		}
		full := len(l.queue) >= cfg.QueueFrames || (len(l.queue) > 0 && l.bytes+len(frame) > cfg.QueueBytes)
		if !limit || !full {
			l.queue = append(l.queue, outFrame{b: frame, pub: pub})
			l.bytes += len(frame)
			l.mu.Unlock()
			l.signal()
			return nil
		}
		room, down := l.room, l.downCh
		l.mu.Unlock()
		select {
		case <-room:
		case <-down:
		case <-ctx.Done():
			return l.errUnavailable("queue full: " + ctx.Err().Error())
		case <-l.b.stop:
			return broker.ErrClosed
		}
	}
}

// count asks the manager for a count and waits for the reply.
func (l *link) count(ctx context.Context, topic string, id uint64) (int64, error) {
	reply := make(chan int64, 1)
	for attempt := 0; ; attempt++ {
		l.mu.Lock()
		if l.leaving {
			l.mu.Unlock()
			return 0, broker.ErrClosed
		}
		if !l.up {
			upCh := l.upCh
			l.mu.Unlock()
			if attempt > 0 {
				return 0, l.errUnavailable("is not connected")
			}
			if err := l.awaitUp(ctx, upCh); err != nil {
				return 0, err
			}
			continue
		}
		if l.pending == nil {
			l.pending = make(map[uint64]chan int64)
		}
		l.pending[id] = reply
		l.queue = append(l.queue, outFrame{b: cluster.AppendCount(nil, cluster.CountRequest{ReqID: id, Topic: topic})})
		down := l.downCh
		l.mu.Unlock()
		l.signal()
		select {
		case n := <-reply:
			return n, nil
		case <-down:
			if l.isLeaving() {
				return 0, broker.ErrClosed
			}
			return 0, l.errUnavailable("disconnected before answering")
		case <-ctx.Done():
			l.mu.Lock()
			delete(l.pending, id)
			l.mu.Unlock()
			return 0, l.errUnavailable("did not answer: " + ctx.Err().Error())
		case <-l.b.stop:
			return 0, broker.ErrClosed
		}
	}
}

func (l *link) isLeaving() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leaving
}

// leave asks the writer to send a goodbye and close the connection. The
// goodbye goes ahead of the publishes still queued: they fail, certainly
// not sent, so that a closing gateway's goodbye is not held up by traffic
// (the manager would otherwise keep its counts for the lease).
func (l *link) leave() {
	l.mu.Lock()
	l.leaving = true
	l.dropQueued(fmt.Errorf("%w: %s: closed before the publish was sent", broker.ErrClosed, l.name()))
	l.mu.Unlock()
	l.signal()
}

// dropQueued fails the publishes still queued, never written, with err and
// keeps the other frames. Called with l.mu held.
func (l *link) dropQueued(err error) {
	kept, n := l.queue[:0], 0
	for _, f := range l.queue {
		if f.pub != nil {
			if !f.pub.cancelled {
				f.pub.done <- err
			}
			continue
		}
		kept = append(kept, f)
		n += len(f.b)
	}
	clear(l.queue[len(kept):])
	l.queue, l.bytes = kept, n
}

// drop closes the live connection at once.
func (l *link) drop() {
	l.mu.Lock()
	c := l.conn
	l.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
}

// run connects, serves the connection until it ends, and reconnects after
// a backoff, until Close.
func (l *link) run() {
	defer l.b.wg.Done()
	log := l.logger()
	attempt, failures := 0, 0
	first := true
	// owesBye: the manager may hold this node's counts from a session that
	// ended without a goodbye; if Close comes before the next session, a
	// farewell connection says it.
	owesBye := false
	defer func() {
		if owesBye && l.b.role == cluster.RoleGateway {
			l.farewell()
		}
	}()
	for {
		// Close marks every link leaving before it stops them: a link whose
		// goodbye was just written must not connect again, or the new
		// session would take the node's state over at the manager (so the
		// goodbye would be ignored) and then end without one.
		if l.isLeaving() {
			return
		}
		if !first {
			d := backoff(attempt, l.b.cfg.BackoffMin, l.b.cfg.BackoffMax, jitter)
			attempt++
			timer := time.NewTimer(d)
			select {
			case <-timer.C:
			case <-l.b.stop:
				timer.Stop()
				return
			}
		}
		if l.isLeaving() {
			return
		}
		conn, r, w, err := l.dial()
		if err != nil {
			if first {
				first = false
				close(l.tried)
			}
			select {
			case <-l.b.stop:
				return
			default:
			}
			failures++
			var ce *closedError
			if errors.As(err, &ce) && (ce.code == cluster.CodeUnauthorized || ce.code == cluster.CodeReplaced ||
				ce.code == cluster.CodeUnsupportedVersion) {
				attempt = max(attempt, 32) // retrying fast cannot help
				log.Error("topic manager refused the session", "err", err)
				continue
			}
			// The first failure of an outage is worth a warning; the
			// retries are not.
			level := slog.LevelDebug
			if failures == 1 {
				level = slog.LevelWarn
			}
			log.Log(context.Background(), level, "cannot reach topic manager; retrying with backoff", "err", err, "failures", failures)
			continue
		}
		if failures > 0 {
			log.Info("topic manager reachable again", "after_failures", failures)
		}
		failures = 0
		began := time.Now()
		code, serr := l.serve(conn, r, w, first)
		first = false
		l.mu.Lock()
		owesBye = !l.byeSent && code != cluster.CodeReplaced // a replacing session owns the state now
		l.mu.Unlock()
		select {
		case <-l.b.stop:
			return
		default:
		}
		switch {
		case code == cluster.CodeReplaced || code == cluster.CodeUnauthorized:
			// Another live node has this id, or the token is wrong:
			// retrying fast would only make the two fight.
			attempt = 32
			log.Error("topic manager ended the session", "code", code.String(), "err", serr)
		case time.Since(began) >= l.b.cfg.BackoffMax:
			attempt = 0
			log.Warn("connection to topic manager lost; reconnecting", "err", serr)
		default:
			log.Warn("connection to topic manager lost; reconnecting", "err", serr)
		}
	}
}

// dial connects and exchanges HELLO and WELCOME.
func (l *link) dial() (net.Conn, *cluster.Reader, cluster.Welcome, error) {
	cfg := &l.b.cfg
	ctx, cancel := context.WithTimeout(context.Background(), cfg.DialTimeout)
	defer cancel()
	go func() {
		select {
		case <-l.b.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", l.m.Addr)
	if err != nil {
		return nil, nil, cluster.Welcome{}, err
	}
	if tc, ok := cfg.clientTLS(conn, l.m.Addr).(*tls.Conn); ok {
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			return nil, nil, cluster.Welcome{}, fmt.Errorf("TLS: %w", err)
		}
		conn = tc
	}
	hello := l.hello()
	_ = conn.SetDeadline(time.Now().Add(cfg.HandshakeTimeout))
	fail := func(err error) (net.Conn, *cluster.Reader, cluster.Welcome, error) {
		_ = conn.Close()
		return nil, nil, cluster.Welcome{}, err
	}
	if _, err := conn.Write(hello); err != nil {
		return fail(err)
	}
	r := cluster.NewReader(conn, cfg.MaxFrame)
	f, err := r.ReadFrame()
	if err != nil {
		return fail(fmt.Errorf("handshake: %w", err))
	}
	switch {
	case f.Type == cluster.TypeClose:
		c, _ := cluster.ParseClose(f.Body())
		return fail(&closedError{code: c.Code, reason: c.Reason})
	case f.Version != cluster.Version:
		// Publishes need the manager's confirmations (version 2):
		// managers are upgraded before the gateways.
		return fail(&closedError{code: cluster.CodeUnsupportedVersion,
			reason: fmt.Sprintf("the manager speaks protocol version %d; this node needs %d", f.Version, cluster.Version)})
	case f.Type == cluster.TypeWelcome:
	default:
		return fail(fmt.Errorf("handshake: got %v, want WELCOME", f.Type))
	}
	w, err := cluster.ParseWelcome(f.Body())
	if err != nil {
		return fail(fmt.Errorf("handshake: %w", err))
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, r, w, nil
}

func (l *link) hello() []byte {
	b := l.b
	b.mu.Lock()
	defer b.mu.Unlock()
	return cluster.AppendHello(nil, cluster.Hello{
		Role: b.role, NodeID: b.node, Session: b.session, Token: b.cfg.Token, MaxFrame: uint32(b.cfg.MaxFrame),
	})
}

// farewell says goodbye on a connection of its own: Close came while the
// link was down, and the manager may still hold the node's counts from the
// last session, which would otherwise stay for the lease. It is bounded by
// half the close grace and gives up silently (the lease remains).
func (l *link) farewell() {
	deadline := time.Now().Add(closeGrace / 2)
	conn, err := net.DialTimeout("tcp", l.m.Addr, closeGrace/2)
	if err != nil {
		return
	}
	conn = l.b.cfg.clientTLS(conn, l.m.Addr) // the handshake runs under the deadline
	defer conn.Close()
	_ = conn.SetDeadline(deadline)
	if _, err := conn.Write(l.hello()); err != nil {
		return
	}
	r := cluster.NewReader(conn, l.b.cfg.MaxFrame)
	if f, err := r.ReadFrame(); err != nil || f.Type != cluster.TypeWelcome {
		return
	}
	if _, err := conn.Write(cluster.AppendClose(nil, cluster.Close{Code: cluster.CodeBye, Reason: "gateway closing"})); err != nil {
		return
	}
	// Wait for the manager to close, so that it reads the goodbye before
	// this side's close could reset the connection.
	for {
		if _, err := r.ReadFrame(); err != nil {
			return
		}
	}
}

// closedError is a CLOSE frame from the manager.
type closedError struct {
	code   cluster.Code
	reason string
}

func (e *closedError) Error() string {
	return fmt.Sprintf("closed by the topic manager: %v: %s", e.code, e.reason)
}

// serve runs one connection: it starts the writer, reads until the
// connection fails, and tears it down. It returns the manager's close code
// (CodeGoingAway if it sent none) and the error that ended the connection.
func (l *link) serve(conn net.Conn, r *cluster.Reader, w cluster.Welcome, first bool) (cluster.Code, error) {
	heartbeat := w.Heartbeat
	if heartbeat <= 0 {
		heartbeat = l.b.cfg.Heartbeat
	}
	done := make(chan struct{})
	l.mu.Lock()
	l.conn, l.up = conn, true
	l.peerMax = max(int(w.MaxFrame), cluster.MinMaxFrame)
	l.mgrID, l.epoch = w.ManagerID, w.Epoch
	l.connects++
	close(l.upCh)
	settling := l.gate.Up()
	l.mu.Unlock()
	if first {
		close(l.tried) // Start may return: the link is up
	}
	if settling > 0 {
		l.logger().Info("reconnected to topic manager; publishes of its topics are refused while the other gateways re-subscribe",
			"settle", settling)
	}

	var writer sync.WaitGroup
	writer.Go(func() { l.writeLoop(conn, heartbeat, done) })

	code, err := l.readLoop(conn, r, heartbeat)

	_ = conn.Close()
	l.mu.Lock()
	if l.stalled {
		l.stalled = false
		err = fmt.Errorf("publishes not confirmed within %v (ConfirmTimeout): %w", l.b.cfg.ConfirmTimeout, err)
	}
	l.conn, l.up = nil, false
	l.gate.Down()
	l.upCh = make(chan struct{})
	close(l.downCh)
	l.downCh = make(chan struct{})
	l.failPublishes(err)
	clear(l.pending)
	l.mu.Unlock()
	close(done)
	writer.Wait()
	return code, err
}

// failPublishes resolves the publishes of a connection that ended (err says
// why): those the writer took may have reached the manager (unknown
// outcome), the queued ones were never sent. Called with l.mu held.
func (l *link) failPublishes(err error) {
	for _, p := range l.inflight {
		p.done <- l.errUnknown(fmt.Sprintf("sent, then the connection ended before the manager confirmed it: %v", err))
	}
	for _, f := range l.queue {
		if f.pub != nil && !f.pub.cancelled {
			f.pub.done <- l.errUnavailable(fmt.Sprintf("disconnected before the publish was sent: %v", err))
		}
	}
	clear(l.inflight)
	clear(l.queue)
	l.inflight, l.queue, l.bytes, l.taken = l.inflight[:0], l.queue[:0], 0, 0
	if l.watchdog != nil {
		l.watchdog.Stop()
		l.watchdog = nil
	}
}

// take moves the queued frames to batch for the writer of conn: publishes
// are numbered and become in flight (cancelled ones are dropped), and the
// confirmation watchdog is armed. Called with l.mu held.
func (l *link) take(batch [][]byte, conn net.Conn) [][]byte {
	now := time.Now()
	for _, f := range l.queue {
		if p := f.pub; p != nil {
			if p.cancelled {
				continue
			}
			l.taken++
			p.seq, p.at = l.taken, now
			l.inflight = append(l.inflight, p)
		}
		batch = append(batch, f.b)
	}
	clear(l.queue)
	l.queue, l.bytes = l.queue[:0], 0
	if len(l.inflight) > 0 && l.watchdog == nil {
		l.watchdog = time.AfterFunc(l.b.cfg.ConfirmTimeout, func() { l.watch(conn) })
	}
	return batch
}

// confirm resolves the publishes the manager confirmed: the first n of the
// connection.
func (l *link) confirm(n uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n > l.taken {
		return fmt.Errorf("manager confirmed %d publishes of %d sent", n, l.taken)
	}
	i := 0
	for ; i < len(l.inflight) && l.inflight[i].seq <= n; i++ {
		l.inflight[i].done <- nil
	}
	rest := copy(l.inflight, l.inflight[i:])
	clear(l.inflight[rest:])
	l.inflight = l.inflight[:rest]
	if rest == 0 {
		select {
		case l.settled <- struct{}{}:
		default:
		}
	}
	return nil
}

// watch declares conn down if its oldest unconfirmed publish has waited
// ConfirmTimeout, and otherwise re-arms itself for the oldest one's
// deadline. Closing the connection ends its reader, and the link
// reconnects as after any failure; publishes fail fast meanwhile.
func (l *link) watch(conn net.Conn) {
	timeout := l.b.cfg.ConfirmTimeout
	l.mu.Lock()
	if l.conn != conn {
		l.mu.Unlock()
		return // the connection this watchdog served is gone
	}
	l.watchdog = nil
	if len(l.inflight) == 0 {
		l.mu.Unlock()
		return
	}
	if waited := time.Since(l.inflight[0].at); waited < timeout {
		l.watchdog = time.AfterFunc(timeout-waited, func() { l.watch(conn) })
		l.mu.Unlock()
		return
	}
	n := len(l.inflight)
	l.stalled = true
	l.mu.Unlock()
	l.logger().Warn("topic manager did not confirm publishes in time; declaring the connection down",
		"confirm_timeout", timeout, "unconfirmed", n)
	_ = conn.Close()
}

func (l *link) readLoop(conn net.Conn, r *cluster.Reader, heartbeat time.Duration) (cluster.Code, error) {
	idle := 3 * heartbeat
	for {
		_ = conn.SetReadDeadline(time.Now().Add(idle))
		f, err := r.ReadFrame()
		if err != nil {
			return cluster.CodeGoingAway, err
		}
		switch f.Type {
		case cluster.TypePublish, cluster.TypeCommand:
			m, err := cluster.ParseMessage(f)
			if err != nil {
				return cluster.CodeProtocolError, err
			}
			l.b.deliver(m)
		case cluster.TypePing:
			nonce, err := cluster.ParseNonce(f.Body())
			if err != nil {
				return cluster.CodeProtocolError, err
			}
			_ = l.enqueue(context.Background(), cluster.AppendPong(nil, nonce), nil)
		case cluster.TypePong:
		case cluster.TypeConfirm:
			n, err := cluster.ParseConfirm(f.Body())
			if err == nil {
				err = l.confirm(n)
			}
			if err != nil {
				return cluster.CodeProtocolError, err
			}
		case cluster.TypeCountReply:
			rep, err := cluster.ParseCountReply(f.Body())
			if err != nil {
				return cluster.CodeProtocolError, err
			}
			l.mu.Lock()
			ch := l.pending[rep.ReqID]
			delete(l.pending, rep.ReqID)
			l.mu.Unlock()
			if ch != nil {
				ch <- rep.Count
			}
		case cluster.TypeClose:
			c, err := cluster.ParseClose(f.Body())
			if err != nil {
				return cluster.CodeProtocolError, err
			}
			return c.Code, &closedError{code: c.Code, reason: c.Reason}
		case cluster.TypeHello, cluster.TypeWelcome, cluster.TypeInterest, cluster.TypeSync, cluster.TypeCount:
			return cluster.CodeProtocolError, fmt.Errorf("unexpected %v from the manager", f.Type)
		default:
			// A frame of a later protocol revision: ignored.
		}
	}
}

// writeBuffer coalesces small frames into few writes.
const writeBuffer = 64 << 10

// writeLoop is the only writer of conn. It first sends the whole interest
// table of the manager's topics and SYNC, then, each time it is woken, the
// changed interest and the queued frames in one flush; a heartbeat PING when
// the interval passes. It closes conn when it fails or after a goodbye.
func (l *link) writeLoop(conn net.Conn, heartbeat time.Duration, done chan struct{}) {
	cfg := &l.b.cfg
	bw := bufio.NewWriterSize(conn, writeBuffer)
	ping := time.NewTicker(heartbeat)
	defer ping.Stop()
	var nonce uint64
	var batch [][]byte
	fail := func() { _ = conn.Close() }

	resync := l.b.role == cluster.RoleGateway
	for {
		if !resync {
			select {
			case <-l.wake:
			case <-ping.C:
				nonce++
				batch = append(batch, cluster.AppendPing(nil, nonce))
			case <-done:
				return
			}
		}
		var entries []cluster.Interest
		if l.b.role == cluster.RoleGateway {
			entries = l.takeInterest(resync)
		}
		l.mu.Lock()
		batch = l.take(batch, conn)
		leaving, peerMax := l.leaving, l.peerMax
		l.mu.Unlock()
		select {
		case l.room <- struct{}{}:
		default:
		}

		_ = conn.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout))
		if !leaving {
			if err := l.writeInterest(bw, entries, peerMax); err != nil {
				fail()
				return
			}
			if resync {
				if _, err := bw.Write(cluster.AppendSync(nil)); err != nil {
					fail()
					return
				}
			}
		}
		resync = false
		for _, f := range batch {
			if _, err := bw.Write(f); err != nil {
				fail()
				return
			}
		}
		clear(batch)
		batch = batch[:0]
		if leaving {
			// The goodbye ends the session at once: the publishes
			// written before it are confirmed first (within half the
			// close grace), so that none returns an unknown outcome.
			if bw.Flush() == nil {
				l.awaitConfirmed(done)
			}
			_, _ = bw.Write(cluster.AppendClose(nil, cluster.Close{Code: cluster.CodeBye, Reason: "gateway closing"}))
			if bw.Flush() == nil {
				l.mu.Lock()
				l.byeSent = true
				l.mu.Unlock()
			}
			fail()
			return
		}
		if err := bw.Flush(); err != nil {
			fail()
			return
		}
	}
}

// awaitConfirmed waits until no publish is in flight, at most half the
// close grace or until the connection ends.
func (l *link) awaitConfirmed(done chan struct{}) {
	timer := time.NewTimer(closeGrace / 2)
	defer timer.Stop()
	for {
		l.mu.Lock()
		n := len(l.inflight)
		l.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-l.settled:
		case <-timer.C:
			return
		case <-done:
			return
		}
	}
}

// takeInterest returns the interest entries to send: with full, the whole
// table of the topics this manager owns; otherwise the topics changed since
// the last call, with their latest counts (0 for a withdrawn topic).
func (l *link) takeInterest(full bool) []cluster.Interest {
	b := l.b
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []cluster.Interest
	if full {
		for topic, e := range b.interest {
			if e.owner == l.idx {
				out = append(out, cluster.Interest{Topic: topic, Count: e.count})
			}
		}
	} else {
		for topic := range l.dirty {
			out = append(out, cluster.Interest{Topic: topic, Count: b.interest[topic].count})
		}
	}
	clear(l.dirty)
	return out
}

// writeInterest writes entries as INTEREST frames that each fit the
// manager's limit. An entry that cannot fit any frame (a topic longer than
// the manager's limit allows) is left out and logged: retrying could never
// send it.
func (l *link) writeInterest(w io.Writer, entries []cluster.Interest, peerMax int) error {
	budget := peerMax - 2 // the version and type bytes
	entries = slices.DeleteFunc(entries, func(e cluster.Interest) bool {
		if cluster.InterestLen(e.Topic) <= budget && len(e.Topic) <= cluster.MaxStr16 {
			return false
		}
		l.logger().Error("topic too long for the topic manager's frame limit; its subscribers are not registered",
			"topic_bytes", len(e.Topic), "max_frame", peerMax)
		return true
	})
	for len(entries) > 0 {
		n, size := 0, 0
		for n < len(entries) {
			sz := cluster.InterestLen(entries[n].Topic)
			if n > 0 && size+sz > budget {
				break
			}
			size += sz
			n++
		}
		if _, err := w.Write(cluster.AppendInterest(nil, entries[:n])); err != nil {
			return err
		}
		entries = entries[n:]
	}
	return nil
}
