package topicmgr

import (
	"bufio"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/firetower-go/firetower/internal/cluster"
)

// session is one client connection: a gateway or an external publisher. Its
// reader goroutine handles the incoming frames; its writer goroutine is the
// only one that writes to the connection, draining a bounded queue of
// complete frames through a buffer that is flushed when the queue is empty,
// so that many small frames cost one system call.
type session struct {
	srv  *Server
	conn net.Conn
	log  *slog.Logger

	// Set by the reader goroutine during the handshake, before the session
	// is visible to other goroutines (through Server.mu).
	role     cluster.Role
	id       string
	peerMax  int      // the longest frame the client accepts
	gw       *gateway // for a gateway; nil for a publisher
	bye      bool     // the client said goodbye
	readerOK bool     // the reader got past the handshake
	// Owned by the reader goroutine: the PUBLISH and COMMAND frames
	// received (and routed) on the session, and the number last confirmed.
	received, confirmed uint64

	wake       chan struct{} // capacity 1: the queue is not empty, or the session is closing
	writerDone chan struct{}

	mu         sync.Mutex // a leaf lock
	queue      [][]byte
	bytes      int
	closeFrame []byte // written after the queue, then the connection is closed
	sayingBye  bool   // a close frame was queued (it may be being written)
	closed     bool   // no more frames are accepted
	version    uint8  // the HELLO's protocol version, which the session speaks
	endCode    cluster.Code
	endWhy     string // why the session ended, for the log; the first reason wins
}

func (s *Server) startSession(conn net.Conn) {
	ss := &session{
		srv:        s,
		conn:       conn,
		log:        s.log.With("remote", conn.RemoteAddr().String()),
		peerMax:    cluster.MinMaxFrame,
		version:    cluster.MinVersion, // until the HELLO says
		wake:       make(chan struct{}, 1),
		writerDone: make(chan struct{}),
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = conn.Close()
		return
	}
	s.sessions[ss] = struct{}{}
	s.wg.Add(2)
	s.mu.Unlock()
	go ss.readLoop()
	go ss.writeLoop()
}

// send queues frame; past the queue's limits the session is cut off. It
// never blocks.
func (ss *session) send(frame []byte) bool {
	cfg := &ss.srv.cfg
	ss.mu.Lock()
	if ss.closed {
		ss.mu.Unlock()
		return false
	}
	if len(ss.queue) >= cfg.QueueFrames || (len(ss.queue) > 0 && ss.bytes+len(frame) > cfg.QueueBytes) {
		ss.closed = true
		clear(ss.queue)
		ss.queue, ss.bytes = ss.queue[:0], 0
		ss.mu.Unlock()
		ss.srv.stats.slowCutoffs.Add(1)
		ss.setEnd(cluster.CodeSlowConsumer, "cut off: outbound queue full")
		ss.srv.log.Warn("session cut off: outbound queue full", "remote", ss.conn.RemoteAddr().String(),
			"frames", cfg.QueueFrames, "bytes", cfg.QueueBytes)
		// The writer may be stuck writing to a peer that does not read:
		// closing the connection ends that write and the reader.
		_ = ss.conn.Close()
		ss.signal()
		return false
	}
	ss.queue = append(ss.queue, frame)
	ss.bytes += len(frame)
	ss.mu.Unlock()
	ss.signal()
	return true
}

func (ss *session) signal() {
	select {
	case ss.wake <- struct{}{}:
	default:
	}
}

// setEnd records why the session ends, unless a reason is already known.
func (ss *session) setEnd(code cluster.Code, why string) {
	ss.mu.Lock()
	if ss.endWhy == "" {
		ss.endCode, ss.endWhy = code, why
	}
	ss.mu.Unlock()
}

// close queues a CLOSE frame after what is queued; the writer sends it and
// closes the connection.
func (ss *session) close(code cluster.Code, reason string) {
	ss.setEnd(code, reason)
	ss.mu.Lock()
	if !ss.closed {
		ss.closed = true
		ss.sayingBye = true
		ss.closeFrame = cluster.AppendClose(nil, cluster.Close{Code: code, Reason: reason})
	}
	ss.mu.Unlock()
	ss.signal()
}

