package gateway

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// ClusterId is the node number of the default gateway's message-id
// generator, as in the original firetower: set it once, before the first
// BuildTower (0..1023; the original documented 1..1024 and 1024 is taken
// as 0). Unlike Config.ClusterID, 0 here is the number 0, not automatic:
// the default gateway is a single node on the in-process broker, where
// any number is free.
//
//nolint:revive // the original's spelling, kept for source compatibility
var ClusterId int64 = 1

var (
	defaultMu      sync.Mutex
	defaultGateway *Gateway
)

// Default returns the gateway BuildTower uses, creating it on first use with
// the default Config and ClusterId.
func Default() *Gateway {
	defaultMu.Lock()
	defer defaultMu.Unlock()
	if defaultGateway == nil {
		// A single in-process node has nobody to describe itself to.
		// The goroutine transport: the seed's handlers run on Run's goroutine.
		id := ClusterId
		if id == 0 {
			id = 1024 // Config's spelling of number 0
		}
		g, err := New(Config{ClusterID: id, NodeInfoInterval: -1, Transport: TransportGoroutine})
		if err != nil {
			// Only an out-of-range ClusterId can fail here.
			panic("firetower: default gateway: " + err.Error())
		}
		defaultGateway = g
	}
	return defaultGateway
}

// SetDefault makes g the gateway BuildTower uses. Call it before the first
// BuildTower; towers already built keep their gateway.
func SetDefault(g *Gateway) {
	defaultMu.Lock()
	defer defaultMu.Unlock()
	defaultGateway = g
}

// BuildTower wraps an upgraded gorilla websocket connection in a FireTower
// of the default gateway. Set its handlers, then call Run. It returns nil if
// ws is nil.
func BuildTower(ws *websocket.Conn, clientId string) *FireTower { //nolint:revive // original name
	return Default().BuildTower(ws, clientId)
}

// TopicMessage is a client message as in the original: the topic (for a
// subscription, a comma-separated list), the data (a JSON value) and the
// frame type ("publish", "subscribe", "unSubscribe", or anything the
// application defines).
type TopicMessage struct {
	Topic string          `json:"topic"`
	Data  json.RawMessage `json:"data"`
	Type  string          `json:"type"`
}

// FireLife is the context of a message: who sent it and when the connection
// started. It is read-only.
type FireLife struct {
	clientID   string
	userID     string
	remoteAddr string
	startTime  time.Time
}

// ClientID returns the client id given to BuildTower.
func (l *FireLife) ClientID() string { return l.clientID }

// UserID returns the tower's UserId when the context was made.
func (l *FireLife) UserID() string { return l.userID }

// StartTime returns when the connection's tower was built.
func (l *FireLife) StartTime() time.Time { return l.startTime }

// RemoteAddr returns the client's network address.
func (l *FireLife) RemoteAddr() string { return l.remoteAddr }

// FireInfo is one message in flight: its context, the websocket message type
// (1 text, 2 binary) and the message. Unlike the original, FireInfo values
// are never pooled or recycled, so holding one is always safe.
type FireInfo struct {
	Context     *FireLife
	MessageType int
	Message     *TopicMessage

	// Set for client frames of the v2 protocol: the request id to answer,
	// and while the ReadHandler and its publishes run, the answer owed.
	reqID  json.RawMessage
	topics []string // the parsed topic list of a subscribe or unsubscribe frame
	token  string   // the credentials of a v2 refresh
	reply  *reply   // publish.go
	// rejectCode and rejectMsg mark a frame decode refused: dispatch only
	// answers its v2 error (decode.go).
	rejectCode int
	rejectMsg  string
}

// NewFireInfo returns a new message for tower t to fill and Publish. A
// non-nil ctx is inherited (the message keeps the context of the message
// that caused it); otherwise the context is made from t.
func NewFireInfo(t *FireTower, ctx *FireLife) *FireInfo {
	if ctx == nil {
		ctx = t.newLife()
	}
	return &FireInfo{Context: ctx, MessageType: websocket.TextMessage, Message: &TopicMessage{}}
}
