package gateway

import (
	"errors"
	"io"
	"net"
	"time"
	"unicode/utf8"

	"github.com/firetower-go/firetower/protocol"
	"github.com/gorilla/websocket"
)

// goConn is the goroutine transport (transport.go): gorilla's connection
// with a reader goroutine that decodes client frames into the inbox, a
// writer goroutine, the only one that writes to the socket, and Run's
// goroutine as the inbox's executor (the original's three goroutines).
// Connections the netpoll transport cannot take (TLS, systems without
// epoll) are served this way too.
type goConn struct {
	t    *FireTower
	ws   *websocket.Conn
	conn net.Conn
	loop *runLoop

	wakeCh chan struct{} // capacity 1: "the outbound queue has something"
	// space is signalled when the inbox has room again after the reader
	// found it full (queueInbound).
	space      chan struct{}
	readerDone chan struct{} // closed when the reader has exited
	writerDone chan struct{} // closed when the writer has exited
	// drain is set by the reader, before readerDone closes, when it stopped
	// with client data left unread; the writer then lingers (lingerRead).
	drain bool
	iov   net.Buffers // the writer's vectored-write header; only the writer touches it
}

func newGoConn(t *FireTower, ws *websocket.Conn) *goConn {
	ws.SetReadLimit(t.gw.cfg.ReadLimit)
	return &goConn{
		t: t, ws: ws, conn: ws.NetConn(), loop: newRunLoop(),
		wakeCh: make(chan struct{}, 1), space: make(chan struct{}, 1),
		readerDone: make(chan struct{}), writerDone: make(chan struct{}),
	}
}

func (c *goConn) serve(wait bool) {
	go c.writeLoop()
	go c.readLoop()
	if wait {
		c.run()
		return
	}
	go c.run()
}

// run is the executor's loop, until the reader's finish task has run and
// the writer is done.
func (c *goConn) run() {
	c.loop.serveUntilFinished(c.t)
	<-c.writerDone
	c.t.gw.unregister(c.t)
}

func (c *goConn) refuse(frame []byte) {
	_ = c.conn.SetWriteDeadline(time.Now().Add(c.t.gw.cfg.WriteTimeout))
	_, _ = c.conn.Write(frame)
	_ = c.conn.Close()
}

func (c *goConn) wake() {
	select {
	case c.wakeCh <- struct{}{}:
	default:
	}
}

func (c *goConn) cutWrite(grace time.Duration) { _ = c.conn.SetWriteDeadline(time.Now().Add(grace)) }

func (c *goConn) abort() { _ = c.conn.Close() }

func (c *goConn) resumeReading() {
	select {
	case c.space <- struct{}{}:
	default:
	}
}

func (c *goConn) finished() {} // run goes on: the writer, then unregister

func (c *goConn) executor() executor { return c.loop }

// writeLoop is the only goroutine that writes to the connection.
func (c *goConn) writeLoop() {
	t := c.t
	defer close(c.writerDone)
	defer t.gw.recoverPanic("writer", t)
	defer func() { _ = c.conn.Close() }()

	hb := heartbeatV1
	if t.version == protocol.V2 {
		hb = heartbeatV2
	}
	ticker := time.NewTicker(t.gw.cfg.HeartbeatInterval)
	defer ticker.Stop()

	var batch, iov [][]byte
	for {
		select {
		case <-c.wakeCh:
		case <-ticker.C:
			_ = t.out.push(hb, true)
			continue // the push woke us
		case <-c.readerDone:
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
			if err := c.write(iov, len(batch), timeout); err != nil {
				t.closeWith(protocol.CloseGoingAway, "", false)
				return
			}
		}
		clear(batch)
		if closed {
			c.awaitClientClose()
			return
		}
	}
}

// write sends the frames in iov with one vectored write (writev on TCP).
// WriteTo consumes the slice header it is called on; that header is a field
// of the outbound state (a local would escape to the heap on every write),
// and iov keeps the backing array for the next batch.
func (c *goConn) write(iov [][]byte, frames int, timeout time.Duration) error {
	t := c.t
	_ = c.conn.SetWriteDeadline(time.Now().Add(timeout))
	c.iov = iov
	n, err := c.iov.WriteTo(c.conn)
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
func (c *goConn) awaitClientClose() {
	t := c.t
	_ = c.conn.SetReadDeadline(time.Now().Add(t.gw.cfg.CloseGrace))
	timer := time.NewTimer(t.gw.cfg.CloseGrace)
	defer timer.Stop()
	select {
	case <-c.readerDone:
		if c.drain {
			c.lingerRead()
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
func (c *goConn) lingerRead() {
	t := c.t
	if cw, ok := c.conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	limit := max(4*t.gw.cfg.ReadLimit, 1<<20)
	_, _ = io.Copy(io.Discard, io.LimitReader(c.conn, limit))
}

// readLoop reads client frames, validates and decodes them, and queues them
// for Run. It is the only reader of the connection.
func (c *goConn) readLoop() {
	t := c.t
	defer close(c.readerDone)
	defer t.enqueue(task{kind: taskFinish}) // Run ends the connection after the frames queued
	defer t.gw.recoverPanic("reader", t)

	idle := t.gw.cfg.HeartbeatInterval + t.gw.cfg.PongTimeout
	extend := func() { _ = c.conn.SetReadDeadline(time.Now().Add(idle)) }
	c.ws.SetPingHandler(func(data string) error {
		extend()
		return t.out.push(protocol.AppendFrame(nil, protocol.OpPong, []byte(data)), true)
	})
	c.ws.SetPongHandler(func(string) error { extend(); return nil })
	c.ws.SetCloseHandler(func(code int, text string) error {
		if code == websocket.CloseNoStatusReceived {
			code = protocol.CloseNormal
		}
		t.closeWith(code, "", true) // echo the client's close
		return nil
	})
	extend()
	for {
		mt, data, err := c.ws.ReadMessage()
		if err != nil {
			c.readFailed(err)
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
		c.queueInbound(t.decode(mt, data))
	}
}

// readFailed ends the connection after a read error. Gorilla has already
// sent 1002 for protocol violations and 1009 for an over-limit message.
func (c *goConn) readFailed(err error) {
	t := c.t
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		t.closeWith(ce.Code, "", true) // already answered by the close handler
	case errors.Is(err, websocket.ErrReadLimit):
		c.drain = true
		t.gw.stats.protocolErrors.Add(1)
		t.closeWith(protocol.CloseTooBig, "message too big", false)
	case errors.As(err, &ne) && ne.Timeout() && !t.isClosing():
		t.closeWith(protocol.CloseNoPong, "no pong", true)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed), t.isClosing():
		t.closeWith(protocol.CloseGoingAway, "", false)
	default:
		c.drain = true
		t.gw.stats.protocolErrors.Add(1)
		t.closeWith(protocol.CloseProtocolError, "", false)
	}
}

// queueInbound hands fire to Run through the inbox, waiting up to
// ReadTimeout for room; past that the ReadTimeoutHandler gets the frame
// (on this, the reader's goroutine) and it is dropped.
func (c *goConn) queueInbound(fire *FireInfo) {
	t := c.t
	if t.enqueue(task{kind: taskFrame, fire: fire}) {
		return
	}
	timer := time.NewTimer(t.gw.cfg.ReadTimeout)
	defer timer.Stop()
	for {
		select {
		case <-c.space:
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
