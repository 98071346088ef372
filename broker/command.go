package broker

import (
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
	data, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCommand, err)
	}
	return &Message{Kind: KindCommand, Topic: c.Topic, ID: id, Origin: origin, Data: data}, nil
}

// DecodeCommand returns the command m carries.
func DecodeCommand(m *Message) (Command, error) {
	var c Command
	if m.Kind != KindCommand {
		return c, fmt.Errorf("%w: message kind is %v", ErrBadCommand, m.Kind)
	}
	if err := json.Unmarshal(m.Data, &c); err != nil {
		return c, fmt.Errorf("%w: %v", ErrBadCommand, err)
	}
	return c, c.Validate()
}
