package clustertest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker"
)

// SettleNode is an external broker under the settle-window scenario: a
// broker.Broker that reports readiness and whether its link is up.
type SettleNode interface {
	broker.Broker
	broker.Checker
	Connected() bool
}

// SettleAfterRestart is the settle window (each broker's Config.Settle) of
// one external broker on srv, a private server the scenario kills and
// restarts. newNode makes an unstarted node with the given settle (negative:
// off). At the first start a node publishes at once; after the server
// restarts, Publish fails with ErrUnavailable ("settling") and Ready reports
// not ready until window has passed since the link came back, then the first
// accepted publish reaches the other node. A node with the window off
// publishes as soon as it is reconnected. what names the server in messages.
func SettleAfterRestart(t *testing.T, srv *Server, what string, window time.Duration, newNode func(settle time.Duration) SettleNode) {
	start := func(n SettleNode, id string) chan *broker.Message {
		got := make(chan *broker.Message, 1000)
		if err := n.Start(context.Background(), id, func(m *broker.Message) { got <- m }); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Close() })
		return got
	}
	a, b, c := newNode(window), newNode(window), newNode(-1)
	start(a, "a")
	gotB := start(b, "b")
	start(c, "c")
	b.SetInterest("t", 1)
	var id uint64
	publish := func(n SettleNode, origin string) error {
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

	// Start may return before the link is up (Redis subscribes in the
	// background): ready soon, and no settling at the first connection.
	for _, n := range []SettleNode{a, c} {
		CheckFor(t, 5*time.Second, n.Ready)
	}
	if err := publish(a, "a"); err != nil {
		t.Fatalf("Publish after the first start: %v", err)
	}
	CheckFor(t, 5*time.Second, func() error {
		if err := publish(a, "a"); err != nil {
			t.Fatalf("Publish after the first start: %v", err)
		}
		return delivered()
	})

	srv.Kill()
	CheckFor(t, 5*time.Second, func() error {
		if a.Connected() || c.Connected() {
			return errors.New("the crash is not noticed yet")
		}
		return nil
	})
	if err := publish(a, "a"); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("Publish with %s down: %v, want ErrUnavailable", what, err)
	}
	restarted := time.Now()
	srv.Start()
	CheckFor(t, 5*time.Second, func() error {
		if !a.Connected() || !c.Connected() {
			return errors.New("not reconnected yet")
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
	CheckFor(t, 5*time.Second, func() error { return publish(c, "c") })
	if d := time.Since(back); d > window/2 {
		t.Errorf("with the window off, the first publish after the restore went %v after it", d)
	}

	CheckFor(t, 5*time.Second, func() error { return publish(a, "a") })
	if d := time.Since(restarted); d < window {
		t.Errorf("a publish was accepted %v after the restart, within the %v window", d, window)
	}
	if d := time.Since(back); d > window+time.Second {
		t.Errorf("publishes were refused for %v after the restore, window %v", d, window)
	}
	if err := a.Ready(); err != nil {
		t.Errorf("Ready after the window: %v", err)
	}
	CheckFor(t, 5*time.Second, func() error {
		if err := publish(a, "a"); err != nil {
			return err
		}
		return delivered()
	})
	t.Logf("publishes accepted again %v after the restart (%v after the link came back)",
		time.Since(restarted).Round(time.Millisecond), time.Since(back).Round(time.Millisecond))
}
