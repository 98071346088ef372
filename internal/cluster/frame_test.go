package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker"
)

// sampleFrames returns one frame of every type, with awkward field values:
// empty and maximal strings, every byte value, spaces, commas and unicode.
func sampleFrames() map[string][]byte {
	allBytes := make([]byte, 256)
	for i := range allBytes {
		allBytes[i] = byte(i)
	}
	return map[string][]byte{
		"hello":        AppendHello(nil, Hello{Role: RoleGateway, NodeID: "gw 1, ü", Session: math.MaxUint64, Token: "s3cret", MaxFrame: DefaultMaxFrame}),
		"hello-empty":  AppendHello(nil, Hello{}),
		"welcome":      AppendWelcome(nil, Welcome{ManagerID: "tm-1", Epoch: 42, Lease: 30 * time.Second, Heartbeat: 5 * time.Second, MaxFrame: 1 << 20}),
		"ping":         AppendPing(nil, 7),
		"pong":         AppendPong(nil, 7),
		"interest":     AppendInterest(nil, []Interest{{"a b", 1}, {"x,y", 0}, {"世界 🚀", math.MaxInt64}, {string(allBytes[1:]), 3}}),
		"interest-nil": AppendInterest(nil, nil),
		"sync":         AppendSync(nil),
		"publish":      AppendMessage(nil, &broker.Message{Topic: "/chat/room 1", ID: 1<<63 + 5, Origin: "gw-a", Data: []byte(`{"a":"b, c"}`)}),
		"publish-bin":  AppendMessage(nil, &broker.Message{Topic: string(allBytes[1:]), ID: 0, Origin: string(allBytes), Data: allBytes}),
		"command":      AppendMessage(nil, &broker.Message{Kind: broker.KindCommand, Topic: "", ID: 9, Origin: "pub", Data: []byte(`{"op":"closeTopic","topic":"t"}`)}),
		"count":        AppendCount(nil, CountRequest{ReqID: 3, Topic: "t"}),
		"count-reply":  AppendCountReply(nil, CountReply{ReqID: 3, Count: 12345}),
		"close":        AppendClose(nil, Close{Code: CodeSlowConsumer, Reason: "queue full"}),
		"confirm":      AppendConfirm(nil, math.MaxUint64),
		"publish-v1":   withVersion(AppendMessage(nil, &broker.Message{Topic: "t", ID: 1, Origin: "gw-old", Data: []byte(`1`)}), 1),
	}
}

