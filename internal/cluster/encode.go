package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/firetower-go/firetower/broker"
)

func binary16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
func binary32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
func binary64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

// growFor makes room for n more bytes at once, so that a 1 MiB payload is
// copied once instead of through repeated appends.
func growFor(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), len(b)+n)
	copy(nb, b)
	return nb
}

func isErr(err, target error) bool { return errors.Is(err, target) }

// CheckMessage reports whether m can be sent in a frame of at most maxFrame
// bytes: its topic and origin fit a str16 and the frame fits the limit.
func CheckMessage(m *broker.Message, maxFrame int) error {
	if len(m.Topic) > MaxStr16 || len(m.Origin) > MaxStr16 {
		return fmt.Errorf("%w: topic or origin longer than %d bytes", ErrFrameTooLarge, MaxStr16)
	}
	if n := 2 + MessageLen(m); n > maxFrame {
		return fmt.Errorf("%w: message frame of %d bytes, limit %d", ErrFrameTooLarge, n, maxFrame)
	}
	return nil
}
