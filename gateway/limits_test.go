package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/protocol"
	"github.com/gorilla/websocket"
)

// oneMiBJSON returns a JSON string of exactly 1 MiB mixing ASCII, escapes
// and multi-byte UTF-8, so that any re-encoding on the way would show.
func oneMiBJSON() []byte {
	const size = 1 << 20
	chunk := `abc 123 \"quoted\" \\ \n \u00e9 é € 😀 <&> ` // valid inside a JSON string
	b := make([]byte, 0, size)
	b = append(b, '"')
	for len(b)+len(chunk) <= size-1 {
		b = append(b, chunk...)
	}
	for len(b) < size-1 {
		b = append(b, 'x')
	}
	return append(b, '"')
}

// TestLargePayloadV1AndV2: a client publishes 1 MiB of data (the default
// MaxMessageSize; the read limit raised to 2 MiB for the frame around it)
// and a v1 and a v2 subscriber receive exactly those bytes.
func TestLargePayloadV1AndV2(t *testing.T) {
	ts := newTestServer(t, gateway.Config{Logger: silentLogger, ReadLimit: 2 << 20}, nil)
	r := subscribeReaders(t, ts, "huge")
	awaitLocalCount(t, ts.gw, "huge", 2)
	data := oneMiBJSON()
	if !json.Valid(data) || len(data) != 1<<20 {
		t.Fatalf("bad test data: valid %v, %d bytes", json.Valid(data), len(data))
	}

	pub := dial(t, ts.url, false)
	send(t, pub, `{"type":"publish","topic":"huge","data":`+string(data)+`}`)
	if got := next(t, r.v1); got != string(data) {
		t.Fatalf("v1 subscriber: got %d bytes, want the %d bytes sent", len(got), len(data))
	}
	var env struct {
		Type  string          `json:"type"`
		Topic string          `json:"topic"`
		Data  json.RawMessage `json:"data"`
	}
	got := next(t, r.v2)
	if err := json.Unmarshal([]byte(got), &env); err != nil {
		t.Fatalf("v2 envelope: %v", err)
	}
	if env.Type != "message" || env.Topic != "huge" || !bytes.Equal(env.Data, data) {
		t.Fatalf("v2 subscriber: type %q topic %q, %d data bytes (equal %v)", env.Type, env.Topic, len(env.Data), bytes.Equal(env.Data, data))
	}

	// The server API has the same bound: one byte more is refused.
	if err := ts.gw.Publish(t.Context(), "huge", data); err != nil {
		t.Fatalf("publish 1 MiB: %v", err)
	}
	over := append(append([]byte{}, data[:len(data)-1]...), ` "`...)
	if err := ts.gw.Publish(t.Context(), "huge", over); !errors.Is(err, gateway.ErrMessageTooLarge) {
		t.Fatalf("publish 1 MiB + 1: %v, want ErrMessageTooLarge", err)
	}
	r.expect(t, "huge", 0, data)
}

