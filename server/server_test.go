package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/internal/wait"
	"github.com/firetower-go/firetower/protocol"
	"github.com/firetower-go/firetower/server"
	"github.com/firetower-go/firetower/web"
	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
)

// testServer is a server.Server serving on 127.0.0.1 with a random port.
type testServer struct {
	srv    *server.Server
	base   string // http://127.0.0.1:port
	ws     string // ws://127.0.0.1:port/ws
	cancel context.CancelFunc
	done   chan error // Serve's result
}

// startServer starts cfg on a loopback listener. The server is stopped at
// the end of the test unless the test stops it itself.
func startServer(t *testing.T, cfg server.Config) *testServer {
	t.Helper()
	if cfg.Gateway.Logger == nil {
		cfg.Gateway.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DrainWindow == 0 {
		cfg.DrainWindow = 50 * time.Millisecond
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{
		srv:    srv,
		base:   "http://" + l.Addr().String(),
		ws:     "ws://" + l.Addr().String() + "/ws",
		cancel: cancel,
		done:   make(chan error, 1),
	}
	go func() { ts.done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		if err := ts.stop(t); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ts
}

// stop cancels Serve's context and returns its result. It may be called
// more than once.
func (ts *testServer) stop(t *testing.T) error {
	t.Helper()
	ts.cancel()
	select {
	case err, ok := <-ts.done:
		if ok {
			close(ts.done)
		}
		return err
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return 15s after its context was cancelled")
		return nil
	}
}

// dial opens a websocket client; it is closed at the end of the test.
func dial(t *testing.T, url string, header http.Header) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	c, resp, err := d.Dial(url, header)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", url, err, status)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func send(t *testing.T, c *websocket.Conn, frame string) {
	t.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := c.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// next returns the next text message other than the v1 heartbeat.
func next(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, b, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if s := string(b); s != "heartbeat" {
			return s
		}
	}
}

func expect(t *testing.T, c *websocket.Conn, who, want string) {
	t.Helper()
	if got := next(t, c); got != want {
		t.Fatalf("%s got %s, want %s", who, got, want)
	}
}

// closeClient runs the closing handshake from the client side and waits
// for the server's answer.
func closeClient(t *testing.T, c *websocket.Conn) {
	t.Helper()
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	if err := c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(5*time.Second)); err != nil {
		t.Fatalf("write close: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				t.Fatalf("closing handshake: %v", err)
			}
			return
		}
	}
}

// checkFor polls fn every interval until it returns nil or total elapses.
func checkFor(t *testing.T, total, interval time.Duration, fn func() error) {
	t.Helper()
	wait.For(t, total, interval, fn)
}

func waitSubscribers(t *testing.T, ts *testServer, topic string, n int64) {
	t.Helper()
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if got := ts.srv.Gateway().LocalConnectNum(topic); got != n {
			return fmt.Errorf("%s has %d subscribers, want %d", topic, got, n)
		}
		return nil
	})
}

const (
	subscribeWorld = `{"type":"subscribe","topic":"/chat/world","data":""}`
	// chatData is what the original chat page publishes; subscribers get
	// exactly this JSON value, with no envelope.
	chatData    = `{"from":"1234567","data":"hi","type":"publish"}`
	publishChat = `{"type":"publish","topic":"/chat/world","data":` + chatData + `}`
)

func TestChatOnlineCounts(t *testing.T) {
	ts := startServer(t, server.Config{})
	a := dial(t, ts.ws, nil)
	b := dial(t, ts.ws, nil)

	send(t, a, subscribeWorld)
	expect(t, a, "a", `{"type":"onSubscribe","data":1}`)
	send(t, b, subscribeWorld)
	expect(t, a, "a", `{"type":"onSubscribe","data":2}`)
	expect(t, b, "b", `{"type":"onSubscribe","data":2}`)

	send(t, a, publishChat)
	expect(t, a, "a", chatData)
	expect(t, b, "b", chatData)

	closeClient(t, b)
	expect(t, a, "a", `{"type":"onUnsubscribe","data":1}`)

	// An explicit unSubscribe (capital S, as the original client sends it)
	// announces the new count to those still subscribed: a third client
	// joins, leaves the topic, and a sees both.
	c := dial(t, ts.ws, nil)
	send(t, c, subscribeWorld)
	expect(t, a, "a", `{"type":"onSubscribe","data":2}`)
	expect(t, c, "c", `{"type":"onSubscribe","data":2}`)
	send(t, c, `{"type":"unSubscribe","topic":"/chat/world","data":""}`)
	expect(t, a, "a", `{"type":"onUnsubscribe","data":1}`)
}

