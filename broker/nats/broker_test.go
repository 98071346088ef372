package nats_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/broker/nats"
	"github.com/firetower-go/firetower/internal/clustertest"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url     string
		servers []string
		prefix  string
	}{
		{"nats://127.0.0.1:4222", []string{"nats://127.0.0.1:4222"}, ""},
		{"nats://a,b:5222, c:6222 ?prefix=app.one", []string{"nats://a:4222", "nats://b:5222", "nats://c:6222"}, "app.one"},
		{"nats://u:p@h:1,nats://h2:2", []string{"nats://u:p@h:1", "nats://h2:2"}, ""},
		{"tls://h", []string{"tls://h:4222"}, ""},
	} {
		cfg, err := nats.ParseURL(tc.url)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tc.url, err)
			continue
		}
		if !slices.Equal(cfg.Servers, tc.servers) || cfg.Prefix != tc.prefix {
			t.Errorf("ParseURL(%q) = servers %q prefix %q, want %q %q", tc.url, cfg.Servers, cfg.Prefix, tc.servers, tc.prefix)
		}
	}
	for _, bad := range []string{
		"redis://h:1", "nats://", "nats://,", "nats://h:1/path", "nats://h:1?prefix=", "nats://h:1?prefix=a.*",
		"nats://h:1?prefix=a..b", "nats://h:1?other=1",
	} {
		if _, err := nats.ParseURL(bad); err == nil {
			t.Errorf("ParseURL(%q) accepted", bad)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, cfg := range []nats.Config{
		{Prefix: "a>"}, {Prefix: "a b"}, {Heartbeat: -1}, {CountTimeout: -1}, {QueueLen: -1},
		{BackoffMin: time.Second, BackoffMax: time.Millisecond}, {Servers: []string{""}},
	} {
		if err := cfg.Validate(); err == nil {
			t.Errorf("Validate accepted %+v", cfg)
		}
		if _, err := nats.New(cfg); err == nil {
			t.Errorf("New accepted %+v", cfg)
		}
	}
	if err := (&nats.Config{}).Validate(); err != nil {
		t.Errorf("the zero Config: %v", err)
	}
}

// started starts b as node id with a handler that records into got.
func started(t *testing.T, b *nats.Broker, id string) chan *broker.Message {
	t.Helper()
	got := make(chan *broker.Message, 1000)
	if err := b.Start(context.Background(), id, func(m *broker.Message) { got <- m }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return got
}

// A broker started while NATS is down starts anyway; Publish and Count fail
// at once with ErrUnavailable; interest set meanwhile takes effect once the
// server is there, with nothing else done.
func TestStartWhileNATSDown(t *testing.T) {
	srv := clustertest.StartNATS(t, "")
	srv.Kill()
	cfg := fastConfig("nats://"+srv.Addr, clustertest.UniquePrefix(t))
	a := newBroker(t, cfg)
	began := time.Now()
	gotA := started(t, a, "a")
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("Start took %v with NATS down", d)
	}
	a.SetInterest("t", 2)
	err := a.Publish(context.Background(), &broker.Message{Topic: "t", Origin: "a", Data: []byte(`1`)})
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Publish with NATS down: %v, want ErrUnavailable", err)
	}
	if _, err := a.Count(context.Background(), "t"); !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Count with NATS down: %v, want ErrUnavailable", err)
	}

	srv.Start()
	b := newBroker(t, cfg)
	started(t, b, "b")
	clustertest.CheckFor(t, 10*time.Second, func() error {
		if n, err := b.Count(context.Background(), "t"); err != nil || n != 2 {
			return fmt.Errorf("b counts %d (%v), want a's 2", n, err)
		}
		return nil
	})
	clustertest.PublishUntilReceived(t, b, &broker.Message{Topic: "t", Origin: "b", Data: []byte(`"x"`)}, gotA, 10*time.Second)
}

