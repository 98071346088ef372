package nats_test

import (
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker/nats"
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
func sharedConfig(t testing.TB) nats.Config {
	t.Helper()
	clustertest.Require(t, "nats", clustertest.NATSAddr)
	return fastConfig("nats://"+clustertest.NATSAddr, clustertest.UniquePrefix(t))
}

func fastConfig(url, prefix string) nats.Config {
	return nats.Config{
		Servers:      []string{url},
		Prefix:       prefix,
		BackoffMin:   20 * time.Millisecond,
		BackoffMax:   300 * time.Millisecond,
		Heartbeat:    200 * time.Millisecond,
		PingInterval: 500 * time.Millisecond,
		Logger:       testLogger(),
	}
}

func newBroker(t testing.TB, cfg nats.Config) *nats.Broker {
	t.Helper()
	b, err := nats.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
