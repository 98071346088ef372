package nats

import (
	"context"
	"encoding/binary"
	"strconv"
	"strings"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
)

// Membership messages on the nodes subject: kind, the sender's session (random
// per Start) and node id.
//
//	offset 0: kind (1 hello, 2 heartbeat, 3 goodbye); 1..8: session, big
//	endian; 9...: node id
const (
	kindHello byte = 1
	kindBeat  byte = 2
	kindBye   byte = 3
)

// missedBeats is how many heartbeats a node may miss before it is gone.
const missedBeats = 3

// peers is what a node knows of the others, and its counts waiting for
// their answers. One mutex guards both, so that a goodbye and the start of
// a count never cross: a count waits only for nodes that had not left when
// it began, and a node that leaves during a count is not waited for.
type peers struct {
	mu      sync.Mutex
	nodes   map[string]*member
	next    uint64
	pending map[uint64]*countCall
}

type member struct {
	session uint64
	seen    time.Time
	// suspect: the node missed a count; Count does not wait for it again
	// until it is heard of.
	suspect bool
}

type countCall struct {
	waiting  map[string]bool // nodes whose answer is still expected
	answered map[string]bool
	sum      int64
	done     chan struct{} // closed when waiting is empty
}

func newPeers() peers {
	return peers{nodes: make(map[string]*member), pending: make(map[uint64]*countCall)}
}

// saw records a sign of life of node in session.
func (p *peers) saw(node string, session uint64, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nodes[node] = &member{session: session, seen: now}
}

// left removes node if it is still in session (a goodbye of an earlier run
// of the same node id must not remove its successor), and stops the counts
// in progress from waiting for it.
func (p *peers) left(node string, session uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m, ok := p.nodes[node]; !ok || m.session != session {
		return
	}
	delete(p.nodes, node)
	for _, call := range p.pending {
		call.stopWaiting(node)
	}
}

// aliveLocked returns the nodes heard of within missedBeats heartbeats and
// not suspect, and forgets those not heard of for longer.
func (p *peers) aliveLocked(now time.Time, heartbeat time.Duration) []string {
	var out []string
	for id, m := range p.nodes {
		switch {
		case now.Sub(m.seen) > missedBeats*heartbeat:
			delete(p.nodes, id)
		case !m.suspect:
			out = append(out, id)
		}
	}
	return out
}

func (p *peers) alive(now time.Time, heartbeat time.Duration) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.aliveLocked(now, heartbeat)
}

// begin registers a count that waits for the live nodes; call.done is
// closed at once if there are none.
func (p *peers) begin(now time.Time, heartbeat time.Duration) (uint64, *countCall) {
	p.mu.Lock()
	defer p.mu.Unlock()
	call := &countCall{waiting: make(map[string]bool), answered: make(map[string]bool), done: make(chan struct{})}
	for _, n := range p.aliveLocked(now, heartbeat) {
		call.waiting[n] = true
	}
	if len(call.waiting) == 0 {
		close(call.done)
	}
	p.next++
	p.pending[p.next] = call
	return p.next, call
}

func (c *countCall) stopWaiting(node string) {
	if c.waiting[node] {
		delete(c.waiting, node)
		if len(c.waiting) == 0 {
			close(c.done)
		}
	}
}

// answer adds a node's count to call id. An answer from a node the caller
// did not know of is a live node too, and is counted.
func (p *peers) answer(id uint64, node string, n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	call, ok := p.pending[id]
	if !ok || call.answered[node] {
		return
	}
	call.answered[node] = true
	call.sum += n
	call.stopWaiting(node)
}

// end removes call id and returns its sum and the nodes that did not
// answer, which become suspect.
func (p *peers) end(id uint64) (int64, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	call := p.pending[id]
	delete(p.pending, id)
	var missing []string
	for n := range call.waiting {
		missing = append(missing, n)
		if m, ok := p.nodes[n]; ok {
			m.suspect = true
		}
	}
	return call.sum, missing
}

// announce publishes a membership message.
func (b *Broker) announce(kind byte) {
	b.mu.Lock()
	nc := b.nc
	b.mu.Unlock()
	if nc != nil {
		b.announceOn(nc, kind)
	}
}

