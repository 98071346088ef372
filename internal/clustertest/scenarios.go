package clustertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker"
)

// TwoGateways: a publish on either gateway reaches the websocket
// subscribers on both exactly once, v1 and v2 alike; counts are
// cluster-wide and follow unsubscribes and disconnects; a payload of
// bigPayload bytes arrives intact.
func TwoGateways(t *testing.T, g1, g2 *Gateway, bigPayload int) {
	t.Helper()
	const room, intl = "room 1", "ünï 世界 🚀"
	a := Dial(t, g1, "a", false)
	b := Dial(t, g2, "b", false)
	c := Dial(t, g2, "c", true)
	a.Send(t, `{"type":"subscribe","topic":" room 1 ,,ünï 世界 🚀","data":""}`)
	b.Send(t, `{"type":"subscribe","topic":"room 1,ünï 世界 🚀","data":""}`)
	c.Send(t, `{"id":1,"type":"subscribe","topics":["room 1"]}`)
	c.Expect(t, `{"type":"ack","id":1}`)
	ClusterCount(t, room, 3, g1, g2)
	ClusterCount(t, intl, 2, g1, g2)
	if n := g1.G.LocalConnectNum(room); n != 1 {
		t.Fatalf("gateway 1 has %d local subscribers of %q, want 1", n, room)
	}
	WaitRoute(t, g1, room, b, a, c)
	WaitRoute(t, g2, intl, a, b)

	a.Send(t, `{"type":"publish","topic":"room 1","data":{"n":1}}`)
	b.Send(t, `{"type":"publish","topic":"ünï 世界 🚀","data":"héllo, 世界"}`)
	for _, cl := range []*Client{a, b} {
		got := []string{cl.Next(t), cl.Next(t)}
		slices.Sort(got)
		if want := []string{`"héllo, 世界"`, `{"n":1}`}; !slices.Equal(got, want) {
			t.Fatalf("%s got %q, want %q in any order", cl.Name, got, want)
		}
	}
	if f := c.Next(t); !strings.Contains(f, `"topic":"room 1"`) || !strings.HasSuffix(f, `"data":{"n":1}}`) {
		t.Fatalf("v2 client got %s", f)
	}

	big := make([]byte, bigPayload)
	for i := range big {
		big[i] = 'a' + byte(i%26)
	}
	big[0], big[len(big)-1] = '"', '"'
	b.Send(t, `{"type":"publish","topic":"room 1","data":`+string(big)+`}`)
	a.Expect(t, string(big))
	b.Expect(t, string(big))
	if f := c.Next(t); !strings.HasSuffix(f, `"data":`+string(big)+`}`) {
		t.Fatalf("v2 client got %s", Excerpt(f))
	}

	// Exactly once: a duplicate would arrive before the marker.
	Marker(t, a, room, a, b)
	Marker(t, b, intl, a, b)
	if f := c.Next(t); !strings.Contains(f, "marker") {
		t.Fatalf("v2 client got %s before the marker", Excerpt(f))
	}
	c.Quiet(t, 100*time.Millisecond)

	// Counts follow unsubscribes and disconnects, cluster-wide.
	b.Send(t, `{"type":"unSubscribe","topic":"room 1","data":""}`)
	ClusterCount(t, room, 2, g1, g2)
	_ = c.C.Close()
	ClusterCount(t, room, 1, g1, g2)
}

// HostileTopics are valid firetower topics that mean something to Redis
// (globs, hash tags) or NATS (separators, wildcards), or are merely long
// or unusual.
var HostileTopics = []string{
	"*", ">", ".", "..", "a.*", "a.>", "*.a", "a", "a.b", "#", "a/+", "?", "[ab]", "a*",
	"with space", "ünïcødé 世界 🚀", "{tag}x", `quote"back\slash`, "%s %d", "line\u2028sep\u2029end",
	strings.Repeat("x", 255), strings.Repeat("é", 127) + "x", // 255 bytes each
}

