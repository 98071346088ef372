package tm_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/broker/brokertest"
	"github.com/firetower-go/firetower/broker/tm"
	"github.com/firetower-go/firetower/topicmgr"
)

// testLogger discards logs unless FIRETOWER_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("FIRETOWER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// manager is a topic manager serving on a loopback port.
type manager struct {
	t      testing.TB
	cfg    topicmgr.Config
	srv    *topicmgr.Server
	addr   string
	done   chan error
	killed sync.Once
}

// startManager starts a manager on 127.0.0.1:0; it is closed in t.Cleanup.
func startManager(t testing.TB, cfg topicmgr.Config) *manager {
	t.Helper()
	return startManagerAt(t, cfg, "127.0.0.1:0")
}

// startManagerAt starts a manager on addr (a port a killed manager had).
func startManagerAt(t testing.TB, cfg topicmgr.Config, addr string) *manager {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}
	srv, err := topicmgr.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var l net.Listener
	// The port of a manager closed a moment ago is free at once (Go sets
	// SO_REUSEADDR), but retry briefly in case the kernel disagrees.
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err = net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	m := &manager{t: t, cfg: cfg, srv: srv, addr: l.Addr().String(), done: make(chan error, 1)}
	go func() { m.done <- srv.Serve(l) }()
	t.Cleanup(m.kill)
	return m
}

// kill closes the manager abruptly: listener and connections, no goodbye.
func (m *manager) kill() {
	m.killed.Do(func() {
		_ = m.srv.Close()
		select {
		case <-m.done:
		case <-time.After(5 * time.Second):
			m.t.Errorf("manager %s: Serve did not return after Close", m.addr)
		}
	})
}

// restart starts a new, empty manager on the same port.
func (m *manager) restart(t testing.TB) *manager {
	t.Helper()
	return startManagerAt(t, m.cfg, m.addr)
}

// fastConfig is a broker Config for tests: quick reconnects.
func fastConfig(managers ...*manager) tm.Config {
	cfg := tm.Config{
		BackoffMin: 20 * time.Millisecond,
		BackoffMax: 300 * time.Millisecond,
		Logger:     testLogger(),
	}
	for _, m := range managers {
		cfg.Managers = append(cfg.Managers, tm.Manager{Addr: m.addr, Key: m.addr})
	}
	return cfg
}

// newBroker returns an unstarted broker for the managers.
func newBroker(t testing.TB, cfg tm.Config) *tm.Broker {
	t.Helper()
	b, err := tm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// node is a started broker whose handler records what it receives.
type node struct {
	id  string
	b   *tm.Broker
	got chan *broker.Message
}

// startNode starts a broker with a buffered recording handler; it is closed
// in t.Cleanup.
func startNode(t testing.TB, id string, cfg tm.Config) *node {
	t.Helper()
	n := &node{id: id, b: newBroker(t, cfg), got: make(chan *broker.Message, 100000)}
	if err := n.b.Start(context.Background(), id, func(m *broker.Message) {
		select {
		case n.got <- m:
		default:
			t.Errorf("node %s: recording buffer full", id)
		}
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.b.Close() })
	return n
}

// checkFor polls fn until it returns nil or total elapses.
func checkFor(t testing.TB, total time.Duration, fn func() error) {
	t.Helper()
	brokertest.CheckFor(t, total, 10*time.Millisecond, fn)
}

// waitUp waits until every manager of n is connected.
func waitUp(t testing.TB, n *tm.Broker, total time.Duration) {
	t.Helper()
	checkFor(t, total, func() error {
		var down []string
		for _, s := range n.Managers() {
			if !s.Up {
				down = append(down, s.Key)
			}
		}
		if len(down) > 0 {
			return fmt.Errorf("managers not connected: %s", strings.Join(down, ", "))
		}
		return nil
	})
}

// recv waits for the next message of n.
func (n *node) recv(t testing.TB, timeout time.Duration) *broker.Message {
	t.Helper()
	select {
	case m := <-n.got:
		return m
	case <-time.After(timeout):
		t.Fatalf("node %s received nothing within %v", n.id, timeout)
		return nil
	}
}

// quiet fails the test if n receives anything within d.
func (n *node) quiet(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case m := <-n.got:
		t.Fatalf("node %s received %q on %q, want nothing", n.id, m.Data, m.Topic)
	case <-time.After(d):
	}
}
