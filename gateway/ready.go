package gateway

import (
	"fmt"

	"github.com/firetower-go/firetower/broker"
)

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
