package gateway

import "time"

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
