package baseline

import (
	"encoding/binary"
	"errors"
)

// The websocket frame codec of the floor server (RFC 6455 section 5): just
// enough to read masked client frames and write unmasked server frames.

const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA

	finBit = 0x80
	// maxControlPayload is RFC 6455's limit for ping, pong and close.
	maxControlPayload = 125
)

// Close codes the floor sends.
const (
	closeNormal        = 1000
	closeProtocol      = 1002
	closeMessageTooBig = 1009
)

var (
	errProtocol = errors.New("baseline: websocket protocol violation")
	errTooLarge = errors.New("baseline: websocket message too large")
)

// wsFrame is one parsed client frame; payload is unmasked in place and
// aliases the read buffer.
type wsFrame struct {
	fin     bool
	op      byte
	payload []byte
}

// readFrame parses the client frame at the start of b and unmasks its
// payload in place. n is the frame's length in b. If b does not hold the
// whole frame yet, n is 0 and need is how many bytes the frame, or at least
// its header, takes. A payload longer than limit is errTooLarge, anything RFC
// 6455 forbids a client (unmasked frame, reserved bits, unknown opcode, a
// fragmented or long control frame) errProtocol.
func readFrame(b []byte, limit int) (f wsFrame, n, need int, err error) {
	if len(b) < 2 {
		return f, 0, 2, nil
	}
	b0, b1 := b[0], b[1]
	if b0&0x70 != 0 || b1&0x80 == 0 {
		return f, 0, 0, errProtocol
	}
	f.fin = b0&finBit != 0
	f.op = b0 & 0x0f
	switch f.op {
	case opContinuation, opText, opBinary:
	case opClose, opPing, opPong:
		if !f.fin || b1&0x7f > maxControlPayload {
			return f, 0, 0, errProtocol
		}
	default:
		return f, 0, 0, errProtocol
	}
	hl, l := 2, uint64(b1&0x7f)
	switch l {
	case 126:
		hl = 4
		if len(b) < hl {
			return f, 0, hl + 4, nil
		}
		l = uint64(binary.BigEndian.Uint16(b[2:]))
	case 127:
		hl = 10
		if len(b) < hl {
			return f, 0, hl + 4, nil
		}
		l = binary.BigEndian.Uint64(b[2:])
	}
	if l > uint64(limit) {
		return f, 0, 0, errTooLarge
	}
	hl += 4 // the masking key
	total := hl + int(l)
	if len(b) < total {
		return f, 0, total, nil
	}
	f.payload = b[hl:total]
	unmask(f.payload, b[hl-4:hl])
	return f, total, total, nil
}

// unmask XORs p with the 4-byte key, eight bytes at a time where it can.
func unmask(p, key []byte) {
	k4 := binary.LittleEndian.Uint32(key)
	k8 := uint64(k4) | uint64(k4)<<32
	i := 0
	for ; i+8 <= len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], binary.LittleEndian.Uint64(p[i:])^k8)
	}
	for ; i < len(p); i++ {
		p[i] ^= key[i&3]
	}
}

// appendFrame appends one unfragmented, unmasked server frame.
func appendFrame(dst []byte, op byte, payload []byte) []byte {
	l := len(payload)
	switch {
	case l <= maxControlPayload:
		dst = append(dst, finBit|op, byte(l))
	case l <= 0xffff:
		dst = append(dst, finBit|op, 126, byte(l>>8), byte(l))
	default:
		dst = append(dst, finBit|op, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(l))
	}
	return append(dst, payload...)
}

// appendClose appends a close frame with code.
func appendClose(dst []byte, code int) []byte {
	return appendFrame(dst, opClose, []byte{byte(code >> 8), byte(code)})
}
