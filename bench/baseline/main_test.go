package baseline

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test or benchmark leaves a goroutine
// behind: every server, connection goroutine and pump must have stopped.
// What runs before the tests is left out: nbio's websocket package builds a
// default engine at init, whose task pool goroutines live as long as the
// process.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreCurrent())
}
