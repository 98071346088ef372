package brokertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/internal/wait"
)

// Factory builds a new, empty cluster for one subtest and returns the
// constructor of its nodes. Every broker newNode returns must be unstarted
// and joined to that cluster and no other: the suite starts it with a unique
// node id and closes it in t.Cleanup. Resources of the cluster (a bus, a
// server, a key prefix) belong to the t given to the Factory; those of one
// node to the t given to newNode.
type Factory func(t *testing.T) (newNode func(t *testing.T) broker.Broker)

// Default bounds, used where the corresponding Options field is zero. They
// suit a broker on loopback; a broker that batches interest for longer must
// say so in Options.
const (
	DefaultInterestDelay   = 3 * time.Second
	DefaultDeliveryTimeout = 3 * time.Second
	DefaultQuiet           = 100 * time.Millisecond
)

// Options describe the timing and the implementation-specific behaviour of a
// broker. The zero value means the defaults above and a broker that accepts
// (or does not check) duplicate node ids.
type Options struct {
	// InterestDelay is the longest a SetInterest, or the Close of a node, may
	// take to show in the other nodes' routing and Count.
	InterestDelay time.Duration
	// DeliveryTimeout is the longest a message may take to reach an
	// interested node after Publish returned. It also bounds each Publish,
	// Count and Close call of the suite.
	DeliveryTimeout time.Duration
	// Quiet is how long the suite watches for a message that must not
	// arrive. It must exceed the broker's normal delivery latency.
	Quiet time.Duration
	// RefusesDuplicateNodeID declares that Start fails while another live
	// node of the cluster uses the same node id. When false, the
	// DuplicateNodeID subtest is skipped.
	RefusesDuplicateNodeID bool
}

// Validate rejects negative durations.
func (o Options) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"InterestDelay", o.InterestDelay}, {"DeliveryTimeout", o.DeliveryTimeout}, {"Quiet", o.Quiet}} {
		if d.v < 0 {
			return fmt.Errorf("brokertest: %s is negative (%v)", d.name, d.v)
		}
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.InterestDelay == 0 {
		o.InterestDelay = DefaultInterestDelay
	}
	if o.DeliveryTimeout == 0 {
		o.DeliveryTimeout = DefaultDeliveryTimeout
	}
	if o.Quiet == 0 {
		o.Quiet = DefaultQuiet
	}
	return o
}

// pollInterval is how often the suite re-checks a condition and sends the
// next interest probe: short, so that a synchronous broker finishes at once,
// yet far from flooding a remote broker with probes.
const pollInterval = 10 * time.Millisecond

// probeBit marks the ids of interest probes, so that measurements skip them.
const probeBit = uint64(1) << 63

// CheckFor calls fn until it returns nil, every interval, and fails the test
// with fn's last error if that has not happened within total. It must be
// called from the test's goroutine.
func CheckFor(t testing.TB, total, interval time.Duration, fn func() error) {
	t.Helper()
	wait.For(t, total, interval, fn)
}

// Run runs the conformance suite against the brokers f builds: one subtest
// per guarantee, in sequence, each on a cluster of its own, so that one can
// be run alone (-run 'TestX/Order'). The subtests are Delivery,
// WithdrawInterest, Count, Order, OrderTwoPublishers, ManyTopics,
// TopicNames, Payloads, Commands, Close, Concurrency, NodeIDReuse and
// DuplicateNodeID.
//
// Besides the guarantees of broker.Broker, the suite holds every broker to
// these details of its contract:
//   - Publish with no interested node returns nil.
//   - Publish and Count on a closed broker fail with an error wrapping
//     broker.ErrClosed; SetInterest is ignored.
//   - Close returns nil, also when called again or concurrently; after it
//     returns, the handler is never called. A cleanly closed node's counts
//     disappear within InterestDelay, without waiting for a lease.
//   - A node id can be used again once its node has closed.
func Run(t *testing.T, f Factory, opts Options) {
	t.Helper()
	if f == nil {
		t.Fatal("brokertest: nil Factory")
	}
	if err := opts.Validate(); err != nil {
		t.Fatal(err)
	}
	opts = opts.withDefaults()
	for _, st := range []struct {
		name string
		run  func(*testing.T, *cluster)
	}{
		{"Delivery", testDelivery},
		{"WithdrawInterest", testWithdrawInterest},
		{"Count", testCount},
		{"Order", testOrder},
		{"OrderTwoPublishers", testOrderTwoPublishers},
		{"ManyTopics", testManyTopics},
		{"TopicNames", testTopicNames},
		{"Payloads", testPayloads},
		{"Commands", testCommands},
		{"Close", testClose},
		{"Concurrency", testConcurrency},
		{"PublishOutcome", testPublishOutcome},
		{"NodeIDReuse", testNodeIDReuse},
		{"DuplicateNodeID", testDuplicateNodeID},
	} {
		t.Run(st.name, func(t *testing.T) {
			newNode := f(t)
			if newNode == nil {
				t.Fatal("brokertest: the Factory returned a nil node constructor")
			}
			st.run(t, &cluster{opts: opts, newNode: newNode, prefix: fmt.Sprintf("bt-%08x", rand.Uint32())})
		})
	}
}

// cluster is one subtest's set of nodes.
type cluster struct {
	opts    Options
	newNode func(*testing.T) broker.Broker
	prefix  string        // makes node ids unique across clusters and runs
	ids     atomic.Uint64 // message ids: unique in the cluster, increasing
}

// node is a started broker and what its handler received.
type node struct {
	name string
	id   string
	b    broker.Broker
	rec  *recorder
}

