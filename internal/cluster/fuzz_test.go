package cluster

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// fuzzLimit is the frame limit of the fuzz target: small, so that a length
// prefix anywhere in the input is as likely to be refused as accepted.
const fuzzLimit = MinMaxFrame

// FuzzReadFrame reads frames from arbitrary bytes and parses each per its
// type. Nothing may panic, no frame over the limit may come out, and a frame
// that parses must re-encode to exactly its own bytes (the encoding is
// canonical, so a manager forwarding raw bytes and one re-encoding agree).
// Seeds are in testdata/fuzz/FuzzReadFrame; run with
//
//	go test -fuzz FuzzReadFrame ./internal/cluster
func FuzzReadFrame(f *testing.F) {
	for _, raw := range sampleFrames() {
		if len(raw) <= fuzzLimit+LengthLen {
			f.Add(raw)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), fuzzLimit)
		for range 64 {
			fr, err := r.ReadFrame()
			if err != nil {
				if err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrFrameTooLarge) &&
					!errors.Is(err, ErrVersion) && !errors.Is(err, ErrMalformed) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if len(fr.Raw) > fuzzLimit+LengthLen || len(fr.Raw) < HeaderLen {
				t.Fatalf("frame of %d bytes came out of a reader limited to %d", len(fr.Raw), fuzzLimit)
			}
			again, err := parseAny(fr)
			if err != nil {
				continue
			}
			if !bytes.Equal(again, fr.Raw) {
				t.Fatalf("%v re-encodes differently:\n got %q\nwant %q", fr.Type, again, fr.Raw)
			}
		}
	})
}
