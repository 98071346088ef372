package gateway

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// TestConnRateTableBounded: 10,000 addresses against a table of 1,000 keep
// it at 1,000 (the rest refused as "full"); once the buckets have refilled
// the table empties at the next sweep and new addresses are accepted.
func TestConnRateTableBounded(t *testing.T) {
	var l connRate
	now := time.Unix(1000, 0)
	const rate, burst, maxKeys = 1.0, 2, 1000
	accepted, full := 0, 0
	for i := range 10000 {
		ok, retry, isFull := l.allow(fmt.Sprintf("10.0.%d.%d", i/256, i%256), now, rate, burst, maxKeys)
		switch {
		case ok:
			accepted++
		case isFull:
			full++
			if retry < time.Second || retry > 2*time.Second {
				t.Fatalf("retry %v for a table full of buckets 1 s from full", retry)
			}
		default:
			t.Fatalf("address %d refused by its own rate", i)
		}
	}
	if accepted != maxKeys || full != 10000-maxKeys || l.size() != maxKeys {
		t.Fatalf("accepted %d, full %d, size %d", accepted, full, l.size())
	}
	now = now.Add(999 * time.Millisecond) // not refilled yet: still full, no sweep frees anything
	if ok, _, isFull := l.allow("192.0.2.1", now, rate, burst, maxKeys); ok || !isFull {
		t.Fatalf("new address before any refill: ok %v full %v", ok, isFull)
	}
	now = now.Add(time.Millisecond)
	if ok, _, _ := l.allow("192.0.2.1", now, rate, burst, maxKeys); !ok {
		t.Fatal("new address refused once the buckets refilled")
	}
	if l.size() != 1 {
		t.Fatalf("size %d after the sweep, want 1", l.size())
	}
	// The periodic sweep forgets idle addresses without the table filling up.
	now = now.Add(connRateSweepEvery)
	if ok, _, _ := l.allow("192.0.2.2", now, rate, burst, maxKeys); !ok || l.size() != 1 {
		t.Fatalf("after the periodic sweep: ok %v size %d, want true 1", ok, l.size())
	}
}

// TestConnRateBucket: a burst, then one token per 1/rate seconds, with a
// Retry-After that says when.
func TestConnRateBucket(t *testing.T) {
	var l connRate
	now := time.Unix(1000, 0)
	for i := range 3 {
		if ok, _, _ := l.allow("a", now, 0.5, 3, 10); !ok {
			t.Fatalf("burst token %d refused", i)
		}
	}
	ok, retry, full := l.allow("a", now, 0.5, 3, 10)
	if ok || full || retry != 2*time.Second {
		t.Fatalf("past the burst: ok %v full %v retry %v, want false false 2s", ok, full, retry)
	}
	if ok, _, _ := l.allow("a", now.Add(2*time.Second), 0.5, 3, 10); !ok {
		t.Fatal("refused after 1/rate")
	}
	// A tiny rate does not overflow the arithmetic.
	if _, retry, _ := l.allow("b", now, math.SmallestNonzeroFloat64, 1, 10); retry != 0 {
		t.Fatal("first connection of b refused")
	}
	if _, retry, _ := l.allow("b", now, math.SmallestNonzeroFloat64, 1, 10); retry != connRateMaxRetry {
		t.Fatalf("retry %v at a tiny rate, want %v", retry, connRateMaxRetry)
	}
}

func TestConnRateKey(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1":            "127.0.0.1",
		"::ffff:10.1.2.3":      "10.1.2.3",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2::ff":     "2001:db8:1:2::/64",
		"fe80::1%eth0":         "fe80::/64",
		"not-an-ip":            "not-an-ip",
	} {
		if got := connRateKey(in); got != want {
			t.Errorf("connRateKey(%q) = %q, want %q", in, got, want)
		}
	}
}
