package redis_test

import (
	"context"
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: every
// broker, gateway and client must be stopped. go-redis's own log lines (a
// refused dial per attempt while a test's server is down) are discarded.
func TestMain(m *testing.M) {
	goredis.SetLogger(discard{})
	goleak.VerifyTestMain(m)
}

type discard struct{}

func (discard) Printf(context.Context, string, ...any) {}
