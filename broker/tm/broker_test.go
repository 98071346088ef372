package tm_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/broker/tm"
	"github.com/firetower-go/firetower/internal/cluster"
	"github.com/firetower-go/firetower/topicmgr"
)

func publish(b *tm.Broker, origin, topic, data string, id uint64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return b.Publish(ctx, &broker.Message{Topic: topic, ID: id, Origin: origin, Data: []byte(data)})
}

// publishUntilDelivered publishes probes on topic from a until b gets one:
// the interest of b has reached the owner.
func publishUntilDelivered(t *testing.T, a *node, b *node, topic string) {
	t.Helper()
	checkFor(t, 5*time.Second, func() error {
		if err := publish(a.b, a.id, topic, `"probe"`, 0); err != nil {
			return err
		}
		select {
		case <-b.got:
			return nil
		case <-time.After(20 * time.Millisecond):
			return fmt.Errorf("node %s did not receive on %q", b.id, topic)
		}
	})
	drain(b)
}

func drain(n *node) {
	for {
		select {
		case <-n.got:
		default:
			return
		}
	}
}

// Killing the manager (listener and connections closed, no goodbye) under a
// steady publish stream: publishes fail fast with ErrUnavailable while it is
// down; after a restart on the same port, delivery resumes within a few
// seconds without anything done by the nodes, and counts are right again.
func TestManagerRestart(t *testing.T) {
	m := startManager(t, topicmgr.Config{})
	cfg := fastConfig(m)
	a, b := startNode(t, "a", cfg), startNode(t, "b", cfg)
	b.b.SetInterest("stream", 3)
	a.b.SetInterest("stream", 1)
	publishUntilDelivered(t, a, b, "stream")

	var seq atomic.Uint64
	stop := make(chan struct{})
	var errs sync.Map // error text -> count, while down
	var slowest atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			began := time.Now()
			err := publish(a.b, "a", "stream", strconv.FormatUint(seq.Add(1), 10), seq.Load())
			if d := time.Since(began); err != nil && int64(d) > slowest.Load() {
				slowest.Store(int64(d))
			}
			if err != nil {
				if !errors.Is(err, broker.ErrUnavailable) {
					errs.Store("unexpected: "+err.Error(), true)
				}
				errs.Store("unavailable", true)
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()

	b.recv(t, 5*time.Second) // the stream flows
	m.kill()
	// Publishes fail fast while the manager is down.
	checkFor(t, 5*time.Second, func() error {
		if _, ok := errs.Load("unavailable"); !ok {
			return errors.New("no publish failed yet")
		}
		return nil
	})
	if _, err := b.b.Count(context.Background(), "stream"); !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Count while the manager is down: %v, want ErrUnavailable", err)
	}
	if d := time.Duration(slowest.Load()); d > 100*time.Millisecond {
		t.Errorf("a failing publish took %v; want it to fail fast", d)
	}
	drain(b)

	restarted := time.Now()
	m.restart(t)
	// Delivery resumes: b receives messages published after the restart.
	checkFor(t, 5*time.Second, func() error {
		select {
		case <-b.got: // drained after the kill: published after the restart
			return nil
		case <-time.After(20 * time.Millisecond):
			return errors.New("no delivery since the restart")
		}
	})
	t.Logf("delivery resumed %v after the restart", time.Since(restarted).Round(time.Millisecond))
	checkFor(t, 5*time.Second, func() error {
		na, err := a.b.Count(context.Background(), "stream")
		if err != nil {
			return err
		}
		nb, err := b.b.Count(context.Background(), "stream")
		if err != nil {
			return err
		}
		if na != 3 || nb != 1 {
			return fmt.Errorf("counts a=%d b=%d, want 3 and 1", na, nb)
		}
		return nil
	})
	errs.Range(func(k, _ any) bool {
		if s := k.(string); s != "unavailable" {
			t.Error(s)
		}
		return true
	})
	for _, s := range a.b.Managers() {
		if s.Connects != 2 {
			t.Errorf("node a connected %d times to %s, want 2", s.Connects, s.Key)
		}
	}
}

