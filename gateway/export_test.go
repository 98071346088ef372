package gateway

import (
	"context"
	"time"

	"github.com/firetower-go/firetower/protocol"
)

// SetDefaultTransport sets the Transport of configs that name none, for
// running the whole test suite on one transport (FIRETOWER_TEST_TRANSPORT).
func SetDefaultTransport(tr Transport) { defaultTransport = tr }

// AddBareTowers registers one running tower per ids entry ({client id,
// user id}) with no socket, reader, writer or poller behind it, as Run
// would after OnConnect: the push and kick-out benchmarks need more
// connections than the process may open (the fd limit). Frames for them
// stay queued (DiscardQueued empties the queue). remove unregisters every
// tower registered; Close waits for that.
func (g *Gateway) AddBareTowers(ids [][2]string) (towers []*FireTower, remove func(), err error) {
	remove = func() {
		for _, t := range towers {
			t.closeWith(protocol.CloseGoingAway, "", false)
			g.unregister(t)
		}
		towers = nil
	}
	for _, id := range ids {
		t := &FireTower{
			ClientId:   id[0],
			UserId:     id[1],
			gw:         g,
			version:    protocol.V1,
			startTime:  time.Now(),
			remoteAddr: "bare",
			ip:         "bare",
			topics:     make(map[string]struct{}, 1),
			closing:    make(chan struct{}),
		}
		t.out.init(t)
		t.tr = bare{}
		t.syncIdentity()
		if err := g.register(t); err != nil {
			remove()
			return nil, func() {}, err
		}
		towers = append(towers, t)
	}
	return towers, remove, nil
}

// DiscardQueued empties t's outbound queue and returns how many frames it
// held.
func (t *FireTower) DiscardQueued() int {
	t.out.mu.Lock()
	defer t.out.mu.Unlock()
	n := len(t.out.queue)
	clear(t.out.queue)
	t.out.queue, t.out.bytes = t.out.queue[:0], 0
	return n
}

// IndexLen returns the number of towers in the user index and in the
// client index (towers with an empty id are in neither).
func (g *Gateway) IndexLen() (users, clients int) {
	return g.index.len(slotUser), g.index.len(slotClient)
}

// CheckClaim runs one background check of the gateway's node number claim
// (claim.go) now, as if its interval had passed.
func (g *Gateway) CheckClaim() {
	g.checkClaim(context.Background(), &claimState{confirmed: true})
}

// PeerCount returns how many other nodes the cluster view holds, without
// pruning it as Nodes does.
func (g *Gateway) PeerCount() int {
	g.peers.mu.Lock()
	defer g.peers.mu.Unlock()
	return len(g.peers.nodes)
}

// bare is the transport of AddBareTowers' towers: nothing moves.
type bare struct{}

func (bare) serve(bool)             {}
func (bare) refuse([]byte)          {}
func (bare) wake()                  {}
func (bare) cutWrite(time.Duration) {}
func (bare) abort()                 {}
func (bare) resumeReading()         {}
func (bare) finished()              {}
func (bare) executor() executor     { return newRunLoop() }
