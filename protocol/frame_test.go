package protocol

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestVersionString(t *testing.T) {
	if got := V1.String(); got != "v1" {
		t.Errorf("V1.String() = %q", got)
	}
	if got := V2.String(); got != "v2" {
		t.Errorf("V2.String() = %q", got)
	}
}

// TestDecodeV1Original decodes the frames the original firetower JS client
// sends, byte for byte.
func TestDecodeV1Original(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     ClientFrame
		kind     Kind
		topics   []string
		topicErr error
	}{
		{
			name:   "subscribe",
			in:     `{"type":"subscribe","topic":"a,b","data":""}`,
			want:   ClientFrame{Type: "subscribe", Topic: "a,b", Data: []byte(`""`)},
			kind:   KindSubscribe,
			topics: []string{"a", "b"},
		},
		{
			name:   "unSubscribe",
			in:     `{"type":"unSubscribe","topic":"/chat/7","data":""}`,
			want:   ClientFrame{Type: "unSubscribe", Topic: "/chat/7", Data: []byte(`""`)},
			kind:   KindUnsubscribe,
			topics: []string{"/chat/7"},
		},
		{
			name:   "publish",
			in:     `{"type":"publish","topic":"t","data":{"from":"1234567","data":"hi","type":"publish"}}`,
			want:   ClientFrame{Type: "publish", Topic: "t", Data: []byte(`{"from":"1234567","data":"hi","type":"publish"}`)},
			kind:   KindMessage,
			topics: []string{"t"},
		},
		{
			name: "spaced out as in the docs",
			in:   `{"type": "subscribe",   "topic": "/chat/world,/chat/7", "data": ""}`,
			want: ClientFrame{Type: "subscribe", Topic: "/chat/world,/chat/7", Data: []byte(`""`)},
			kind: KindSubscribe, topics: []string{"/chat/world", "/chat/7"},
		},
		{
			name: "data keeps its inner spacing",
			in:   "{\"type\":\"publish\",\"topic\":\"t\",\"data\": [1, 2,\n3] }",
			want: ClientFrame{Type: "publish", Topic: "t", Data: []byte("[1, 2,\n3]")},
			kind: KindMessage, topics: []string{"t"},
		},
		{
			name: "id and topics are ignored",
			in:   `{"id":{"x":[1]},"type":"subscribe","topic":"a","topics":["b","c"],"data":""}`,
			want: ClientFrame{Type: "subscribe", Topic: "a", Data: []byte(`""`)},
			kind: KindSubscribe, topics: []string{"a"},
		},
		{
			name: "topics of any JSON type is ignored",
			in:   `{"type":"subscribe","topic":"a","topics":"b","id":true}`,
			want: ClientFrame{Type: "subscribe", Topic: "a"},
			kind: KindSubscribe, topics: []string{"a"},
		},
		{
			name: "unknown fields ignored",
			in:   `{"type":"publish","topic":"t","data":1,"extra":{"a":null}}`,
			want: ClientFrame{Type: "publish", Topic: "t", Data: []byte(`1`)},
			kind: KindMessage, topics: []string{"t"},
		},
		{
			name: "no type is a message in v1",
			in:   `{"topic":"t","data":null}`,
			want: ClientFrame{Topic: "t", Data: []byte(`null`)},
			kind: KindMessage, topics: []string{"t"},
		},
		{
			name: "lowercase unsubscribe is a plain message in v1",
			in:   `{"type":"unsubscribe","topic":"t"}`,
			want: ClientFrame{Type: "unsubscribe", Topic: "t"},
			kind: KindMessage, topics: []string{"t"},
		},
		{
			name: "pong is a plain message in v1",
			in:   `{"type":"pong"}`,
			want: ClientFrame{Type: "pong"},
			kind: KindMessage, topicErr: ErrNoTopics,
		},
		{
			name: "JSON null is an empty frame",
			in:   `null`,
			want: ClientFrame{},
			kind: KindMessage, topicErr: ErrNoTopics,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Decode(V1, []byte(tt.in))
			if err != nil {
				t.Fatalf("Decode(V1, %s) = %v", tt.in, err)
			}
			checkFrame(t, f, tt.want)
			if k := f.Kind(V1); k != tt.kind {
				t.Errorf("Kind(V1) = %d, want %d", k, tt.kind)
			}
			topics, err := f.TopicList(0)
			checkTopics(t, topics, err, tt.topics, tt.topicErr)
		})
	}
}

func TestDecodeMalformed(t *testing.T) {
	inputs := []string{
		``,
		` `,
		`{`,
		`{"type":"subscribe"`,
		`{"type":"subscribe",}`,
		`[]`,
		`"subscribe"`,
		`1`,
		`true`,
		`{"type":1}`,
		`{"type":null,"topic":5}`,
		`{"topic":["a"]}`,
		`{"type":"subscribe","topic":"a"} x`,
		`{"type":"a"}{"type":"b"}`,
		`{'type':'subscribe'}`,
		"{\"type\":\"a\x00\"}",
		`{"type":"publish","data":}`,
		`{"type":"publish","data":undefined}`,
	}
	for _, v := range []Version{V1, V2} {
		for _, in := range inputs {
			f, err := Decode(v, []byte(in))
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("Decode(%v, %q) = %v, want ErrMalformed", v, in, err)
			}
			if f.ID != nil || f.Type != "" || f.Topic != "" || f.Topics != nil || f.Data != nil {
				t.Errorf("Decode(%v, %q) returned a non-zero frame %+v", v, in, f)
			}
		}
	}
}

