package broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Op is a cluster-wide kick-out operation, as the original firetower's
// topic manager could order its gateways.
type Op string

// The operations a Command carries.
const (
	// OpDisconnectClient closes every connection with Command.ClientID.
	OpDisconnectClient Op = "disconnectClient"
	// OpDisconnectUser closes every connection whose UserId is
	// Command.UserID.
	OpDisconnectUser Op = "disconnectUser"
	// OpRemoveUserFromTopic removes the connections of Command.UserID from
	// Command.Topic (they get the OnSystemRemove callback).
	OpRemoveUserFromTopic Op = "removeUserFromTopic"
	// OpCloseTopic removes every subscriber of Command.Topic (each gets the
	// OnSystemRemove callback).
	OpCloseTopic Op = "closeTopic"
	// OpPushClient sends Command.Data (a JSON value) to every connection
	// with Command.ClientID, as the connection's ToSelf would.
	OpPushClient Op = "pushClient"
	// OpPushUser sends Command.Data to every connection whose UserId is
	// Command.UserID, as ToSelf would.
	OpPushUser Op = "pushUser"
	// OpNodeInfo is not a kick-out: every gateway broadcasts one
	// periodically, with its description in Command.Data, so that every
	// node knows the cluster (the dashboard and the push API's cluster
	// info read it).
	OpNodeInfo Op = "nodeInfo"
)

// Command is the payload of a KindCommand message: what every node does to
// its own connections. It travels as JSON, so that every broker carries it
// as opaque bytes and a later field is ignored by an older node.
type Command struct {
	Op       Op     `json:"op"`
	ClientID string `json:"clientId,omitempty"`
	UserID   string `json:"userId,omitempty"`
	Topic    string `json:"topic,omitempty"`
	// Data is the operation's payload (OpPushClient, OpPushUser: the JSON
	// value to send; OpNodeInfo: the node's description).
	Data json.RawMessage `json:"data,omitempty"`
}

// ErrBadCommand is wrapped by the errors of Command.Validate and
// DecodeCommand.
var ErrBadCommand = errors.New("broker: bad command")

// Validate checks that the fields the operation needs are set. Topic names
// are checked by the caller (the gateway) against its own limits.
func (c Command) Validate() error {
	var missing string
	switch c.Op {
	case OpDisconnectClient:
		if c.ClientID == "" {
			missing = "clientId"
		}
	case OpDisconnectUser:
		if c.UserID == "" {
			missing = "userId"
		}
	case OpRemoveUserFromTopic:
		if c.UserID == "" {
			missing = "userId"
		} else if c.Topic == "" {
			missing = "topic"
		}
	case OpCloseTopic:
		if c.Topic == "" {
			missing = "topic"
		}
	case OpPushClient:
		if c.ClientID == "" {
			missing = "clientId"
		} else if len(c.Data) == 0 {
			missing = "data"
		}
	case OpPushUser:
		if c.UserID == "" {
			missing = "userId"
		} else if len(c.Data) == 0 {
			missing = "data"
		}
	case OpNodeInfo:
		if len(c.Data) == 0 {
			missing = "data"
		}
	default:
		return fmt.Errorf("%w: unknown op %q", ErrBadCommand, c.Op)
	}
	if missing != "" {
		return fmt.Errorf("%w: %s needs %s", ErrBadCommand, c.Op, missing)
	}
	return nil
}

// Message returns c as a KindCommand message from origin with id. Its Topic
// is c.Topic (empty for the disconnect operations), so that a broker that
// routes by topic keeps a topic's commands in order with its messages.
func (c Command) Message(id uint64, origin string) (*Message, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	data, err := c.encode()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCommand, err)
	}
	return &Message{Kind: KindCommand, Topic: c.Topic, ID: id, Origin: origin, Data: data}, nil
}

// commandHead is a Command without its Data: the fields encode writes with
// encoding/json, before the data's own bytes.
type commandHead struct {
	Op       Op     `json:"op"`
	ClientID string `json:"clientId,omitempty"`
	UserID   string `json:"userId,omitempty"`
	Topic    string `json:"topic,omitempty"`
}

// encode returns c as one JSON object whose "data" member, last, is c.Data
// byte for byte. json.Marshal would compact a json.RawMessage (dropping its
// whitespace) and escape <, >, & and U+2028 in it, so that a push would
// reach other nodes' clients as other bytes than this node's.
func (c Command) encode() ([]byte, error) {
	head, err := c.appendHead(nil)
	if err != nil || len(c.Data) == 0 {
		return append(head, '}'), err
	}
	out := make([]byte, 0, len(head)+len(c.Data)+1)
	out = append(append(append(out, head...), c.Data...), '}')
	return out, nil
}

// appendHead appends the encoding of c up to its data: the object without
// its closing brace, and `,"data":` if c has data.
func (c Command) appendHead(dst []byte) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(commandHead{Op: c.Op, ClientID: c.ClientID, UserID: c.UserID, Topic: c.Topic}); err != nil {
		return dst, err
	}
	head := bytes.TrimSuffix(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("}"))
	dst = append(dst, head...)
	if len(c.Data) > 0 {
		dst = append(dst, `,"data":`...)
	}
	return dst, nil
}

// DecodeCommand returns the command m carries. Its Data is the very bytes
// the sender's Data had, whitespace included, when the sender encoded it
// as Message does; a command encoded otherwise (by json.Marshal, as nodes
// before this encoding did, or by a program of another language) decodes
// too, with the data as encoding/json reads a json.RawMessage: its bytes
// without the whitespace around them.
func DecodeCommand(m *Message) (Command, error) {
	var c Command
	if m.Kind != KindCommand {
		return c, fmt.Errorf("%w: message kind is %v", ErrBadCommand, m.Kind)
	}
	if err := json.Unmarshal(m.Data, &c); err != nil {
		return c, fmt.Errorf("%w: %v", ErrBadCommand, err)
	}
	if len(c.Data) > 0 {
		c.Data = exactData(m.Data, c)
	}
	return c, c.Validate()
}

// exactData returns the data of the encoded command b, which decoded as c,
// with the whitespace around it: when b is what encode makes of c, the data
// is everything between c's head and the closing brace. The check that
// those bytes are c.Data with white space around it rejects any other
// layout (a member after "data", a repeated key).
func exactData(b []byte, c Command) []byte {
	head, err := c.appendHead(nil)
	if err != nil || !bytes.HasPrefix(b, head) || !bytes.HasSuffix(b, []byte("}")) {
		return c.Data
	}
	d := b[len(head) : len(b)-1]
	if !bytes.Equal(bytes.Trim(d, jsonSpace), c.Data) {
		return c.Data
	}
	return d
}

// jsonSpace is the white space JSON allows around a value.
const jsonSpace = " \t\r\n"
