package protocol

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Version identifies a client protocol.
type Version uint8

// The client protocols.
const (
	V1 Version = 1 // the original firetower JSON protocol, no replies
	V2 Version = 2 // envelopes with topics, ids, acks and errors
)

// SubprotocolV2 is the websocket subprotocol a client offers to speak v2.
const SubprotocolV2 = "firetower.v2"

// String returns "v1" or "v2".
func (v Version) String() string { return fmt.Sprintf("v%d", uint8(v)) }

// Kind is what the gateway does with a client frame.
type Kind uint8

// Frame kinds.
const (
	KindMessage     Kind = iota // any other type: handed to the ReadHandler (normally a publish)
	KindSubscribe               // "subscribe"
	KindUnsubscribe             // "unSubscribe" (v1 and v2) or "unsubscribe" (v2)
	KindPong                    // "pong" (v2 only): a reply to a server ping, otherwise ignored
	KindRefresh                 // "refresh" (v2 only): new credentials for the connection
)

// Frame type strings of the wire protocols.
const (
	TypeSubscribe     = "subscribe"
	TypeUnsubscribeV1 = "unSubscribe"
	TypeUnsubscribeV2 = "unsubscribe"
	TypePublish       = "publish"
	TypePong          = "pong"
	TypeRefresh       = "refresh"
)

// ClientFrame is one decoded client-to-server frame. The v1 form is
// {"type","topic","data"}; v2 adds "id" (a JSON number or string the client chooses,
// echoed in the reply) and "topics" (an array alternative to the comma list).
type ClientFrame struct {
	ID     json.RawMessage `json:"id,omitempty"`
	Type   string          `json:"type"`
	Topic  string          `json:"topic"`
	Topics []string        `json:"topics,omitempty"`
	Data   json.RawMessage `json:"data"`
	Token  string          `json:"token,omitempty"` // v2 "refresh": the new credentials
}

// Decode parses one client text frame of protocol v. On a v2 error the
// returned frame's ID, when set, is a valid id the reply may echo.
func Decode(v Version, b []byte) (ClientFrame, error) {
	if v == V1 {
		// The original server read only these three fields: any other field,
		// whatever its JSON type, is ignored rather than refused.
		var f1 struct {
			Type  string          `json:"type"`
			Topic string          `json:"topic"`
			Data  json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(b, &f1); err != nil {
			return ClientFrame{}, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		return ClientFrame{Type: f1.Type, Topic: f1.Topic, Data: f1.Data}, nil
	}
	var f ClientFrame
	if err := json.Unmarshal(b, &f); err != nil {
		return ClientFrame{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(f.ID) > 0 && !validID(f.ID) {
		f.ID = nil // a refused id is not echoed: it may be a large object
		return f, fmt.Errorf("%w: id must be a number or a string", ErrMalformed)
	}
	if f.Type == "" {
		return f, ErrMissingType
	}
	return f, nil
}

// validID accepts a JSON number or string as a request id; objects and
// arrays are refused so an echoed id stays small and predictable.
func validID(id json.RawMessage) bool {
	switch id[0] {
	case '"', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return len(id) <= 128
	}
	return false
}

// Kind classifies the frame for protocol v.
func (f *ClientFrame) Kind(v Version) Kind {
	switch f.Type {
	case TypeSubscribe:
		return KindSubscribe
	case TypeUnsubscribeV1:
		return KindUnsubscribe
	case TypeUnsubscribeV2, TypePong, TypeRefresh:
		if v == V2 {
			switch f.Type {
			case TypePong:
				return KindPong
			case TypeRefresh:
				return KindRefresh
			}
			return KindUnsubscribe
		}
	}
	return KindMessage
}

// TopicList returns the cleaned topics the frame names: the comma list in
// "topic" and, for v2, the "topics" array, trimmed, de-duplicated and
// validated against maxLen.
func (f *ClientFrame) TopicList(maxLen int) ([]string, error) {
	if len(f.Topics) == 0 {
		return ParseTopicList(f.Topic, maxLen)
	}
	all := f.Topics
	if f.Topic != "" {
		all = append(append([]string(nil), f.Topics...), strings.Split(f.Topic, ",")...)
	}
	return CleanTopics(all, maxLen)
}
