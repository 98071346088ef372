package gateway_test

// The v2 protocol (subprotocol firetower.v2): acknowledgements, error
// frames with codes, message envelopes with ids, the ping heartbeat, and v1
// and v2 clients side by side.

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/protocol"
	"github.com/gorilla/websocket"
)

// The subprotocol is negotiated only when offered.
func TestV2Negotiation(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, quietConfig(), nil)
	if got := dial(t, ts.url, true).Subprotocol(); got != protocol.SubprotocolV2 {
		t.Fatalf("v2 client negotiated %q", got)
	}
	if got := dial(t, ts.url, false).Subprotocol(); got != "" {
		t.Fatalf("v1 client negotiated %q", got)
	}
}

// subscribe, unsubscribe (either spelling) and publish are acknowledged with
// the request's id echoed as sent, number or string; a frame without an id
// gets no acknowledgement, and neither does a pong.
func TestV2Acks(t *testing.T) {
	t.Parallel()
	var log eventLog
	ts := newTestServer(t, quietConfig(), recordingSetup(&log, nil))
	c := dial(t, ts.url+"?id=c", true)
	pub := dial(t, ts.url+"?id=pub", true)

	for _, tc := range []struct{ frame, id string }{
		{`{"id":1,"type":"subscribe","topic":"a,b"}`, `1`},
		{`{"id":"sub-2","type":"subscribe","topics":["c","d"," e "]}`, `"sub-2"`},
		{`{"id":-3.5e2,"type":"unsubscribe","topic":"a"}`, `-3.5e2`},
		{`{"id":"ü \"4\"","type":"unSubscribe","topics":["b"],"topic":"c"}`, `"ü \"4\""`},
		{`{"id":12345678901234567890123,"type":"unsubscribe","topic":"not-held"}`, `12345678901234567890123`},
	} {
		send(t, c, tc.frame)
		expectAck(t, c, tc.id)
	}
	for topic, want := range map[string]int64{"a": 0, "b": 0, "c": 0, "d": 1, "e": 1} {
		if n := ts.gw.LocalConnectNum(topic); n != want {
			t.Errorf("%s: %d subscribers, want %d", topic, n, want)
		}
	}

	send(t, pub, `{"id":"p-1","type":"publish","topic":"d","data":{"text":"hi"}}`)
	expectAck(t, pub, `"p-1"`)
	if f, raw := nextV2(t, c); f.Type != "message" || f.Topic != "d" || string(f.Data) != `{"text":"hi"}` {
		t.Fatalf("got %s", raw)
	}

	// No id, no acknowledgement; a pong is not even handed to the ReadHandler.
	send(t, c, `{"type":"subscribe","topic":"f"}`)
	send(t, c, `{"type":"pong"}`)
	send(t, c, `{"type":"publish","topic":"f","data":1}`)
	if f, raw := nextV2(t, c); f.Type != "message" || string(f.Data) != "1" {
		t.Fatalf("got %s, want the delivery and no acknowledgement before it", raw)
	}
	if got := barrier(t, c, true); len(got) != 0 {
		t.Fatalf("unexpected frames %q", got)
	}
	if n := log.count("read c pong"); n != 0 {
		t.Fatalf("a pong reached the ReadHandler")
	}
}

// Errors are {"type":"error","id":N,"error":{"code":C,"message":M}}; the id
// is null when the frame could not be parsed; the connection stays open.
func TestV2Errors(t *testing.T) {
	t.Parallel()
	cfg := quietConfig()
	cfg.MaxSubscriptions = 2
	cfg.MaxMessageSize = 64
	var log eventLog
	ts := newTestServer(t, cfg, recordingSetup(&log, nil))
	c := dial(t, ts.url+"?id=c", true)
	big := `"` + strings.Repeat("x", 63) + `"` // 65 bytes: one over the limit

	for _, tc := range []struct {
		name, frame, id string
		code            int
	}{
		{"truncated JSON", `{"id":1,"type":"subscribe"`, "null", 400},
		{"not JSON", `hello`, "null", 400},
		{"not an object", `[1,2]`, "null", 400},
		{"missing type", `{"id":2,"topic":"a"}`, "2", 400},
		{"empty type", `{"id":3,"type":"","topic":"a"}`, "3", 400},
		{"object id", `{"id":{"big":[1,2,3]},"type":"subscribe","topic":"a"}`, "null", 400},
		{"control character", `{"id":4,"type":"subscribe","topic":"a,b\nc"}`, "4", 422},
		{"comma in a topics entry", `{"id":5,"type":"subscribe","topics":["x,y"]}`, "5", 422},
		{"no topic", `{"id":6,"type":"subscribe","topic":" , "}`, "6", 422},
		{"too long", `{"id":7,"type":"subscribe","topic":"` + strings.Repeat("t", 256) + `"}`, "7", 422},
		{"publish to an invalid topic", `{"id":8,"type":"publish","topic":"a\u007f","data":1}`, "8", 422},
		{"publish without data", `{"id":9,"type":"publish","topic":"a"}`, "9", 400},
		{"publish data too large", `{"id":10,"type":"publish","topic":"a","data":` + big + `}`, "10", 413},
		{"error without id", `{"type":"subscribe","topic":"\u0000"}`, "null", 422},
	} {
		t.Run(tc.name, func(t *testing.T) { // in order, on the one connection
			send(t, c, tc.frame)
			expectError(t, c, tc.id, tc.code)
		})
	}
	if err := c.WriteMessage(websocket.BinaryMessage, []byte(`{"id":11,"type":"subscribe","topic":"a"}`)); err != nil {
		t.Fatal(err)
	}
	expectError(t, c, "null", 400)

	// The subscription limit: two topics fit, a third is refused whole.
	send(t, c, `{"id":12,"type":"subscribe","topics":["a","b"]}`)
	expectAck(t, c, "12")
	send(t, c, `{"id":13,"type":"subscribe","topics":["a","c"]}`)
	expectError(t, c, "13", 429)
	send(t, c, `{"id":14,"type":"subscribe","topic":"b,a"}`) // nothing new: fine
	expectAck(t, c, "14")
	if n := ts.gw.LocalConnectNum("c"); n != 0 {
		t.Fatalf("a refused subscription left %d subscribers on c", n)
	}

	// Exactly the size limit is accepted, and the connection still works.
	exact := `"` + strings.Repeat("x", 62) + `"` // 64 bytes
	send(t, c, `{"id":15,"type":"publish","topic":"a","data":`+exact+`}`)
	if f, raw := nextV2(t, c); f.Type != "message" || string(f.Data) != exact {
		t.Fatalf("got %s", raw)
	}
	expectAck(t, c, "15")
}

