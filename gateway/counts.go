package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/firetower-go/firetower/broker"
)

// Known counts: GetConnectNum is what a chat application calls on every
// subscribe and unsubscribe (the seed's count announcements), so it must
// not cost a network round trip each time, nor wait on a broker in
// trouble. It answers with this node's exact count plus what the node
// knows of the others: the broker's own knowledge when it has one
// (broker.KnownCounter), else a cache of Broker.Count answers per topic.
// An answer older than countFresh is refreshed, once for every caller of
// that moment (a few topics at a time), and the callers wait for the new
// answer at most countWait: with a healthy broker they get it, a round
// trip later; with a broker in trouble they go on with the last answer
// (this node's count alone if there was none). The callbacks run off the
// pollers, so such a wait holds up only its own connection.

const (
	// countFresh is how long a cached count of the other nodes is used
	// before a background refresh is started.
	countFresh = 250 * time.Millisecond
	// countWait bounds the wait for a topic's first count: a broker round
	// trip, unless the broker is in trouble.
	countWait = 100 * time.Millisecond
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
	stopped    bool // Shutdown: no refresh starts (set under mu, so none is added to bgWG after it waits)
}

type countEntry struct {
	remote int64
	at     time.Time     // of the last answer; zero: none yet
	done   chan struct{} // closed when the refresh in flight ends; nil: none
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
	if now.Sub(e.at) < countFresh {
		c.mu.Unlock()
		return local + remote
	}
	if e.done == nil && c.refreshing < maxCountRefreshes && !c.stopped {
		e.done = make(chan struct{})
		c.refreshing++
		g.bgWG.Add(1)
		go g.refreshCount(topic, e, e.done)
	}
	done := e.done
	c.mu.Unlock()
	if done == nil {
		return local + remote // too many refreshes in flight: the last answer
	}
	timer := time.NewTimer(countWait)
	defer timer.Stop()
	select {
	case <-done:
		c.mu.Lock()
		remote = e.remote
		c.mu.Unlock()
	case <-timer.C:
	}
	return local + remote
}

// refreshCount asks the broker for topic's count on the other nodes.
func (g *Gateway) refreshCount(topic string, e *countEntry, done chan struct{}) {
	defer g.bgWG.Done()
	ctx, cancel := context.WithTimeout(g.bgCtx, g.cfg.PublishTimeout)
	n, err := g.broker.Count(ctx, topic)
	cancel()
	c := &g.counts
	c.mu.Lock()
	c.refreshing--
	if err == nil {
		e.remote = n
	}
	e.at = time.Now() // after a failure too: the next try waits countFresh
	e.done = nil
	c.mu.Unlock()
	close(done)
	if err != nil {
		g.warnCount(topic, err)
	}
}

// stop lets no refresh start any more; Shutdown calls it before it waits
// for the background goroutines.
func (c *countCache) stop() {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
}
