package redis_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/broker/redis"
	"github.com/firetower-go/firetower/internal/clustertest"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url                  string
		addr, user, password string
		db                   int
		prefix               string
		lease                time.Duration
		sharded, tls         bool
	}{
		{url: "redis://127.0.0.1:6379", addr: "127.0.0.1:6379"},
		{url: "redis://10.0.0.1", addr: "10.0.0.1:6379"},
		{url: "redis://:secret@h:7000/3?prefix=app1&lease=5s&sharded=true&dial_timeout=1s",
			addr: "h:7000", password: "secret", db: 3, prefix: "app1", lease: 5 * time.Second, sharded: true},
		{url: "rediss://user:pw@[::1]:6380/0", addr: "[::1]:6380", user: "user", password: "pw", tls: true},
	} {
		cfg, err := redis.ParseURL(tc.url)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tc.url, err)
			continue
		}
		o := cfg.Options
		if o.Addr != tc.addr || o.Username != tc.user || o.Password != tc.password || o.DB != tc.db ||
			cfg.Prefix != tc.prefix || cfg.Lease != tc.lease || cfg.Sharded != tc.sharded || (o.TLSConfig != nil) != tc.tls {
			t.Errorf("ParseURL(%q) = addr %q user %q password %q db %d prefix %q lease %v sharded %v tls %v",
				tc.url, o.Addr, o.Username, o.Password, o.DB, cfg.Prefix, cfg.Lease, cfg.Sharded, o.TLSConfig != nil)
		}
	}
	for _, bad := range []string{
		"tm://h:1", "redis://", "redis://h:1/x", "redis://h:1/1/2", "redis://h:1?prefix=", "redis://h:1?prefix=a{b}",
		"redis://h:1?lease=-1s", "redis://h:1?lease=1ms", "redis://h:1?sharded=maybe", "redis://h:1?bogus=1",
	} {
		if _, err := redis.ParseURL(bad); err == nil {
			t.Errorf("ParseURL(%q) accepted", bad)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, cfg := range []redis.Config{
		{Prefix: strings.Repeat("p", 201)}, {Prefix: "{x}"}, {Lease: -time.Second}, {Lease: time.Millisecond},
		{HealthCheck: -1}, {BackoffMin: time.Second, BackoffMax: time.Millisecond},
	} {
		if err := cfg.Validate(); err == nil {
			t.Errorf("Validate accepted %+v", cfg)
		}
		if _, err := redis.New(cfg); err == nil {
			t.Errorf("New accepted %+v", cfg)
		}
	}
	if err := (&redis.Config{}).Validate(); err != nil {
		t.Errorf("the zero Config: %v", err)
	}
}

// started starts b as node id with a handler that records into got.
func started(t *testing.T, b *redis.Broker, id string) chan *broker.Message {
	t.Helper()
	got := make(chan *broker.Message, 1000)
	if err := b.Start(context.Background(), id, func(m *broker.Message) { got <- m }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return got
}

// A broker started while Redis is down starts anyway; Publish and Count
// fail fast with ErrUnavailable; interest set meanwhile takes effect once
// Redis is there, with nothing else done.
func TestStartWhileRedisDown(t *testing.T) {
	srv := clustertest.StartRedis(t)
	srv.Kill()
	cfg := fastConfig(srv.Addr, clustertest.UniquePrefix(t))
	a := newBroker(t, cfg)
	began := time.Now()
	gotA := started(t, a, "a")
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("Start took %v with Redis down", d)
	}
	a.SetInterest("t", 2)
	began = time.Now()
	err := a.Publish(context.Background(), &broker.Message{Topic: "t", Origin: "a", Data: []byte(`1`)})
	if !errors.Is(err, broker.ErrUnavailable) || time.Since(began) > time.Second {
		t.Errorf("Publish with Redis down: %v after %v, want ErrUnavailable at once", err, time.Since(began))
	}
	if _, err := a.Count(context.Background(), "t"); !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Count with Redis down: %v, want ErrUnavailable", err)
	}

	srv.Start()
	b := newBroker(t, cfg)
	started(t, b, "b")
	clustertest.CheckFor(t, 10*time.Second, func() error {
		if n, err := b.Count(context.Background(), "t"); err != nil || n != 2 {
			return fmt.Errorf("b counts %d (%v), want a's 2", n, err)
		}
		if err := b.Publish(context.Background(), &broker.Message{Topic: "t", Origin: "b", Data: []byte(`"x"`)}); err != nil {
			return err
		}
		select {
		case <-gotA:
			return nil
		case <-time.After(20 * time.Millisecond):
			return errors.New("a receives nothing on t")
		}
	})
}

