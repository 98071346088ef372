package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind (the
// waiters of child processes, websocket readers). What runs before the
// tests is left out: the binary links bench/baseline, and nbio's websocket
// package builds a default engine at init whose task pool goroutines live
// as long as the process.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, goleak.IgnoreCurrent()) }
