package gateway

import (
	"net/netip"
	"sync"
	"time"
)

// Timing of the connection-rate table's clean-up (Config.ConnectRate).
const (
	// connRateSweepEvery is how often an upgrade walks the table and drops
	// the buckets that are full again: a full bucket says nothing an absent
	// one does not, so idle addresses cost no memory for longer than this.
	connRateSweepEvery = time.Minute
	// connRateMinRetry is the smallest Retry-After sent: the header counts
	// whole seconds.
	connRateMinRetry = time.Second
	// connRateMaxRetry caps Retry-After (and the arithmetic behind it).
	connRateMaxRetry = time.Hour
)

// connRate holds one token bucket per client address for
// Config.ConnectRate. The table is bounded by Config.ConnectRateMaxAddresses:
// buckets that have refilled are dropped (every connRateSweepEvery, or when
// the table is full), and while the table is full of addresses that are
// still refilling, upgrades from new addresses are refused too. Evicting a
// busy bucket instead would hand its address a fresh burst, which is what
// an attacker with many addresses wants.
//
// The zero value is ready; it allocates on first use. Its mutex is taken
// alone (never with Gateway.mu).
type connRate struct {
	mu      sync.Mutex
	buckets map[string]connBucket
	swept   time.Time // last sweep
	// fullUntil is, while the table is full, the earliest time one of its
	// buckets is full again (no sweep can free a slot before).
	fullUntil time.Time
}

type connBucket struct {
	tokens float64
	at     time.Time // when tokens was computed
}

// allow takes a token from key's bucket at now. When there is none it
// returns false and how long until there is one; full is true when the
// refusal is because the table is full, not because of key's own rate.
func (l *connRate) allow(key string, now time.Time, rate float64, burst, maxKeys int) (ok bool, retry time.Duration, full bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = make(map[string]connBucket)
		l.swept = now
	}
	if now.Sub(l.swept) >= connRateSweepEvery {
		l.sweep(now, rate, burst)
	}
	b, found := l.buckets[key]
	if found {
		b.tokens = refill(b, now, rate, burst)
		b.at = now
	} else {
		if len(l.buckets) >= maxKeys && !now.Before(l.fullUntil) {
			l.sweep(now, rate, burst)
		}
		if len(l.buckets) >= maxKeys {
			return false, max(connRateMinRetry, l.fullUntil.Sub(now)), true
		}
		b = connBucket{tokens: float64(burst), at: now}
	}
	if b.tokens < 1 {
		l.buckets[key] = b
		return false, max(connRateMinRetry, seconds((1-b.tokens)/rate)), false
	}
	b.tokens--
	l.buckets[key] = b
	return true, 0, false
}

// sweep drops the buckets that are full again and notes when the next of
// the others will be.
func (l *connRate) sweep(now time.Time, rate float64, burst int) {
	l.swept = now
	next := connRateMaxRetry
	for key, b := range l.buckets {
		tokens := refill(b, now, rate, burst)
		if tokens >= float64(burst) {
			delete(l.buckets, key)
			continue
		}
		next = min(next, seconds((float64(burst)-tokens)/rate))
	}
	l.fullUntil = now.Add(next)
}

// size is the number of addresses tracked (for tests).
func (l *connRate) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// seconds converts s to a Duration, at most connRateMaxRetry (a tiny rate
// would overflow it).
func seconds(s float64) time.Duration {
	if s >= connRateMaxRetry.Seconds() {
		return connRateMaxRetry
	}
	return time.Duration(s * float64(time.Second))
}

func refill(b connBucket, now time.Time, rate float64, burst int) float64 {
	return min(float64(burst), b.tokens+now.Sub(b.at).Seconds()*rate)
}

// connRateKey is the address a connection rate is counted against: the
// IPv4 address, or the /64 of an IPv6 address (one host usually holds a
// whole /64, so per-address buckets would not limit it).
func connRateKey(host string) string {
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	addr = addr.Unmap()
	if addr.Is6() {
		if p, err := addr.WithZone("").Prefix(64); err == nil {
			return p.String()
		}
	}
	return addr.String()
}
