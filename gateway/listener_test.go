package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/gateway"
	"github.com/gorilla/websocket"
)

// A Listener gets what a v2 websocket subscriber gets, counts as a
// subscriber on every node, and leaves with Close.
func TestListener(t *testing.T) {
	var log eventLog
	a, b := twoNodes(t, &log)
	const topic = "/l/room \"quoted\" ü"
	ws := dial(t, a.url+"?id=c1-u1", true)
	send(t, ws, `{"id":1,"type":"subscribe","topics":["/l/room \"quoted\" ü"]}`)
	expectAck(t, ws, "1")

	l, err := b.gw.Listen(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	if l.Topic() != topic {
		t.Errorf("Topic() = %q", l.Topic())
	}
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := a.gw.ConnectNum(context.Background(), topic); n != 2 {
			return fmt.Errorf("a counts %d subscribers, want 2 (the websocket and b's listener)", n)
		}
		return nil
	})
	if n := b.gw.LocalConnectNum(topic); n != 1 {
		t.Errorf("b has %d local subscribers, want the listener", n)
	}

	big := `"` + strings.Repeat("x", 70000) + `"` // a frame with a 64-bit length
	for _, data := range []string{`{"n":1}`, `"é\u2028"`, big} {
		id, err := a.gw.PublishID(context.Background(), topic, []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		d, err := l.Next(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if d.Topic != topic || d.ID != id || string(d.Data) != data || d.Dropped != 0 {
			t.Errorf("listener got %q %d %.40q %d, want %d %.40q", d.Topic, d.ID, d.Data, d.Dropped, id, data)
		}
		f, raw := nextV2(t, ws)
		if string(f.ID) != fmt.Sprintf(`"%d"`, id) || string(f.Data) != data {
			t.Errorf("websocket got %.80s", raw)
		}
	}

	l.Close()
	l.Close() // twice is fine
	if _, err := l.Next(context.Background()); !errors.Is(err, gateway.ErrClosed) {
		t.Errorf("Next after Close: %v", err)
	}
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := a.gw.ConnectNum(context.Background(), topic); n != 1 {
			return fmt.Errorf("a counts %d subscribers after Close, want 1", n)
		}
		return nil
	})
	if _, err := b.gw.Listen("bad,topic", 0); err == nil {
		t.Error("Listen accepted an invalid topic")
	}
}

// A listener whose reader does not keep up drops the new messages and
// counts them; the fan-out is never blocked.
func TestListenerDrops(t *testing.T) {
	gw, err := gateway.New(quietConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = gw.Close() }()
	l, err := gw.Listen("t", 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := gw.Publish(context.Background(), "t", fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if l.Dropped() != 3 || gw.Stats().Dropped != 3 {
		t.Errorf("dropped %d, stats %d; want 3", l.Dropped(), gw.Stats().Dropped)
	}
	ctx := context.Background()
	for i, want := range []string{"0", "1"} {
		d, err := l.Next(ctx)
		if err != nil || string(d.Data) != want || d.Dropped != 3 {
			t.Errorf("message %d: %q dropped %d, %v", i, d.Data, d.Dropped, err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := l.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Next on an empty queue: %v", err)
	}
}

// Shutdown ends every listener, and no new one starts.
func TestListenerShutdown(t *testing.T) {
	gw, err := gateway.New(quietConfig())
	if err != nil {
		t.Fatal(err)
	}
	l, err := gw.Listen("t", 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := l.Next(context.Background())
		done <- err
	}()
	if err := gw.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, gateway.ErrClosed) {
			t.Errorf("Next: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next did not return after Shutdown")
	}
	if _, err := gw.Listen("t", 0); !errors.Is(err, gateway.ErrGatewayClosed) {
		t.Errorf("Listen after Close: %v", err)
	}
	if n := gw.LocalConnectNum("t"); n != 0 {
		t.Errorf("%d subscribers left", n)
	}
}

// PushClient and PushUser reach the connections of every node as ToSelf
// would, and leave the others alone.
func TestPushCommands(t *testing.T) {
	var log eventLog
	a, b := twoNodes(t, &log)
	a1 := dialUser(t, a, "c1", "alice", "")
	b1 := dialUser(t, b, "c1", "alice", "")
	b2 := dial(t, b.url+"?id=c2-alice", true)
	barrier(t, b2, true)
	bob := dialUser(t, b, "c3", "bob", "")
	ctx := context.Background()

	n, err := a.gw.PushClient(ctx, "c1-alice", []byte(`{"to":"c1"}`))
	if err != nil || n != 1 {
		t.Fatalf("PushClient = %d, %v; want 1 local", n, err)
	}
	for _, c := range []*websocket.Conn{a1, b1} {
		if got := next(t, c); got != `{"to":"c1"}` {
			t.Errorf("c1 got %s", got)
		}
	}
	n, err = a.gw.PushUser(ctx, "alice", []byte(`"hi alice"`))
	if err != nil || n != 1 {
		t.Fatalf("PushUser = %d, %v; want 1 local", n, err)
	}
	for _, c := range []*websocket.Conn{a1, b1} {
		if got := next(t, c); got != `"hi alice"` {
			t.Errorf("v1 got %s", got)
		}
	}
	if got := next(t, b2); got != `{"type":"direct","data":"hi alice"}` {
		t.Errorf("v2 got %s", got)
	}
	if got := barrier(t, bob, false); len(got) != 0 {
		t.Errorf("bob got %q", got)
	}
	if n, err := b.gw.PushUser(ctx, "nobody", []byte(`1`)); err != nil || n != 0 {
		t.Errorf("PushUser to nobody = %d, %v", n, err)
	}

	for _, bad := range []struct {
		name string
		err  error
		do   func() (int, error)
	}{
		{"not JSON", gateway.ErrInvalidData, func() (int, error) { return a.gw.PushUser(ctx, "alice", []byte(`nope`)) }},
		{"not UTF-8", gateway.ErrInvalidData, func() (int, error) { return a.gw.PushUser(ctx, "alice", []byte("\"\xff\"")) }},
		{"too large", gateway.ErrMessageTooLarge, func() (int, error) {
			return a.gw.PushClient(ctx, "c1-alice", []byte(`"`+strings.Repeat("x", gateway.DefaultMaxMessageSize)+`"`))
		}},
		{"no data", broker.ErrBadCommand, func() (int, error) { return a.gw.PushClient(ctx, "c1-alice", nil) }},
		{"no user", broker.ErrBadCommand, func() (int, error) { return a.gw.PushUser(ctx, "", []byte(`1`)) }},
	} {
		if n, err := bad.do(); n != 0 || !errors.Is(err, bad.err) {
			t.Errorf("%s: %d, %v; want %v", bad.name, n, err, bad.err)
		}
	}
	if got := barrier(t, a1, false); len(got) != 0 {
		t.Errorf("a refused push still reached alice: %q", got)
	}
}
