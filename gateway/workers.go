package gateway

import (
	"sync"
	"time"
)

// workers is the netpoll transport's executor: a bounded pool of goroutines
// that run the inboxes of the connections that have work (inbox.go), so
// that the pollers only move bytes. A tower is handed to the pool at most
// once at a time (inbox.scheduled); a worker runs up to taskBatch of its
// tasks and hands it back at the end of the queue if more wait, so one
// busy connection cannot starve the others.
//
// Workers start on demand, up to Config.Workers, and end after workerIdle
// without work, so an idle gateway holds none. A callback that blocks
// holds one worker and delays only its own connection's later tasks, as
// long as fewer than Config.Workers callbacks block at once.
type workers struct {
	max int

	mu      sync.Mutex // a leaf lock
	queue   []*FireTower
	head    int
	idle    []chan *FireTower // the waiting workers, most recent last
	running int
	stop    bool
	wg      sync.WaitGroup
}

// workerIdle is how long a worker waits for work before it ends: long
// enough that a steady trickle of frames reuses the same goroutines.
const workerIdle = 2 * time.Second

func newWorkers(max int) *workers { return &workers{max: max} }

func (w *workers) submit(t *FireTower) {
	w.mu.Lock()
	if n := len(w.idle); n > 0 {
		ch := w.idle[n-1]
		w.idle = w.idle[:n-1]
		w.mu.Unlock()
		ch <- t // capacity 1, and only we hand it work: never blocks
		return
	}
	if w.running < w.max && !w.stop {
		w.running++
		w.wg.Add(1)
		w.mu.Unlock()
		go w.work(t)
		return
	}
	w.queue = append(w.queue, t)
	w.mu.Unlock()
}

// next returns the next tower for the worker whose hand-off channel is ch,
// waiting up to workerIdle; nil means the worker ends.
func (w *workers) next(ch chan *FireTower, timer *time.Timer) *FireTower {
	w.mu.Lock()
	if w.head < len(w.queue) {
		t := w.queue[w.head]
		w.queue[w.head] = nil
		w.head++
		if w.head == len(w.queue) {
			w.queue, w.head = w.queue[:0], 0
		}
		w.mu.Unlock()
		return t
	}
	if w.stop {
		w.running--
		w.mu.Unlock()
		return nil
	}
	w.idle = append(w.idle, ch)
	w.mu.Unlock()
	timer.Reset(workerIdle)
	select {
	case t := <-ch:
		timer.Stop()
		return t
	case <-timer.C:
	}
	w.mu.Lock()
	for i, c := range w.idle {
		if c == ch { // still idle: leave
			w.idle = append(w.idle[:i], w.idle[i+1:]...)
			w.running--
			w.mu.Unlock()
			return nil
		}
	}
	w.mu.Unlock()
	return <-ch // taken off the idle list by submit or shutdown: a send is coming
}

func (w *workers) work(t *FireTower) {
	defer w.wg.Done()
	ch := make(chan *FireTower, 1)
	timer := time.NewTimer(workerIdle)
	timer.Stop()
	for t != nil {
		w.run(t)
		t = w.next(ch, timer)
	}
}

// run serves t once. After a panic (recovered and logged; t is closing
// with 1011) t is served again, so that its finish task still runs.
func (w *workers) run(t *FireTower) {
	more := true
	defer func() {
		if more {
			w.submit(t)
		}
	}()
	defer t.gw.recoverPanic("worker", t)
	more, _ = t.serve(taskBatch)
}

// shutdown ends the workers once the queue is empty, and waits for them if
// wait is set. The gateway calls it when no connection is left, or past
// its shutdown deadline (without waiting: a callback may still block).
func (w *workers) shutdown(wait bool) {
	w.mu.Lock()
	w.stop = true
	idle := w.idle
	w.idle = nil
	w.mu.Unlock()
	for _, ch := range idle {
		ch <- nil // the worker looks again, sees stop, and ends
	}
	if wait {
		w.wg.Wait()
	}
}
