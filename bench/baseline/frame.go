package baseline

import (
	"errors"

	"github.com/firetower-go/firetower/protocol"
)

// The websocket frame codec of the floor server (RFC 6455 section 5): just
// enough to read masked client frames and write unmasked server frames.

const (
	opContinuation = protocol.OpContinuation
	opText         = protocol.OpText
	opBinary       = protocol.OpBinary
	opClose        = protocol.OpClose
	opPing         = protocol.OpPing
	opPong         = protocol.OpPong

	// maxHeader is the longest client frame header, masking key included.
	maxHeader = 14
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
	h, ok, err := protocol.ParseClientFrameHeader(b)
	switch {
	case err != nil:
		return f, 0, 0, errProtocol
	case !ok:
		return f, 0, maxHeader, nil
	case h.Len > int64(limit):
		return f, 0, 0, errTooLarge
	}
	total := h.Size + int(h.Len)
	if len(b) < total {
		return f, 0, total, nil
	}
	f = wsFrame{fin: h.Fin, op: h.Op, payload: b[h.Size:total]}
	protocol.MaskBytes(h.Key, f.payload)
	return f, total, total, nil
}

// appendClose appends a close frame with code.
func appendClose(dst []byte, code int) []byte {
	return protocol.AppendFrame(dst, opClose, []byte{byte(code >> 8), byte(code)})
}
