package redis_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/broker/redis"
	"github.com/firetower-go/firetower/internal/clustertest"
)

// startStalling starts a private redis-server that the test can pause,
// resumed (if paused) before anything else is cleaned up.
func startStalling(t *testing.T) *clustertest.Server {
	srv := clustertest.StartRedis(t)
	t.Cleanup(srv.Resume)
	return srv
}

// A Redis paused with SIGSTOP for 3 s under a stream of publishes with a
// 300 ms context: none begun during the pause returns nil, and after the
// resume none that failed as not sent is ever delivered (those sent
// without a reply, unknown outcome, are counted apart); every acknowledged
// one is.
func TestStalledRedis(t *testing.T) {
	srv := clustertest.StartRedis(t)
	cfg := fastConfig(srv.Addr, clustertest.UniquePrefix(t))
	clustertest.StalledServer(t, srv, newBroker(t, cfg), newBroker(t, cfg), 3*time.Second)
}

// With Redis stalled and a publish in flight, publishes queue up; once
// the queue is full (cancelled publishes hold their place until the
// publish loop drops them), the next publish fails at once with
// ErrQueueFull (and ErrUnavailable). After the resume publishes succeed.
func TestPublishQueueFull(t *testing.T) {
	srv := startStalling(t)
	cfg := fastConfig(srv.Addr, clustertest.UniquePrefix(t))
	cfg.PublishQueue = 4
	// The stalled batch stays in flight for the whole test.
	cfg.Options.ReadTimeout, cfg.Options.WriteTimeout = 20*time.Second, 20*time.Second
	pub := newBroker(t, cfg)
	started(t, pub, "pub")
	msg := &broker.Message{Topic: "t", Origin: "pub", Data: []byte("1")}
	if err := pub.Publish(context.Background(), msg); err != nil {
		t.Fatal(err)
	}

	srv.Pause()
	publish := func() (error, time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		began := time.Now()
		err := pub.Publish(ctx, msg)
		return err, time.Since(began)
	}
	// One publish in flight: the publish loop waits for its reply.
	clustertest.CheckFor(t, 5*time.Second, func() error {
		if err, _ := publish(); !errors.Is(err, broker.ErrUnknownOutcome) {
			return fmt.Errorf("publish: %v, want one in flight (ErrUnknownOutcome)", err)
		}
		return nil
	})
	clustertest.CheckFor(t, 5*time.Second, func() error {
		err, took := publish()
		switch {
		case errors.Is(err, redis.ErrQueueFull) && errors.Is(err, broker.ErrUnavailable):
			if took > 100*time.Millisecond {
				t.Errorf("the publish refused for a full queue took %v", took)
			}
			return nil
		case errors.Is(err, broker.ErrUnavailable) && errors.Is(err, context.DeadlineExceeded):
			return errors.New("queued, then cancelled: the queue is not full yet")
		}
		t.Fatalf("publish during the stall: %v", err)
		return nil
	})
	srv.Resume()
	clustertest.CheckFor(t, 10*time.Second, func() error {
		return pub.Publish(context.Background(), msg)
	})
}
