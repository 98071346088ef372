// Package wait is how the project's tests wait for something to happen:
// poll a condition with a deadline, never sleep a fixed time and hope.
package wait

import (
	"fmt"
	"testing"
	"time"
)

// Poll calls fn every interval until it returns nil, and returns fn's last
// error (wrapped) if that has not happened within total.
func Poll(total, interval time.Duration, fn func() error) error {
	deadline := time.Now().Add(total)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("not within %v: %w", total, err)
		}
		time.Sleep(interval)
	}
}

// For is Poll that fails the test. It must be called from the test's
// goroutine.
func For(t testing.TB, total, interval time.Duration, fn func() error) {
	t.Helper()
	if err := Poll(total, interval, fn); err != nil {
		t.Fatal(err)
	}
}