// Messages that are not envelopes, or whose topic is not their channel's,
// are dropped and counted, never handed to the gateway.
func TestMalformedDropped(t *testing.T) {
	cfg := sharedConfig(t)
	a := newBroker(t, cfg)
	got := started(t, a, "a")
	a.SetInterest("t", 1)
	raw := goredis.NewClient(&goredis.Options{Addr: clustertest.RedisAddr})
	defer raw.Close()
	channel := cfg.Prefix + ":t:t"
	clustertest.CheckFor(t, 5*time.Second, func() error {
		if n, err := raw.PubSubNumSub(context.Background(), channel).Result(); err != nil || n[channel] != 1 {
			return fmt.Errorf("%s has %d subscribers (%v)", channel, n[channel], err)
		}
		return nil
	})
	other := newBroker(t, cfg)
	started(t, other, "other")
	for _, payload := range []string{"", "not an envelope", "\x01\x00\x00"} {
		if err := raw.Publish(context.Background(), channel, payload).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// A valid envelope for topic "u", sent on t's channel.
	if err := raw.Publish(context.Background(), channel, "\x01\x00"+strings.Repeat("\x00", 8)+"\x00\x01x\x00\x01u1").Err(); err != nil {
		t.Fatal(err)
	}
	clustertest.CheckFor(t, 5*time.Second, func() error {
		if n := a.Stats().Malformed; n != 4 {
			return fmt.Errorf("%d messages counted malformed, want 4", n)
		}
		return nil
	})
	if err := other.Publish(context.Background(), &broker.Message{Topic: "t", ID: 9, Origin: "other", Data: []byte(`"ok"`)}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m.ID != 9 {
			t.Fatalf("received %+v, want the valid message", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the valid message did not arrive")
	}
}

// A subscription connection on which Redis stops answering (DEBUG SLEEP)
// is found dead by the health check and replaced; delivery goes on after.
func TestSilentRedisDetected(t *testing.T) {
	srv := clustertest.StartRedis(t)
	cfg := fastConfig(srv.Addr, clustertest.UniquePrefix(t))
	cfg.HealthCheck = 200 * time.Millisecond
	a, b := newBroker(t, cfg), newBroker(t, cfg)
	got := started(t, a, "a")
	started(t, b, "b")
	a.SetInterest("t", 1)
	raw := goredis.NewClient(&goredis.Options{Addr: srv.Addr, ReadTimeout: 5 * time.Second})
	defer raw.Close()
	if err := raw.Do(context.Background(), "DEBUG", "SLEEP", "1.5").Err(); err != nil {
		t.Fatal(err)
	}
	clustertest.CheckFor(t, 10*time.Second, func() error {
		if s := a.Stats(); s.Outages < 1 || !s.Connected {
			return fmt.Errorf("stats %+v: want an outage, and connected again", s)
		}
		if err := b.Publish(context.Background(), &broker.Message{Topic: "t", Origin: "b", Data: []byte(`1`)}); err != nil {
			return err
		}
		select {
		case <-got:
			return nil
		case <-time.After(20 * time.Millisecond):
			return errors.New("a receives nothing")
		}
	})
}

// helperEnv carries the settings of a node run in a child process by
// TestHelperNode.
const helperEnv = "FIRETOWER_REDIS_HELPER_NODE"

type helperNode struct {
	Addr, Prefix, Node, Topic string
	Count                     int64
	Lease                     time.Duration
}

// TestHelperNode is not a test: TestCrashedNodeCountsExpire runs the test
// binary again with only this function, as a gateway node's broker that it
// then kills with SIGKILL.
func TestHelperNode(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("the child process of TestCrashedNodeCountsExpire")
	}
	var h helperNode
	if err := json.Unmarshal([]byte(spec), &h); err != nil {
		t.Fatal(err)
	}
	cfg := fastConfig(h.Addr, h.Prefix)
	cfg.Lease = h.Lease
	b := newBroker(t, cfg)
	if err := b.Start(context.Background(), h.Node, func(*broker.Message) {}); err != nil {
		t.Fatal(err)
	}
	b.SetInterest(h.Topic, h.Count)
	select {} // until killed
}

// A node that crashes (SIGKILL, no goodbye) keeps its subscribers in the
// cluster-wide count until its lease ends, then they disappear.
func TestCrashedNodeCountsExpire(t *testing.T) {
	cfg := sharedConfig(t)
	const lease = 3 * time.Second
	spec, _ := json.Marshal(helperNode{Addr: clustertest.RedisAddr, Prefix: cfg.Prefix, Node: "doomed", Topic: "t", Count: 3, Lease: lease})
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperNode$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(spec))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	kill := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	t.Cleanup(kill)

	observer := newBroker(t, cfg)
	started(t, observer, "observer")
	count := func() int64 {
		n, err := observer.Count(context.Background(), "t")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	clustertest.CheckFor(t, 10*time.Second, func() error {
		if n := count(); n != 3 {
			return fmt.Errorf("count %d, want the child's 3", n)
		}
		return nil
	})
	kill()
	killed := time.Now()
	if n := count(); n != 3 {
		t.Errorf("count %d right after the crash, want 3 until the lease ends", n)
	}
	clustertest.CheckFor(t, lease+2*time.Second, func() error {
		if n := count(); n != 0 {
			return fmt.Errorf("count %d %v after the crash, want 0 once the lease (%v) ends", n, time.Since(killed).Round(time.Millisecond), lease)
		}
		return nil
	})
	t.Logf("the crashed node's counts expired %v after the kill (lease %v, renewed every %v)",
		time.Since(killed).Round(10*time.Millisecond), lease, lease/3)
}

// After Redis restarts empty, a node writes its counts again as soon as
// its subscription is back, well before its next lease renewal (Lease/3 =
// 5 s here), and receives again with nothing else happening.
func TestCountsRewrittenAfterRestart(t *testing.T) {
	srv := clustertest.StartRedis(t)
	cfg := fastConfig(srv.Addr, clustertest.UniquePrefix(t))
	a, b := newBroker(t, cfg), newBroker(t, cfg)
	gotA := started(t, a, "a")
	started(t, b, "b")
	a.SetInterest("t", 2)
	counted := func() error {
		if n, err := b.Count(context.Background(), "t"); err != nil || n != 2 {
			return fmt.Errorf("b counts %d (%v), want a's 2", n, err)
		}
		return nil
	}
	clustertest.CheckFor(t, 5*time.Second, counted)
	srv.Kill()
	clustertest.CheckFor(t, 5*time.Second, func() error {
		if a.Stats().Connected {
			return errors.New("a has not noticed the crash")
		}
		return nil
	})
	srv.Start()
	restarted := time.Now()
	clustertest.CheckFor(t, 2*time.Second, counted)
	t.Logf("counts back %v after the restart", time.Since(restarted).Round(time.Millisecond))
	clustertest.CheckFor(t, 2*time.Second, func() error {
		if err := b.Publish(context.Background(), &broker.Message{Topic: "t", Origin: "b", Data: []byte(`1`)}); err != nil {
			return err
		}
		select {
		case <-gotA:
			return nil
		case <-time.After(20 * time.Millisecond):
			return errors.New("a receives nothing")
		}
	})
}
