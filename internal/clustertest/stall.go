package clustertest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker"
)

// Stall describes a broker server that stops answering without closing
// anything, as a paused process (SIGSTOP), a paused VM or a network black
// hole looks.
type Stall struct {
	// Pub publishes (started, with node id Origin); Sub receives on Topic
	// (started, with Rec's handler, its interest in Topic already set).
	Pub, Sub broker.Broker
	Origin   string
	Rec      *Recorder
	Topic    string
	// Pause stops the server (or the path to it) answering Pub; Resume
	// lets it answer again. Hold is how long the pause lasts.
	Pause, Resume func()
	Hold          time.Duration
	// PublishTimeout is every publish's context deadline.
	PublishTimeout time.Duration
	// Down, if set, reports that the broker has declared its link down;
	// it must do so within DownWithin of the pause.
	Down       func() bool
	DownWithin time.Duration
}

// Recorder records the messages a node receives, by their data.
type Recorder struct {
	mu  sync.Mutex
	got map[string]int
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{got: make(map[string]int)} }

// Handle is the node's broker.Handler.
func (r *Recorder) Handle(m *broker.Message) {
	r.mu.Lock()
	r.got[string(m.Data)]++
	r.mu.Unlock()
}

// Count returns how many times data was received.
func (r *Recorder) Count(data string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[data]
}

// lateWindow is how long StalledPublishes watches, after its marker
// arrived, for messages sent on a connection given up during the stall:
// they may still arrive (those with an unknown outcome), and those reported
// not sent must not.
const lateWindow = 500 * time.Millisecond

// outcome is what one publish returned, and when.
type outcome struct {
	seq           int
	began, ended  time.Time
	err           error
	unknown, gone bool // ErrUnknownOutcome; not sent (ErrUnavailable or ctx's error)
}

