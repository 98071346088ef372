package gateway

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/firetower-go/firetower/internal/hub"
	"github.com/firetower-go/firetower/protocol"
	"github.com/gorilla/websocket"
)

// outbound is a connection's bounded queue of complete websocket frames and
// the state of its one writer. Producers (the fan-out, ToSelf, replies)
// append under mu and wake the writer; the writer swaps the whole queue out
// and writes it with one vectored write, so many queued frames cost one
// system call.
type outbound struct {
	t    *FireTower
	wake chan struct{} // capacity 1: "the queue is not empty"

	mu            sync.Mutex // a leaf lock
	queue         [][]byte
	bytes         int
	overflowSince time.Time // when the current overflow began; zero if none
	closeFrame    []byte    // set by closeWith; written after the queue
	closed        bool      // no more frames are accepted
	scheduled     bool      // netpoll: the tower is on its poller's list already

	iov net.Buffers // the writer's vectored-write header; only the writer touches it
}

func (o *outbound) init(t *FireTower) { o.t = t }

// Deliver implements hub.Subscriber: the fan-out queues the frame of the
// tower's protocol version (Enqueue).
func (t *FireTower) Deliver(d hub.Delivery) { t.Enqueue(d.Frame) }

// Enqueue queues one complete websocket frame as a fan-out delivery: dropped
// and counted if the queue is full.
func (t *FireTower) Enqueue(frame []byte) { _ = t.out.push(frame, false) }

func (t *FireTower) tower() *FireTower { return t }

// push appends frame. Control frames and replies (control=true) bypass the
// byte limit but not a hard cap of twice the frame limit.
func (o *outbound) push(frame []byte, control bool) error {
	cfg := &o.t.gw.cfg
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return ErrClosed
	}
	full := len(o.queue) >= cfg.OutboundQueue || (o.bytes+len(frame) > cfg.OutboundQueueBytes && len(o.queue) > 0)
	if control {
		full = len(o.queue) >= 2*cfg.OutboundQueue
	}
	if full {
		o.t.gw.stats.dropped.Add(1)
		now := time.Now()
		if o.overflowSince.IsZero() {
			o.overflowSince = now
		}
		first := false
		if cfg.SlowConsumer == SlowConsumerDisconnect || now.Sub(o.overflowSince) > cfg.SlowConsumerGrace {
			o.t.gw.stats.slowDisconnects.Add(1)
			first = o.closeLocked(protocol.CloseSlowConsumer, "slow consumer", true, true)
		}
		wake := o.wakeLocked()
		o.mu.Unlock()
		if first {
			// As in closeWith: the reader and Run stop handing the
			// client's frames to the application.
			close(o.t.closing)
			// A writer blocked on a client that does not read would hold
			// the connection for the whole WriteTimeout: give the write in
			// progress only the close grace. (The netpoll transport
			// counts the grace from the close itself.)
			if o.t.np == nil {
				_ = o.t.conn.SetWriteDeadline(time.Now().Add(cfg.CloseGrace))
			}
		}
		if wake {
			o.wakeUp()
		}
		return ErrQueueFull
	}
	o.queue = append(o.queue, frame)
	o.bytes += len(frame)
	wake := o.wakeLocked()
	o.mu.Unlock()
	if wake {
		o.wakeUp()
	}
	return nil
}

// wakeLocked reports, with o.mu held, whether the writer must be woken
// once o.mu is released. The netpoll transport puts a tower on its
// poller's list once until the poller has taken the queue.
func (o *outbound) wakeLocked() bool {
	if o.t.np == nil {
		return true
	}
	if o.scheduled {
		return false
	}
	o.scheduled = true
	return true
}

