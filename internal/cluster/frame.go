// Package cluster is the wire codec of the cluster protocol between gateways
// (and external publishers) and topic managers: length-prefixed, versioned,
// binary-safe frames. Package topicmgr (the manager) and package broker/tm
// (the gateway's side) both speak it through this package and nothing else.
//
// A frame is
//
//	uint32  length of what follows (big-endian), at most the reader's limit
//	uint8   protocol version (Version)
//	uint8   frame type (Type)
//	...     the body, laid out per type
//
// Fields in a body are fixed-size big-endian integers and length-prefixed
// byte strings: str16 (uint16 length + bytes) for topics and ids, bytes32
// (uint32 length + bytes) for payloads. Nothing is separated by spaces or
// commas, so every byte value is allowed in every field. A body must be
// consumed exactly: trailing bytes are an error. docs/protocol.md
// describes every frame.
package cluster

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Protocol versions. Every frame carries the version of its session:
// a client writes its HELLO in the highest version it speaks, the manager
// answers in that version if it speaks it (or closes with
// CodeUnsupportedVersion), and both sides then write that version. The
// frame layouts of version 1 are unchanged in version 2, which adds
// CONFIRM: a manager confirms the publishes of a version-2 session only.
const (
	// Version is the highest version this package speaks, the one its
	// Append functions stamp.
	Version = 2
	// MinVersion is the oldest version a Reader accepts: a manager still
	// serves gateways of version 1 (without confirmations), so that
	// managers can be upgraded before the gateways.
	MinVersion = 1
)

// Frame layout.
const (
	// LengthLen is the size of the length prefix.
	LengthLen = 4
	// HeaderLen is the length prefix, the version and the type.
	HeaderLen = LengthLen + 2
	// MaxStr16 is the longest str16 field (topics, ids, reasons).
	MaxStr16 = math.MaxUint16
)

// DefaultMaxFrame is the default limit on a frame's length (version, type
// and body; the 4-byte prefix not counted): a 1 MiB payload with 64 KiB to
// spare for its topic, origin id and headers.
const DefaultMaxFrame = 1<<20 + 64<<10

// MinMaxFrame is the smallest limit a peer may announce or configure: room
// for every control frame with maximal ids.
const MinMaxFrame = 4 << 10

// Type is a frame type.
type Type uint8

// Frame types. docs/protocol.md describes each body.
const (
	TypeHello      Type = 1  // client -> manager: role, node id, session, token, max frame
	TypeWelcome    Type = 2  // manager -> client: manager id, epoch, lease, heartbeat, max frame
	TypePing       Type = 3  // both ways: nonce
	TypePong       Type = 4  // both ways: the ping's nonce
	TypeInterest   Type = 5  // gateway -> manager: (topic, absolute local count)...
	TypeSync       Type = 6  // gateway -> manager: the full interest table has been sent
	TypePublish    Type = 7  // both ways: topic, id, origin, data
	TypeCommand    Type = 8  // both ways: like publish; goes to every gateway
	TypeCount      Type = 9  // client -> manager: request id, topic
	TypeCountReply Type = 10 // manager -> client: request id, count
	TypeClose      Type = 11 // both ways: code, reason; the sender then closes
	TypeConfirm    Type = 12 // manager -> client (version 2): how many PUBLISH and COMMAND frames it has received
)

var typeNames = map[Type]string{
	TypeHello: "HELLO", TypeWelcome: "WELCOME", TypePing: "PING", TypePong: "PONG",
	TypeInterest: "INTEREST", TypeSync: "SYNC", TypePublish: "PUBLISH", TypeCommand: "COMMAND",
	TypeCount: "COUNT", TypeCountReply: "COUNT_REPLY", TypeClose: "CLOSE", TypeConfirm: "CONFIRM",
}

// String returns the type's name in docs/protocol.md.
func (t Type) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("TYPE(%d)", uint8(t))
}

// Errors of the codec.
var (
	ErrFrameTooLarge = errors.New("cluster: frame larger than the limit")
	ErrVersion       = errors.New("cluster: unsupported protocol version")
	ErrMalformed     = errors.New("cluster: malformed frame")
)

// Frame is one frame as read: its type and all of its bytes, length prefix
// included, so that a manager can forward a PUBLISH without re-encoding it.
// Raw is never reused by the Reader: it is the frame's own allocation and may
// be kept and shared.
type Frame struct {
	Version uint8
	Type    Type
	Raw     []byte
}

// Body returns the frame's body.
func (f Frame) Body() []byte { return f.Raw[HeaderLen:] }

// Reader reads frames from a stream through a buffer.
type Reader struct {
	r   *bufio.Reader
	max int
	hdr [HeaderLen]byte
}

// readBuffer is the read buffer: many small frames per read system call.
const readBuffer = 64 << 10

