package dashboard

import (
	"cmp"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/firetower-go/firetower/broker/tm"
	"github.com/firetower-go/firetower/gateway"
)

// topicsShown is how many topics the snapshot lists by subscribers, and
// as many by message rate.
const topicsShown = 20

// Figures are a node's (or the cluster's) connection count and per-second
// rates over one sampling period.
type Figures struct {
	Connections int64   `json:"connections"`
	Connects    float64 `json:"connects"`
	Disconnects float64 `json:"disconnects"`
	MessagesIn  float64 `json:"messagesIn"`
	MessagesOut float64 `json:"messagesOut"`
	BytesIn     float64 `json:"bytesIn"`
	BytesOut    float64 `json:"bytesOut"`
	// Dropped counts slow-consumer and read-timeout drops.
	Dropped float64 `json:"dropped"`
}

// Sample is one point of the charts.
type Sample struct {
	Time int64   `json:"t"` // Unix milliseconds
	Node Figures `json:"node"`
	// Cluster sums every node of the view: this node's last period and
	// the other nodes' rates between their last two broadcasts.
	Cluster Figures `json:"cluster"`
}

// NodeView is a node of the cluster overview.
type NodeView struct {
	gateway.NodeInfo
	// State is "ready", "draining", "broker-down" (its broker cannot
	// reach the other nodes) or "stale" (no broadcast for two intervals).
	State  string  `json:"state"`
	Uptime float64 `json:"uptime"` // seconds
	// Age is how old the figures are, in seconds (0 for this node).
	Age   float64 `json:"age"`
	Rates Figures `json:"rates"`
}

// ManagerView is the connection of this node's broker to a topic manager.
type ManagerView struct {
	Key       string `json:"key"`
	Addr      string `json:"addr"`
	Up        bool   `json:"up"`
	ManagerID string `json:"managerId,omitempty"`
	Epoch     uint64 `json:"epoch,omitempty"`
	Connects  int64  `json:"connects"`
}

// TopicView is a topic of the cluster's top lists, merged from the top
// topics every node broadcasts (gateway.NodeInfo.Topics).
type TopicView struct {
	Topic string `json:"topic"`
	// Subscribers sums the nodes that list the topic: a lower bound when a
	// node has it but not among its top topics.
	Subscribers int64 `json:"subscribers"`
	// Rate is the highest message rate a node reports: every node with
	// subscribers receives every message of the topic.
	Rate  float64  `json:"rate"`
	Nodes []string `json:"nodes"` // the nodes that list it
}

// Snapshot is what the page gets every interval.
type Snapshot struct {
	Time     time.Time     `json:"time"`
	Self     string        `json:"self"`
	Interval int64         `json:"interval"` // milliseconds
	Nodes    []NodeView    `json:"nodes"`
	Managers []ManagerView `json:"managers,omitempty"`
	Sample   Sample        `json:"sample"`
	// BySubscribers and ByRate are the cluster's busiest topics.
	BySubscribers []TopicView `json:"bySubscribers"`
	ByRate        []TopicView `json:"byRate"`
}

// rateState is the sampler's memory of the previous figures.
type rateState struct {
	at    time.Time
	prev  gateway.Stats
	peers map[string]peerState
	last  *Snapshot // the last snapshot built
}

type peerState struct {
	at    time.Time // the peer's UpdatedAt
	stats gateway.Stats
	rates Figures
}

// rates turns two counter readings secs apart into Figures.
func rates(cur, prev gateway.Stats, secs float64) Figures {
	per := func(now, before int64) float64 {
		if secs <= 0 || now < before {
			return 0
		}
		return float64(now-before) / secs
	}
	return Figures{
		Connections: cur.Connections,
		Connects:    per(cur.ConnectsTotal, prev.ConnectsTotal),
		Disconnects: per(cur.DisconnectsTotal, prev.DisconnectsTotal),
		MessagesIn:  per(cur.FramesIn, prev.FramesIn),
		MessagesOut: per(cur.FramesOut, prev.FramesOut),
		BytesIn:     per(cur.BytesIn, prev.BytesIn),
		BytesOut:    per(cur.BytesOut, prev.BytesOut),
		Dropped:     per(cur.Dropped+cur.ReadTimeouts, prev.Dropped+prev.ReadTimeouts),
	}
}

func (f *Figures) add(o Figures) {
	f.Connections += o.Connections
	f.Connects += o.Connects
	f.Disconnects += o.Disconnects
	f.MessagesIn += o.MessagesIn
	f.MessagesOut += o.MessagesOut
	f.BytesIn += o.BytesIn
	f.BytesOut += o.BytesOut
	f.Dropped += o.Dropped
}

