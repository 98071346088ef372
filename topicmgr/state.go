package topicmgr

import (
	"slices"
	"sort"
	"time"
)

// gateway is what the manager knows of one gateway node, by its stable node
// id. It outlives the gateway's sessions: when a connection drops without a
// goodbye, the counts stay for the lease, and a new session of the same id
// takes them over.
type gateway struct {
	id     string
	sess   *session         // the live session, or nil while the lease runs
	counts map[string]int64 // topic -> the gateway's local subscriber count, only > 0
	// pending collects the interest table a new session sends before its
	// SYNC; the table replaces counts at once at SYNC, so that other
	// gateways' Count never sees a half-sent table. nil outside a resync.
	pending map[string]int64
	lease   *time.Timer // runs while sess is nil
	gen     uint64      // bumped at every attach and detach; a lease timer of an old generation does nothing
}

// topic is the routing entry of one topic: the gateways with a positive
// count, and the sum of their counts.
type topic struct {
	total int64
	gws   []*gateway
}

// tables are the manager's routing state, guarded by Server.mu (see the lock
// order on Server).
type tables struct {
	gateways map[string]*gateway
	topics   map[string]*topic
}

func newTables() tables {
	return tables{gateways: make(map[string]*gateway), topics: make(map[string]*topic)}
}

// set records g's count for name and keeps the topic index in step.
func (t *tables) set(g *gateway, name string, n int64) {
	old := g.counts[name]
	if n == old {
		return
	}
	if n > 0 {
		g.counts[name] = n
	} else {
		delete(g.counts, name)
	}
	e := t.topics[name]
	if e == nil {
		e = &topic{}
		t.topics[name] = e
	}
	e.total += n - old
	switch {
	case old == 0:
		e.gws = append(e.gws, g)
	case n == 0:
		if i := slices.Index(e.gws, g); i >= 0 {
			last := len(e.gws) - 1
			e.gws[i] = e.gws[last]
			e.gws[last] = nil
			e.gws = e.gws[:last]
		}
	}
	if len(e.gws) == 0 {
		delete(t.topics, name)
	}
}

// replace makes table g's whole interest (the end of a resync).
func (t *tables) replace(g *gateway, table map[string]int64) {
	for name := range g.counts {
		if table[name] == 0 {
			t.set(g, name, 0)
		}
	}
	for name, n := range table {
		t.set(g, name, n)
	}
}

// remove drops g and all of its counts.
func (t *tables) remove(g *gateway) {
	for name := range g.counts {
		t.set(g, name, 0)
	}
	if g.lease != nil {
		g.lease.Stop()
		g.lease = nil
	}
	if t.gateways[g.id] == g {
		delete(t.gateways, g.id)
	}
}

// count is the number of subscribers of name on every gateway but except.
func (t *tables) count(name string, except *gateway) int64 {
	e := t.topics[name]
	if e == nil {
		return 0
	}
	n := e.total
	if except != nil {
		n -= except.counts[name]
	}
	return n
}

// topicNames returns the topics with subscribers, sorted.
func (t *tables) topicNames() []string {
	out := make([]string, 0, len(t.topics))
	for name := range t.topics {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}