// A network cut (neither side says anything) is healed by reconnecting and
// resyncing: the manager takes the session over within its lease, counts
// are not doubled, and delivery goes on.
func TestNetworkCut(t *testing.T) {
	m := startManager(t, topicmgr.Config{Lease: time.Minute})
	p := newProxy(t, m.addr)
	a := startNode(t, "a", fastConfig(m))
	cfgB := fastConfig(m)
	cfgB.Managers[0].Addr = p.addr // b reaches the same manager (same key) through the proxy
	b := startNode(t, "b", cfgB)
	b.b.SetInterest("t", 2)
	publishUntilDelivered(t, a, b, "t")

	p.cut()
	checkFor(t, 5*time.Second, func() error {
		if s := b.b.Managers()[0]; s.Connects < 2 || !s.Up {
			return fmt.Errorf("b reconnected %d times, up %v", s.Connects-1, s.Up)
		}
		return nil
	})
	publishUntilDelivered(t, a, b, "t")
	if n, err := a.b.Count(context.Background(), "t"); err != nil || n != 2 {
		t.Errorf("Count after the cut = %d, %v; want 2", n, err)
	}
	if st := m.srv.Stats(); st.Gateways != 2 {
		t.Errorf("manager holds %d gateways, want 2", st.Gateways)
	}
}

// A gateway that vanishes (its connections die, no goodbye, it never comes
// back) leaves the counts when its lease ends.
func TestVanishedGatewayLeavesAfterLease(t *testing.T) {
	const lease = 500 * time.Millisecond
	m := startManager(t, topicmgr.Config{Lease: lease})
	p := newProxy(t, m.addr)
	a := startNode(t, "a", fastConfig(m))
	cfgB := fastConfig(m)
	cfgB.Managers[0].Addr = p.addr
	b := startNode(t, "b", cfgB)
	b.b.SetInterest("t", 5)
	checkFor(t, 5*time.Second, func() error {
		if n, err := a.b.Count(context.Background(), "t"); err != nil || n != 5 {
			return fmt.Errorf("Count = %d, %v; want 5", n, err)
		}
		return nil
	})
	p.close() // b is cut off for good
	gone := time.Now()
	checkFor(t, 5*time.Second, func() error {
		if n, err := a.b.Count(context.Background(), "t"); err != nil || n != 0 {
			return fmt.Errorf("Count = %d, %v; want 0", n, err)
		}
		return nil
	})
	if d := time.Since(gone); d < lease/2 {
		t.Errorf("counts vanished after %v, before the %v lease", d, lease)
	}
}

// Every reconnect waits a backoff, also after a session that was
// established: a manager that accepts and then drops every session is not
// hammered, and is not retried at a fixed interval either.
func TestReconnectBackoff(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var accepted []time.Time
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, time.Now())
			mu.Unlock()
			// A full handshake, then the connection drops.
			r := cluster.NewReader(c, 0)
			_ = c.SetDeadline(time.Now().Add(time.Second))
			if f, err := r.ReadFrame(); err == nil && f.Type == cluster.TypeHello {
				_, _ = c.Write(cluster.AppendWelcome(nil, cluster.Welcome{ManagerID: "flaky", Heartbeat: time.Second, MaxFrame: cluster.DefaultMaxFrame}))
			}
			_ = c.Close()
		}
	})
	defer func() { _ = l.Close(); wg.Wait() }()

	cfg := tm.Config{
		Managers:   []tm.Manager{{Addr: l.Addr().String(), Key: "flaky"}},
		BackoffMin: 10 * time.Millisecond,
		BackoffMax: 200 * time.Millisecond,
		Logger:     testLogger(),
	}
	n := startNode(t, "n", cfg)
	const window = 1500 * time.Millisecond
	time.Sleep(window) // measuring a rate over a fixed window
	_ = n.b.Close()
	mu.Lock()
	got := slices.Clone(accepted)
	mu.Unlock()
	// Without backoff this is thousands; a fixed 1 s interval gives 2.
	// Full jitter capped at 200 ms averages 100 ms once at the cap.
	if len(got) < 6 || len(got) > 40 {
		t.Fatalf("%d connections in %v, want between 6 and 40", len(got), window)
	}
	var gaps []time.Duration
	for i := 1; i < len(got); i++ {
		gaps = append(gaps, got[i].Sub(got[i-1]))
	}
	if slices.Max(gaps) > 400*time.Millisecond {
		t.Errorf("a reconnect waited %v, beyond the 200 ms cap", slices.Max(gaps))
	}
	if slices.Max(gaps)-slices.Min(gaps) < 20*time.Millisecond {
		t.Errorf("reconnect gaps %v are not jittered", gaps)
	}
}

