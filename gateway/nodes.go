package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/firetower-go/firetower/broker"
)

// DefaultNodeInfoInterval is how often a gateway tells the other nodes what
// it is and what it carries (OpNodeInfo commands through the broker). A node
// not heard from for nodeInfoExpiry intervals leaves the cluster view.
const DefaultNodeInfoInterval = 5 * time.Second

// nodeInfoExpiry is in intervals: one lost broadcast does not make a node
// vanish, three do.
const nodeInfoExpiry = 3

// NodeInfo describes one gateway node of the cluster.
type NodeInfo struct {
	ID        string    `json:"id"`
	Version   string    `json:"version,omitempty"`
	Broker    string    `json:"broker"`
	StartedAt time.Time `json:"startedAt"`
	// UpdatedAt is when the node made this description.
	UpdatedAt time.Time `json:"updatedAt"`
	Draining  bool      `json:"draining"`
	// Interval is how often the node sends its description; others forget
	// it after nodeInfoExpiry intervals without one.
	Interval time.Duration `json:"interval"`
	Stats    Stats         `json:"stats"`
	// BrokerError says why the node's broker cannot reach the other nodes
	// ("" when it can; see broker.Checker).
	BrokerError string `json:"brokerError,omitempty"`
	// Topics are the node's busiest topics: the TopTopics with the most
	// local subscribers and the TopTopics with the highest message rate.
	// Other topics of the node are not listed.
	Topics []TopicStat `json:"topics,omitempty"`
	// Self is true for the node that answers (not sent over the wire).
	Self bool `json:"self"`
}

// BrokerDescriber is implemented by brokers that can name themselves for the
// cluster view ("memory", "tm://10.0.0.1:6666", "redis://...").
type BrokerDescriber interface{ Describe() string }

// peers is the cluster view: the last description of every other node.
type peers struct {
	mu    sync.Mutex
	nodes map[string]peer
}

type peer struct {
	info NodeInfo
	seen time.Time // local receive time: clocks of other nodes may differ
}

// Info describes this node.
func (g *Gateway) Info() NodeInfo {
	g.mu.Lock()
	draining := g.draining
	g.mu.Unlock()
	desc := fmt.Sprintf("%T", g.broker)
	if d, ok := g.broker.(BrokerDescriber); ok {
		desc = d.Describe()
	}
	var brokerErr string
	if err := g.BrokerReady(); err != nil {
		brokerErr = err.Error()
	}
	now := time.Now()
	return NodeInfo{
		ID:          g.cfg.NodeID,
		Version:     g.cfg.Version,
		Broker:      desc,
		StartedAt:   g.started,
		UpdatedAt:   now,
		Draining:    draining,
		Interval:    g.cfg.NodeInfoInterval,
		Stats:       g.Stats(),
		BrokerError: brokerErr,
		Topics:      g.topics.sample(g.hub, now),
		Self:        true,
	}
}

// Nodes returns this node and every other node heard from recently, sorted
// by id. With the node-info broadcast disabled it returns this node only.
func (g *Gateway) Nodes() []NodeInfo {
	out := []NodeInfo{g.Info()}
	g.peers.mu.Lock()
	g.peers.pruneLocked(time.Now())
	for _, p := range g.peers.nodes {
		out = append(out, p.info)
	}
	g.peers.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// pruneLocked forgets the nodes not heard from for nodeInfoExpiry of their
// intervals. It runs with every description received and every broadcast
// of this node, so the view shrinks without anyone reading it.
func (ps *peers) pruneLocked(now time.Time) {
	for id, p := range ps.nodes {
		every := p.info.Interval
		if every <= 0 {
			every = DefaultNodeInfoInterval
		}
		if now.Sub(p.seen) > nodeInfoExpiry*every {
			delete(ps.nodes, id)
		}
	}
}

// recordPeer stores another node's description.
func (g *Gateway) recordPeer(origin string, data []byte) {
	var info NodeInfo
	if err := json.Unmarshal(data, &info); err != nil || info.ID != origin {
		g.log.Warn("ignoring a bad node description", "origin", origin, "err", err)
		return
	}
	info.Self = false
	g.peers.mu.Lock()
	if g.peers.nodes == nil {
		g.peers.nodes = make(map[string]peer)
	}
	now := time.Now()
	g.peers.pruneLocked(now)
	g.peers.nodes[origin] = peer{info: info, seen: now}
	g.peers.mu.Unlock()
}

// announceLoop broadcasts this node's description every NodeInfoInterval
// until stop is closed. It is the gateway's only background goroutine.
func (g *Gateway) announceLoop(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	defer g.recoverPanic("node-info announcer", nil)
	ticker := time.NewTicker(g.cfg.NodeInfoInterval)
	defer ticker.Stop()
	for {
		g.announce()
		g.peers.mu.Lock()
		g.peers.pruneLocked(time.Now())
		g.peers.mu.Unlock()
		select {
		case <-ticker.C:
		case <-stop:
			return
		}
	}
}

// announce sends this node's description to the others. A failure is
// logged at debug level: the broker's own health is reported elsewhere, and
// an outage would otherwise log every few seconds.
func (g *Gateway) announce() {
	info := g.Info()
	info.Self = false
	data, err := json.Marshal(info)
	if err != nil {
		return
	}
	m, err := broker.Command{Op: broker.OpNodeInfo, Data: data}.Message(g.ids.next(), g.cfg.NodeID)
	if err != nil {
		return
	}
	if err := g.send(context.Background(), m, false); err != nil {
		g.log.Debug("node-info broadcast failed", "err", err)
	}
}

// stopAnnouncer stops the broadcast and waits for it; safe to call twice.
func (g *Gateway) stopAnnouncer() {
	if g.announceStop == nil {
		return
	}
	g.stopOnce.Do(func() { close(g.announceStop) })
	<-g.announceDone
}
