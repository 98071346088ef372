package gateway

import "sync/atomic"

// Stats is a snapshot of a gateway's counters. Totals count since the
// gateway started.
type Stats struct {
	Connections      int64 `json:"connections"` // open now
	Topics           int64 `json:"topics"`      // topics with local subscribers now
	ConnectsTotal    int64 `json:"connectsTotal"`
	DisconnectsTotal int64 `json:"disconnectsTotal"`
	FramesIn         int64 `json:"framesIn"` // client data frames read
	BytesIn          int64 `json:"bytesIn"`
	FramesOut        int64 `json:"framesOut"` // frames written to clients (deliveries, replies, heartbeats)
	Writes           int64 `json:"writes"`    // write system calls to clients: FramesOut/Writes is the batching
	BytesOut         int64 `json:"bytesOut"`
	Published        int64 `json:"published"`        // messages published on this node
	RemoteIn         int64 `json:"remoteIn"`         // messages received from other nodes
	PublishErrors    int64 `json:"publishErrors"`    // publishes the broker refused
	Dropped          int64 `json:"dropped"`          // frames dropped by the slow-consumer policy
	SlowDisconnects  int64 `json:"slowDisconnects"`  // connections closed with 4008
	ReadTimeouts     int64 `json:"readTimeouts"`     // ReadTimeoutHandler events (inbound queue full)
	ProtocolErrors   int64 `json:"protocolErrors"`   // malformed or refused client frames
	Panics           int64 `json:"panics"`           // recovered panics
	AuthFailures     int64 `json:"authFailures"`     // upgrades refused with 401
	Forbidden        int64 `json:"forbidden"`        // subscribes and publishes outside the grants
	TokenExpired     int64 `json:"tokenExpired"`     // connections closed with 4403
	ConnLimited      int64 `json:"connLimited"`      // upgrades refused by MaxConnections (503)
	IPLimited        int64 `json:"ipLimited"`        // upgrades refused by MaxConnectionsPerIP (429)
	RateLimited      int64 `json:"rateLimited"`      // client frames dropped by PublishRate
	ConnRateLimited  int64 `json:"connRateLimited"`  // upgrades refused by ConnectRate (429)
	PublishQueueFull int64 `json:"publishQueueFull"` // publishes refused: too many wait for the broker (503)
	// ClusterIDConflicts counts the checks that found this node's message-id
	// node number held by another node too (claim.go).
	ClusterIDConflicts int64 `json:"clusterIdConflicts"`
}

// counters are the live, atomically updated figures behind Stats.
type counters struct {
	connections, connectsTotal, disconnectsTotal atomic.Int64
	framesIn, bytesIn, framesOut, bytesOut       atomic.Int64
	writes                                       atomic.Int64
	published, remoteIn, publishErrors           atomic.Int64
	dropped, slowDisconnects, readTimeouts       atomic.Int64
	protocolErrors, panics                       atomic.Int64
	authFailures, forbidden, tokenExpired        atomic.Int64
	connLimited, ipLimited, rateLimited          atomic.Int64
	connRateLimited, publishQueueFull            atomic.Int64
	clusterIDConflicts                           atomic.Int64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Connections:        c.connections.Load(),
		ConnectsTotal:      c.connectsTotal.Load(),
		DisconnectsTotal:   c.disconnectsTotal.Load(),
		FramesIn:           c.framesIn.Load(),
		BytesIn:            c.bytesIn.Load(),
		FramesOut:          c.framesOut.Load(),
		Writes:             c.writes.Load(),
		BytesOut:           c.bytesOut.Load(),
		Published:          c.published.Load(),
		RemoteIn:           c.remoteIn.Load(),
		PublishErrors:      c.publishErrors.Load(),
		Dropped:            c.dropped.Load(),
		SlowDisconnects:    c.slowDisconnects.Load(),
		ReadTimeouts:       c.readTimeouts.Load(),
		ProtocolErrors:     c.protocolErrors.Load(),
		Panics:             c.panics.Load(),
		AuthFailures:       c.authFailures.Load(),
		Forbidden:          c.forbidden.Load(),
		TokenExpired:       c.tokenExpired.Load(),
		ConnLimited:        c.connLimited.Load(),
		IPLimited:          c.ipLimited.Load(),
		RateLimited:        c.rateLimited.Load(),
		ConnRateLimited:    c.connRateLimited.Load(),
		PublishQueueFull:   c.publishQueueFull.Load(),
		ClusterIDConflicts: c.clusterIDConflicts.Load(),
	}
}
