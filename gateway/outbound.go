package gateway

import (
	"sync"
	"time"

	"github.com/firetower-go/firetower/internal/hub"
	"github.com/firetower-go/firetower/protocol"
)

// outbound is a connection's bounded queue of complete websocket frames and
// the state of its one writer. Producers (the fan-out, ToSelf, replies)
// append under mu and wake the writer; the writer swaps the whole queue out
// and writes it with one vectored write, so many queued frames cost one
// system call.
type outbound struct {
	t *FireTower
	// wakeOnce is set by a transport whose writer needs one wake until it
	// takes the queue (netpoll: the tower goes on its poller's list once).
	wakeOnce bool

	mu            sync.Mutex // a leaf lock
	queue         [][]byte
	bytes         int
	overflowSince time.Time // when the current overflow began; zero if none
	closeFrame    []byte    // set by closeWith; written after the queue
	closed        bool      // no more frames are accepted
	scheduled     bool      // wakeOnce: woken, and the queue not taken yet
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
			o.t.tr.cutWrite(cfg.CloseGrace)
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
// once o.mu is released.
func (o *outbound) wakeLocked() bool {
	if !o.wakeOnce {
		return true
	}
	if o.scheduled {
		return false
	}
	o.scheduled = true
	return true
}

// wakeUp wakes the writer: the tower's writer goroutine, or its poller.
func (o *outbound) wakeUp() { o.t.tr.wake() }

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
// It reports whether this call closed it (false: it was closing already).
func (t *FireTower) closeWith(code int, reason string, sendFrame bool) bool {
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
	return first
}

// abort drops the TCP connection at once (Shutdown past its deadline).
func (t *FireTower) abort() {
	t.closeWith(protocol.CloseGoingAway, "", false)
	t.tr.abort()
}

// heartbeat frames are the same immutable bytes for every connection.
var (
	heartbeatV1 = append(protocol.TextFrame([]byte(protocol.HeartbeatV1)), protocol.AppendFrame(nil, protocol.OpPing, nil)...)
	heartbeatV2 = append(protocol.TextFrame([]byte(protocol.PingV2)), protocol.AppendFrame(nil, protocol.OpPing, nil)...)
)
