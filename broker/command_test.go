package broker_test

import (
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