func TestDecodeV2(t *testing.T) {
	id128 := `"` + strings.Repeat("x", 126) + `"`
	id129 := `"` + strings.Repeat("x", 127) + `"`
	tests := []struct {
		name    string
		in      string
		want    ClientFrame
		wantErr error
	}{
		{
			name: "subscribe with topics and numeric id",
			in:   `{"id": 1, "type": "subscribe",   "topics": ["/chat/world", "/chat/7"]}`,
			want: ClientFrame{ID: []byte(`1`), Type: "subscribe", Topics: []string{"/chat/world", "/chat/7"}},
		},
		{
			name: "unsubscribe with a topic list",
			in:   `{"id": 2, "type": "unsubscribe", "topic": "/chat/7"}`,
			want: ClientFrame{ID: []byte(`2`), Type: "unsubscribe", Topic: "/chat/7"},
		},
		{
			name: "publish with string id",
			in:   `{"id": "p-3", "type": "publish", "topic": "/chat/world", "data": {"text": "hi"}}`,
			want: ClientFrame{ID: []byte(`"p-3"`), Type: "publish", Topic: "/chat/world", Data: []byte(`{"text": "hi"}`)},
		},
		{name: "pong", in: `{"type": "pong"}`, want: ClientFrame{Type: "pong"}},
		{name: "the v1 frame is valid v2", in: `{"type":"subscribe","topic":"a,b","data":""}`,
			want: ClientFrame{Type: "subscribe", Topic: "a,b", Data: []byte(`""`)}},
		{name: "negative id", in: `{"id":-7,"type":"x"}`, want: ClientFrame{ID: []byte(`-7`), Type: "x"}},
		{name: "zero id", in: `{"id":0,"type":"x"}`, want: ClientFrame{ID: []byte(`0`), Type: "x"}},
		{name: "float id", in: `{"id":1.5e3,"type":"x"}`, want: ClientFrame{ID: []byte(`1.5e3`), Type: "x"}},
		{name: "empty string id", in: `{"id":"","type":"x"}`, want: ClientFrame{ID: []byte(`""`), Type: "x"}},
		{name: "escaped string id", in: `{"id":"a\"\u00e9","type":"x"}`, want: ClientFrame{ID: []byte(`"a\"\u00e9"`), Type: "x"}},
		{name: "id of 128 bytes", in: `{"id":` + id128 + `,"type":"x"}`, want: ClientFrame{ID: []byte(id128), Type: "x"}},
		{name: "id of 129 bytes", in: `{"id":` + id129 + `,"type":"x"}`, wantErr: ErrMalformed, want: ClientFrame{Type: "x"}},
		{name: "long number id", in: `{"id":` + strings.Repeat("9", 129) + `,"type":"x"}`, wantErr: ErrMalformed, want: ClientFrame{Type: "x"}},
		{name: "object id", in: `{"id":{"a":1},"type":"x"}`, wantErr: ErrMalformed, want: ClientFrame{Type: "x"}},
		{name: "array id", in: `{"id":[1],"type":"x"}`, wantErr: ErrMalformed, want: ClientFrame{Type: "x"}},
		{name: "true id", in: `{"id":true,"type":"x"}`, wantErr: ErrMalformed, want: ClientFrame{Type: "x"}},
		{name: "false id", in: `{"id":false,"type":"x"}`, wantErr: ErrMalformed, want: ClientFrame{Type: "x"}},
		{name: "null id", in: `{"id":null,"type":"x"}`, wantErr: ErrMalformed, want: ClientFrame{Type: "x"}},
		{name: "bad id is reported before a missing type", in: `{"id":{"a":1}}`, wantErr: ErrMalformed},
		{name: "missing type keeps a valid id for the reply", in: `{"id":5,"topic":"a"}`,
			wantErr: ErrMissingType, want: ClientFrame{ID: []byte(`5`), Topic: "a"}},
		{name: "empty type", in: `{"type":"","id":"q"}`, wantErr: ErrMissingType, want: ClientFrame{ID: []byte(`"q"`)}},
		{name: "empty object", in: `{}`, wantErr: ErrMissingType},
		{name: "JSON null", in: `null`, wantErr: ErrMissingType},
		{name: "topics not an array", in: `{"type":"subscribe","topics":"a"}`, wantErr: ErrMalformed},
		{name: "topics of numbers", in: `{"type":"subscribe","topics":[1]}`, wantErr: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Decode(V2, []byte(tt.in))
			if tt.wantErr == nil && err != nil {
				t.Fatalf("Decode(V2, %s) = %v", tt.in, err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Decode(V2, %s) = %v, want %v", tt.in, err, tt.wantErr)
			}
			checkFrame(t, f, tt.want)
		})
	}
}

