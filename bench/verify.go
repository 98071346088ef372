package bench

import (
	"sync/atomic"
	"time"
)

// Counters are a worker's tallies, shared by its connections.
type Counters struct {
	Deliveries atomic.Int64 // verified bench messages (seq >= 1)
	Probes     atomic.Int64 // seq-0 probes received
	Lost       atomic.Int64 // sequence numbers skipped, or never received after the drain
	Duplicates atomic.Int64 // a sequence number at or below the last one
	Wrong      atomic.Int64 // a bench message for a topic the connection does not hold
	Other      atomic.Int64 // heartbeats, count announcements, anything else
	Synced     atomic.Int64 // connections that have received their first message
	Measured   atomic.Int64 // deliveries of messages sent at or after markAt
	Latency    Histogram    // latency of the measured deliveries
	markAt     atomic.Int64 // start of the measured interval, unix nanos; 0: not yet
}

// topicSeq is one subscribed topic of a connection and the last sequence
// number received on it.
type topicSeq struct {
	name string
	last atomic.Uint64 // written by the reader, read by the drain check
}

// verifier checks what one connection receives. It is used by the
// connection's reader goroutine only.
type verifier struct {
	topics []topicSeq
	synced bool // the first message has arrived
	c      *Counters
	// onSeq, if set, is told every sequence number the connection has now
	// received on topics[0] (those skipped as lost included), for the
	// publisher's window.
	onSeq func(from, to uint64)
}

// receive verifies one message. now is the receive time in unix nanos.
func (v *verifier) receive(m []byte, now int64) {
	topic, seq, sent, ok := parsePayload(m)
	if !ok {
		v.c.Other.Add(1)
		return
	}
	idx := -1
	for i := range v.topics {
		if v.topics[i].name == string(topic) { // no allocation
			idx = i
			break
		}
	}
	if idx < 0 {
		v.c.Wrong.Add(1)
		return
	}
	if !v.synced {
		v.synced = true
		v.c.Synced.Add(1)
	}
	if seq == 0 {
		v.c.Probes.Add(1)
		return
	}
	ts := &v.topics[idx]
	last := ts.last.Load()
	if seq <= last {
		v.c.Duplicates.Add(1)
		return
	}
	if gap := seq - last - 1; gap > 0 {
		v.c.Lost.Add(int64(gap))
	}
	if idx == 0 && v.onSeq != nil {
		v.onSeq(last+1, seq)
	}
	ts.last.Store(seq)
	v.c.Deliveries.Add(1)
	if m := v.c.markAt.Load(); m != 0 && sent >= m {
		v.c.Measured.Add(1)
		v.c.Latency.Record(now - sent)
	}
}

// missing counts the messages of last (topic -> last published seq) that
// have not arrived.
func (v *verifier) missing(last map[string]uint64) int64 {
	var n int64
	for i := range v.topics {
		ts := &v.topics[i]
		if l, got := last[ts.name], ts.last.Load(); l > got {
			n += int64(l - got)
		}
	}
	return n
}

func nowNanos() int64 { return time.Now().UnixNano() }
