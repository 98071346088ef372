package protocol

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
)

// replaced is what a JSON decoder reads back from AppendJSONString(s): s
// itself when it is valid UTF-8, otherwise each invalid byte becomes U+FFFD.
func replaced(s string) string { return string([]rune(s)) }

func TestAppendJSONString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"abc", `"abc"`},
		{"/chat/room 1", `"/chat/room 1"`},
		{`a"b`, `"a\"b"`},
		{`a\b`, `"a\\b"`},
		{`\"`, `"\\\""`},
		{"\n\r\t", `"\n\r\t"`},
		{"\x00", `"\u0000"`},
		{"\x01\x08\x0b\x0c\x1f", `"\u0001\u0008\u000b\u000c\u001f"`},
		{" ~\x7f", "\" ~\x7f\""},
		{"é房🔥", `"é房🔥"`},
		{"\u2028\u2029", "\"\u2028\u2029\""},
		{"</script>&", `"</script>&"`},
		{"\ufffd", "\"\ufffd\""},
		{"\xff", `"\ufffd"`},
		{"a\xffb", `"a\ufffdb"`},
		{"\xe4\xb8", `"\ufffd\ufffd"`},
		{"\xe4\xb8\xadx\xe4", "\"中x\\ufffd\""},
		{"\xc0\xaf", `"\ufffd\ufffd"`},
		{"\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`},
		{"\x80\"\x00", `"\ufffd\"\u0000"`},
	}
	for _, tt := range tests {
		got := AppendJSONString([]byte("pre"), tt.in)
		if string(got) != "pre"+tt.want {
			t.Errorf("AppendJSONString(%q) = %s, want %s", tt.in, got[3:], tt.want)
			continue
		}
		if n := jsonStringLen(tt.in); n != len(tt.want) {
			t.Errorf("jsonStringLen(%q) = %d, want %d", tt.in, n, len(tt.want))
		}
		checkJSONStringRoundTrip(t, tt.in, got[3:])
	}
}

// TestAppendJSONStringAllTwoBytes runs every one- and two-byte string through
// the encoder.
func TestAppendJSONStringAllTwoBytes(t *testing.T) {
	var buf []byte
	for a := 0; a < 256; a++ {
		s := string([]byte{byte(a)})
		buf = AppendJSONString(buf[:0], s)
		checkJSONStringRoundTrip(t, s, buf)
		for b := 0; b < 256; b++ {
			s := string([]byte{byte(a), byte(b)})
			buf = AppendJSONString(buf[:0], s)
			checkJSONStringRoundTrip(t, s, buf)
		}
	}
}

func checkJSONStringRoundTrip(t *testing.T, s string, out []byte) {
	t.Helper()
	if n := jsonStringLen(s); n != len(out) {
		t.Fatalf("%q: jsonStringLen = %d, encoded %d bytes", s, n, len(out))
	}
	if !json.Valid(out) {
		t.Fatalf("%q: output %q is not valid JSON", s, out)
	}
	var got string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	if want := replaced(s); got != want {
		t.Fatalf("%q: decoded %q, want %q", s, got, want)
	}
}

func TestUintLen(t *testing.T) {
	for _, v := range []uint64{0, 1, 9, 10, 11, 99, 100, 999, 1000, 1<<53 + 1, 253405917011701760, math.MaxUint64 / 10, math.MaxUint64} {
		if got, want := uintLen(v), len(strconv.FormatUint(v, 10)); got != want {
			t.Errorf("uintLen(%d) = %d, want %d", v, got, want)
		}
	}
}

func TestAppendMessageV2Exact(t *testing.T) {
	got := AppendMessageV2(nil, "/chat/world", 253405917011701760, []byte(`{"text":"hi"}`))
	want := `{"type":"message","topic":"/chat/world","id":"253405917011701760","data":{"text":"hi"}}`
	if string(got) != want {
		t.Errorf("AppendMessageV2 = %s\nwant %s", got, want)
	}
	if n := MessageV2Len("/chat/world", 253405917011701760, []byte(`{"text":"hi"}`)); n != len(want) {
		t.Errorf("MessageV2Len = %d, want %d", n, len(want))
	}
}

type messageV2 struct {
	Type  string          `json:"type"`
	Topic string          `json:"topic"`
	ID    string          `json:"id"`
	Data  json.RawMessage `json:"data"`
}

func TestAppendMessageV2(t *testing.T) {
	topics := []string{
		"", "a", "/chat/room 1", `q"uote`, `back\slash`, `\"`, "\x00\x01\x1f", "\n\r\t",
		"\x7f", "é房🔥", "\u2028", "\u0085", "\xff\xfe", "a\xe4\xb8", strings.Repeat("é\"", 200),
	}
	ids := []uint64{0, 1, 9, 10, 99, 100, 1<<53 + 1, math.MaxUint64}
	datas := []string{
		`{"text":"hi"}`, `null`, `true`, `"s"`, `""`, `[1,2]`, `123`, `-1.5e-7`, `{}`,
		` {"a" : [1, {"b": null}]} `, `"\u0000\ud83d\udd25"`, `{"topic":"x","id":"1","type":"ping"}`,
	}
	prefix := []byte("\x81\x7e\x00\x00")
	for _, topic := range topics {
		for _, id := range ids {
			for _, data := range datas {
				n := MessageV2Len(topic, id, []byte(data))
				out := AppendMessageV2(bytes.Clone(prefix), topic, id, []byte(data))
				if !bytes.HasPrefix(out, prefix) {
					t.Fatalf("prefix overwritten")
				}
				out = out[len(prefix):]
				if len(out) != n {
					t.Fatalf("topic %q id %d data %s: MessageV2Len = %d, wrote %d bytes", topic, id, data, n, len(out))
				}
				checkMessageV2(t, out, topic, id, []byte(data))
			}
		}
	}
}

