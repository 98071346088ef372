package protocol

import (
	"strconv"
	"unicode/utf8"
)

// Error codes carried in v2 error frames. They follow the HTTP status code
// meanings so that the same code can be reused by the push API.
const (
	CodeBadRequest    = 400 // malformed JSON, unknown or missing fields
	CodeUnauthorized  = 401 // a refresh token refused (invalid, expired)
	CodeForbidden     = 403 // refused by BeforeSubscribeHandler or by a permission
	CodeNotFound      = 404 // unsubscribe from a topic the connection does not hold
	CodeTooLarge      = 413 // data over the message size limit
	CodeInvalidTopic  = 422 // empty, too long, control characters, comma, reserved prefix
	CodeLimitExceeded = 429 // too many subscriptions, rate limits
	CodeInternal      = 500 // a recovered panic or a broker failure
	CodeUnavailable   = 503 // the broker is unreachable or the node is draining
	// CodeUnknownOutcome: the broker had the message when the gateway
	// stopped waiting for its answer; other nodes may or may not get it.
	CodeUnknownOutcome = 504
)

// Server-to-client v2 frame types.
const (
	TypeMessage = "message"
	TypeAck     = "ack"
	TypeError   = "error"
	TypePing    = "ping"
	TypeDirect  = "direct"
)

// HeartbeatV1 is the payload of the periodic v1 heartbeat text frame; the
// original client ignores it.
const HeartbeatV1 = "heartbeat"

// PingV2 is the payload of the periodic v2 heartbeat frame.
const PingV2 = `{"type":"ping"}`

// AppendMessageV2 appends the v2 envelope of a delivered message:
// {"type":"message","topic":T,"id":"ID","data":DATA}. data must be a valid
// JSON value; the id is a string because 64-bit ids exceed JavaScript's safe
// integers.
func AppendMessageV2(dst []byte, topic string, id uint64, data []byte) []byte {
	dst = append(dst, `{"type":"message","topic":`...)
	dst = AppendJSONString(dst, topic)
	dst = append(dst, `,"id":"`...)
	dst = strconv.AppendUint(dst, id, 10)
	dst = append(dst, `","data":`...)
	dst = append(dst, data...)
	return append(dst, '}')
}

// MessageV2Len is the exact length AppendMessageV2 produces, used to size a
// frame buffer once.
func MessageV2Len(topic string, id uint64, data []byte) int {
	return len(`{"type":"message","topic":`) + jsonStringLen(topic) + len(`,"id":"`) +
		uintLen(id) + len(`","data":`) + len(data) + 1
}

// AppendAckV2 appends {"type":"ack","id":ID}.
func AppendAckV2(dst []byte, id []byte) []byte {
	dst = append(dst, `{"type":"ack","id":`...)
	dst = appendID(dst, id)
	return append(dst, '}')
}

// AppendErrorV2 appends {"type":"error","id":ID,"error":{"code":C,"message":M}}.
// A missing id is written as null.
func AppendErrorV2(dst []byte, id []byte, code int, message string) []byte {
	dst = append(dst, `{"type":"error","id":`...)
	dst = appendID(dst, id)
	dst = append(dst, `,"error":{"code":`...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, `,"message":`...)
	dst = AppendJSONString(dst, message)
	return append(dst, "}}"...)
}

// AppendDirectV2 appends {"type":"direct","data":DATA}, the v2 form of a
// message sent to one connection (ToSelf).
func AppendDirectV2(dst []byte, data []byte) []byte {
	dst = append(dst, `{"type":"direct","data":`...)
	dst = append(dst, data...)
	return append(dst, '}')
}

func appendID(dst, id []byte) []byte {
	if len(id) == 0 {
		return append(dst, "null"...)
	}
	return append(dst, id...)
}

// AppendJSONString appends s as a JSON string literal. Invalid UTF-8 is
// replaced by U+FFFD so the output is always valid JSON.
func AppendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// jsonStringLen returns len(AppendJSONString(nil, s)).
func jsonStringLen(s string) int {
	n := 2
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t':
				n += 2
			case c < 0x20:
				n += 6
			default:
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			n += 6
			i++
			continue
		}
		n += size
		i += size
	}
	return n
}

func uintLen(v uint64) int {
	n := 1
	for v >= 10 {
		v /= 10
		n++
	}
	return n
}
