package protocol

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestValidateTopic(t *testing.T) {
	tests := []struct {
		name   string
		topic  string
		maxLen int
		want   error // nil, or the sentinel the error must wrap
	}{
		{"simple", "/chat/world", 0, nil},
		{"one byte", "a", 0, nil},
		{"empty", "", 0, ErrTopicEmpty},
		{"empty with custom limit", "", 3, ErrTopicEmpty},
		{"exactly 255 bytes", strings.Repeat("a", 255), 0, nil},
		{"256 bytes", strings.Repeat("a", 256), 0, ErrTopicTooLong},
		{"negative maxLen means default", strings.Repeat("a", 255), -1, nil},
		{"negative maxLen refuses 256", strings.Repeat("a", 256), -1, ErrTopicTooLong},
		{"custom limit exact", "abc", 3, nil},
		{"custom limit plus one", "abcd", 3, ErrTopicTooLong},
		{"custom limit above default", strings.Repeat("a", 1000), 1000, nil},
		{"limit counts bytes not runes", "ééé", 5, ErrTopicTooLong}, // 6 bytes
		{"limit counts bytes exact", "ééé", 6, nil},
		{"length checked before content", strings.Repeat(",", 300), 0, ErrTopicTooLong},
		{"space inside", "/chat/room 1", 0, nil},
		{"leading space is the caller's business", " a ", 0, nil},
		{"only spaces", "   ", 0, nil},
		{"unicode", "/聊天/房间", 0, nil},
		{"emoji", "room-🔥", 0, nil},
		{"U+00A0 no-break space", "a\u00a0b", 0, nil},
		{"U+00A1 just after C1", "a\u00a1", 0, nil},
		{"U+FFFD written out", "a\ufffdb", 0, nil},
		{"U+2028 line separator", "a\u2028b", 0, nil},
		{"tilde 0x7e", "a~b", 0, nil},
		{"space 0x20", " ", 0, nil},
		{"NUL", "a\x00b", 0, ErrTopicInvalid},
		{"newline", "a\nb", 0, ErrTopicInvalid},
		{"carriage return", "a\r", 0, ErrTopicInvalid},
		{"tab", "\ta", 0, ErrTopicInvalid},
		{"0x1f", "a\x1f", 0, ErrTopicInvalid},
		{"DEL 0x7f", "a\x7fb", 0, ErrTopicInvalid},
		{"C1 U+0080", "a\u0080b", 0, ErrTopicInvalid},
		{"C1 U+0085 NEL", "a\u0085b", 0, ErrTopicInvalid},
		{"C1 U+009F", "a\u009fb", 0, ErrTopicInvalid},
		{"comma", "a,b", 0, ErrTopicInvalid},
		{"only comma", ",", 0, ErrTopicInvalid},
		{"invalid UTF-8 lone continuation", "a\x80b", 0, ErrTopicInvalid},
		{"invalid UTF-8 0xff", "\xff", 0, ErrTopicInvalid},
		{"truncated rune", "a\xe4\xb8", 0, ErrTopicInvalid},
		{"overlong encoding of '/'", "\xc0\xaf", 0, ErrTopicInvalid},
		{"UTF-8 encoded surrogate", "\xed\xa0\x80", 0, ErrTopicInvalid},
		{"beyond U+10FFFF", "\xf4\x90\x80\x80", 0, ErrTopicInvalid},
	}
	sentinels := []error{ErrTopicEmpty, ErrTopicTooLong, ErrTopicInvalid}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateTopic(tt.topic, tt.maxLen)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("ValidateTopic(%q, %d) = %v, want nil", tt.topic, tt.maxLen, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("ValidateTopic(%q, %d) = %v, want %v", tt.topic, tt.maxLen, err, tt.want)
			}
			for _, s := range sentinels {
				if s != tt.want && errors.Is(err, s) {
					t.Errorf("error %v also wraps %v", err, s)
				}
			}
		})
	}
}

// TestValidateTopicAllASCII checks every single byte below 0x80 once.
func TestValidateTopicAllASCII(t *testing.T) {
	for c := 0; c < 0x80; c++ {
		err := ValidateTopic("x"+string(rune(c))+"y", 0)
		bad := c < 0x20 || c == 0x7f || c == ','
		if bad != (err != nil) {
			t.Errorf("byte 0x%02x: err = %v, want refused = %v", c, err, bad)
		}
		if bad && !errors.Is(err, ErrTopicInvalid) {
			t.Errorf("byte 0x%02x: err = %v, want ErrTopicInvalid", c, err)
		}
	}
}