// TestTopicNames: topics with inner spaces, unicode, and exactly 255 bytes
// work for v1 and v2 clients and the server API; 256 bytes are refused.
func TestTopicNames(t *testing.T) {
	ts := newTestServer(t, gateway.Config{Logger: silentLogger}, nil)
	longest := strings.Repeat("é", 127) + "x" // 255 bytes, 128 characters
	tooLong := strings.Repeat("é", 128)       // 256 bytes
	topics := []string{"room with spaces", "温度/传感器 ☃ Ünïcødé 😀", longest}
	if len(longest) != 255 || len(tooLong) != 256 {
		t.Fatal("bad test topics")
	}
	quote := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	v1 := dial(t, ts.url, false)
	v2 := dial(t, ts.url, true)
	send(t, v1, `{"type":"subscribe","topic":`+quote(strings.Join(topics, ", "))+`}`)
	send(t, v2, `{"id":1,"type":"subscribe","topics":`+quote(topics)+`}`)
	if got := next(t, v2); got != `{"type":"ack","id":1}` {
		t.Fatalf("v2 subscribe: %s", got)
	}
	for _, topic := range topics {
		awaitLocalCount(t, ts.gw, topic, 2)
	}

	expect := func(topic, data string) {
		t.Helper()
		if got := next(t, v1); got != data {
			t.Fatalf("v1 on %q: got %s, want %s", topic, got, data)
		}
		var env struct {
			Topic string          `json:"topic"`
			Data  json.RawMessage `json:"data"`
		}
		got := next(t, v2)
		if err := json.Unmarshal([]byte(got), &env); err != nil || env.Topic != topic || string(env.Data) != data {
			t.Fatalf("v2 on %q: got %s (%v)", topic, got, err)
		}
	}
	for i, topic := range topics {
		data := fmt.Sprintf(`{"n":%d}`, i)
		if err := ts.gw.Publish(t.Context(), topic, []byte(data)); err != nil {
			t.Fatalf("publish to %q: %v", topic, err)
		}
		expect(topic, data)
	}
	// A client publish to each topic too.
	for _, topic := range topics {
		send(t, v1, `{"type":"publish","topic":`+quote(topic)+`,"data":"from a client"}`)
		expect(topic, `"from a client"`)
	}

	// 256 bytes: refused by the server API, and a v2 subscription naming
	// it is refused as a whole with 422.
	if err := ts.gw.Publish(t.Context(), tooLong, []byte(`1`)); !errors.Is(err, protocol.ErrTopicTooLong) {
		t.Fatalf("publish to a 256-byte topic: %v, want ErrTopicTooLong", err)
	}
	send(t, v2, `{"id":2,"type":"subscribe","topics":`+quote([]string{"fine", tooLong})+`}`)
	var reply struct {
		Type  string          `json:"type"`
		ID    json.RawMessage `json:"id"`
		Error struct{ Code int }
	}
	if got := next(t, v2); json.Unmarshal([]byte(got), &reply) != nil ||
		reply.Type != "error" || string(reply.ID) != "2" || reply.Error.Code != protocol.CodeInvalidTopic {
		t.Fatalf("v2 subscribe to a 256-byte topic: got %s, want an error with code %d", got, protocol.CodeInvalidTopic)
	}
	// v1 has no replies: a later subscription is the barrier (a
	// connection's frames are handled in order).
	send(t, v1, `{"type":"subscribe","topic":`+quote(tooLong)+`}`)
	send(t, v1, `{"type":"subscribe","topic":"barrier"}`)
	awaitLocalCount(t, ts.gw, "barrier", 1)
	if n, m := ts.gw.LocalConnectNum(tooLong), ts.gw.LocalConnectNum("fine"); n != 0 || m != 0 {
		t.Fatalf("refused topics have subscribers: 256-byte %d, fine %d", n, m)
	}
}

// closeWatcher reads a client until its connection ends and records when
// and with which close code (0: no close frame).
type closeWatcher struct {
	code int
	at   time.Time
}

