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
