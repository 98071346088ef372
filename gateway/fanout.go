package gateway

import (
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/internal/hub"
)

// The fan-out: a message, published on this node (publish.go) or received
// from another (handleRemote), goes to this node's subscribers through the
// hub, encoded once per protocol version, appended to each subscriber's
// outbound queue without blocking (outbound.go).

// handleRemote receives messages from other nodes through the broker.
func (g *Gateway) handleRemote(m *broker.Message) {
	defer g.recoverPanic("broker handler", nil)
	if m.Kind == broker.KindCommand {
		g.handleCommand(m)
		return
	}
	g.stats.remoteIn.Add(1)
	g.fanout(m)
}

// fanout hands m to the local subscribers, timed for the Observer.
func (g *Gateway) fanout(m *broker.Message) {
	hm := hub.Message{Topic: m.Topic, ID: m.ID, Data: m.Data} // a value: no allocation
	o := g.cfg.Observer
	if o == nil {
		g.hub.Publish(hm)
		return
	}
	start := time.Now()
	if n := g.hub.Publish(hm); n > 0 {
		o.Fanout(time.Since(start), n)
	}
}
