package backoff

import (
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	top := func(n int64) int64 { return n - 1 } // the largest value the jitter may pick
	for _, tc := range []struct {
		attempt int
		want    time.Duration
	}{
		{0, 100 * time.Millisecond}, {1, 200 * time.Millisecond}, {3, 800 * time.Millisecond},
		{4, time.Second}, {1000, time.Second},
	} {
		if got := delay(tc.attempt, 100*time.Millisecond, time.Second, top); got != tc.want {
			t.Errorf("attempt %d: ceiling %v, want %v", tc.attempt, got, tc.want)
		}
	}
	if got := delay(5, 0, time.Second, top); got != 0 {
		t.Errorf("zero minimum: %v, want 0", got)
	}
	for range 1000 {
		if d := Delay(2, 10*time.Millisecond, time.Second); d < 0 || d > 40*time.Millisecond {
			t.Fatalf("Delay(2, 10ms, 1s) = %v, outside [0, 40ms]", d)
		}
	}
}