func TestQuietCounts(t *testing.T) {
	ts := startServer(t, server.Config{QuietCounts: true})
	a := dial(t, ts.ws, nil)
	b := dial(t, ts.ws, nil)
	send(t, a, subscribeWorld)
	send(t, b, subscribeWorld)
	waitSubscribers(t, ts, "/chat/world", 2)

	// a's own subscription was handled before its publish, so an
	// announcement, if any, would reach a first.
	send(t, a, publishChat)
	expect(t, a, "a", chatData)
	expect(t, b, "b", chatData)

	closeClient(t, b)
	// Once b's connection has finished (its unsubscribe callbacks included),
	// the only message ever published must be a's.
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := ts.srv.Gateway().Stats().Connections; n != 1 {
			return fmt.Errorf("%d connections", n)
		}
		return nil
	})
	if n := ts.srv.Gateway().Stats().Published; n != 1 {
		t.Fatalf("%d messages published, want only the chat message", n)
	}
}

// TestReadTimeoutNotice makes the server's single callback goroutine for a
// connection busy (a subscription to many new topics, each of which it
// announces) while the client keeps sending, with an inbound queue of one
// and a tiny read timeout: the frames that find the queue full must come
// back to the sender as the original example's timeout notice.
func TestReadTimeoutNotice(t *testing.T) {
	// As many topics as one frame may name (and as fit the read limit).
	topicsPerRound := min(protocol.MaxTopicsPerFrame, 1024)
	cfg := server.Config{}
	// Only the goroutine transport queues client frames for the handlers
	// (on netpoll they run on the poller, with nothing to time out on).
	cfg.Gateway.Transport = gateway.TransportGoroutine
	cfg.Gateway.InboundQueue = 1
	cfg.Gateway.ReadTimeout = time.Millisecond
	cfg.Gateway.MaxSubscriptions = -1
	cfg.Gateway.OutboundQueue = 4 * topicsPerRound // keep every announcement
	ts := startServer(t, cfg)
	c := dial(t, ts.ws, nil)

	// from is a number beyond float64 precision, and the nested data has
	// its keys out of order: the notice must carry both unchanged.
	const publish = `{"type":"publish","topic":"/chat/world","data":{"from":12345678901234567890,"data":{"z":1,"a":2},"type":"publish"}}`
	const want = `{"from":12345678901234567890,"data":{"z":1,"a":2},"type":"timeout"}`

	round, announced := 0, 0
	startRound := func() {
		round++
		topics := make([]string, topicsPerRound)
		for i := range topics {
			topics[i] = fmt.Sprintf("/load/%d/%d", round, i)
		}
		send(t, c, `{"type":"subscribe","topic":"`+strings.Join(topics, ",")+`","data":""}`)
		for range 4 {
			send(t, c, publish)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	startRound()
	for {
		if time.Now().After(deadline) {
			t.Fatalf("no timeout notice after %d rounds (%d read timeouts counted)", round, ts.srv.Gateway().Stats().ReadTimeouts)
		}
		msg := next(t, c)
		if strings.HasPrefix(msg, `{"type":"onSubscribe","data":`) {
			if announced++; announced == round*topicsPerRound {
				startRound() // this round overflowed nothing; try again
			}
			continue
		}
		if msg != want {
			t.Fatalf("got %s, want the timeout notice %s", msg, want)
		}
		break
	}
	if n := ts.srv.Gateway().Stats().ReadTimeouts; n == 0 {
		t.Fatal("a timeout notice arrived but no read timeout was counted")
	}
}

func TestPages(t *testing.T) {
	ts := startServer(t, server.Config{})
	client := &http.Client{Timeout: 5 * time.Second}
	t.Cleanup(client.CloseIdleConnections)

	get := func(method, path string) (int, string, string) {
		t.Helper()
		req, err := http.NewRequest(method, ts.base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
	}

	// The chat room page (package web) and its scripts.
	status, ctype, body := get("GET", "/")
	if status != http.StatusOK || ctype != "text/html; charset=utf-8" || !strings.Contains(body, "<html") ||
		!strings.Contains(body, `src="/static/firetower.js"`) || !strings.Contains(body, `src="/static/chat.js"`) {
		t.Errorf("GET /: %d %q %q", status, ctype, body)
	}
	for _, path := range []string{"/static/firetower.js", "/static/firetower.mjs", "/static/chat.js"} {
		status, ctype, body = get("GET", path)
		if status != http.StatusOK || ctype != "text/javascript; charset=utf-8" || len(body) == 0 {
			t.Errorf("GET %s: %d %q, %d bytes", path, status, ctype, len(body))
		}
	}
	if status, ctype, _ = get("GET", "/static/compat-v01.html"); status != http.StatusOK || ctype != "text/html; charset=utf-8" {
		t.Errorf("GET /static/compat-v01.html: %d %q", status, ctype)
	}
	if status, _, _ = get("GET", "/static/nope.js"); status != http.StatusNotFound {
		t.Errorf("GET /static/nope.js: %d, want 404", status)
	}
	resp, err := client.Get(ts.base + "/")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); csp != web.ContentSecurityPolicy {
		t.Errorf("GET /: Content-Security-Policy %q, want %q", csp, web.ContentSecurityPolicy)
	}
	status, ctype, body = get("GET", "/healthz")
	if status != http.StatusOK || !strings.HasPrefix(ctype, "text/plain") || body != "ok\n" {
		t.Errorf("GET /healthz: %d %q %q", status, ctype, body)
	}
	if status, _, _ = get("GET", "/nope"); status != http.StatusNotFound {
		t.Errorf("GET /nope: %d, want 404", status)
	}
	if status, _, _ = get("POST", "/healthz"); status != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz: %d, want 405", status)
	}
	if status, _, _ = get("GET", "/ws"); status != http.StatusBadRequest {
		t.Errorf("GET /ws without an upgrade: %d, want 400", status)
	}
}

func TestOrigin(t *testing.T) {
	cfg := server.Config{}
	cfg.Gateway.AllowedOrigins = []string{"https://chat.example.com"}
	ts := startServer(t, cfg)

	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	c, resp, err := d.Dial(ts.ws, http.Header{"Origin": {"https://evil.example"}})
	if err == nil {
		_ = c.Close()
		t.Fatal("a foreign origin was upgraded")
	}
	if resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: %v, response %+v, want 403", err, resp)
	}
	_ = resp.Body.Close()

	// Listed origins and the same origin are accepted.
	for _, origin := range []string{"https://chat.example.com", ts.base} {
		c := dial(t, ts.ws, http.Header{"Origin": {origin}})
		send(t, c, subscribeWorld)
		expect(t, c, origin, `{"type":"onSubscribe","data":1}`)
		closeClient(t, c)
		waitSubscribers(t, ts, "/chat/world", 0)
	}
}

