package gateway_test

import (
	"encoding/binary"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/protocol"
)

// rawLimit is the read limit of the raw-frame tests: small, so that limit
// and limit+1 messages are cheap to build.
const rawLimit = 1024

// dropped stands for "the server dropped the TCP connection without a close
// frame" among the accepted outcomes.
const dropped = -1

// publishOfSize returns a v1 publish frame to topic of exactly n bytes and
// the data the subscribers receive.
func publishOfSize(topic string, n int) (frame, data string) {
	prefix := `{"type":"publish","topic":"` + topic + `","data":"`
	const suffix = `"}`
	pad := strings.Repeat("x", n-len(prefix)-len(suffix))
	return prefix + pad + suffix, `"` + pad + `"`
}

// hugeLength is a text frame header (masked) announcing a payload of n
// bytes in the 64-bit length form, followed by its mask key and no payload.
func hugeLength(n uint64) []byte {
	b := []byte{0x80 | protocol.OpText, 0x80 | 127}
	b = binary.BigEndian.AppendUint64(b, n)
	return append(b, maskKey[:]...)
}

func frames(fs ...rawFrame) []byte {
	var b []byte
	for _, f := range fs {
		b = append(b, f.bytes()...)
	}
	return b
}

func TestRawFrameViolations(t *testing.T) {
	ts := newTestServer(t, gateway.Config{ReadLimit: rawLimit, Logger: silentLogger}, nil)
	baseline := runtime.NumGoroutine()

	overLimit, _ := publishOfSize("lim", rawLimit+1)
	text := []byte(`{"type":"publish","topic":"a","data":1}`)
	cases := []struct {
		name  string
		input []byte
		want  []int // accepted outcomes: close codes or dropped
	}{
		// RFC 6455 section 5: a protocol error gets 1002 or a drop.
		{"unmasked client frame", frames(rawFrame{op: protocol.OpText, payload: text, unmasked: true}), []int{1002, dropped}},
		{"opcode 3", frames(rawFrame{op: 0x3, payload: text}), []int{1002, dropped}},
		{"reserved control opcode 0xB", frames(rawFrame{op: 0xb}), []int{1002, dropped}},
		{"RSV1 without an extension", frames(rawFrame{op: protocol.OpText, payload: text, rsv: rsv1}), []int{1002, dropped}},
		{"RSV2", frames(rawFrame{op: protocol.OpText, payload: text, rsv: rsv2}), []int{1002, dropped}},
		{"RSV3", frames(rawFrame{op: protocol.OpText, payload: text, rsv: rsv3}), []int{1002, dropped}},
		{"ping without FIN", frames(rawFrame{op: protocol.OpPing, payload: []byte("p"), notFinal: true}), []int{1002, dropped}},
		{"ping of 126 bytes", frames(rawFrame{op: protocol.OpPing, payload: make([]byte, 126)}), []int{1002, dropped}},
		{"close of 126 bytes", frames(rawFrame{op: protocol.OpClose, payload: append([]byte{0x03, 0xe8}, strings.Repeat("r", 124)...)}), []int{1002, dropped}},
		{"continuation without a start", frames(rawFrame{op: opContinuation, payload: text}), []int{1002, dropped}},
		{"new message inside a fragmented one", frames(
			rawFrame{op: protocol.OpText, payload: text[:5], notFinal: true},
			rawFrame{op: protocol.OpText, payload: text},
		), []int{1002, dropped}},
		{"close with reserved code 1005", frames(rawFrame{op: protocol.OpClose, payload: []byte{0x03, 0xed}}), []int{1002, dropped}},
		// RELIABILITY.md asks 1007 here; gorilla validates the close
		// reason itself and answers 1002 before the gateway sees it.
		// Both fail the connection as RFC 6455 section 8.1 requires.
		{"close with invalid UTF-8 reason", frames(rawFrame{op: protocol.OpClose, payload: []byte{0x03, 0xe8, 'o', 0xff, 'k'}}), []int{1002, 1007, dropped}},

		{"text with invalid UTF-8", frames(rawFrame{op: protocol.OpText, payload: []byte(`{"type":"publish","topic":"a","data":"` + "\xff\xfe" + `"}`)}), []int{1007}},
		{"invalid UTF-8 assembled from fragments", frames(
			rawFrame{op: protocol.OpText, payload: []byte(`{"type":"publish","topic":"a","data":"` + "\xe2\x82"), notFinal: true},
			rawFrame{op: opContinuation, payload: []byte(`x"}`)},
		), []int{1007}},

		{"message of limit+1 bytes", frames(rawFrame{op: protocol.OpText, payload: []byte(overLimit)}), []int{1009}},
		{"limit+1 assembled from fragments", frames(
			rawFrame{op: protocol.OpText, payload: []byte(overLimit[:600]), notFinal: true},
			rawFrame{op: opContinuation, payload: []byte(overLimit[600:])},
		), []int{1009}},
		{"limit+1 binary message", frames(rawFrame{op: protocol.OpBinary, payload: make([]byte, rawLimit+1)}), []int{1009}},
		{"64-bit length 2^63-1", hugeLength(1<<63 - 1), []int{1009}},
		// The top bit must be 0 (RFC 6455 section 5.2): the length is
		// negative as an int64. Any close is fine; the server must stay up.
		{"64-bit length with the top bit set", hugeLength(1 << 63), []int{1002, 1009, dropped}},
		{"64-bit length all ones", hugeLength(^uint64(0)), []int{1002, 1009, dropped}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc := rawDial(t, ts.url, nil)
			if err := rc.write(tc.input); err != nil {
				t.Fatalf("write: %v", err)
			}
			got := rc.awaitClose(time.Second)
			t.Logf("observed: %v", got)
			if !slices.Contains(tc.want, got.code) {
				t.Fatalf("got %v, want one of %v (-1: dropped)", got, tc.want)
			}
		})
	}

	// Every violation ended one connection; none took the server down.
	checkServes(t, ts)
	goroutinesSettle(t, baseline)
	waitStats(t, ts.gw, "every connection gone", func(s gateway.Stats) bool {
		return s.Connections == 0 && s.DisconnectsTotal == s.ConnectsTotal
	})
}

