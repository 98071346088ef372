package gateway

import (
	"sync"

	"github.com/firetower-go/firetower/protocol"
)

// The inbox is a connection's ordered queue of work for the application:
// its client frames, and the callbacks other goroutines owe it (a topic
// removed by the system, the end of the connection). The transports only
// move bytes: they decode a frame and put it in the inbox. An executor
// runs each connection's inbox in order, one task at a time, so the
// application sees one connection's callbacks in frame order and never
// two at once, and a callback that blocks holds up only its own
// connection:
//
//   - goroutine transport: the goroutine that called Run (the original's
//     model: the seed's handler goroutine runs the callbacks);
//   - netpoll transport: the gateway's worker pool (workers.go), never a
//     poller.

// taskKind says what an inbox task does.
type taskKind uint8

const (
	// taskFrame is a client frame for dispatch.
	taskFrame taskKind = iota
	// taskSystemRemove runs OnSystemRemove and UnSubscribeHandler for a
	// topic the system removed the connection from.
	taskSystemRemove
	// taskFinish ends the connection: its subscriptions go and the
	// end-of-connection handlers run. It is the last task.
	taskFinish
)

type task struct {
	kind  taskKind
	fire  *FireInfo // taskFrame
	topic string    // taskSystemRemove
}

// inbox is the queue itself. Frames are bounded by Config.InboundQueue (the
// original's chanLens); the other tasks are not (at most one finish, and a
// system removal per subscribed topic).
type inbox struct {
	mu        sync.Mutex // a leaf lock
	tasks     []task
	head      int  // tasks[head:] are waiting
	frames    int  // taskFrame entries waiting
	scheduled bool // handed to the executor and not yet found empty
	// full is set when a frame found the queue full: the transport stopped
	// reading (netpoll) or waits (goroutine reader) until the executor
	// makes room; the executor then calls FireTower.resumeReading.
	full bool
	done bool // taskFinish was taken: nothing more is accepted
}

// put appends tk. A frame is refused (false) when Config.InboundQueue
// frames wait already; the caller then waits for resumeReading. It
// reports whether the tower must be handed to its executor.
func (q *inbox) put(tk task, limit int) (ok, submit bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.done {
		return tk.kind != taskFrame, false // dropped: the connection has ended
	}
	if tk.kind == taskFrame {
		if q.frames >= limit {
			q.full = true
			return false, false
		}
		q.frames++
	}
	if q.head > 0 && q.head == len(q.tasks) {
		q.tasks, q.head = q.tasks[:0], 0
	}
	q.tasks = append(q.tasks, tk)
	submit = !q.scheduled
	q.scheduled = true
	return true, submit
}

// take removes the next task. When the queue is empty it returns false and
// the tower is no longer scheduled: the next put submits it again. resume
// is set when frames had found the queue full and there is room again.
func (q *inbox) take(limit int) (tk task, ok, resume bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.tasks) {
		q.tasks, q.head = q.tasks[:0], 0
		if cap(q.tasks) > 16 {
			q.tasks = nil // a burst's array is not kept by an idle connection
		}
		q.scheduled = false
		return task{}, false, false
	}
	tk = q.tasks[q.head]
	q.tasks[q.head] = task{}
	q.head++
	switch tk.kind {
	case taskFrame:
		q.frames--
	case taskFinish:
		q.done = true
	}
	if q.full && q.frames <= limit/2 {
		q.full, resume = false, true
	}
	return tk, true, resume
}

// executor runs towers' inboxes: runLoop (goroutine transport) or the
// workers (netpoll).
type executor interface {
	// submit asks for t's inbox to be served; it never blocks.
	submit(t *FireTower)
}

// enqueue puts tk in t's inbox and hands t to its executor if it was idle.
// It reports false for a frame that found the queue full.
func (t *FireTower) enqueue(tk task) bool {
	ok, submit := t.inbox.put(tk, t.gw.cfg.InboundQueue)
	if submit {
		t.tr.executor().submit(t)
	}
	return ok
}

// serve runs up to n tasks of t's inbox and reports whether more wait (t
// is then still scheduled: the executor must serve it again) and whether
// the connection has finished.
func (t *FireTower) serve(n int) (more, finished bool) {
	limit := t.gw.cfg.InboundQueue
	for range n {
		tk, ok, resume := t.inbox.take(limit)
		if !ok {
			return false, false
		}
		if resume {
			t.tr.resumeReading()
		}
		switch tk.kind {
		case taskFrame:
			if t.isClosing() {
				continue // what the client sent after the close is not handled
			}
			tk.fire.Context = t.newLife()
			t.dispatch(tk.fire)
			t.syncIdentity()
		case taskSystemRemove:
			t.runSystemRemove(tk.topic)
		case taskFinish:
			t.finish()
			t.tr.finished()
			return false, true
		}
	}
	return true, false
}

// readTimedOut gives a frame that found no room in the inbox for
// ReadTimeout to the ReadTimeoutHandler; it is dropped.
func (t *FireTower) readTimedOut(fire *FireInfo) {
	t.gw.stats.readTimeouts.Add(1)
	fire.Context = t.newLife()
	if t.readTimeoutHandler != nil && fire.rejectCode == 0 {
		t.call("ReadTimeoutHandler", func() bool { t.readTimeoutHandler(fire); return true })
	}
	t.replyError(fire, protocol.CodeLimitExceeded, "server busy: message dropped")
}

// runLoop is the goroutine transport's executor: Run's own goroutine.
type runLoop struct {
	ready chan struct{} // capacity 1: "the inbox has tasks"
}

func newRunLoop() *runLoop { return &runLoop{ready: make(chan struct{}, 1)} }

func (r *runLoop) submit(*FireTower) {
	select {
	case r.ready <- struct{}{}:
	default:
	}
}

// serveUntilFinished is Run's loop on the goroutine transport.
func (r *runLoop) serveUntilFinished(t *FireTower) {
	for range r.ready {
		for {
			more, finished := r.serve(t)
			if finished {
				return
			}
			if !more {
				break
			}
		}
	}
}

// serve is one round of t.serve; after a panic (recovered and logged; t is
// closing with 1011) the loop goes on, so that the finish task still runs.
func (r *runLoop) serve(t *FireTower) (more, finished bool) {
	more = true
	defer t.gw.recoverPanic("Run", t)
	return t.serve(taskBatch)
}

// taskBatch is how many tasks of one connection an executor runs before it
// turns to another connection (netpoll) or checks for new ones.
const taskBatch = 32
