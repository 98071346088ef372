package envelope

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/firetower-go/firetower/broker"
)

func TestRoundTrip(t *testing.T) {
	for _, m := range []*broker.Message{
		{},
		{Kind: broker.KindCommand, Topic: "", ID: 1, Origin: "gw-1", Data: []byte(`{"op":"closeTopic"}`)},
		{Topic: "a.*.>", ID: 1<<64 - 1, Origin: "n", Data: []byte(" {\"a\" : 1}\n")},
		{Topic: strings.Repeat("t", MaxString), Origin: strings.Repeat("o", MaxString), Data: []byte{0, 0xff, '"'}},
	} {
		b := Append([]byte("keep"), m)
		if !bytes.HasPrefix(b, []byte("keep")) || len(b) != 4+Len(m) {
			t.Fatalf("Append: %d bytes, want 4 + %d", len(b), Len(m))
		}
		got, err := Parse(b[4:])
		if err != nil {
			t.Fatal(err)
		}
		if got.Kind != m.Kind || got.Topic != m.Topic || got.ID != m.ID || got.Origin != m.Origin || !bytes.Equal(got.Data, m.Data) {
			t.Errorf("round trip: got %+v, want %+v", got, m)
		}
	}
}

func TestCheck(t *testing.T) {
	long := strings.Repeat("x", MaxString+1)
	for _, m := range []*broker.Message{{Topic: long}, {Origin: long}, {Kind: 7}} {
		if err := Check(m); err == nil {
			t.Errorf("Check accepted kind %v, topic %d bytes, origin %d bytes", m.Kind, len(m.Topic), len(m.Origin))
		}
	}
	if err := Check(&broker.Message{Kind: broker.KindCommand, Topic: "t", Origin: "o"}); err != nil {
		t.Error(err)
	}
}

func TestParseRejects(t *testing.T) {
	good := Append(nil, &broker.Message{Topic: "topic", Origin: "origin", Data: []byte("1")})
	for name, b := range map[string][]byte{
		"empty":         nil,
		"short header":  good[:headerLen-1],
		"version":       append([]byte{2}, good[1:]...),
		"kind":          append([]byte{Version, 9}, good[2:]...),
		"origin length": append(append([]byte{}, good[:10]...), 0xff, 0xff),
		"topic length":  good[:12+len("origin")+1],
	} {
		if _, err := Parse(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Parse = %v, want ErrMalformed", name, err)
		}
	}
}

// FuzzParse: Parse never panics, and whatever it accepts re-encodes to the
// same bytes (the encoding is canonical).
func FuzzParse(f *testing.F) {
	f.Add(Append(nil, &broker.Message{Topic: "t", Origin: "o", ID: 7, Data: []byte(`"x"`)}))
	f.Add(Append(nil, &broker.Message{Kind: broker.KindCommand, Origin: "gw"}))
	f.Add([]byte{Version, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		if err := Check(m); err != nil {
			t.Fatalf("parsed message fails Check: %v", err)
		}
		if again := Append(nil, m); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n got %q\nwant %q", again, b)
		}
	})
}