// checkServes proves the gateway still accepts and serves a new client.
func checkServes(t *testing.T, ts *testServer) {
	t.Helper()
	c := dial(t, ts.url, true)
	send(t, c, `{"id":1,"type":"subscribe","topics":["alive"]}`)
	if got := next(t, c); got != `{"type":"ack","id":1}` {
		t.Fatalf("subscribe answer %s", got)
	}
	if err := ts.gw.Publish(t.Context(), "alive", []byte(`"yes"`)); err != nil {
		t.Fatal(err)
	}
	if got := next(t, c); !strings.HasPrefix(got, `{"type":"message","topic":"alive",`) || !strings.HasSuffix(got, `"data":"yes"}`) {
		t.Fatalf("delivery %s", got)
	}
	c.Close()
}

// TestRawFrameLimitBoundaries sends messages of exactly the read limit, one
// framed and fragmented (a ping between the fragments, as RFC 6455 allows),
// and a UTF-8 sequence split over two fragments: all are delivered.
func TestRawFrameLimitBoundaries(t *testing.T) {
	ts := newTestServer(t, gateway.Config{ReadLimit: rawLimit, Logger: silentLogger}, nil)
	baseline := runtime.NumGoroutine()
	rc := rawDial(t, ts.url, nil)
	rc.sendText(`{"type":"subscribe","topic":"lim"}`)

	// A connection's frames are handled in order, so the subscription is
	// in place before the first publish is dispatched.
	exact, data := publishOfSize("lim", rawLimit)
	rc.sendText(exact)
	if got := rc.nextData(5 * time.Second); got != data {
		t.Fatalf("exactly-the-limit message: got %d bytes, want %d", len(got), len(data))
	}

	rc.writeFrames(
		rawFrame{op: protocol.OpText, payload: []byte(exact[:400]), notFinal: true},
		rawFrame{op: opContinuation, payload: []byte(exact[400:800]), notFinal: true},
		rawFrame{op: protocol.OpPing, payload: []byte("between fragments")},
		rawFrame{op: opContinuation, payload: []byte(exact[800:])},
	)
	deadline := time.Now().Add(5 * time.Second)
	var pong, delivered bool
	for !pong || !delivered {
		f, err := rc.readFrame(deadline)
		if err != nil {
			t.Fatalf("fragmented exactly-the-limit message: pong %v, delivered %v: %v", pong, delivered, err)
		}
		switch {
		case f.op == protocol.OpPong && string(f.payload) == "between fragments":
			pong = true
		case f.op == protocol.OpText && string(f.payload) == data:
			delivered = true
		default:
			t.Fatalf("unexpected frame op %d %q", f.op, f.payload)
		}
	}

	// "€" is e2 82 ac: the text is valid only as a whole message.
	split := `{"type":"publish","topic":"lim","data":"é€"}`
	cut := strings.Index(split, "€") + 2
	rc.writeFrames(
		rawFrame{op: protocol.OpText, payload: []byte(split[:cut]), notFinal: true},
		rawFrame{op: opContinuation, payload: []byte(split[cut:])},
	)
	if got := rc.nextData(5 * time.Second); got != `"é€"` {
		t.Fatalf("split UTF-8: got %q", got)
	}

	// One byte more ends the connection with 1009.
	over, _ := publishOfSize("lim", rawLimit+1)
	rc.sendText(over)
	if got := rc.awaitClose(time.Second); got.code != 1009 {
		t.Fatalf("limit+1 after valid traffic: %v, want 1009", got)
	}
	goroutinesSettle(t, baseline)
}