// node starts a node named name (in failure messages) and fails the test if
// Start fails.
func (c *cluster) node(t *testing.T, name string) *node {
	t.Helper()
	n, err := c.startNode(t, name, c.prefix+"-"+name)
	if err != nil {
		t.Fatalf("start node %s (id %q): %v", name, n.id, err)
	}
	return n
}

// startNode creates a node and starts it with id. The node is closed in
// t.Cleanup whether Start succeeded or not; once it is closed, the cleanup
// also checks that its handler was never called with its own messages nor
// after Close had returned.
func (c *cluster) startNode(t *testing.T, name, id string) (*node, error) {
	t.Helper()
	b := c.newNode(t)
	if b == nil {
		t.Fatal("brokertest: the node constructor returned nil")
	}
	n := &node{name: name, id: id, b: b, rec: &recorder{self: id}}
	var started bool
	t.Cleanup(func() {
		if err := c.close(n); err != nil && started {
			t.Errorf("node %s: Close: %v", name, err)
		}
		if echo, late := n.rec.violations(); echo > 0 || late > 0 {
			t.Errorf("node %s: handler called %d times with the node's own messages and %d times after Close returned", name, echo, late)
		}
	})
	if err := b.Start(t.Context(), id, n.rec.handle); err != nil {
		return n, err
	}
	started = true
	return n, nil
}

// close closes n, bounded by DeliveryTimeout so that a broker that hangs in
// Close fails the test instead of stalling the run.
func (c *cluster) close(n *node) error {
	done := make(chan error, 1)
	go func() { done <- n.b.Close() }()
	select {
	case err := <-done:
		n.rec.markClosed()
		return err
	case <-time.After(c.opts.DeliveryTimeout):
		return fmt.Errorf("did not return within %v", c.opts.DeliveryTimeout)
	}
}

func (c *cluster) message(from *node, topic string, data []byte) *broker.Message {
	return &broker.Message{Topic: topic, ID: c.ids.Add(1), Origin: from.id, Data: data}
}

// probe returns an interest probe, a message the measurements leave out.
func (c *cluster) probe(from *node, topic string) *broker.Message {
	return &broker.Message{Topic: topic, ID: probeBit | c.ids.Add(1), Origin: from.id, Data: []byte(`"brokertest probe"`)}
}

func (c *cluster) tryPublish(from *node, m *broker.Message) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.DeliveryTimeout)
	defer cancel()
	return from.b.Publish(ctx, m)
}

// publish publishes a new message and fails the test if Publish fails.
func (c *cluster) publish(t *testing.T, from *node, topic string, data []byte) *broker.Message {
	t.Helper()
	m := c.message(from, topic, data)
	if err := c.tryPublish(from, m); err != nil {
		t.Fatalf("node %s: Publish on %q: %v", from.name, topic, err)
	}
	return m
}

func (c *cluster) count(n *node, topic string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.DeliveryTimeout)
	defer cancel()
	return n.b.Count(ctx, topic)
}

// watch lets Quiet pass, for a check that something did not happen.
func (c *cluster) watch() { time.Sleep(c.opts.Quiet) }

// pair starts nodes a and b, b with interest in topic, and waits until a's
// publishes on topic reach b.
func (c *cluster) pair(t *testing.T, topic string) (a, b *node) {
	t.Helper()
	a, b = c.node(t, "a"), c.node(t, "b")
	b.b.SetInterest(topic, 1)
	c.waitInterest(t, a, []string{topic}, b)
	return a, b
}

// waitInterest publishes probes from from on every topic until each node of
// to has received one on each topic, so that the interest of to has reached
// from's routing.
func (c *cluster) waitInterest(t *testing.T, from *node, topics []string, to ...*node) {
	t.Helper()
	// lacking lists the (topic, node) pairs without a probe yet.
	lacking := func() []string {
		var out []string
		for _, topic := range topics {
			for _, n := range to {
				if !n.rec.hasProbe(topic, from.id) {
					out = append(out, fmt.Sprintf("%q by %s", topic, n.name))
				}
			}
		}
		return out
	}
	CheckFor(t, c.opts.InterestDelay, pollInterval, func() error {
		for _, topic := range topics {
			if !slices.ContainsFunc(to, func(n *node) bool { return !n.rec.hasProbe(topic, from.id) }) {
				continue
			}
			if err := c.tryPublish(from, c.probe(from, topic)); err != nil {
				return fmt.Errorf("node %s: publish probe on %q: %w", from.name, topic, err)
			}
		}
		// A synchronous broker has delivered the probes by now.
		if missing := lacking(); len(missing) > 0 {
			return fmt.Errorf("interest not seen by node %s: no probe received on %s", from.name, strings.Join(first(missing, 5), ", "))
		}
		return nil
	})
}

// waitWithdrawn publishes a probe from from on topic, and another every
// poll, until one is not delivered to n within Quiet: n's withdrawal of its
// interest has reached from's routing.
func (c *cluster) waitWithdrawn(t *testing.T, from *node, topic string, n *node) {
	t.Helper()
	CheckFor(t, c.opts.InterestDelay, pollInterval, func() error {
		p := c.probe(from, topic)
		if err := c.tryPublish(from, p); err != nil {
			return fmt.Errorf("node %s: publish probe on %q: %w", from.name, topic, err)
		}
		c.watch()
		if n.rec.hasID(p.ID) {
			return fmt.Errorf("node %s still receives %q from node %s after withdrawing its interest", n.name, topic, from.name)
		}
		return nil
	})
}

// waitReceived waits until n has received at least want messages on topic
// ("" for any topic), probes not counted.
func (c *cluster) waitReceived(t *testing.T, n *node, topic string, want int) {
	t.Helper()
	if err := c.awaitReceived(n, topic, want); err != nil {
		t.Fatal(err)
	}
}

