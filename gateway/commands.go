package gateway

import (
	"context"
	"fmt"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/protocol"
)

// The kick-out operations of the original topic manager, cluster-wide: each
// applies to this node's connections at once and is sent through the broker
// as a command to every other node (whatever their interest), which applies
// it to its own connections, without waiting for anything (handleCommand).

// DisconnectClient closes, on every node, the connections with client id
// clientID, with close code 4501. It returns how many were closed on this
// node, and the broker's error if the command could not be sent to the
// others (the local part is done anyway).
func (g *Gateway) DisconnectClient(ctx context.Context, clientID string) (int, error) {
	return g.SendCommand(ctx, broker.Command{Op: broker.OpDisconnectClient, ClientID: clientID})
}

// DisconnectUser closes, on every node, the connections whose UserId is
// userID, with close code 4501.
func (g *Gateway) DisconnectUser(ctx context.Context, userID string) (int, error) {
	return g.SendCommand(ctx, broker.Command{Op: broker.OpDisconnectUser, UserID: userID})
}

// RemoveUserFromTopic removes, on every node, the connections whose UserId
// is userID from topic; each gets the OnSystemRemove and UnSubscribeHandler
// callbacks. The connections stay open.
func (g *Gateway) RemoveUserFromTopic(ctx context.Context, userID, topic string) (int, error) {
	return g.SendCommand(ctx, broker.Command{Op: broker.OpRemoveUserFromTopic, UserID: userID, Topic: topic})
}

// CloseTopicEverywhere removes every subscriber of topic on every node (the
// cluster-wide CloseTopic); each gets the OnSystemRemove and
// UnSubscribeHandler callbacks.
func (g *Gateway) CloseTopicEverywhere(ctx context.Context, topic string) (int, error) {
	return g.SendCommand(ctx, broker.Command{Op: broker.OpCloseTopic, Topic: topic})
}

// PushClient sends data (one JSON value) to the connections with client id
// clientID on every node, as their ToSelf would: v1 connections receive
// data as it is, v2 connections {"type":"direct","data":data}. It returns
// how many connections of this node got it; other nodes apply it as it
// reaches them, in order with this node's publishes, and report nothing.
func (g *Gateway) PushClient(ctx context.Context, clientID string, data []byte) (int, error) {
	return g.SendCommand(ctx, broker.Command{Op: broker.OpPushClient, ClientID: clientID, Data: data})
}

// PushUser sends data to every connection whose UserId is userID, on every
// node, as PushClient does.
func (g *Gateway) PushUser(ctx context.Context, userID string, data []byte) (int, error) {
	return g.SendCommand(ctx, broker.Command{Op: broker.OpPushUser, UserID: userID, Data: data})
}

// SendCommand applies c to this node's connections and sends it to every
// other node. It returns the number of local connections affected.
func (g *Gateway) SendCommand(ctx context.Context, c broker.Command) (int, error) {
	if err := g.checkCommand(c); err != nil {
		return 0, err
	}
	if g.isClosed() {
		return 0, ErrGatewayClosed
	}
	m, err := c.Message(g.ids.next(), g.cfg.NodeID)
	if err != nil {
		return 0, err
	}
	n := g.applyCommand(c)
	// Through the sender: in order with this node's publishes on c.Topic.
	if err := g.send(ctx, m, false); err != nil {
		return n, fmt.Errorf("gateway: %s: %w", c.Op, err)
	}
	return n, nil
}

// ApplyCommand applies c to this node's connections only and returns how
// many were affected.
func (g *Gateway) ApplyCommand(c broker.Command) (int, error) {
	if err := g.checkCommand(c); err != nil {
		return 0, err
	}
	return g.applyCommand(c), nil
}

func (g *Gateway) checkCommand(c broker.Command) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if c.Op == broker.OpPushClient || c.Op == broker.OpPushUser {
		if err := g.checkData(c.Data); err != nil {
			return err
		}
	}
	if c.Topic != "" {
		return protocol.ValidateTopic(c.Topic, g.cfg.MaxTopicLength)
	}
	return nil
}

// applyCommand finds the connections concerned through the user and
// client indexes (index.go): its cost follows the number of matches, not
// of the node's connections.
func (g *Gateway) applyCommand(c broker.Command) int {
	n := 0
	switch c.Op {
	case broker.OpDisconnectClient, broker.OpDisconnectUser:
		for _, t := range g.commandTowers(c) {
			// A connection closing already (kicked a moment ago, ending
			// by itself) is not counted again until it has left.
			if t.closeWith(protocol.CloseKicked, "disconnected by the server", true) {
				n++
			}
		}
	case broker.OpRemoveUserFromTopic:
		// A user has a few connections, a topic may have a crowd: the
		// user's are walked, and those not subscribed skip themselves.
		for _, t := range g.towersOfUser(c.UserID) {
			if t.systemRemove(c.Topic) {
				n++
			}
		}
	case broker.OpCloseTopic:
		n = g.CloseTopic(c.Topic)
	case broker.OpPushClient, broker.OpPushUser:
		for _, t := range g.commandTowers(c) {
			if t.ToSelf(c.Data) == nil {
				n++
			}
		}
	}
	return n
}

// commandTowers returns the running towers a push or disconnect command
// names, by user id or by client id.
func (g *Gateway) commandTowers(c broker.Command) []*FireTower {
	if c.Op == broker.OpDisconnectUser || c.Op == broker.OpPushUser {
		return g.towersOfUser(c.UserID)
	}
	return g.towersOfClient(c.ClientID)
}

// handleCommand applies a command from another node on the broker's
// delivery goroutine, in order with the origin's messages. Nothing in it
// waits: the connections are found through the indexes, frames are queued,
// closes are started, and the callbacks a removal owes run later from the
// connections' inboxes (inbox.go), never here.
func (g *Gateway) handleCommand(m *broker.Message) {
	c, err := broker.DecodeCommand(m)
	if err != nil {
		g.log.Warn("ignoring a bad command from another node", "origin", m.Origin, "err", err)
		return
	}
	if c.Op == broker.OpNodeInfo {
		g.recordPeer(m.Origin, c.Data)
		return
	}
	if err := g.checkCommand(c); err != nil {
		g.log.Warn("ignoring a bad command from another node", "origin", m.Origin, "op", c.Op, "err", err)
		return
	}
	if g.closed.Load() {
		return
	}
	n := g.applyCommand(c)
	if c.Op != broker.OpPushClient && c.Op != broker.OpPushUser {
		g.log.Info("applied a command from another node", "origin", m.Origin, "op", c.Op, "connections", n)
	}
}

// identity is a tower's ClientId and UserId as of the last callback that
// the connection's executor finished. The application sets those plain fields before
// Run or in a callback; kick-out commands read them from other goroutines
// through this snapshot, without a data race.
type identity struct{ client, user string }

// syncIdentity publishes the fields, and moves the tower in the gateway's
// indexes if they changed; it is called by the connection's executor.
func (t *FireTower) syncIdentity() {
	if cur := t.ident.Load(); cur == nil || cur.client != t.ClientId || cur.user != t.UserId {
		t.gw.setIdentity(t, &identity{client: t.ClientId, user: t.UserId})
	}
}

func (t *FireTower) identity() identity {
	if p := t.ident.Load(); p != nil {
		return *p
	}
	return identity{}
}
