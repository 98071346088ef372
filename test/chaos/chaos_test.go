package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/internal/clustertest"
	"github.com/firetower-go/firetower/internal/wait"
	"github.com/firetower-go/firetower/topicmgr"
)

// The outage scenario's figures.
const (
	// publishEvery paces each publisher: about 200 publishes a second each.
	publishEvery = 5 * time.Millisecond
	// failFast bounds how long a publish may take to fail while the broker
	// is down (RELIABILITY.md: publish API errors within 2 s).
	failFast = 2 * time.Second
	// outageAtLeast is how long the broker stays down at least, publishes
	// going on; it also stays down until each publisher has seen
	// outageFailures failures.
	outageAtLeast  = time.Second
	outageFailures = 10
	// recoverWithin bounds the time from the restart until every
	// subscriber receives again: the reconnect backoff is capped at 2 s,
	// and the settle window that follows lasts 3 s by default.
	recoverWithin = 20 * time.Second
	// beforeKill is how many publishes each publisher makes before the
	// kill, all of which must arrive.
	beforeKill = 200
	// afterRecovery is how many more publishes each publisher makes once
	// delivery is back, all of which must arrive.
	afterRecovery = 200
	// chaosTopic is the topic of the stream.
	chaosTopic = "chaos/stream"
	// inFlight is how long before the kill a publish may have been
	// acknowledged and still be on its way to the other gateway when the
	// broker dies (in the topic-manager link's queue or socket, in the
	// server): an acknowledgement says "handed to the broker", and no
	// broker here keeps or re-sends a message, so those few can be lost
	// in the crash itself. They are counted apart; any other acknowledged
	// publish that is lost fails the test.
	inFlight = 100 * time.Millisecond
)

// brokerUnderTest is a broker kind with a way to kill and restart it.
type brokerUnderTest struct {
	url           string
	kill, restart func()
}

// TestChaos kills each kind of broker under a steady stream of publishes
// from gateway A to websocket subscribers on gateway B, and restarts it.
// It checks that publishes fail fast during the outage and the settle
// window after it, that the subscriptions come back with no client action,
// that per-publisher order holds with no duplicate among what is
// delivered, that no acknowledged publish is lost (RELIABILITY.md, data
// loss: a publish acknowledged between the broker's return and gateway B's
// resubscription would be, without the brokers' settle window), and that
// goroutines and fds return to their baseline. The gateways run with the
// brokers' default settle window. The figures are logged for
// docs/reliability.md.
func TestChaos(t *testing.T) {
	t.Run("topicmanager", func(t *testing.T) {
		runOutage(t, func(t *testing.T) brokerUnderTest {
			m := startManager(t, "127.0.0.1:0")
			return brokerUnderTest{
				url:     "tm://" + m.addr,
				kill:    func() { m.kill(t) },
				restart: func() { m = startManager(t, m.addr) },
			}
		})
	})
	t.Run("redis", func(t *testing.T) {
		runOutage(t, func(t *testing.T) brokerUnderTest {
			s := clustertest.StartRedis(t)
			return brokerUnderTest{url: "redis://" + s.Addr + "?prefix=" + clustertest.UniquePrefix(t), kill: s.Kill, restart: s.Start}
		})
	})
	t.Run("nats", func(t *testing.T) {
		runOutage(t, func(t *testing.T) brokerUnderTest {
			s := clustertest.StartNATS(t, "")
			return brokerUnderTest{url: "nats://" + s.Addr + "?prefix=" + clustertest.UniquePrefix(t), kill: s.Kill, restart: s.Start}
		})
	})
}

// manager is an in-process topic manager (what `firetower topicmanager`
// runs) on a loopback port. Killing it closes its listener and every
// session at once, with no goodbye, as a crash does.
type manager struct {
	srv  *topicmgr.Server
	addr string
	done chan error
	once sync.Once
}

