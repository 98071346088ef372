package server_test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/server"
	"github.com/gorilla/websocket"
)

// TestParseServeHardeningFlags: --read-header-timeout, --connect-rate and
// --connect-burst default as documented and are read from flags, the
// environment and the config file; nonsense is refused with a clear error.
func TestParseServeHardeningFlags(t *testing.T) {
	emptyDir(t)
	o := parse(t, nil, nil)
	if o.Server.ReadHeaderTimeout != server.DefaultReadHeaderTimeout || o.Server.Gateway.ConnectRate != 0 || o.Server.Gateway.ConnectBurst != 0 {
		t.Errorf("defaults: ReadHeaderTimeout %v ConnectRate %v ConnectBurst %d", o.Server.ReadHeaderTimeout, o.Server.Gateway.ConnectRate, o.Server.Gateway.ConnectBurst)
	}
	o = parse(t, []string{"--read-header-timeout=2s", "--connect-rate", "2.5", "--connect-burst=7"}, nil)
	if o.Server.ReadHeaderTimeout != 2*time.Second || o.Server.Gateway.ConnectRate != 2.5 || o.Server.Gateway.ConnectBurst != 7 {
		t.Errorf("flags: ReadHeaderTimeout %v ConnectRate %v ConnectBurst %d", o.Server.ReadHeaderTimeout, o.Server.Gateway.ConnectRate, o.Server.Gateway.ConnectBurst)
	}
	o = parse(t, nil, map[string]string{"FIRETOWER_READ_HEADER_TIMEOUT": "3s", "FIRETOWER_CONNECT_RATE": "10", "FIRETOWER_CONNECT_BURST": "20"})
	if o.Server.ReadHeaderTimeout != 3*time.Second || o.Server.Gateway.ConnectRate != 10 || o.Server.Gateway.ConnectBurst != 20 {
		t.Errorf("env: ReadHeaderTimeout %v ConnectRate %v ConnectBurst %d", o.Server.ReadHeaderTimeout, o.Server.Gateway.ConnectRate, o.Server.Gateway.ConnectBurst)
	}
	dir := emptyDir(t)
	path := writeConfig(t, dir, "f.toml", "readHeaderTimeout = \"4s\"\nconnectRate = 1.5\nconnect-burst = 3\n")
	o = parse(t, []string{"--config", path}, nil)
	if o.Server.ReadHeaderTimeout != 4*time.Second || o.Server.Gateway.ConnectRate != 1.5 || o.Server.Gateway.ConnectBurst != 3 {
		t.Errorf("file: ReadHeaderTimeout %v ConnectRate %v ConnectBurst %d", o.Server.ReadHeaderTimeout, o.Server.Gateway.ConnectRate, o.Server.Gateway.ConnectBurst)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--read-header-timeout=-1s"}, "negative"},
		{[]string{"--read-header-timeout=soon"}, "read-header-timeout"},
		{[]string{"--connect-rate=-1"}, "ConnectRate"},
		{[]string{"--connect-rate=NaN"}, "ConnectRate"},
		{[]string{"--connect-burst=-2"}, "ConnectBurst must not be negative"},
	} {
		_, err := server.ParseServe(c.args, fakeEnv(nil), io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want one that says %q", c.args, err, c.want)
		}
	}
}

// serveFlags starts a server configured by the serve flags args, on
// 127.0.0.1 without the gRPC listener.
func serveFlags(t *testing.T, args ...string) *testServer {
	t.Helper()
	emptyDir(t)
	o, err := server.ParseServe(args, fakeEnv(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	o.Server.GRPCAddr = ""
	o.Server.APIInsecure = true
	o.Server.DrainWindow = 50 * time.Millisecond
	return startServer(t, o.Server)
}

// TestConnectRateFlag: a server started with --connect-rate and
// --connect-burst answers the connection past the burst with 429 and
// Retry-After, while the open ones keep chatting.
func TestConnectRateFlag(t *testing.T) {
	ts := serveFlags(t, "--connect-rate=0.001", "--connect-burst=2", "--announce-counts=false")
	a, b := dial(t, ts.ws, nil), dial(t, ts.ws, nil)
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	c, resp, err := d.Dial(ts.ws, nil)
	if err == nil {
		c.Close()
		t.Fatal("the third connection within the burst of 2 was accepted")
	}
	if resp == nil {
		t.Fatalf("dial: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "too many new connections") {
		t.Fatalf("third connection: %d, Retry-After %q, %q", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if n := ts.srv.Gateway().Stats().ConnRateLimited; n != 1 {
		t.Fatalf("ConnRateLimited = %d, want 1", n)
	}
	send(t, a, `{"type":"subscribe","topic":"/room","data":""}`)
	waitSubscribers(t, ts, "/room", 1)
	send(t, b, `{"type":"publish","topic":"/room","data":"hi"}`)
	expect(t, a, "a", `"hi"`)
}

// TestReadHeaderTimeoutFlag: with --read-header-timeout=300ms a client
// that sends half its headers is disconnected after 300 ms, not before.
func TestReadHeaderTimeoutFlag(t *testing.T) {
	ts := serveFlags(t, "--read-header-timeout=300ms")
	// Before the dial: the server's deadline starts when it accepts, which
	// may come before this side's write.
	start := time.Now()
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /ws HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.Copy(io.Discard, conn) // until the server closes (or the deadline)
	if took := time.Since(start); took < 300*time.Millisecond || took > 3*time.Second {
		t.Fatalf("closed after %v, want 300ms..3s", took)
	}
}
