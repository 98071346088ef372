//go:build linux

package gateway

import (
	"encoding/binary"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/firetower-go/firetower/protocol"
	"github.com/gorilla/websocket"
	"golang.org/x/sys/unix"
)

// The netpoll transport (Config.Transport = TransportNetpoll).
//
// BuildTower takes the socket of the upgraded connection away from gorilla
// and from Go's own poller (a duplicate descriptor; the original is closed)
// and gives it to one of the gateway's pollers: a goroutine per CPU that
// waits in epoll_wait for readable sockets and for towers with output.
//
//   - Reading: a readable socket is read into the poller's buffer; complete
//     frames are parsed and decoded there and put in the connection's
//     inbox, which the gateway's workers run (inbox.go, workers.go): no
//     application code runs on a poller. Only the bytes of an incomplete
//     frame are kept by the connection, until the rest arrives. An idle
//     connection holds no goroutine and no buffer. When a connection's
//     inbox is full, its poller stops reading it (TCP pushes back on the
//     client) until the workers make room; a frame that waits longer than
//     ReadTimeout goes to the ReadTimeoutHandler, as on the goroutine
//     transport.
//   - Writing: the fan-out appends frames to a tower's bounded queue (the
//     same queue and slow-consumer policy as the goroutine transport) and
//     puts the tower on its poller's list, once until the poller takes the
//     queue; the poller writes each listed tower's whole queue with one
//     write or writev. A poller that is busy finds the list when it is done
//     with its events, so a burst of messages costs one system call per
//     connection, not one per message, and no goroutine hand-off. A socket
//     that takes only part is watched for EPOLLOUT; its queue waits
//     meanwhile (and overflows into the slow-consumer policy).
//   - Time: a poller walks its connections every quarter of the shorter of
//     HeartbeatInterval and PongTimeout (at most 1 s) for the heartbeats
//     and the idle timeout; the few that are closing or blocked on a full
//     socket are on a watch list, checked every quarter of the shorter of
//     CloseGrace and WriteTimeout, for closes past their grace and writes
//     stuck past WriteTimeout.

const netpollSupported = true

// npConn is a tower's netpoll state. Apart from abort, started and the
// fields set before Start, only its poller's goroutine touches it.
type npConn struct {
	p    *poller
	t    *FireTower
	fd   int
	done chan struct{} // closed when the tower has ended; made by serve for Run only, which waits for it

	started   atomic.Bool // Start has run; the poller may serve the socket
	abortReq  atomic.Bool // drop the connection without writing (Shutdown's deadline)
	resumeReq atomic.Bool // the inbox has room again: the poller reads on

	registered bool   // in the poller's epoll set
	rbuf       []byte // an incomplete frame kept for the next read
	frag       []byte // a fragmented message being assembled
	fragOp     byte   // its opcode; 0 when none
	wbuf       []byte // what the socket did not take; EPOLLOUT is armed while non-empty
	closeInBuf bool   // wbuf ends with the close frame
	blockedAt  int64  // when wbuf became non-empty (unix ns)
	lastRead   int64  // when the client last sent anything
	lastBeat   int64  // when the last heartbeat was queued
	closingAt  int64  // when the poller first saw the tower closed
	closeAt    int64  // when the close frame was written
	closeSent  bool
	peerClosed bool  // the client's close frame or end of stream was seen
	broken     bool  // stop parsing: the client's data is discarded from here
	drain      bool  // the close frame goes out with a lingering close (see goConn.lingerRead)
	discarded  int64 // bytes thrown away after a protocol error (bounded)
	gone       bool  // torn down
	// held is a decoded frame that found the inbox full: reading stops
	// (EPOLLIN off) until the workers make room, or until ReadTimeout has
	// passed since heldAt and the frame goes to the ReadTimeoutHandler.
	held   *FireInfo
	heldAt int64
}