// A message whose envelope exceeds the server's max_payload is refused
// with ErrTooLarge and a message that says what to change; one that just
// fits is delivered byte for byte.
func TestPayloadLimit(t *testing.T) {
	cfg := sharedConfig(t)
	limit := int(serverMaxPayload(t, clustertest.NATSAddr))
	a, b := newBroker(t, cfg), newBroker(t, cfg)
	started(t, a, "a")
	got := started(t, b, "b")
	b.SetInterest("big", 1)
	const topic, origin = "big", "a"
	overhead := 14 + len(topic) + len(origin) // the envelope's header, origin and topic
	data := func(n int) []byte {
		d := []byte(`"` + strings.Repeat("x", n-2) + `"`)
		return d
	}
	clustertest.CheckFor(t, 5*time.Second, func() error {
		if err := a.Publish(context.Background(), &broker.Message{Topic: topic, Origin: origin, Data: []byte(`0`)}); err != nil {
			return err
		}
		select {
		case <-got:
			return nil
		case <-time.After(20 * time.Millisecond):
			return errors.New("b receives nothing")
		}
	})
	fits := data(limit - overhead)
	if err := a.Publish(context.Background(), &broker.Message{Topic: topic, ID: 1, Origin: origin, Data: fits}); err != nil {
		t.Fatalf("a message of exactly max_payload (%d bytes): %v", limit, err)
	}
	select {
	case m := <-got:
		if m.ID != 1 || string(m.Data) != string(fits) {
			t.Fatalf("received id %d with %d bytes, want id 1 with %d", m.ID, len(m.Data), len(fits))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the message of exactly max_payload did not arrive")
	}
	err := a.Publish(context.Background(), &broker.Message{Topic: topic, ID: 2, Origin: origin, Data: data(limit - overhead + 1)})
	if !errors.Is(err, nats.ErrTooLarge) || !errors.Is(err, broker.ErrTooLarge) || !strings.Contains(err.Error(), "max_payload") {
		t.Fatalf("a message one byte over max_payload: %v, want ErrTooLarge naming max_payload", err)
	}
	t.Logf("refused: %v", err)
}

// Messages that are not envelopes, or whose topic is not their subject's,
// are dropped and counted, never handed to the gateway.
func TestMalformedDropped(t *testing.T) {
	cfg := sharedConfig(t)
	a := newBroker(t, cfg)
	got := started(t, a, "a")
	a.SetInterest("t", 1)
	other := newBroker(t, cfg)
	started(t, other, "other")
	clustertest.CheckFor(t, 5*time.Second, func() error {
		if err := other.Publish(context.Background(), &broker.Message{Topic: "t", Origin: "other", Data: []byte(`0`)}); err != nil {
			return err
		}
		select {
		case <-got:
			return nil
		case <-time.After(20 * time.Millisecond):
			return errors.New("a receives nothing")
		}
	})
	raw, err := natsgo.Connect("nats://" + clustertest.NATSAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	subject := cfg.Prefix + ".t.dA" // base64url of "t"
	for _, payload := range []string{"", "not an envelope", "\x01\x00\x00",
		"\x01\x00" + strings.Repeat("\x00", 8) + "\x00\x01x\x00\x01u1"} { // a valid envelope for topic "u"
		if err := raw.Publish(subject, []byte(payload)); err != nil {
			t.Fatal(err)
		}
	}
	if err := raw.Flush(); err != nil {
		t.Fatal(err)
	}
	clustertest.CheckFor(t, 5*time.Second, func() error {
		if n := a.Stats().Malformed; n != 4 {
			return fmt.Errorf("%d messages counted malformed, want 4", n)
		}
		return nil
	})
	select {
	case m := <-got:
		t.Fatalf("received %+v", m)
	case <-time.After(100 * time.Millisecond):
	}
}

// helperEnv carries the settings of a node run in a child process by
// TestHelperNode.
const helperEnv = "FIRETOWER_NATS_HELPER_NODE"

type helperNode struct {
	URL, Prefix, Node, Topic string
	Count                    int64
}

// TestHelperNode is not a test: TestCrashedNodeNotCounted runs the test
// binary again with only this function, as a gateway node's broker that it
// then kills with SIGKILL.
func TestHelperNode(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("the child process of TestCrashedNodeNotCounted")
	}
	var h helperNode
	if err := json.Unmarshal([]byte(spec), &h); err != nil {
		t.Fatal(err)
	}
	b := newBroker(t, fastConfig(h.URL, h.Prefix))
	if err := b.Start(context.Background(), h.Node, func(*broker.Message) {}); err != nil {
		t.Fatal(err)
	}
	b.SetInterest(h.Topic, h.Count)
	select {} // until killed
}

// A node that crashes (SIGKILL, no goodbye) stops answering counts: the
// first Count after the crash waits for it at most CountTimeout and leaves
// it out; the next ones do not wait for it at all.
func TestCrashedNodeNotCounted(t *testing.T) {
	cfg := sharedConfig(t)
	cfg.CountTimeout = 300 * time.Millisecond
	spec, _ := json.Marshal(helperNode{URL: cfg.Servers[0], Prefix: cfg.Prefix, Node: "doomed", Topic: "t", Count: 3})
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
	count := func() (int64, time.Duration) {
		began := time.Now()
		n, err := observer.Count(context.Background(), "t")
		if err != nil {
			t.Fatal(err)
		}
		return n, time.Since(began)
	}
	clustertest.CheckFor(t, 10*time.Second, func() error {
		if n, _ := count(); n != 3 {
			return fmt.Errorf("count %d, want the child's 3", n)
		}
		return nil
	})
	if _, d := count(); d > 100*time.Millisecond {
		t.Errorf("a count with every node alive took %v", d)
	}
	kill()
	n, d := count()
	if n != 0 || d > cfg.CountTimeout+time.Second {
		t.Errorf("first count after the crash: %d after %v, want 0 within the count timeout (%v)", n, d, cfg.CountTimeout)
	}
	if n, d := count(); n != 0 || d > 100*time.Millisecond {
		t.Errorf("second count after the crash: %d after %v, want 0 at once", n, d)
	}
}

// A node that closes says goodbye: the others stop waiting for its answer
// at once, instead of after a count timeout.
func TestClosedNodeLeavesAtOnce(t *testing.T) {
	cfg := sharedConfig(t)
	cfg.CountTimeout = 3 * time.Second
	a, b := newBroker(t, cfg), newBroker(t, cfg)
	started(t, a, "a")
	started(t, b, "b")
	b.SetInterest("t", 4)
	clustertest.CheckFor(t, 5*time.Second, func() error {
		if n, err := a.Count(context.Background(), "t"); err != nil || n != 4 {
			return fmt.Errorf("a counts %d (%v), want b's 4", n, err)
		}
		return nil
	})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	clustertest.CheckFor(t, 5*time.Second, func() error {
		began := time.Now()
		n, err := a.Count(context.Background(), "t")
		if d := time.Since(began); d > time.Second {
			t.Fatalf("a count after b closed took %v: it waited for b", d)
		}
		if err != nil || n != 0 {
			return fmt.Errorf("a counts %d (%v), want 0", n, err)
		}
		return nil
	})
}
