package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/internal/hub"
)

// Observer receives timings of the publish path, for metrics (package
// metrics implements it with Prometheus histograms). Its methods are called
// on the publishing goroutine (a connection's Run goroutine, a push API
// handler, the broker's delivery goroutine), once per message and never per
// delivery; they must be cheap and never block. With no Observer the gateway
// does not read the clock at all.
type Observer interface {
	// Fanout reports one local fan-out that reached at least one local
	// subscriber: how long handing the message to subscribers took (the
	// frames are queued, not written) and to how many.
	Fanout(d time.Duration, subscribers int)
	// BrokerPublish reports one publish to the broker (to the other nodes)
	// and its error.
	BrokerPublish(d time.Duration, err error)
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

// brokerPublish sends m to the other nodes, timed for the Observer.
func (g *Gateway) brokerPublish(ctx context.Context, m *broker.Message) error {
	o := g.cfg.Observer
	if o == nil {
		return g.broker.Publish(ctx, m)
	}
	start := time.Now()
	err := g.broker.Publish(ctx, m)
	o.BrokerPublish(time.Since(start), err)
	return err
}

// Ready reports whether this node should be given new clients: nil, or why
// not — it is draining or closed, or its broker (when it implements
// broker.Checker) cannot reach the other nodes. It never blocks on the
// network: /readyz calls it.
func (g *Gateway) Ready() error {
	g.mu.Lock()
	closed, draining := g.closed.Load(), g.draining
	g.mu.Unlock()
	switch {
	case closed:
		return ErrGatewayClosed
	case draining:
		return ErrDraining
	}
	return g.BrokerReady()
}

// BrokerReady is the broker's part of Ready: nil if the broker does not
// implement broker.Checker.
func (g *Gateway) BrokerReady() error {
	if c, ok := g.broker.(broker.Checker); ok {
		if err := c.Ready(); err != nil {
			return fmt.Errorf("gateway: broker not ready: %w", err)
		}
	}
	return nil
}

// Broker returns the broker the gateway was built with (Config.Broker or
// the default in-process one), for its optional interfaces
// (broker.Checker, BrokerDescriber, metrics).
func (g *Gateway) Broker() broker.Broker { return g.broker }
