package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/firetower-go/firetower/broker"
)

// Known counts: GetConnectNum is what a chat application calls on every
// subscribe and unsubscribe (the seed's count announcements), so it must
// not cost a network round trip each time. It answers with this node's
// exact count plus what the node knows of the others: the broker's own
// knowledge when it has one (broker.KnownCounter), else a cache of
// Broker.Count answers per topic, refreshed in the background when older
// than countFresh, a few topics at a time. A topic asked for the first
// time counts only this node's subscribers until its first refresh.

const (
	// countFresh is how long a cached count of the other nodes is used
	// before a background refresh is started.
	countFresh = time.Second
	// maxCountRefreshes bounds the refreshes in flight: during a broker
	// outage a storm of subscribes starts at most this many.
	maxCountRefreshes = 4
	// maxCountEntries bounds the cache; past it the cache starts over.
	maxCountEntries = 1 << 14
)

type countCache struct {
	mu         sync.Mutex // a leaf lock
	entries    map[string]*countEntry
	refreshing int
}

type countEntry struct {
	remote int64
	at     time.Time // of the last answer; zero: none yet
	busy   bool      // a refresh is in flight
}

// knownCount returns the subscribers of topic in the cluster as this node
// knows them, without waiting on the network.
func (g *Gateway) knownCount(topic string) int64 {
	local := g.hub.Count(topic)
	if kc, ok := g.broker.(broker.KnownCounter); ok {
		if n, ok := kc.KnownCount(topic); ok {
			return local + n
		}
	}
	c := &g.counts
	now := time.Now()
	c.mu.Lock()
	if c.entries == nil || len(c.entries) >= maxCountEntries {
		c.entries = make(map[string]*countEntry)
	}
	e := c.entries[topic]
	if e == nil {
		e = &countEntry{}
		c.entries[topic] = e
	}
	remote := e.remote
	start := !e.busy && now.Sub(e.at) >= countFresh && c.refreshing < maxCountRefreshes && !g.closed.Load()
	if start {
		e.busy = true
		c.refreshing++
		g.bgWG.Add(1)
	}
	c.mu.Unlock()
	if start {
		go g.refreshCount(topic, e)
	}
	return local + remote
}

// refreshCount asks the broker for topic's count on the other nodes.
func (g *Gateway) refreshCount(topic string, e *countEntry) {
	defer g.bgWG.Done()
	ctx, cancel := context.WithTimeout(g.bgCtx, g.cfg.PublishTimeout)
	n, err := g.broker.Count(ctx, topic)
	cancel()
	c := &g.counts
	c.mu.Lock()
	e.busy = false
	c.refreshing--
	if err == nil {
		e.remote = n
	}
	e.at = time.Now() // after a failure too: the next try waits countFresh
	c.mu.Unlock()
	if err != nil {
		g.warnCount(topic, err)
	}
}