// TopicNames: a v2 client on gateway 2 subscribed to every hostile topic
// receives each publish from gateway 1 exactly once, with its own topic,
// and a v1 client subscribed to "a" alone receives only "a": no name is a
// pattern for another.
func TopicNames(t *testing.T, g1, g2 *Gateway) {
	t.Helper()
	all := Dial(t, g2, "all", true)
	onlyA := Dial(t, g2, "only-a", false)
	topics, err := json.Marshal(HostileTopics)
	if err != nil {
		t.Fatal(err)
	}
	all.Send(t, `{"id":1,"type":"subscribe","topics":`+string(topics)+`}`)
	all.Expect(t, `{"type":"ack","id":1}`)
	onlyA.Send(t, `{"type":"subscribe","topic":"a","data":""}`)
	for _, topic := range HostileTopics {
		ClusterCount(t, topic, map[bool]int64{true: 2, false: 1}[topic == "a"], g1)
	}
	// Probe every topic until all has had a probe on each.
	probed := make(map[string]bool)
	CheckFor(t, 5*time.Second, func() error {
		for _, topic := range HostileTopics {
			if !probed[topic] {
				if err := g1.G.Publish(context.Background(), topic, []byte(`"probe"`)); err != nil {
					return err
				}
			}
		}
		for deadline := time.After(20 * time.Millisecond); ; {
			select {
			case s := <-all.In:
				var f struct {
					Topic string `json:"topic"`
				}
				_ = json.Unmarshal([]byte(s), &f)
				probed[f.Topic] = true
				continue
			case <-deadline:
			}
			break
		}
		if len(probed) < len(HostileTopics) {
			return fmt.Errorf("probes received on %d of %d topics", len(probed), len(HostileTopics))
		}
		return nil
	})
	WaitRoute(t, g1, "a", onlyA, all)

	for i, topic := range HostileTopics {
		if err := g1.G.Publish(context.Background(), topic, []byte(strconv.Itoa(i))); err != nil {
			t.Fatalf("publish on %q: %v", topic, err)
		}
	}
	seen := make(map[string]int)
	for range HostileTopics {
		var f struct {
			Topic string          `json:"topic"`
			Data  json.RawMessage `json:"data"`
		}
		s := all.Next(t)
		if err := json.Unmarshal([]byte(s), &f); err != nil {
			t.Fatalf("v2 frame %s: %v", Excerpt(s), err)
		}
		i, err := strconv.Atoi(string(f.Data))
		if err != nil || i < 0 || i >= len(HostileTopics) || HostileTopics[i] != f.Topic {
			t.Errorf("received data %s on topic %q: not what was published there", f.Data, f.Topic)
			continue
		}
		seen[f.Topic]++
	}
	for _, topic := range HostileTopics {
		if seen[topic] != 1 {
			t.Errorf("topic %q delivered %d times, want once", topic, seen[topic])
		}
	}
	onlyA.Expect(t, strconv.Itoa(slices.Index(HostileTopics, "a")))
	all.Quiet(t, 100*time.Millisecond)
	onlyA.Quiet(t, 0)
}