// abort drops the connection at once.
func (ss *session) abort() {
	ss.mu.Lock()
	ss.closed = true
	ss.mu.Unlock()
	_ = ss.conn.Close()
	ss.signal()
}

// finish stops the queue when the reader is done. A CLOSE frame being sent
// is left to the writer, which closes the connection after it (bounded by
// the write timeout); otherwise the connection is closed now.
func (ss *session) finish() {
	ss.mu.Lock()
	ss.closed = true
	bye := ss.sayingBye
	ss.mu.Unlock()
	if !bye {
		_ = ss.conn.Close()
	}
	ss.signal()
}

// writeBuffer is the size of the buffer frames are coalesced in.
const writeBuffer = 64 << 10

// writeLoop is the only goroutine that writes to the connection.
func (ss *session) writeLoop() {
	defer ss.srv.wg.Done()
	defer close(ss.writerDone)
	defer func() { _ = ss.conn.Close() }()
	cfg := &ss.srv.cfg
	bw := bufio.NewWriterSize(ss.conn, writeBuffer)
	ping := time.NewTicker(cfg.Heartbeat)
	defer ping.Stop()
	var nonce uint64
	var batch [][]byte
	for {
		select {
		case <-ss.wake:
		case <-ping.C:
			nonce++
			ss.send(cluster.AppendPing(nil, nonce))
			continue // the send woke us
		}
		ss.mu.Lock()
		batch, ss.queue = ss.queue, batch[:0]
		ss.bytes = 0
		closeFrame, closed, version := ss.closeFrame, ss.closed, ss.version
		ss.closeFrame = nil
		ss.mu.Unlock()
		if closeFrame != nil {
			batch = append(batch, closeFrame)
		}
		if len(batch) > 0 {
			_ = ss.conn.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout))
			for _, f := range batch {
				// Frames are stamped with the newest version; a session
				// of an older one gets them restamped (forwarded frames
				// are shared between sessions and never changed).
				if err := cluster.WriteVersion(bw, f, version); err != nil {
					return
				}
			}
			if err := bw.Flush(); err != nil {
				return
			}
			clear(batch)
		}
		if closed {
			return
		}
	}
}

// readLoop runs the handshake, then handles frames until the connection
// ends; then it detaches the session.
func (ss *session) readLoop() {
	defer ss.srv.wg.Done()
	defer ss.end()
	cfg := &ss.srv.cfg
	r := cluster.NewReader(ss.conn, cfg.MaxFrame)
	_ = ss.conn.SetReadDeadline(time.Now().Add(cfg.HandshakeTimeout))
	f, err := r.ReadFrame()
	if err != nil {
		ss.readFailed(err)
		return
	}
	if !ss.handshake(f) {
		return
	}
	ss.readerOK = true
	idle := HeartbeatMisses * cfg.Heartbeat
	for {
		_ = ss.conn.SetReadDeadline(time.Now().Add(idle))
		f, err := r.ReadFrame()
		if err != nil {
			ss.readFailed(err)
			return
		}
		if !ss.handle(f) {
			return
		}
		if r.Buffered() == 0 {
			ss.confirm()
		}
	}
}

// confirm tells a version-2 client how many of its publishes and commands
// have been received and routed, once per batch of frames read together
// (when the read buffer is empty): one CONFIRM per batch, not per message.
// The client's Publish returns when it is confirmed.
func (ss *session) confirm() {
	if ss.received == ss.confirmed {
		return
	}
	ss.mu.Lock()
	v := ss.version
	ss.mu.Unlock()
	if v < 2 {
		return
	}
	ss.confirmed = ss.received
	ss.send(cluster.AppendConfirm(nil, ss.confirmed))
}

// readFailed ends the session after a read error, telling the peer why when
// the error is the peer's fault.
func (ss *session) readFailed(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, cluster.ErrFrameTooLarge), errors.Is(err, cluster.ErrVersion), errors.Is(err, cluster.ErrMalformed):
		ss.protocolError(cluster.CodeOf(err), err.Error())
	case errors.As(err, &ne) && ne.Timeout():
		ss.close(cluster.CodeTimeout, "no frame within the heartbeat deadline")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		ss.setEnd(cluster.CodeGoingAway, "connection closed")
	default:
		ss.setEnd(cluster.CodeGoingAway, err.Error())
	}
}

