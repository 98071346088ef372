// Package apitest starts real firetower servers on 127.0.0.1 for the push
// API's tests: the HTTP port, the gRPC port, websocket clients, and a
// poll-with-deadline helper. Only tests import it.
package apitest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/internal/wait"
	"github.com/firetower-go/firetower/protocol"
	"github.com/firetower-go/firetower/server"
	"github.com/gorilla/websocket"
)

// Key is the API key Start configures unless the Config names one or asks
// for an insecure API.
const Key = "test-key-0123456789"

// Server is a running server.Server.
type Server struct {
	Srv  *server.Server
	Base string // http://127.0.0.1:PORT
	WS   string // ws://127.0.0.1:PORT/ws
	GRPC string // 127.0.0.1:PORT of the gRPC API
	Key  string

	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// Start runs cfg on loopback listeners, with a gRPC listener. A Config
// without APIKey and APIInsecure gets Key; without DrainWindow, 50 ms;
// without Identify, IdentifyByQuery. The server stops at the end of the
// test.
func Start(t testing.TB, cfg server.Config) *Server {
	t.Helper()
	if cfg.Gateway.Logger == nil {
		cfg.Gateway.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DrainWindow == 0 {
		cfg.DrainWindow = 50 * time.Millisecond
	}
	if cfg.APIKey == "" && !cfg.APIInsecure {
		cfg.APIKey = Key
	}
	if cfg.Identify == nil {
		cfg.Identify = IdentifyByQuery
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hl := listen(t)
	gl := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		Srv:    srv,
		Base:   "http://" + hl.Addr().String(),
		WS:     "ws://" + hl.Addr().String() + "/ws",
		GRPC:   gl.Addr().String(),
		Key:    srv.APIKey(),
		cancel: cancel,
		done:   make(chan error, 1),
	}
	go func() { s.done <- srv.ServeListeners(ctx, server.Listeners{HTTP: hl, GRPC: gl}) }()
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

// IdentifyByQuery takes a websocket's client and user ids from the query
// parameters "client" and "user" (tests only: nothing is verified).
func IdentifyByQuery(r *http.Request) (clientID, userID string, err error) {
	q := r.URL.Query()
	return q.Get("client"), q.Get("user"), nil
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Stop shuts the server down and returns Serve's result; it may be called
// more than once.
func (s *Server) Stop() error {
	s.once.Do(func() {
		s.cancel()
		select {
		case s.err = <-s.done:
		case <-time.After(15 * time.Second):
			s.err = errors.New("Serve did not return 15s after its context was cancelled")
		}
	})
	return s.err
}

// Gateway returns the server's gateway.
func (s *Server) Gateway() *gateway.Gateway { return s.Srv.Gateway() }

// Dial opens a websocket client (v2 when v2 is set); it is closed at the
// end of the test.
func Dial(t testing.TB, url string, v2 bool) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	if v2 {
		d.Subprotocols = []string{protocol.SubprotocolV2}
	}
	c, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Send writes one text frame.
func Send(t testing.TB, c *websocket.Conn, frame string) {
	t.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := c.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// Next returns the next text frame other than heartbeats, pings, acks
// and online-count announcements, within 5 s.
func Next(t testing.TB, c *websocket.Conn) string {
	t.Helper()
	s, err := NextErr(c, 5*time.Second)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return s
}

// NextErr is Next returning the read error (a close, a timeout).
func NextErr(c *websocket.Conn, wait time.Duration) (string, error) {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	for {
		_, b, err := c.ReadMessage()
		if err != nil {
			return "", err
		}
		s := string(b)
		if s == protocol.HeartbeatV1 || s == protocol.PingV2 || strings.HasPrefix(s, `{"type":"ack"`) ||
			strings.HasPrefix(s, `{"type":"onSubscribe"`) || strings.HasPrefix(s, `{"type":"onUnsubscribe"`) {
			continue
		}
		return s, nil
	}
}

// Subscribe subscribes a v1 or v2 client to topic and waits until the
// server has the subscription (the local count reaches want).
func Subscribe(t testing.TB, s *Server, c *websocket.Conn, v2 bool, topic string, want int64) {
	t.Helper()
	if v2 {
		b, _ := json.Marshal(map[string]any{"id": 1, "type": "subscribe", "topics": []string{topic}})
		Send(t, c, string(b))
	} else {
		b, _ := json.Marshal(map[string]any{"type": "subscribe", "topic": topic, "data": ""})
		Send(t, c, string(b))
	}
	CheckFor(t, 5*time.Second, func() error {
		if n := s.Gateway().LocalConnectNum(topic); n != want {
			return fmt.Errorf("%d local subscribers of %s, want %d", n, topic, want)
		}
		return nil
	})
}

// CheckFor polls fn every 5 ms until it returns nil, failing the test with
// its last error after total.
func CheckFor(t testing.TB, total time.Duration, fn func() error) {
	t.Helper()
	wait.For(t, total, 5*time.Millisecond, fn)
}

// Request sends an HTTP request to the API with key (none if empty) and a
// JSON body (none if empty) and returns the status and the body. The
// connection is not kept alive (nothing lingers for goleak).
func Request(t testing.TB, method, url, key, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Close = true
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp.StatusCode, string(b)
}
