package tm_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/broker/tm"
	"github.com/firetower-go/firetower/internal/cluster"
	"github.com/firetower-go/firetower/internal/clustertest"
	"github.com/firetower-go/firetower/topicmgr"
)

// stallConfirmTimeout is the tests' ConfirmTimeout: short, so that the
// stall scenario stays short.
const stallConfirmTimeout = time.Second

// A manager that stops answering (a black hole between the publishing
// gateway and the manager, as a paused manager looks): no publish begun
// during the stall returns nil, the link is declared down within
// ConfirmTimeout (not at the heartbeat deadline), publishes then fail fast,
// and after the stall everything recovers; every publish that returned nil
// was delivered, and none reported not sent ever is.
func TestStalledManager(t *testing.T) {
	m := startManager(t, topicmgr.Config{Lease: time.Minute})
	p := newProxy(t, m.addr)
	cfg := fastConfig(m)
	cfg.Managers[0].Addr = p.addr // same manager key, through the proxy
	cfg.ConfirmTimeout = stallConfirmTimeout
	cfg.Settle = -1 // the subscriber never lost the manager
	pub := startNode(t, "pub", cfg)
	rec := clustertest.NewRecorder()
	sub := newBroker(t, fastConfig(m))
	if err := sub.Start(context.Background(), "sub", rec.Handle); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	sub.SetInterest("t", 1)

	clustertest.StalledPublishes(t, clustertest.Stall{
		Pub: pub.b, Origin: "pub", Sub: sub, Rec: rec, Topic: "t",
		Pause: p.pause, Resume: p.resume, Hold: 3 * stallConfirmTimeout,
		PublishTimeout: 300 * time.Millisecond,
		Down:           func() bool { return !pub.b.Managers()[0].Up },
		// The oldest unconfirmed publish is at most one publish interval
		// younger than the stall; the watchdog fires ConfirmTimeout later.
		DownWithin: stallConfirmTimeout + 500*time.Millisecond,
	})
}

// A publish waits for the manager's confirmation, however long its
// context: with the manager silent it is declared down after
// ConfirmTimeout and the publish, sent, ends with an unknown outcome; the
// next one fails at once as not sent. The same for a gateway's broker and
// for a Publisher.
func TestConfirmTimeout(t *testing.T) {
	for _, role := range []string{"gateway", "publisher"} {
		t.Run(role, func(t *testing.T) {
			m := startManager(t, topicmgr.Config{})
			p := newProxy(t, m.addr)
			cfg := fastConfig(m)
			cfg.Managers[0].Addr = p.addr
			cfg.ConfirmTimeout = stallConfirmTimeout
			var publish func() error
			if role == "gateway" {
				n := startNode(t, "pub", cfg)
				publish = func() error {
					return n.b.Publish(context.Background(), &broker.Message{Topic: "t", Origin: "pub", Data: []byte("1")})
				}
			} else {
				pub, err := tm.NewPublisher(context.Background(), cfg, "backend")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = pub.Close() })
				publish = func() error {
					_, err := pub.Publish(context.Background(), "t", []byte("1"))
					return err
				}
			}
			if err := publish(); err != nil {
				t.Fatal(err)
			}
			p.pause()
			t.Cleanup(p.resume)
			began := time.Now()
			err := publish()
			if !errors.Is(err, broker.ErrUnknownOutcome) || errors.Is(err, broker.ErrUnavailable) {
				t.Fatalf("Publish during the stall: %v, want ErrUnknownOutcome only", err)
			}
			if d := time.Since(began); d < stallConfirmTimeout || d > stallConfirmTimeout+time.Second {
				t.Errorf("the unconfirmed publish failed after %v, want ConfirmTimeout (%v)", d, stallConfirmTimeout)
			}
			began = time.Now()
			if err := publish(); !errors.Is(err, broker.ErrUnavailable) {
				t.Fatalf("Publish after the link was declared down: %v, want ErrUnavailable", err)
			}
			if d := time.Since(began); d > 100*time.Millisecond {
				t.Errorf("the publish on a link declared down took %v to fail", d)
			}
		})
	}
}

func TestConfirmTimeoutValidate(t *testing.T) {
	cfg := tm.Config{Managers: []tm.Manager{{Addr: "127.0.0.1:1", Key: "a"}}, ConfirmTimeout: -time.Second}
	if err := cfg.Validate(); err == nil {
		t.Error("a negative ConfirmTimeout is accepted")
	}
}

// A manager that answers in protocol version 1 (not upgraded yet) would
// never confirm a publish: the link refuses it and stays down, and
// publishes fail as not sent.
func TestVersion1ManagerRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hellos := make(chan uint8, 16)
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				f, err := cluster.NewReader(c, 0).ReadFrame()
				if err != nil {
					return
				}
				select {
				case hellos <- f.Version:
				default:
				}
				_ = cluster.WriteVersion(c, cluster.AppendWelcome(nil, cluster.Welcome{ManagerID: "old", Heartbeat: time.Second, MaxFrame: cluster.DefaultMaxFrame}), 1)
				_, _ = io.Copy(io.Discard, c) // until the gateway hangs up
			})
		}
	})
	cfg := tm.Config{Managers: []tm.Manager{{Addr: l.Addr().String(), Key: "old"}}, Logger: testLogger(), StartWait: time.Second}
	n := startNode(t, "gw", cfg)
	if v := <-hellos; v != cluster.Version {
		t.Errorf("HELLO of version %d, want %d", v, cluster.Version)
	}
	err = n.b.Publish(context.Background(), &broker.Message{Topic: "t", Origin: "gw", Data: []byte("1")})
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Publish through a version-1 manager: %v, want ErrUnavailable", err)
	}
	if s := n.b.Managers()[0]; s.Up || s.Connects != 0 {
		t.Errorf("link to a version-1 manager: %+v, want never up", s)
	}
}