// wakeUp wakes the writer: the tower's writer goroutine, or its poller.
func (o *outbound) wakeUp() {
	if o.t.np != nil {
		o.t.np.p.schedule(o.t)
		return
	}
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// closeLocked stops the queue and arranges for a close frame. With discard,
// frames still queued are thrown away (a slow consumer would not read them).
func (o *outbound) closeLocked(code int, reason string, sendFrame, discard bool) bool {
	if o.closed {
		return false
	}
	o.closed = true
	if sendFrame {
		o.closeFrame = protocol.CloseFrame(code, reason)
	}
	if discard {
		clear(o.queue)
		o.queue = o.queue[:0]
		o.bytes = 0
	}
	return true
}

// closeWith starts closing the connection: no more frames are queued, the
// writer flushes what is queued, sends the close frame (if sendFrame), waits
// up to CloseGrace for the client's close, and drops the TCP connection.
func (t *FireTower) closeWith(code int, reason string, sendFrame bool) {
	t.out.mu.Lock()
	first := t.out.closeLocked(code, reason, sendFrame, false)
	wake := first && t.out.wakeLocked()
	t.out.mu.Unlock()
	if first {
		close(t.closing)
	}
	if wake {
		t.out.wakeUp()
	}
}

// abort drops the TCP connection at once (Shutdown past its deadline).
func (t *FireTower) abort() {
	t.closeWith(protocol.CloseGoingAway, "", false)
	if t.np != nil {
		t.np.abort.Store(true)
		t.np.p.schedule(t)
		return
	}
	_ = t.conn.Close()
}

// heartbeat frames are the same immutable bytes for every connection.
var (
	heartbeatV1 = append(protocol.TextFrame([]byte(protocol.HeartbeatV1)), protocol.AppendFrame(nil, protocol.OpPing, nil)...)
	heartbeatV2 = append(protocol.TextFrame([]byte(protocol.PingV2)), protocol.AppendFrame(nil, protocol.OpPing, nil)...)
)

// writeLoop is the only goroutine that writes to the connection.
func (t *FireTower) writeLoop() {
	defer close(t.writerDone)
	defer t.gw.recoverPanic("writer", t)
	defer func() { _ = t.conn.Close() }()

	hb := heartbeatV1
	if t.version == protocol.V2 {
		hb = heartbeatV2
	}
	ticker := time.NewTicker(t.gw.cfg.HeartbeatInterval)
	defer ticker.Stop()

	var batch, iov [][]byte
	for {
		select {
		case <-t.out.wake:
		case <-ticker.C:
			_ = t.out.push(hb, true)
			continue // the push woke us
		case <-t.readerDone:
			// The client is gone; flush a pending close frame if any.
		}
		t.out.mu.Lock()
		batch, t.out.queue = t.out.queue, batch[:0]
		t.out.bytes = 0
		t.out.overflowSince = time.Time{}
		closeFrame, closed := t.out.closeFrame, t.out.closed
		t.out.closeFrame = nil
		t.out.mu.Unlock()

		iov = append(iov[:0], batch...)
		if closeFrame != nil {
			iov = append(iov, closeFrame)
		}
		if len(iov) > 0 {
			timeout := t.gw.cfg.WriteTimeout
			if closeFrame != nil {
				timeout = t.gw.cfg.CloseGrace // the last write: don't wait long for a client that is leaving
			}
			if err := t.write(iov, len(batch), timeout); err != nil {
				t.closeWith(protocol.CloseGoingAway, "", false)
				return
			}
		}
		clear(batch)
		if closed {
			t.awaitClientClose()
			return
		}
	}
}

// write sends the frames in iov with one vectored write (writev on TCP).
// WriteTo consumes the slice header it is called on; that header is a field
// of the outbound state (a local would escape to the heap on every write),
// and iov keeps the backing array for the next batch.
func (t *FireTower) write(iov [][]byte, frames int, timeout time.Duration) error {
	_ = t.conn.SetWriteDeadline(time.Now().Add(timeout))
	t.out.iov = iov
	n, err := t.out.iov.WriteTo(t.conn)
	if err != nil {
		return err
	}
	t.gw.stats.framesOut.Add(int64(frames))
	t.gw.stats.writes.Add(1)
	t.gw.stats.bytesOut.Add(n)
	return nil
}

// awaitClientClose gives the client CloseGrace to answer the close frame
// before the deferred conn.Close drops the connection.
func (t *FireTower) awaitClientClose() {
	_ = t.conn.SetReadDeadline(time.Now().Add(t.gw.cfg.CloseGrace))
	timer := time.NewTimer(t.gw.cfg.CloseGrace)
	defer timer.Stop()
	select {
	case <-t.readerDone:
		if t.drain {
			t.lingerRead()
		}
	case <-timer.C:
	}
}

// lingerRead is the lingering close after the reader stopped in the middle
// of the client's data (an over-limit message, a protocol error). Closing a
// socket with unread bytes makes the kernel send a reset, and the reset
// makes the client's kernel discard the close frame (1009, 1002) still in
// flight: the browser would report 1006 and reconnect. So: send FIN, then
// read and discard until the client closes, the close grace (already the
// read deadline) ends, or a bound on the bytes read.
func (t *FireTower) lingerRead() {
	if cw, ok := t.conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	limit := max(4*t.gw.cfg.ReadLimit, 1<<20)
	_, _ = io.Copy(io.Discard, io.LimitReader(t.conn, limit))
}

// readLoop reads client frames, validates and decodes them, and queues them
// for Run. It is the only reader of the connection.
func (t *FireTower) readLoop() {
	defer close(t.readerDone)
	defer t.enqueue(task{kind: taskFinish}) // Run ends the connection after the frames queued
	defer t.gw.recoverPanic("reader", t)

	idle := t.gw.cfg.HeartbeatInterval + t.gw.cfg.PongTimeout
	extend := func() { _ = t.conn.SetReadDeadline(time.Now().Add(idle)) }
	t.ws.SetPingHandler(func(data string) error {
		extend()
		return t.out.push(protocol.AppendFrame(nil, protocol.OpPong, []byte(data)), true)
	})
	t.ws.SetPongHandler(func(string) error { extend(); return nil })
	t.ws.SetCloseHandler(func(code int, text string) error {
		if code == websocket.CloseNoStatusReceived {
			code = protocol.CloseNormal
		}
		t.closeWith(code, "", true) // echo the client's close
		return nil
	})
	extend()
	for {
		mt, data, err := t.ws.ReadMessage()
		if err != nil {
			t.readFailed(err)
			return
		}
		extend()
		t.gw.stats.framesIn.Add(1)
		t.gw.stats.bytesIn.Add(int64(len(data)))
		if t.isClosing() {
			continue // read until the client's close or the grace ends
		}
		if mt == websocket.TextMessage && !utf8.Valid(data) {
			t.gw.stats.protocolErrors.Add(1)
			t.closeWith(protocol.CloseInvalidPayload, "invalid UTF-8", true)
			continue
		}
		fire := t.decode(mt, data)
		if fire == nil {
			continue
		}
		t.queueInbound(fire)
	}
}

// readFailed ends the connection after a read error. Gorilla has already
// sent 1002 for protocol violations and 1009 for an over-limit message.
func (t *FireTower) readFailed(err error) {
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		t.closeWith(ce.Code, "", true) // already answered by the close handler
	case errors.Is(err, websocket.ErrReadLimit):
		t.drain = true
		t.gw.stats.protocolErrors.Add(1)
		t.closeWith(protocol.CloseTooBig, "message too big", false)
	case errors.As(err, &ne) && ne.Timeout() && !t.isClosing():
		t.closeWith(protocol.CloseNoPong, "no pong", true)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed), t.isClosing():
		t.closeWith(protocol.CloseGoingAway, "", false)
	default:
		t.drain = true
		t.gw.stats.protocolErrors.Add(1)
		t.closeWith(protocol.CloseProtocolError, "", false)
	}
}