// With no ReadHandler the server accepts no client messages: 403.
func TestV2NoReadHandler(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, quietConfig(), func(*gateway.FireTower) {})
	c := dial(t, ts.url, true)
	send(t, c, `{"id":1,"type":"publish","topic":"a","data":1}`)
	expectError(t, c, "1", protocol.CodeForbidden)
	send(t, c, `{"id":2,"type":"subscribe","topic":"a"}`)
	expectAck(t, c, "2")
}

var messageV2 = regexp.MustCompile(`^\{"type":"message","topic":"((?:[^"\\]|\\.)*)","id":"([0-9]+)","data":(.*)\}$`)

// Deliveries are {"type":"message","topic":T,"id":"<digits>","data":D} with
// distinct, increasing ids; the topic is escaped as a JSON string.
func TestV2MessageEnvelope(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, quietConfig(), nil)
	sub := dial(t, ts.url, true)
	pub := dial(t, ts.url, false)
	const topic = `/room "1" ü`
	send(t, sub, `{"id":1,"type":"subscribe","topics":["/room \"1\" ü"]}`)
	expectAck(t, sub, "1")

	const n = 20
	for i := range n {
		send(t, pub, fmt.Sprintf(`{"type":"publish","topic":"/room \"1\" ü","data":{"seq":%d, "pad": [ ]}}`, i))
	}
	var last uint64
	for i := range n {
		raw := next(t, sub)
		m := messageV2.FindStringSubmatch(raw)
		if m == nil {
			t.Fatalf("frame %s is not a message envelope", raw)
		}
		if got, err := strconv.Unquote(`"` + m[1] + `"`); err != nil || got != topic {
			t.Fatalf("topic %q (%v), want %q", m[1], err, topic)
		}
		id, err := strconv.ParseUint(m[2], 10, 64)
		if err != nil || id <= last {
			t.Fatalf("id %s after %d", m[2], last)
		}
		last = id
		if want := fmt.Sprintf(`{"seq":%d, "pad": [ ]}`, i); m[3] != want {
			t.Fatalf("data %s, want the raw %s", m[3], want)
		}
	}
}

func TestV2Heartbeat(t *testing.T) {
	t.Parallel()
	checkHeartbeat(t, true)
}

// One publish reaches a v1 and a v2 subscriber of the same topic, each in
// its own format, whether a v1 client, a v2 client or the server published.
func TestV1AndV2OnOneTopic(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, quietConfig(), nil)
	v1 := dial(t, ts.url, false)
	v2 := dial(t, ts.url, true)
	send(t, v1, `{"type":"subscribe","topic":"mix","data":""}`)
	send(t, v2, `{"id":1,"type":"subscribe","topic":"mix"}`)
	expectAck(t, v2, "1")
	waitCount(t, ts.gw, "mix", 2)

	check := func(data string) {
		t.Helper()
		if got := next(t, v1); got != data {
			t.Fatalf("v1 got %s, want %s", got, data)
		}
		f, raw := nextV2(t, v2)
		if f.Type != "message" || f.Topic != "mix" || string(f.Data) != data || !messageV2.MatchString(raw) {
			t.Fatalf("v2 got %s", raw)
		}
	}
	send(t, v1, `{"type":"publish","topic":"mix","data":{"by":"v1"}}`)
	check(`{"by":"v1"}`)
	send(t, v2, `{"type":"publish","topic":"mix","data":{"by":"v2"}}`)
	check(`{"by":"v2"}`)
	if err := ts.gw.Publish(context.Background(), "mix", []byte(`["by","server"]`)); err != nil {
		t.Fatal(err)
	}
	check(`["by","server"]`)
}

// Replies keep the order of the frames they answer: a frame refused at
// decoding is answered after the frames before it, not ahead of them. The
// frames go in one TCP write, so that the transport decodes them all
// before the first is handled.
func TestRepliesInFrameOrder(t *testing.T) {
	ts := newTestServer(t, quietConfig(), nil)
	c := rawDial(t, ts.url, http.Header{"Sec-WebSocket-Protocol": {protocol.SubprotocolV2}})
	var frames []rawFrame
	for _, f := range []string{
		`{"id":1,"type":"subscribe","topics":["/a"]}`,
		`{"id":2,"type":"subscribe","topics":["bad,topic"]}`,
		`not json`,
		`{"id":3,"type":"unsubscribe","topics":["/a"]}`,
	} {
		frames = append(frames, rawFrame{op: protocol.OpText, payload: []byte(f)})
	}
	c.writeFrames(frames...)
	for _, want := range []string{`"ack","id":1`, `"id":2,"error":{"code":422`, `"id":null,"error":{"code":400`, `"ack","id":3`} {
		if got := c.nextData(5 * time.Second); !strings.Contains(got, want) {
			t.Fatalf("got %s, want a reply with %s", got, want)
		}
	}
}