// Topics under ReservedTopicPrefix are refused as invalid and as
// reserved; names that only look alike are not.
func TestValidateTopicReserved(t *testing.T) {
	for _, topic := range []string{"$firetower/node/1", "$firetower/", "$firetower/anything else"} {
		err := ValidateTopic(topic, 0)
		if !errors.Is(err, ErrTopicReserved) || !errors.Is(err, ErrTopicInvalid) {
			t.Errorf("ValidateTopic(%q) = %v, want ErrTopicReserved and ErrTopicInvalid", topic, err)
		}
	}
	for _, topic := range []string{"$firetower", "$FIRETOWER/node/1", " $firetower/x", "/$firetower/x", "$node/1"} {
		if err := ValidateTopic(topic, 0); err != nil {
			t.Errorf("ValidateTopic(%q) = %v, want nil", topic, err)
		}
	}
	if _, err := ParseTopicList("a, $firetower/node/3", 0); !errors.Is(err, ErrTopicReserved) {
		t.Errorf("ParseTopicList with a reserved topic: %v", err)
	}
}

// TestValidateTopicErrorMessage checks that the message names the offending
// byte and its offset: v2 clients see it in the error frame.
func TestValidateTopicErrorMessage(t *testing.T) {
	tests := []struct {
		topic string
		want  string
	}{
		{"ab\ncd", "protocol: topic contains a control character, a comma or invalid UTF-8: byte 0x0a at 2"},
		{"a\u0085", "protocol: topic contains a control character, a comma or invalid UTF-8: U+0085 at 1"},
		{"ab\xff", "protocol: topic contains a control character, a comma or invalid UTF-8: invalid UTF-8 at 2"},
		{strings.Repeat("a", 256), "protocol: topic is too long: 256 bytes, limit 255"},
		{"", "protocol: topic is empty"},
		{"$firetower/node/7", `protocol: topics starting with $firetower/ are reserved for the gateways: "$firetower/node/7"`},
	}
	for _, tt := range tests {
		err := ValidateTopic(tt.topic, 0)
		if err == nil || err.Error() != tt.want {
			t.Errorf("ValidateTopic(%q) = %v, want %q", tt.topic, err, tt.want)
		}
	}
}

func TestParseTopicList(t *testing.T) {
	tests := []struct {
		name    string
		list    string
		maxLen  int
		want    []string
		wantErr error
	}{
		{"single", "a", 0, []string{"a"}, nil},
		{"single trimmed", "  /chat/room 1 \t", 0, []string{"/chat/room 1"}, nil},
		{"two", "a,b", 0, []string{"a", "b"}, nil},
		{"spaces around", " a , b ", 0, []string{"a", "b"}, nil},
		{"empty entry", "a,,b", 0, []string{"a", "b"}, nil},
		{"leading and trailing commas", ",a,b,", 0, []string{"a", "b"}, nil},
		{"duplicates keep first order", "b,a,b,c,a", 0, []string{"b", "a", "c"}, nil},
		{"duplicates after trimming", "a, a ,a", 0, []string{"a"}, nil},
		{"space entries", "a, ,b", 0, []string{"a", "b"}, nil},
		{"unicode", "房间,🔥", 0, []string{"房间", "🔥"}, nil},
		{"unicode space trimmed", "\u00a0a\u3000,b", 0, []string{"a", "b"}, nil},
		{"empty", "", 0, nil, ErrNoTopics},
		{"commas only", ",,", 0, nil, ErrNoTopics},
		{"space only", " ", 0, nil, ErrNoTopics},
		{"spaces and commas", " , ,\t", 0, nil, ErrNoTopics},
		{"invalid single", "a\x00", 0, nil, ErrTopicInvalid},
		{"invalid entry fails the list", "a,b\nc,d", 0, nil, ErrTopicInvalid},
		{"invalid last entry", "a,b,\x7f", 0, nil, ErrTopicInvalid},
		{"invalid UTF-8 entry", "a,\xff", 0, nil, ErrTopicInvalid},
		{"too long entry", "a," + strings.Repeat("x", 256), 0, nil, ErrTopicTooLong},
		{"custom limit", "abc,abcd", 3, nil, ErrTopicTooLong},
		{"custom limit ok", "abc,ab", 3, []string{"abc", "ab"}, nil},
		{"custom limit single", "abcd", 3, nil, ErrTopicTooLong},
		{"limit applies after trimming", "  abc  ", 3, []string{"abc"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTopicList(tt.list, tt.maxLen)
			checkTopics(t, got, err, tt.want, tt.wantErr)
		})
	}
}