// poller is one epoll loop; a gateway has one per CPU, started with the
// first netpoll connection.
type poller struct {
	g    *Gateway
	epfd int
	efd  int // eventfd: wakes epoll_wait for the list or for stop

	mu    sync.Mutex   // a leaf lock
	list  []*FireTower // towers with output or a state change
	spare []*FireTower
	// awake is set while the poller is handling events or a wake-up is
	// pending: schedule then needs no eventfd write, the poller takes the
	// list before it sleeps again.
	awake atomic.Bool
	stop  atomic.Bool
	done  chan struct{}

	// Only the poller's goroutine uses these.
	now    int64 // unix ns, read once per round: the timers need no better
	writes int64 // counters added to the gateway's once per round: atomic adds
	frames int64 // on a cache line both pollers write would cost more than
	bytes  int64 // the counting
	conns  map[int32]*FireTower
	buf    []byte
	batch  [][]byte
	iov    []unix.Iovec
	evs    []unix.EpollEvent
	sweep  time.Duration // every connection: heartbeats, idle timeouts
	// watch holds the connections that are closing or whose socket is
	// full: their deadlines are checked every watchEvery, without a walk
	// over every connection.
	watch      map[*FireTower]struct{}
	watchEvery time.Duration
}

// detach takes t's socket from ws for the netpoll transport; nil if it
// cannot.
func (g *Gateway) detach(t *FireTower, ws *websocket.Conn) transport {
	conn := ws.NetConn()
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil // TLS and the like: stay on goroutines
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	fd := -1
	if cerr := raw.Control(func(s uintptr) {
		fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); cerr != nil || err != nil || fd < 0 {
		return nil
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return nil
	}
	p, err := g.pollerFor(fd)
	if err != nil {
		g.log.Error("netpoll: cannot start a poller; this connection stays on goroutines", "err", err)
		_ = unix.Close(fd)
		return nil
	}
	_ = conn.Close() // the duplicate keeps the socket open
	t.np = &npConn{p: p, t: t, fd: fd}
	t.out.wakeOnce = true
	return t.np
}

// startPollers starts the netpoll transport's pollers; New calls it. The
// list does not change afterwards, so the pollers read it without a lock.
func (g *Gateway) startPollers() error {
	n := g.cfg.Pollers
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	for range n {
		p, err := newPoller(g)
		if err != nil {
			for _, p := range g.pollers {
				p.closeFDs()
			}
			g.pollers = nil
			return err
		}
		g.pollers = append(g.pollers, p)
	}
	for _, p := range g.pollers {
		go p.loop()
	}
	return nil
}

// pollerFor returns the poller of fd; it fails once the pollers stopped.
func (g *Gateway) pollerFor(fd int) (*poller, error) {
	if len(g.pollers) == 0 || g.pollStopped.Load() {
		return nil, ErrGatewayClosed
	}
	return g.pollers[fd%len(g.pollers)], nil
}

// stopPollers ends the pollers; Shutdown calls it when no tower is left.
func (g *Gateway) stopPollers() {
	if g.pollStopped.Swap(true) {
		return
	}
	for _, p := range g.pollers {
		p.shutdown()
	}
}

func newPoller(g *Gateway) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(efd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &ev); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(efd)
		return nil, err
	}
	cfg := &g.cfg
	clamp := func(d time.Duration) time.Duration { return min(max(d/4, 5*time.Millisecond), time.Second) }
	p := &poller{
		g: g, epfd: epfd, efd: efd,
		done:       make(chan struct{}),
		conns:      make(map[int32]*FireTower),
		buf:        make([]byte, int(cfg.ReadLimit)+64<<10),
		evs:        make([]unix.EpollEvent, 256),
		sweep:      clamp(min(cfg.HeartbeatInterval, cfg.PongTimeout)),
		watch:      make(map[*FireTower]struct{}),
		watchEvery: clamp(min(cfg.CloseGrace, cfg.WriteTimeout)),
	}
	p.awake.Store(true) // until the loop first sleeps
	return p, nil
}

func (p *poller) closeFDs() {
	_ = unix.Close(p.epfd)
	_ = unix.Close(p.efd)
}

// schedule puts t on the poller's list and wakes the poller if it sleeps.
func (p *poller) schedule(t *FireTower) {
	p.mu.Lock()
	p.list = append(p.list, t)
	p.mu.Unlock()
	if p.awake.CompareAndSwap(false, true) {
		p.wake()
	}
}

func (p *poller) wake() {
	var one = [8]byte{1}
	for {
		_, err := unix.Write(p.efd, one[:])
		if err != unix.EINTR {
			return // EAGAIN: the counter is full, the poller will wake anyway
		}
	}
}

func (p *poller) shutdown() {
	p.stop.Store(true)
	p.wake()
	<-p.done
}

