package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/gateway"
	"github.com/gorilla/websocket"
)

// gatedBroker is an in-process broker whose Publish and Count block while
// the gate is closed, as a stalled Redis or a paused topic manager would;
// Publish fails with fail when it is set.
type gatedBroker struct {
	*broker.Memory
	mu      sync.Mutex
	gate    chan struct{} // nil: open
	fail    error
	blocked chan string // the topics of the Publish calls that wait at the gate
}

func newGatedBroker() *gatedBroker {
	return &gatedBroker{Memory: broker.NewMemory(), blocked: make(chan string, 1024)}
}

func (b *gatedBroker) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gate == nil {
		b.gate = make(chan struct{})
	}
}

func (b *gatedBroker) open() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gate != nil {
		close(b.gate)
		b.gate = nil
	}
}

func (b *gatedBroker) wait(ctx context.Context) error {
	b.mu.Lock()
	gate := b.gate
	b.mu.Unlock()
	if gate == nil {
		return nil
	}
	select {
	case <-gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *gatedBroker) Publish(ctx context.Context, m *broker.Message) error {
	b.mu.Lock()
	gated, fail := b.gate != nil, b.fail
	b.mu.Unlock()
	if gated {
		select {
		case b.blocked <- m.Topic:
		default:
		}
	}
	if err := b.wait(ctx); err != nil {
		return err
	}
	if fail != nil {
		return fail
	}
	return b.Memory.Publish(ctx, m)
}

func (b *gatedBroker) Count(ctx context.Context, topic string) (int64, error) {
	if err := b.wait(ctx); err != nil {
		return 0, err
	}
	return b.Memory.Count(ctx, topic)
}

// onePoller is a netpoll gateway with a single poller (where a poller that
// waits would stall every connection), or the goroutine transport when the
// suite runs on it.
func onePoller(t *testing.T, b broker.Broker) gateway.Config {
	cfg := quietConfig()
	cfg.NodeInfoInterval = -1
	cfg.Broker = b
	if runtime.GOOS == "linux" {
		cfg.Transport = gateway.TransportNetpoll
		cfg.Pollers = 1
	}
	return cfg
}

// While the broker holds one client's publish, 100 other clients publish
// and get their own echoes: nothing waits on the broker but the acks. The
// held client's frames are handled too (its subscribe is acknowledged
// before its publish); its publish is acknowledged once the broker takes
// it.
func TestPublishDoesNotWaitForTheBroker(t *testing.T) {
	for _, transport := range []gateway.Transport{gateway.TransportNetpoll, gateway.TransportGoroutine} {
		t.Run(string(transport), func(t *testing.T) {
			b := newGatedBroker()
			cfg := onePoller(t, b)
			cfg.Transport = transport
			ts := newTestServer(t, cfg, nil)

			held := dial(t, ts.url, true)
			send(t, held, `{"id":1,"type":"subscribe","topics":["/held"]}`)
			expectAck(t, held, "1")
			b.close()
			send(t, held, `{"id":2,"type":"publish","topic":"/held","data":"stuck"}`)
			if f, raw := nextV2(t, held); f.Type != "message" || string(f.Data) != `"stuck"` {
				t.Fatalf("echo: got %s", raw)
			}
			select {
			case <-b.blocked:
			case <-time.After(5 * time.Second):
				t.Fatal("the publish never reached the broker")
			}
			send(t, held, `{"id":3,"type":"subscribe","topics":["/later"]}`)
			expectAck(t, held, "3") // handled while publish 2 waits for the broker

			const others = 100
			conns := make([]*websocket.Conn, others)
			for i := range conns {
				conns[i] = dial(t, ts.url, false)
				send(t, conns[i], fmt.Sprintf(`{"type":"subscribe","topic":"/own/%d","data":""}`, i))
			}
			for i := range conns {
				waitCount(t, ts.gw, fmt.Sprintf("/own/%d", i), 1)
			}
			start := time.Now()
			for i, c := range conns {
				send(t, c, fmt.Sprintf(`{"type":"publish","topic":"/own/%d","data":%d}`, i, i))
			}
			for i, c := range conns {
				if got, want := next(t, c), fmt.Sprint(i); got != want {
					t.Fatalf("client %d: got %s, want %s", i, got, want)
				}
			}
			t.Logf("100 echoes in %v with the broker stalled", time.Since(start))

			b.open()
			expectAck(t, held, "2")
		})
	}
}

// A publish the broker refuses is answered with a v2 error once the broker
// has answered; local subscribers still got it.
func TestPublishErrorFromTheBroker(t *testing.T) {
	b := newGatedBroker()
	b.fail = fmt.Errorf("%w: test", broker.ErrUnavailable)
	ts := newTestServer(t, onePoller(t, b), nil)
	c := dial(t, ts.url, true)
	send(t, c, `{"id":1,"type":"subscribe","topics":["/t"]}`)
	expectAck(t, c, "1")
	send(t, c, `{"id":2,"type":"publish","topic":"/t","data":1}`)
	if f, raw := nextV2(t, c); f.Type != "message" || string(f.Data) != "1" {
		t.Fatalf("local delivery: got %s", raw)
	}
	expectError(t, c, "2", 503)
}

// A ReadHandler that blocks holds up only its own connection: the others,
// on the same (single) poller, carry on, and the blocked connection's
// later frames run in order once it returns.
func TestBlockingCallbackHoldsOnlyItsConnection(t *testing.T) {
	cfg := onePoller(t, nil)
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	var log eventLog
	ts := newTestServer(t, cfg, func(tower *gateway.FireTower) {
		tower.SetReadHandler(func(fire *gateway.FireInfo) bool {
			if string(fire.Message.Data) == `"block"` {
				<-release
			}
			log.add("read %s %s", tower.ClientId, fire.Message.Data)
			_ = tower.Publish(fire)
			return true
		})
	})
	blocked := dial(t, ts.url+"?id=blocked", false)
	send(t, blocked, `{"type":"subscribe","topic":"/b","data":""}`)
	waitCount(t, ts.gw, "/b", 1)
	send(t, blocked, `{"type":"publish","topic":"/b","data":"block"}`)
	send(t, blocked, `{"type":"publish","topic":"/b","data":"after"}`)

	const others = 20
	for i := range others {
		c := dial(t, ts.url, false)
		topic := fmt.Sprintf("/o/%d", i)
		send(t, c, `{"type":"subscribe","topic":"`+topic+`","data":""}`)
		waitCount(t, ts.gw, topic, 1)
		send(t, c, `{"type":"publish","topic":"`+topic+`","data":"x"}`)
		if got := next(t, c); got != `"x"` {
			t.Fatalf("client %d: got %s", i, got)
		}
	}
	if n := log.count("read blocked"); n != 0 {
		t.Fatalf("the blocked connection's later frame ran before the first returned: %q", log.list())
	}
	releaseOnce.Do(func() { close(release) })
	for _, want := range []string{`"block"`, `"after"`} {
		if got := next(t, blocked); got != want {
			t.Fatalf("blocked connection: got %s, want %s", got, want)
		}
	}
	if got := log.list(); got[len(got)-2] != `read blocked "block"` || got[len(got)-1] != `read blocked "after"` {
		t.Fatalf("order: %q", got)
	}
}

// Shutdown returns by its context's deadline even when a callback blocks.
func TestShutdownDeadlineWithABlockedCallback(t *testing.T) {
	cfg := onePoller(t, nil)
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	ts := newTestServer(t, cfg, func(tower *gateway.FireTower) {
		tower.SetReadHandler(func(*gateway.FireInfo) bool {
			entered <- struct{}{}
			<-release
			return true
		})
	})
	defer close(release)
	c := dial(t, ts.url, false)
	send(t, c, `{"type":"publish","topic":"/x","data":1}`)
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := ts.gw.Shutdown(ctx, 0)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want the deadline", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Shutdown took %v past a 300 ms deadline", d)
	}
}

