package gateway_test

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/protocol"
)

// Helpers for the adversarial tests: a websocket client over a plain TCP
// socket that writes whatever bytes the test builds, so it can break every
// rule a real client library enforces, and checks for leaked goroutines.

// silentLogger keeps expected refusals (foreign origins, protocol errors)
// out of the test log.
var silentLogger = slog.New(slog.DiscardHandler)

// rawConn is a hand-made websocket client connection.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

// rawHandshake opens a TCP connection to the websocket URL and writes the
// opening handshake by hand with the extra header lines. It returns the
// server's response (with the body read into body when the status is not
// 101) and, on a 101, the connection ready for frames; the connection is
// closed by t.Cleanup.
func rawHandshake(t testing.TB, wsURL string, header http.Header) (resp *http.Response, body string, rc *rawConn) {
	t.Helper()
	u, err := url.Parse(wsURL)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", u.Host, err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))

	var k [16]byte
	_, _ = rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	var req strings.Builder
	fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\n", u.RequestURI(), u.Host)
	req.WriteString("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n")
	fmt.Fprintf(&req, "Sec-WebSocket-Key: %s\r\n", key)
	for name, values := range header {
		for _, v := range values {
			fmt.Fprintf(&req, "%s: %s\r\n", name, v)
		}
	}
	req.WriteString("\r\n")
	if _, err := io.WriteString(nc, req.String()); err != nil {
		t.Fatalf("write handshake: %v", err)
	}
	br := bufio.NewReader(nc)
	resp, err = http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		t.Fatalf("read handshake response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		_ = nc.Close()
		return resp, string(b), nil
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), base64.StdEncoding.EncodeToString(sum[:]); got != want {
		t.Fatalf("Sec-WebSocket-Accept %q, want %q", got, want)
	}
	_ = nc.SetDeadline(time.Time{})
	return resp, "", &rawConn{t: t, nc: nc, br: br}
}

// rawDial is rawHandshake for a connection that must be accepted.
func rawDial(t testing.TB, wsURL string, header http.Header) *rawConn {
	t.Helper()
	resp, body, rc := rawHandshake(t, wsURL, header)
	if rc == nil {
		t.Fatalf("handshake refused: %s %q", resp.Status, body)
	}
	return rc
}

// RSV bits of the first header byte.
const (
	rsv1 = 0x40
	rsv2 = 0x20
	rsv3 = 0x10
)

// opContinuation is the continuation opcode (the protocol package has no
// name for it: the server never sends fragments).
const opContinuation = 0x0

// rawFrame is one hand-made client frame. The zero value of the flags makes
// a valid client frame: final and masked.
type rawFrame struct {
	op       byte
	payload  []byte
	notFinal bool // FIN clear
	rsv      byte // RSV bits to set (rsv1|rsv2|rsv3)
	unmasked bool // omit the mask a client must send
}

// maskKey is fixed: the tests need arbitrary, not unpredictable, keys.
var maskKey = [4]byte{0x37, 0xfa, 0x21, 0x3d}

