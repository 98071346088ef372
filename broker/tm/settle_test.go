package tm_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/broker/tm"
	"github.com/firetower-go/firetower/topicmgr"
)

// The settle window (Config.Settle): at the first start a gateway publishes
// at once; after the manager restarts (empty), Publish fails with
// ErrUnavailable and Ready reports not ready until the window has passed
// since the connection came back, then the first accepted publish reaches
// the other gateway, whose interest the new manager has by then. A gateway
// with the window off publishes as soon as it is reconnected.
func TestSettleAfterRestart(t *testing.T) {
	const window = 1500 * time.Millisecond
	m := startManager(t, topicmgr.Config{})
	cfg := fastConfig(m)
	cfg.Settle = window
	off := cfg
	off.Settle = -1
	a, b, c := startNode(t, "a", cfg), startNode(t, "b", cfg), startNode(t, "c", off)
	b.b.SetInterest("t", 1)
	var id uint64
	pub := func(n *node) error {
		id++
		return publish(n.b, n.id, "t", `1`, id)
	}
	// delivered waits briefly for the last message published, skipping
	// earlier ones.
	delivered := func() error {
		timeout := time.After(20 * time.Millisecond)
		for {
			select {
			case msg := <-b.got:
				if msg.ID == id {
					return nil
				}
			case <-timeout:
				return fmt.Errorf("b has not received message %d", id)
			}
		}
	}
	up := func(n *node) bool { return n.b.Managers()[0].Up }

	waitUp(t, a.b, 5*time.Second)
	waitUp(t, c.b, 5*time.Second)
	for _, n := range []*node{a, c} {
		if err := n.b.Ready(); err != nil {
			t.Fatalf("Ready after the first start: %v", err)
		}
	}
	checkFor(t, 5*time.Second, func() error {
		if err := pub(a); err != nil {
			t.Fatalf("Publish after the first start: %v", err)
		}
		return delivered()
	})

	m.kill()
	checkFor(t, 5*time.Second, func() error {
		if up(a) || up(c) {
			return errors.New("the crash is not noticed yet")
		}
		return nil
	})
	if err := pub(a); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("Publish with the manager down: %v, want ErrUnavailable", err)
	}
	restarted := time.Now()
	m = m.restart(t)
	checkFor(t, 5*time.Second, func() error {
		if !up(a) || !up(c) {
			return errors.New("not reconnected yet")
		}
		return nil
	})
	back := time.Now()
	if err := pub(a); !errors.Is(err, broker.ErrUnavailable) || !strings.Contains(err.Error(), "settling") {
		t.Errorf("Publish right after the reconnection: %v, want ErrUnavailable (settling)", err)
	}
	if err := a.b.Ready(); !errors.Is(err, broker.ErrUnavailable) || !strings.Contains(err.Error(), "settling") {
		t.Errorf("Ready right after the reconnection: %v, want ErrUnavailable (settling)", err)
	}
	if _, err := a.b.Count(context.Background(), "t"); err != nil {
		t.Errorf("Count during the window: %v (counts are not held back)", err)
	}
	checkFor(t, 5*time.Second, func() error { return pub(c) })
	if d := time.Since(back); d > window/2 {
		t.Errorf("with the window off, the first publish after the reconnection went %v after it", d)
	}

	checkFor(t, 5*time.Second, func() error { return pub(a) })
	if d := time.Since(restarted); d < window {
		t.Errorf("a publish was accepted %v after the restart, within the %v window", d, window)
	}
	if d := time.Since(back); d > window+time.Second {
		t.Errorf("publishes were refused for %v after the reconnection, window %v", d, window)
	}
	if err := a.b.Ready(); err != nil {
		t.Errorf("Ready after the window: %v", err)
	}
	// The first publish accepted after the window reaches b: its interest
	// was re-sent within the window.
	if err := delivered(); err != nil {
		checkFor(t, time.Second, delivered)
	}
	t.Logf("publishes accepted again %v after the restart (%v after the reconnection)",
		time.Since(restarted).Round(time.Millisecond), time.Since(back).Round(time.Millisecond))
}

// With PublishWait, a publish made during the settle window waits for its
// end instead of failing.
func TestSettlePublishWait(t *testing.T) {
	const window = time.Second
	m := startManager(t, topicmgr.Config{})
	cfg := fastConfig(m)
	cfg.Settle = window
	cfg.PublishWait = 3 * time.Second
	a := startNode(t, "a", cfg)
	waitUp(t, a.b, 5*time.Second)
	m.kill()
	checkFor(t, 5*time.Second, func() error {
		if a.b.Managers()[0].Up {
			return errors.New("still up")
		}
		return nil
	})
	m = m.restart(t)
	waitUp(t, a.b, 5*time.Second)
	began := time.Now()
	if err := publish(a.b, "a", "t", `1`, 1); err != nil {
		t.Fatalf("publish during the window with PublishWait: %v", err)
	}
	if d := time.Since(began); d < window/2 || d > window+time.Second {
		t.Errorf("the publish waited %v, want about the rest of the %v window", d, window)
	}
}

// settle=D in the URL sets Config.Settle (tm:// and tms://); settle=0
// turns the window off.
func TestParseURLSettle(t *testing.T) {
	for url, want := range map[string]time.Duration{
		"tm://h:6666":                  0,
		"tm://h:6666,g:6666?settle=5s": 5 * time.Second,
		"tms://h:6666?settle=0":        -1,
	} {
		cfg, err := tm.ParseURL(url)
		if err != nil || cfg.Settle != want {
			t.Errorf("ParseURL(%q): Settle %v, %v; want %v", url, cfg.Settle, err, want)
		}
	}
	for _, bad := range []string{"tm://h:6666?settle=-1s", "tm://h:6666?settle=1s&x=1"} {
		if _, err := tm.ParseURL(bad); err == nil {
			t.Errorf("ParseURL(%q) accepted", bad)
		}
	}
}