func (ss *session) protocolError(code cluster.Code, why string) {
	ss.srv.stats.protoE.Add(1)
	ss.close(code, why)
}

// handshake checks the HELLO and attaches the session.
func (ss *session) handshake(f cluster.Frame) bool {
	s := ss.srv
	if f.Type != cluster.TypeHello {
		ss.protocolError(cluster.CodeProtocolError, fmt.Sprintf("first frame is %v, want HELLO", f.Type))
		return false
	}
	h, err := cluster.ParseHello(f.Body())
	switch {
	case err != nil:
		ss.protocolError(cluster.CodeProtocolError, err.Error())
		return false
	case h.Role != cluster.RoleGateway && h.Role != cluster.RolePublisher:
		ss.protocolError(cluster.CodeProtocolError, fmt.Sprintf("unknown role %d", h.Role))
		return false
	case h.NodeID == "":
		ss.protocolError(cluster.CodeProtocolError, "empty node id")
		return false
	case subtle.ConstantTimeCompare([]byte(h.Token), []byte(s.cfg.Token)) != 1:
		ss.close(cluster.CodeUnauthorized, "wrong cluster token")
		return false
	}
	ss.role, ss.id = h.Role, h.NodeID
	ss.mu.Lock()
	ss.version = f.Version
	ss.mu.Unlock()
	ss.peerMax = max(int(h.MaxFrame), cluster.MinMaxFrame)
	ss.log = ss.log.With("node", h.NodeID, "role", h.Role.String(), "version", f.Version)

	welcome := cluster.AppendWelcome(nil, cluster.Welcome{
		ManagerID: s.cfg.NodeID, Epoch: s.epoch, Lease: s.cfg.Lease,
		Heartbeat: s.cfg.Heartbeat, MaxFrame: uint32(s.cfg.MaxFrame),
	})
	if h.Role == cluster.RolePublisher {
		ss.send(welcome)
		ss.log.Info("session opened")
		return true
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	g := s.tables.gateways[h.NodeID]
	if g == nil {
		g = &gateway{id: h.NodeID, counts: make(map[string]int64)}
		s.tables.gateways[h.NodeID] = g
	}
	if old := g.sess; old != nil {
		// The same gateway connected again before its old connection was
		// seen to die (a restart behind NAT, a half-open socket): the new
		// session wins and takes the state over.
		s.stats.replaced.Add(1)
		old.close(cluster.CodeReplaced, "replaced by a new session of the same node id")
		ss.log.Warn("gateway session replaced by a new one", "old_remote", old.conn.RemoteAddr().String())
	}
	if g.lease != nil {
		g.lease.Stop()
		g.lease = nil
	}
	g.sess = ss
	g.gen++
	g.pending = make(map[string]int64)
	ss.gw = g
	// WELCOME is queued under the lock, so that it precedes any publish
	// routed to the new session.
	ss.send(welcome)
	s.mu.Unlock()
	ss.log.Info("session opened", "session", h.Session)
	return true
}

// handle processes one frame after the handshake; false ends the session.
func (ss *session) handle(f cluster.Frame) bool {
	s := ss.srv
	switch f.Type {
	case cluster.TypePing:
		nonce, err := cluster.ParseNonce(f.Body())
		if err != nil {
			ss.protocolError(cluster.CodeProtocolError, err.Error())
			return false
		}
		ss.send(cluster.AppendPong(nil, nonce))
	case cluster.TypePong:
	case cluster.TypeInterest:
		entries, err := cluster.ParseInterest(f.Body())
		if err != nil || ss.gw == nil {
			ss.protocolError(cluster.CodeProtocolError, fmt.Sprintf("bad INTEREST (role %v): %v", ss.role, err))
			return false
		}
		s.mu.Lock()
		if g := ss.gw; g.sess == ss {
			for _, e := range entries {
				if g.pending != nil {
					if e.Count > 0 {
						g.pending[e.Topic] = e.Count
					} else {
						delete(g.pending, e.Topic)
					}
				} else {
					s.tables.set(g, e.Topic, e.Count)
				}
			}
		}
		s.mu.Unlock()
	case cluster.TypeSync:
		if len(f.Body()) != 0 || ss.gw == nil {
			ss.protocolError(cluster.CodeProtocolError, "bad SYNC")
			return false
		}
		s.mu.Lock()
		if g := ss.gw; g.sess == ss && g.pending != nil {
			s.tables.replace(g, g.pending)
			g.pending = nil
		}
		s.mu.Unlock()
	case cluster.TypePublish, cluster.TypeCommand:
		m, err := cluster.ParseMessage(f)
		if err != nil {
			ss.protocolError(cluster.CodeProtocolError, err.Error())
			return false
		}
		if m.Origin != ss.id {
			ss.protocolError(cluster.CodeProtocolError, fmt.Sprintf("message origin %q is not the session's node id", m.Origin))
			return false
		}
		ss.received++
		if f.Type == cluster.TypePublish {
			s.stats.published.Add(1)
			s.routePublish(ss, m.Topic, f.Raw)
		} else {
			s.stats.commands.Add(1)
			s.routeCommand(ss, f.Raw)
		}
	case cluster.TypeCount:
		req, err := cluster.ParseCount(f.Body())
		if err != nil {
			ss.protocolError(cluster.CodeProtocolError, err.Error())
			return false
		}
		s.mu.RLock()
		n := s.tables.count(req.Topic, ss.gw)
		s.mu.RUnlock()
		ss.send(cluster.AppendCountReply(nil, cluster.CountReply{ReqID: req.ReqID, Count: n}))
	case cluster.TypeClose:
		c, err := cluster.ParseClose(f.Body())
		if err != nil {
			ss.protocolError(cluster.CodeProtocolError, err.Error())
			return false
		}
		ss.bye = c.Code == cluster.CodeBye
		ss.setEnd(c.Code, "closed by the peer: "+c.Reason)
		return false
	case cluster.TypeHello:
		ss.protocolError(cluster.CodeProtocolError, "second HELLO")
		return false
	case cluster.TypeConfirm:
		ss.protocolError(cluster.CodeProtocolError, "CONFIRM from a client")
		return false
	default:
		// A frame type of a later protocol revision: ignored, so that a
		// newer client can send optional frames to an older manager.
	}
	return true
}

// routePublish queues raw to every other connected gateway with
// subscribers of topic.
func (s *Server) routePublish(from *session, topic string, raw []byte) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e := s.tables.topics[topic]
	if e == nil {
		return
	}
	for _, g := range e.gws {
		if g != from.gw && g.sess != nil {
			s.forward(g.sess, raw)
		}
	}
}

