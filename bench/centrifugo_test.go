package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/firetower-go/firetower/protocol"
)

func TestCentrifugoCommands(t *testing.T) {
	// Every line of the subscribe frame and the publish command are JSON
	// commands of the Centrifuge protocol.
	type command struct {
		ID        int `json:"id"`
		Connect   *struct{}
		Subscribe *struct{ Channel string }
		Publish   *struct {
			Channel string
			Data    json.RawMessage
		}
	}
	lines := strings.Split(string(centrifugoSubscribe([]string{"/b/c1", "/b/g0"})), "\n")
	var cmds []command
	for _, l := range lines {
		var c command
		if err := json.Unmarshal([]byte(l), &c); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		cmds = append(cmds, c)
	}
	if len(cmds) != 3 || cmds[0].Connect == nil || cmds[1].Subscribe.Channel != "/b/c1" ||
		cmds[2].Subscribe.Channel != "/b/g0" || cmds[1].ID == cmds[2].ID {
		t.Fatalf("subscribe frame %q", lines)
	}
	data := appendPayload(nil, "/b/c1", 7, 99, 100)
	var pub command
	if err := json.Unmarshal(appendCentrifugoPublish(nil, "/b/c1", data), &pub); err != nil {
		t.Fatal(err)
	}
	if pub.Publish == nil || pub.Publish.Channel != "/b/c1" || !bytes.Equal(pub.Publish.Data, data) {
		t.Fatalf("publish command %+v", pub)
	}
}

func TestCentrifugoFrame(t *testing.T) {
	var out bytes.Buffer
	w := &wsConn{c: recordConn{&out}}
	m1 := appendPayload(nil, "/b/g0", 3, 5, 100)
	m2 := appendPayload(nil, "/b/c1", 4, 6, 100)
	frame := `{"id":2,"subscribe":{}}` + "\n" +
		`{"push":{"channel":"/b/g0","pub":{"data":` + string(m1) + `,"info":{"user":"","client":"x"}}}}` + "\n" +
		`{}` + "\n" +
		`{"id":1,"publish":{}}` + "\n" +
		`{"push":{"channel":"/b/c1","pub":{"data":` + string(m2) + `}}}`
	var got []uint64
	err := centrifugoFrame(w, []byte(frame), func(data []byte) {
		topic, seq, _, ok := parsePayload(data)
		if !ok {
			t.Errorf("not a bench message: %s", data)
		}
		if want := []string{"/b/g0", "/b/c1"}[len(got)]; string(topic) != want {
			t.Errorf("topic %s, want %s", topic, want)
		}
		got = append(got, seq)
	})
	if err != nil || len(got) != 2 || got[0] != 3 || got[1] != 4 {
		t.Fatalf("delivered %v, %v; want [3 4]", got, err)
	}
	// The ping was answered with {} in one masked text frame.
	b := out.Bytes()
	if len(b) != 8 || b[0] != 0x80|opText || b[1] != 0x80|2 {
		t.Fatalf("answer frame % x", b)
	}
	p := append([]byte(nil), b[6:]...)
	protocol.MaskBytes([4]byte(b[2:6]), p)
	if string(p) != "{}" {
		t.Fatalf("answer %q, want {}", p)
	}
}
