//go:build linux

package gateway

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"slices"
	"testing"

	"github.com/firetower-go/firetower/protocol"
)

// fuzzFrame is a masked client frame for the seed corpus.
func fuzzFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	switch n := len(payload); {
	case n <= 125:
		out = append(out, 0x80|byte(n))
	case n <= 0xffff:
		out = append(out, 0x80|126, byte(n>>8), byte(n))
	default:
		out = append(out, 0x80|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	key := [4]byte{1, 2, 3, 4}
	out = append(out, key[:]...)
	for i, c := range payload {
		out = append(out, c^key[i&3])
	}
	return out
}

// netpollRun feeds stream to a netpoll tower's parser in the given chunks,
// as successive reads would, and reports what the application saw and how
// the connection ended. The tower has no socket: its output stays queued.
func netpollRun(g *Gateway, p *poller, v2 bool, stream []byte, chunks []int) (string, int) {
	t := &FireTower{gw: g, topics: map[string]struct{}{}, closing: make(chan struct{})}
	if v2 {
		t.version = protocol.V2
	}
	t.out.init(t)
	t.np = &npConn{p: p, t: t, fd: -1}
	t.tr = inlineNP{t.np} // the frames are handled before consume returns
	t.out.wakeOnce = true
	var seen []string
	t.readHandler = func(fire *FireInfo) bool {
		seen = append(seen, fire.Message.Type+" "+fire.Message.Topic+" "+string(fire.Message.Data))
		return true
	}
	off := 0
	for _, n := range chunks {
		data := append(slices.Clone(t.np.rbuf), stream[off:off+n]...)
		off += n
		p.consume(t, data, n)
	}
	t.out.mu.Lock()
	queued, closed := len(t.out.queue), t.out.closed
	t.out.mu.Unlock()
	topics := len(t.topics)
	t.finish() // unsubscribe from the shared hub
	kept := len(t.np.rbuf)
	return fmt.Sprintf("%q topics=%d queued=%d closed=%v broken=%v kept=%d", seen, topics, queued, closed, t.np.broken, kept), kept
}

// inline is an executor that serves a tower at once, on the caller's
// goroutine.
type inline struct{}

// inlineNP is the netpoll transport with the inline executor.
type inlineNP struct{ *npConn }

func (inlineNP) executor() executor { return inline{} }

func (inline) submit(t *FireTower) {
	for more := true; more; {
		more, _ = t.serve(taskBatch)
	}
}

// FuzzNetpollFrames: the netpoll transport's frame parser, which reads
// untrusted bytes without gorilla, never panics, never keeps more than one
// frame's bytes, and sees the same frames whether the stream arrives in one
// read or split anywhere into two.
func FuzzNetpollFrames(f *testing.F) {
	g, err := New(Config{Logger: slog.New(slog.DiscardHandler), NodeInfoInterval: -1, ReadLimit: 1 << 10})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = g.Close() })
	// A poller that never runs: schedule only lists the tower.
	p := &poller{g: g, efd: -1, watch: map[*FireTower]struct{}{}}

	text := func(s string) []byte { return fuzzFrame(true, protocol.OpText, []byte(s)) }
	cat := func(parts ...[]byte) []byte { return slices.Concat(parts...) }
	f.Add(false, cat(text(`{"type":"subscribe","topic":"a,b","data":""}`), text(`{"type":"publish","topic":"a","data":1}`)), uint16(7))
	f.Add(true, cat(text(`{"id":1,"type":"subscribe","topics":["a"]}`), text(`{"id":2,"type":"publish","topic":"a","data":{"x":[1,2]}}`)), uint16(30))
	f.Add(false, cat(fuzzFrame(false, protocol.OpText, []byte(`{"type":"pub`)), fuzzFrame(true, protocol.OpPing, []byte("p")),
		fuzzFrame(true, protocol.OpContinuation, []byte(`lish","topic":"t","data":2}`))), uint16(3))
	f.Add(false, cat(text(`{"type":"publish","topic":"t","data":3}`), fuzzFrame(true, protocol.OpClose, []byte{0x03, 0xe8})), uint16(40))
	f.Add(false, fuzzFrame(true, protocol.OpText, make([]byte, 2000)), uint16(1))                            // over the read limit
	f.Add(false, []byte{0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, uint16(5))                       // 64-bit length, top bit set
	f.Add(true, cat(text("\xff\xfe"), text(`{"id":3,"type":"refresh","token":"x"}`)), uint16(9))             // invalid UTF-8
	f.Add(false, []byte{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'}, uint16(2))                                     // unmasked
	f.Add(true, fuzzFrame(true, protocol.OpBinary, []byte{0, 1, 2}), uint16(4))                              // binary
	f.Add(false, cat(fuzzFrame(true, 0x3, nil), text(`{"type":"publish","topic":"t","data":4}`)), uint16(0)) // reserved opcode

	f.Fuzz(func(t *testing.T, v2 bool, stream []byte, cut uint16) {
		if len(stream) > 8<<10 {
			return
		}
		whole, kept := netpollRun(g, p, v2, stream, []int{len(stream)})
		if limit := int(g.cfg.ReadLimit) + 14; kept > limit {
			t.Fatalf("%d bytes kept for an incomplete frame, more than a frame of the read limit (%d)", kept, limit)
		}
		k := int(cut) % (len(stream) + 1)
		split, _ := netpollRun(g, p, v2, stream, []int{k, len(stream) - k})
		if whole != split {
			t.Fatalf("one read and two reads (cut at %d) differ:\n%s\n%s", k, whole, split)
		}
	})
}
