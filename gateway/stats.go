package gateway

import "sync/atomic"

// Stats is a snapshot of a gateway's counters. Totals count since the
// gateway started.
type Stats struct {
	Connections      int64 // open now
	Topics           int64 // topics with local subscribers now
	ConnectsTotal    int64
	DisconnectsTotal int64
	FramesIn         int64 // client data frames read
	BytesIn          int64
	FramesOut        int64 // frames written to clients (deliveries, replies, heartbeats)
	BytesOut         int64
	Published        int64 // messages published on this node
	RemoteIn         int64 // messages received from other nodes
	PublishErrors    int64 // publishes the broker refused
	Dropped          int64 // frames dropped by the slow-consumer policy
	SlowDisconnects  int64 // connections closed with 4008
	ReadTimeouts     int64 // ReadTimeoutHandler events (inbound queue full)
	ProtocolErrors   int64 // malformed or refused client frames
	Panics           int64 // recovered panics
}

// counters are the live, atomically updated figures behind Stats.
type counters struct {
	connections, connectsTotal, disconnectsTotal atomic.Int64
	framesIn, bytesIn, framesOut, bytesOut       atomic.Int64
	published, remoteIn, publishErrors           atomic.Int64
	dropped, slowDisconnects, readTimeouts       atomic.Int64
	protocolErrors, panics                       atomic.Int64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Connections:      c.connections.Load(),
		ConnectsTotal:    c.connectsTotal.Load(),
		DisconnectsTotal: c.disconnectsTotal.Load(),
		FramesIn:         c.framesIn.Load(),
		BytesIn:          c.bytesIn.Load(),
		FramesOut:        c.framesOut.Load(),
		BytesOut:         c.bytesOut.Load(),
		Published:        c.published.Load(),
		RemoteIn:         c.remoteIn.Load(),
		PublishErrors:    c.publishErrors.Load(),
		Dropped:          c.dropped.Load(),
		SlowDisconnects:  c.slowDisconnects.Load(),
		ReadTimeouts:     c.readTimeouts.Load(),
		ProtocolErrors:   c.protocolErrors.Load(),
		Panics:           c.panics.Load(),
	}
}
