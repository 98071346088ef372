package nats

import (
	"encoding/base64"
	"strings"
)

// subjects are the subjects of one cluster (one prefix P):
//
//	P.t.<topic in base64url>  a topic's messages
//	P.cmd                     the commands, subscribed by every node
//	P.node                    membership: hello, heartbeat, goodbye
//	P.count                   count requests; each node answers on the reply subject
//
// A topic is one token: its bytes in unpadded base64url (RFC 4648 §5),
// whose alphabet A-Z a-z 0-9 - _ holds none of NATS's separators or
// wildcards. Any valid firetower topic ("*", ">", "a.b", spaces, unicode)
// becomes a literal subject that matches only itself; nothing of the topic
// can reach the subject's structure. A 255-byte topic is 340 characters.
// The empty topic (no publish has one) is "_", which no encoding yields.
type subjects struct {
	topicPrefix string
	commands    string
	nodes       string
	count       string
}

func newSubjects(prefix string) subjects {
	return subjects{
		topicPrefix: prefix + ".t.",
		commands:    prefix + ".cmd",
		nodes:       prefix + ".node",
		count:       prefix + ".count",
	}
}

// topic returns the subject of topic.
func (s subjects) topic(topic string) string {
	var b strings.Builder
	b.Grow(len(s.topicPrefix) + base64.RawURLEncoding.EncodedLen(len(topic)) + 1)
	b.WriteString(s.topicPrefix)
	b.WriteString(encodeTopic(topic))
	return b.String()
}

func encodeTopic(topic string) string {
	if topic == "" {
		return "_"
	}
	return base64.RawURLEncoding.EncodeToString([]byte(topic))
}

// isTopic reports whether subject is topic's subject.
func (s subjects) isTopic(subject, topic string) bool {
	tok, ok := strings.CutPrefix(subject, s.topicPrefix)
	return ok && tok == encodeTopic(topic)
}