// StalledPublishes: a publisher publishes a sequence-numbered message every
// 5 ms, each with a short context, while the broker's server stalls for
// s.Hold and comes back. It checks the broker contract (broker.Broker's
// Publish): no publish begun during the stall returns nil before the
// resume; every failure wraps broker.ErrUnavailable (not sent) or
// broker.ErrUnknownOutcome, and none takes much longer than its context;
// after the resume publishes succeed again; every publish that returned nil
// is delivered to the subscriber node, and none reported not sent is, ever
// (the ones with an unknown outcome are counted apart, delivered or not).
func StalledPublishes(t *testing.T, s Stall) {
	t.Helper()
	var (
		mu       sync.Mutex
		outcomes []outcome
		wg       sync.WaitGroup
	)
	stop := make(chan struct{})
	publish := func(seq int) outcome {
		ctx, cancel := context.WithTimeout(context.Background(), s.PublishTimeout)
		defer cancel()
		o := outcome{seq: seq, began: time.Now()}
		o.err = s.Pub.Publish(ctx, &broker.Message{Topic: s.Topic, ID: uint64(seq), Origin: s.Origin, Data: []byte(strconv.Itoa(seq))})
		o.ended = time.Now()
		o.unknown = errors.Is(o.err, broker.ErrUnknownOutcome)
		o.gone = !o.unknown && (errors.Is(o.err, broker.ErrUnavailable) || errors.Is(o.err, context.DeadlineExceeded))
		return o
	}
	ok := func() (n int) {
		mu.Lock()
		defer mu.Unlock()
		for _, o := range outcomes {
			if o.err == nil {
				n++
			}
		}
		return n
	}
	// The route first: a publish before Sub's interest reached the broker
	// is accepted and goes nowhere, as it should.
	CheckFor(t, 10*time.Second, func() error {
		if o := publish(-1); o.err != nil {
			return o.err
		}
		if s.Rec.Count("-1") == 0 {
			return errors.New("the probe has not arrived")
		}
		return nil
	})
	wg.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for seq := 1; ; seq++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			o := publish(seq)
			mu.Lock()
			outcomes = append(outcomes, o)
			mu.Unlock()
		}
	})
	defer func() { close(stop); wg.Wait() }()
	CheckFor(t, 10*time.Second, func() error {
		if n := ok(); n < 20 {
			mu.Lock()
			defer mu.Unlock()
			var last error
			if len(outcomes) > 0 {
				last = outcomes[len(outcomes)-1].err
			}
			return fmt.Errorf("%d publishes succeeded before the stall, want 20 (last: %v)", n, last)
		}
		return nil
	})

	s.Pause()
	paused := time.Now()
	if s.Down != nil {
		CheckFor(t, s.DownWithin+5*time.Second, func() error {
			if !s.Down() {
				return fmt.Errorf("the link is not declared down %v after the stall", time.Since(paused).Round(time.Millisecond))
			}
			return nil
		})
		if d := time.Since(paused); d > s.DownWithin {
			t.Errorf("the link was declared down %v after the stall, want within %v", d.Round(time.Millisecond), s.DownWithin)
		}
	}
	CheckFor(t, s.Hold+5*time.Second, func() error {
		if d := time.Since(paused); d < s.Hold {
			return fmt.Errorf("stalled for %v of %v", d.Round(time.Millisecond), s.Hold)
		}
		return nil
	})
	s.Resume()
	resumed := time.Now()
	okBefore := ok()
	CheckFor(t, 15*time.Second, func() error {
		if n := ok(); n < okBefore+20 {
			return fmt.Errorf("%d publishes succeeded since the resume, want 20", n-okBefore)
		}
		return nil
	})
	close(stop)
	wg.Wait()
	stop = make(chan struct{}) // for the deferred close

	// A marker through the same path: once it is in, every message sent
	// before it on the live connection is too.
	CheckFor(t, 10*time.Second, func() error {
		if o := publish(0); o.err != nil {
			return o.err
		}
		if s.Rec.Count("0") == 0 {
			return errors.New("the marker has not arrived")
		}
		return nil
	})
	<-time.After(lateWindow)

	mu.Lock()
	defer mu.Unlock()
	var acked, lost, gone, goneDelivered, unknown, unknownDelivered, duringStall int
	var slowest time.Duration
	for _, o := range outcomes {
		n := s.Rec.Count(strconv.Itoa(o.seq))
		switch {
		case o.err == nil:
			acked++
			if n != 1 {
				lost++
				t.Errorf("publish %d returned nil (at %v of the stall) and was received %d times", o.seq, o.ended.Sub(paused).Round(time.Millisecond), n)
			}
			if o.began.After(paused) && o.ended.Before(resumed) {
				duringStall++
				t.Errorf("publish %d begun %v into the stall returned nil before the resume", o.seq, o.began.Sub(paused).Round(time.Millisecond))
			}
		case o.unknown:
			unknown++
			if n > 0 {
				unknownDelivered++
			}
		case o.gone:
			gone++
			if n > 0 {
				goneDelivered++
				t.Errorf("publish %d failed as not sent (%v) and was delivered %d times", o.seq, o.err, n)
			}
		default:
			t.Errorf("publish %d: error neither ErrUnavailable nor ErrUnknownOutcome: %v", o.seq, o.err)
		}
		if o.err != nil {
			slowest = max(slowest, o.ended.Sub(o.began))
		}
	}
	if slowest > s.PublishTimeout+time.Second {
		t.Errorf("a failing publish took %v, with a %v context", slowest, s.PublishTimeout)
	}
	if gone+unknown == 0 {
		t.Errorf("no publish failed during a %v stall", s.Hold)
	}
	t.Logf("figures: %d publishes: %d acknowledged (%d lost), %d not sent (%d delivered), %d unknown outcome (%d delivered); slowest failure %v",
		len(outcomes), acked, lost, gone, goneDelivered, unknown, unknownDelivered, slowest.Round(time.Millisecond))
}

// PublishUntilReceived publishes m from pub until got yields a message
// within a moment of a publish: the route from pub to got's node is up.
// It fails the test after total.
func PublishUntilReceived(t testing.TB, pub broker.Broker, m *broker.Message, got <-chan *broker.Message, total time.Duration) {
	t.Helper()
	CheckFor(t, total, func() error {
		if err := pub.Publish(context.Background(), m); err != nil {
			return err
		}
		select {
		case <-got:
			return nil
		case <-time.After(20 * time.Millisecond):
			return fmt.Errorf("nothing received on %q", m.Topic)
		}
	})
}

// StalledServer runs StalledPublishes against a private server srv paused
// with SIGSTOP for hold: pub and sub are unstarted brokers on it (node ids
// "pub" and "sub"), publishes have a 300 ms context.
func StalledServer(t *testing.T, srv *Server, pub, sub broker.Broker, hold time.Duration) {
	t.Helper()
	t.Cleanup(srv.Resume) // before the brokers are closed, if the test fails paused
	rec := NewRecorder()
	for _, n := range []struct {
		b  broker.Broker
		id string
		h  broker.Handler
	}{{pub, "pub", func(*broker.Message) {}}, {sub, "sub", rec.Handle}} {
		if err := n.b.Start(context.Background(), n.id, n.h); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.b.Close() })
	}
	sub.SetInterest("t", 1)
	StalledPublishes(t, Stall{
		Pub: pub, Origin: "pub", Sub: sub, Rec: rec, Topic: "t",
		Pause: srv.Pause, Resume: srv.Resume, Hold: hold,
		PublishTimeout: 300 * time.Millisecond,
	})
}
