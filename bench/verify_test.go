package bench

import (
	"math"
	"math/rand/v2"
	"testing"
)

func msg(topic string, seq uint64) []byte {
	return appendPayload(nil, topic, seq, 1, 100)
}

func TestVerifier(t *testing.T) {
	var c Counters
	c.markAt.Store(1)
	v := &verifier{c: &c, topics: []topicSeq{{name: "/a"}, {name: "/b"}}}
	var got [][2]uint64
	v.onSeq = func(from, to uint64) { got = append(got, [2]uint64{from, to}) }
	for _, m := range [][]byte{
		msg("/a", 0),        // probe
		msg("/a", 1),        // ok
		msg("/a", 2),        // ok
		msg("/a", 5),        // 3 and 4 lost
		msg("/a", 5),        // duplicate
		msg("/a", 4),        // late: duplicate
		msg("/b", 1),        // other topic, own sequence
		msg("/b", 3),        // 2 lost
		msg("/c", 1),        // wrong topic
		[]byte("heartbeat"), // other
		[]byte(`{"type":"onSubscribe","data":3}`),
	} {
		v.receive(m, 1000)
	}
	check := func(name string, got, want int64) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
	check("deliveries", c.Deliveries.Load(), 5)
	check("lost", c.Lost.Load(), 3)
	check("duplicates", c.Duplicates.Load(), 2)
	check("wrong", c.Wrong.Load(), 1)
	check("other", c.Other.Load(), 2)
	check("probes", c.Probes.Load(), 1)
	check("synced", c.Synced.Load(), 1)
	check("latency samples", int64(c.Latency.Snapshot().Total()), 5)
	if want := [][2]uint64{{1, 1}, {2, 2}, {3, 5}}; len(got) != len(want) || got[2] != want[2] {
		t.Errorf("onSeq calls %v, want %v", got, want)
	}
	check("missing", v.missing(map[string]uint64{"/a": 7, "/b": 3, "/z": 9}), 2)
}

func TestPayload(t *testing.T) {
	for _, size := range []int{0, 50, 100, 1000} {
		m := appendPayload(nil, "/b/c12", 42, 1234567890123456789, size)
		if size >= 60 && len(m) != size {
			t.Errorf("size %d: payload is %d bytes: %s", size, len(m), m)
		}
		topic, seq, ts, ok := parsePayload(m)
		if !ok || string(topic) != "/b/c12" || seq != 42 || ts != 1234567890123456789 {
			t.Errorf("parse(%s) = %q %d %d %v", m, topic, seq, ts, ok)
		}
	}
	for _, bad := range []string{"", "heartbeat", `{"k":"/a"`, `{"k":"/a","s":x`, `{"k":"/a","s":1,"t":}`} {
		if _, _, _, ok := parsePayload([]byte(bad)); ok {
			t.Errorf("parse(%q) ok", bad)
		}
	}
}

func TestHistogram(t *testing.T) {
	var h Histogram
	for i := int64(1); i <= 100000; i++ {
		h.Record(i * 1000) // 1µs .. 100ms, uniform
	}
	s := h.Snapshot()
	for _, q := range []float64{0.5, 0.99, 0.999} {
		want := q * 100000 * 1000
		if got := float64(s.Quantile(q)); got < want*0.96 || got > want*1.04 {
			t.Errorf("p%v = %v, want %v ±4%%", q*100, got, want)
		}
	}
	if s.Max != 100000*1000 || s.Quantile(1) != s.Max {
		t.Errorf("max %d, p100 %d", s.Max, s.Quantile(1))
	}
	// Two halves merge into the whole.
	var a, b Histogram
	for i := range 1000 {
		v := rand.Int64N(1e9)
		if i%2 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
		h.Record(v)
	}
	m := a.Snapshot()
	m.Merge(b.Snapshot())
	if m.Total() != 1000 {
		t.Errorf("merged total %d", m.Total())
	}
	for i := range bucketOf(math.MaxInt64) {
		if v := int64(i); bucketOf(bucketValue(i)) != i || (i < histSub && bucketOf(v) != i) {
			t.Fatalf("bucket %d: upper bound %d maps to %d", i, bucketValue(i), bucketOf(bucketValue(i)))
		}
	}
}
