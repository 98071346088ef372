package gateway

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// checkIndex fails unless every key's lookup is exactly the registered
// towers whose synced identity has that key.
func checkIndex(t *testing.T, g *Gateway, towers []*FireTower, registered func(*FireTower) bool) {
	t.Helper()
	want := [indexSlots]map[string][]*FireTower{{}, {}}
	n := [indexSlots]int{}
	for _, tw := range towers {
		if !registered(tw) {
			continue
		}
		id := tw.identity()
		for slot, key := range [indexSlots]string{slotUser: id.user, slotClient: id.client} {
			if key != "" {
				want[slot][key] = append(want[slot][key], tw)
				n[slot]++
			}
		}
	}
	for slot := range indexSlots {
		if got := g.index.len(slot); got != n[slot] {
			t.Fatalf("index %d holds %d towers, want %d", slot, got, n[slot])
		}
		for key, ws := range want[slot] {
			if got := g.index.lookup(slot, key); !sameTowers(got, ws) {
				t.Fatalf("index %d, key %q: %d towers, want %d", slot, key, len(g.index.lookup(slot, key)), len(ws))
			}
		}
	}
}

// sameTowers reports whether a and b hold the same towers, each once.
func sameTowers(a, b []*FireTower) bool {
	if len(a) != len(b) {
		return false
	}
	set := make(map[*FireTower]bool, len(a))
	for _, t := range a {
		set[t] = true
	}
	return len(set) == len(a) && !slices.ContainsFunc(b, func(t *FireTower) bool { return !set[t] })
}

// TestTowerIndexMoves moves towers between ids at random, registered or
// not, and checks the index against the identities after every step.
func TestTowerIndexMoves(t *testing.T) {
	g := &Gateway{}
	towers := make([]*FireTower, 40)
	for i := range towers {
		towers[i] = &FireTower{gw: g}
		towers[i].syncIdentity()
	}
	in := func(tw *FireTower) bool { return tw.index.in }
	r := rand.New(rand.NewPCG(1, 2))
	key := func(prefix string) string {
		if k := r.IntN(6); k > 0 {
			return fmt.Sprintf("%s%d", prefix, k)
		}
		return "" // not indexed
	}
	for range 2000 {
		tw := towers[r.IntN(len(towers))]
		switch r.IntN(4) {
		case 0:
			g.indexTower(tw)
		case 1:
			g.unindexTower(tw)
		default:
			tw.UserId, tw.ClientId = key("u"), key("c")
			tw.syncIdentity()
		}
		checkIndex(t, g, towers, in)
	}
	for _, tw := range towers {
		g.unindexTower(tw)
	}
	if u, c := g.index.len(slotUser), g.index.len(slotClient); u+c != 0 {
		t.Fatalf("%d user and %d client entries left", u, c)
	}
}

// TestTowerIndexConcurrent moves towers on their own goroutines (as Run's
// goroutines do) while others look ids up, under -race: a tower that keeps
// its id is found by every lookup, exactly once, whatever moves around it
// in the same sets; and the index ends as the identities say.
func TestTowerIndexConcurrent(t *testing.T) {
	g := &Gateway{}
	const owners, per = 4, 25
	var all, stable []*FireTower
	var owned sync.WaitGroup
	start := make(chan struct{})
	for o := range owners {
		towers := make([]*FireTower, per)
		for i := range towers {
			towers[i] = &FireTower{gw: g, ClientId: fmt.Sprintf("c%d-%d", o, i), UserId: fmt.Sprintf("u%d", i%5)}
			towers[i].syncIdentity()
			g.indexTower(towers[i])
		}
		all = append(all, towers...)
		stable = append(stable, towers[0]) // never moved
		owned.Add(1)
		go func(seed uint64) {
			defer owned.Done()
			<-start
			r := rand.New(rand.NewPCG(seed, 0))
			for range 500 {
				tw := towers[1+r.IntN(per-1)]
				tw.UserId = fmt.Sprintf("u%d", r.IntN(5))
				tw.syncIdentity()
				if r.IntN(10) == 0 {
					g.unindexTower(tw)
					g.indexTower(tw)
				}
			}
		}(uint64(o))
	}
	done := make(chan struct{})
	var looked sync.WaitGroup
	for range 2 {
		looked.Add(1)
		go func() {
			defer looked.Done()
			<-start
			for {
				select {
				case <-done:
					return
				default:
				}
				for _, s := range stable {
					id := s.identity()
					if n := countOf(g.towersOfUser(id.user), s); n != 1 {
						t.Errorf("user lookup found a stable tower %d times", n)
						return
					}
					if n := countOf(g.towersOfClient(id.client), s); n != 1 {
						t.Errorf("client lookup found a stable tower %d times", n)
						return
					}
				}
			}
		}()
	}
	close(start)
	owned.Wait()
	close(done)
	looked.Wait()
	checkIndex(t, g, all, func(*FireTower) bool { return true })
	for _, tw := range all {
		g.unindexTower(tw)
	}
	if u, c := g.index.len(slotUser), g.index.len(slotClient); u+c != 0 {
		t.Fatalf("%d user and %d client entries left", u, c)
	}
}

func countOf(ts []*FireTower, t *FireTower) int {
	n := 0
	for _, x := range ts {
		if x == t {
			n++
		}
	}
	return n
}