// awaitReceived is waitReceived returning the failure, for a test that
// goes on to say which messages are missing.
func (c *cluster) awaitReceived(n *node, topic string, want int) error {
	return wait.Poll(c.opts.DeliveryTimeout, pollInterval, func() error {
		if got := len(n.rec.received(topic)); got < want {
			return fmt.Errorf("node %s received %d of %d messages on %q", n.name, got, want, topic)
		}
		return nil
	})
}

// waitCounts waits until Count(topic) on each node returns the wanted value.
func (c *cluster) waitCounts(t *testing.T, topic string, want map[*node]int64) {
	t.Helper()
	CheckFor(t, c.opts.InterestDelay, pollInterval, func() error {
		var wrong []string
		for n, w := range want {
			got, err := c.count(n, topic)
			if err != nil {
				return fmt.Errorf("node %s: Count(%q): %w", n.name, topic, err)
			}
			if got != w {
				wrong = append(wrong, fmt.Sprintf("node %s sees %d, want %d", n.name, got, w))
			}
		}
		if len(wrong) > 0 {
			slices.Sort(wrong)
			return fmt.Errorf("Count(%q): %s", topic, strings.Join(wrong, "; "))
		}
		return nil
	})
}

// recorder is a node's handler: it keeps every message it is given.
type recorder struct {
	self string // the node's id

	mu     sync.Mutex
	msgs   []*broker.Message
	echo   int // messages whose origin is the node itself
	closed bool
	late   int // calls after Close returned
}

func (r *recorder) handle(m *broker.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		r.late++
	}
	if m.Origin == r.self {
		r.echo++
	}
	r.msgs = append(r.msgs, m)
}

func (r *recorder) markClosed() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
}

func (r *recorder) violations() (echo, late int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.echo, r.late
}

// received returns the messages received on topic ("" for all), probes left
// out, in arrival order.
func (r *recorder) received(topic string) []*broker.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*broker.Message
	for _, m := range r.msgs {
		if m.ID&probeBit == 0 && (topic == "" || m.Topic == topic) {
			out = append(out, m)
		}
	}
	return out
}

// all returns every message received, probes included.
func (r *recorder) all() []*broker.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

func (r *recorder) hasProbe(topic, origin string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.msgs {
		if m.ID&probeBit != 0 && m.Topic == topic && m.Origin == origin {
			return true
		}
	}
	return false
}

func (r *recorder) hasID(id uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.msgs {
		if m.ID == id {
			return true
		}
	}
	return false
}

// expectNothing fails the test if n has received anything, probes included.
func expectNothing(t *testing.T, n *node) {
	t.Helper()
	if got := n.rec.all(); len(got) > 0 {
		t.Errorf("node %s received %d messages, want none; first: %s", n.name, len(got), describe(got[0]))
	}
}

// expectExactly fails the test unless n received exactly want on topic, once
// each, in this order, each identical to what was published.
func expectExactly(t *testing.T, n *node, topic string, want ...*broker.Message) {
	t.Helper()
	got := n.rec.received(topic)
	if len(got) != len(want) {
		var ds []string
		for _, m := range first(got, 5) {
			ds = append(ds, describe(m))
		}
		t.Errorf("node %s received %d messages on %q, want %d: %s", n.name, len(got), topic, len(want), strings.Join(ds, ", "))
		return
	}
	for i := range got {
		if err := sameMessage(got[i], want[i]); err != nil {
			t.Errorf("node %s, message %d on %q: %v", n.name, i, topic, err)
		}
	}
}

// expectUnordered fails the test unless n received exactly want, each once,
// in any order, each identical to what was published (probes left out).
func expectUnordered(t *testing.T, n *node, want ...*broker.Message) {
	t.Helper()
	got := n.rec.received("")
	byID := make(map[uint64]*broker.Message, len(want))
	for _, m := range want {
		byID[m.ID] = m
	}
	seen := make(map[uint64]bool)
	for _, m := range got {
		w, ok := byID[m.ID]
		switch {
		case !ok:
			t.Errorf("node %s received an unexpected message %s", n.name, describe(m))
		case seen[m.ID]:
			t.Errorf("node %s received %s twice", n.name, describe(m))
		default:
			if err := sameMessage(m, w); err != nil {
				t.Errorf("node %s, message %d: %v", n.name, m.ID, err)
			}
		}
		seen[m.ID] = true
	}
	for _, m := range want {
		if !seen[m.ID] {
			t.Errorf("node %s did not receive %s", n.name, describe(m))
		}
	}
}

// onTopic returns the messages of ms on exactly topic ("" included).
func onTopic(ms []*broker.Message, topic string) []*broker.Message {
	var out []*broker.Message
	for _, m := range ms {
		if m.Topic == topic {
			out = append(out, m)
		}
	}
	return out
}

func idsOf(ms []*broker.Message) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func sameMessage(got, want *broker.Message) error {
	var diffs []string
	if got.Kind != want.Kind {
		diffs = append(diffs, fmt.Sprintf("Kind %v, want %v", got.Kind, want.Kind))
	}
	if got.Topic != want.Topic {
		diffs = append(diffs, fmt.Sprintf("Topic %q, want %q", got.Topic, want.Topic))
	}
	if got.ID != want.ID {
		diffs = append(diffs, fmt.Sprintf("ID %d, want %d", got.ID, want.ID))
	}
	if got.Origin != want.Origin {
		diffs = append(diffs, fmt.Sprintf("Origin %q, want %q", got.Origin, want.Origin))
	}
	if !bytes.Equal(got.Data, want.Data) {
		diffs = append(diffs, "Data "+dataDiff(got.Data, want.Data))
	}
	if len(diffs) > 0 {
		return errors.New(strings.Join(diffs, "; "))
	}
	return nil
}

