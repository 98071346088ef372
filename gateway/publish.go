package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/protocol"
)

// The publish path: a message is checked and stamped, queued for the other
// nodes (sender.go), and delivered to this node's subscribers at once
// (fanout.go). The push API waits for the broker's answer; a connection
// does not: its v2 ack or error is sent when the broker has answered.

// Publish sends data (one JSON value) to every subscriber of topic in the
// cluster: local subscribers directly, other nodes through the broker. It
// returns after local delivery, once the broker has accepted the message
// for the other nodes, with the broker's error if it did not. If ctx ends
// first, the message is not sent to the other nodes (ctx's error), or, if
// it was already in the broker's hands, the error wraps
// ErrUnknownOutcome.
func (g *Gateway) Publish(ctx context.Context, topic string, data []byte) error {
	_, err := g.publish(ctx, topic, data)
	return err
}

// PublishID is Publish, also returning the id of the message (the "id" v2
// clients receive; 0 if the message was refused before it got one).
func (g *Gateway) PublishID(ctx context.Context, topic string, data []byte) (uint64, error) {
	m, err := g.publish(ctx, topic, data)
	if m == nil {
		return 0, err
	}
	return m.ID, err
}

func (g *Gateway) publish(ctx context.Context, topic string, data []byte) (*broker.Message, error) {
	m, err := g.newMessage(topic, data)
	if err != nil {
		return nil, err
	}
	if err := g.send(ctx, m, true); err != nil {
		return m, err
	}
	return m, nil
}

// newMessage checks a publish and stamps it with an id and this node.
func (g *Gateway) newMessage(topic string, data []byte) (*broker.Message, error) {
	if err := protocol.ValidateTopic(topic, g.cfg.MaxTopicLength); err != nil {
		return nil, err
	}
	if err := g.checkData(data); err != nil {
		return nil, err
	}
	if g.isClosed() {
		return nil, ErrGatewayClosed
	}
	// The copy makes the message immutable whatever the caller does with
	// its slice later; brokers may hold it after Publish returns.
	return &broker.Message{Topic: topic, ID: g.ids.next(), Origin: g.cfg.NodeID, Data: bytes.Clone(data)}, nil
}

// send queues m for the broker, delivers it locally when local is set, and
// waits for the broker's answer or ctx.
func (g *Gateway) send(ctx context.Context, m *broker.Message, local bool) error {
	if ctx == nil {
		ctx = context.Background()
	}
	res := make(chan error, 1)
	o := &outgoing{m: m, ctx: ctx, deadline: g.deadline(ctx), done: func(err error) { res <- err }}
	if err := g.sender.queue(o); err != nil {
		g.stats.publishErrors.Add(1)
		return err
	}
	if local {
		g.stats.published.Add(1)
		g.fanout(m)
	}
	var err error
	select {
	case err = <-res:
	case <-ctx.Done():
		if o.state.CompareAndSwap(outQueued, outCancelled) {
			err = ctx.Err() // never sent
		} else {
			err = <-res // in the broker's hands: its call ends with ctx
		}
	}
	if err != nil {
		g.stats.publishErrors.Add(1)
		return fmt.Errorf("gateway: send to other nodes: %w", err)
	}
	return nil
}

// deadline is when a message queued now for the broker stops being worth
// sending: PublishTimeout from now, or ctx's deadline if sooner.
func (g *Gateway) deadline(ctx context.Context) time.Time {
	d := time.Now().Add(g.cfg.PublishTimeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		return cd
	}
	return d
}

// publishAsync delivers m locally and queues it for the broker; done gets
// the broker's answer later (on a sender goroutine). It fails at once,
// without any delivery and without calling done, when the queue is full.
func (g *Gateway) publishAsync(m *broker.Message, done func(error)) error {
	o := &outgoing{m: m, ctx: context.Background(), deadline: time.Now().Add(g.cfg.PublishTimeout), done: done}
	if err := g.sender.queue(o); err != nil {
		g.stats.publishErrors.Add(1)
		return err
	}
	g.stats.published.Add(1)
	g.fanout(m)
	return nil
}

// checkData checks a payload for Publish and the push commands: at most
// MaxMessageSize bytes of one JSON value in UTF-8.
func (g *Gateway) checkData(data []byte) error {
	if len(data) > g.cfg.MaxMessageSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooLarge, len(data), g.cfg.MaxMessageSize)
	}
	// Browsers fail a connection on a text frame that is not UTF-8, and
	// json.Valid does not check the bytes inside strings.
	if !json.Valid(data) || !utf8.Valid(data) {
		return ErrInvalidData
	}
	return nil
}

// Publish sends fire.Message.Data (one JSON value) to every subscriber of
// fire.Message.Topic (one topic) in the cluster, this connection included
// if it is subscribed. Local subscribers get it at once; Publish does not
// wait for the broker: it returns nil once the message is queued for the
// other nodes, or an error if it was refused (an invalid topic or data, a
// full queue to the broker). When fire is the client's v2 frame, its ack,
// or its error, is sent once every Publish made while handling it has
// been answered by the broker.
func (t *FireTower) Publish(fire *FireInfo) error {
	if fire == nil || fire.Message == nil {
		return fmt.Errorf("%w: nil message", ErrInvalidData)
	}
	r := fire.reply
	m, err := t.gw.newMessage(fire.Message.Topic, fire.Message.Data)
	if err == nil {
		if r != nil {
			r.hold()
		}
		err = t.gw.publishAsync(m, func(err error) {
			if err != nil {
				err = fmt.Errorf("gateway: send to other nodes: %w", err)
				t.gw.log.Debug("publish failed", "client", t.ClientId, "topic", m.Topic, "err", err)
			}
			if r != nil {
				r.release(err)
			}
		})
		if err != nil && r != nil {
			r.release(err) // done is not called
			r = nil
		}
	}
	if err != nil {
		t.gw.log.Debug("publish failed", "client", t.ClientId, "topic", fire.Message.Topic, "err", err)
		if r != nil {
			r.fail(err)
		}
	}
	return err
}

// reply is the answer owed to a v2 client frame that reached the
// ReadHandler: it is sent when the handler has returned and every publish
// it made has been answered by the broker, as an ack, or as the error of
// the first publish that failed.
type reply struct {
	t       *FireTower
	id      json.RawMessage
	pending atomic.Int32 // the handler while it runs, and each publish in flight
	mu      sync.Mutex
	err     error
}

func (r *reply) hold() { r.pending.Add(1) }

func (r *reply) fail(err error) {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.mu.Unlock()
}

// release ends one hold, failed with err if not nil; the last one answers.
func (r *reply) release(err error) {
	if err != nil {
		r.fail(err)
	}
	if r.pending.Add(-1) != 0 {
		return
	}
	r.mu.Lock()
	err = r.err
	r.mu.Unlock()
	if err != nil {
		r.t.sendError(r.id, codeOf(err), err.Error())
		return
	}
	r.t.sendAck(r.id)
}
