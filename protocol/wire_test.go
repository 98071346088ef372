package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// header is a websocket frame header read back by hand (RFC 6455 5.2).
type header struct {
	fin    bool
	rsv    byte
	opcode byte
	masked bool
	length uint64
	size   int // header bytes
}

func parseHeader(t *testing.T, b []byte) header {
	t.Helper()
	if len(b) < 2 {
		t.Fatalf("frame of %d bytes has no header", len(b))
	}
	h := header{
		fin:    b[0]&0x80 != 0,
		rsv:    b[0] & 0x70,
		opcode: b[0] & 0x0f,
		masked: b[1]&0x80 != 0,
		length: uint64(b[1] & 0x7f),
		size:   2,
	}
	switch h.length {
	case 126:
		if len(b) < 4 {
			t.Fatalf("16-bit length cut short: % x", b)
		}
		h.length = uint64(binary.BigEndian.Uint16(b[2:4]))
		h.size = 4
		if h.length <= 125 {
			t.Errorf("length %d not in its shortest form (16-bit)", h.length)
		}
	case 127:
		if len(b) < 10 {
			t.Fatalf("64-bit length cut short: % x", b)
		}
		h.length = binary.BigEndian.Uint64(b[2:10])
		h.size = 10
		if h.length>>63 != 0 {
			t.Errorf("64-bit length has its top bit set: %x", h.length)
		}
		if h.length <= 0xffff {
			t.Errorf("length %d not in its shortest form (64-bit)", h.length)
		}
	}
	return h
}

func TestFrameHeaderLen(t *testing.T) {
	tests := []struct{ n, want int }{
		{0, 2}, {1, 2}, {125, 2},
		{126, 4}, {127, 4}, {65535, 4},
		{65536, 10}, {1 << 20, 10}, {1 << 40, 10},
	}
	for _, tt := range tests {
		if got := FrameHeaderLen(tt.n); got != tt.want {
			t.Errorf("FrameHeaderLen(%d) = %d, want %d", tt.n, got, tt.want)
		}
		if got := len(AppendFrameHeader(nil, OpText, tt.n)); got != tt.want {
			t.Errorf("len(AppendFrameHeader(%d)) = %d, want %d", tt.n, got, tt.want)
		}
	}
}

