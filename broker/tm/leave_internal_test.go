package tm

import (
	"errors"
	"testing"

	"github.com/firetower-go/firetower/broker"
)

// A closing gateway's goodbye goes ahead of the publishes still queued:
// leave fails them as certainly not sent (broker.ErrClosed, not an unknown
// outcome), keeps the control frames for the writer, and leaves the
// publishes already written to wait for their confirmation.
func TestLeaveDropsQueuedPublishes(t *testing.T) {
	l := &link{m: Manager{Key: "tm-1", Addr: "127.0.0.1:1"}, wake: make(chan struct{}, 1)}
	written := &publish{seq: 1, done: make(chan error, 1)}
	l.inflight = []*publish{written}
	queued := &publish{done: make(chan error, 1)}
	cancelled := &publish{cancelled: true, done: make(chan error, 1)}
	control := []byte("interest")
	l.queue = []outFrame{{b: []byte("p1"), pub: queued}, {b: control}, {b: []byte("p2"), pub: cancelled}}
	l.bytes = 2 + len(control) + 2

	l.leave()

	select {
	case err := <-queued.done:
		if !errors.Is(err, broker.ErrClosed) || errors.Is(err, broker.ErrUnknownOutcome) {
			t.Fatalf("queued publish: %v, want broker.ErrClosed (not sent)", err)
		}
	default:
		t.Fatal("the queued publish was not failed")
	}
	if len(cancelled.done) != 0 || len(written.done) != 0 {
		t.Fatal("a cancelled or an in-flight publish was resolved by leave")
	}
	if len(l.queue) != 1 || string(l.queue[0].b) != string(control) || l.bytes != len(control) {
		t.Fatalf("queue after leave: %d frames, %d bytes; want the control frame alone", len(l.queue), l.bytes)
	}
	if !l.leaving || len(l.wake) != 1 {
		t.Fatal("the writer was not told to leave")
	}
}