// announceOn publishes a membership message on nc, which Start may not
// have recorded yet.
func (b *Broker) announceOn(nc *natsgo.Conn, kind byte) {
	b.mu.Lock()
	node, session := b.node, b.session
	b.mu.Unlock()
	msg := make([]byte, 9, 9+len(node))
	msg[0] = kind
	binary.BigEndian.PutUint64(msg[1:], session)
	msg = append(msg, node...)
	_ = nc.Publish(b.subj.nodes, msg) // a lost heartbeat is made up by the next
}

// onMember handles a membership message from another node. A hello is
// answered with a heartbeat, so that a new node learns of the others at
// once instead of after a heartbeat interval.
func (b *Broker) onMember(msg *natsgo.Msg) {
	if len(msg.Data) < 10 {
		b.stats.malformed.Add(1)
		return
	}
	kind, session, node := msg.Data[0], binary.BigEndian.Uint64(msg.Data[1:9]), string(msg.Data[9:])
	if node == b.node {
		return
	}
	switch kind {
	case kindHello:
		b.peers.saw(node, session, time.Now())
		b.announce(kindBeat)
	case kindBeat:
		b.peers.saw(node, session, time.Now())
	case kindBye:
		b.peers.left(node, session)
	}
}

// Count implements broker.Broker: it asks every other node for its count of
// topic and sums the answers, waiting for the live nodes it knows of, at
// most Config.CountTimeout; a node that does not answer in time is left
// out, and not waited for again until it is heard of. It fails at once
// while the connection is down.
func (b *Broker) Count(ctx context.Context, topic string) (int64, error) {
	nc, err := b.conn()
	if err != nil {
		return 0, err
	}
	if !nc.IsConnected() {
		return 0, b.unavailable("count", errNotConnected)
	}
	// A node not yet heard of is not waited for; its answer counts if it
	// comes while the count waits for the others.
	id, call := b.peers.begin(time.Now(), b.cfg.Heartbeat)
	req := &natsgo.Msg{Subject: b.subj.count, Reply: b.inbox + strconv.FormatUint(id, 10), Data: []byte(topic)}
	if err := nc.PublishMsg(req); err != nil {
		b.peers.end(id)
		return 0, b.unavailable("count", err)
	}
	timer := time.NewTimer(b.cfg.CountTimeout)
	defer timer.Stop()
	select {
	case <-call.done:
	case <-timer.C:
	case <-ctx.Done():
		b.peers.end(id)
		return 0, b.unavailable("count", ctx.Err())
	case <-b.stop:
		b.peers.end(id)
		return 0, b.unavailable("count", errNotConnected)
	}
	sum, missing := b.peers.end(id)
	if len(missing) > 0 {
		b.log.Debug("nodes did not answer a count in time; left out", "nodes", missing, "timeout", b.cfg.CountTimeout)
	}
	return sum, nil
}

// onCountRequest answers a count request with this node's own count.
//
//	answer: count (8 bytes, big endian), then the node id
func (b *Broker) onCountRequest(msg *natsgo.Msg) {
	if msg.Reply == "" {
		return
	}
	b.mu.Lock()
	n, node, nc := b.interest[string(msg.Data)], b.node, b.nc
	b.mu.Unlock()
	if nc == nil {
		return
	}
	out := make([]byte, 8, 8+len(node))
	binary.BigEndian.PutUint64(out, uint64(n))
	_ = nc.Publish(msg.Reply, append(out, node...))
}

// onCountReply records another node's answer to one of this node's counts.
func (b *Broker) onCountReply(msg *natsgo.Msg) {
	idText, ok := strings.CutPrefix(msg.Subject, b.inbox)
	id, err := strconv.ParseUint(idText, 10, 64)
	if !ok || err != nil || len(msg.Data) < 8 {
		b.stats.malformed.Add(1)
		return
	}
	node := string(msg.Data[8:])
	if node == b.node {
		return
	}
	b.peers.answer(id, node, int64(binary.BigEndian.Uint64(msg.Data)))
}