func (p *poller) loop() {
	defer close(p.done)
	defer p.closeFDs()
	nextSweep, nextWatch := time.Now().Add(p.sweep), time.Now().Add(p.watchEvery)
	p.now = time.Now().UnixNano()
	for {
		// Take the list before sleeping; schedule wakes us from here on.
		for {
			p.awake.Store(false)
			p.mu.Lock()
			list := p.list
			p.list, p.spare = p.spare[:0], nil
			p.mu.Unlock()
			if len(list) == 0 {
				p.spare = list
				break
			}
			p.awake.Store(true)
			for i, t := range list {
				p.service(t)
				list[i] = nil
			}
			p.spare = list[:0]
		}
		p.countOut()
		if p.stop.Load() {
			return
		}
		wait := time.Until(nextSweep)
		if len(p.watch) > 0 {
			wait = min(wait, time.Until(nextWatch))
		}
		n, err := unix.EpollWait(p.epfd, p.evs, int(max(wait, 0)/time.Millisecond)+1)
		p.awake.Store(true)
		p.now = time.Now().UnixNano()
		if err != nil && err != unix.EINTR {
			p.g.log.Error("netpoll: epoll_wait failed", "err", err)
			time.Sleep(10 * time.Millisecond) // do not spin on a broken epoll
			continue
		}
		p.events(max(n, 0))
		now := time.Now()
		if !now.Before(nextWatch) {
			p.checkWatch(now.UnixNano())
			nextWatch = now.Add(p.watchEvery)
		}
		if !now.Before(nextSweep) {
			p.sweepAll(now)
			nextSweep = now.Add(p.sweep)
		}
	}
}

// events handles the first n events of the last epoll_wait.
func (p *poller) events(n int) {
	for i := range n {
		ev := &p.evs[i]
		if int(ev.Fd) == p.efd {
			var b [8]byte
			_, _ = unix.Read(p.efd, b[:])
			continue
		}
		t := p.conns[ev.Fd]
		if t == nil {
			continue
		}
		p.event(t, ev.Events)
	}
}

// countOut adds the round's output to the gateway's counters.
func (p *poller) countOut() {
	if p.writes == 0 {
		return
	}
	st := &p.g.stats
	st.writes.Add(p.writes)
	st.framesOut.Add(p.frames)
	st.bytesOut.Add(p.bytes)
	p.writes, p.frames, p.bytes = 0, 0, 0
}

// event handles one epoll event of t.
func (p *poller) event(t *FireTower, events uint32) {
	defer p.g.recoverPanic("netpoll", t)
	np := t.np
	if events&unix.EPOLLOUT != 0 && len(np.wbuf) > 0 {
		p.writeBuffered(t)
	}
	switch {
	case np.gone:
	case np.held != nil:
		// Not reading: only a hang-up or an error is reported, and it
		// would be reported again and again.
		if events&(unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			np.peerClosed = true
			t.closeWith(protocol.CloseGoingAway, "", false)
			p.teardown(t)
		}
	case events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0:
		p.read(t)
	}
}

// service handles t after it was scheduled: registration, output, abort.
func (p *poller) service(t *FireTower) {
	defer p.g.recoverPanic("netpoll", t)
	np := t.np
	if np.gone {
		return
	}
	if !np.started.Load() {
		t.out.mu.Lock()
		t.out.scheduled = false // Start schedules it again
		t.out.mu.Unlock()
		return
	}
	if np.abortReq.Load() {
		p.teardown(t)
		return
	}
	if !np.registered {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(np.fd)}
		if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, np.fd, &ev); err != nil {
			p.g.log.Error("netpoll: epoll_ctl add failed", "err", err)
			t.closeWith(protocol.CloseInternal, "", false)
			p.teardown(t)
			return
		}
		np.registered = true
		p.conns[int32(np.fd)] = t
		np.lastRead, np.lastBeat = p.now, p.now
	}
	if np.resumeReq.Swap(false) {
		p.resumeRead(t)
	}
	p.flush(t)
}

// resumeRead queues the held frame and handles the rest of what was read.
func (p *poller) resumeRead(t *FireTower) {
	np := t.np
	if np.held == nil || np.gone {
		return
	}
	if !t.enqueue(task{kind: taskFrame, fire: np.held}) {
		return // full again: the workers call resume once more
	}
	np.held, np.heldAt = nil, 0
	p.arm(t)
	if len(np.rbuf) > 0 {
		p.consume(t, p.buf[:copy(p.buf, np.rbuf)], 0)
	}
}