// sample reads the gateway, records a chart point, builds the snapshot and
// wakes the streams. Calls are serialised by sampleMu.
func (d *Dashboard) sample(now time.Time) *Snapshot {
	d.sampleMu.Lock()
	defer d.sampleMu.Unlock()
	r := &d.rates
	nodes := d.g.Nodes()
	snap := &Snapshot{Time: now, Self: d.g.NodeID(), Interval: d.cfg.Interval.Milliseconds()}
	seen := make(map[string]bool, len(nodes))
	var cluster Figures
	for _, n := range nodes {
		v := NodeView{NodeInfo: n, Uptime: now.Sub(n.StartedAt).Seconds()}
		v.Topics = nil // merged below; the page does not need them per node
		if n.Self {
			if !r.at.IsZero() {
				v.Rates = rates(n.Stats, r.prev, now.Sub(r.at).Seconds())
			} else {
				v.Rates = rates(n.Stats, n.Stats, 0)
			}
			r.at, r.prev = now, n.Stats
			snap.Sample.Node = v.Rates
		} else {
			seen[n.ID] = true
			v.Age = max(0, now.Sub(n.UpdatedAt).Seconds())
			p, ok := r.peers[n.ID]
			switch {
			case !ok:
				p = peerState{rates: rates(n.Stats, n.Stats, 0)}
			case n.UpdatedAt.After(p.at):
				p.rates = rates(n.Stats, p.stats, n.UpdatedAt.Sub(p.at).Seconds())
			}
			p.at, p.stats = n.UpdatedAt, n.Stats
			if r.peers == nil {
				r.peers = make(map[string]peerState)
			}
			r.peers[n.ID] = p
			v.Rates = p.rates
		}
		v.State = nodeState(n, v.Age)
		cluster.add(v.Rates)
		snap.Nodes = append(snap.Nodes, v)
	}
	for id := range r.peers {
		if !seen[id] {
			delete(r.peers, id)
		}
	}
	snap.Sample.Time = now.UnixMilli()
	snap.Sample.Cluster = cluster
	snap.BySubscribers, snap.ByRate = mergeTopics(nodes)
	if ml, ok := d.g.Broker().(interface{ Managers() []tm.ManagerState }); ok {
		for _, m := range ml.Managers() {
			snap.Managers = append(snap.Managers, ManagerView{
				Key: m.Key, Addr: m.Addr, Up: m.Up, ManagerID: m.ManagerID, Epoch: m.Epoch, Connects: m.Connects,
			})
		}
	}
	r.last = snap

	var event []byte
	d.mu.Lock()
	streams := d.streams
	d.mu.Unlock()
	if streams > 0 {
		event = encodeEvent("snapshot", snap)
	}
	d.mu.Lock()
	d.recordLocked(snap.Sample)
	d.snapshot = event
	close(d.tick)
	d.tick = make(chan struct{})
	d.mu.Unlock()
	return snap
}

// lastSnapshot returns the sampler's last snapshot, or a fresh one.
func (d *Dashboard) lastSnapshot() *Snapshot {
	d.sampleMu.Lock()
	last := d.rates.last
	d.sampleMu.Unlock()
	if last != nil {
		return last
	}
	return d.sample(time.Now())
}

func nodeState(n gateway.NodeInfo, age float64) string {
	every := n.Interval
	if every <= 0 {
		every = gateway.DefaultNodeInfoInterval
	}
	switch {
	case n.Draining:
		return "draining"
	case n.BrokerError != "":
		return "broker-down"
	case !n.Self && age > 2*every.Seconds():
		return "stale"
	}
	return "ready"
}

// mergeTopics merges the nodes' top topics into the cluster's.
func mergeTopics(nodes []gateway.NodeInfo) (bySubs, byRate []TopicView) {
	all := mergedTopics(nodes)
	bySubs = slices.Clone(all)
	slices.SortFunc(bySubs, func(a, b TopicView) int {
		return cmp.Or(cmp.Compare(b.Subscribers, a.Subscribers), strings.Compare(a.Topic, b.Topic))
	})
	if len(bySubs) > topicsShown {
		bySubs = bySubs[:topicsShown]
	}
	for _, t := range all {
		if t.Rate > 0 {
			byRate = append(byRate, t)
		}
	}
	slices.SortFunc(byRate, func(a, b TopicView) int {
		return cmp.Or(cmp.Compare(b.Rate, a.Rate), strings.Compare(a.Topic, b.Topic))
	})
	if len(byRate) > topicsShown {
		byRate = byRate[:topicsShown]
	}
	return bySubs, byRate
}

// mergedTopics returns every topic some node lists, merged, in no order.
func mergedTopics(nodes []gateway.NodeInfo) []TopicView {
	idx := map[string]int{}
	var all []TopicView
	for _, n := range nodes {
		for _, st := range n.Topics {
			i, ok := idx[st.Topic]
			if !ok {
				i = len(all)
				idx[st.Topic] = i
				all = append(all, TopicView{Topic: st.Topic})
			}
			all[i].Subscribers += st.Subscribers
			all[i].Rate = max(all[i].Rate, st.Rate)
			all[i].Nodes = append(all[i].Nodes, n.ID)
		}
	}
	return all
}

// encodeEvent returns one Server-Sent Event. JSON holds no raw newline, so
// the data fits one "data:" line.
func encodeEvent(name string, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(`{}`)
	}
	out := make([]byte, 0, len(name)+len(b)+16)
	out = append(out, "event: "...)
	out = append(out, name...)
	out = append(out, "\ndata: "...)
	out = append(out, b...)
	return append(out, "\n\n"...)
}
