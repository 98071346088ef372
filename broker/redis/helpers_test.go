package redis_test

import (
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker/redis"
	"github.com/firetower-go/firetower/internal/clustertest"
)

// testLogger discards logs unless FIRETOWER_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("FIRETOWER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// sharedConfig is a broker Config on the shared server with a prefix of
// its own and quick reconnects; the test is skipped (or fails under
// FIRETOWER_REQUIRE_SERVICES) if the server is not there.
func sharedConfig(t testing.TB) redis.Config {
	t.Helper()
	clustertest.Require(t, "redis", clustertest.RedisAddr)
	return fastConfig(clustertest.RedisAddr, clustertest.UniquePrefix(t))
}

func fastConfig(addr, prefix string) redis.Config {
	cfg := redis.Config{
		Prefix:      prefix,
		BackoffMin:  20 * time.Millisecond,
		BackoffMax:  300 * time.Millisecond,
		HealthCheck: time.Second,
		Logger:      testLogger(),
	}
	cfg.Options.Addr = addr
	return cfg
}

func newBroker(t testing.TB, cfg redis.Config) *redis.Broker {
	t.Helper()
	b, err := redis.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