// flush writes t's queue (and close frame) with one system call, unless
// the socket still holds back earlier bytes.
func (p *poller) flush(t *FireTower) {
	np, o := t.np, &t.out
	if len(np.wbuf) > 0 {
		o.mu.Lock()
		o.scheduled = false // EPOLLOUT brings us back
		closed := o.closed
		o.mu.Unlock()
		if closed && np.closingAt == 0 {
			np.closingAt = p.now
			p.watch[t] = struct{}{}
		}
		return
	}
	o.mu.Lock()
	o.scheduled = false
	frames := append(p.batch[:0], o.queue...)
	clear(o.queue)
	if cap(o.queue) > 64 {
		o.queue = nil // a burst's array is not kept by an idle connection
	} else {
		o.queue = o.queue[:0]
	}
	o.bytes = 0
	o.overflowSince = time.Time{}
	closeFrame, closed := o.closeFrame, o.closed
	o.closeFrame = nil
	o.mu.Unlock()
	n := len(frames)
	if closeFrame != nil {
		frames = append(frames, closeFrame)
	}
	now := p.now
	if closed && np.closingAt == 0 {
		np.closingAt = now
		p.watch[t] = struct{}{}
	}
	if len(frames) > 0 {
		ok := p.write(t, frames, n, closeFrame != nil, now)
		clear(frames)
		p.batch = frames[:0]
		if !ok {
			return
		}
	}
	p.afterWrite(t, closed, now)
}

// afterWrite moves a closing tower on once its output is out: no close
// frame wanted, or the client has already closed: tear down; the close
// frame sent: half-close after a protocol error, then wait for the client.
func (p *poller) afterWrite(t *FireTower, closed bool, now int64) {
	np := t.np
	if !closed || len(np.wbuf) > 0 || np.gone {
		return
	}
	if np.closeSent {
		if np.peerClosed {
			p.teardown(t)
		}
		return
	}
	t.out.mu.Lock()
	pending := t.out.closeFrame != nil
	t.out.mu.Unlock()
	if !pending {
		p.teardown(t) // closed without a close frame
	}
}

// write sends frames with one write or writev. n of them count as frames
// out (the rest is the close frame). It reports false if the tower was torn
// down.
func (p *poller) write(t *FireTower, frames [][]byte, n int, withClose bool, now int64) bool {
	np := t.np
	total := 0
	for _, f := range frames {
		total += len(f)
	}
	written, err := p.writeFrames(np.fd, frames)
	p.writes++
	p.bytes += int64(written)
	if err != nil && err != unix.EAGAIN {
		t.closeWith(protocol.CloseGoingAway, "", false)
		p.teardown(t)
		return false
	}
	p.frames += int64(n)
	if written < total {
		// Keep the rest; the queue waits behind it.
		rest := make([]byte, 0, total-written)
		skip := written
		for _, f := range frames {
			if skip >= len(f) {
				skip -= len(f)
				continue
			}
			rest = append(rest, f[skip:]...)
			skip = 0
		}
		np.wbuf, np.closeInBuf, np.blockedAt = rest, withClose, now
		p.watch[t] = struct{}{}
		p.arm(t)
		return true
	}
	if withClose {
		p.closeWritten(t, now)
	}
	return true
}

// writeFrames writes frames to fd: one write(2) for one frame, writev(2)
// for more, up to IOV_MAX at a time.
func (p *poller) writeFrames(fd int, frames [][]byte) (int, error) {
	if len(frames) == 1 {
		return ioRetry(func() (int, error) { return unix.Write(fd, frames[0]) })
	}
	written := 0
	for len(frames) > 0 {
		k := min(len(frames), 1024)
		p.iov = p.iov[:0]
		want := 0
		for _, f := range frames[:k] {
			if len(f) == 0 {
				continue
			}
			v := unix.Iovec{Base: &f[0]}
			v.SetLen(len(f))
			p.iov = append(p.iov, v)
			want += len(f)
		}
		if len(p.iov) == 0 {
			frames = frames[k:]
			continue
		}
		m, err := ioRetry(func() (int, error) {
			r, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&p.iov[0])), uintptr(len(p.iov)))
			if e != 0 {
				return 0, e
			}
			return int(r), nil
		})
		clear(p.iov) // no pointers kept into the frames
		written += max(m, 0)
		if err != nil || m < want {
			return written, err
		}
		frames = frames[k:]
	}
	return written, nil
}

