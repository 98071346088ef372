package gateway

import (
	"sync/atomic"
	"time"
)

// idEpoch is the snowflake epoch (2024-01-01 UTC); 41 bits of milliseconds
// from it last until 2093.
var idEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()

// idGenerator makes unique, increasing 63-bit ids: 41 bits of milliseconds,
// 10 bits of node (the node number claimed in claim.go), 12 bits of
// sequence. When more than 4096 ids are taken in one millisecond it
// borrows the next millisecond instead of waiting, so ids stay unique and
// increasing. The node number may change while ids are made (a claim
// found in conflict is replaced): an id has one or the other, never a mix.
type idGenerator struct {
	node  atomic.Uint64
	state atomic.Uint64 // milliseconds<<12 | sequence of the last id
}

func newIDGenerator(node int64) *idGenerator {
	g := &idGenerator{}
	g.setNode(uint64(node))
	return g
}

func (g *idGenerator) setNode(n uint64) { g.node.Store(n & 0x3ff) }

func (g *idGenerator) nodeNumber() uint64 { return g.node.Load() }

func (g *idGenerator) next() uint64 {
	for {
		old := g.state.Load()
		now := uint64(time.Now().UnixMilli()-idEpoch) << 12
		next := old + 1
		if now > old {
			next = now
		}
		if g.state.CompareAndSwap(old, next) {
			return (next>>12)<<22 | g.node.Load()<<12 | next&0xfff
		}
	}
}
