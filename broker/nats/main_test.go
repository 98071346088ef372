package nats_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: every
// broker, gateway and client must be stopped.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