// dataDiff says where two payloads first differ, without printing a 1 MiB
// payload in full.
func dataDiff(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	return fmt.Sprintf("differs at byte %d (got %d bytes, want %d): got %q, want %q",
		i, len(got), len(want), excerpt(got, i), excerpt(want, i))
}

func excerpt(b []byte, at int) []byte {
	lo, hi := max(at-8, 0), min(at+24, len(b))
	if lo > hi {
		return nil
	}
	return b[lo:hi]
}

func describe(m *broker.Message) string {
	kind := ""
	if m.ID&probeBit != 0 {
		kind = "probe "
	}
	if m.Kind != broker.KindPublish {
		kind += m.Kind.String() + " "
	}
	return fmt.Sprintf("%s{Topic:%q ID:%d Origin:%q Data:%q}", kind, m.Topic, m.ID&^probeBit, m.Origin, excerpt(m.Data, 0))
}

func first[S ~[]E, E any](s S, n int) S { return s[:min(n, len(s))] }

func topicsOf(ms []*broker.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Topic)
	}
	return out
}

// checkSequence checks that the messages from origin among got carry the
// payloads 1..n, in this order, each once, with increasing ids.
func checkSequence(t *testing.T, got []*broker.Message, origin string, n int) {
	t.Helper()
	var problems []string
	next, seen, lastID := 1, 0, uint64(0)
	for _, m := range got {
		if m.Origin != origin {
			continue
		}
		seen++
		v, err := strconv.Atoi(string(m.Data))
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("foreign payload %q", excerpt(m.Data, 0)))
		case v < next:
			problems = append(problems, fmt.Sprintf("%d after %d (duplicate or reordered)", v, next-1))
		case v > next:
			problems = append(problems, fmt.Sprintf("%d after %d (%d..%d lost or reordered)", v, next-1, next, v-1))
			next = v + 1
		default:
			next++
		}
		if m.ID <= lastID {
			problems = append(problems, fmt.Sprintf("id %d after id %d", m.ID, lastID))
		}
		lastID = m.ID
	}
	if seen != n {
		problems = append(problems, fmt.Sprintf("%d messages, want %d", seen, n))
	}
	if len(problems) > 0 {
		t.Errorf("messages from %s: %s", origin, strings.Join(first(problems, 8), "; "))
	}
}

func stacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// testDelivery: a publish reaches the nodes with interest, unchanged, and
// neither its origin (even with interest) nor a node without interest.
func testDelivery(t *testing.T, c *cluster) {
	a, b, x := c.node(t, "a"), c.node(t, "b"), c.node(t, "x")
	const topic = "delivery"
	a.b.SetInterest(topic, 1)
	b.b.SetInterest(topic, 1)
	x.b.SetInterest("delivery-elsewhere", 1)
	c.waitInterest(t, a, []string{topic}, b)
	c.waitInterest(t, b, []string{topic}, a)

	ab := c.publish(t, a, topic, []byte(`{"from":"a","n":1}`))
	c.waitReceived(t, b, topic, 1)
	ba := c.publish(t, b, topic, []byte(`{"from":"b","n":2}`))
	c.waitReceived(t, a, topic, 1)
	c.watch()

	expectExactly(t, b, topic, ab)
	expectExactly(t, a, topic, ba)
	expectNothing(t, x)
	for _, n := range []*node{a, b} {
		for _, m := range n.rec.all() {
			if m.Origin == n.id {
				t.Errorf("node %s received its own message %s", n.name, describe(m))
			}
		}
	}
}

// outcomeMessages is how many publishes testPublishOutcome gives up on at
// various moments.
const outcomeMessages = 200

