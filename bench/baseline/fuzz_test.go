package baseline

import (
	"bytes"
	"testing"
)

// FuzzReadFrame feeds arbitrary bytes to the floor's frame parser, frame
// after frame as the read loop does, in one piece and byte by byte.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0x81, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2})
	f.Add([]byte{0x01, 0x81, 0, 0, 0, 0, 'a', 0x80, 0x81, 0, 0, 0, 0, 'b'})
	f.Add([]byte{0x81, 0xfe, 0x01, 0x00, 0, 0, 0, 0})
	f.Add([]byte{0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8})
	f.Fuzz(func(t *testing.T, b []byte) {
		whole := parseAll(t, bytes.Clone(b))
		// Growing the input one byte at a time must give the same frames.
		var got [][]byte
		buf := bytes.Clone(b)
		start := 0
		for end := 0; end <= len(buf); end++ {
			for {
				f, n, need, err := readFrame(buf[start:end], 1024)
				if err != nil || n == 0 {
					if err == nil && need <= end-start {
						t.Fatalf("need %d with %d buffered", need, end-start)
					}
					break
				}
				got = append(got, bytes.Clone(f.payload))
				start += n
			}
		}
		if len(got) != len(whole) {
			t.Fatalf("%d frames byte by byte, %d at once", len(got), len(whole))
		}
		for i := range got {
			if !bytes.Equal(got[i], whole[i]) {
				t.Fatalf("frame %d differs", i)
			}
		}
	})
}

func parseAll(t *testing.T, b []byte) [][]byte {
	var out [][]byte
	for {
		f, n, _, err := readFrame(b, 1024)
		if err != nil || n == 0 {
			return out
		}
		if n > len(b) || len(f.payload) > 1024 {
			t.Fatalf("frame of %d bytes, payload %d, from %d", n, len(f.payload), len(b))
		}
		out = append(out, bytes.Clone(f.payload))
		b = b[n:]
	}
}

// FuzzClientFrame checks that no client message panics the v1 parsing both
// servers share, and that accepted topics are valid.
func FuzzClientFrame(f *testing.F) {
	f.Add([]byte(`{"type":"subscribe","topic":"/a, /b,,/a","data":""}`))
	f.Add([]byte(`{"type":"publish","topic":"/t","data":{"seq":1}}`))
	f.Fuzz(func(t *testing.T, p []byte) {
		fr, ok := parseFrame(p)
		if !ok {
			return
		}
		if topics, ok := parseTopicList(fr.Topic); ok {
			if len(topics) == 0 || len(topics) > maxTopicsPerFrame {
				t.Fatalf("%d topics", len(topics))
			}
			for _, tp := range topics {
				if !validTopic(tp) || tp == "" {
					t.Fatalf("invalid topic %q accepted", tp)
				}
			}
		}
		publishTopic(fr.Topic)
	})
}
