package server_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/firetower-go/firetower/server"
	"go.uber.org/goleak"
)

// 500 half-open connections (half the headers of an upgrade, or nothing)
// do not keep a new websocket client from connecting and chatting, and
// each of them is closed at ReadHeaderTimeout.
func TestSlowloris(t *testing.T) {
	const (
		halfOpen          = 500
		readHeaderTimeout = 300 * time.Millisecond
	)
	ts := startServer(t, server.Config{QuietCounts: true, ReadHeaderTimeout: readHeaderTimeout})
	addr := ts.base[len("http://"):]

	conns := make([]net.Conn, 0, halfOpen)
	opened := make([]time.Time, 0, halfOpen)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for i := range halfOpen {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("half-open connection %d: %v", i, err)
		}
		conns = append(conns, c)
		opened = append(opened, time.Now())
		if i%2 == 0 { // the other half send nothing at all
			_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", addr); err != nil {
				t.Fatalf("partial headers %d: %v", i, err)
			}
		}
	}

	start := time.Now()
	c := dial(t, ts.ws, nil)
	send(t, c, subscribeWorld)
	waitSubscribers(t, ts, "/chat/world", 1)
	send(t, c, publishChat)
	expect(t, c, "client", chatData)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("a new client took %v to connect and chat past %d half-open connections", took, halfOpen)
	}

	// Every half-open connection is closed by the server at the timeout:
	// the read ends with EOF or a reset, not with our own deadline.
	for i, hc := range conns {
		_ = hc.SetReadDeadline(opened[i].Add(readHeaderTimeout + 5*time.Second))
		buf := make([]byte, 512)
		var err error
		for err == nil {
			_, err = hc.Read(buf) // a 408 or 400 answer may come before the close
		}
		closedAt := time.Now()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("half-open connection %d still open %v after it was opened", i, closedAt.Sub(opened[i]))
		}
		if age := closedAt.Sub(opened[i]); age < readHeaderTimeout*9/10 {
			t.Fatalf("half-open connection %d closed after %v, before the %v timeout: %v", i, age, readHeaderTimeout, err)
		}
	}
	for _, hc := range conns {
		_ = hc.Close()
	}
	conns = nil
	_ = c.Close()
	if err := ts.stop(t); err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t)
}