// testPublishOutcome: Publish's result says what became of the message.
// Publishes whose context is already done, or ends within a few
// microseconds, race the broker: whatever the race gives, a nil result
// means delivered; an error wrapping broker.ErrUnknownOutcome may go
// either way; any other error (ErrUnavailable, ctx's error) means never
// delivered. A marker published after them settles it: by per-publisher
// order, anything sent before it arrives before it.
func testPublishOutcome(t *testing.T, c *cluster) {
	const topic = "outcome"
	a, b := c.pair(t, topic)
	type result struct {
		m   *broker.Message
		err error
	}
	results := make([]result, 0, outcomeMessages)
	for i := range outcomeMessages {
		m := c.message(a, topic, []byte(strconv.Itoa(i)))
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%8)*25*time.Microsecond)
		if i%8 == 0 {
			cancel() // already done
		}
		results = append(results, result{m, a.b.Publish(ctx, m)})
		cancel()
	}
	marker := c.publish(t, a, topic, []byte(`"marker"`))
	if err := wait.Poll(c.opts.DeliveryTimeout, pollInterval, func() error {
		if !b.rec.hasID(marker.ID) {
			return errors.New("the marker has not arrived")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var ok, notSent, unknown int
	for _, r := range results {
		got := b.rec.hasID(r.m.ID)
		switch {
		case r.err == nil:
			ok++
			if !got {
				t.Errorf("Publish of %s returned nil, and it was not delivered before the marker published after it", describe(r.m))
			}
		case errors.Is(r.err, broker.ErrUnknownOutcome):
			unknown++
			if errors.Is(r.err, broker.ErrUnavailable) || errors.Is(r.err, context.Canceled) || errors.Is(r.err, context.DeadlineExceeded) {
				t.Errorf("an unknown-outcome error also wraps a 'not sent' one: %v", r.err)
			}
		case errors.Is(r.err, broker.ErrUnavailable), errors.Is(r.err, context.Canceled), errors.Is(r.err, context.DeadlineExceeded):
			notSent++
			if got {
				t.Errorf("Publish of %s failed as not sent (%v), and it was delivered", describe(r.m), r.err)
			}
		default:
			t.Errorf("Publish of %s: %v, want nil, ErrUnavailable, ctx's error or ErrUnknownOutcome", describe(r.m), r.err)
		}
	}
	t.Logf("%d publishes given up on early: %d delivered, %d not sent, %d unknown outcome", len(results), ok, notSent, unknown)
}

// testWithdrawInterest: SetInterest(topic, 0) stops delivery, a positive
// count restores it, and Count follows.
func testWithdrawInterest(t *testing.T, c *cluster) {
	a, b := c.node(t, "a"), c.node(t, "b")
	const topic = "withdraw"
	b.b.SetInterest(topic, 1)
	c.waitInterest(t, a, []string{topic}, b)
	m1 := c.publish(t, a, topic, []byte(`1`))
	c.waitReceived(t, b, topic, 1)

	b.b.SetInterest(topic, 0)
	c.waitWithdrawn(t, a, topic, b)
	c.waitCounts(t, topic, map[*node]int64{a: 0})
	c.publish(t, a, topic, []byte(`2`))
	c.watch()
	expectExactly(t, b, topic, m1)

	b.b.SetInterest(topic, 2)
	c.waitInterest(t, a, []string{topic}, b)
	c.waitCounts(t, topic, map[*node]int64{a: 2})
	m3 := c.publish(t, a, topic, []byte(`3`))
	c.waitReceived(t, b, topic, 2)
	c.watch()
	expectExactly(t, b, topic, m1, m3)
}

// testCount: Count is the sum of the other nodes' latest counts, per topic,
// and a closed node's counts disappear.
func testCount(t *testing.T, c *cluster) {
	a, b, x := c.node(t, "a"), c.node(t, "b"), c.node(t, "x")
	const topic, other = "count", "count-other"
	c.waitCounts(t, topic, map[*node]int64{a: 0, b: 0, x: 0})

	a.b.SetInterest(topic, 3)
	b.b.SetInterest(topic, 2)
	a.b.SetInterest(other, 4)
	c.waitCounts(t, topic, map[*node]int64{a: 2, b: 3, x: 5})
	c.waitCounts(t, other, map[*node]int64{a: 0, b: 4, x: 4})

	a.b.SetInterest(topic, 7)
	c.waitCounts(t, topic, map[*node]int64{a: 2, b: 7, x: 9})
	b.b.SetInterest(topic, 0)
	c.waitCounts(t, topic, map[*node]int64{a: 0, b: 7, x: 7})
	b.b.SetInterest(topic, 1)
	x.b.SetInterest(topic, 10)
	c.waitCounts(t, topic, map[*node]int64{a: 11, b: 17, x: 8})

	if err := c.close(a); err != nil {
		t.Fatalf("node a: Close: %v", err)
	}
	c.waitCounts(t, topic, map[*node]int64{b: 10, x: 1})
	c.waitCounts(t, other, map[*node]int64{b: 0, x: 0})
}

// orderedMessages is how many sequential publishes the order test makes; at
// 2,000 a reordering or loss in a batching broker has room to show.
const orderedMessages = 2000

// testOrder: sequential publishes from one node on one topic arrive in order,
// each once, none lost.
func testOrder(t *testing.T, c *cluster) {
	const topic = "order"
	a, b := c.pair(t, topic)
	for i := 1; i <= orderedMessages; i++ {
		c.publish(t, a, topic, []byte(strconv.Itoa(i)))
	}
	if err := c.awaitReceived(b, topic, orderedMessages); err != nil {
		t.Error(err)
	} else {
		c.watch()
	}
	checkSequence(t, b.rec.received(topic), a.id, orderedMessages)
}

// testOrderTwoPublishers: with two nodes publishing at once on one topic,
// each one's sequence arrives in order, each message once.
func testOrderTwoPublishers(t *testing.T, c *cluster) {
	a, b, p := c.node(t, "a"), c.node(t, "b"), c.node(t, "p")
	const topic = "order2"
	const each = orderedMessages / 2
	b.b.SetInterest(topic, 1)
	c.waitInterest(t, a, []string{topic}, b)
	c.waitInterest(t, p, []string{topic}, b)
	var wg sync.WaitGroup
	for _, from := range []*node{a, p} {
		wg.Go(func() {
			for i := 1; i <= each; i++ {
				if err := c.tryPublish(from, c.message(from, topic, []byte(strconv.Itoa(i)))); err != nil {
					t.Errorf("node %s: Publish %d: %v", from.name, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := c.awaitReceived(b, topic, 2*each); err != nil {
		t.Error(err)
	} else {
		c.watch()
	}
	got := b.rec.received(topic)
	checkSequence(t, got, a.id, each)
	checkSequence(t, got, p.id, each)
}

// manyTopics is the number of topics of the routing test, half of them with
// interest.
const manyTopics = 200

// testManyTopics: with interest in half of many topics, exactly those are
// delivered, and each topic's count is its own.
func testManyTopics(t *testing.T, c *cluster) {
	a, b, x := c.node(t, "a"), c.node(t, "b"), c.node(t, "x")
	var topics, wanted []string
	for i := range manyTopics {
		topic := fmt.Sprintf("many-%03d", i)
		topics = append(topics, topic)
		if i%2 == 0 {
			wanted = append(wanted, topic)
			b.b.SetInterest(topic, int64(i+1))
		}
	}
	c.waitInterest(t, a, wanted, b)
	want := make(map[string]*broker.Message)
	for i, topic := range topics {
		m := c.publish(t, a, topic, []byte(strconv.Itoa(i)))
		if i%2 == 0 {
			want[topic] = m
		}
	}
	c.waitReceived(t, b, "", len(wanted))
	c.watch()

	got := b.rec.received("")
	seen := make(map[string]int)
	for _, m := range got {
		seen[m.Topic]++
		w, ok := want[m.Topic]
		switch {
		case !ok:
			t.Errorf("node b received %s without interest in its topic", describe(m))
		case seen[m.Topic] > 1:
			t.Errorf("node b received a second message on %q: %s", m.Topic, describe(m))
		default:
			if err := sameMessage(m, w); err != nil {
				t.Errorf("node b, topic %q: %v", m.Topic, err)
			}
		}
	}
	for _, topic := range wanted {
		if seen[topic] == 0 {
			t.Errorf("node b received nothing on %q", topic)
		}
	}
	expectNothing(t, x)

	CheckFor(t, c.opts.InterestDelay, pollInterval, func() error {
		for i, topic := range topics {
			expect := int64(0)
			if i%2 == 0 {
				expect = int64(i + 1)
			}
			got, err := c.count(a, topic)
			if err != nil {
				return fmt.Errorf("node a: Count(%q): %w", topic, err)
			}
			if got != expect {
				return fmt.Errorf("node a: Count(%q) = %d, want %d", topic, got, expect)
			}
		}
		return nil
	})
}

// testTopicNames: any valid topic name is carried exactly, and names that
// are wildcards or patterns in some broker (NATS, MQTT, Redis globs) match
// only themselves.
func testTopicNames(t *testing.T, c *cluster) {
	a, w, o := c.node(t, "a"), c.node(t, "w"), c.node(t, "o")
	wild := []string{"a.*", "a.>", ">", "*", "#", "a/#", "a/+", "?", "[ab]", "a*"}
	plain := []string{"a", "b", "ab", "a.b", "a.b.c", "a/b", "x"}
	odd := []string{
		"with space", "ünïcødé 世界 🚀", "a:b/c;d|e=f&g", "{hashtag}x",
		`quote"back\slash`, "%s %d %v", "\u2028line\u2029sep", "long-" + strings.Repeat("x", 250),
	}
	for _, topic := range wild {
		w.b.SetInterest(topic, 1)
	}
	for _, topic := range odd {
		o.b.SetInterest(topic, 1)
	}
	c.waitInterest(t, a, wild, w)
	c.waitInterest(t, a, odd, o)

	want := make(map[string]*broker.Message)
	for _, topic := range slices.Concat(wild, plain, odd) {
		want[topic] = c.publish(t, a, topic, []byte(strconv.Quote(topic)))
	}
	c.waitReceived(t, w, "", len(wild))
	c.waitReceived(t, o, "", len(odd))
	c.watch()
	for _, tc := range []struct {
		n      *node
		topics []string
	}{{w, wild}, {o, odd}} {
		got := tc.n.rec.received("")
		if !sameSet(topicsOf(got), tc.topics) {
			t.Errorf("node %s received topics %q, want exactly %q", tc.n.name, topicsOf(got), tc.topics)
			continue
		}
		for _, m := range got {
			if err := sameMessage(m, want[m.Topic]); err != nil {
				t.Errorf("node %s, topic %q: %v", tc.n.name, m.Topic, err)
			}
		}
	}
}

func sameSet(got, want []string) bool {
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}

// payloads are the data the payload test sends, each a JSON value that
// json.Valid accepts, as the gateway checks; a broker must carry them byte
// for byte (no re-encoding, no compaction, no HTML escaping, no UTF-8
// repair).
func payloads() []struct {
	name string
	data []byte
} {
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = 'a' + byte(i%26)
	}
	big[0], big[len(big)-1] = '"', '"'

	var binary bytes.Buffer
	binary.WriteByte('"')
	for c := byte(0x20); c < 0x7f; c++ {
		if c != '"' && c != '\\' {
			binary.WriteByte(c)
		}
	}
	binary.WriteString(`\"\\\/\b\f\n\r\t\u0000\u001f\ud83d\ude80`)
	binary.WriteString("héllo 世界 🚀 \u2028\u2029")
	binary.WriteByte('"')

	var invalid bytes.Buffer
	invalid.WriteByte('"')
	for c := 0x80; c <= 0xff; c++ {
		invalid.WriteByte(byte(c))
	}
	invalid.WriteByte('"')

	return []struct {
		name string
		data []byte
	}{
		{"null", []byte(`null`)},
		{"1 MiB string", big},
		{"escapes and unicode", binary.Bytes()},
		{"invalid UTF-8 in a string", invalid.Bytes()},
		{"whitespace and HTML", []byte(" {\"a\" : [ 1 , 2 ],\r\n\t\"b\": \"<p>&amp;</p>\"}\n")},
		{"number", []byte(`-1.5e+300`)},
	}
}

// testPayloads: payloads of every shape arrive byte-identical.
func testPayloads(t *testing.T, c *cluster) {
	a, b := c.node(t, "a"), c.node(t, "b")
	const topic = "payloads"
	b.b.SetInterest(topic, 1)
	c.waitInterest(t, a, []string{topic}, b)
	ps := payloads()
	sent := make(map[uint64]string)
	for _, p := range ps {
		if !json.Valid(p.data) {
			t.Fatalf("brokertest: payload %q is not valid JSON", p.name)
		}
		m := c.publish(t, a, topic, bytes.Clone(p.data))
		sent[m.ID] = p.name
	}
	c.waitReceived(t, b, topic, len(ps))
	c.watch()
	got := b.rec.received(topic)
	if len(got) != len(ps) {
		t.Errorf("node b received %d messages, want %d", len(got), len(ps))
	}
	for i, m := range got {
		name, ok := sent[m.ID]
		if !ok || i >= len(ps) {
			t.Errorf("node b received an unexpected message %s", describe(m))
			continue
		}
		if ps[i].name != name {
			t.Errorf("payload %q arrived in place of %q", name, ps[i].name)
		}
		for _, p := range ps {
			if p.name == name && !bytes.Equal(m.Data, p.data) {
				t.Errorf("payload %q: %s", name, dataDiff(m.Data, p.data))
			}
		}
	}
}

// testCommands: a command reaches every other node, with or without
// interest in its topic, never its origin nor a closed node, in order, as
// it was sent (Kind included); publishes keep following interest meanwhile.
func testCommands(t *testing.T, c *cluster) {
	a, b, x, gone := c.node(t, "a"), c.node(t, "b"), c.node(t, "x"), c.node(t, "gone")
	const topic = "commands"
	b.b.SetInterest(topic, 1)
	a.b.SetInterest(topic, 1)
	c.waitInterest(t, a, []string{topic}, b)
	if err := c.close(gone); err != nil {
		t.Fatalf("node gone: Close: %v", err)
	}

	command := func(from *node, cmd broker.Command) *broker.Message {
		t.Helper()
		m, err := cmd.Message(c.ids.Add(1), from.id)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.tryPublish(from, m); err != nil {
			t.Fatalf("node %s: Publish command %+v: %v", from.name, cmd, err)
		}
		return m
	}
	// Commands on the topic with interest, on no topic, and on a topic
	// nobody has, interleaved with a publish that only b may get.
	c1 := command(a, broker.Command{Op: broker.OpCloseTopic, Topic: topic})
	p := c.publish(t, a, topic, []byte(`"between commands"`))
	c2 := command(a, broker.Command{Op: broker.OpDisconnectUser, UserID: "user 1"})
	c3 := command(a, broker.Command{Op: broker.OpRemoveUserFromTopic, UserID: "u", Topic: "commands-nobody"})
	c4 := command(a, broker.Command{Op: broker.OpDisconnectClient, ClientID: "client, 1"})
	c.waitReceived(t, b, "", 5)
	c.waitReceived(t, x, "", 4)
	back := command(b, broker.Command{Op: broker.OpDisconnectClient, ClientID: "from b"})
	c.waitReceived(t, a, "", 1)
	c.waitReceived(t, x, "", 5)
	c.watch()

	// Order is per origin and topic: a sharded broker may reorder
	// messages of different topics.
	expectExactly(t, b, topic, c1, p)
	expectUnordered(t, b, c1, p, c2, c3, c4)
	expectUnordered(t, x, c1, c2, c3, c4, back)
	if got := onTopic(x.rec.received(""), ""); len(got) != 3 || got[0].ID != c2.ID || got[1].ID != c4.ID || got[2].ID != back.ID {
		t.Errorf("node x received the commands without a topic out of order: %v", idsOf(got))
	}
	expectExactly(t, a, "", back)
	expectNothing(t, gone)
	for _, n := range []*node{a, b, x} {
		for _, m := range n.rec.received("") {
			if m.Kind != broker.KindCommand {
				continue
			}
			if _, err := broker.DecodeCommand(m); err != nil {
				t.Errorf("node %s: command %s does not decode: %v", n.name, describe(m), err)
			}
		}
	}
}

// testClose: a closed node refuses Publish and Count with ErrClosed, ignores
// SetInterest, is never called again, and Close is idempotent.
func testClose(t *testing.T, c *cluster) {
	a, b, x := c.node(t, "a"), c.node(t, "b"), c.node(t, "x")
	const topic = "close"
	b.b.SetInterest(topic, 1)
	c.waitInterest(t, a, []string{topic}, b)
	c.waitCounts(t, topic, map[*node]int64{a: 1})

	if err := c.close(b); err != nil {
		t.Fatalf("node b: Close: %v", err)
	}
	if err := c.close(b); err != nil {
		t.Errorf("node b: second Close: %v, want nil", err)
	}
	if err := c.tryPublish(b, c.message(b, topic, []byte(`"after close"`))); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("node b: Publish after Close = %v, want an error wrapping broker.ErrClosed", err)
	}
	if _, err := c.count(b, topic); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("node b: Count after Close = %v, want an error wrapping broker.ErrClosed", err)
	}
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Errorf("node b: SetInterest after Close panicked: %v", p)
			}
		}()
		b.b.SetInterest(topic, 5)
		b.b.SetInterest(topic, 0)
	}()

	c.waitCounts(t, topic, map[*node]int64{a: 0})
	if err := c.tryPublish(a, c.message(a, topic, []byte(`"nobody listens"`))); err != nil {
		t.Errorf("node a: Publish with no interested node: %v, want nil", err)
	}
	c.watch()
	if got := b.rec.received(topic); len(got) != 0 {
		t.Errorf("node b received %d messages after Close", len(got))
	}

	// Concurrent Closes all return nil.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := c.close(x); err != nil {
				t.Errorf("node x: concurrent Close: %v", err)
			}
		})
	}
	wg.Wait()
}