// checkMessageV2 checks that out is the v2 envelope of exactly topic, id and
// data (data must be valid JSON).
func checkMessageV2(t *testing.T, out []byte, topic string, id uint64, data []byte) {
	t.Helper()
	if !json.Valid(out) {
		t.Fatalf("not valid JSON: %s", out)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(out, &fields); err != nil {
		t.Fatal(err)
	}
	if len(fields) != 4 {
		t.Fatalf("%d fields in %s, want type, topic, id, data", len(fields), out)
	}
	var m messageV2
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	if m.Type != TypeMessage {
		t.Errorf("type = %q", m.Type)
	}
	if want := replaced(topic); m.Topic != want {
		t.Errorf("topic = %q, want %q", m.Topic, want)
	}
	if want := strconv.FormatUint(id, 10); m.ID != want {
		t.Errorf("id = %q, want %q", m.ID, want)
	}
	if want := bytes.Trim(data, " \t\r\n"); !bytes.Equal(m.Data, want) {
		t.Errorf("data = %s, want %s", m.Data, want)
	}
}

func TestAppendAckV2(t *testing.T) {
	tests := []struct {
		id   []byte
		want string
	}{
		{nil, `{"type":"ack","id":null}`},
		{[]byte{}, `{"type":"ack","id":null}`},
		{[]byte(`1`), `{"type":"ack","id":1}`},
		{[]byte(`-2.5`), `{"type":"ack","id":-2.5}`},
		{[]byte(`"p-3"`), `{"type":"ack","id":"p-3"}`},
		{[]byte(`"a\"\u00e9"`), `{"type":"ack","id":"a\"\u00e9"}`},
	}
	for _, tt := range tests {
		got := AppendAckV2([]byte("x"), tt.id)
		if string(got) != "x"+tt.want {
			t.Errorf("AppendAckV2(%q) = %s, want %s", tt.id, got[1:], tt.want)
		}
		if !json.Valid(got[1:]) {
			t.Errorf("AppendAckV2(%q) is not valid JSON", tt.id)
		}
	}
}

func TestAppendErrorV2(t *testing.T) {
	tests := []struct {
		id      []byte
		code    int
		message string
		want    string
	}{
		{nil, CodeBadRequest, "protocol: malformed frame", `{"type":"error","id":null,"error":{"code":400,"message":"protocol: malformed frame"}}`},
		{[]byte(`2`), CodeInvalidTopic, "protocol: topic contains a control character, a comma or invalid UTF-8: byte 0x0a at 3",
			`{"type":"error","id":2,"error":{"code":422,"message":"protocol: topic contains a control character, a comma or invalid UTF-8: byte 0x0a at 3"}}`},
		{[]byte(`"s"`), CodeUnavailable, "", `{"type":"error","id":"s","error":{"code":503,"message":""}}`},
		{[]byte{}, -1, "a\"b\\c\nd\x00\xff", `{"type":"error","id":null,"error":{"code":-1,"message":"a\"b\\c\nd\u0000\ufffd"}}`},
	}
	for _, tt := range tests {
		got := AppendErrorV2(nil, tt.id, tt.code, tt.message)
		if string(got) != tt.want {
			t.Errorf("AppendErrorV2 = %s\nwant %s", got, tt.want)
			continue
		}
		var e struct {
			Type  string          `json:"type"`
			ID    json.RawMessage `json:"id"`
			Error struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(got, &e); err != nil {
			t.Fatalf("%s: %v", got, err)
		}
		wantID := string(tt.id)
		if wantID == "" {
			wantID = "null"
		}
		if e.Type != TypeError || string(e.ID) != wantID || e.Error.Code != tt.code || e.Error.Message != replaced(tt.message) {
			t.Errorf("decoded %+v from %s", e, got)
		}
	}
}

func TestAppendDirectV2(t *testing.T) {
	for _, data := range []string{`{"any":"json"}`, `null`, `"x"`, `[1,[2]]`, `0`} {
		got := AppendDirectV2([]byte("p"), []byte(data))
		want := `p{"type":"direct","data":` + data + `}`
		if string(got) != want {
			t.Errorf("AppendDirectV2(%s) = %s, want %s", data, got, want)
		}
		var d struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(got[1:], &d); err != nil || d.Type != TypeDirect || string(d.Data) != data {
			t.Errorf("decoded %+v, %v from %s", d, err, got)
		}
	}
}

func TestPingV2(t *testing.T) {
	var p map[string]string
	if err := json.Unmarshal([]byte(PingV2), &p); err != nil || len(p) != 1 || p["type"] != TypePing {
		t.Errorf("PingV2 %s decodes to %v, %v", PingV2, p, err)
	}
}