func ioRetry(f func() (int, error)) (int, error) {
	for {
		n, err := f()
		if err == unix.EINTR {
			continue
		}
		if n < 0 {
			n = 0
		}
		return n, err
	}
}

// writeBuffered continues a write the socket did not take whole.
func (p *poller) writeBuffered(t *FireTower) {
	np := t.np
	m, err := ioRetry(func() (int, error) { return unix.Write(np.fd, np.wbuf) })
	p.writes++
	p.bytes += int64(m)
	if err != nil && err != unix.EAGAIN {
		t.closeWith(protocol.CloseGoingAway, "", false)
		p.teardown(t)
		return
	}
	if m < len(np.wbuf) {
		np.wbuf = np.wbuf[m:]
		return
	}
	now := p.now
	np.wbuf, np.blockedAt = nil, 0
	p.arm(t)
	if np.closeInBuf {
		np.closeInBuf = false
		p.closeWritten(t, now)
	}
	p.flush(t) // what queued up meanwhile
}

// arm sets the events t waits for: input unless a frame is held (the
// inbox is full), output while the socket holds back bytes.
func (p *poller) arm(t *FireTower) {
	np := t.np
	ev := unix.EpollEvent{Fd: int32(np.fd)}
	if np.held == nil {
		ev.Events |= unix.EPOLLIN | unix.EPOLLRDHUP
	}
	if len(np.wbuf) > 0 {
		ev.Events |= unix.EPOLLOUT
	}
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, np.fd, &ev)
}

// closeWritten records that the close frame went out.
func (p *poller) closeWritten(t *FireTower, now int64) {
	np := t.np
	np.closeSent, np.closeAt = true, now
	if np.drain {
		// The lingering close (see lingerRead): FIN now, then read and
		// discard until the client closes or the grace ends.
		_ = unix.Shutdown(np.fd, unix.SHUT_WR)
	}
	if np.peerClosed {
		p.teardown(t)
	}
}

// read reads what the socket has and handles the complete frames.
func (p *poller) read(t *FireTower) {
	np := t.np
	buf := p.buf
	n0 := copy(buf, np.rbuf)
	n, err := ioRetry(func() (int, error) { return unix.Read(np.fd, buf[n0:]) })
	if err == unix.EAGAIN {
		return
	}
	if err != nil || n == 0 {
		// The client is gone (or reset): nothing more can be written.
		np.peerClosed = true
		t.closeWith(protocol.CloseGoingAway, "", false)
		p.teardown(t)
		return
	}
	np.lastRead = p.now
	p.consume(t, buf[:n0+n], n)
}

// consume handles data: the bytes of an incomplete frame kept from the
// last read followed by the n bytes just read. The complete frames are
// handled; what is left of an incomplete one is kept in np.rbuf.
func (p *poller) consume(t *FireTower, data []byte, n int) {
	np := t.np
	if np.broken {
		np.rbuf = nil
		np.discarded += int64(n)
		if np.discarded > max(4*p.g.cfg.ReadLimit, 1<<20) {
			p.teardown(t)
		}
		return
	}
	used := p.parse(t, data)
	if np.gone {
		return
	}
	if rest := data[used:]; len(rest) > 0 && !np.broken {
		np.rbuf = append(np.rbuf[:0], rest...)
	} else {
		np.rbuf = nil
	}
}

// parse handles the complete frames at the start of data and returns how
// many bytes they took.
func (p *poller) parse(t *FireTower, data []byte) int {
	np := t.np
	limit := p.g.cfg.ReadLimit
	used := 0
	for !np.gone && !np.broken && np.held == nil {
		b := data[used:]
		h, ok, err := protocol.ParseClientFrameHeader(b)
		switch {
		case err != nil:
			p.protocolError(t)
			return used
		case !ok:
			return used
		case h.Op < protocol.OpClose && int64(len(np.frag))+h.Len > limit:
			p.tooBig(t)
			return used
		case int64(len(b)) < int64(h.Size)+h.Len:
			return used
		}
		payload := b[h.Size : h.Size+int(h.Len)]
		used += h.Size + int(h.Len)
		protocol.MaskBytes(h.Key, payload)
		p.frame(t, h.Fin, h.Op, payload)
	}
	return used
}