// With three managers every topic lives on its owner only, the topics spread
// over all three, and every publish reaches the interested nodes.
func TestSharding(t *testing.T) {
	ms := []*manager{startManager(t, topicmgr.Config{}), startManager(t, topicmgr.Config{}), startManager(t, topicmgr.Config{})}
	cfg := fastConfig(ms...)
	a, b := startNode(t, "a", cfg), startNode(t, "b", cfg)
	const n = 60
	var names []string
	for i := range n {
		topic := fmt.Sprintf("shard-%d", i)
		names = append(names, topic)
		b.b.SetInterest(topic, int64(i+1))
	}
	owners := make(map[string][]string)
	for _, topic := range names {
		owners[b.b.OwnerOf(topic)] = append(owners[b.b.OwnerOf(topic)], topic)
	}
	for _, m := range ms {
		want := owners[m.addr]
		slices.Sort(want)
		if len(want) == 0 {
			t.Fatalf("manager %s owns none of %d topics", m.addr, n)
		}
		checkFor(t, 5*time.Second, func() error {
			if got := m.srv.Topics(); !slices.Equal(got, want) {
				return fmt.Errorf("manager %s holds %d topics, want its %d", m.addr, len(got), len(want))
			}
			return nil
		})
	}
	for i, topic := range names {
		if err := publish(a.b, "a", topic, strconv.Itoa(i), uint64(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	seen := make(map[string]bool)
	for range n {
		m := b.recv(t, 5*time.Second)
		if seen[m.Topic] {
			t.Fatalf("%q delivered twice", m.Topic)
		}
		seen[m.Topic] = true
	}
	b.quiet(t, 100*time.Millisecond)
	for i, topic := range names {
		if c, err := a.b.Count(context.Background(), topic); err != nil || c != int64(i+1) {
			t.Fatalf("Count(%q) = %d, %v; want %d", topic, c, err, i+1)
		}
	}
}

// Changing the manager list (a rolling restart of the gateways with the new
// list): only the topics of a removed manager move, and only to the
// remaining ones; an added manager takes topics only from the others, and
// the ones it does not win stay where they were.
func TestManagerListChange(t *testing.T) {
	m1, m2, m3 := startManager(t, topicmgr.Config{}), startManager(t, topicmgr.Config{}), startManager(t, topicmgr.Config{})
	var names []string
	for i := range 90 {
		names = append(names, fmt.Sprintf("move-%d", i))
	}
	holdings := func(ms ...*manager) map[*manager][]string {
		out := make(map[*manager][]string)
		for _, m := range ms {
			out[m] = m.srv.Topics()
		}
		return out
	}
	// run starts a gateway with the list, registers every topic, waits
	// until the managers hold them all, and closes it (its goodbye clears
	// the managers again).
	run := func(list ...*manager) map[*manager][]string {
		n := startNode(t, fmt.Sprintf("gw-%d", len(list)), fastConfig(list...))
		for _, topic := range names {
			n.b.SetInterest(topic, 1)
		}
		checkFor(t, 5*time.Second, func() error {
			total := 0
			for _, m := range list {
				total += len(m.srv.Topics())
			}
			if total != len(names) {
				return fmt.Errorf("managers hold %d topics, want %d", total, len(names))
			}
			return nil
		})
		h := holdings(list...)
		_ = n.b.Close()
		checkFor(t, 5*time.Second, func() error {
			for _, m := range list {
				if got := len(m.srv.Topics()); got != 0 {
					return fmt.Errorf("manager still holds %d topics after the goodbye", got)
				}
			}
			return nil
		})
		return h
	}
	three := run(m1, m2, m3)
	two := run(m1, m2) // m3 removed
	for _, m := range []*manager{m1, m2} {
		for _, topic := range three[m] {
			if !slices.Contains(two[m], topic) {
				t.Errorf("removing m3 moved %q away from a manager that stays", topic)
			}
		}
		for _, topic := range two[m] {
			if !slices.Contains(three[m], topic) && !slices.Contains(three[m3], topic) {
				t.Errorf("removing m3 moved %q, which m3 did not own", topic)
			}
		}
	}
	m4 := startManager(t, topicmgr.Config{})
	four := run(m1, m2, m3, m4) // m4 added
	if len(four[m4]) == 0 {
		t.Error("the added manager owns no topic")
	}
	for _, m := range []*manager{m1, m2, m3} {
		for _, topic := range four[m] {
			if !slices.Contains(three[m], topic) {
				t.Errorf("adding m4 moved %q between the old managers", topic)
			}
		}
	}
}

// Publish and Count fail at once with ErrUnavailable when the topic's
// owner is down, but not for the topics of the managers that are up; a
// command falls back to a manager that is up.
func TestOwnerDown(t *testing.T) {
	up := startManager(t, topicmgr.Config{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downAddr := l.Addr().String()
	_ = l.Close() // nothing listens there
	cfg := fastConfig(up)
	cfg.Managers = append(cfg.Managers, tm.Manager{Addr: downAddr, Key: downAddr})
	cfg.StartWait = 500 * time.Millisecond
	a, b := startNode(t, "a", cfg), startNode(t, "b", cfg)

	var onUp, onDown string
	for i := 0; onUp == "" || onDown == ""; i++ {
		topic := fmt.Sprintf("t%d", i)
		if a.b.OwnerOf(topic) == up.addr {
			onUp = topic
		} else {
			onDown = topic
		}
	}
	began := time.Now()
	err = publish(a.b, "a", onDown, `1`, 1)
	if !errors.Is(err, broker.ErrUnavailable) || time.Since(began) > 100*time.Millisecond {
		t.Errorf("publish to a down owner: %v after %v, want ErrUnavailable at once", err, time.Since(began))
	}
	if _, err := a.b.Count(context.Background(), onDown); !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Count on a down owner: %v, want ErrUnavailable", err)
	}
	b.b.SetInterest(onUp, 1)
	publishUntilDelivered(t, a, b, onUp)

	cmd, err := broker.Command{Op: broker.OpCloseTopic, Topic: onDown}.Message(7, "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.b.Publish(context.Background(), cmd); err != nil {
		t.Fatalf("command whose topic's owner is down: %v", err)
	}
	if got := b.recv(t, 5*time.Second); got.Kind != broker.KindCommand || got.ID != 7 {
		t.Fatalf("b got %+v, want the command", got)
	}
}

// PublishWait lets a publish wait for a manager that is coming back.
func TestPublishWait(t *testing.T) {
	m := startManager(t, topicmgr.Config{})
	cfg := fastConfig(m)
	cfg.PublishWait = 5 * time.Second
	a := startNode(t, "a", cfg)
	m.kill()
	checkFor(t, 5*time.Second, func() error {
		if a.b.Managers()[0].Up {
			return errors.New("still up")
		}
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- publish(a.b, "a", "t", `1`, 1) }()
	select {
	case err := <-done:
		t.Fatalf("publish returned %v while the manager was down, want it to wait", err)
	case <-time.After(100 * time.Millisecond):
	}
	m.restart(t)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("publish after the manager came back: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("publish still waiting 5s after the restart")
	}
}

func TestTooLarge(t *testing.T) {
	m := startManager(t, topicmgr.Config{MaxFrame: 64 << 10})
	a := startNode(t, "a", fastConfig(m))
	big := make([]byte, 64<<10)
	err := publish(a.b, "a", "t", string(big), 1)
	if !errors.Is(err, tm.ErrTooLarge) || !errors.Is(err, broker.ErrTooLarge) {
		t.Fatalf("publish over the manager's limit: %v, want ErrTooLarge", err)
	}
	if err := publish(a.b, "a", "t", `"small"`, 2); err != nil {
		t.Fatalf("the connection is unusable after a refused publish: %v", err)
	}
}

// The external publisher: publishes reach gateways, counts are totals,
// commands go to every gateway, bad data is refused, and it fails fast
// while its manager is down.
func TestPublisher(t *testing.T) {
	m := startManager(t, topicmgr.Config{})
	cfg := fastConfig(m)
	b, c := startNode(t, "b", cfg), startNode(t, "c", cfg)
	b.b.SetInterest("news", 2)
	c.b.SetInterest("news", 3)
	p, err := tm.NewPublisher(context.Background(), cfg, "backend")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	checkFor(t, 5*time.Second, func() error {
		if n, err := p.Count(ctx, "news"); err != nil || n != 5 {
			return fmt.Errorf("Count = %d, %v; want 5", n, err)
		}
		return nil
	})
	id, err := p.Publish(ctx, "news", []byte(`{"headline":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []*node{b, c} {
		if got := n.recv(t, 5*time.Second); got.ID != id || got.Origin != "backend" || string(got.Data) != `{"headline":"x"}` {
			t.Fatalf("node %s got %+v", n.id, got)
		}
	}
	if err := p.Command(ctx, broker.Command{Op: broker.OpDisconnectUser, UserID: "mallory"}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*node{b, c} {
		got := n.recv(t, 5*time.Second)
		if cmd, err := broker.DecodeCommand(got); err != nil || cmd.UserID != "mallory" {
			t.Fatalf("node %s got %+v (%v)", n.id, got, err)
		}
	}
	if _, err := p.Publish(ctx, "news", []byte(`{"unterminated"`)); !errors.Is(err, tm.ErrInvalidData) {
		t.Errorf("invalid JSON: %v, want ErrInvalidData", err)
	}
	if _, err := p.Publish(ctx, "a,b", []byte(`1`)); err == nil {
		t.Error("a topic with a comma was accepted")
	}
	m.kill()
	checkFor(t, 5*time.Second, func() error {
		_, err := p.Publish(ctx, "news", []byte(`1`))
		if !errors.Is(err, broker.ErrUnavailable) {
			return fmt.Errorf("publish while down: %v, want ErrUnavailable", err)
		}
		return nil
	})
}

// A large interest table is split into INTEREST frames that fit the
// manager's limit; a topic that cannot fit any frame is left out without
// breaking the connection.
func TestInterestBatching(t *testing.T) {
	m := startManager(t, topicmgr.Config{MaxFrame: cluster.MinMaxFrame})
	a := startNode(t, "a", fastConfig(m))
	const n = 2000
	for i := range n {
		a.b.SetInterest(fmt.Sprintf("%0200d", i), int64(i+1)) // 2000 topics of 200 bytes: ~100 frames
	}
	a.b.SetInterest(strings.Repeat("x", cluster.MinMaxFrame), 1)
	checkFor(t, 5*time.Second, func() error {
		if got := len(m.srv.Topics()); got != n {
			return fmt.Errorf("the manager holds %d topics, want %d", got, n)
		}
		return nil
	})
	if c := m.srv.Count(fmt.Sprintf("%0200d", 1999)); c != 2000 {
		t.Errorf("count %d, want 2000", c)
	}
	if s := a.b.Managers()[0]; s.Connects != 1 || !s.Up {
		t.Errorf("connection state %+v: want the first connection, still up", s)
	}
}

// Close while the connection is down (a cut, then waiting to reconnect):
// the broker says goodbye on a connection of its own, so its counts go at
// once instead of at the end of the lease.
func TestCloseWhileDisconnected(t *testing.T) {
	m := startManager(t, topicmgr.Config{Lease: time.Minute})
	p := newProxy(t, m.addr)
	a := startNode(t, "a", fastConfig(m))
	cfgB := fastConfig(m)
	cfgB.Managers[0].Addr = p.addr
	cfgB.BackoffMin, cfgB.BackoffMax = 10*time.Second, 10*time.Second // it stays down once cut
	b := startNode(t, "b", cfgB)
	b.b.SetInterest("t", 4)
	checkFor(t, 5*time.Second, func() error {
		if n, err := a.b.Count(context.Background(), "t"); err != nil || n != 4 {
			return fmt.Errorf("Count = %d, %v; want 4", n, err)
		}
		return nil
	})
	p.cut()
	checkFor(t, 5*time.Second, func() error {
		if b.b.Managers()[0].Up {
			return errors.New("b still connected")
		}
		return nil
	})
	began := time.Now()
	if err := b.b.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
	checkFor(t, 5*time.Second, func() error {
		if n, err := a.b.Count(context.Background(), "t"); err != nil || n != 0 {
			return fmt.Errorf("Count = %d, %v; want 0 (the lease is a minute)", n, err)
		}
		return nil
	})
}
