package tm

import (
	"math/rand/v2"
	"time"

	"github.com/cespare/xxhash/v2"
)

// Score is the rendezvous (highest random weight) score of a manager key
// for a topic: xxhash64 (seed 0) of the key, one zero byte and the topic.
// The manager with the highest score owns the topic; ties, which need a
// 64-bit collision, go to the smaller key. Every gateway computes the same
// owner from the same set of keys, in any order, and adding or removing a
// manager moves only the topics that it wins or owned: every other topic
// keeps its highest-scoring manager.
func Score(key, topic string) uint64 {
	var buf [320]byte
	b := append(buf[:0], key...)
	b = append(b, 0)
	b = append(b, topic...)
	return xxhash.Sum64(b)
}

// Owner returns the index in keys of the manager that owns topic, or -1 if
// keys is empty.
func Owner(keys []string, topic string) int {
	best, bestScore := -1, uint64(0)
	for i, k := range keys {
		s := Score(k, topic)
		if best < 0 || s > bestScore || (s == bestScore && k < keys[best]) {
			best, bestScore = i, s
		}
	}
	return best
}

// ranked returns the indexes of keys by decreasing score for topic: the
// owner first, then the managers a command falls back to.
func ranked(keys []string, topic string) []int {
	type ks struct {
		i int
		s uint64
	}
	all := make([]ks, len(keys))
	for i, k := range keys {
		all[i] = ks{i, Score(k, topic)}
	}
	// Insertion sort: the lists are a handful of managers.
	for i := 1; i < len(all); i++ {
		for j := i; j > 0; j-- {
			a, b := all[j-1], all[j]
			if a.s > b.s || (a.s == b.s && keys[a.i] < keys[b.i]) {
				break
			}
			all[j-1], all[j] = b, a
		}
	}
	out := make([]int, len(all))
	for i, e := range all {
		out[i] = e.i
	}
	return out
}

// backoff is the wait before reconnect attempt n (0 for the first retry):
// full jitter, uniformly random in [0, min(hi, lo*2^n)]. rnd(n) returns a
// number in [0, n).
func backoff(attempt int, lo, hi time.Duration, rnd func(int64) int64) time.Duration {
	ceiling := lo
	for i := 0; i < attempt && ceiling < hi; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, hi)
	if ceiling <= 0 {
		return 0
	}
	return time.Duration(rnd(int64(ceiling) + 1))
}

// jitter is the random source of backoff.
func jitter(n int64) int64 { return rand.Int64N(n) }