// routeCommand queues raw to every other connected gateway.
func (s *Server) routeCommand(from *session, raw []byte) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, g := range s.tables.gateways {
		if g != from.gw && g.sess != nil {
			s.forward(g.sess, raw)
		}
	}
}

func (s *Server) forward(to *session, raw []byte) {
	if len(raw)-cluster.LengthLen > to.peerMax {
		s.stats.tooLarge.Add(1)
		return
	}
	if to.send(raw) {
		s.stats.routed.Add(1)
	}
}

// end detaches the session: a gateway that said goodbye is dropped at once;
// otherwise its counts stay for the lease, unless a new session took over.
func (ss *session) end() {
	s := ss.srv
	ss.finish()
	s.mu.Lock()
	delete(s.sessions, ss)
	if g := ss.gw; g != nil && g.sess == ss {
		g.sess = nil
		g.pending = nil
		g.gen++
		if ss.bye || s.closed {
			s.tables.remove(g)
		} else {
			gen := g.gen
			g.lease = time.AfterFunc(s.cfg.Lease, func() { s.expire(g, gen) })
		}
	}
	s.mu.Unlock()
	ss.mu.Lock()
	code, why := ss.endCode, ss.endWhy
	ss.mu.Unlock()
	ss.log.Info("session ended", "code", code.String(), "reason", why, "goodbye", ss.bye, "handshake_done", ss.readerOK)
}

// expire drops g when its lease ends without a new session.
func (s *Server) expire(g *gateway, gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g.gen != gen || g.sess != nil || s.closed {
		return
	}
	g.lease = nil
	s.tables.remove(g)
	s.stats.leaseExpiries.Add(1)
	s.log.Info("gateway lease expired; its counts are dropped", "node", g.id)
}