// KilledUnderStream: the broker's server is killed under a steady stream
// of publishes on gateway 1. Those publishes fail fast with an error
// wrapping broker.ErrUnavailable while it is down (the one in flight at the
// kill, if any, with broker.ErrUnknownOutcome; local subscribers still
// get them); a client that subscribes during the outage is registered
// once the server is back; delivery to gateway 2 resumes within a few
// seconds of the restart with no client reconnecting, and the counts are
// right again.
func KilledUnderStream(t *testing.T, g1, g2 *Gateway, kill, restart func()) {
	t.Helper()
	local := Dial(t, g1, "local", false)
	remote := Dial(t, g2, "remote", false)
	remote2 := Dial(t, g2, "remote2", false)
	for _, cl := range []*Client{local, remote, remote2} {
		cl.Send(t, `{"type":"subscribe","topic":"stream","data":""}`)
	}
	ClusterCount(t, "stream", 3, g1, g2)

	var (
		seq       atomic.Int64
		failures  atomic.Int64
		unknown   atomic.Int64
		slowest   atomic.Int64
		otherErrs sync.Map
		wg        sync.WaitGroup
	)
	stop := make(chan struct{})
	wg.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			began := time.Now()
			err := g1.G.Publish(context.Background(), "stream", []byte(strconv.FormatInt(seq.Add(1), 10)))
			switch {
			case err == nil:
			case errors.Is(err, broker.ErrUnavailable):
				failures.Add(1)
				slowest.Store(max(slowest.Load(), int64(time.Since(began))))
			case errors.Is(err, broker.ErrUnknownOutcome):
				unknown.Add(1)
			default:
				otherErrs.Store(err.Error(), true)
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()

	// lastOf drains a client and returns the last sequence number it got.
	lastOf := func(cl *Client, wait time.Duration) int64 {
		var last int64
		deadline := time.After(wait)
		for {
			select {
			case s := <-cl.In:
				if n, err := strconv.ParseInt(s, 10, 64); err == nil {
					last = n
				}
			case <-deadline:
				return last
			}
		}
	}
	CheckFor(t, 5*time.Second, func() error {
		if lastOf(remote, 20*time.Millisecond) == 0 {
			return errors.New("the stream does not reach gateway 2")
		}
		return nil
	})
	connects := g1.G.Stats().ConnectsTotal + g2.G.Stats().ConnectsTotal

	kill()
	CheckFor(t, 5*time.Second, func() error {
		if failures.Load() < 10 {
			return fmt.Errorf("%d publishes have failed, want 10", failures.Load())
		}
		return nil
	})
	if d := time.Duration(slowest.Load()); d > time.Second {
		t.Errorf("a failing publish took %v, want it to fail fast", d)
	}
	// Local subscribers are served during the outage.
	before := lastOf(local, 50*time.Millisecond)
	if after := lastOf(local, 100*time.Millisecond); after <= before {
		t.Errorf("the local subscriber stopped receiving during the outage (%d then %d)", before, after)
	}
	// A subscription made during the outage.
	late := Dial(t, g2, "late", false)
	late.Send(t, `{"type":"subscribe","topic":"late","data":""}`)
	lastOf(remote, 50*time.Millisecond)
	lastOf(remote2, 0)
	killedAt := seq.Load()

	restarted := time.Now()
	restart()
	CheckFor(t, 10*time.Second, func() error {
		if n := lastOf(remote, 10*time.Millisecond); n <= killedAt {
			return fmt.Errorf("gateway 2 has received nothing published since the kill (seq %d)", killedAt)
		}
		return nil
	})
	t.Logf("delivery resumed %v after the restart; %d publishes failed during the outage, the slowest in %v",
		time.Since(restarted).Round(time.Millisecond), failures.Load(), time.Duration(slowest.Load()).Round(time.Microsecond))
	if n := lastOf(remote2, 200*time.Millisecond); n <= killedAt {
		t.Errorf("the second subscriber on gateway 2 did not resume (last %d)", n)
	}
	ClusterCount(t, "stream", 3, g1, g2)
	ClusterCount(t, "late", 1, g1)
	WaitRoute(t, g1, "late", late)
	if got := g1.G.Stats().ConnectsTotal + g2.G.Stats().ConnectsTotal; got != connects+1 {
		t.Errorf("clients reconnected: %d connects before, %d after (one new client)", connects, got)
	}
	otherErrs.Range(func(k, _ any) bool {
		t.Errorf("publish error other than ErrUnavailable or ErrUnknownOutcome: %v", k)
		return true
	})
	// One publisher publishes one message at a time: at most the one in
	// flight at the kill can have an unknown outcome.
	if n := unknown.Load(); n > 1 {
		t.Errorf("%d publishes ended with an unknown outcome, want at most 1 (the one in flight at the kill)", n)
	}
}

// OrderThroughTwoGateways: 10,000 sequential publishes on gateway 1 reach
// subscribers on both gateways in order, none lost, none twice
// (RELIABILITY.md, ordering). The publisher stays at most 128 messages
// ahead of the slowest subscriber, so that no client queue overflows:
// nothing is slow.
func OrderThroughTwoGateways(t *testing.T, g1, g2 *Gateway) {
	t.Helper()
	subs := []*Client{Dial(t, g1, "local", false), Dial(t, g2, "remote-1", false), Dial(t, g2, "remote-2", true)}
	for _, c := range subs {
		c.Send(t, `{"type":"subscribe","topic":"order","data":""}`)
	}
	ClusterCount(t, "order", 3, g1, g2)
	WaitRoute(t, g1, "order", subs[1], subs[0], subs[2])

	const n, window = 10000, 128
	next := make([]int, len(subs)) // the last sequence number each got
	check := func(i int, s string) {
		if subs[i].Name == "remote-2" { // v2: the data is the envelope's last field
			j := strings.LastIndex(s, `"data":`)
			if j < 0 {
				t.Fatalf("%s: unexpected frame %s", subs[i].Name, s)
			}
			s = strings.TrimSuffix(s[j+len(`"data":`):], "}")
		}
		v, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("%s: unexpected message %s", subs[i].Name, Excerpt(s))
		}
		if v != next[i]+1 {
			t.Fatalf("%s: got %d after %d (lost, duplicated or reordered)", subs[i].Name, v, next[i])
		}
		next[i] = v
	}
	for seq := 1; seq <= n; seq++ {
		if err := g1.G.Publish(context.Background(), "order", []byte(strconv.Itoa(seq))); err != nil {
			t.Fatal(err)
		}
		for i, c := range subs {
			for seq-next[i] > window || (seq == n && next[i] < n) {
				select {
				case s := <-c.In:
					check(i, s)
				case <-time.After(5 * time.Second):
					t.Fatalf("%s: stuck at %d of %d", c.Name, next[i], n)
				}
			}
		}
	}
}