func TestAppendFrameHeaderBytes(t *testing.T) {
	tests := []struct {
		op   byte
		n    int
		want []byte
	}{
		{OpText, 0, []byte{0x81, 0x00}},
		{OpText, 125, []byte{0x81, 0x7d}},
		{OpBinary, 126, []byte{0x82, 0x7e, 0x00, 0x7e}},
		{OpText, 65535, []byte{0x81, 0x7e, 0xff, 0xff}},
		{OpText, 65536, []byte{0x81, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}},
		{OpClose, 2, []byte{0x88, 0x02}},
		{OpPing, 0, []byte{0x89, 0x00}},
		{OpPong, 4, []byte{0x8a, 0x04}},
		{OpText, 1 << 40, []byte{0x81, 0x7f, 0, 0, 0x01, 0, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		if got := AppendFrameHeader(nil, tt.op, tt.n); !bytes.Equal(got, tt.want) {
			t.Errorf("AppendFrameHeader(0x%x, %d) = % x, want % x", tt.op, tt.n, got, tt.want)
		}
	}
}

func TestAppendFrame(t *testing.T) {
	sizes := []int{0, 1, 124, 125, 126, 127, 1000, 65534, 65535, 65536, 65537, 70000}
	ops := []byte{OpText, OpBinary}
	for _, op := range ops {
		for _, n := range sizes {
			payload := make([]byte, n)
			for i := range payload {
				payload[i] = byte(i*7 + 3)
			}
			prefix := []byte("prefix")
			frame := AppendFrame(bytes.Clone(prefix), op, payload)
			if !bytes.HasPrefix(frame, prefix) {
				t.Fatalf("op %x n %d: prefix overwritten", op, n)
			}
			frame = frame[len(prefix):]
			h := parseHeader(t, frame)
			if !h.fin || h.rsv != 0 || h.masked || h.opcode != op {
				t.Errorf("op %x n %d: header %+v, want FIN, no RSV, no mask, opcode %x", op, n, h, op)
			}
			if h.length != uint64(n) {
				t.Errorf("op %x n %d: length field %d", op, n, h.length)
			}
			if h.size != FrameHeaderLen(n) {
				t.Errorf("op %x n %d: header is %d bytes, FrameHeaderLen says %d", op, n, h.size, FrameHeaderLen(n))
			}
			if len(frame) != h.size+n || !bytes.Equal(frame[h.size:], payload) {
				t.Errorf("op %x n %d: payload not appended intact (frame %d bytes)", op, n, len(frame))
			}
		}
	}
}

func TestTextFrame(t *testing.T) {
	for _, n := range []int{0, 5, 125, 126, 65535, 65536} {
		payload := bytes.Repeat([]byte{'x'}, n)
		frame := TextFrame(payload)
		if want := FrameHeaderLen(n) + n; len(frame) != want || cap(frame) != want {
			t.Errorf("n %d: len %d cap %d, want both %d", n, len(frame), cap(frame), want)
		}
		h := parseHeader(t, frame)
		if !h.fin || h.masked || h.opcode != OpText || h.length != uint64(n) {
			t.Errorf("n %d: header %+v", n, h)
		}
		if !bytes.Equal(frame[h.size:], payload) {
			t.Errorf("n %d: payload differs", n)
		}
	}
	if got, want := TextFrame([]byte(HeartbeatV1)), append([]byte{0x81, 9}, "heartbeat"...); !bytes.Equal(got, want) {
		t.Errorf("heartbeat frame = % x, want % x", got, want)
	}
}

func TestCloseFrame(t *testing.T) {
	tests := []struct {
		name       string
		code       int
		reason     string
		wantReason string
	}{
		{"no reason", CloseNormal, "", ""},
		{"short reason", CloseGoingAway, "shutting down", "shutting down"},
		{"slow consumer", CloseSlowConsumer, "slow consumer", "slow consumer"},
		{"rejected", CloseRejected, "rejected", "rejected"},
		{"largest code", 0xffff, "x", "x"},
		{"123 bytes kept", ClosePolicy, strings.Repeat("a", 123), strings.Repeat("a", 123)},
		{"124 bytes cut", ClosePolicy, strings.Repeat("a", 124), strings.Repeat("a", 123)},
		{"long ASCII cut", CloseTooBig, strings.Repeat("ab", 200), strings.Repeat("ab", 61) + "a"},
		{"2-byte runes, cut would split", CloseInternal, strings.Repeat("é", 62), strings.Repeat("é", 61)},
		{"3-byte runes ending at 123", CloseInternal, strings.Repeat("€", 42), strings.Repeat("€", 41)},
		{"3-byte runes of exactly 123", CloseInternal, strings.Repeat("€", 41), strings.Repeat("€", 41)},
		{"4-byte runes, cut would split", CloseInternal, strings.Repeat("🔥", 31), strings.Repeat("🔥", 30)},
		{"4-byte rune across the cut", CloseInternal, "a" + strings.Repeat("🔥", 31), "a" + strings.Repeat("🔥", 30)},
		{"4-byte rune ending at 123", CloseInternal, "abc" + strings.Repeat("🔥", 30) + "z", "abc" + strings.Repeat("🔥", 30)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := CloseFrame(tt.code, tt.reason)
			h := parseHeader(t, frame)
			if !h.fin || h.rsv != 0 || h.masked || h.opcode != OpClose {
				t.Errorf("header %+v, want FIN close frame without mask", h)
			}
			if h.size != 2 || h.length > 125 {
				t.Fatalf("control frame payload of %d bytes (header %d)", h.length, h.size)
			}
			payload := frame[h.size:]
			if uint64(len(payload)) != h.length {
				t.Fatalf("frame carries %d payload bytes, header says %d", len(payload), h.length)
			}
			if got := int(binary.BigEndian.Uint16(payload)); got != tt.code {
				t.Errorf("code = %d, want %d", got, tt.code)
			}
			reason := string(payload[2:])
			if reason != tt.wantReason {
				t.Errorf("reason = %q (%d bytes), want %q (%d bytes)", reason, len(reason), tt.wantReason, len(tt.wantReason))
			}
			if len(reason) > 123 || !utf8.ValidString(reason) || !strings.HasPrefix(tt.reason, reason) {
				t.Errorf("reason %q is not a valid prefix of at most 123 bytes", reason)
			}
		})
	}
}

// TestCloseFrameEveryLength cuts reasons of mixed rune widths at every
// length and checks that the longest whole-rune prefix is kept.
func TestCloseFrameEveryLength(t *testing.T) {
	const alphabet = "aé€🔥"
	var sb strings.Builder
	for sb.Len() < 200 {
		sb.WriteString(alphabet)
	}
	full := sb.String()
	for n := 0; n <= len(full); n++ {
		reason := full[:n]
		if !utf8.ValidString(reason) {
			continue
		}
		want := reason
		for len(want) > 123 {
			_, size := utf8.DecodeLastRuneInString(want)
			want = want[:len(want)-size]
		}
		frame := CloseFrame(CloseNormal, reason)
		if got := string(frame[4:]); got != want {
			t.Fatalf("reason of %d bytes: got %q (%d bytes), want %d bytes", n, got, len(got), len(want))
		}
		if frame[1] != byte(2+len(want)) || len(frame) != 4+len(want) {
			t.Fatalf("reason of %d bytes: length byte %d, frame %d bytes", n, frame[1], len(frame))
		}
	}
}

func TestMaskBytes(t *testing.T) {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	for n := range 20 {
		p := []byte("hello, websocket masking longer than eight bytes")[:n+3]
		orig := append([]byte(nil), p...)
		MaskBytes(key, p)
		for i := range p {
			if p[i] != orig[i]^key[i%4] {
				t.Fatalf("length %d: byte %d masked wrong", len(p), i)
			}
		}
		MaskBytes(key, p)
		if string(p) != string(orig) {
			t.Fatalf("length %d: masking twice does not give the input back", len(p))
		}
	}
}

func TestParseClientFrameHeader(t *testing.T) {
	key := []byte{1, 2, 3, 4}
	for _, tc := range []struct {
		name string
		b    []byte
		ok   bool
		err  bool
		want ClientFrameHeader
	}{
		{"empty", nil, false, false, ClientFrameHeader{}},
		{"text 5", append([]byte{0x81, 0x85}, key...), true, false, ClientFrameHeader{Fin: true, Op: OpText, Len: 5, Key: [4]byte(key), Size: 6}},
		{"no key yet", []byte{0x81, 0x85, 1}, false, false, ClientFrameHeader{}},
		{"16-bit", append([]byte{0x02, 0xfe, 0x01, 0x00}, key...), true, false, ClientFrameHeader{Op: OpBinary, Len: 256, Key: [4]byte(key), Size: 8}},
		{"16-bit partial", []byte{0x02, 0xfe, 0x01}, false, false, ClientFrameHeader{}},
		{"64-bit", append([]byte{0x80, 0xff, 0, 0, 0, 0, 0, 1, 0, 0}, key...), true, false, ClientFrameHeader{Fin: true, Len: 1 << 16, Key: [4]byte(key), Size: 14}},
		{"64-bit top bit", []byte{0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0}, false, true, ClientFrameHeader{}},
		{"unmasked", []byte{0x81, 0x05}, false, true, ClientFrameHeader{}},
		{"reserved bit", []byte{0xc1, 0x80}, false, true, ClientFrameHeader{}},
		{"reserved opcode", []byte{0x83, 0x80}, false, true, ClientFrameHeader{}},
		{"fragmented ping", []byte{0x09, 0x80}, false, true, ClientFrameHeader{}},
		{"long close", []byte{0x88, 0xfe}, false, true, ClientFrameHeader{}},
	} {
		h, ok, err := ParseClientFrameHeader(tc.b)
		if ok != tc.ok || (err != nil) != tc.err || (ok && h != tc.want) {
			t.Errorf("%s: %+v %v %v, want %+v %v err=%v", tc.name, h, ok, err, tc.want, tc.ok, tc.err)
		}
		if err != nil && !errors.Is(err, ErrFrame) {
			t.Errorf("%s: %v is not ErrFrame", tc.name, err)
		}
	}
}