// NewReader returns a Reader of frames at most maxFrame long (<= 0 means
// DefaultMaxFrame).
func NewReader(r io.Reader, maxFrame int) *Reader {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	return &Reader{r: bufio.NewReaderSize(r, readBuffer), max: maxFrame}
}

// ReadFrame reads the next whole frame. The length is checked against the
// limit before anything is allocated for the body, so a peer cannot make the
// reader allocate more than the limit. Errors: io.EOF at a clean end of
// stream, io.ErrUnexpectedEOF inside a frame, ErrFrameTooLarge, ErrVersion,
// ErrMalformed (a length below 2), or the stream's error.
func (r *Reader) ReadFrame() (Frame, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:LengthLen]); err != nil {
		return Frame{}, err
	}
	n := binary.BigEndian.Uint32(r.hdr[:LengthLen])
	if uint64(n) > uint64(r.max) {
		return Frame{}, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, r.max)
	}
	if n < 2 {
		return Frame{}, fmt.Errorf("%w: length %d", ErrMalformed, n)
	}
	if _, err := io.ReadFull(r.r, r.hdr[LengthLen:]); err != nil {
		return Frame{}, unexpected(err)
	}
	v := r.hdr[LengthLen]
	if v < MinVersion || v > Version {
		return Frame{}, fmt.Errorf("%w: %d (this node speaks %d to %d)", ErrVersion, v, MinVersion, Version)
	}
	raw := make([]byte, LengthLen+int(n))
	copy(raw, r.hdr[:])
	if _, err := io.ReadFull(r.r, raw[HeaderLen:]); err != nil {
		return Frame{}, unexpected(err)
	}
	return Frame{Version: v, Type: Type(r.hdr[LengthLen+1]), Raw: raw}, nil
}

// Buffered returns the number of bytes read from the stream and not yet
// returned in a frame: 0 means the next ReadFrame will wait for the peer,
// so a manager confirms what it has received once per batch of frames
// that arrived together.
func (r *Reader) Buffered() int { return r.r.Buffered() }

// WriteVersion writes frame (one whole frame) to w stamped with version v
// instead of its own, without changing frame: a manager forwards the raw
// frames of version-2 clients to a version-1 gateway this way.
func WriteVersion(w io.Writer, frame []byte, v uint8) error {
	if len(frame) < HeaderLen || frame[LengthLen] == v {
		_, err := w.Write(frame)
		return err
	}
	if _, err := w.Write(frame[:LengthLen]); err != nil {
		return err
	}
	if _, err := w.Write([]byte{v}); err != nil {
		return err
	}
	_, err := w.Write(frame[LengthLen+1:])
	return err
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// begin appends a frame header with a length to be filled in by finish.
func begin(b []byte, t Type) ([]byte, int) {
	start := len(b)
	return append(b, 0, 0, 0, 0, Version, byte(t)), start
}

// finish writes the length of the frame that starts at start.
func finish(b []byte, start int) []byte {
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-LengthLen))
	return b
}

func appendStr16(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendBytes32(b []byte, p []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
	return append(b, p...)
}

// parser consumes a body field by field; the first error sticks.
type parser struct {
	b   []byte
	err error
}

func (p *parser) fail(what string) {
	if p.err == nil {
		p.err = fmt.Errorf("%w: %s", ErrMalformed, what)
	}
}

func (p *parser) take(n int, what string) []byte {
	if p.err != nil {
		return nil
	}
	if len(p.b) < n {
		p.fail("short " + what)
		return nil
	}
	v := p.b[:n:n]
	p.b = p.b[n:]
	return v
}

func (p *parser) u8(what string) uint8 {
	if v := p.take(1, what); v != nil {
		return v[0]
	}
	return 0
}

func (p *parser) u16(what string) uint16 {
	if v := p.take(2, what); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (p *parser) u32(what string) uint32 {
	if v := p.take(4, what); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (p *parser) u64(what string) uint64 {
	if v := p.take(8, what); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// count reads a non-negative int64.
func (p *parser) count(what string) int64 {
	v := p.u64(what)
	if v > math.MaxInt64 {
		p.fail("negative " + what)
		return 0
	}
	return int64(v)
}

func (p *parser) str16(what string) string {
	n := int(p.u16(what + " length"))
	return string(p.take(n, what))
}

// bytes32 returns a slice of the body (no copy).
func (p *parser) bytes32(what string) []byte {
	n := p.u32(what + " length")
	if p.err == nil && uint64(n) > uint64(len(p.b)) {
		p.fail("short " + what)
		return nil
	}
	return p.take(int(n), what)
}

// end fails if bytes are left over and returns the first error.
func (p *parser) end() error {
	if p.err == nil && len(p.b) > 0 {
		p.fail(fmt.Sprintf("%d trailing bytes", len(p.b)))
	}
	return p.err
}
