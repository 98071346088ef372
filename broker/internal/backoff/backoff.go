// Package backoff computes reconnect delays for the external brokers:
// exponential growth, capped, with full jitter, so that gateways
// reconnecting to a restarted Redis or NATS server spread out instead of
// arriving together.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Delay returns the wait before reconnect attempt number attempt (0 for
// the first retry): a uniformly random duration in [0, min(hi, lo*2^attempt)].
func Delay(attempt int, lo, hi time.Duration) time.Duration {
	return delay(attempt, lo, hi, rand.Int64N)
}

func delay(attempt int, lo, hi time.Duration, rnd func(int64) int64) time.Duration {
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