// startManager starts a manager on addr (the port of a killed one to
// restart it); it is killed in t.Cleanup.
func startManager(t *testing.T, addr string) *manager {
	t.Helper()
	srv, err := topicmgr.New(topicmgr.Config{NodeID: "tm-chaos", Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	var l net.Listener
	// The port of a manager killed a moment ago is normally free at once
	// (Go sets SO_REUSEADDR); retry briefly in case the kernel disagrees.
	err = wait.Poll(5*time.Second, 20*time.Millisecond, func() error {
		l, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	m := &manager{srv: srv, addr: l.Addr().String(), done: make(chan error, 1)}
	go func() { m.done <- srv.Serve(l) }()
	t.Cleanup(func() { m.kill(t) })
	return m
}

func (m *manager) kill(t *testing.T) {
	m.once.Do(func() {
		_ = m.srv.Close()
		select {
		case <-m.done:
		case <-time.After(settleWithin):
			t.Errorf("manager %s: Serve did not return after Close", m.addr)
		}
	})
}

// publisher is one source of sequence-numbered messages on gateway A.
type publisher struct {
	name    string
	publish func(seq int64) error
	record  bool // keep acked (the soak does not: its memory must stay flat)
	counter
	slowestFail maxDuration // the longest a failing publish took
	slowest     maxDuration // the longest any publish took while the broker was down
	firstFail   time.Time   // when the first publish failed (set once, under mu)
	lastFail    time.Time   // when the last publish failed (under mu)

	mu      sync.Mutex
	acked   []bool      // acked[seq]: the publish succeeded (ack, nil error)
	unknown []bool      // unknown[seq]: it failed with an unknown outcome (it may have been delivered)
	ackedAt []time.Time // when it was acknowledged
	codes   map[string]int
	outage  bool
	samples []string // a few error messages
}

// isUnknownOutcome reports a publish that failed after its message was
// sent (broker.ErrUnknownOutcome). A v2 client gets the gateway's code for
// it (500 until the gateway maps it to one of its own) with the
// sentinel's text.
func isUnknownOutcome(err error) bool {
	var re *replyError
	return errors.Is(err, broker.ErrUnknownOutcome) ||
		errors.As(err, &re) && strings.Contains(re.Message, broker.ErrUnknownOutcome.Error())
}

func newPublisher(name string, publish func(int64) error) *publisher {
	return &publisher{name: name, publish: publish, record: true, acked: []bool{false}, unknown: []bool{false}, ackedAt: []time.Time{{}}, codes: make(map[string]int)}
}

// run publishes every publishEvery until stop is closed.
func (p *publisher) run(stop <-chan struct{}) {
	tick := time.NewTicker(publishEvery)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		seq := p.attempted.Add(1)
		began := time.Now()
		err := p.publish(seq)
		took := time.Since(began)
		p.mu.Lock()
		if p.record {
			p.acked = append(p.acked, err == nil)
			p.unknown = append(p.unknown, isUnknownOutcome(err))
			p.ackedAt = append(p.ackedAt, began.Add(took))
		}
		if p.outage {
			p.slowest.store(took)
		}
		if err != nil {
			if p.firstFail.IsZero() {
				p.firstFail = time.Now()
			}
			p.lastFail = time.Now()
			kind := "other error"
			var re *replyError
			switch {
			case isUnknownOutcome(err):
				kind = "unknown outcome"
			case errors.As(err, &re):
				kind = fmt.Sprintf("v2 error %d", re.Code)
			case errors.Is(err, broker.ErrUnavailable):
				kind = "ErrUnavailable"
			case errors.Is(err, errHung):
				kind = "hung"
			}
			p.codes[kind]++
			if len(p.samples) < 3 {
				p.samples = append(p.samples, err.Error())
			}
		}
		p.mu.Unlock()
		if err != nil {
			p.failed.Add(1)
			p.slowestFail.store(took)
		} else {
			p.ok.Add(1)
			p.lastOK.Store(seq)
		}
	}
}

func (p *publisher) setOutage(on bool) {
	p.mu.Lock()
	p.outage = on
	p.mu.Unlock()
}

// subscriber is a websocket client on gateway B.
type subscriber struct {
	name string
	c    *client
	s    *stream
}

// runOutage runs the outage scenario of TestChaos on the broker that
// start starts (and registers for killing in t.Cleanup).
func runOutage(t *testing.T, start func(t *testing.T) brokerUnderTest) {
	baseline(t)
	began := time.Now()
	b := start(t)
	a := startNode(t, "gw-a", b.url)
	bn := startNode(t, "gw-b", b.url)
	ctx := context.Background()

	// Subscribers on B, v1 and v2.
	var subs []*subscriber
	for i, v2 := range []bool{false, false, true, true} {
		s := &subscriber{name: fmt.Sprintf("sub-%d-v%d", i, map[bool]int{false: 1, true: 2}[v2]), s: newStream()}
		acks := make(chan reply, 1)
		c, err := dial(bn.ws, v2, func(m []byte) { deliverOrAck(s.s, v2, m, acks) })
		if err != nil {
			t.Fatal(err)
		}
		s.c = c
		t.Cleanup(c.close)
		if err := subscribe(c, chaosTopic, acks); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		subs = append(subs, s)
	}
	wait.For(t, settleWithin, pollEvery, func() error {
		if n := a.gw().ConnectNum(ctx, chaosTopic); n != int64(len(subs)) {
			return fmt.Errorf("gateway A counts %d subscribers of %q, want %d", n, chaosTopic, len(subs))
		}
		return nil
	})
	connects := bn.gw().Stats().ConnectsTotal

	// Two publishers on A: a v2 websocket client and the Go API.
	wsp, err := dialPublisher(a.ws, "ws", chaosTopic)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wsp.c.close)
	pubs := []*publisher{
		newPublisher("ws", wsp.publish),
		newPublisher("api", func(seq int64) error {
			ctx, cancel := context.WithTimeout(ctx, replyWait)
			defer cancel()
			return a.gw().Publish(ctx, chaosTopic, []byte(payload{"api", seq}.json()))
		}),
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, p := range pubs {
		wg.Go(func() { p.run(stop) })
	}
	stopped := false
	stopPublishers := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	t.Cleanup(stopPublishers)

	// everyoneReached waits until every subscriber received from every
	// publisher a message numbered want[publisher] or above.
	everyoneReached := func(total time.Duration, want map[string]int64, what string) error {
		return wait.Poll(total, pollEvery, func() error {
			for _, s := range subs {
				for _, p := range pubs {
					if got := s.s.lastOf(p.name); got < want[p.name] {
						return fmt.Errorf("%s has received %s up to %d, want %d (%s)", s.name, p.name, got, want[p.name], what)
					}
				}
			}
			return nil
		})
	}
	snapshot := func(f func(p *publisher) int64) map[string]int64 {
		m := make(map[string]int64)
		for _, p := range pubs {
			m[p.name] = f(p)
		}
		return m
	}

	// The stream flows for a while, and everything acknowledged so far
	// arrives.
	wait.For(t, settleWithin, pollEvery, func() error {
		for _, p := range pubs {
			if n := p.lastOK.Load(); n < beforeKill {
				return fmt.Errorf("%s: %d publishes acknowledged, want %d before the kill", p.name, n, beforeKill)
			}
		}
		return nil
	})
	synced := snapshot(func(p *publisher) int64 { return p.lastOK.Load() })
	if err := everyoneReached(settleWithin, synced, "synchronising before the kill"); err != nil {
		t.Fatal(err)
	}
	for _, p := range pubs {
		if n := p.failed.Load(); n > 0 {
			p.mu.Lock()
			samples := p.samples
			p.mu.Unlock()
			t.Fatalf("publisher %s: %d publishes failed before the kill: %v", p.name, n, samples)
		}
	}

	// The outage.
	for _, p := range pubs {
		p.setOutage(true)
	}
	killedAt := time.Now()
	failedBefore := snapshot(func(p *publisher) int64 { return p.failed.Load() })
	b.kill()
	err = wait.Poll(settleWithin, pollEvery, func() error {
		if d := time.Since(killedAt); d < outageAtLeast {
			return fmt.Errorf("down for %v only", d)
		}
		for _, p := range pubs {
			if n := p.failed.Load() - failedBefore[p.name]; n < outageFailures {
				return fmt.Errorf("%d publishes of %s failed since the kill, want %d", n, p.name, outageFailures)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("publishes do not fail while the broker is down: %v", err)
	}
	atRestart := snapshot(func(p *publisher) int64 { return p.attempted.Load() + 1 })
	failedAtRestart := snapshot(func(p *publisher) int64 { return p.failed.Load() })
	restartedAt := time.Now()
	b.restart()
	if err := everyoneReached(recoverWithin, atRestart, "after the restart"); err != nil {
		t.Fatalf("delivery did not resume without client action: %v", err)
	}
	recovery := time.Since(restartedAt)
	for _, p := range pubs {
		p.setOutage(false)
	}
	recovered := snapshot(func(p *publisher) int64 { return p.attempted.Load() })

	// After the recovery nothing acknowledged is lost.
	wait.For(t, settleWithin, pollEvery, func() error {
		for _, p := range pubs {
			if n := p.lastOK.Load(); n < recovered[p.name]+afterRecovery {
				return fmt.Errorf("%s: %d acknowledged, want %d", p.name, n, recovered[p.name]+afterRecovery)
			}
		}
		return nil
	})
	stopPublishers()
	final := snapshot(func(p *publisher) int64 { return p.lastOK.Load() })
	if err := everyoneReached(settleWithin, final, "the last acknowledged publish"); err != nil {
		t.Errorf("messages acknowledged after the recovery are missing: %v", err)
	}
	wait.For(t, settleWithin, pollEvery, func() error {
		if n := a.gw().ConnectNum(ctx, chaosTopic); n != int64(len(subs)) {
			return fmt.Errorf("after the restart gateway A counts %d subscribers, want %d", n, len(subs))
		}
		return nil
	})
	if got := bn.gw().Stats().ConnectsTotal; got != connects {
		t.Errorf("clients reconnected to gateway B: %d connects before the kill, %d after", connects, got)
	}

	// The books: per subscriber and publisher, every acknowledged publish
	// must have been delivered, those acknowledged after the restart (the
	// reconnections) included; only those still in flight when the broker
	// died (acknowledged less than inFlight before the kill began, and
	// before the publisher's first refusal) may be missing, and they are
	// counted apart.
	var (
		published, acked, failed int64
		failedAfterRestart       int64
		delivered, lost          = make(map[string]int64), make(map[string]int64)
		lostInCrash              = make(map[string]int64)
		crashes                  int
		crashFrom, crashTo       time.Duration // when those were acknowledged, from the start of the kill
		deliveredDespiteError    int64
	)
	for _, p := range pubs {
		published += p.attempted.Load()
		acked += p.ok.Load()
		failed += p.failed.Load()
		failedAfterRestart += p.failed.Load() - failedAtRestart[p.name]
		if d := p.slowestFail.load(); d > failFast {
			t.Errorf("publisher %s: a failing publish took %v, want under %v", p.name, d, failFast)
		}
		if d := p.slowest.load(); d > failFast {
			t.Errorf("publisher %s: a publish took %v during the outage, want under %v", p.name, d, failFast)
		}
		p.mu.Lock()
		for kind, n := range p.codes {
			// The documented failures: broker.ErrUnavailable from the Go
			// API, error 503 to a v2 client; and, for a publish in flight
			// when the broker died, broker.ErrUnknownOutcome.
			if kind != "ErrUnavailable" && kind != "v2 error 503" && kind != "unknown outcome" {
				t.Errorf("publisher %s: %d publishes failed with %s (for example %v)", p.name, n, kind, p.samples)
			}
		}
		p.mu.Unlock()
	}
	for _, s := range subs {
		if ps := s.s.problems(); len(ps) > 0 {
			t.Errorf("%s: %s", s.name, joinProblems(ps))
		}
		for _, p := range pubs {
			got := s.s.received(p.name)
			var missing []string
			p.mu.Lock()
			for seq := int64(1); seq < int64(len(p.acked)); seq++ {
				switch at := p.ackedAt[seq]; {
				case got[seq] && !p.acked[seq] && p.unknown[seq]:
					deliveredDespiteError++
				case got[seq] && !p.acked[seq]:
					t.Errorf("%s received publish %d of %s, which failed as not sent", s.name, seq, p.name)
				case got[seq]:
					delivered[s.name]++
				case !p.acked[seq]:
				case at.After(killedAt.Add(-inFlight)) && at.Before(p.firstFail):
					// Acknowledged just before the publisher's first
					// refusal, which came after the kill.
					if d := at.Sub(killedAt); crashes == 0 {
						crashFrom, crashTo = d, d
					} else {
						crashFrom, crashTo = min(crashFrom, d), max(crashTo, d)
					}
					crashes++
					lostInCrash[s.name]++
				default:
					missing = append(missing, fmt.Sprintf("%d acknowledged %v after the restart", seq, at.Sub(restartedAt).Round(time.Millisecond)))
				}
			}
			p.mu.Unlock()
			lost[s.name] += int64(len(missing))
			if len(missing) > 0 {
				t.Errorf("%s lost %d acknowledged messages of %s: %v", s.name, len(missing), p.name, joinProblems(missing))
			}
		}
	}
	codes := make(map[string]int)
	var firstFail, lastFail time.Duration
	for _, p := range pubs {
		p.mu.Lock()
		for k, v := range p.codes {
			codes[p.name+" "+k] += v
		}
		if !p.firstFail.IsZero() && (firstFail == 0 || p.firstFail.Sub(killedAt) < firstFail) {
			firstFail = p.firstFail.Sub(killedAt)
		}
		lastFail = max(lastFail, p.lastFail.Sub(restartedAt))
		p.mu.Unlock()
	}
	var minDel, maxDel, maxLost, maxCrash int64 = -1, 0, 0, 0
	for _, s := range subs {
		d := delivered[s.name]
		if minDel < 0 || d < minDel {
			minDel = d
		}
		maxDel = max(maxDel, d)
		maxLost = max(maxLost, lost[s.name])
		maxCrash = max(maxCrash, lostInCrash[s.name])
	}
	t.Logf("figures: published %d (acknowledged %d, refused %d: %d during the outage, %d after the restart (reconnection and settle window); %v), outage %v, first failure %v after the kill, slowest failing publish %v; "+
		"last refusal %v after the restart, delivery to every subscriber %v after it; "+
		"delivered per subscriber %d..%d of %d acknowledged, acknowledged but lost at most %d per subscriber (and %d in flight at the crash, acknowledged %v to %v after the kill began), %d deliveries of publishes that had failed with an unknown outcome; whole scenario %v",
		published, acked, failed, failed-failedAfterRestart, failedAfterRestart, sortedCodes(codes),
		restartedAt.Sub(killedAt).Round(time.Millisecond), firstFail.Round(time.Microsecond),
		max(pubs[0].slowestFail.load(), pubs[1].slowestFail.load()).Round(time.Microsecond),
		lastFail.Round(time.Millisecond), recovery.Round(time.Millisecond),
		minDel, maxDel, acked, maxLost, maxCrash, crashFrom.Round(10*time.Microsecond), crashTo.Round(10*time.Microsecond), deliveredDespiteError, time.Since(began).Round(time.Millisecond))
}

func sortedCodes(m map[string]int) string {
	var ks []string
	for k, v := range m {
		ks = append(ks, fmt.Sprintf("%s: %d", k, v))
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}