// frame handles one client frame.
func (p *poller) frame(t *FireTower, fin bool, op byte, payload []byte) {
	np := t.np
	switch op {
	case protocol.OpPing:
		_ = t.out.push(protocol.AppendFrame(nil, protocol.OpPong, payload), true)
		return
	case protocol.OpPong:
		return
	case protocol.OpClose:
		p.clientClose(t, payload)
		return
	case protocol.OpContinuation:
		if np.fragOp == 0 {
			p.protocolError(t)
			return
		}
		np.frag = append(np.frag, payload...)
		if !fin {
			return
		}
		op, payload = np.fragOp, np.frag
		np.frag, np.fragOp = nil, 0
	default: // text, binary
		if np.fragOp != 0 {
			p.protocolError(t)
			return
		}
		if !fin {
			np.frag, np.fragOp = append([]byte(nil), payload...), op
			return
		}
	}
	p.message(t, op, payload)
}

// message is readLoop's work for one client message, then Run's.
func (p *poller) message(t *FireTower, op byte, data []byte) {
	g := p.g
	g.stats.framesIn.Add(1)
	g.stats.bytesIn.Add(int64(len(data)))
	if t.isClosing() {
		return // read until the client's close or the grace ends
	}
	mt := websocket.BinaryMessage
	if op == protocol.OpText {
		mt = websocket.TextMessage
		if !utf8.Valid(data) {
			g.stats.protocolErrors.Add(1)
			t.closeWith(protocol.CloseInvalidPayload, "invalid UTF-8", true)
			return
		}
	}
	fire := t.decode(mt, data)
	if !t.enqueue(task{kind: taskFrame, fire: fire}) {
		t.np.held, t.np.heldAt = fire, p.now
		p.watch[t] = struct{}{}
		p.arm(t)
	}
}

// clientClose handles the client's close frame: echo it (as gorilla's
// default handler does), or refuse a malformed one with 1002.
func (p *poller) clientClose(t *FireTower, payload []byte) {
	code := protocol.CloseNormal // no status: answered with 1000
	switch {
	case len(payload) == 1:
		p.protocolError(t)
		return
	case len(payload) >= 2:
		code = int(binary.BigEndian.Uint16(payload))
		if !validCloseCode(code) || !utf8.Valid(payload[2:]) {
			p.protocolError(t)
			return
		}
	}
	t.np.peerClosed = true
	t.closeWith(code, "", true)
	if t.np.closeSent {
		p.teardown(t) // we had closed first: this is the answer
	}
}

// validCloseCode reports whether a client may send code (RFC 6455 7.4).
func validCloseCode(code int) bool {
	switch {
	case code >= 3000 && code <= 4999:
		return true
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1011:
		return true
	}
	return false
}

// protocolError closes with 1002 and discards the client's data from here.
func (p *poller) protocolError(t *FireTower) {
	t.np.broken = true
	t.np.drain = true
	p.g.stats.protocolErrors.Add(1)
	t.closeWith(protocol.CloseProtocolError, "", true)
}

// tooBig closes with 1009, as gorilla does past the read limit.
func (p *poller) tooBig(t *FireTower) {
	t.np.broken = true
	t.np.drain = true
	p.g.stats.protocolErrors.Add(1)
	t.closeWith(protocol.CloseTooBig, "message too big", true)
}

// sweepAll sends the heartbeats that are due and closes the connections
// silent for longer than HeartbeatInterval+PongTimeout.
func (p *poller) sweepAll(now time.Time) {
	cfg := &p.g.cfg
	ns := now.UnixNano()
	idle := int64(cfg.HeartbeatInterval + cfg.PongTimeout)
	for _, t := range p.conns {
		p.sweepOne(t, ns, idle, cfg)
	}
}

