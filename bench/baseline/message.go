package baseline

import (
	"encoding/json"
	"strings"
)

// clientFrame is a v1 client frame. Both servers decode it with
// encoding/json, so both pay the same parse per publish and differ only in
// fan-out; Data keeps the publisher's bytes for delivery as they are.
type clientFrame struct {
	Type  string          `json:"type"`
	Topic string          `json:"topic"`
	Data  json.RawMessage `json:"data"`
}

// The v1 frame types the baselines act on; others are dropped.
const (
	typeSubscribe   = "subscribe"
	typeUnsubscribe = "unSubscribe"
	typePublish     = "publish"
)

// parseFrame decodes one client text message. ok is false for bad JSON.
func parseFrame(p []byte) (f clientFrame, ok bool) {
	if err := json.Unmarshal(p, &f); err != nil {
		return clientFrame{}, false
	}
	return f, true
}

// clientRequest is a valid client message: a subscribe or an unsubscribe
// of topics, or a publish of data to topics[0].
type clientRequest struct {
	typ    string
	topics []string
	data   []byte
}

// decodeRequest decodes and checks one client text message. ok is false for
// what every baseline drops, as firetower does with v1 clients: bad JSON, an
// unknown type, an invalid topic list, a publish without data or to other
// than one valid topic.
func decodeRequest(p []byte) (req clientRequest, ok bool) {
	f, ok := parseFrame(p)
	if !ok {
		return req, false
	}
	req.typ = f.Type
	switch f.Type {
	case typeSubscribe, typeUnsubscribe:
		req.topics, ok = parseTopicList(f.Topic)
	case typePublish:
		var t string
		t, ok = publishTopic(f.Topic)
		req.topics, req.data = []string{t}, f.Data
		ok = ok && len(f.Data) > 0
	default:
		ok = false
	}
	return req, ok
}

// requestHandler acts on the requests of one connection.
type requestHandler interface {
	subscribe(topics []string)
	unsubscribe(topics []string)
	publish(topic string, data []byte)
}

// handleMessage decodes one whole client message and hands it to h. Binary
// messages and what decodeRequest refuses are dropped, as firetower does
// with v1 clients.
func handleMessage(h requestHandler, text bool, p []byte) {
	if !text {
		return
	}
	req, ok := decodeRequest(p)
	if !ok {
		return
	}
	switch req.typ {
	case typeSubscribe:
		h.subscribe(req.topics)
	case typeUnsubscribe:
		h.unsubscribe(req.topics)
	case typePublish:
		h.publish(req.topics[0], req.data)
	}
}

// parseTopicList splits a v1 topic list: entries are trimmed, empty ones
// ignored, duplicates removed. One invalid entry (too long, control
// character) or too many entries refuse the whole list.
func parseTopicList(s string) ([]string, bool) {
	var out []string
	for t := range strings.SplitSeq(s, ",") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if !validTopic(t) || len(out) == maxTopicsPerFrame {
			return nil, false
		}
		dup := false
		for _, o := range out {
			if o == t {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, t)
		}
	}
	return out, len(out) > 0
}

// publishTopic returns the topic of a publish frame, trimmed, and false if it
// is empty or invalid.
func publishTopic(s string) (string, bool) {
	t := strings.TrimSpace(s)
	return t, t != "" && validTopic(t)
}

func validTopic(t string) bool {
	if len(t) > maxTopicLen {
		return false
	}
	for _, r := range t {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == ',' {
			return false
		}
	}
	return true
}
