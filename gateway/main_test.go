package gateway_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test, example or benchmark leaves a
// goroutine behind: every tower's reader and writer, every handler and every
// test server must have stopped once their test's cleanup ran.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
