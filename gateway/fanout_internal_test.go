package gateway

import (
	"testing"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/internal/hub"
	"github.com/firetower-go/firetower/protocol"
)

// versionSub is a hub subscriber of one protocol version that drops what it
// is given.
type versionSub struct{ v protocol.Version }

func (s *versionSub) Version() protocol.Version { return s.v }
func (*versionSub) Deliver(hub.Delivery)        {}
func (*versionSub) tower() *FireTower           { return nil }

// The fan-out hands the hub its message without allocating: a publish costs
// the hub's allocations alone, one per protocol version present (a frame,
// or the message copy that listeners share), whatever the subscriber count.
func TestFanoutAllocations(t *testing.T) {
	g, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	m := &broker.Message{Topic: "room", ID: 1, Data: []byte(`{"a":1}`)}
	for _, tc := range []struct {
		versions []protocol.Version
		want     float64
	}{
		{[]protocol.Version{protocol.V1, protocol.V1}, 1},
		{[]protocol.Version{protocol.V1, protocol.V2, protocol.V2}, 2},
		{[]protocol.Version{hub.MessageOnly, hub.MessageOnly}, 1},
	} {
		subs := make([]*versionSub, len(tc.versions))
		for i, v := range tc.versions {
			subs[i] = &versionSub{v}
			g.hub.Subscribe("room", subs[i])
		}
		if got := testing.AllocsPerRun(100, func() { g.fanout(m) }); got != tc.want {
			t.Errorf("versions %v: %v allocations per fanout, want %v", tc.versions, got, tc.want)
		}
		for _, s := range subs {
			g.hub.Unsubscribe("room", s)
		}
	}
}
