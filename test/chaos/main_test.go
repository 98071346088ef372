package chaos

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: every
// server, broker, broker process watcher and client must be stopped.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