func TestParseTopicListLimit(t *testing.T) {
	names := func(n int) []string {
		s := make([]string, n)
		for i := range s {
			s[i] = fmt.Sprintf("t%d", i)
		}
		return s
	}
	full := names(MaxTopicsPerFrame)
	tests := []struct {
		name    string
		list    string
		want    []string
		wantErr error
	}{
		{"exactly the limit", strings.Join(full, ","), full, nil},
		{"limit plus one", strings.Join(names(MaxTopicsPerFrame+1), ","), nil, ErrTooManyTopics},
		{"limit with trailing comma", strings.Join(full, ",") + ",", full, nil},
		{"limit with empty entries", strings.Join(full, ",,") + ", ,", full, nil},
		{"limit with a duplicate after it", strings.Join(full, ",") + ",t0", full, nil},
		{"many duplicates", strings.Repeat("a,", 5000), []string{"a"}, nil},
		{"invalid entry after the limit", strings.Join(full, ",") + ",\x00", nil, ErrTopicInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTopicList(tt.list, 0)
			checkTopics(t, got, err, tt.want, tt.wantErr)
		})
	}
}

func TestCleanTopics(t *testing.T) {
	many := make([]string, MaxTopicsPerFrame+1)
	for i := range many {
		many[i] = fmt.Sprintf("t%d", i)
	}
	tests := []struct {
		name    string
		topics  []string
		maxLen  int
		want    []string
		wantErr error
	}{
		{"one", []string{"a"}, 0, []string{"a"}, nil},
		{"trimmed and deduplicated", []string{" a", "b ", "a", " b "}, 0, []string{"a", "b"}, nil},
		{"empties ignored", []string{"", "a", "  ", "b"}, 0, []string{"a", "b"}, nil},
		{"space inside kept", []string{" room 1 "}, 0, []string{"room 1"}, nil},
		{"nil", nil, 0, nil, ErrNoTopics},
		{"only empties", []string{"", " ", "\t"}, 0, nil, ErrNoTopics},
		{"comma inside an entry", []string{"a,b"}, 0, nil, ErrTopicInvalid},
		{"control character", []string{"a", "b\x1b"}, 0, nil, ErrTopicInvalid},
		{"too long", []string{strings.Repeat("a", 256)}, 0, nil, ErrTopicTooLong},
		{"custom limit", []string{"ab", "abc"}, 2, nil, ErrTopicTooLong},
		{"exactly the limit", many[:MaxTopicsPerFrame], 0, many[:MaxTopicsPerFrame], nil},
		{"limit plus one", many, 0, nil, ErrTooManyTopics},
		{"duplicates do not count", append(slices.Repeat([]string{"a"}, 2000), "b"), 0, []string{"a", "b"}, nil},
		{"empties do not count", append(slices.Repeat([]string{""}, 2000), "b"), 0, []string{"b"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.topics)
			got, err := CleanTopics(tt.topics, tt.maxLen)
			checkTopics(t, got, err, tt.want, tt.wantErr)
			if !slices.Equal(in, tt.topics) {
				t.Errorf("CleanTopics modified its argument: %q", tt.topics)
			}
		})
	}
}

// TestParseTopicListMatchesCleanTopics checks that a comma list and the same
// entries as a slice are treated alike.
func TestParseTopicListMatchesCleanTopics(t *testing.T) {
	lists := []string{"", "a", " a , b ", "a,,b", "b,a,b", ",,", "a,\x00", "a,é\x85", strings.Repeat("x,", 3000)}
	for _, l := range lists {
		got1, err1 := ParseTopicList(l, 0)
		got2, err2 := CleanTopics(strings.Split(l, ","), 0)
		if !slices.Equal(got1, got2) || sentinelOf(err1) != sentinelOf(err2) {
			t.Errorf("list %q: ParseTopicList = %q, %v; CleanTopics = %q, %v", l, got1, err1, got2, err2)
		}
	}
}

func checkTopics(t *testing.T, got []string, err error, want []string, wantErr error) {
	t.Helper()
	if wantErr != nil {
		if !errors.Is(err, wantErr) {
			t.Fatalf("err = %v, want %v", err, wantErr)
		}
		if got != nil {
			t.Errorf("topics = %q on error, want nil", got)
		}
		return
	}
	if err != nil {
		t.Fatalf("err = %v, want nil", err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("topics = %q, want %q", got, want)
	}
}

// sentinelOf returns the package sentinel err wraps, or err itself.
func sentinelOf(err error) error {
	for _, s := range []error{ErrTopicEmpty, ErrTopicTooLong, ErrTopicInvalid, ErrNoTopics,
		ErrMalformed, ErrMissingType, ErrInvalidData, ErrTooManyTopics} {
		if errors.Is(err, s) {
			return s
		}
	}
	return err
}