func (f rawFrame) bytes() []byte {
	b0 := f.op | f.rsv
	if !f.notFinal {
		b0 |= 0x80
	}
	var mask byte
	if !f.unmasked {
		mask = 0x80
	}
	n := len(f.payload)
	out := []byte{b0}
	switch {
	case n <= 125:
		out = append(out, mask|byte(n))
	case n <= 0xffff:
		out = append(out, mask|126, byte(n>>8), byte(n))
	default:
		out = append(out, mask|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	if f.unmasked {
		return append(out, f.payload...)
	}
	out = append(out, maskKey[:]...)
	for i, c := range f.payload {
		out = append(out, c^maskKey[i%4])
	}
	return out
}

// write sends bytes as they are. A failed write is not fatal: the server
// may already have dropped the connection, which the read reports.
func (rc *rawConn) write(b []byte) error {
	_ = rc.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := rc.nc.Write(b)
	return err
}

func (rc *rawConn) writeFrames(frames ...rawFrame) {
	rc.t.Helper()
	var b []byte
	for _, f := range frames {
		b = append(b, f.bytes()...)
	}
	if err := rc.write(b); err != nil {
		rc.t.Fatalf("write frames: %v", err)
	}
}

// sendText sends s as one final, masked text frame.
func (rc *rawConn) sendText(s string) {
	rc.t.Helper()
	rc.writeFrames(rawFrame{op: protocol.OpText, payload: []byte(s)})
}

// serverFrame is a frame read from the server.
type serverFrame struct {
	op      byte
	payload []byte
}

// readFrame reads one server frame before deadline. Server frames must be
// final (the gateway never fragments), unmasked and without RSV bits.
func (rc *rawConn) readFrame(deadline time.Time) (serverFrame, error) {
	_ = rc.nc.SetReadDeadline(deadline)
	var h [2]byte
	if _, err := io.ReadFull(rc.br, h[:]); err != nil {
		return serverFrame{}, err
	}
	if h[0]&0xf0 != 0x80 || h[1]&0x80 != 0 {
		return serverFrame{}, fmt.Errorf("bad server frame header % x", h)
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(rc.br, l[:]); err != nil {
			return serverFrame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err := io.ReadFull(rc.br, l[:]); err != nil {
			return serverFrame{}, err
		}
		n = binary.BigEndian.Uint64(l[:])
	}
	if n > 64<<20 {
		return serverFrame{}, fmt.Errorf("server frame of %d bytes", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(rc.br, p); err != nil {
		return serverFrame{}, err
	}
	return serverFrame{op: h[0] & 0x0f, payload: p}, nil
}

// nextData returns the next text or binary frame's payload, skipping
// heartbeats and pings (which it does not answer).
func (rc *rawConn) nextData(timeout time.Duration) string {
	rc.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		f, err := rc.readFrame(deadline)
		if err != nil {
			rc.t.Fatalf("read: %v", err)
		}
		switch {
		case f.op == protocol.OpPing || f.op == protocol.OpPong:
		case f.op == protocol.OpText && (string(f.payload) == protocol.HeartbeatV1 || string(f.payload) == protocol.PingV2):
		case f.op == protocol.OpClose:
			rc.t.Fatalf("unexpected close frame %s", describeClose(f.payload))
		default:
			return string(f.payload)
		}
	}
}

// closeResult is how the server ended a connection.
type closeResult struct {
	code    int    // close code; -1: the connection was dropped without a close frame
	reason  string // close reason
	pings   int    // pings received before the close
	readErr error  // the read error when dropped
}

func (r closeResult) String() string {
	if r.code < 0 {
		return fmt.Sprintf("dropped without a close frame (%v)", r.readErr)
	}
	return fmt.Sprintf("close %d %q", r.code, r.reason)
}

// awaitClose reads until the server sends a close frame or drops the
// connection, and fails the test if neither happens within timeout. Data
// frames and pings are skipped (and pings not answered). After a close
// frame it answers with its own and checks that the server then drops the
// TCP connection.
func (rc *rawConn) awaitClose(timeout time.Duration) closeResult {
	rc.t.Helper()
	deadline := time.Now().Add(timeout)
	var res closeResult
	for {
		f, err := rc.readFrame(deadline)
		if err != nil {
			if isTimeout(err) {
				rc.t.Fatalf("connection still open %v after the offending input (%d pings seen)", timeout, res.pings)
			}
			res.code, res.readErr = -1, err
			return res
		}
		switch f.op {
		case protocol.OpPing:
			res.pings++
			continue
		case protocol.OpClose:
		default:
			continue
		}
		switch len(f.payload) {
		case 0:
			res.code = 1005 // no status code
		case 1:
			rc.t.Fatalf("server sent a 1-byte close payload")
		default:
			res.code = int(binary.BigEndian.Uint16(f.payload))
			res.reason = string(f.payload[2:])
		}
		// A polite client echoes the close; the server may have closed
		// its side already, so a failed write is fine.
		_ = rc.write(rawFrame{op: protocol.OpClose, payload: []byte{0x03, 0xe8}}.bytes())
		rc.expectEOF(5 * time.Second)
		return res
	}
}

// expectEOF reads until the server closes the TCP connection.
func (rc *rawConn) expectEOF(timeout time.Duration) {
	rc.t.Helper()
	_ = rc.nc.SetReadDeadline(time.Now().Add(timeout))
	_, err := io.Copy(io.Discard, rc.br)
	if isTimeout(err) {
		rc.t.Fatalf("server did not drop the TCP connection within %v", timeout)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func describeClose(p []byte) string {
	if len(p) < 2 {
		return fmt.Sprintf("% x", p)
	}
	return fmt.Sprintf("%d %q", binary.BigEndian.Uint16(p), p[2:])
}

// goroutinesSettle polls until the process runs at most baseline goroutines
// and dumps every stack if it does not within 10 s.
func goroutinesSettle(t testing.TB, baseline int) {
	t.Helper()
	const total = 10 * time.Second
	deadline := time.Now().Add(total)
	checkFor(t, total, 10*time.Millisecond, func() error {
		n := runtime.NumGoroutine()
		if n <= baseline {
			return nil
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			return fmt.Errorf("%d goroutines, baseline %d:\n%s", n, baseline, buf)
		}
		return fmt.Errorf("%d goroutines, baseline %d", n, baseline)
	})
}

// openFDs counts the process's open file descriptors, or returns -1 where
// /proc is not available.
func openFDs() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(entries)
}

// heapInuse returns HeapInuse after a full collection.
func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// waitStats polls gw's counters until ok accepts them.
func waitStats(t testing.TB, gw *gateway.Gateway, what string, ok func(gateway.Stats) bool) gateway.Stats {
	t.Helper()
	var s gateway.Stats
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		s = gw.Stats()
		if ok(s) {
			return nil
		}
		return fmt.Errorf("%s: stats %+v", what, s)
	})
	return s
}
