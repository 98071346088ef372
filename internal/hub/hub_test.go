package hub

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/firetower-go/firetower/protocol"
)

// fakeSub records every frame it is handed, without copying it.
type fakeSub struct {
	name    string
	version protocol.Version
	onFrame func(frame []byte) // optional, called from Deliver

	mu         sync.Mutex
	frames     [][]byte
	deliveries []Delivery
}

var _ Subscriber = (*fakeSub)(nil)

func newSub(name string, v protocol.Version) *fakeSub { return &fakeSub{name: name, version: v} }

func (s *fakeSub) Version() protocol.Version { return s.version }

func (s *fakeSub) Deliver(d Delivery) {
	if s.onFrame != nil {
		s.onFrame(d.Frame)
	}
	s.mu.Lock()
	s.frames = append(s.frames, d.Frame)
	s.deliveries = append(s.deliveries, d)
	s.mu.Unlock()
}

func (s *fakeSub) got() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.frames)
}

// since returns the frames received after the first n.
func (s *fakeSub) since(n int) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.frames[n:])
}

func (s *fakeSub) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.frames)
}

func (s *fakeSub) String() string { return s.name }

// payload returns the payload of a single unmasked final text frame.
func payload(t *testing.T, frame []byte) []byte {
	t.Helper()
	if len(frame) < 2 || frame[0] != 0x80|protocol.OpText || frame[1]&0x80 != 0 {
		t.Fatalf("not an unmasked final text frame: % x", frame[:min(len(frame), 10)])
	}
	n, h := uint64(frame[1]&0x7f), 2
	switch n {
	case 126:
		n, h = uint64(binary.BigEndian.Uint16(frame[2:4])), 4
	case 127:
		n, h = binary.BigEndian.Uint64(frame[2:10]), 10
	}
	if uint64(len(frame)-h) != n {
		t.Fatalf("frame header says %d payload bytes, frame has %d", n, len(frame)-h)
	}
	return frame[h:]
}

type envelope struct {
	Type  string          `json:"type"`
	Topic string          `json:"topic"`
	ID    string          `json:"id"`
	Data  json.RawMessage `json:"data"`
}

func decodeV2(t *testing.T, frame []byte) envelope {
	t.Helper()
	var e envelope
	if err := json.Unmarshal(payload(t, frame), &e); err != nil {
		t.Fatalf("v2 frame %q: %v", frame, err)
	}
	return e
}

func sameSubs(got []*fakeSub, want ...*fakeSub) bool {
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			return false
		}
	}
	return true
}

func TestSubscribeUnsubscribe(t *testing.T) {
	h := New[*fakeSub](nil)
	a, b := newSub("a", protocol.V1), newSub("b", protocol.V2)

	steps := []struct {
		op    string // sub or unsub
		topic string
		s     *fakeSub
		want  bool
	}{
		{"unsub", "t", a, false}, // unknown topic
		{"sub", "t", a, true},
		{"sub", "t", a, false}, // already there
		{"sub", "t", b, true},
		{"sub", "u", a, true},
		{"unsub", "t", a, true},
		{"unsub", "t", a, false}, // gone already
		{"unsub", "u", b, false}, // topic known, subscriber not
		{"sub", "t", a, true},    // back again
	}
	for i, st := range steps {
		var got bool
		if st.op == "sub" {
			got = h.Subscribe(st.topic, st.s)
		} else {
			got = h.Unsubscribe(st.topic, st.s)
		}
		if got != st.want {
			t.Fatalf("step %d: %s(%q, %s) = %v, want %v", i, st.op, st.topic, st.s, got, st.want)
		}
	}
	if n := h.Count("t"); n != 2 {
		t.Errorf("Count(t) = %d, want 2", n)
	}
	if n := h.Count("u"); n != 1 {
		t.Errorf("Count(u) = %d, want 1", n)
	}
	if n := h.Count("none"); n != 0 {
		t.Errorf("Count(none) = %d, want 0", n)
	}
	if n := h.TopicCount(); n != 2 {
		t.Errorf("TopicCount = %d, want 2", n)
	}
	if subs := h.Subscribers("t"); !sameSubs(subs, a, b) {
		t.Errorf("Subscribers(t) = %v, want [a b]", subs)
	}
	if subs := h.Subscribers("none"); subs != nil {
		t.Errorf("Subscribers(none) = %v, want nil", subs)
	}

	// The last subscriber leaving removes the topic.
	if !h.Unsubscribe("u", a) {
		t.Fatal("Unsubscribe(u, a) = false")
	}
	if n := h.TopicCount(); n != 1 {
		t.Errorf("TopicCount = %d after u emptied, want 1", n)
	}
	if subs := h.Subscribers("u"); subs != nil {
		t.Errorf("Subscribers(u) = %v after it emptied, want nil", subs)
	}
	h.Unsubscribe("t", a)
	h.Unsubscribe("t", b)
	if n, c := h.TopicCount(), h.Count("t"); n != 0 || c != 0 {
		t.Errorf("TopicCount = %d, Count(t) = %d after everyone left, want 0, 0", n, c)
	}
}

