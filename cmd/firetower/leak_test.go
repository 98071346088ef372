package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind (the
// waiters of child processes, websocket readers).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