func TestKind(t *testing.T) {
	tests := []struct {
		typ    string
		v1, v2 Kind
	}{
		{"subscribe", KindSubscribe, KindSubscribe},
		{"unSubscribe", KindUnsubscribe, KindUnsubscribe},
		{"unsubscribe", KindMessage, KindUnsubscribe},
		{"pong", KindMessage, KindPong},
		{"refresh", KindMessage, KindRefresh},
		{"publish", KindMessage, KindMessage},
		{"ping", KindMessage, KindMessage},
		{"", KindMessage, KindMessage},
		{"Subscribe", KindMessage, KindMessage},
		{"UNSUBSCRIBE", KindMessage, KindMessage},
		{"Pong", KindMessage, KindMessage},
		{"subscribe ", KindMessage, KindMessage},
		{"message", KindMessage, KindMessage},
	}
	for _, tt := range tests {
		f := ClientFrame{Type: tt.typ}
		if got := f.Kind(V1); got != tt.v1 {
			t.Errorf("type %q: Kind(V1) = %d, want %d", tt.typ, got, tt.v1)
		}
		if got := f.Kind(V2); got != tt.v2 {
			t.Errorf("type %q: Kind(V2) = %d, want %d", tt.typ, got, tt.v2)
		}
	}
}

func TestTopicListV2(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		maxLen  int
		want    []string
		wantErr error
	}{
		{"topic list only", `{"type":"subscribe","topic":" a , b,,a"}`, 0, []string{"a", "b"}, nil},
		{"topics only", `{"type":"subscribe","topics":[" a ","b","a",""]}`, 0, []string{"a", "b"}, nil},
		{"both merged, topics first", `{"type":"subscribe","topics":["a","b"],"topic":"c, a ,d"}`, 0, []string{"a", "b", "c", "d"}, nil},
		{"empty topics array falls back to topic", `{"type":"subscribe","topics":[],"topic":"x"}`, 0, []string{"x"}, nil},
		{"nothing", `{"type":"subscribe"}`, 0, nil, ErrNoTopics},
		{"only empties", `{"type":"subscribe","topics":[""," "],"topic":" , "}`, 0, nil, ErrNoTopics},
		{"comma inside a topics entry", `{"type":"subscribe","topics":["a,b"]}`, 0, nil, ErrTopicInvalid},
		{"invalid entry in topic list", `{"type":"subscribe","topics":["a"],"topic":"b,c\nd"}`, 0, nil, ErrTopicInvalid},
		{"control character escaped in JSON", `{"type":"subscribe","topics":["a\u0000"]}`, 0, nil, ErrTopicInvalid},
		{"C1 control escaped in JSON", `{"type":"subscribe","topics":["a\u0085b"]}`, 0, nil, ErrTopicInvalid},
		{"custom limit", `{"type":"subscribe","topics":["abc"],"topic":"abcd"}`, 3, nil, ErrTopicTooLong},
		{"custom limit ok", `{"type":"subscribe","topics":["abc"],"topic":"ab"}`, 3, []string{"abc", "ab"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Decode(V2, []byte(tt.in))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			before := slices.Clone(f.Topics)
			got, err := f.TopicList(tt.maxLen)
			checkTopics(t, got, err, tt.want, tt.wantErr)
			if !slices.Equal(before, f.Topics) {
				t.Errorf("TopicList changed f.Topics: %q, was %q", f.Topics, before)
			}
		})
	}
}

// TestTopicListDoesNotWriteBehindTopics merges into a fresh slice: f.Topics
// may share a backing array with spare capacity that someone else uses.
func TestTopicListDoesNotWriteBehindTopics(t *testing.T) {
	backing := []string{"a", "b", "kept"}
	f := ClientFrame{Type: "subscribe", Topics: backing[:2], Topic: "c"}
	got, err := f.TopicList(0)
	checkTopics(t, got, err, []string{"a", "b", "c"}, nil)
	if backing[2] != "kept" {
		t.Errorf("TopicList wrote %q behind f.Topics", backing[2])
	}
}

func checkFrame(t *testing.T, got, want ClientFrame) {
	t.Helper()
	if string(got.ID) != string(want.ID) || (got.ID == nil) != (want.ID == nil) {
		t.Errorf("ID = %q, want %q", got.ID, want.ID)
	}
	if got.Type != want.Type {
		t.Errorf("Type = %q, want %q", got.Type, want.Type)
	}
	if got.Topic != want.Topic {
		t.Errorf("Topic = %q, want %q", got.Topic, want.Topic)
	}
	if !slices.Equal(got.Topics, want.Topics) {
		t.Errorf("Topics = %q, want %q", got.Topics, want.Topics)
	}
	if string(got.Data) != string(want.Data) || (got.Data == nil) != (want.Data == nil) {
		t.Errorf("Data = %q, want %q", got.Data, want.Data)
	}
}