func TestSubscribersSnapshot(t *testing.T) {
	h := New[*fakeSub](nil)
	subs := make([]*fakeSub, 5)
	for i := range subs {
		subs[i] = newSub(fmt.Sprint(i), protocol.V1)
		h.Subscribe("t", subs[i])
	}
	snap := h.Subscribers("t")
	if !sameSubs(snap, subs...) {
		t.Fatalf("snapshot %v", snap)
	}
	snap[0] = nil // a caller writing into its snapshot must not touch the hub
	h.Unsubscribe("t", subs[1])
	if got := h.Subscribers("t"); !sameSubs(got, subs[0], subs[2], subs[3], subs[4]) {
		t.Errorf("Subscribers after unsubscribing 1 = %v", got)
	}
	if snap[1] == nil || snap[4] == nil || len(snap) != 5 {
		t.Errorf("an earlier snapshot changed: %v", snap)
	}
	if n := h.Publish(Message{Topic: "t", Data: []byte(`1`)}); n != 4 {
		t.Errorf("Publish = %d, want 4", n)
	}
}

// TestUnsubscribeKeepsTheRest removes subscribers from the middle, the end
// and the front, and through the shrink path, and checks that exactly the
// remaining ones still receive.
func TestUnsubscribeKeepsTheRest(t *testing.T) {
	h := New[*fakeSub](nil)
	const n = 300
	subs := make([]*fakeSub, n)
	for i := range subs {
		subs[i] = newSub(fmt.Sprint(i), protocol.Version(1+i%2))
		if !h.Subscribe("t", subs[i]) {
			t.Fatalf("Subscribe %d = false", i)
		}
	}
	keep := map[int]bool{}
	for i := range subs {
		keep[i] = i%37 == 5 || i == n-1
	}
	// Remove in a scattered order.
	for _, i := range rand.New(rand.NewPCG(1, 2)).Perm(n) {
		if !keep[i] && !h.Unsubscribe("t", subs[i]) {
			t.Fatalf("Unsubscribe %d = false", i)
		}
	}
	var want []*fakeSub
	for i, s := range subs {
		if keep[i] {
			want = append(want, s)
		}
	}
	if got := h.Subscribers("t"); !sameSubs(got, want...) {
		t.Fatalf("Subscribers = %v, want %v", got, want)
	}
	if c := h.Count("t"); c != int64(len(want)) {
		t.Fatalf("Count = %d, want %d", c, len(want))
	}
	if got := h.Publish(Message{Topic: "t", ID: 1, Data: []byte(`"x"`)}); got != len(want) {
		t.Fatalf("Publish = %d, want %d", got, len(want))
	}
	for i, s := range subs {
		if got, w := len(s.got()), map[bool]int{true: 1}[keep[i]]; got != w {
			t.Errorf("subscriber %d got %d frames, want %d", i, got, w)
		}
	}
	// Every removed subscriber can come back exactly once.
	for i, s := range subs {
		if got := h.Subscribe("t", s); got == keep[i] {
			t.Fatalf("re-Subscribe %d = %v", i, got)
		}
	}
	if c := h.Count("t"); c != n {
		t.Fatalf("Count = %d after everyone came back, want %d", c, n)
	}
}

