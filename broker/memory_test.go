package broker_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/broker/brokertest"
)

// memoryCluster is the brokertest.Factory of the in-process broker: one bus
// per cluster.
func memoryCluster(*testing.T) func(*testing.T) broker.Broker {
	bus := broker.NewBus()
	return func(*testing.T) broker.Broker { return bus.Node() }
}

func TestMemoryConformance(t *testing.T) {
	brokertest.Run(t, memoryCluster, brokertest.Options{RefusesDuplicateNodeID: true})
}

// stallTimeout bounds the tests below that would hang on a deadlock.
const stallTimeout = 5 * time.Second

func noop(*broker.Message) {}

func start(t *testing.T, b *broker.Memory, id string, h broker.Handler) {
	t.Helper()
	if err := b.Start(context.Background(), id, h); err != nil {
		t.Fatalf("Start %s: %v", id, err)
	}
}

func stacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// waitDone fails the test with every goroutine's stack if done is not
// closed within stallTimeout.
func waitDone(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(stallTimeout):
		t.Fatalf("%s did not finish within %v (deadlock?); goroutines:\n%s", what, stallTimeout, stacks())
	}
}

// The in-process bus delivers from the publisher's goroutine: the message
// has reached every interested handler when Publish returns.
func TestMemoryPublishIsSynchronous(t *testing.T) {
	bus := broker.NewBus()
	a, b, c := bus.Node(), bus.Node(), bus.Node()
	var got [2]atomic.Int64
	start(t, a, "a", noop)
	start(t, b, "b", func(*broker.Message) { got[0].Add(1) })
	start(t, c, "c", func(*broker.Message) { got[1].Add(1) })
	t.Cleanup(func() { _ = a.Close(); _ = b.Close(); _ = c.Close() })
	b.SetInterest("sync", 1)
	c.SetInterest("sync", 1)
	for i := 1; i <= 100; i++ {
		if err := a.Publish(context.Background(), &broker.Message{Topic: "sync", ID: uint64(i), Origin: "a", Data: []byte("1")}); err != nil {
			t.Fatal(err)
		}
		if nb, nc := got[0].Load(), got[1].Load(); nb != int64(i) || nc != int64(i) {
			t.Fatalf("after Publish %d returned: b has %d, c has %d", i, nb, nc)
		}
	}
}

// A handler may call back into the brokers of the bus (Count, SetInterest,
// Publish) while nodes join and leave: nothing deadlocks. With the bus lock
// held across handler calls, a re-entrant read lock behind a waiting Start
// or Close would.
func TestMemoryHandlerReentry(t *testing.T) {
	bus := broker.NewBus()
	a, b, c := bus.Node(), bus.Node(), bus.Node()
	ctx := context.Background()
	var calls, echoes atomic.Int64
	start(t, a, "a", noop)
	start(t, c, "c", func(*broker.Message) { echoes.Add(1) })
	start(t, b, "b", func(m *broker.Message) {
		n := calls.Add(1)
		if _, err := b.Count(ctx, m.Topic); err != nil {
			t.Errorf("Count from the handler: %v", err)
		}
		if _, err := a.Count(ctx, m.Topic); err != nil {
			t.Errorf("Count on another node from the handler: %v", err)
		}
		b.SetInterest("reentry-side", n%3)
		if err := b.Publish(ctx, &broker.Message{Topic: "reentry-echo", ID: uint64(n), Origin: "b", Data: []byte("0")}); err != nil {
			t.Errorf("Publish from the handler: %v", err)
		}
	})
	b.SetInterest("reentry", 1)
	c.SetInterest("reentry-echo", 1)

	const publishes = 2000
	stop := make(chan struct{})
	var churn sync.WaitGroup
	churn.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			n := bus.Node()
			if err := n.Start(ctx, fmt.Sprintf("churn-%d", i), noop); err != nil {
				t.Errorf("churn Start: %v", err)
				return
			}
			n.SetInterest("reentry", 1)
			_ = n.Close()
		}
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= publishes; i++ {
			if err := a.Publish(ctx, &broker.Message{Topic: "reentry", ID: uint64(i), Origin: "a", Data: []byte("1")}); err != nil {
				t.Errorf("Publish: %v", err)
				return
			}
		}
	}()
	waitDone(t, done, "publishing to a re-entrant handler")
	close(stop)
	churn.Wait()
	for _, n := range []*broker.Memory{a, b, c} {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	}
	if calls.Load() != publishes || echoes.Load() != publishes {
		t.Errorf("handler calls: b %d, c %d; want %d each", calls.Load(), echoes.Load(), publishes)
	}
}

