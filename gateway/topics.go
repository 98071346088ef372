package gateway

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/firetower-go/firetower/internal/hub"
)

// TopTopics is how many topics a node lists in its description (NodeInfo)
// by local subscribers, and as many again by message rate.
const TopTopics = 20

// topicSampleEvery is the shortest period over which topic message rates
// are measured: Info samples the topics at most this often (the dashboard
// asks every second, the node-info broadcast every NodeInfoInterval).
const topicSampleEvery = time.Second

// TopicStat is one topic's figures on one node.
type TopicStat struct {
	Topic string `json:"topic"`
	// Subscribers is the number of local subscribers (connections and
	// listeners).
	Subscribers int64 `json:"subscribers"`
	// Messages counts the messages fanned out to the local subscribers
	// since the topic got its first one here (local publishes and messages
	// from other nodes alike).
	Messages int64 `json:"messages"`
	// Rate is Messages per second over the last sampling period (0 before
	// the second sample).
	Rate float64 `json:"rate"`
}

// topicTracker turns the hub's per-topic message counters into rates and
// keeps the node's top topics. It holds a counter per local topic: memory
// and one pass over the topics per sample grow with the topic count.
//
// Lock order: topicTracker.mu -> hub shard locks.
type topicTracker struct {
	mu    sync.Mutex
	at    time.Time        // time of the last sample
	last  map[string]int64 // each topic's message counter at the last sample
	spare map[string]int64 // the map before last, cleared and refilled next time
	top   []TopicStat      // the top topics at the last sample

	rates atomic.Pointer[map[string]float64] // non-zero rates at the last sample; replaced, never modified
}

// sample returns the top topics, sampling the hub again if the last sample
// is older than topicSampleEvery.
func (tr *topicTracker) sample(h *hub.Hub[subscriber], now time.Time) []TopicStat {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if !tr.at.IsZero() && now.Sub(tr.at) < topicSampleEvery {
		return slices.Clone(tr.top)
	}
	secs := now.Sub(tr.at).Seconds()
	first := tr.at.IsZero()
	last := tr.spare // reused: no new map of every topic each second
	if last == nil {
		last = make(map[string]int64, len(tr.last))
	}
	clear(last)
	rates := make(map[string]float64)
	bySubs, byRate := topN{n: TopTopics}, topN{n: TopTopics}
	h.RangeStats(func(topic string, count, published int64) bool {
		last[topic] = published
		st := TopicStat{Topic: topic, Subscribers: count, Messages: published}
		if !first {
			d := published
			if prev, ok := tr.last[topic]; ok && prev <= published {
				d -= prev // else the topic is new, or emptied and came back
			}
			st.Rate = float64(d) / secs
		}
		if st.Rate > 0 {
			rates[topic] = st.Rate
			byRate.add(st, st.Rate)
		}
		bySubs.add(st, float64(st.Subscribers))
		return true
	})
	top := bySubs.list
	for _, st := range byRate.list {
		if !slices.ContainsFunc(top, func(o TopicStat) bool { return o.Topic == st.Topic }) {
			top = append(top, st)
		}
	}
	tr.at, tr.last, tr.spare, tr.top = now, last, tr.last, top
	tr.rates.Store(&rates)
	return slices.Clone(top)
}

// rate returns topic's rate at the last sample.
func (tr *topicTracker) rate(topic string) float64 {
	if m := tr.rates.Load(); m != nil {
		return (*m)[topic]
	}
	return 0
}

// topN keeps the n entries with the highest keys, in descending order (ties
// by topic name).
type topN struct {
	n    int
	list []TopicStat
	keys []float64
}

func (t *topN) add(st TopicStat, key float64) {
	less := func(i int) bool { // does entry i rank below (st, key)?
		return t.keys[i] < key || t.keys[i] == key && t.list[i].Topic > st.Topic
	}
	if t.n <= 0 {
		return
	}
	if len(t.list) == t.n && !less(len(t.list)-1) {
		return
	}
	i := len(t.list)
	for i > 0 && less(i-1) {
		i--
	}
	t.list = slices.Insert(t.list, i, st)
	t.keys = slices.Insert(t.keys, i, key)
	if len(t.list) > t.n {
		t.list, t.keys = t.list[:t.n], t.keys[:t.n]
	}
}

// LocalTopic returns topic's figures on this node (zero counts if it has no
// local subscriber).
func (g *Gateway) LocalTopic(topic string) TopicStat {
	count, published := g.hub.Stat(topic)
	return TopicStat{Topic: topic, Subscribers: count, Messages: published, Rate: g.topics.rate(topic)}
}

// SearchTopics returns up to limit local topics whose name contains query
// (every topic for an empty query), by subscribers then name, and how many
// matched in all. It walks every local topic.
func (g *Gateway) SearchTopics(query string, limit int) (found []TopicStat, matched int) {
	top := topN{n: limit}
	g.hub.RangeStats(func(topic string, count, published int64) bool {
		if strings.Contains(topic, query) {
			matched++
			top.add(TopicStat{Topic: topic, Subscribers: count, Messages: published}, float64(count))
		}
		return true
	})
	found = top.list
	for i := range found {
		found[i].Rate = g.topics.rate(found[i].Topic)
	}
	return found, matched
}

// Subscriptions returns the number of local subscriptions (a connection or
// listener on a topic counts once per topic). It walks every local topic.
func (g *Gateway) Subscriptions() int64 {
	var n int64
	g.hub.Range(func(_ string, count int64) bool {
		n += count
		return true
	})
	return n
}
