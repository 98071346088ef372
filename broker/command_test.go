package broker_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/firetower-go/firetower/broker"
)

func TestCommandValidate(t *testing.T) {
	data := []byte(`{"x":1}`)
	for _, c := range []struct {
		cmd broker.Command
		ok  bool
	}{
		{broker.Command{Op: broker.OpDisconnectClient, ClientID: "c"}, true},
		{broker.Command{Op: broker.OpDisconnectClient}, false},
		{broker.Command{Op: broker.OpDisconnectUser, UserID: "u"}, true},
		{broker.Command{Op: broker.OpDisconnectUser}, false},
		{broker.Command{Op: broker.OpRemoveUserFromTopic, UserID: "u", Topic: "t"}, true},
		{broker.Command{Op: broker.OpRemoveUserFromTopic, UserID: "u"}, false},
		{broker.Command{Op: broker.OpRemoveUserFromTopic, Topic: "t"}, false},
		{broker.Command{Op: broker.OpCloseTopic, Topic: "t"}, true},
		{broker.Command{Op: broker.OpCloseTopic}, false},
		{broker.Command{Op: broker.OpPushClient, ClientID: "c", Data: data}, true},
		{broker.Command{Op: broker.OpPushClient, ClientID: "c"}, false},
		{broker.Command{Op: broker.OpPushClient, Data: data}, false},
		{broker.Command{Op: broker.OpPushUser, UserID: "u", Data: data}, true},
		{broker.Command{Op: broker.OpPushUser, UserID: "u"}, false},
		{broker.Command{Op: broker.OpPushUser, Data: data}, false},
		{broker.Command{Op: broker.OpNodeInfo, Data: data}, true},
		{broker.Command{Op: broker.OpNodeInfo}, false},
		{broker.Command{Op: "explode"}, false},
	} {
		err := c.cmd.Validate()
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, broker.ErrBadCommand)) {
			t.Errorf("%+v: Validate() = %v", c.cmd, err)
		}
	}
}

// A push command survives the trip through a message: the payload stays
// the same JSON bytes.
func TestPushCommandRoundTrip(t *testing.T) {
	in := broker.Command{Op: broker.OpPushUser, UserID: "u1", Data: []byte(`{"big":12345678901234567890,"s":"é"}`)}
	m, err := in.Message(7, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	if m.Kind != broker.KindCommand || m.Topic != "" || m.ID != 7 || m.Origin != "node-a" {
		t.Errorf("message %+v", m)
	}
	out, err := broker.DecodeCommand(m)
	if err != nil || out.Op != in.Op || out.UserID != in.UserID || string(out.Data) != string(in.Data) {
		t.Errorf("decoded %+v, %v; want %+v", out, err, in)
	}
}

// A push reaches other nodes as the very bytes pushed: not compacted, not
// HTML-escaped, U+2028 and white space around the value kept.
func TestCommandKeepsDataBytes(t *testing.T) {
	for _, data := range []string{
		`{ "html": "<b>&" }`,
		"{\n\t\"a\" : [ 1 ,2 ],\r\n \"s\": \"line\u2028sep\u2029 \\u003c\"\n}",
		" \"padded\" \n",
		`"\u0026 stays escaped, & stays raw"`,
		`12345678901234567890`,
	} {
		for _, c := range []broker.Command{
			{Op: broker.OpPushUser, UserID: "<u&1>", Data: []byte(data)},
			{Op: broker.OpPushClient, ClientID: "c\u2028\"1\"", Data: []byte(data)},
		} {
			m, err := c.Message(1, "node-a")
			if err != nil {
				t.Fatal(err)
			}
			out, err := broker.DecodeCommand(m)
			if err != nil || out.UserID != c.UserID || out.ClientID != c.ClientID || string(out.Data) != data {
				t.Errorf("%q: decoded %+v (data %q), %v", data, out, out.Data, err)
			}
			var plain map[string]any
			if err := json.Unmarshal(m.Data, &plain); err != nil {
				t.Errorf("%q: the encoding %q is not JSON: %v", data, m.Data, err)
			}
		}
	}
}

// Commands encoded by json.Marshal (nodes before the exact encoding, or
// other programs) still decode, with their data as encoding/json reads it;
// and a layout other than the exact encoding's never yields bytes outside
// the data value.
func TestDecodeOtherCommandEncodings(t *testing.T) {
	old, err := json.Marshal(broker.Command{Op: broker.OpPushUser, UserID: "u<1>", Data: []byte(`{ "html": "<b>&" }`)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ enc, data string }{
		{string(old), `{"html":"\u003cb\u003e\u0026"}`},
		{`{"op":"pushUser","userId":"u","data": 1 ,"extra":true}`, `1`},
		{`{"op":"pushUser","userId":"u","data":1,"data": 2 }`, `2`},
		{`{"data": [1] ,"op":"pushUser","userId":"u"}`, `[1]`},
		{` {"op":"pushUser","userId":"u","data": "x" } `, `"x"`},
		{`{"op":"pushUser","userId":"u","data": "x" }`, ` "x" `},
	} {
		out, err := broker.DecodeCommand(&broker.Message{Kind: broker.KindCommand, Data: []byte(c.enc)})
		if err != nil || string(out.Data) != c.data {
			t.Errorf("%s: data %q, %v; want %q", c.enc, out.Data, err, c.data)
		}
	}
}