func TestShutdownClosesClientsGoingAway(t *testing.T) {
	ts := startServer(t, server.Config{DrainWindow: 200 * time.Millisecond})
	clients := []*websocket.Conn{dial(t, ts.ws, nil), dial(t, ts.ws, nil), dial(t, ts.ws, nil)}
	for _, c := range clients {
		send(t, c, subscribeWorld)
	}
	waitSubscribers(t, ts, "/chat/world", int64(len(clients)))

	// Each client reads until the server closes it, as a browser would, so
	// that it answers the close frame.
	codes := make(chan error, len(clients))
	for _, c := range clients {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		go func() {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					codes <- err
					return
				}
			}
		}()
	}

	start := time.Now()
	if err := ts.stop(t); err != nil {
		t.Fatalf("Serve returned %v, want nil", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("shutdown took %v with a 200ms drain window", took)
	}
	for range clients {
		err := <-codes
		if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Errorf("client ended with %v, want close 1001", err)
		}
	}
	if _, _, err := (&websocket.Dialer{HandshakeTimeout: time.Second}).Dial(ts.ws, nil); err == nil {
		t.Error("a client could connect after Serve returned")
	}
	for _, c := range clients {
		_ = c.Close()
	}
	goleak.VerifyNone(t)
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []server.Config{
		{DrainWindow: -time.Second},
		{ShutdownTimeout: -time.Second},
		{Addr: "no-port"},
		{Gateway: func() (c server.Config) { c.Gateway.ClusterID = 2000; return }().Gateway},
	} {
		if srv, err := server.New(cfg); err == nil {
			_ = srv.Gateway().Close()
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func TestListenAndServe(t *testing.T) {
	cfg := server.Config{Addr: "127.0.0.1:0", DrainWindow: time.Millisecond}
	cfg.Gateway.Logger = slog.New(slog.DiscardHandler)
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if srv.Handler() == nil {
		t.Fatal("nil Handler")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := srv.ListenAndServe(ctx); err != nil {
		t.Fatalf("ListenAndServe with a cancelled context: %v", err)
	}

	// An address in use is reported, not ignored.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg.Addr = l.Addr().String()
	srv, err = server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Gateway().Close()
	err = srv.ListenAndServe(context.Background())
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Fatalf("ListenAndServe on a busy address: %v, want a listen error", err)
	}
}
