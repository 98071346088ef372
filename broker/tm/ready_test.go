package tm_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/topicmgr"
)

// Ready (broker.Checker) is nil only while every manager is connected (and
// none settles after a reconnection) and says which is not; Reconnects counts the handshakes after the first;
// Describe names the managers.
func TestReadyReconnectsDescribe(t *testing.T) {
	m1 := startManager(t, topicmgr.Config{})
	m2 := startManager(t, topicmgr.Config{})
	cfg := fastConfig(m1, m2)
	cfg.Managers[1].Key = "tm-2"
	b := newBroker(t, cfg)
	if err := b.Ready(); !errors.Is(err, broker.ErrNotStarted) {
		t.Errorf("Ready before Start: %v", err)
	}
	if want := "tm://" + m1.addr + ",tm-2@" + m2.addr; b.Describe() != want {
		t.Errorf("Describe = %q, want %q", b.Describe(), want)
	}
	if err := b.Start(context.Background(), "n1", func(*broker.Message) {}); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	waitUp(t, b, 5*time.Second)
	if err := b.Ready(); err != nil {
		t.Fatalf("Ready with both managers up: %v", err)
	}
	if n := b.Reconnects(); n != 0 {
		t.Errorf("Reconnects = %d before any loss", n)
	}

	m2.kill()
	checkFor(t, 5*time.Second, func() error {
		err := b.Ready()
		if !errors.Is(err, broker.ErrUnavailable) || !strings.Contains(err.Error(), "tm-2") || strings.Contains(err.Error(), m1.addr) {
			return fmt.Errorf("Ready with tm-2 down: %v", err)
		}
		return nil
	})
	m2.restart(t)
	waitUp(t, b, 5*time.Second)
	// Not ready during the settle window after the reconnection, then ready.
	checkFor(t, 5*time.Second, b.Ready)
	if n := b.Reconnects(); n != 1 {
		t.Errorf("Reconnects = %d, want 1", n)
	}
	_ = b.Close()
	if err := b.Ready(); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Ready after Close: %v", err)
	}
}
