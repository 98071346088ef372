package bench

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/firetower-go/firetower/protocol"
)

// discardConn takes the pongs and closes a fuzzed reader writes.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error)      { return len(p), nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzReadMessage feeds arbitrary server bytes to the frame reader: it
// must return messages or an error, never panic or allocate past its limit.
func FuzzReadMessage(f *testing.F) {
	f.Add([]byte("\x81\x09heartbeat"))
	f.Add([]byte("\x89\x00\x81\x02{}"))                       // ping, then text
	f.Add([]byte("\x01\x03abc\x80\x03def"))                   // fragments
	f.Add([]byte("\x81\x7f\x80\x00\x00\x00\x00\x00\x00\x00")) // 64-bit length, top bit set
	f.Add([]byte("\x81\x7e\x00\x05hello\x88\x02\x03\xe8"))    // 16-bit length, close
	f.Fuzz(func(t *testing.T, data []byte) {
		w := &wsConn{c: discardConn{}, br: bufio.NewReaderSize(bytes.NewReader(data), 64)}
		for range 100 {
			m, err := w.readMessage()
			if err != nil {
				return
			}
			if len(m) > maxFrameSize {
				t.Fatalf("message of %d bytes", len(m))
			}
		}
	})
}

func FuzzParsePayload(f *testing.F) {
	f.Add(appendPayload(nil, "/b/c1", 7, 123, 100))
	f.Add([]byte(`{"type":"onSubscribe","data":3}`))
	f.Add([]byte(`{"k":"/a","s":99999999999999999999999,"t":1}`))
	f.Fuzz(func(t *testing.T, m []byte) {
		topic, _, _, ok := parsePayload(m)
		if ok && !bytes.Contains(m, topic) {
			t.Fatalf("topic %q not in %q", topic, m)
		}
	})
}

func TestReadMessage(t *testing.T) {
	var out bytes.Buffer
	in := []byte("\x89\x02hi\x01\x03abc\x80\x03def\x81\x09heartbeat\x88\x02\x03\xe8")
	w := &wsConn{c: recordConn{&out}, br: bufio.NewReader(bytes.NewReader(in))}
	for _, want := range []string{"abcdef", "heartbeat"} {
		m, err := w.readMessage()
		if err != nil || string(m) != want {
			t.Fatalf("readMessage = %q, %v; want %q", m, err, want)
		}
	}
	if _, err := w.readMessage(); err != io.EOF {
		t.Fatalf("after a close frame: %v, want io.EOF", err)
	}
	// The pong and the close echo went out masked.
	b := out.Bytes()
	if len(b) < 8 || b[0] != 0x80|opPong || b[1] != 0x80|2 {
		t.Fatalf("pong frame % x", b)
	}
	p := append([]byte(nil), b[6:8]...)
	protocol.MaskBytes([4]byte(b[2:6]), p)
	if string(p) != "hi" {
		t.Errorf("pong payload %q, want hi", p)
	}
	if b[8] != 0x80|opClose {
		t.Errorf("no close echo after the pong: % x", b[8:])
	}
}

type recordConn struct{ w io.Writer }

func (r recordConn) Write(p []byte) (int, error)    { return r.w.Write(p) }
func (recordConn) SetWriteDeadline(time.Time) error { return nil }
func (recordConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (recordConn) Close() error                     { return nil }
func (recordConn) LocalAddr() net.Addr              { return nil }
func (recordConn) RemoteAddr() net.Addr             { return nil }
func (recordConn) SetDeadline(time.Time) error      { return nil }
func (recordConn) SetReadDeadline(time.Time) error  { return nil }
