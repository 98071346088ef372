package redis_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/broker/redis"
	"github.com/firetower-go/firetower/internal/clustertest"
)

// The settle window (Config.Settle): at the first start a node publishes at
// once; after Redis restarts, Publish fails with ErrUnavailable and Ready
// reports not ready until the window has passed since the subscription
// came back, then the first accepted publish reaches the other node. A node
// with the window off publishes as soon as Redis answers.
func TestSettleAfterRestart(t *testing.T) {
	const window = 1500 * time.Millisecond
	srv := clustertest.StartRedis(t)
	cfg := fastConfig(srv.Addr, clustertest.UniquePrefix(t))
	cfg.Settle = window
	off := cfg
	off.Settle = -1
	a, b, c := newBroker(t, cfg), newBroker(t, cfg), newBroker(t, off)
	started(t, a, "a")
	gotB := started(t, b, "b")
	started(t, c, "c")
	b.SetInterest("t", 1)
	var id uint64
	publish := func(n *redis.Broker, origin string) error {
		id++
		return n.Publish(context.Background(), &broker.Message{Topic: "t", ID: id, Origin: origin, Data: []byte(`1`)})
	}
	// delivered waits briefly for the last message published, skipping
	// earlier ones.
	delivered := func() error {
		timeout := time.After(20 * time.Millisecond)
		for {
			select {
			case m := <-gotB:
				if m.ID == id {
					return nil
				}
			case <-timeout:
				return fmt.Errorf("b has not received message %d", id)
			}
		}
	}

	for _, n := range []*redis.Broker{a, c} {
		if err := n.Ready(); err != nil {
			t.Fatalf("Ready after the first start: %v", err)
		}
	}
	if err := publish(a, "a"); err != nil {
		t.Fatalf("Publish after the first start: %v", err)
	}
	clustertest.CheckFor(t, 5*time.Second, func() error {
		if err := publish(a, "a"); err != nil {
			t.Fatalf("Publish after the first start: %v", err)
		}
		return delivered()
	})

	srv.Kill()
	clustertest.CheckFor(t, 5*time.Second, func() error {
		if a.Stats().Connected || c.Stats().Connected {
			return errors.New("the crash is not noticed yet")
		}
		return nil
	})
	if err := publish(a, "a"); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("Publish with Redis down: %v, want ErrUnavailable", err)
	}
	restarted := time.Now()
	srv.Start()
	clustertest.CheckFor(t, 5*time.Second, func() error {
		if !a.Stats().Connected || !c.Stats().Connected {
			return errors.New("not resubscribed yet")
		}
		return nil
	})
	back := time.Now()
	if err := publish(a, "a"); !errors.Is(err, broker.ErrUnavailable) || !strings.Contains(err.Error(), "settling") {
		t.Errorf("Publish right after the restore: %v, want ErrUnavailable (settling)", err)
	}
	if err := a.Ready(); !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Ready right after the restore: %v, want ErrUnavailable", err)
	}
	clustertest.CheckFor(t, 5*time.Second, func() error { return publish(c, "c") })
	if d := time.Since(back); d > window/2 {
		t.Errorf("with the window off, the first publish after the restore went %v after it", d)
	}

	clustertest.CheckFor(t, 5*time.Second, func() error { return publish(a, "a") })
	if d := time.Since(restarted); d < window {
		t.Errorf("a publish was accepted %v after the restart, within the %v window", d, window)
	}
	if d := time.Since(back); d > window+time.Second {
		t.Errorf("publishes were refused for %v after the restore, window %v", d, window)
	}
	if err := a.Ready(); err != nil {
		t.Errorf("Ready after the window: %v", err)
	}
	clustertest.CheckFor(t, 5*time.Second, func() error {
		if err := publish(a, "a"); err != nil {
			return err
		}
		return delivered()
	})
	t.Logf("publishes accepted again %v after the restart (%v after the subscription came back)",
		time.Since(restarted).Round(time.Millisecond), time.Since(back).Round(time.Millisecond))
}

// settle=D in the URL sets Config.Settle; settle=0 turns the window off.
func TestParseURLSettle(t *testing.T) {
	for url, want := range map[string]time.Duration{
		"redis://h:6379":                   0,
		"redis://h:6379?settle=5s":         5 * time.Second,
		"redis://h:6379?prefix=p&settle=0": -1,
	} {
		cfg, err := redis.ParseURL(url)
		if err != nil || cfg.Settle != want {
			t.Errorf("ParseURL(%q): Settle %v, %v; want %v", url, cfg.Settle, err, want)
		}
	}
	if _, err := redis.ParseURL("redis://h:6379?settle=-1s"); err == nil {
		t.Error("a negative settle was accepted")
	}
}