func (p *poller) sweepOne(t *FireTower, now, idle int64, cfg *Config) {
	defer p.g.recoverPanic("netpoll", t)
	np := t.np
	if np.held != nil {
		np.lastRead = now // not silent: held back by its own backlog
	}
	switch {
	case np.gone, np.closingAt != 0, t.isClosing():
	case now-np.lastRead > idle:
		t.closeWith(protocol.CloseNoPong, "no pong", true)
	case now-np.lastBeat >= int64(cfg.HeartbeatInterval):
		np.lastBeat = now
		hb := heartbeatV1
		if t.version == protocol.V2 {
			hb = heartbeatV2
		}
		_ = t.out.push(hb, true)
	}
}

// checkWatch applies the deadlines of the closing and blocked connections.
func (p *poller) checkWatch(now int64) {
	cfg := &p.g.cfg
	for t := range p.watch {
		np := t.np
		switch {
		case np.gone:
		case np.closeSent && now-np.closeAt > int64(cfg.CloseGrace):
			p.teardown(t) // the client did not answer the close frame
		case np.closingAt != 0 && now-np.closingAt > int64(cfg.WriteTimeout+2*cfg.CloseGrace):
			p.teardown(t) // the close frame could not be written
		case len(np.wbuf) > 0 && now-np.blockedAt > int64(cfg.WriteTimeout):
			t.closeWith(protocol.CloseGoingAway, "", false)
			p.teardown(t) // a write stuck for WriteTimeout
		case np.held != nil && now-np.heldAt > int64(cfg.ReadTimeout):
			p.readTimeout(t)
			continue
		case np.closingAt != 0 || len(np.wbuf) > 0 || np.held != nil:
			continue // still waiting
		}
		delete(p.watch, t)
	}
}

// teardown closes t's socket and ends the tower: its subscriptions go, the
// end-of-connection handlers run (from the inbox, on a worker) and Run returns.
func (p *poller) teardown(t *FireTower) {
	np := t.np
	if np.gone {
		return
	}
	np.gone = true
	delete(p.watch, t)
	if np.registered {
		_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, np.fd, nil)
		delete(p.conns, int32(np.fd))
	}
	_ = unix.Close(np.fd)
	np.rbuf, np.wbuf, np.frag, np.held = nil, nil, nil, nil
	t.out.mu.Lock()
	first := t.out.closeLocked(protocol.CloseGoingAway, "", false, true)
	t.out.queue = nil
	t.out.mu.Unlock()
	if first {
		close(t.closing)
	}
	t.stopExpiry()
	// The end-of-connection handlers run on a worker, after the frames
	// already in the inbox; then the tower leaves the gateway (ended).
	t.enqueue(task{kind: taskFinish})
}

// readTimeout gives the held frame to the ReadTimeoutHandler, on a
// goroutine of its own (the handler is application code), and reads on.
func (p *poller) readTimeout(t *FireTower) {
	np := t.np
	fire := np.held
	np.held, np.heldAt = nil, 0
	p.g.goTracked("ReadTimeoutHandler", t, func() { t.readTimedOut(fire) })
	p.arm(t)
	if len(np.rbuf) > 0 {
		p.consume(t, p.buf[:copy(p.buf, np.rbuf)], 0)
	}
}

// serve hands the socket to the poller (transport.serve); with wait it
// returns when the tower has ended.
func (np *npConn) serve(wait bool) {
	t := np.t
	if wait {
		np.done = make(chan struct{}) // before the poller can see the tower
	}
	np.started.Store(true)
	t.out.mu.Lock()
	t.out.scheduled = true
	t.out.mu.Unlock()
	np.p.schedule(t)
	if wait {
		<-np.done
	}
}

// refuse writes frame and closes the socket of a tower never started.
func (np *npConn) refuse(frame []byte) {
	_, _ = unix.Write(np.fd, frame) // a fresh socket takes a few bytes
	_ = unix.Close(np.fd)
	np.gone = true
}

func (np *npConn) wake() { np.p.schedule(np.t) }

// cutWrite: the poller counts the close grace from the close itself.
func (np *npConn) cutWrite(time.Duration) {}

func (np *npConn) abort() {
	np.abortReq.Store(true)
	np.p.schedule(np.t)
}

func (np *npConn) resumeReading() {
	np.resumeReq.Store(true)
	np.p.schedule(np.t)
}

// finished is the tower's last step after its finish task ran: it leaves
// the gateway and Run returns.
func (np *npConn) finished() {
	np.t.gw.unregister(np.t)
	if np.done != nil {
		close(np.done)
	}
}

func (np *npConn) executor() executor { return np.p.g.workers }