// TestShutdownDrain: Shutdown closes every client with 1001, spreads the
// closes over the drain window, refuses new upgrades with 503 meanwhile,
// and leaves no goroutine behind.
func TestShutdownDrain(t *testing.T) {
	const (
		clients = 20
		drain   = time.Second
	)
	ts := newTestServer(t, gateway.Config{Logger: silentLogger}, nil)
	baseline := runtime.NumGoroutine()

	watch := make([]closeWatcher, clients)
	var wg sync.WaitGroup
	var closed atomic.Int64
	conns := make([]*websocket.Conn, clients)
	for i := range clients {
		c := dial(t, ts.url, i%2 == 1)
		conns[i] = c
		wg.Go(func() {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					watch[i].at = time.Now()
					var ce *websocket.CloseError
					if errors.As(err, &ce) {
						watch[i].code = ce.Code
					}
					closed.Add(1)
					return
				}
			}
		})
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
	})
	waitStats(t, ts.gw, "clients connected", func(s gateway.Stats) bool { return s.Connections == clients })

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	shutdown := make(chan error, 1)
	go func() { shutdown <- ts.gw.Shutdown(ctx, drain) }()

	checkFor(t, 5*time.Second, time.Millisecond, func() error {
		if closed.Load() == 0 {
			return errors.New("no client closed yet")
		}
		return nil
	})
	resp, body, _ := rawHandshake(t, ts.url, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "shutting down") {
		t.Errorf("upgrade during the drain: %s %q, want 503", resp.Status, body)
	}
	if n := closed.Load(); n == clients {
		t.Errorf("the drain was over before the upgrade was tried; cannot tell whether it was refused while draining")
	}

	select {
	case err := <-shutdown:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	wg.Wait()
	first, last := watch[0].at, watch[0].at
	for i, w := range watch {
		if w.code != protocol.CloseGoingAway {
			t.Errorf("client %d: close code %d, want %d", i, w.code, protocol.CloseGoingAway)
		}
		if w.at.Before(first) {
			first = w.at
		}
		if w.at.After(last) {
			last = w.at
		}
	}
	spread := last.Sub(first)
	t.Logf("closes spread over %v of a %v drain", spread, drain)
	// Evenly spread, the last close comes (clients-1)/clients of the
	// window after the first; half the window is a generous floor.
	if spread < drain/2 {
		t.Errorf("closes spread over %v, less than half the %v drain window", spread, drain)
	}

	resp, body, _ = rawHandshake(t, ts.url, nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("upgrade after Shutdown: %s %q, want 503", resp.Status, body)
	}
	if s := ts.gw.Stats(); s.Connections != 0 || s.DisconnectsTotal != clients {
		t.Errorf("after Shutdown: connections %d, disconnects %d", s.Connections, s.DisconnectsTotal)
	}
	goroutinesSettle(t, baseline)
}

// TestConnectDisconnectCycles opens and closes 1,000 connections, four at a
// time, alternating a full close handshake after a v2 subscription with a
// v1 subscription and an abrupt TCP close: goroutines, file descriptors,
// connections and topics all return to their baseline.
func TestConnectDisconnectCycles(t *testing.T) {
	const (
		cycles  = 1000
		workers = 4
	)
	ts := newTestServer(t, gateway.Config{Logger: silentLogger}, nil)
	goroutines, fds := runtime.NumGoroutine(), openFDs()

	var next atomic.Int64
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= cycles {
					errs <- nil
					return
				}
				if err := connectCycle(ts.url, i); err != nil {
					errs <- fmt.Errorf("cycle %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}

	waitStats(t, ts.gw, "every connection gone", func(s gateway.Stats) bool {
		return s.Connections == 0 && s.ConnectsTotal == cycles && s.DisconnectsTotal == cycles && s.Topics == 0
	})
	goroutinesSettle(t, goroutines)
	if fds >= 0 {
		checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
			if n := openFDs(); n > fds {
				return fmt.Errorf("%d open file descriptors, baseline %d", n, fds)
			}
			return nil
		})
	}
}

// connectCycle opens one connection, subscribes, and closes it: even cycles
// with the close handshake (v2), odd ones by dropping the socket (v1).
func connectCycle(url string, i int64) error {
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	graceful := i%2 == 0
	if graceful {
		d.Subprotocols = []string{protocol.SubprotocolV2}
	}
	c, resp, err := d.Dial(url, nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	defer c.Close()
	topic := fmt.Sprintf("cycle-%d", i%7)
	if !graceful {
		return c.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","topic":"`+topic+`"}`))
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"id":1,"type":"subscribe","topics":["`+topic+`"]}`)); err != nil {
		return err
	}
	if _, b, err := c.ReadMessage(); err != nil || string(b) != `{"type":"ack","id":1}` {
		return fmt.Errorf("subscribe: %s %v", b, err)
	}
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")
	if err := c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(5*time.Second)); err != nil {
		return err
	}
	for {
		_, _, err := c.ReadMessage()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			if ce.Code != websocket.CloseNormalClosure {
				return fmt.Errorf("close echo %d", ce.Code)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("no close echo: %w", err)
		}
	}
}
