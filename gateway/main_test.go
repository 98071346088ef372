package gateway_test

import (
	"os"
	"testing"

	"github.com/firetower-go/firetower/gateway"
	"go.uber.org/goleak"
)

// TestMain fails the package if any test, example or benchmark leaves a
// goroutine behind: every tower's reader and writer, every handler and every
// test server must have stopped once their test's cleanup ran.
//
// FIRETOWER_TEST_TRANSPORT=netpoll runs every test whose Config names no
// transport on the netpoll transport instead of goroutines.
func TestMain(m *testing.M) {
	if tr := os.Getenv("FIRETOWER_TEST_TRANSPORT"); tr != "" {
		gateway.SetDefaultTransport(gateway.Transport(tr))
	}
	goleak.VerifyTestMain(m)
}
