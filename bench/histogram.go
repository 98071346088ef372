package bench

import (
	"math"
	"math/bits"
	"sync/atomic"
)

// Histogram is a log-linear latency histogram of non-negative durations in
// nanoseconds: every power of two is split into histSub linear buckets, so
// a recorded value is off by at most 1/histSub (3 %). Snapshots are sparse
// and add up, so workers' histograms merge exactly. Record is safe for
// concurrent use.
type Histogram struct {
	counts [histBuckets]atomic.Uint64
	max    atomic.Int64
}

const (
	histSubBits = 5
	histSub     = 1 << histSubBits
	histBuckets = (64 - histSubBits + 1) * histSub
)

func bucketOf(v int64) int {
	if v < histSub {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	u := uint64(v)
	exp := bits.Len64(u) - histSubBits // >= 1
	return exp*histSub + int(u>>(exp-1)) - histSub
}

// bucketValue is the upper bound of bucket i, the value reported for it.
func bucketValue(i int) int64 {
	if i < histSub {
		return int64(i)
	}
	exp := i / histSub
	sub := i%histSub + histSub
	v := uint64(sub+1)<<(exp-1) - 1
	if v > math.MaxInt64 || bits.Len64(uint64(sub+1))+exp-1 > 64 {
		return math.MaxInt64
	}
	return int64(v)
}

// Record adds one value.
func (h *Histogram) Record(ns int64) {
	h.counts[bucketOf(ns)].Add(1)
	for {
		m := h.max.Load()
		if ns <= m || h.max.CompareAndSwap(m, ns) {
			return
		}
	}
}

// Snapshot returns the non-empty buckets.
func (h *Histogram) Snapshot() HistSnapshot {
	s := HistSnapshot{Counts: map[int]uint64{}, Max: h.max.Load()}
	for i := range h.counts {
		if n := h.counts[i].Load(); n > 0 {
			s.Counts[i] = n
		}
	}
	return s
}

// HistSnapshot is a sparse histogram: bucket index to count, and the
// largest value seen, in nanoseconds.
type HistSnapshot struct {
	Counts map[int]uint64 `json:"c"`
	Max    int64          `json:"max"`
}

// Merge adds o into s.
func (s *HistSnapshot) Merge(o HistSnapshot) {
	if s.Counts == nil {
		s.Counts = map[int]uint64{}
	}
	for i, n := range o.Counts {
		s.Counts[i] += n
	}
	s.Max = max(s.Max, o.Max)
}

// Total is the number of values.
func (s HistSnapshot) Total() uint64 {
	var t uint64
	for _, n := range s.Counts {
		t += n
	}
	return t
}

// Quantile returns the value at quantile q (0..1) in nanoseconds, 0 when
// empty. It never exceeds Max.
func (s HistSnapshot) Quantile(q float64) int64 {
	total := s.Total()
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i := range histBuckets {
		seen += s.Counts[i]
		if seen >= rank {
			return min(bucketValue(i), s.Max)
		}
	}
	return s.Max
}
