package baseline

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/firetower-go/firetower/protocol"
)

// The floor server: the least work a correct server can do per delivery.
//
// Each connection has one goroutine, which reads frames and, for a publish,
// appends the frame (encoded once per message) to every subscriber's pending
// bytes. After it has handled everything one socket read returned, it writes
// each subscriber it queued for with one plain write system call: k publish
// frames in one read become one write of k frames per subscriber. There is no
// writer goroutine and no bufio.
//
// Lock order: floorServer.mu, then floorConn.pmu. floorConn.wmu is taken
// with no other lock held, and pmu inside it.

const (
	// floorReadBuffer is the initial read buffer of a connection; it grows
	// up to one whole frame of maxMessageSize when a client sends one.
	floorReadBuffer = 4 << 10
	// maxPending bounds the bytes queued for one subscriber while a write to
	// it is in progress: a client that far behind is disconnected.
	maxPending = 1 << 20
	// maxOutBuffer is the largest write buffer a connection keeps for reuse.
	maxOutBuffer = 64 << 10
)

type floorServer struct {
	mu     sync.RWMutex // guards topics
	topics map[string]*subscriberSet

	connsMu sync.Mutex // guards conns and closing
	conns   map[net.Conn]struct{}
	closing bool

	wg sync.WaitGroup // the connections' goroutines
}

// subscriberSet is a topic's subscribers as a slice, cheap to iterate on
// every publish, with an index for removal.
type subscriberSet struct {
	conns []*floorConn
	index map[*floorConn]int
}

// floorConn is one client. Any goroutine may queue bytes for it and write
// them; wmu makes the writes one at a time, in the order they were queued.
type floorConn struct {
	nc   net.Conn
	dead atomic.Bool // no more writes: the connection failed or is closing

	pmu     sync.Mutex // guards pending
	pending []byte     // queued frames; whoever queued into it empty writes it

	wmu         sync.Mutex // serializes writes; guards out and deadlineSet
	out         []byte
	deadlineSet time.Time

	topics map[string]struct{} // the reader goroutine's; changed under floorServer.mu
}

func newFloor() *floorServer {
	return &floorServer{
		topics: make(map[string]*subscriberSet),
		conns:  make(map[net.Conn]struct{}),
	}
}

func (s *floorServer) serve(ctx context.Context, ln net.Listener) error {
	done := make(chan struct{})
	var lnWG sync.WaitGroup
	lnWG.Go(func() {
		select {
		case <-ctx.Done():
		case <-done:
		}
		ln.Close()
	})
	err := s.acceptLoop(ctx, ln)
	close(done)
	lnWG.Wait()

	s.connsMu.Lock()
	s.closing = true
	for nc := range s.conns {
		nc.Close()
	}
	s.connsMu.Unlock()
	s.wg.Wait()
	return err
}

func (s *floorServer) acceptLoop(ctx context.Context, ln net.Listener) error {
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: wait as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			continue
		}
		backoff = 0
		s.connsMu.Lock()
		if s.closing {
			s.connsMu.Unlock()
			nc.Close()
			continue
		}
		s.conns[nc] = struct{}{}
		s.wg.Add(1)
		s.connsMu.Unlock()
		go s.handle(nc)
	}
}

func (s *floorServer) handle(nc net.Conn) {
	defer s.wg.Done()
	defer func() {
		nc.Close()
		s.connsMu.Lock()
		delete(s.conns, nc)
		s.connsMu.Unlock()
	}()
	rest, err := handshake(nc)
	if err != nil {
		return
	}
	c := &floorConn{nc: nc, topics: make(map[string]struct{})}
	defer s.remove(c)
	c.readLoop(s, rest)
}

// floorReader is the state of one connection's reader goroutine.
type floorReader struct {
	s     *floorServer
	c     *floorConn
	dirty []*floorConn // connections this goroutine must write to

	msg       []byte // a fragmented message being assembled
	msgOp     byte
	inMsg     bool
	closeWith []byte // the close frame to send before closing, if any
}

func (c *floorConn) readLoop(s *floorServer, rest []byte) {
	r := &floorReader{s: s, c: c}
	buf := make([]byte, max(floorReadBuffer, len(rest)))
	w := copy(buf, rest)
	start := 0
	for {
		for {
			f, n, need, err := readFrame(buf[start:w], maxMessageSize)
			if err != nil {
				code := closeProtocol
				if errors.Is(err, errTooLarge) {
					code = closeMessageTooBig
				}
				r.closeWith = appendClose(nil, code)
				break
			}
			if n == 0 {
				switch {
				case start == w:
					start, w = 0, 0
				case need > len(buf):
					nb := make([]byte, need)
					w = copy(nb, buf[start:w])
					buf, start = nb, 0
				case need > len(buf)-start:
					w = copy(buf, buf[start:w])
					start = 0
				}
				break
			}
			start += n
			r.frame(f)
			if r.closeWith != nil {
				break
			}
		}
		r.flush()
		if r.closeWith != nil {
			c.closeWith(r.closeWith)
			return
		}
		n, err := c.nc.Read(buf[w:])
		if err != nil {
			return
		}
		w += n
	}
}

