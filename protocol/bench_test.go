package protocol_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/firetower-go/firetower/protocol"
)

// Typical client publish frames of each protocol.
var (
	benchPublishV1 = []byte(`{"type":"publish","topic":"chat/room-42","data":{"from":"user-1234","text":"hello, world"}}`)
	benchPublishV2 = []byte(`{"id":17,"type":"publish","topic":"chat/room-42","data":{"from":"user-1234","text":"hello, world"}}`)
)

// benchJSON returns a JSON string value of exactly n bytes.
func benchJSON(n int) []byte {
	return append(append([]byte{'"'}, bytes.Repeat([]byte{'x'}, n-2)...), '"')
}

func BenchmarkDecode(b *testing.B) {
	for _, tc := range []struct {
		v     protocol.Version
		frame []byte
	}{{protocol.V1, benchPublishV1}, {protocol.V2, benchPublishV2}} {
		b.Run(tc.v.String(), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.frame)))
			for b.Loop() {
				if _, err := protocol.Decode(tc.v, tc.frame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseTopicList(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := protocol.ParseTopicList("a,b,c", 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendMessageV2 encodes into a reused buffer, as a caller that
// sizes the buffer with MessageV2Len does: it must not allocate.
func BenchmarkAppendMessageV2(b *testing.B) {
	for _, n := range []int{100, 4 << 10} {
		b.Run(fmt.Sprintf("data=%dB", n), func(b *testing.B) {
			data := benchJSON(n)
			dst := make([]byte, 0, protocol.MessageV2Len("chat/room-42", 1<<62, data))
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				dst = protocol.AppendMessageV2(dst[:0], "chat/room-42", 1<<62, data)
			}
		})
	}
}

// BenchmarkTextFrame is the v1 encode of the fan-out: one allocation sized
// exactly for the frame.
func BenchmarkTextFrame(b *testing.B) {
	for _, n := range []int{100, 64 << 10} {
		b.Run(fmt.Sprintf("payload=%dB", n), func(b *testing.B) {
			payload := benchJSON(n)
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				protocol.TextFrame(payload)
			}
		})
	}
}

func BenchmarkAppendJSONString(b *testing.B) {
	for _, tc := range []struct{ name, s string }{
		{"plain", "chat/room-42/messages"},
		{"escapes", "line\none \"quoted\" tab\there é\x01"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			dst := make([]byte, 0, 128)
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.s)))
			for b.Loop() {
				dst = protocol.AppendJSONString(dst[:0], tc.s)
			}
		})
	}
}
