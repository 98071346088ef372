package tm

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func topics(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("/chat/room %d", i)
	}
	return out
}

// The owner depends on the set of keys, not their order, and topics spread
// over every manager.
func TestOwnerSpreadAndOrder(t *testing.T) {
	keys := []string{"10.0.0.1:6666", "10.0.0.2:6666", "10.0.0.3:6666"}
	rev := slices.Clone(keys)
	slices.Reverse(rev)
	per := make(map[string]int)
	for _, topic := range topics(3000) {
		a, b := keys[Owner(keys, topic)], rev[Owner(rev, topic)]
		if a != b {
			t.Fatalf("topic %q: owner %s with one order, %s with the other", topic, a, b)
		}
		per[a]++
	}
	for _, k := range keys {
		if per[k] < 800 || per[k] > 1200 {
			t.Errorf("manager %s owns %d of 3000 topics; want about 1000: %v", k, per[k], per)
		}
	}
	if Owner(nil, "t") != -1 {
		t.Error("Owner of an empty list is not -1")
	}
}

// Known values: another implementation of the cluster protocol must pick
// the same owners (xxhash64, seed 0, of key + 0x00 + topic).
func TestScoreIsStable(t *testing.T) {
	// Computed with an independent XXH64 implementation written from the
	// specification (it gives the reference 0xef46db3751d8e999 for "").
	for _, tc := range []struct {
		key, topic string
		want       uint64
	}{
		{"a", "b", 0xb51b25d68d1338c1},
		{"tm-1", "/chat/room 1, ü and a longer topic name to pass 32 bytes", 0xba4bb009df253165},
	} {
		if got := Score(tc.key, tc.topic); got != tc.want {
			t.Errorf("Score(%q, %q) = %#x, want %#x", tc.key, tc.topic, got, tc.want)
		}
	}
}

// Adding a manager moves only the topics it now wins; removing one moves
// only the topics it owned. Nothing else changes hands.
func TestOwnerMinimalMovement(t *testing.T) {
	three := []string{"tm-1", "tm-2", "tm-3"}
	four := append(slices.Clone(three), "tm-4")
	two := []string{"tm-1", "tm-3"}
	moved := map[string]int{}
	for _, topic := range topics(4000) {
		before := three[Owner(three, topic)]
		if after := four[Owner(four, topic)]; after != before {
			if after != "tm-4" {
				t.Fatalf("adding tm-4 moved %q from %s to %s", topic, before, after)
			}
			moved["added"]++
		}
		if after := two[Owner(two, topic)]; after != before {
			if before != "tm-2" {
				t.Fatalf("removing tm-2 moved %q from %s to %s", topic, before, after)
			}
			moved["removed"]++
		}
	}
	// About a quarter move to a fourth manager, a third away from a removed one.
	if moved["added"] < 800 || moved["added"] > 1200 || moved["removed"] < 1100 || moved["removed"] > 1600 {
		t.Errorf("moved topics %v, want about 1000 added and 1333 removed", moved)
	}
}

func TestRankedStartsWithOwner(t *testing.T) {
	keys := []string{"a", "b", "c", "d"}
	for _, topic := range topics(200) {
		r := ranked(keys, topic)
		if r[0] != Owner(keys, topic) {
			t.Fatalf("topic %q: ranked %v does not start with the owner %d", topic, r, Owner(keys, topic))
		}
		for i := 1; i < len(r); i++ {
			if Score(keys[r[i-1]], topic) < Score(keys[r[i]], topic) {
				t.Fatalf("topic %q: ranked %v is not by decreasing score", topic, r)
			}
		}
	}
}

// The delay before attempt n is uniform in [0, min(max, min*2^n)]: it grows,
// is capped, and can be anything down to zero (full jitter).
func TestBackoff(t *testing.T) {
	lo, hi := 100*time.Millisecond, 2*time.Second
	top := func(n int64) int64 { return n - 1 }
	zero := func(int64) int64 { return 0 }
	for attempt, want := range []time.Duration{100, 200, 400, 800, 1600, 2000, 2000} {
		want *= time.Millisecond
		if got := backoff(attempt, lo, hi, top); got != want {
			t.Errorf("attempt %d: longest wait %v, want %v", attempt, got, want)
		}
		if got := backoff(attempt, lo, hi, zero); got != 0 {
			t.Errorf("attempt %d: shortest wait %v, want 0", attempt, got)
		}
	}
	if got := backoff(1000, lo, hi, top); got != hi {
		t.Errorf("attempt 1000: %v, want the cap %v", got, hi)
	}
	var sum time.Duration
	for range 1000 {
		d := backoff(3, lo, hi, jitter)
		if d < 0 || d > 800*time.Millisecond {
			t.Fatalf("attempt 3: %v out of [0, 800ms]", d)
		}
		sum += d
	}
	if mean := sum / 1000; mean < 300*time.Millisecond || mean > 500*time.Millisecond {
		t.Errorf("mean wait of attempt 3 is %v, want about 400ms", mean)
	}
}

func TestParseURL(t *testing.T) {
	cfg, err := ParseURL("tm://127.0.0.1:6666, tm-2@10.0.0.2:6666 ,[::1]:7000")
	if err != nil {
		t.Fatal(err)
	}
	want := []Manager{{"127.0.0.1:6666", "127.0.0.1:6666"}, {"10.0.0.2:6666", "tm-2"}, {"[::1]:7000", "[::1]:7000"}}
	if !slices.Equal(cfg.Managers, want) {
		t.Errorf("managers %+v, want %+v", cfg.Managers, want)
	}
	for _, bad := range []string{"", "redis://x:1", "tm://", "tm://host", "tm://a:1,a:1", "tm://@a:1"} {
		if _, err := ParseURL(bad); err == nil {
			t.Errorf("ParseURL(%q) accepted", bad)
		}
	}
}
