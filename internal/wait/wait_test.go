package wait

import (
	"errors"
	"testing"
	"time"
)

func TestPoll(t *testing.T) {
	n := 0
	if err := Poll(time.Second, time.Millisecond, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || n != 3 {
		t.Fatalf("Poll = %v after %d calls, want nil after 3", err, n)
	}
	cause := errors.New("never")
	err := Poll(20*time.Millisecond, time.Millisecond, func() error { return cause })
	if !errors.Is(err, cause) {
		t.Fatalf("Poll = %v, want it to wrap the last error", err)
	}
}
