package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// Every fuzz target also runs over its f.Add seeds and testdata/fuzz/<name>
// with a plain go test.

// topicOK is an independent statement of the topic rule, rune by rune.
func topicOK(topic string, limit int) error {
	if limit <= 0 {
		limit = DefaultMaxTopicLength
	}
	switch {
	case topic == "":
		return ErrTopicEmpty
	case len(topic) > limit:
		return ErrTopicTooLong
	case !utf8.ValidString(topic):
		return ErrTopicInvalid
	}
	for _, r := range topic {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == ',' {
			return ErrTopicInvalid
		}
	}
	if len(topic) >= 11 && topic[:11] == "$firetower/" {
		return ErrTopicReserved
	}
	return nil
}

func FuzzValidateTopic(f *testing.F) {
	for _, s := range []string{"", "a", "/chat/room 1", "a,b", "a\x00", "\x7f", "\u0085", "\u009f", "\u00a0",
		"\xff", "\xed\xa0\x80", "é房🔥", "$firetower/node/1", "$firetower", "$firetower/", "$firetower/\x00", strings.Repeat("a", 255), strings.Repeat("a", 256)} {
		f.Add(s, uint8(0))
	}
	f.Add("abcd", uint8(3))
	f.Add("ééé", uint8(5))
	f.Fuzz(func(t *testing.T, topic string, limit uint8) {
		err := ValidateTopic(topic, int(limit))
		if want := topicOK(topic, int(limit)); !errors.Is(err, want) || (want == nil) != (err == nil) {
			t.Fatalf("ValidateTopic(%q, %d) = %v, want %v", topic, limit, err, want)
		}
	})
}

func FuzzParseTopicList(f *testing.F) {
	for _, s := range []string{"", "a", "a,b", " a , b ", "a,,b", "b,a,b", ",,", " ", "a,b\x00", "a,\xff,b",
		"\u00a0a\u0085,b", "a, room 1 ,é", strings.Repeat("a,", 100)} {
		f.Add(s, uint8(0))
	}
	f.Add("ab,abc,abcd", uint8(3))
	f.Fuzz(func(t *testing.T, list string, limit uint8) {
		maxLen := int(limit)
		got, err := ParseTopicList(list, maxLen)
		checkTopicList(t, got, err, maxLen)

		// The reference: split, trim, drop empty entries, refuse the first
		// invalid entry, de-duplicate in order.
		var want []string
		var wantErr error
		for _, p := range strings.Split(list, ",") {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			if e := topicOK(p, maxLen); e != nil {
				wantErr = e
				break
			}
			if slices.Contains(want, p) {
				continue
			}
			if len(want) == MaxTopicsPerFrame {
				wantErr = ErrTooManyTopics
				break
			}
			want = append(want, p)
		}
		if wantErr == nil && len(want) == 0 {
			wantErr = ErrNoTopics
		}
		if sentinelOf(err) != wantErr || (wantErr == nil && !slices.Equal(got, want)) {
			t.Fatalf("ParseTopicList(%q, %d) = %q, %v; want %q, %v", list, maxLen, got, err, want, wantErr)
		}

		got2, err2 := CleanTopics(strings.Split(list, ","), maxLen)
		if !slices.Equal(got, got2) || sentinelOf(err) != sentinelOf(err2) {
			t.Fatalf("list %q: ParseTopicList = %q, %v; CleanTopics = %q, %v", list, got, err, got2, err2)
		}
	})
}