// KnownCount hides the in-process broker's KnownCount: the gateway then
// counts the other nodes through its cache of Count answers.
func (b *gatedBroker) KnownCount(string) (int64, bool) { return 0, false }

// The counts a SubscribeHandler announces (GetConnectNum) never wait on
// the broker for long: with Count stalled for good, every subscribe is
// acknowledged (a new topic waits a bounded time for its first count,
// then counts this node), and another client's echo is not held up.
func TestGetConnectNumDoesNotWaitForTheBroker(t *testing.T) {
	b := newGatedBroker()
	cfg := onePoller(t, b)
	var counts sync.Map
	ts := newTestServer(t, cfg, func(tower *gateway.FireTower) {
		tower.SetSubscribeHandler(func(_ *gateway.FireLife, topics []string) bool {
			for _, topic := range topics {
				counts.Store(topic, tower.GetConnectNum(topic))
			}
			return true
		})
		tower.SetReadHandler(func(fire *gateway.FireInfo) bool {
			_ = tower.Publish(fire)
			return true
		})
	})
	other := dial(t, ts.url, false)
	send(t, other, `{"type":"subscribe","topic":"/other","data":""}`)
	waitCount(t, ts.gw, "/other", 1)
	b.close()
	defer b.open()
	c := dial(t, ts.url, true)
	for i := range 10 {
		send(t, c, fmt.Sprintf(`{"id":%d,"type":"subscribe","topics":["/c/%d"]}`, i, i))
	}
	send(t, other, `{"type":"publish","topic":"/other","data":"echo"}`)
	if got := next(t, other); got != `"echo"` {
		t.Fatalf("other client: got %s", got)
	}
	for i := range 10 {
		expectAck(t, c, fmt.Sprint(i))
	}
	if n, _ := counts.Load("/c/7"); n != int64(1) {
		t.Fatalf("GetConnectNum = %v, want the local 1", n)
	}
}
