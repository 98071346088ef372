package pushapi_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: servers,
// Subscribe streams and HTTP clients must all be stopped.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
