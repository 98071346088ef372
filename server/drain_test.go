package server_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/server"
	"github.com/firetower-go/firetower/topicmgr"
	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
)

// apiPost posts a JSON body to the push API of ts with testKey, without
// keeping the connection alive, and returns the status.
func apiPost(t *testing.T, ts *testServer, path, body string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ts.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Close = true
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// A 2 s drain of gateway A, asked through its push API, with 200 clients:
// new connections to A are refused with 503, every client is closed with
// 1001, the closes are spread over the window, every client reconnects to
// gateway B (the two share a topic manager) and receives what is published
// there, and the goroutines come back to their baseline.
func TestDrainMovesClientsToOtherGateway(t *testing.T) {
	const (
		clients = 200
		window  = 2 * time.Second
		// minSpread is the share of the window the test insists on between
		// the first close and the last: evenly spread closes give
		// (clients-1)/clients of it.
		minSpread = 0.5
	)
	log := slog.New(slog.DiscardHandler)
	tm, err := topicmgr.New(topicmgr.Config{Logger: log, Token: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- tm.Serve(l) }()
	url := "tm://" + l.Addr().String()
	cfg := func(node string) server.Config {
		return server.Config{APIKey: testKey, QuietCounts: true, Broker: url, ClusterToken: "secret", Gateway: gatewayConfig(node, log)}
	}
	a, b := startServer(t, cfg("gw-a")), startServer(t, cfg("gw-b"))
	var onB []*websocket.Conn
	defer func() {
		for _, c := range onB {
			_ = c.Close()
		}
		_ = a.stop(t)
		_ = b.stop(t)
		_ = tm.Close()
		if err := <-served; !errors.Is(err, topicmgr.ErrServerClosed) {
			t.Errorf("topic manager: %v", err)
		}
		goleak.VerifyNone(t)
	}()
	// The baseline is taken once both gateways have their topic manager
	// link (its goroutines) up.
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		return errors.Join(a.srv.Gateway().Ready(), b.srv.Gateway().Ready())
	})
	// The links' and sessions' goroutines start just after: the baseline
	// is the count once it holds still for 20 polls.
	baseline, still := -1, 0
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := runtime.NumGoroutine(); n != baseline {
			baseline, still = n, 0
		}
		if still++; still < 20 {
			return fmt.Errorf("goroutine count %d not steady yet", baseline)
		}
		return nil
	})

	onA := make([]*websocket.Conn, clients)
	for i := range onA {
		onA[i] = dial(t, a.ws, nil)
		send(t, onA[i], subscribeWorld)
	}
	waitSubscribers(t, a, "/chat/world", clients)

	// Each client reads until A closes it, then reconnects to B and
	// subscribes there, as a browser client would.
	type moved struct {
		closedAt time.Time
		conn     *websocket.Conn // on B
		err      error
	}
	results := make(chan moved, clients)
	dialer := &websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	for _, c := range onA {
		_ = c.SetReadDeadline(time.Now().Add(window + 10*time.Second))
		go func() {
			var err error
			for err == nil {
				_, _, err = c.ReadMessage()
			}
			m := moved{closedAt: time.Now()}
			_ = c.Close()
			if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
				m.err = fmt.Errorf("closed by A with %v, want 1001", err)
				results <- m
				return
			}
			if m.conn, _, m.err = dialer.Dial(b.ws, nil); m.err == nil {
				_ = m.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
				m.err = m.conn.WriteMessage(websocket.TextMessage, []byte(subscribeWorld))
			}
			results <- m
		}()
	}

	drainStart := time.Now()
	if status := apiPost(t, a, "/api/drain", fmt.Sprintf(`{"window":%q}`, window)); status != http.StatusOK {
		t.Fatalf("POST /api/drain: %d", status)
	}
	_, resp, err := dialer.Dial(a.ws, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("new connection to draining A: %v, %v; want 503 with Retry-After", err, resp)
	}
	if status, body := get(t, a.base, "/readyz"); status != http.StatusServiceUnavailable {
		t.Errorf("/readyz of draining A: %d %q", status, body)
	}
	http.DefaultClient.CloseIdleConnections() // get's keep-alive connection is no leak

	var first, last time.Time
	for range clients {
		m := <-results
		if m.conn != nil {
			onB = append(onB, m.conn)
		}
		if m.err != nil {
			t.Fatal(m.err)
		}
		if first.IsZero() || m.closedAt.Before(first) {
			first = m.closedAt
		}
		if m.closedAt.After(last) {
			last = m.closedAt
		}
	}
	spread := last.Sub(first)
	t.Logf("closes spread over %v of a %v window; last close %v after the drain began", spread, window, last.Sub(drainStart))
	if spread < time.Duration(minSpread*float64(window)) {
		t.Errorf("closes spread over %v, want at least %.0f%% of the %v window", spread, minSpread*100, window)
	}
	if took := last.Sub(drainStart); took > window+3*time.Second {
		t.Errorf("last close %v after the drain began, window %v", took, window)
	}

	waitSubscribers(t, b, "/chat/world", clients)
	if n := a.srv.Gateway().Stats().Connections; n != 0 {
		t.Errorf("%d connections left on A", n)
	}
	if err := b.srv.Gateway().Publish(context.Background(), "/chat/world", []byte(chatData)); err != nil {
		t.Fatal(err)
	}
	for _, c := range onB {
		expect(t, c, "moved client", chatData)
	}

	for _, c := range onB {
		_ = c.Close()
	}
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := b.srv.Gateway().Stats().Connections; n != 0 {
			return fmt.Errorf("%d connections left on B", n)
		}
		if n := runtime.NumGoroutine(); n > baseline {
			buf := make([]byte, 1<<20)
			return fmt.Errorf("%d goroutines, baseline %d:\n%s", n, baseline, buf[:runtime.Stack(buf, true)])
		}
		return nil
	})
}
