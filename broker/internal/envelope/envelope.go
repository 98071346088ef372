// Package envelope is the binary form of a broker.Message inside one Redis
// Pub/Sub or NATS message: a fixed header, the origin and topic with 16-bit
// lengths, and the payload as the rest of the bytes, untouched. Nothing is
// re-encoded, so the payload arrives byte for byte as it was published
// (JSON whitespace, escapes, even invalid UTF-8).
//
//	offset  size  field
//	0       1     version (1)
//	1       1     kind (broker.Kind: 0 publish, 1 command)
//	2       8     message id, big endian
//	10      2     origin length n, big endian
//	12      n     origin (the publishing node's id)
//	12+n    2     topic length m, big endian
//	14+n    m     topic
//	14+n+m  ...   data, to the end
package envelope

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/firetower-go/firetower/broker"
)

// Version is the envelope version this package writes and reads.
const Version = 1

// headerLen is the size of the fixed fields: version, kind, id and the two
// string lengths.
const headerLen = 1 + 1 + 8 + 2 + 2

// MaxString is the longest origin or topic an envelope carries.
const MaxString = 1<<16 - 1

// ErrMalformed is wrapped by every error of Parse.
var ErrMalformed = errors.New("envelope: malformed")

// Len returns the size of m's envelope.
func Len(m *broker.Message) int { return headerLen + len(m.Origin) + len(m.Topic) + len(m.Data) }

// Check reports whether m fits an envelope: origin and topic at most
// MaxString bytes, and a kind this version knows.
func Check(m *broker.Message) error {
	switch {
	case len(m.Origin) > MaxString:
		return fmt.Errorf("envelope: origin of %d bytes, limit %d", len(m.Origin), MaxString)
	case len(m.Topic) > MaxString:
		return fmt.Errorf("envelope: topic of %d bytes, limit %d", len(m.Topic), MaxString)
	case m.Kind != broker.KindPublish && m.Kind != broker.KindCommand:
		return fmt.Errorf("envelope: unknown message kind %v", m.Kind)
	}
	return nil
}

// Append appends m's envelope to b. m must pass Check.
func Append(b []byte, m *broker.Message) []byte {
	if n := Len(m); cap(b)-len(b) < n {
		nb := make([]byte, len(b), len(b)+n)
		copy(nb, b)
		b = nb
	}
	b = append(b, Version, byte(m.Kind))
	b = binary.BigEndian.AppendUint64(b, m.ID)
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.Origin)))
	b = append(b, m.Origin...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.Topic)))
	b = append(b, m.Topic...)
	return append(b, m.Data...)
}

// Parse decodes an envelope. The message's Data aliases b: the caller must
// not change b afterwards.
func Parse(b []byte) (*broker.Message, error) {
	if len(b) < headerLen {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the header", ErrMalformed, len(b))
	}
	if b[0] != Version {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrMalformed, b[0], Version)
	}
	kind := broker.Kind(b[1])
	if kind != broker.KindPublish && kind != broker.KindCommand {
		return nil, fmt.Errorf("%w: unknown kind %d", ErrMalformed, b[1])
	}
	m := &broker.Message{Kind: kind, ID: binary.BigEndian.Uint64(b[2:10])}
	rest := b[10:]
	var ok bool
	if m.Origin, rest, ok = str16(rest); !ok {
		return nil, fmt.Errorf("%w: origin longer than the envelope", ErrMalformed)
	}
	if m.Topic, rest, ok = str16(rest); !ok {
		return nil, fmt.Errorf("%w: topic longer than the envelope", ErrMalformed)
	}
	m.Data = rest[:len(rest):len(rest)]
	return m, nil
}

func str16(b []byte) (string, []byte, bool) {
	if len(b) < 2 {
		return "", nil, false
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b)-2 < n {
		return "", nil, false
	}
	return string(b[2 : 2+n]), b[2+n:], true
}