// checkTopicList checks the invariants of any topic list the package accepts.
func checkTopicList(t *testing.T, got []string, err error, maxLen int) {
	t.Helper()
	if err != nil {
		if got != nil {
			t.Fatalf("topics %q returned with error %v", got, err)
		}
		switch sentinelOf(err) {
		case ErrNoTopics, ErrTooManyTopics, ErrTopicTooLong, ErrTopicInvalid:
		default:
			t.Fatalf("unexpected error %v", err)
		}
		return
	}
	if len(got) == 0 || len(got) > MaxTopicsPerFrame {
		t.Fatalf("%d topics accepted", len(got))
	}
	for i, topic := range got {
		if e := ValidateTopic(topic, maxLen); e != nil {
			t.Fatalf("accepted topic %q fails ValidateTopic: %v", topic, e)
		}
		if strings.Contains(topic, ",") {
			t.Fatalf("accepted topic %q has a comma", topic)
		}
		if strings.TrimSpace(topic) != topic {
			t.Fatalf("accepted topic %q is not trimmed", topic)
		}
		if slices.Contains(got[:i], topic) {
			t.Fatalf("topic %q appears twice in %q", topic, got)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"type":"subscribe","topic":"a,b","data":""}`,
		`{"type":"unSubscribe","topic":"a","data":""}`,
		`{"type":"publish","topic":"t","data":{"from":"1234567","data":"hi","type":"publish"}}`,
		`{"id":1,"type":"subscribe","topics":["/chat/world","/chat/7"]}`,
		`{"id":"p-3","type":"publish","topic":"/chat/world","data":{"text":"hi"}}`,
		`{"type":"pong"}`,
		`{"type":"unsubscribe","topics":["a"],"topic":"b, c"}`,
		`{"id":{"a":1},"type":"x"}`,
		`{"id":null}`,
		`{"type":"subscribe","topics":"a"}`,
		`{"type":"subscribe","topics":["a\u0000"]}`,
		`null`,
		`{`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		f1, err1 := Decode(V1, b)
		f2, err2 := Decode(V2, b)
		if !bytes.Equal(in, b) {
			t.Fatalf("Decode modified its input")
		}

		if err1 != nil {
			if !errors.Is(err1, ErrMalformed) {
				t.Fatalf("v1 error %v does not wrap ErrMalformed", err1)
			}
			if f1.Type != "" || f1.Topic != "" || f1.Data != nil {
				t.Fatalf("v1 frame %+v returned with error", f1)
			}
		} else {
			if f1.ID != nil || f1.Topics != nil {
				t.Fatalf("v1 frame kept id %q or topics %q", f1.ID, f1.Topics)
			}
			checkDecoded(t, V1, f1)
		}

		switch {
		case err2 == nil:
			if f2.Type == "" {
				t.Fatalf("v2 frame without type accepted")
			}
			if len(f2.ID) > 0 && !idOK(f2.ID) {
				t.Fatalf("v2 id %q accepted", f2.ID)
			}
			checkDecoded(t, V2, f2)
			// What v2 accepts, v1 accepts with the same meaning.
			if err1 != nil || f1.Type != f2.Type || f1.Topic != f2.Topic || !bytes.Equal(f1.Data, f2.Data) {
				t.Fatalf("v2 accepts %+v but v1 gives %+v, %v", f2, f1, err1)
			}
		case errors.Is(err2, ErrMalformed), errors.Is(err2, ErrMissingType):
			// A reply may echo the id of a refused frame: it must be valid.
			if len(f2.ID) > 0 && !idOK(f2.ID) {
				t.Fatalf("v2 error %v with id %q", err2, f2.ID)
			}
			if errors.Is(err2, ErrMissingType) && f2.Type != "" {
				t.Fatalf("ErrMissingType with type %q", f2.Type)
			}
		default:
			t.Fatalf("unexpected v2 error %v", err2)
		}
		if err1 == nil && !json.Valid(b) {
			t.Fatalf("v1 accepted invalid JSON")
		}
	})
}

// idOK is an independent check of a v2 id: a JSON number or string of at
// most 128 bytes.
func idOK(id []byte) bool {
	if len(id) > 128 || !json.Valid(id) {
		return false
	}
	var v any
	if err := json.Unmarshal(id, &v); err != nil {
		return false
	}
	switch v.(type) {
	case string, float64:
		return true
	}
	return false
}

func checkDecoded(t *testing.T, v Version, f ClientFrame) {
	t.Helper()
	if f.Data != nil && !json.Valid(f.Data) {
		t.Fatalf("data %q is not valid JSON", f.Data)
	}
	want := KindMessage
	switch {
	case f.Type == "subscribe":
		want = KindSubscribe
	case f.Type == "unSubscribe", f.Type == "unsubscribe" && v == V2:
		want = KindUnsubscribe
	case f.Type == "pong" && v == V2:
		want = KindPong
	case f.Type == "refresh" && v == V2:
		want = KindRefresh
	}
	if k := f.Kind(v); k != want {
		t.Fatalf("%v type %q classified as %d, want %d", v, f.Type, k, want)
	}
	topics, err := f.TopicList(0)
	checkTopicList(t, topics, err, 0)
	if err == nil && len(f.Topics) == 0 {
		want, _ := ParseTopicList(f.Topic, 0)
		if !slices.Equal(topics, want) {
			t.Fatalf("TopicList = %q, ParseTopicList(topic) = %q", topics, want)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "abc", `a"b\c`, "\n\r\t\x00\x1f\x7f", "é房🔥", "\u2028", "\ufffd", "\xff", "a\xe4\xb8",
		"\xed\xa0\x80", "\xf4\x90\x80\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := AppendJSONString([]byte("{}"), s)
		if string(out[:2]) != "{}" {
			t.Fatalf("prefix overwritten")
		}
		out = out[2:]
		if n := jsonStringLen(s); n != len(out) {
			t.Fatalf("jsonStringLen(%q) = %d, wrote %d bytes", s, n, len(out))
		}
		if !json.Valid(out) || !utf8.Valid(out) {
			t.Fatalf("AppendJSONString(%q) = %q, not valid JSON", s, out)
		}
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		if utf8.ValidString(s) && got != s {
			t.Fatalf("%q round-trips to %q", s, got)
		}
		if want := replaced(s); got != want {
			t.Fatalf("%q decodes to %q, want %q", s, got, want)
		}
	})
}

func FuzzMessageV2(f *testing.F) {
	f.Add("/chat/world", uint64(253405917011701760), []byte(`{"text":"hi"}`))
	f.Add("", uint64(0), []byte(`null`))
	f.Add(`q"\`, uint64(1<<64-1), []byte(` [1, "x"] `))
	f.Add("\x00\n\xff", uint64(9), []byte(`"\u0000"`))
	f.Add("é房🔥\u0085", uint64(10), []byte(`not json`))
	f.Add("a", uint64(1), []byte(nil))
	f.Fuzz(func(t *testing.T, topic string, id uint64, data []byte) {
		n := MessageV2Len(topic, id, data)
		out := AppendMessageV2(nil, topic, id, data)
		if len(out) != n {
			t.Fatalf("MessageV2Len = %d, AppendMessageV2 wrote %d bytes", n, len(out))
		}
		want := `{"type":"message","topic":` + string(AppendJSONString(nil, topic)) + `,"id":"` +
			strconv.FormatUint(id, 10) + `","data":` + string(data) + `}`
		if string(out) != want {
			t.Fatalf("AppendMessageV2 = %q, want %q", out, want)
		}
		if json.Valid(data) {
			checkMessageV2(t, out, topic, id, data)
		}
	})
}
