package tm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/internal/cluster"
	"github.com/firetower-go/firetower/protocol"
)

// Publisher publishes into a firetower cluster from outside it: a backend
// service, a cron job, an admin tool (the original topic manager's publish
// entry point). It connects to the managers with the publisher role: it
// never receives messages and has no interest or lease. Its messages reach
// every subscriber of the topic on every gateway.
type Publisher struct {
	b   *Broker
	ids atomic.Uint64
}

// ErrInvalidData is returned by Publisher.Publish for data that is not one
// JSON value in valid UTF-8 (gateways send it to browsers as a text frame).
var ErrInvalidData = errors.New("tm: data is not a single JSON value in UTF-8")

// NewPublisher connects a publisher named id (its messages' origin; it must
// differ from every gateway's node id) to the managers of cfg. Like
// Broker.Start it waits at most Config.StartWait for the connections, and
// keeps trying in the background.
func NewPublisher(ctx context.Context, cfg Config, id string) (*Publisher, error) {
	b, err := newBroker(cfg, cluster.RolePublisher)
	if err != nil {
		return nil, err
	}
	if err := b.Start(ctx, id, nil); err != nil {
		return nil, err
	}
	return &Publisher{b: b}, nil
}

// nextID returns increasing ids: nanoseconds since the Unix epoch, bumped
// past the last one.
func (p *Publisher) nextID() uint64 {
	for {
		old := p.ids.Load()
		next := max(old+1, uint64(time.Now().UnixNano()))
		if p.ids.CompareAndSwap(old, next) {
			return next
		}
	}
}

// Publish sends data (one JSON value) to every subscriber of topic in the
// cluster and returns the message id once the topic's manager has confirmed
// the message (as Broker.Publish). It fails with an error wrapping
// broker.ErrUnavailable when the message was not sent (the topic's manager
// is down, or ctx ended first), and with one wrapping
// broker.ErrUnknownOutcome when it was sent but not confirmed.
func (p *Publisher) Publish(ctx context.Context, topic string, data []byte) (uint64, error) {
	if err := protocol.ValidateTopic(topic, 0); err != nil {
		return 0, err
	}
	if !json.Valid(data) || !utf8.Valid(data) {
		return 0, ErrInvalidData
	}
	m := &broker.Message{Topic: topic, ID: p.nextID(), Origin: p.b.node, Data: bytes.Clone(data)}
	if err := p.b.Publish(ctx, m); err != nil {
		return 0, err
	}
	return m.ID, nil
}

// Command sends a kick-out operation to every gateway of the cluster.
func (p *Publisher) Command(ctx context.Context, c broker.Command) error {
	if c.Topic != "" {
		if err := protocol.ValidateTopic(c.Topic, 0); err != nil {
			return err
		}
	}
	m, err := c.Message(p.nextID(), p.b.node)
	if err != nil {
		return err
	}
	return p.b.Publish(ctx, m)
}

// Count returns the number of subscribers of topic in the whole cluster.
func (p *Publisher) Count(ctx context.Context, topic string) (int64, error) {
	return p.b.Count(ctx, topic)
}

// Managers returns the state of the connection to every manager.
func (p *Publisher) Managers() []ManagerState { return p.b.Managers() }

// Close disconnects from the managers and stops every goroutine.
func (p *Publisher) Close() error {
	if err := p.b.Close(); err != nil {
		return fmt.Errorf("tm: close publisher: %w", err)
	}
	return nil
}