// Sizes of the concurrency test: enough operations per goroutine to
// interleave on every lock, few enough to stay fast on a remote broker.
const (
	concurrentOps    = 300
	concurrentTopics = 8
)

// testConcurrency: SetInterest, Publish and Count at once on several nodes,
// one of them closing midway, neither race (under -race) nor deadlock, and
// leave the cluster consistent.
func testConcurrency(t *testing.T, c *cluster) {
	nodes := []*node{c.node(t, "a"), c.node(t, "b"), c.node(t, "c"), c.node(t, "d")}
	closing := nodes[3]
	topic := func(i int) string { return fmt.Sprintf("conc-%d", i) }
	// allowed reports whether err is acceptable from n: only the closing node
	// may fail, and only with ErrClosed.
	allowed := func(n *node, err error) bool {
		return err == nil || (n == closing && errors.Is(err, broker.ErrClosed))
	}
	// halfway is closed when node a has made half of its publishes, or has
	// stopped early, to close node d in the middle of the traffic.
	halfway := make(chan struct{})
	var halfwayOnce sync.Once
	reachHalfway := func() { halfwayOnce.Do(func() { close(halfway) }) }

	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() {
			for range concurrentOps {
				n.b.SetInterest(topic(rand.IntN(concurrentTopics)), rand.Int64N(4))
			}
		})
		wg.Go(func() {
			if n == nodes[0] {
				defer reachHalfway()
			}
			for i := range concurrentOps {
				m := c.message(n, topic(rand.IntN(concurrentTopics)), []byte(strconv.Itoa(i)))
				if err := c.tryPublish(n, m); !allowed(n, err) {
					t.Errorf("node %s: Publish: %v", n.name, err)
					return
				}
				if n == nodes[0] && i == concurrentOps/2 {
					reachHalfway()
				}
			}
		})
		wg.Go(func() {
			for range concurrentOps {
				if _, err := c.count(n, topic(rand.IntN(concurrentTopics))); !allowed(n, err) {
					t.Errorf("node %s: Count: %v", n.name, err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		<-halfway
		if err := c.close(closing); err != nil {
			t.Errorf("node %s: Close during traffic: %v", closing.name, err)
		}
	})
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(c.stallTimeout()):
		t.Fatalf("concurrent SetInterest/Publish/Count/Close did not finish within %v; goroutines:\n%s", c.stallTimeout(), stacks())
	}
	if t.Failed() {
		return
	}

	// The cluster is still consistent: the last counts win, the closed
	// node's are gone, and routing follows.
	live := nodes[:3]
	for i, n := range live {
		for j := range concurrentTopics {
			n.b.SetInterest(topic(j), 0)
		}
		n.b.SetInterest(topic(0), int64(i+1))
	}
	c.waitCounts(t, topic(0), map[*node]int64{live[0]: 5, live[1]: 4, live[2]: 3})
	c.waitCounts(t, topic(1), map[*node]int64{live[0]: 0, live[1]: 0, live[2]: 0})
	c.waitInterest(t, live[0], []string{topic(0)}, live[1], live[2])
}

// stallTimeout bounds the concurrency test: far beyond its normal duration,
// so that only a deadlock reaches it.
func (c *cluster) stallTimeout() time.Duration {
	return 5*time.Second + 2*(c.opts.InterestDelay+c.opts.DeliveryTimeout)
}

// testNodeIDReuse: after a node closes, a new node may start with its id; it
// neither inherits the old node's counts nor loses its own to the old
// node's departure.
func testNodeIDReuse(t *testing.T, c *cluster) {
	a, b := c.node(t, "a"), c.node(t, "b")
	const topic, other = "reuse", "reuse-other"
	a.b.SetInterest(topic, 5)
	a.b.SetInterest(other, 3)
	c.waitCounts(t, topic, map[*node]int64{b: 5})
	c.waitCounts(t, other, map[*node]int64{b: 3})
	if err := c.close(a); err != nil {
		t.Fatalf("node a: Close: %v", err)
	}

	a2, err := c.startNode(t, "a2", a.id)
	if err != nil {
		t.Fatalf("start node a2 with the id of closed node a (%q): %v", a.id, err)
	}
	a2.b.SetInterest(topic, 1)
	c.waitCounts(t, topic, map[*node]int64{b: 1, a2: 0})
	c.waitCounts(t, other, map[*node]int64{b: 0, a2: 0})
	c.waitInterest(t, b, []string{topic}, a2)
	m := c.publish(t, b, topic, []byte(`"to a2"`))
	c.waitReceived(t, a2, topic, 1)
	c.watch()
	expectExactly(t, a2, topic, m)
	// Counts are re-checked after the watch: a late withdrawal of the old
	// session must not remove the new one's interest.
	c.waitCounts(t, topic, map[*node]int64{b: 1})
}

// testDuplicateNodeID: a second live node with the same id is refused, and
// the first keeps working (only for brokers that declare it).
func testDuplicateNodeID(t *testing.T, c *cluster) {
	if !c.opts.RefusesDuplicateNodeID {
		t.Skip("the broker does not declare Options.RefusesDuplicateNodeID")
	}
	a, b := c.node(t, "a"), c.node(t, "b")
	const topic = "duplicate"
	a.b.SetInterest(topic, 2)
	c.waitInterest(t, b, []string{topic}, a)

	dup, err := c.startNode(t, "a-dup", a.id)
	if err == nil {
		t.Fatalf("a second node started with the id %q of live node a; want an error", a.id)
	}
	if err := c.close(dup); err != nil {
		t.Errorf("Close after a refused Start: %v", err)
	}
	c.waitCounts(t, topic, map[*node]int64{b: 2})
	m := c.publish(t, b, topic, []byte(`"still a"`))
	c.waitReceived(t, a, topic, 1)
	c.watch()
	expectExactly(t, a, topic, m)
	expectNothing(t, dup)
}
