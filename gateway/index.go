package gateway

import (
	"slices"
	"sync"
)

// The user and client indexes: the running towers of this node by UserId
// and by ClientId, so that PushUser, PushClient, the kick-outs and
// FindConnections copy only the matching towers instead of every
// connection under Gateway.mu.
//
// A tower is in the sets of its synced identity (the snapshot of
// FireTower.identity, not the plain fields) from register to unregister,
// and of that identity only: syncIdentity moves it when the application
// changed ClientId or UserId in a callback. An empty id is not indexed (it
// matches nothing). Lookups check each tower's identity again, so a tower
// moved after the copy is not acted on under its old id.
//
// Lock order: FireTower.index.mu (one tower's own index changes) -> index
// shard lock. Both are leaves: nothing is called out under them, and they
// may be taken under Gateway.mu (register). No tower lock is ever taken
// under a shard lock.

// indexShards spreads the keys of one index over this many locks, so that
// registrations and lookups of different ids rarely meet.
const indexShards = 64

// The two indexes; a tower has its position in each at the same slot of
// its towerIndexEntry.pos.
const (
	slotUser = iota
	slotClient
	indexSlots
)

// towerIndexes are the gateway's user and client indexes. The zero value is
// empty and ready.
type towerIndexes [indexSlots]towerIndex

// towerIndex maps a key (a user id or a client id) to the running towers
// with that key.
type towerIndex struct {
	shards [indexShards]indexShard
}

type indexShard struct {
	mu sync.Mutex
	// sets holds each key's towers in no order; a tower's position in its
	// key's slice is in its index.pos[slot], so removal is a swap with the
	// last one. Most keys have one tower: a slice costs far less memory
	// per idle connection than a set (map) per key.
	sets map[string][]*FireTower
	_    [48]byte // one shard per cache line
}

// towerIndexEntry is a tower's part of the indexes.
type towerIndexEntry struct {
	mu  sync.Mutex // serialises register, unregister and identity moves of this tower
	in  bool       // registered: in the sets of its synced identity; guarded by mu
	pos [indexSlots]int
	// pos[s] is guarded by the shard lock of the tower's key in index s.
}

func (x *towerIndexes) shard(slot int, key string) *indexShard {
	// FNV-1a: no seed, no allocation. The ids are the application's; a
	// skewed set of them crowds some shards, and a lookup is still one
	// map access.
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return &x[slot].shards[h%indexShards]
}

func (x *towerIndexes) add(slot int, key string, t *FireTower) {
	if key == "" {
		return
	}
	s := x.shard(slot, key)
	s.mu.Lock()
	if s.sets == nil {
		s.sets = make(map[string][]*FireTower)
	}
	set := s.sets[key]
	t.index.pos[slot] = len(set)
	s.sets[key] = append(set, t)
	s.mu.Unlock()
}

func (x *towerIndexes) remove(slot int, key string, t *FireTower) {
	if key == "" {
		return
	}
	s := x.shard(slot, key)
	s.mu.Lock()
	defer s.mu.Unlock()
	set := s.sets[key]
	i := t.index.pos[slot]
	if i >= len(set) || set[i] != t {
		// A bug, not a condition: the tower was indexed under another key.
		panic("gateway: tower index out of sync")
	}
	last := len(set) - 1
	set[i] = set[last]
	set[i].index.pos[slot] = i
	set[last] = nil
	set = set[:last]
	switch {
	case len(set) == 0:
		delete(s.sets, key)
	case cap(set) > 16 && len(set) < cap(set)/4:
		s.sets[key] = slices.Clip(slices.Clone(set)) // a crowd left: give the memory back
	default:
		s.sets[key] = set
	}
}

// lookup returns a copy of key's towers.
func (x *towerIndexes) lookup(slot int, key string) []*FireTower {
	if key == "" {
		return nil
	}
	s := x.shard(slot, key)
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sets[key])
}

// len returns the number of towers in index slot.
func (x *towerIndexes) len(slot int) int {
	n := 0
	for i := range x[slot].shards {
		s := &x[slot].shards[i]
		s.mu.Lock()
		for _, set := range s.sets {
			n += len(set)
		}
		s.mu.Unlock()
	}
	return n
}

// indexTower puts t in the indexes under its synced identity (register).
func (g *Gateway) indexTower(t *FireTower) {
	t.index.mu.Lock()
	defer t.index.mu.Unlock()
	if t.index.in {
		return
	}
	t.index.in = true
	id := t.identity()
	g.index.add(slotUser, id.user, t)
	g.index.add(slotClient, id.client, t)
}

// unindexTower takes t out of the indexes (unregister).
func (g *Gateway) unindexTower(t *FireTower) {
	t.index.mu.Lock()
	defer t.index.mu.Unlock()
	if !t.index.in {
		return
	}
	t.index.in = false
	id := t.identity()
	g.index.remove(slotUser, id.user, t)
	g.index.remove(slotClient, id.client, t)
}

// setIdentity publishes id as t's synced identity and moves t in the
// indexes if it is registered. A concurrent lookup of the old or the new
// id may miss t during the move; it is concurrent with the change, so
// either answer is right.
func (g *Gateway) setIdentity(t *FireTower, id *identity) {
	t.index.mu.Lock()
	defer t.index.mu.Unlock()
	old := t.identity()
	if !t.index.in {
		t.ident.Store(id)
		return
	}
	if old.user != id.user {
		g.index.remove(slotUser, old.user, t)
	}
	if old.client != id.client {
		g.index.remove(slotClient, old.client, t)
	}
	t.ident.Store(id)
	if old.user != id.user {
		g.index.add(slotUser, id.user, t)
	}
	if old.client != id.client {
		g.index.add(slotClient, id.client, t)
	}
}

// towersOfUser returns the running towers whose synced UserId is user.
func (g *Gateway) towersOfUser(user string) []*FireTower {
	ts := g.index.lookup(slotUser, user)
	return slices.DeleteFunc(ts, func(t *FireTower) bool { return t.identity().user != user })
}

// towersOfClient returns the running towers whose synced ClientId is client.
func (g *Gateway) towersOfClient(client string) []*FireTower {
	ts := g.index.lookup(slotClient, client)
	return slices.DeleteFunc(ts, func(t *FireTower) bool { return t.identity().client != client })
}
