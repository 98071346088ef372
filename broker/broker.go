// Package broker defines how gateway nodes exchange messages and topic
// interest, and holds the in-process implementation used by the embedded
// (single-process) deployment. External brokers (topic manager, Redis, NATS)
// live in their own packages and must pass the conformance suite in
// package brokertest.
package broker

import (
	"context"
	"errors"
	"fmt"
)

// Kind says how a Message is routed.
type Kind uint8

// Message kinds.
const (
	// KindPublish (the zero value) is a message published on a topic: it
	// goes to the nodes with interest in the topic.
	KindPublish Kind = iota
	// KindCommand is a cluster-wide control message, a kick-out operation
	// whose Data is an encoded Command: it goes to every other node, with or
	// without interest in its topic.
	KindCommand
)

// String returns "publish", "command" or the number of an unknown kind.
func (k Kind) String() string {
	switch k {
	case KindPublish:
		return "publish"
	case KindCommand:
		return "command"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Message is one published message as it travels between nodes. A Message
// handed to a Broker or to a Handler is immutable: neither side may change it
// after the call, and both may keep references to it.
type Message struct {
	// Kind is KindPublish for a message on a topic, KindCommand for a
	// control message to every node.
	Kind Kind
	// Topic is one valid topic name.
	Topic string
	// ID is the publisher-assigned unique id (a snowflake id).
	ID uint64
	// Origin is the node id of the publishing gateway. Brokers never deliver
	// a message back to its origin.
	Origin string
	// Data is the payload: for KindPublish a JSON value (the v1 "data"
	// field), for KindCommand an encoded Command.
	Data []byte
}

// Handler receives messages published by other nodes. A broker calls it from
// its own goroutines, in publish order for any one origin node and topic. It
// must not block: the gateway hands the message to its non-blocking local
// fan-out and returns.
type Handler func(*Message)

// Broker connects one gateway node to the others.
//
// Guarantees every implementation gives (checked by package brokertest):
//   - Interest routing: a node receives only topics for which it reported a
//     positive local count with SetInterest, and never its own publishes.
//   - Commands (Kind == KindCommand) reach every other started node, with or
//     without interest in their topic, never their origin; they carry their
//     Kind to the handler.
//   - At-most-once delivery, in publish order per origin node and topic
//     (commands included, as messages of their topic).
//   - Count is the sum of the other nodes' last reported local counts; the
//     counts of a node that closed or vanished disappear (for remote brokers,
//     once the node's lease expires).
//   - Methods are safe for concurrent use.
type Broker interface {
	// Start attaches the node, with a stable node id, and begins delivering
	// remote messages to h. It is called once, before any other method.
	Start(ctx context.Context, nodeID string, h Handler) error
	// Publish sends m to every other node with interest in m.Topic, or to
	// every other node if m is a command.
	//
	// It returns nil only once the broker has accepted the message: the
	// owning topic manager confirmed it (CONFIRM), the NATS server answered
	// a flush sent after it, Redis replied to its PUBLISH. A caller told nil
	// may count on delivery to every node that had interest then (within
	// at-most-once: a node that loses its own link meanwhile misses it). It
	// blocks until then, bounded by ctx and by each broker's own deadline
	// for a link that stops answering. An error says what became of m:
	//   - ErrUnavailable (the broker is unreachable, settling, or its queue
	//     is full), ctx's error, ErrClosed, ErrNotStarted, ErrTooLarge: m
	//     was not sent and never will be; the caller may retry without
	//     risking a duplicate.
	//   - ErrUnknownOutcome: m was handed to the network and the broker's
	//     answer did not come (ctx ended, the link failed): it may or may
	//     not have been delivered. A retry may deliver it twice.
	Publish(ctx context.Context, m *Message) error
	// SetInterest records this node's number of local subscribers of topic;
	// 0 withdraws the node's interest. It never blocks on the network:
	// implementations record the latest value and propagate it (batched)
	// in the background, re-sending all of it after a reconnect. The gateway
	// calls it in order for each topic.
	SetInterest(topic string, localCount int64)
	// Count returns the number of subscribers of topic on all other nodes.
	Count(ctx context.Context, topic string) (int64, error)
	// Close detaches the node and stops every goroutine the broker started.
	Close() error
}

// Checker is an optional interface of a Broker: it says whether the broker
// can reach the other nodes now. Ready returns nil when it can, else an error
// saying why, wrapping ErrUnavailable (not connected, or settling: for a
// while after a lost link is restored the external brokers refuse
// publishes until the other nodes have had time to re-subscribe),
// ErrNotStarted or ErrClosed. It reports the state the broker already knows: it is cheap,
// safe for concurrent use, and never blocks on the network.
//
// The gateway's readiness (Gateway.Ready, served as /readyz for load
// balancers and Kubernetes) and the dashboard use it; a broker that does not
// implement it is taken as always ready. Implementations: Memory (ready
// from Start to Close) and tm.Broker (ready while connected to every topic
// manager of its list). A Redis or NATS broker should be ready while its
// connection (and, for Redis, its Pub/Sub connection) is up, and not ready
// while it reconnects.
type Checker interface {
	Ready() error
}

// KnownCounter is an optional interface of a Broker that knows the other
// nodes' subscriber counts without asking the network (the in-process
// broker; a broker that keeps the interest it propagates). KnownCount
// returns that count and true, or false when it does not know; it never
// blocks. The gateway's GetConnectNum, which applications call on every
// subscribe, uses it; other brokers get a cache refreshed in the
// background.
type KnownCounter interface {
	KnownCount(topic string) (int64, bool)
}

// Sentinel errors.
var (
	ErrClosed      = errors.New("broker: closed")
	ErrNotStarted  = errors.New("broker: not started")
	ErrUnavailable = errors.New("broker: unavailable")
	// ErrUnknownOutcome is wrapped by a Publish whose message was handed to
	// the network but not confirmed (its context ended, or the link failed,
	// while the broker's answer was awaited): the message may or may not
	// have been delivered. Every other Publish error means it was not
	// sent. An error wrapping it wraps neither ErrUnavailable nor ctx's
	// error, so that a caller mapping those to "not sent, retry" cannot
	// mistake it for one of them.
	ErrUnknownOutcome = errors.New("broker: publish outcome unknown")
	// ErrTooLarge is wrapped by a broker's refusal of a message larger than
	// its transport carries (a frame limit, a server's max payload).
	ErrTooLarge = errors.New("broker: message too large")
)
