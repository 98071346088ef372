package chaos

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firetower-go/firetower/internal/wait"
)

// The soak's settings.
const (
	// soakEnv, set to a duration ("10m"), runs TestSoak for that long.
	soakEnv = "FIRETOWER_SOAK"
	// soakShort is the always-on soak's length: cheap enough for every run.
	soakShort = 10 * time.Second
	// soakTopic is the topic everyone subscribes to.
	soakTopic = "soak/stream"
	// churners is the number of clients connecting, subscribing,
	// receiving and leaving in a loop, side by side.
	churners = 4
	// churnReceive is how many messages a churning client receives before
	// it leaves.
	churnReceive = 10
	// samplesPerRun is how many samples of heap, goroutines and fds a run
	// takes, at least soakSampleMin apart.
	samplesPerRun = 20
	soakSampleMin = 500 * time.Millisecond
	soakSampleMax = 30 * time.Second
)

// TestSoak is the opt-in soak: FIRETOWER_SOAK=10m runs it ten minutes.
func TestSoak(t *testing.T) {
	v := os.Getenv(soakEnv)
	if v == "" {
		t.Skipf("set %s to a duration (for example 10m) to run the soak; TestSoakShort runs %v of it", soakEnv, soakShort)
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration such as 10m", soakEnv, v)
	}
	runSoak(t, d)
}

// TestSoakShort is the soak for soakShort, on every run.
func TestSoakShort(t *testing.T) { runSoak(t, soakShort) }

// runSoak runs one gateway (embedded broker) for d under steady publishing
// from a v2 websocket client and connection churn: churners clients in a
// loop connect (v1 and v2 in turn), subscribe, receive churnReceive
// messages and leave (with and without a close frame), while two
// subscribers stay connected throughout. It checks that no message to a
// connected subscriber is lost or duplicated (the steady ones get every
// acknowledged publish; a churning one gets a gapless run starting no later
// than the second publish after its subscription was acknowledged), that
// heap in use, goroutines and fds stay flat (the second half's maximum
// against the first half's), and that goroutines and fds are back to their
// baseline at the end.
func runSoak(t *testing.T, d time.Duration) {
	baseline(t)
	n := startNode(t, "gw-soak", "")

	// Two subscribers for the whole run.
	var steady []*subscriber
	for i, v2 := range []bool{false, true} {
		s := &subscriber{name: fmt.Sprintf("steady-v%d", i+1), s: newGaplessStream()}
		acks := make(chan reply, 1)
		c, err := dial(n.ws, v2, func(m []byte) { deliverOrAck(s.s, v2, m, acks) })
		if err != nil {
			t.Fatal(err)
		}
		s.c = c
		t.Cleanup(c.close)
		if err := subscribe(c, soakTopic, acks); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		steady = append(steady, s)
	}
	wait.For(t, settleWithin, pollEvery, func() error {
		if got := n.gw().LocalConnectNum(soakTopic); got != int64(len(steady)) {
			return fmt.Errorf("%d subscribers, want %d", got, len(steady))
		}
		return nil
	})

	wsp, err := dialPublisher(n.ws, "pub", soakTopic)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wsp.c.close)
	pub := newPublisher("pub", wsp.publish)
	pub.record = false // no publish fails here: the steady subscribers' gapless streams say what is lost
	stopPub := make(chan struct{})
	var pubWG sync.WaitGroup
	pubWG.Go(func() { pub.run(stopPub) })
	pubStopped := false
	stopPublisher := func() {
		if !pubStopped {
			pubStopped = true
			close(stopPub)
			pubWG.Wait()
		}
	}
	t.Cleanup(stopPublisher)

	// The churn.
	var (
		cycles, churnDelivered atomic.Int64
		problems               = newStream() // only its violations are used
		stopChurn              = make(chan struct{})
		churnWG                sync.WaitGroup
	)
	for w := range churners {
		churnWG.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stopChurn:
					return
				default:
				}
				if err := churnOnce(n.ws, (w+i)%2 == 0, i%2 == 0, pub, &churnDelivered); err != nil {
					problems.violation("churner %d, cycle %d: %v", w, i, err)
					return
				}
				cycles.Add(1)
			}
		})
	}
	stopChurners := func() { close(stopChurn); churnWG.Wait() }
	churnStopped := false
	t.Cleanup(func() {
		if !churnStopped {
			stopChurners()
		}
	})

	// Sampling.
	every := min(max(d/samplesPerRun, soakSampleMin), soakSampleMax)
	began := time.Now()
	var samples []resources
	tick := time.NewTicker(every)
	for time.Since(began) < d {
		<-tick.C
		samples = append(samples, measure())
		if ps := problems.problems(); len(ps) > 0 {
			break
		}
	}
	tick.Stop()
	elapsed := time.Since(began)
	churnStopped = true
	stopChurners()
	stopPublisher()
	if ps := problems.problems(); len(ps) > 0 {
		t.Fatalf("a churning client lost or duplicated messages: %s", joinProblems(ps))
	}
	if f := pub.failed.Load(); f > 0 {
		pub.mu.Lock()
		samples := pub.samples
		pub.mu.Unlock()
		t.Errorf("%d publishes failed: %v", f, samples)
	}

	// The steady subscribers got every acknowledged publish, once, in order.
	last := pub.lastOK.Load()
	wait.For(t, settleWithin, pollEvery, func() error {
		for _, s := range steady {
			if got := s.s.lastOf("pub"); got < last {
				return fmt.Errorf("%s has received up to %d, want %d", s.name, got, last)
			}
		}
		return nil
	})
	var steadyDelivered int64
	for _, s := range steady {
		if ps := s.s.problems(); len(ps) > 0 {
			t.Errorf("%s: %s", s.name, joinProblems(ps))
		}
		if got, want := s.s.counted("pub"), pub.attempted.Load(); got != want {
			t.Errorf("%s received %d messages, want %d (every publish)", s.name, got, want)
		}
		steadyDelivered += s.s.counted("pub")
	}
	// Every churning client has gone from the gateway too.
	wait.For(t, settleWithin, pollEvery, func() error {
		st := n.gw().Stats()
		if got := n.gw().LocalConnectNum(soakTopic); got != int64(len(steady)) || st.Connections != int64(len(steady))+1 {
			return fmt.Errorf("the gateway has %d subscribers and %d connections, want %d and %d", got, st.Connections, len(steady), len(steady)+1)
		}
		return nil
	})
	st := n.gw().Stats()
	if st.Dropped > 0 || st.SlowDisconnects > 0 {
		t.Errorf("the gateway dropped %d frames and cut %d slow consumers off", st.Dropped, st.SlowDisconnects)
	}

	// Flat: the second half's maximum against the first half's.
	if len(samples) < 4 {
		t.Fatalf("only %d samples in %v", len(samples), elapsed)
	}
	first, second := peak(samples[:len(samples)/2]), peak(samples[len(samples)/2:])
	if limit := first.heapInuse + max(first.heapInuse/10, 1<<20); second.heapInuse > limit {
		t.Errorf("heap in use grew: %.1f MiB at most in the first half, %.1f MiB in the second (limit %.1f MiB)",
			mib(first.heapInuse), mib(second.heapInuse), mib(limit))
	}
	// Each live churning client holds a reading goroutine here and a
	// couple of descriptors (both ends of its socket): that much may vary
	// between two samples.
	if limit := first.goroutines + 2*churners + 4; second.goroutines > limit {
		t.Errorf("goroutines grew: %d at most in the first half, %d in the second (limit %d)", first.goroutines, second.goroutines, limit)
	}
	if limit := first.fds + 4*churners + 4; second.fds > limit {
		t.Errorf("fds grew: %d at most in the first half, %d in the second (limit %d)", first.fds, second.fds, limit)
	}
	t.Logf("figures: %v of soak, %d samples every %v; %d churn cycles (%.0f/s), %d publishes (%.0f/s, %d failed), %d deliveries to the 2 steady subscribers, %d to churning ones, 0 lost, 0 duplicated; "+
		"peak first half %v, second half %v; gateway: %d connects, %d dropped, %d slow disconnects",
		elapsed.Round(time.Millisecond), len(samples), every, cycles.Load(), float64(cycles.Load())/elapsed.Seconds(),
		pub.attempted.Load(), float64(pub.attempted.Load())/elapsed.Seconds(), pub.failed.Load(), steadyDelivered, churnDelivered.Load(),
		first, second, st.ConnectsTotal, st.Dropped, st.SlowDisconnects)
	if testing.Verbose() {
		for i, s := range samples {
			t.Logf("sample %2d at %v: %v", i, (every * time.Duration(i+1)).Round(time.Millisecond), s)
		}
	}
}

