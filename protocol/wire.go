package protocol

import (
	"encoding/binary"
	"errors"
	"strings"
	"unicode/utf8"
)

// Websocket opcodes (RFC 6455 section 5.2).
const (
	OpContinuation = 0x0
	OpText         = 0x1
	OpBinary       = 0x2
	OpClose        = 0x8
	OpPing         = 0x9
	OpPong         = 0xa
)

// Websocket close codes used by firetower. 1000-1011 are RFC 6455 codes;
// 4000-4499 mean "the client may reconnect", 4500-4999 "do not reconnect".
// docs/protocol.md lists when each is sent.
const (
	CloseNormal         = 1000
	CloseGoingAway      = 1001 // server shutdown or drain: reconnect elsewhere
	CloseProtocolError  = 1002
	CloseUnsupported    = 1003
	CloseInvalidPayload = 1007 // invalid UTF-8 in a text frame
	ClosePolicy         = 1008
	CloseTooBig         = 1009 // message over the read limit
	CloseInternal       = 1011 // a recovered panic or an internal failure
	CloseSlowConsumer   = 4008 // the outbound queue overflowed for too long
	CloseNoPong         = 4009 // no frame from the client within the liveness window
	CloseTokenExpired   = 4403 // the connection's token expired: reconnect with a new token
	CloseKicked         = 4501 // disconnected by a kick-out command (Gateway.DisconnectClient / DisconnectUser)
	CloseRejected       = 4503 // the application's OnConnect or Read handler refused the client
)

// AppendFrame appends one unmasked, final server-to-client websocket frame
// with the given opcode and payload to dst and returns the extended slice.
func AppendFrame(dst []byte, opcode byte, payload []byte) []byte {
	dst = AppendFrameHeader(dst, opcode, len(payload))
	return append(dst, payload...)
}

// AppendFrameHeader appends the header of an unmasked, final server frame
// whose payload is n bytes long.
func AppendFrameHeader(dst []byte, opcode byte, n int) []byte {
	dst = append(dst, 0x80|opcode)
	switch {
	case n <= 125:
		dst = append(dst, byte(n))
	case n <= 0xffff:
		dst = append(dst, 126, 0, 0)
		binary.BigEndian.PutUint16(dst[len(dst)-2:], uint16(n))
	default:
		dst = append(dst, 127, 0, 0, 0, 0, 0, 0, 0, 0)
		binary.BigEndian.PutUint64(dst[len(dst)-8:], uint64(n))
	}
	return dst
}

// FrameHeaderLen is the length of the header AppendFrameHeader writes for a
// payload of n bytes.
func FrameHeaderLen(n int) int {
	switch {
	case n <= 125:
		return 2
	case n <= 0xffff:
		return 4
	default:
		return 10
	}
}

// ClientFrameHeader is the header of a frame a client sent (RFC 6455
// section 5.2).
type ClientFrameHeader struct {
	Fin  bool
	Op   byte
	Len  int64   // payload length
	Key  [4]byte // masking key
	Size int     // header length, masking key included
}

// ErrFrame is what ParseClientFrameHeader returns for a header RFC 6455
// forbids a client.
var ErrFrame = errors.New("protocol: websocket frame violation")

// ParseClientFrameHeader parses the client frame header at the start of b.
// ok is false while b holds only part of it (a header takes at most 14
// bytes). It fails with ErrFrame on reserved bits, a missing mask, an
// unknown opcode, a fragmented or long (over 125 bytes) control frame and a
// 64-bit length with the top bit set. The caller checks Len against its
// own limit.
func ParseClientFrameHeader(b []byte) (h ClientFrameHeader, ok bool, err error) {
	if len(b) < 2 {
		return h, false, nil
	}
	h.Fin, h.Op = b[0]&0x80 != 0, b[0]&0x0f
	masked, n := b[1]&0x80 != 0, int64(b[1]&0x7f)
	switch {
	case b[0]&0x70 != 0, !masked:
		return h, false, ErrFrame
	case h.Op > OpBinary && h.Op < OpClose, h.Op > OpPong:
		return h, false, ErrFrame
	case h.Op >= OpClose && (!h.Fin || n > 125):
		return h, false, ErrFrame
	}
	h.Size = 2
	switch n {
	case 126:
		if len(b) < 4 {
			return h, false, nil
		}
		n, h.Size = int64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return h, false, nil
		}
		u := binary.BigEndian.Uint64(b[2:])
		if u >= 1<<63 {
			return h, false, ErrFrame // the most significant bit must be 0
		}
		n, h.Size = int64(u), 10
	}
	if len(b) < h.Size+4 {
		return h, false, nil
	}
	copy(h.Key[:], b[h.Size:])
	h.Len, h.Size = n, h.Size+4
	return h, true, nil
}

// MaskBytes masks (or unmasks) b in place with a client's masking key.
func MaskBytes(key [4]byte, b []byte) {
	k := uint64(binary.LittleEndian.Uint32(key[:]))
	k |= k << 32
	i := 0
	for ; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^k)
	}
	for ; i < len(b); i++ {
		b[i] ^= key[i&3]
	}
}

// TextFrame returns a complete text frame holding payload, in a new slice
// sized exactly for it.
func TextFrame(payload []byte) []byte {
	return AppendFrame(make([]byte, 0, FrameHeaderLen(len(payload))+len(payload)), OpText, payload)
}

// CloseFrame returns a complete close frame with the code and reason. The
// reason is cut to fit the 125-byte control frame limit without splitting a
// UTF-8 sequence.
func CloseFrame(code int, reason string) []byte {
	const maxReason = 123
	reason = strings.ToValidUTF8(reason, "\uFFFD") // RFC 6455 requires a UTF-8 reason
	if len(reason) > maxReason {
		reason = reason[:maxReason]
		for !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	p := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(p, uint16(code))
	p = append(p, reason...)
	return AppendFrame(make([]byte, 0, 2+len(p)), OpClose, p)
}