func TestRange(t *testing.T) {
	h := New[*fakeSub](nil)
	want := map[string]int64{}
	for i := range 200 { // enough topics to fill many shards
		topic := fmt.Sprintf("topic-%d", i)
		for j := range i%3 + 1 {
			h.Subscribe(topic, newSub(fmt.Sprint(i, j), protocol.V1))
		}
		want[topic] = int64(i%3 + 1)
	}
	got := map[string]int64{}
	h.Range(func(topic string, count int64) bool {
		if _, dup := got[topic]; dup {
			t.Errorf("topic %q seen twice", topic)
		}
		got[topic] = count
		return true
	})
	if len(got) != len(want) {
		t.Fatalf("Range saw %d topics, want %d", len(got), len(want))
	}
	for topic, c := range want {
		if got[topic] != c {
			t.Errorf("Range: %q count %d, want %d", topic, got[topic], c)
		}
	}

	for _, stopAfter := range []int{1, 2, 50, 199} {
		calls := 0
		h.Range(func(string, int64) bool {
			calls++
			return calls < stopAfter
		})
		if calls != stopAfter {
			t.Errorf("Range stopping after %d made %d calls", stopAfter, calls)
		}
	}
	// Every shard lock was released by the early stops.
	for topic := range want {
		h.Subscribe(topic, newSub("late", protocol.V2))
	}
	if n := h.TopicCount(); n != 200 {
		t.Errorf("TopicCount = %d, want 200", n)
	}

	calls := 0
	New[*fakeSub](nil).Range(func(string, int64) bool { calls++; return true })
	if calls != 0 {
		t.Errorf("Range over an empty hub made %d calls", calls)
	}
}

type interestCall struct {
	topic string
	count int64
}

func TestInterest(t *testing.T) {
	var calls []interestCall
	h := New[*fakeSub](func(topic string, count int64) { calls = append(calls, interestCall{topic, count}) })
	a, b := newSub("a", protocol.V1), newSub("b", protocol.V2)

	h.Subscribe("t", a)
	h.Subscribe("t", a) // no change: no call
	h.Subscribe("t", b)
	h.Subscribe("u", b)
	h.Unsubscribe("t", a)
	h.Unsubscribe("t", a) // no change: no call
	h.Unsubscribe("x", a) // unknown topic: no call
	h.Unsubscribe("t", b)
	h.Unsubscribe("u", b)
	h.Publish(Message{Topic: "t"}) // publishing is not interest

	want := []interestCall{{"t", 1}, {"t", 2}, {"u", 1}, {"t", 1}, {"t", 0}, {"u", 0}}
	if !slices.Equal(calls, want) {
		t.Errorf("interest calls = %v, want %v", calls, want)
	}
}

