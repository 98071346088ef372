package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/gateway"
	"github.com/gorilla/websocket"
)

// connectFrom opens a websocket to url from the loopback address src
// (127.0.0.2 is a different client to the server than 127.0.0.1). It
// returns the HTTP status, the Retry-After header and the body of a
// refusal; a connection that opened is closed by the test's cleanup.
func connectFrom(t testing.TB, url, src string) (status int, retryAfter, body string) {
	t.Helper()
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	d := websocket.Dialer{
		HandshakeTimeout: 5 * time.Second,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return nd.DialContext(ctx, network, addr)
		},
	}
	c, resp, err := d.Dial(url, nil)
	if err == nil {
		resp.Body.Close()
		t.Cleanup(func() { c.Close() })
		return resp.StatusCode, "", ""
	}
	if resp == nil {
		t.Fatalf("dial %s from %s: %v", url, src, err)
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After"), strings.TrimSpace(string(b))
}

// TestConnectRateLimit: past ConnectBurst new connections from one
// address get 429 with Retry-After and a reason, counted in
// Stats.ConnRateLimited; another address has its own bucket; the
// connections already open keep working.
func TestConnectRateLimit(t *testing.T) {
	cfg := quietConfig()
	cfg.ConnectRate = 0.001 // no token comes back during the test
	cfg.ConnectBurst = 3
	ts := newTestServer(t, cfg, nil)
	var open []*websocket.Conn
	for i := range 3 {
		status, body, c := dialStatus(t, ts.url, true)
		if status != http.StatusSwitchingProtocols {
			t.Fatalf("connection %d: %d %q, want 101", i+1, status, body)
		}
		open = append(open, c)
	}
	status, retry, body := connectFrom(t, ts.url, "127.0.0.1")
	if status != http.StatusTooManyRequests || !strings.Contains(body, "too many new connections") {
		t.Fatalf("connection 4: %d %q, want 429 with a reason", status, body)
	}
	if n, err := strconv.Atoi(retry); err != nil || n < 1 {
		t.Fatalf("Retry-After %q, want whole seconds >= 1", retry)
	}
	if n := ts.gw.Stats().ConnRateLimited; n != 1 {
		t.Fatalf("ConnRateLimited = %d, want 1", n)
	}
	// Closing connections gives no token back: it is a rate, not a count.
	open[0].Close()
	waitStats(t, ts.gw, "one closed", func(s gateway.Stats) bool { return s.Connections == 2 })
	if status, _, _ := connectFrom(t, ts.url, "127.0.0.1"); status != http.StatusTooManyRequests {
		t.Fatalf("after a close: %d, want 429", status)
	}
	if status, _, body := connectFrom(t, ts.url, "127.0.0.2"); status != http.StatusSwitchingProtocols {
		t.Fatalf("another address: %d %q, want 101", status, body)
	}
	for _, c := range open[1:] {
		send(t, c, `{"id":1,"type":"subscribe","topic":"t"}`)
		expectAck(t, c, "1")
	}
	waitStats(t, ts.gw, "refusals", func(s gateway.Stats) bool { return s.ConnRateLimited == 2 && s.Connections == 3 })
}

// TestConnectRateRefills: at 20 per second with a burst of 1, the second
// immediate connection is refused and one a little later is accepted.
func TestConnectRateRefills(t *testing.T) {
	cfg := quietConfig()
	cfg.ConnectRate = 20
	cfg.ConnectBurst = 1
	ts := newTestServer(t, cfg, nil)
	if status, _, body := connectFrom(t, ts.url, "127.0.0.1"); status != http.StatusSwitchingProtocols {
		t.Fatalf("first: %d %q", status, body)
	}
	refused := false
	// The bucket may refill between two dials on a slow machine: what must
	// hold is that refusals happen and that a later dial succeeds.
	for range 5 {
		if status, retry, _ := connectFrom(t, ts.url, "127.0.0.1"); status == http.StatusTooManyRequests {
			if retry != "1" {
				t.Fatalf("Retry-After %q, want 1 (the next token is 50 ms away)", retry)
			}
			refused = true
			break
		}
	}
	if !refused {
		t.Fatal("5 immediate connections at 20/s with a burst of 1 were all accepted")
	}
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if status, _, body := connectFrom(t, ts.url, "127.0.0.1"); status != http.StatusSwitchingProtocols {
			return fmt.Errorf("%d %q", status, body)
		}
		return nil
	})
}

// TestConnectRateTableBound: with room for two addresses, a third one is
// refused while the two still refill, and accepted once a bucket is full
// again (the table forgets it); the first two are not disturbed.
func TestConnectRateTableBound(t *testing.T) {
	cfg := quietConfig()
	cfg.ConnectRate = 5 // a bucket of 1 is full again 200 ms after its connection
	cfg.ConnectBurst = 1
	cfg.ConnectRateMaxAddresses = 2
	ts := newTestServer(t, cfg, nil)
	for _, src := range []string{"127.0.0.1", "127.0.0.2"} {
		if status, _, body := connectFrom(t, ts.url, src); status != http.StatusSwitchingProtocols {
			t.Fatalf("%s: %d %q", src, status, body)
		}
	}
	status, retry, body := connectFrom(t, ts.url, "127.0.0.3")
	if status != http.StatusTooManyRequests || !strings.Contains(body, "too many addresses") || retry != "1" {
		t.Fatalf("third address: %d %q Retry-After %q, want 429 with a reason and 1", status, body, retry)
	}
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if status, _, body := connectFrom(t, ts.url, "127.0.0.3"); status != http.StatusSwitchingProtocols {
			return fmt.Errorf("third address: %d %q", status, body)
		}
		return nil
	})
	if n := ts.gw.Stats().ConnRateLimited; n < 1 {
		t.Fatalf("ConnRateLimited = %d", n)
	}
	waitStats(t, ts.gw, "three open", func(s gateway.Stats) bool { return s.Connections == 3 })
}

func TestConnectRateConfigValidate(t *testing.T) {
	for _, cfg := range []gateway.Config{{ConnectRate: -1}, {ConnectBurst: -1}, {ConnectRateMaxAddresses: -1}} {
		if err := cfg.Validate(); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
	if err := (&gateway.Config{ConnectRate: 0.5, ConnectBurst: 4, ConnectRateMaxAddresses: 10}).Validate(); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
}
