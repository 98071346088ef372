package protocol

import (
	"fmt"
	"iter"
	"slices"
	"strings"
	"unicode/utf8"
)

// DefaultMaxTopicLength is the longest topic name accepted when no other limit
// is configured, in bytes.
const DefaultMaxTopicLength = 255

// MaxTopicsPerFrame bounds how many topics one subscribe or unsubscribe frame
// may name, so a single frame cannot make the server do unbounded work.
const MaxTopicsPerFrame = 1024

// ReservedTopicPrefix starts the names of the topics the gateways keep for
// themselves: a gateway claims its message-id node number n by holding
// interest in "$firetower/node/<n>" through its broker. ValidateTopic
// refuses these names, so that no client, publisher or listener can
// subscribe or publish to them (the gateways use the broker directly).
const ReservedTopicPrefix = "$firetower/"

// ValidateTopic reports whether topic is an acceptable topic name: 1 to maxLen
// bytes (DefaultMaxTopicLength when maxLen <= 0) of valid UTF-8 with no control
// characters and no comma (the v1 list separator), not starting with
// ReservedTopicPrefix. Spaces inside a name are allowed; callers trim the
// ends before validating.
func ValidateTopic(topic string, maxLen int) error {
	if maxLen <= 0 {
		maxLen = DefaultMaxTopicLength
	}
	if topic == "" {
		return ErrTopicEmpty
	}
	if len(topic) > maxLen {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTopicTooLong, len(topic), maxLen)
	}
	for i := 0; i < len(topic); {
		c := topic[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f || c == ',' {
				return fmt.Errorf("%w: byte 0x%02x at %d", ErrTopicInvalid, c, i)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(topic[i:])
		if r == utf8.RuneError && size == 1 {
			return fmt.Errorf("%w: invalid UTF-8 at %d", ErrTopicInvalid, i)
		}
		if r >= 0x80 && r <= 0x9f { // C1 control characters
			return fmt.Errorf("%w: U+%04X at %d", ErrTopicInvalid, r, i)
		}
		i += size
	}
	if strings.HasPrefix(topic, ReservedTopicPrefix) {
		return fmt.Errorf("%w: %q", ErrTopicReserved, topic)
	}
	return nil
}

// ParseTopicList splits a v1 comma-separated topic list ("a, b,,c"), trims
// the space around each entry, ignores empty entries, drops duplicates while
// keeping the first-seen order, and validates every topic. It fails with
// ErrNoTopics when nothing is left.
func ParseTopicList(list string, maxLen int) ([]string, error) {
	if strings.IndexByte(list, ',') < 0 {
		t := strings.TrimSpace(list)
		if t == "" {
			return nil, ErrNoTopics
		}
		if err := ValidateTopic(t, maxLen); err != nil {
			return nil, err
		}
		return []string{t}, nil
	}
	return cleanTopics(strings.SplitSeq(list, ","), maxLen)
}

// CleanTopics trims, validates and de-duplicates a topic slice (the v2 form
// of a topic list), ignoring empty entries, exactly as ParseTopicList treats
// the entries of a comma list.
func CleanTopics(topics []string, maxLen int) ([]string, error) {
	return cleanTopics(slices.Values(topics), maxLen)
}

// dedupMapAfter is the list length past which duplicates are found with a
// map: a linear scan is cheaper for the usual handful of topics, but a
// frame of 1,024 topics followed by duplicates would cost a million string
// comparisons.
const dedupMapAfter = 16

func cleanTopics(entries iter.Seq[string], maxLen int) ([]string, error) {
	var out []string
	var seen map[string]struct{}
	for t := range entries {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if err := ValidateTopic(t, maxLen); err != nil {
			return nil, err
		}
		if seen != nil {
			if _, dup := seen[t]; dup {
				continue
			}
		} else if slices.Contains(out, t) {
			continue
		}
		if len(out) == MaxTopicsPerFrame {
			return nil, ErrTooManyTopics
		}
		out = append(out, t)
		if seen != nil {
			seen[t] = struct{}{}
		} else if len(out) > dedupMapAfter {
			seen = make(map[string]struct{}, 2*len(out))
			for _, v := range out {
				seen[v] = struct{}{}
			}
		}
	}
	if len(out) == 0 {
		return nil, ErrNoTopics
	}
	return out, nil
}