func TestPublish(t *testing.T) {
	tests := []struct {
		name string
		data string
	}{
		{"object", `{"text":"hi","n":[1,2]}`},
		{"string", `"hello"`},
		{"number", `42`},
		{"null", `null`},
		{"125 bytes", `"` + string(bytes.Repeat([]byte{'a'}, 123)) + `"`},
		{"126 bytes", `"` + string(bytes.Repeat([]byte{'b'}, 124)) + `"`},
		{"64 KiB", `"` + string(bytes.Repeat([]byte{'c'}, 65536)) + `"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := New[*fakeSub](nil)
			v1s := []*fakeSub{newSub("a", protocol.V1), newSub("b", protocol.V1), newSub("c", protocol.V1)}
			v2s := []*fakeSub{newSub("d", protocol.V2), newSub("e", protocol.V2)}
			other := newSub("other", protocol.V1)
			for _, s := range append(slices.Clone(v1s), v2s...) {
				h.Subscribe("/chat/room 1", s)
			}
			h.Subscribe("/chat/other", other)

			m := Message{Topic: "/chat/room 1", ID: 253405917011701760, Data: []byte(tt.data)}
			if n := h.Publish(m); n != 5 {
				t.Fatalf("Publish = %d, want 5", n)
			}
			if string(m.Data) != tt.data || m.Topic != "/chat/room 1" || m.ID != 253405917011701760 {
				t.Errorf("Publish changed the message: %+v", m)
			}
			if f := other.got(); len(f) != 0 {
				t.Errorf("a subscriber of another topic got %d frames", len(f))
			}

			var first1 *byte
			for _, s := range v1s {
				f := s.got()
				if len(f) != 1 {
					t.Fatalf("v1 subscriber %s got %d frames, want 1", s, len(f))
				}
				if first1 == nil {
					first1 = &f[0][0]
				} else if &f[0][0] != first1 {
					t.Errorf("v1 subscriber %s got its own copy of the frame", s)
				}
				if !bytes.Equal(f[0], protocol.TextFrame([]byte(tt.data))) {
					t.Errorf("v1 frame is not the text frame of the raw data")
				}
				if string(payload(t, f[0])) != tt.data {
					t.Errorf("v1 payload = %q, want %q", payload(t, f[0]), tt.data)
				}
			}

			var first2 *byte
			for _, s := range v2s {
				f := s.got()
				if len(f) != 1 {
					t.Fatalf("v2 subscriber %s got %d frames, want 1", s, len(f))
				}
				if first2 == nil {
					first2 = &f[0][0]
				} else if &f[0][0] != first2 {
					t.Errorf("v2 subscriber %s got its own copy of the frame", s)
				}
				e := decodeV2(t, f[0])
				if e.Type != "message" || e.Topic != "/chat/room 1" || e.ID != "253405917011701760" || string(e.Data) != tt.data {
					t.Errorf("v2 frame decodes to %+v", e)
				}
				if !bytes.Equal(f[0], encodeV2(m)) {
					t.Errorf("v2 frame differs from encodeV2")
				}
			}
			if first1 == first2 {
				t.Errorf("v1 and v2 subscribers got the same bytes")
			}
		})
	}
}

// TestPublishFreshFrames checks that a later publish does not reuse the
// bytes handed out by an earlier one: subscribers may still be writing them.
func TestPublishFreshFrames(t *testing.T) {
	h := New[*fakeSub](nil)
	s1, s2 := newSub("v1", protocol.V1), newSub("v2", protocol.V2)
	h.Subscribe("t", s1)
	h.Subscribe("t", s2)
	h.Publish(Message{Topic: "t", ID: 1, Data: []byte(`"first"`)})
	want1, want2 := bytes.Clone(s1.got()[0]), bytes.Clone(s2.got()[0])
	for i := range 10 {
		h.Publish(Message{Topic: "t", ID: uint64(i + 2), Data: []byte(`"later"`)})
	}
	f1, f2 := s1.got(), s2.got()
	if len(f1) != 11 || len(f2) != 11 {
		t.Fatalf("got %d and %d frames, want 11 each", len(f1), len(f2))
	}
	if !bytes.Equal(f1[0], want1) || !bytes.Equal(f2[0], want2) {
		t.Errorf("the first frames changed after later publishes")
	}
	if e := decodeV2(t, f2[10]); e.ID != "11" || string(e.Data) != `"later"` {
		t.Errorf("last v2 frame = %+v", e)
	}
}

func TestPublishNoSubscribers(t *testing.T) {
	h := New[*fakeSub](nil)
	if n := h.Publish(Message{Topic: "nobody", Data: []byte(`1`)}); n != 0 {
		t.Errorf("Publish = %d, want 0", n)
	}
	s := newSub("s", protocol.V2)
	h.Subscribe("t", s)
	h.Unsubscribe("t", s)
	if n := h.Publish(Message{Topic: "t", Data: []byte(`1`)}); n != 0 || len(s.got()) != 0 {
		t.Errorf("Publish after the last unsubscribe = %d, %d frames", n, len(s.got()))
	}
}

// TestPublishOnlyOneVersion checks each version in isolation.
func TestPublishOnlyOneVersion(t *testing.T) {
	for _, v := range []protocol.Version{protocol.V1, protocol.V2} {
		h := New[*fakeSub](nil)
		s := newSub("s", v)
		h.Subscribe("t", s)
		if n := h.Publish(Message{Topic: "t", ID: 7, Data: []byte(`{"a":1}`)}); n != 1 {
			t.Fatalf("%v: Publish = %d", v, n)
		}
		f := s.got()
		if len(f) != 1 {
			t.Fatalf("%v: %d frames", v, len(f))
		}
		if v == protocol.V1 {
			if string(payload(t, f[0])) != `{"a":1}` {
				t.Errorf("v1 payload %q", payload(t, f[0]))
			}
		} else if e := decodeV2(t, f[0]); e.Type != "message" || e.Topic != "t" || e.ID != "7" || string(e.Data) != `{"a":1}` {
			t.Errorf("v2 frame %+v", e)
		}
	}
}

func TestEncodeV2(t *testing.T) {
	for _, n := range []int{0, 50, 100, 200, 70000} {
		data := []byte(`"` + string(bytes.Repeat([]byte{'z'}, n)) + `"`)
		m := Message{Topic: "a\"b\n", ID: 18446744073709551615, Data: data}
		frame := encodeV2(m)
		if cap(frame) != len(frame) {
			t.Errorf("n %d: cap %d, len %d: the buffer was not sized exactly", n, cap(frame), len(frame))
		}
		e := decodeV2(t, frame)
		if e.Type != "message" || e.Topic != "a\"b\n" || e.ID != "18446744073709551615" || !bytes.Equal(e.Data, data) {
			t.Errorf("n %d: decoded %+v", n, e)
		}
	}
}

// TestConcurrent runs subscribers, unsubscribers and publishers at once and
// then checks that the hub, the interest calls and every delivery agree.
// Each goroutine owns its subscribers, so it knows what each call must return.
func TestConcurrent(t *testing.T) {
	const (
		workers       = 8
		subsPerWorker = 4
		topics        = 12
		ops           = 1500
	)
	topicName := func(i int) string { return "t" + strconv.Itoa(i) }

	var imu sync.Mutex
	interest := map[string][]int64{}
	h := New[*fakeSub](func(topic string, count int64) {
		imu.Lock()
		interest[topic] = append(interest[topic], count)
		imu.Unlock()
	})

	// member[w][s][topic] is true from just before Subscribe until just
	// after Unsubscribe returns: a delivery outside that window is a bug.
	member := make([][][topics]atomic.Bool, workers)
	subs := make([][]*fakeSub, workers)
	for w := range workers {
		member[w] = make([][topics]atomic.Bool, subsPerWorker)
		for i := range subsPerWorker {
			s := newSub(fmt.Sprintf("w%d/s%d", w, i), protocol.Version(1+(w+i)%2))
			s.onFrame = func(frame []byte) {
				var d struct{ Topic int }
				if err := json.Unmarshal(payloadOf(frame, s.version), &d); err != nil {
					t.Errorf("%s: undecodable frame: %v", s, err)
					return
				}
				if !member[w][i][d.Topic].Load() {
					t.Errorf("%s got a frame of topic %d it is not subscribed to", s, d.Topic)
				}
			}
			subs[w] = append(subs[w], s)
		}
	}

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 99))
			var mine [subsPerWorker][topics]bool
			for op := range ops {
				i, tp := r.IntN(subsPerWorker), r.IntN(topics)
				s, topic := subs[w][i], topicName(tp)
				switch r.IntN(3) {
				case 0:
					member[w][i][tp].Store(true)
					if got := h.Subscribe(topic, s); got == mine[i][tp] {
						t.Errorf("%s: Subscribe(%s) = %v while subscribed = %v", s, topic, got, mine[i][tp])
						return
					}
					mine[i][tp] = true
				case 1:
					if got := h.Unsubscribe(topic, s); got != mine[i][tp] {
						t.Errorf("%s: Unsubscribe(%s) = %v while subscribed = %v", s, topic, got, mine[i][tp])
						return
					}
					member[w][i][tp].Store(false)
					mine[i][tp] = false
				default:
					own := 0
					before := make([]int, subsPerWorker)
					for j := range subsPerWorker {
						before[j] = subs[w][j].count()
						if mine[j][tp] {
							own++
						}
					}
					data := fmt.Sprintf(`{"topic":%d,"w":%d,"op":%d}`, tp, w, op)
					n := h.Publish(Message{Topic: topic, ID: uint64(w*ops + op), Data: []byte(data)})
					if n < own {
						t.Errorf("Publish(%s) = %d, but this worker alone has %d subscribers", topic, n, own)
					}
					// Deliver is synchronous: our subscribers have it now.
					for j := range subsPerWorker {
						if !mine[j][tp] {
							continue
						}
						if !containsData(subs[w][j].since(before[j]), subs[w][j].version, data) {
							t.Errorf("%s: subscribed to %s but did not get %s", subs[w][j], topic, data)
						}
					}
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	// Final consistency.
	total := 0
	for tp := range topics {
		topic := topicName(tp)
		var want []*fakeSub
		for w := range workers {
			for i := range subsPerWorker {
				if member[w][i][tp].Load() {
					want = append(want, subs[w][i])
				}
			}
		}
		if got := h.Subscribers(topic); !sameSubs(got, want...) {
			t.Errorf("%s: Subscribers = %v, want %v", topic, got, want)
		}
		if c := h.Count(topic); c != int64(len(want)) {
			t.Errorf("%s: Count = %d, want %d", topic, c, len(want))
		}
		seq := interest[topic]
		var last int64
		for k, c := range seq {
			if c != last+1 && c != last-1 {
				t.Errorf("%s: interest call %d jumps from %d to %d", topic, k, last, c)
				break
			}
			last = c
		}
		if last != int64(len(want)) {
			t.Errorf("%s: last interest count %d, want %d", topic, last, len(want))
		}
		if n := h.Publish(Message{Topic: topic, Data: fmt.Appendf(nil, `{"topic":%d}`, tp)}); n != len(want) {
			t.Errorf("%s: final Publish = %d, want %d", topic, n, len(want))
		}
		if len(want) > 0 {
			total++
		}
	}
	if n := h.TopicCount(); n != total {
		t.Errorf("TopicCount = %d, want %d", n, total)
	}
	ranged := map[string]int64{}
	h.Range(func(topic string, count int64) bool {
		ranged[topic] = count
		return true
	})
	if len(ranged) != total {
		t.Errorf("Range visited %d topics, want %d", len(ranged), total)
	}
	for topic, count := range ranged {
		if c := h.Count(topic); count != c || c == 0 {
			t.Errorf("Range: %s count %d, Count %d", topic, count, c)
		}
	}
}

func payloadOf(frame []byte, v protocol.Version) []byte {
	h := protocol.FrameHeaderLen(0)
	switch frame[1] & 0x7f {
	case 126:
		h = 4
	case 127:
		h = 10
	}
	p := frame[h:]
	if v == protocol.V2 {
		var e envelope
		if json.Unmarshal(p, &e) != nil {
			return nil
		}
		return e.Data
	}
	return p
}

func containsData(frames [][]byte, v protocol.Version, data string) bool {
	for _, f := range frames {
		if string(payloadOf(f, v)) == data {
			return true
		}
	}
	return false
}

// TestPublishedCounter: the per-topic counter moves by one per Publish,
// whatever the subscriber count, is reported by Stat and RangeStats, and
// restarts when the topic loses its last subscriber.
func TestPublishedCounter(t *testing.T) {
	h := New[*fakeSub](nil)
	subs := []*fakeSub{newSub("a", protocol.V1), newSub("b", protocol.V2), newSub("c", protocol.V1)}
	for _, s := range subs {
		h.Subscribe("room", s)
	}
	h.Subscribe("quiet", newSub("q", protocol.V1))
	for i := range 5 {
		h.Publish(Message{Topic: "room", ID: uint64(i + 1), Data: []byte(`1`)})
	}
	h.Publish(Message{Topic: "nobody", ID: 9, Data: []byte(`1`)})
	if c, p := h.Stat("room"); c != 3 || p != 5 {
		t.Fatalf("Stat(room) = %d subscribers, %d published; want 3, 5", c, p)
	}
	if c, p := h.Stat("nobody"); c != 0 || p != 0 {
		t.Fatalf("Stat(nobody) = %d, %d; want 0, 0", c, p)
	}
	got := map[string][2]int64{}
	h.RangeStats(func(topic string, count, published int64) bool {
		got[topic] = [2]int64{count, published}
		return true
	})
	want := map[string][2]int64{"room": {3, 5}, "quiet": {1, 0}}
	if len(got) != len(want) || got["room"] != want["room"] || got["quiet"] != want["quiet"] {
		t.Fatalf("RangeStats = %v, want %v", got, want)
	}
	calls := 0
	h.RangeStats(func(string, int64, int64) bool { calls++; return false })
	if calls != 1 {
		t.Fatalf("RangeStats went on after false: %d calls", calls)
	}
	for _, s := range subs {
		h.Unsubscribe("room", s)
	}
	h.Subscribe("room", subs[0])
	if _, p := h.Stat("room"); p != 0 {
		t.Fatalf("published = %d after the topic emptied and came back, want 0", p)
	}
}

// TestPublishMessageOnly: MessageOnly subscribers share one copy of the
// message (its data the published bytes themselves) and get no frame; the
// others get their frame and no message.
func TestPublishMessageOnly(t *testing.T) {
	h := New[*fakeSub](nil)
	only, also := newSub("only", MessageOnly), newSub("also", MessageOnly)
	v1, v2 := newSub("v1", protocol.V1), newSub("v2", protocol.V2)
	for _, s := range []*fakeSub{only, v1, also, v2} {
		h.Subscribe("t", s)
	}
	m := Message{Topic: "t", ID: 42, Data: []byte(`{"a":1}`)}
	if n := h.Publish(m); n != 4 {
		t.Fatalf("Publish = %d, want 4", n)
	}
	for _, s := range []*fakeSub{only, v1, also, v2} {
		s.mu.Lock()
		ds := slices.Clone(s.deliveries)
		s.mu.Unlock()
		if len(ds) != 1 {
			t.Fatalf("%s got %d deliveries, want 1", s, len(ds))
		}
		d := ds[0]
		if s.version != MessageOnly {
			if d.Frame == nil || d.Message != nil {
				t.Errorf("%s got frame %q and message %+v", s, d.Frame, d.Message)
			}
			continue
		}
		if d.Frame != nil || d.Message == nil {
			t.Fatalf("%s got frame %q and message %+v", s, d.Frame, d.Message)
		}
		if d.Message.Topic != "t" || d.Message.ID != 42 || &d.Message.Data[0] != &m.Data[0] || len(d.Message.Data) != len(m.Data) {
			t.Errorf("%s got %+v, want %+v and its own bytes", s, *d.Message, m)
		}
	}
	if only.deliveries[0].Message != also.deliveries[0].Message {
		t.Errorf("each MessageOnly subscriber got its own copy of the message")
	}
	if !bytes.Equal(v2.got()[0], encodeV2(m)) || !bytes.Equal(v1.got()[0], protocol.TextFrame(m.Data)) {
		t.Errorf("frames %q, %q", v1.got()[0], v2.got()[0])
	}
}

// named is a subscriber interface of the hub's user, as the gateway has one.
type named interface {
	Subscriber
	String() string
}

// TestTypedSubscribers: a hub of an interface type of the user's takes and
// returns that type, and a subscriber is one member whatever the static type
// it was added and removed with.
func TestTypedSubscribers(t *testing.T) {
	h := New[named](nil)
	a, b := newSub("a", protocol.V1), newSub("b", MessageOnly)
	if !h.Subscribe("t", a) || !h.Subscribe("t", named(b)) || h.Subscribe("t", named(a)) {
		t.Fatal("Subscribe did not see a as the same subscriber twice")
	}
	got := h.Subscribers("t")
	names := make([]string, len(got))
	for i, s := range got {
		names[i] = s.String() // a method of named, no assertion
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"a", "b"}) {
		t.Fatalf("Subscribers = %v", names)
	}
	if !h.Unsubscribe("t", a) || h.Count("t") != 1 {
		t.Fatalf("Unsubscribe(a): Count = %d", h.Count("t"))
	}
	if n := h.Publish(Message{Topic: "t", Data: []byte(`1`)}); n != 1 || b.count() != 1 || a.count() != 0 {
		t.Fatalf("Publish reached %d: a %d, b %d deliveries", n, a.count(), b.count())
	}
}
