package bench

import (
	"bytes"
	"strconv"
)

// A bench message is the JSON value
//
//	{"k":"<topic>","s":<seq>,"t":<unix nanos at send>,"p":"<padding>"}
//
// padded so the whole value is the requested size. The server delivers it
// to v1 subscribers unchanged, so it carries what the receiver verifies:
// the topic it was published on, its place in that topic's sequence and
// its send time. Sequence 0 is a probe: it proves a subscription is in
// place and is neither verified nor counted. Real messages of a topic are
// numbered from 1.

const (
	payloadPrefix = `{"k":"`
	seqField      = `","s":`
	timeField     = `,"t":`
	padField      = `,"p":"`
)

// appendPayload appends the message of topic number seq sent at t (unix
// nanoseconds), padded to size bytes when size allows.
func appendPayload(b []byte, topic string, seq uint64, t int64, size int) []byte {
	start := len(b)
	b = append(b, payloadPrefix...)
	b = append(b, topic...)
	b = append(b, seqField...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, timeField...)
	b = strconv.AppendInt(b, t, 10)
	b = append(b, padField...)
	for pad := size - (len(b) - start) - 2; pad > 0; pad-- {
		b = append(b, 'x')
	}
	return append(b, '"', '}')
}

// appendPublish appends the v1 publish frame carrying data on topic.
func appendPublish(b []byte, topic string, data []byte) []byte {
	b = append(b, `{"type":"publish","topic":"`...)
	b = append(b, topic...)
	b = append(b, `","data":`...)
	b = append(b, data...)
	return append(b, '}')
}

// subscribeFrame is the v1 subscribe frame for a topic list.
func subscribeFrame(topics string) []byte {
	return []byte(`{"type":"subscribe","topic":"` + topics + `","data":""}`)
}

// parsePayload extracts the fields of a bench message without allocating.
// ok is false for anything else (heartbeats, count announcements).
func parsePayload(m []byte) (topic []byte, seq uint64, t int64, ok bool) {
	rest, found := bytes.CutPrefix(m, []byte(payloadPrefix))
	if !found {
		return nil, 0, 0, false
	}
	i := bytes.IndexByte(rest, '"')
	if i < 0 {
		return nil, 0, 0, false
	}
	topic, rest = rest[:i], rest[i:]
	if rest, found = bytes.CutPrefix(rest, []byte(seqField)); !found {
		return nil, 0, 0, false
	}
	seq, rest, ok = parseUint(rest)
	if !ok {
		return nil, 0, 0, false
	}
	if rest, found = bytes.CutPrefix(rest, []byte(timeField)); !found {
		return nil, 0, 0, false
	}
	ts, _, ok := parseUint(rest)
	if !ok {
		return nil, 0, 0, false
	}
	return topic, seq, int64(ts), true
}

func parseUint(b []byte) (uint64, []byte, bool) {
	var n uint64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9' && i < 20; i++ {
		n = n*10 + uint64(b[i]-'0')
	}
	return n, b[i:], i > 0
}