// Close waits for a delivery in progress to its node's handler, and the
// handler is not called once Close has returned.
func TestMemoryCloseWaitsForDelivery(t *testing.T) {
	bus := broker.NewBus()
	a, b := bus.Node(), bus.Node()
	entered, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int64
	start(t, a, "a", noop)
	start(t, b, "b", func(*broker.Message) {
		if calls.Add(1) == 1 {
			close(entered)
			<-release
		}
	})
	t.Cleanup(func() { _ = a.Close() })
	b.SetInterest("slow", 1)
	msg := &broker.Message{Topic: "slow", ID: 1, Origin: "a", Data: []byte("1")}

	published := make(chan struct{})
	go func() {
		defer close(published)
		if err := a.Publish(context.Background(), msg); err != nil {
			t.Errorf("Publish: %v", err)
		}
	}()
	<-entered
	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	select {
	case err := <-closed:
		close(release)
		t.Fatalf("Close returned (%v) while the handler was running", err)
	case <-time.After(50 * time.Millisecond): // watching that Close keeps waiting
	}
	close(release)
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(stallTimeout):
		t.Fatalf("Close did not return after the handler did")
	}
	<-published
	if err := a.Publish(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("handler called %d times, want 1 (none after Close)", n)
	}
}

func TestMemoryStartAndLifecycleErrors(t *testing.T) {
	ctx := context.Background()
	bus := broker.NewBus()

	if err := bus.Node().Start(ctx, "nil-handler", nil); err == nil {
		t.Error("Start with a nil handler succeeded")
	}

	fresh := bus.Node()
	if err := fresh.Publish(ctx, &broker.Message{Topic: "t", Origin: "x"}); !errors.Is(err, broker.ErrNotStarted) {
		t.Errorf("Publish before Start = %v, want ErrNotStarted", err)
	}
	if _, err := fresh.Count(ctx, "t"); !errors.Is(err, broker.ErrNotStarted) {
		t.Errorf("Count before Start = %v, want ErrNotStarted", err)
	}
	fresh.SetInterest("t", 1) // ignored, must not panic

	a := bus.Node()
	start(t, a, "a", noop)
	t.Cleanup(func() { _ = a.Close() })
	if err := a.Start(ctx, "a-again", noop); err == nil {
		t.Error("second Start of one node succeeded")
	}
	if n, err := a.Count(ctx, "t"); err != nil || n != 0 {
		t.Errorf("Count = %d, %v; want 0 (the unstarted node's interest was ignored)", n, err)
	}

	closed := bus.Node()
	if err := closed.Close(); err != nil {
		t.Fatal(err)
	}
	if err := closed.Start(ctx, "closed", noop); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Start after Close = %v, want ErrClosed", err)
	}
}

// NewMemory is a cluster of one: publishing reaches nobody and succeeds.
func TestNewMemory(t *testing.T) {
	m := broker.NewMemory()
	start(t, m, "solo", func(msg *broker.Message) { t.Errorf("handler called with %v", msg) })
	m.SetInterest("t", 3)
	if err := m.Publish(context.Background(), &broker.Message{Topic: "t", ID: 1, Origin: "solo", Data: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	if n, err := m.Count(context.Background(), "t"); err != nil || n != 0 {
		t.Errorf("Count = %d, %v; want 0 (own subscribers are not counted)", n, err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}

// The in-process broker is ready from Start to Close.
func TestMemoryReady(t *testing.T) {
	var c broker.Checker = broker.NewMemory()
	m := c.(*broker.Memory)
	if err := m.Ready(); !errors.Is(err, broker.ErrNotStarted) {
		t.Errorf("Ready before Start: %v", err)
	}
	if err := m.Start(context.Background(), "n", func(*broker.Message) {}); err != nil {
		t.Fatal(err)
	}
	if err := m.Ready(); err != nil || m.Describe() != "memory" {
		t.Errorf("Ready = %v, Describe = %q", err, m.Describe())
	}
	_ = m.Close()
	if err := m.Ready(); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Ready after Close: %v", err)
	}
}
