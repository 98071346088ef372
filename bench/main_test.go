package bench

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: every
// client reader, worker and publisher a run starts must have ended.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