// withVersion returns a copy of frame stamped with version v.
func withVersion(frame []byte, v uint8) []byte {
	var b bytes.Buffer
	if err := WriteVersion(&b, frame, v); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// parseAny parses a frame per its type and re-encodes the result in the
// frame's version, so that a frame that parses is checked to be canonical.
func parseAny(f Frame) ([]byte, error) {
	b, err := parseType(f)
	if err != nil {
		return nil, err
	}
	return withVersion(b, f.Version), nil
}

func parseType(f Frame) ([]byte, error) {
	body := f.Body()
	switch f.Type {
	case TypeHello:
		h, err := ParseHello(body)
		return AppendHello(nil, h), err
	case TypeWelcome:
		w, err := ParseWelcome(body)
		return AppendWelcome(nil, w), err
	case TypePing:
		n, err := ParseNonce(body)
		return AppendPing(nil, n), err
	case TypePong:
		n, err := ParseNonce(body)
		return AppendPong(nil, n), err
	case TypeInterest:
		es, err := ParseInterest(body)
		return AppendInterest(nil, es), err
	case TypeSync:
		if len(body) != 0 {
			return nil, ErrMalformed
		}
		return AppendSync(nil), nil
	case TypePublish, TypeCommand:
		m, err := ParseMessage(f)
		if err != nil {
			return nil, err
		}
		return AppendMessage(nil, m), nil
	case TypeCount:
		r, err := ParseCount(body)
		return AppendCount(nil, r), err
	case TypeCountReply:
		r, err := ParseCountReply(body)
		return AppendCountReply(nil, r), err
	case TypeClose:
		c, err := ParseClose(body)
		return AppendClose(nil, c), err
	case TypeConfirm:
		n, err := ParseConfirm(body)
		return AppendConfirm(nil, n), err
	}
	return nil, errUnknownType
}

var errUnknownType = errors.New("unknown type")

func TestRoundTrip(t *testing.T) {
	for name, raw := range sampleFrames() {
		t.Run(name, func(t *testing.T) {
			f, err := NewReader(bytes.NewReader(raw), 0).ReadFrame()
			if err != nil {
				t.Fatalf("ReadFrame: %v", err)
			}
			if !bytes.Equal(f.Raw, raw) {
				t.Fatalf("Raw differs from the bytes read")
			}
			again, err := parseAny(f)
			if err != nil {
				t.Fatalf("parse %v: %v", f.Type, err)
			}
			if !bytes.Equal(again, raw) {
				t.Fatalf("re-encoded %v differs:\n got %q\nwant %q", f.Type, again, raw)
			}
		})
	}
}

func TestMessageFields(t *testing.T) {
	in := &broker.Message{Kind: broker.KindCommand, Topic: "a,b c", ID: 77, Origin: "o", Data: []byte(`"x"`)}
	raw := AppendMessage(nil, in)
	if got, want := len(raw), HeaderLen+MessageLen(in); got != want {
		t.Errorf("frame is %d bytes, MessageLen says %d", got, want)
	}
	f, err := NewReader(bytes.NewReader(raw), 0).ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if f.Type != TypeCommand {
		t.Fatalf("type %v, want COMMAND", f.Type)
	}
	m, err := ParseMessage(f)
	if err != nil {
		t.Fatal(err)
	}
	if m.Kind != in.Kind || m.Topic != in.Topic || m.ID != in.ID || m.Origin != in.Origin || string(m.Data) != string(in.Data) {
		t.Errorf("got %+v, want %+v", m, in)
	}
}

// Many frames in one stream are read one by one, whatever the read sizes.
func TestReaderStream(t *testing.T) {
	var stream []byte
	var want [][]byte
	for i := range 200 {
		m := &broker.Message{Topic: "t", ID: uint64(i), Origin: "o", Data: bytes.Repeat([]byte("x"), i*97)}
		f := AppendMessage(nil, m)
		want = append(want, f)
		stream = append(stream, f...)
	}
	r := NewReader(iotestOneByte{bytes.NewReader(stream)}, 0)
	for i, w := range want {
		f, err := r.ReadFrame()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(f.Raw, w) {
			t.Fatalf("frame %d differs", i)
		}
	}
	if _, err := r.ReadFrame(); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

// iotestOneByte returns one byte per Read, as a slow network would.
type iotestOneByte struct{ r io.Reader }

func (o iotestOneByte) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

// A frame of exactly the limit is read; one byte more is refused from its
// header alone, before the body is read or allocated: the reader sees only
// the 4-byte prefix and then a stream that would block forever.
func TestReaderLimit(t *testing.T) {
	const limit = MinMaxFrame
	m := &broker.Message{Topic: "t", Origin: "o"}
	m.Data = bytes.Repeat([]byte("a"), limit-2-MessageLen(m))
	exact := AppendMessage(nil, m)
	if n := binary.BigEndian.Uint32(exact); n != limit {
		t.Fatalf("test frame length %d, want %d", n, limit)
	}
	if _, err := NewReader(bytes.NewReader(exact), limit).ReadFrame(); err != nil {
		t.Fatalf("frame of exactly the limit: %v", err)
	}

	for _, n := range []uint32{limit + 1, 1 << 30, math.MaxUint32} {
		var hdr [4]byte
		binary.BigEndian.PutUint32(hdr[:], n)
		r := NewReader(io.MultiReader(bytes.NewReader(hdr[:]), blockingReader{}), limit)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := r.ReadFrame()
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrFrameTooLarge) {
			t.Errorf("length %d: %v, want ErrFrameTooLarge", n, err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<10 {
			t.Errorf("length %d: %d bytes allocated to refuse it", n, grew)
		}
	}
}

// blockingReader fails the test if read: the reader must not wait for a
// body it refuses.
type blockingReader struct{}

func (blockingReader) Read([]byte) (int, error) {
	panic("the reader read past the header of a refused frame")
}

func TestReaderErrors(t *testing.T) {
	valid := AppendPing(nil, 1)
	badVersion := bytes.Clone(valid)
	badVersion[LengthLen] = Version + 1
	zeroVersion := bytes.Clone(valid)
	zeroVersion[LengthLen] = 0
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty stream", nil, io.EOF},
		{"cut in the prefix", valid[:3], io.ErrUnexpectedEOF},
		{"cut in the header", valid[:5], io.ErrUnexpectedEOF},
		{"cut in the body", valid[:len(valid)-1], io.ErrUnexpectedEOF},
		{"length 0", []byte{0, 0, 0, 0}, ErrMalformed},
		{"length 1", []byte{0, 0, 0, 1, 1}, ErrMalformed},
		{"version after ours", badVersion, ErrVersion},
		{"version 0", zeroVersion, ErrVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(tc.in), 0).ReadFrame()
			if !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	frame := func(typ Type, body ...byte) Frame {
		raw, s := begin(nil, typ)
		return Frame{Type: typ, Raw: finish(append(raw, body...), s)}
	}
	for _, tc := range []struct {
		name string
		f    Frame
	}{
		{"publish with trailing byte", frame(TypePublish, append(AppendMessage(nil, &broker.Message{Topic: "t"})[HeaderLen:], 0)...)},
		{"publish data length past the end", frame(TypePublish, 0, 1, 't', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff)},
		{"publish with empty topic", frame(TypePublish, AppendMessage(nil, &broker.Message{})[HeaderLen:]...)},
		{"interest with empty topic", frame(TypeInterest, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)},
		{"interest with negative count", frame(TypeInterest, 0, 1, 'a', 0xff, 0, 0, 0, 0, 0, 0, 0)},
		{"interest cut", frame(TypeInterest, 0, 5, 'a')},
		{"not a message", frame(TypePing, 0, 0, 0, 0, 0, 0, 0, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			switch tc.f.Type {
			case TypeInterest:
				_, err = ParseInterest(tc.f.Body())
			default:
				_, err = ParseMessage(tc.f)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("got %v, want ErrMalformed", err)
			}
		})
	}
}

func TestCheckMessage(t *testing.T) {
	m := &broker.Message{Topic: "t", Origin: "o", Data: make([]byte, 1<<20)}
	if err := CheckMessage(m, DefaultMaxFrame); err != nil {
		t.Errorf("1 MiB payload under the default limit: %v", err)
	}
	if err := CheckMessage(m, 1<<20); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("1 MiB payload under a 1 MiB frame limit: %v, want ErrFrameTooLarge", err)
	}
	long := &broker.Message{Topic: strings.Repeat("t", MaxStr16+1), Origin: "o"}
	if err := CheckMessage(long, math.MaxInt32); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("topic over 64 KiB: %v, want ErrFrameTooLarge", err)
	}
}

func TestCloseReasonCut(t *testing.T) {
	raw := AppendClose(nil, Close{Code: CodeBye, Reason: strings.Repeat("r", MaxStr16+10)})
	f, err := NewReader(bytes.NewReader(raw), 1<<20).ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseClose(f.Body())
	if err != nil || len(c.Reason) != MaxStr16 {
		t.Fatalf("reason of %d bytes, %v; want %d", len(c.Reason), err, MaxStr16)
	}
}

func TestConfirm(t *testing.T) {
	raw := AppendConfirm(nil, 1<<40+3)
	f, err := NewReader(bytes.NewReader(raw), 0).ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if f.Type != TypeConfirm || f.Version != Version || f.Type.String() != "CONFIRM" {
		t.Fatalf("read %v version %d", f.Type, f.Version)
	}
	if n, err := ParseConfirm(f.Body()); err != nil || n != 1<<40+3 {
		t.Errorf("ParseConfirm = %d, %v", n, err)
	}
	for _, body := range [][]byte{nil, make([]byte, 7), make([]byte, 9)} {
		if _, err := ParseConfirm(body); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseConfirm(%d bytes) = %v, want ErrMalformed", len(body), err)
		}
	}
}

// A version-1 frame is read as such, and WriteVersion restamps a frame
// without touching the original (a manager shares one frame between
// sessions of both versions).
func TestVersions(t *testing.T) {
	raw := AppendPing(nil, 5)
	old := withVersion(raw, MinVersion)
	if raw[LengthLen] != Version || old[LengthLen] != MinVersion || !bytes.Equal(raw[LengthLen+1:], old[LengthLen+1:]) {
		t.Fatalf("restamped %q from %q", old, raw)
	}
	f, err := NewReader(bytes.NewReader(old), 0).ReadFrame()
	if err != nil || f.Version != MinVersion || f.Type != TypePing {
		t.Fatalf("read %+v, %v", f, err)
	}
}