// churnOnce is one cycle of a churning client: connect, subscribe, receive
// churnReceive messages with no gap and no duplicate, leave.
func churnOnce(url string, v2, graceful bool, pub *publisher, delivered *atomic.Int64) error {
	var (
		mu          sync.Mutex
		first, last int64
		count       int
		bad         error
		enough      = make(chan struct{})
		signalled   bool
	)
	signal := func() { // under mu
		if !signalled {
			signalled = true
			close(enough)
		}
	}
	acks := make(chan reply, 1)
	c, err := dial(url, v2, func(m []byte) {
		var r reply
		if v2 && unmarshalReply(m, &r) {
			select {
			case acks <- r:
			default:
			}
			return
		}
		p, err := decode(v2, m)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case bad != nil:
			return
		case err != nil:
			bad = err
		case last != 0 && p.N != last+1:
			bad = fmt.Errorf("received %d after %d (lost, duplicated or reordered)", p.N, last)
		}
		if bad != nil {
			signal()
			return
		}
		if first == 0 {
			first = p.N
		}
		last = p.N
		if count++; count >= churnReceive {
			signal()
		}
	})
	if err != nil {
		return err
	}
	defer func() {
		if graceful {
			c.closeGracefully()
		} else {
			c.close()
		}
	}()
	if err := subscribe(c, soakTopic, acks); err != nil {
		return err
	}
	// Every publish sent after this point reaches the client; the one in
	// flight may or may not.
	bound := pub.lastOK.Load() + 2
	select {
	case <-enough:
	case <-time.After(settleWithin):
	}
	mu.Lock()
	defer mu.Unlock()
	if !signalled {
		return fmt.Errorf("received %d messages within %v, want %d", count, settleWithin, churnReceive)
	}
	if bad != nil {
		return bad
	}
	if v2 && first > bound {
		return fmt.Errorf("the first message after the subscription was %d, want at most %d (lost)", first, bound)
	}
	delivered.Add(int64(count))
	return nil
}

// deliverOrAck routes a frame to acks (a v2 reply) or s (a delivery).
func deliverOrAck(s *stream, v2 bool, m []byte, acks chan<- reply) {
	var r reply
	if v2 && unmarshalReply(m, &r) {
		select {
		case acks <- r:
		default:
			s.violation("unexpected reply %s", m)
		}
		return
	}
	p, err := decode(v2, m)
	if err != nil {
		s.violation("%v", err)
		return
	}
	s.add(p)
}

// peak is the maximum of each figure over samples.
func peak(samples []resources) resources {
	var p resources
	for _, s := range samples {
		p.goroutines = max(p.goroutines, s.goroutines)
		p.fds = max(p.fds, s.fds)
		p.heapInuse = max(p.heapInuse, s.heapInuse)
	}
	return p
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