// decode turns a client data frame into a FireInfo, or answers/drops it.
func (t *FireTower) decode(mt int, data []byte) *FireInfo {
	// No Context yet: it is made where the frame is handled (Run's goroutine,
	// or here on a read timeout), so that it sees the UserId the application
	// set, in OnConnect for instance, without a data race.
	fire := &FireInfo{MessageType: mt, Message: &TopicMessage{}}
	if mt != websocket.TextMessage {
		t.reject(fire, protocol.CodeBadRequest, "binary frames are not accepted")
		return nil
	}
	frame, err := protocol.Decode(t.version, data)
	fire.reqID = frame.ID
	if err != nil {
		t.reject(fire, protocol.CodeBadRequest, err.Error())
		return nil
	}
	fire.Message.Type, fire.Message.Topic, fire.Message.Data = frame.Type, frame.Topic, frame.Data
	fire.token = frame.Token
	switch frame.Kind(t.version) {
	case protocol.KindSubscribe, protocol.KindUnsubscribe:
		topics, err := frame.TopicList(t.gw.cfg.MaxTopicLength)
		if err != nil {
			t.reject(fire, codeOf(err), err.Error())
			return nil
		}
		fire.topics = topics
		fire.Message.Topic = strings.Join(topics, ",")
	case protocol.KindMessage:
		if t.version == protocol.V1 && frame.Topic == "" {
			t.reject(fire, protocol.CodeInvalidTopic, "topic is empty") // as the original did
			return nil
		}
	}
	return fire
}

// reject counts a refused client frame and answers it on v2.
func (t *FireTower) reject(fire *FireInfo, code int, msg string) {
	t.gw.stats.protocolErrors.Add(1)
	t.replyError(fire, code, msg)
}

// queueInbound hands fire to Run through the inbox, waiting up to
// ReadTimeout for room; past that the ReadTimeoutHandler gets the frame
// (on this, the reader's goroutine) and it is dropped.
func (t *FireTower) queueInbound(fire *FireInfo) {
	if t.enqueue(task{kind: taskFrame, fire: fire}) {
		return
	}
	timer := time.NewTimer(t.gw.cfg.ReadTimeout)
	defer timer.Stop()
	for {
		select {
		case <-t.space:
			if t.enqueue(task{kind: taskFrame, fire: fire}) {
				return
			}
			continue
		case <-t.closing:
			return
		case <-timer.C:
		}
		break
	}
	t.readTimedOut(fire)
}

// readTimedOut gives a frame that found no room in the inbox for
// ReadTimeout to the ReadTimeoutHandler; it is dropped.
func (t *FireTower) readTimedOut(fire *FireInfo) {
	t.gw.stats.readTimeouts.Add(1)
	fire.Context = t.newLife()
	if t.readTimeoutHandler != nil {
		t.call("ReadTimeoutHandler", func() bool { t.readTimeoutHandler(fire); return true })
	}
	t.replyError(fire, protocol.CodeLimitExceeded, "server busy: message dropped")
}

// resumeReading is called by the executor when the inbox, found full by
// the transport, has room again.
func (t *FireTower) resumeReading() {
	if t.np != nil {
		t.np.resume()
		return
	}
	select {
	case t.space <- struct{}{}:
	default:
	}
}
