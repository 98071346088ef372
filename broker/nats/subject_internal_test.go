package nats

import (
	"encoding/base64"
	"strings"
	"testing"
)

// checkSubject fails unless subject is the prefix's tokens plus "t" plus
// exactly one literal token that decodes to topic.
func checkSubject(t *testing.T, s subjects, topic string) {
	t.Helper()
	subject := s.topic(topic)
	rest, ok := strings.CutPrefix(subject, "pre.fix.t.")
	if !ok {
		t.Fatalf("subject %q of %q lacks the prefix", subject, topic)
	}
	if rest == "" || strings.ContainsAny(rest, ".*> \t\r\n") {
		t.Fatalf("subject %q of %q: the topic token %q is not one literal token", subject, topic, rest)
	}
	if !s.isTopic(subject, topic) {
		t.Fatalf("isTopic(%q, %q) = false", subject, topic)
	}
	if topic != "" {
		b, err := base64.RawURLEncoding.DecodeString(rest)
		if err != nil || string(b) != topic {
			t.Fatalf("token %q decodes to %q (%v), want %q", rest, b, err, topic)
		}
	}
}

func TestTopicSubjects(t *testing.T) {
	s := newSubjects("pre.fix")
	topics := []string{
		"", "a", "*", ">", ".", "..", "a.*", "a.>", "a b", " ", "ünï 世界 🚀", "_", "-", "~", "{x}",
		strings.Repeat("x", 255), strings.Repeat("é", 127) + "x", "\x00\xff",
	}
	seen := make(map[string]string)
	for _, topic := range topics {
		checkSubject(t, s, topic)
		if other, dup := seen[s.topic(topic)]; dup {
			t.Errorf("topics %q and %q share the subject %q", topic, other, s.topic(topic))
		}
		seen[s.topic(topic)] = topic
	}
	if s.isTopic(s.topic("a"), "b") || s.isTopic("other.t."+encodeTopic("a"), "a") {
		t.Error("isTopic matched a foreign subject")
	}
	for _, fixed := range []string{s.commands, s.nodes, s.count} {
		if strings.HasPrefix(fixed, s.topicPrefix) {
			t.Errorf("subject %q is inside the topic namespace", fixed)
		}
	}
}

func FuzzTopicSubject(f *testing.F) {
	for _, seed := range []string{"", "a.b", "*", ">", "a b", "世界"} {
		f.Add(seed)
	}
	s := newSubjects("pre.fix")
	f.Fuzz(func(t *testing.T, topic string) { checkSubject(t, s, topic) })
}

func TestValidPrefix(t *testing.T) {
	for _, ok := range []string{"firetower", "a.b.c", "app-1_x"} {
		if err := validPrefix(ok); err != nil {
			t.Errorf("validPrefix(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"a..b", ".a", "a.", "*", "a.>", "a b", "a*", strings.Repeat("p", 201)} {
		if validPrefix(bad) == nil {
			t.Errorf("validPrefix(%q) accepted", bad)
		}
	}
}