// frame handles one client frame.
func (r *floorReader) frame(f wsFrame) {
	switch f.op {
	case opPing:
		r.queue(r.c, protocol.AppendFrame(nil, opPong, f.payload))
	case opPong:
	case opClose:
		if len(f.payload) == 1 {
			r.closeWith = appendClose(nil, closeProtocol)
			return
		}
		// Echo the client's status code, as RFC 6455 asks.
		r.closeWith = protocol.AppendFrame(nil, opClose, f.payload[:min(2, len(f.payload))])
	case opText, opBinary:
		if r.inMsg {
			r.closeWith = appendClose(nil, closeProtocol)
			return
		}
		if f.fin {
			r.message(f.op, f.payload)
			return
		}
		r.inMsg, r.msgOp = true, f.op
		r.msg = append(r.msg[:0], f.payload...)
	case opContinuation:
		if !r.inMsg {
			r.closeWith = appendClose(nil, closeProtocol)
			return
		}
		if len(r.msg)+len(f.payload) > maxMessageSize {
			r.closeWith = appendClose(nil, closeMessageTooBig)
			return
		}
		r.msg = append(r.msg, f.payload...)
		if f.fin {
			r.inMsg = false
			r.message(r.msgOp, r.msg)
		}
	}
}

// message handles one whole client message (handleMessage).
func (r *floorReader) message(op byte, p []byte) { handleMessage(r, op == opText, p) }

func (r *floorReader) subscribe(topics []string)   { r.s.subscribe(r.c, topics) }
func (r *floorReader) unsubscribe(topics []string) { r.s.unsubscribe(r.c, topics) }

// publish queues the frame of data, encoded once, for every subscriber of
// topic.
func (r *floorReader) publish(topic string, data []byte) {
	frame := protocol.AppendFrame(make([]byte, 0, len(data)+10), opText, data)
	r.s.mu.RLock()
	if set := r.s.topics[topic]; set != nil {
		for _, sub := range set.conns {
			r.queue(sub, frame)
		}
	}
	r.s.mu.RUnlock()
}

// queue appends b to c's pending bytes and remembers to write them if no
// other goroutine has to already.
func (r *floorReader) queue(c *floorConn, b []byte) {
	if c.enqueue(b) {
		r.dirty = append(r.dirty, c)
	}
}

// flush writes the pending bytes of every connection this goroutine queued
// for: one write each.
func (r *floorReader) flush() {
	if len(r.dirty) == 0 {
		return
	}
	now := time.Now()
	for i, c := range r.dirty {
		c.flush(now)
		r.dirty[i] = nil
	}
	r.dirty = r.dirty[:0]
}

// enqueue appends b to the pending bytes. It reports whether they were
// empty: then the caller is the one that must flush them. It disconnects a
// client that is maxPending behind.
func (c *floorConn) enqueue(b []byte) (mustFlush bool) {
	if c.dead.Load() {
		return false
	}
	c.pmu.Lock()
	if len(c.pending)+len(b) > maxPending {
		c.dead.Store(true)
		c.pending = nil
		c.pmu.Unlock()
		c.nc.Close()
		return false
	}
	first := len(c.pending) == 0
	c.pending = append(c.pending, b...)
	c.pmu.Unlock()
	return first
}

// flush writes everything pending with one write. now is the caller's
// clock, read once per batch.
func (c *floorConn) flush(now time.Time) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.pmu.Lock()
	c.out, c.pending = c.pending, c.out[:0]
	c.pmu.Unlock()
	if len(c.out) > 0 && !c.dead.Load() {
		// Renewing the deadline on every write would cost a timer update
		// per write; renewing it every writeWait/2 still bounds every write
		// by at least writeWait/2.
		if now.Sub(c.deadlineSet) > writeWait/2 {
			c.nc.SetWriteDeadline(now.Add(writeWait))
			c.deadlineSet = now
		}
		if _, err := c.nc.Write(c.out); err != nil {
			c.dead.Store(true)
			c.nc.Close()
		}
	}
	if cap(c.out) > maxOutBuffer {
		c.out = nil
	}
	c.out = c.out[:0]
}

// closeWith writes a close frame, best effort, and closes the connection.
func (c *floorConn) closeWith(frame []byte) {
	if c.enqueue(frame) {
		c.flush(time.Now())
	}
	c.dead.Store(true)
	c.nc.Close()
}

func (s *floorServer) subscribe(c *floorConn, topics []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range topics {
		if _, ok := c.topics[t]; ok {
			continue
		}
		if len(c.topics) >= maxSubscriptions {
			return
		}
		c.topics[t] = struct{}{}
		set := s.topics[t]
		if set == nil {
			set = &subscriberSet{index: make(map[*floorConn]int)}
			s.topics[t] = set
		}
		set.index[c] = len(set.conns)
		set.conns = append(set.conns, c)
	}
}

func (s *floorServer) unsubscribe(c *floorConn, topics []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range topics {
		s.removeLocked(c, t)
	}
}

// remove takes a closed connection out of all of its topics.
func (s *floorServer) remove(c *floorConn) {
	c.dead.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	for t := range c.topics {
		s.removeLocked(c, t)
	}
}

func (s *floorServer) removeLocked(c *floorConn, t string) {
	if _, ok := c.topics[t]; !ok {
		return
	}
	delete(c.topics, t)
	set := s.topics[t]
	i := set.index[c]
	last := len(set.conns) - 1
	set.conns[i] = set.conns[last]
	set.index[set.conns[i]] = i
	set.conns[last] = nil
	set.conns = set.conns[:last]
	delete(set.index, c)
	if len(set.conns) == 0 {
		delete(s.topics, t)
	}
}

func (s *floorServer) subscribers(topic string) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if set := s.topics[topic]; set != nil {
		return len(set.conns)
	}
	return 0
}
