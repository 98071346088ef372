package baseline

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test or benchmark leaves a goroutine
// behind: every server, connection goroutine and pump must have stopped.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
