package gateway

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/firetower-go/firetower/protocol"
	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"
)

// FireTower is one client connection ("beacon tower"). Build it with
// BuildTower or Gateway.BuildTower, set its handlers, then call Run, which
// blocks until the connection ends. Handlers must be set before Run.
//
// Only the tower's writer writes to the websocket; Publish, ToSelf and the
// fan-out append immutable frames to its bounded queue. The handlers run
// one at a time, in frame order (inbox.go): on Run's goroutine on the
// goroutine transport, on the gateway's worker pool on the netpoll
// transport; ReadTimeoutHandler runs on the goroutine that waited (the
// reader, or a goroutine of its own on netpoll).
type FireTower struct {
	// ClientId identifies the connection to the application; several
	// connections may share one (nothing is overwritten).
	ClientId string //nolint:revive // original name
	// UserId is for the application to fill, typically after authentication.
	UserId string //nolint:revive // original name
	// Cookie is free storage for the application.
	Cookie []byte

	gw         *Gateway
	tr         transport // moves the bytes: goConn or the netpoll transport's npConn
	version    protocol.Version
	startTime  time.Time
	remoteAddr string
	ip         string        // host of remoteAddr, for MaxConnectionsPerIP
	auth       *Identity     // from Config.Authenticator; nil: no grants are checked
	limiter    *rate.Limiter // Config.PublishRate; nil: no limit. Only the connection's executor uses it

	onConnectHandler       func() bool
	onOfflineHandler       func()
	readHandler            func(*FireInfo) bool
	readTimeoutHandler     func(*FireInfo)
	beforeSubscribeHandler func(*FireLife, []string) bool
	subscribeHandler       func(*FireLife, []string) bool
	unSubscribeHandler     func(*FireLife, []string) bool
	onSystemRemove         func(string)

	inbox inbox // client frames and owed callbacks, in order (inbox.go); tr.executor() runs it

	ident atomic.Pointer[identity] // ClientId and UserId for kick-out commands (commands.go)
	index towerIndexEntry          // its place in the gateway's user and client indexes (index.go)

	subMu     sync.Mutex // serialises subscription changes; see the lock order on Gateway
	topics    map[string]struct{}
	subClosed bool

	out outbound
	np  *npConn // tr on the netpoll transport, for its pollers; nil on the goroutine transport

	expiry  *time.Timer   // closes the connection when auth expires (setExpiry)
	closing chan struct{} // closed by the first closeWith
	ran     bool
}

// BuildTower wraps an upgraded websocket connection in a FireTower of g. The
// connection speaks v2 if the upgrade negotiated the "firetower.v2"
// subprotocol, v1 otherwise. It returns nil if ws is nil.
func (g *Gateway) BuildTower(ws *websocket.Conn, clientID string) *FireTower {
	if ws == nil {
		g.log.Error("BuildTower: nil websocket connection")
		return nil
	}
	t := &FireTower{
		ClientId:   clientID,
		gw:         g,
		version:    protocol.V1,
		startTime:  time.Now(),
		remoteAddr: ws.RemoteAddr().String(),
		topics:     make(map[string]struct{}, 1),
		closing:    make(chan struct{}),
	}
	if ws.Subprotocol() == protocol.SubprotocolV2 {
		t.version = protocol.V2
	}
	t.ip = hostOf(t.remoteAddr)
	if id := g.idents.take(ws); id != nil {
		t.auth = id
		t.UserId = id.UserID
	}
	if g.cfg.PublishRate > 0 {
		t.limiter = rate.NewLimiter(rate.Limit(g.cfg.PublishRate), g.cfg.PublishBurst)
	}
	t.out.init(t)
	if g.cfg.Transport == TransportNetpoll {
		// The tower leaves gorilla here: its socket goes to the gateway's
		// pollers (netpoll_linux.go), with no goroutine and no buffer of
		// its own while idle. Connections that cannot (TLS, platforms
		// without epoll) stay on the goroutine transport.
		t.tr = g.detach(t, ws)
	}
	if t.tr == nil {
		t.tr = newGoConn(t, ws)
	}
	return t
}

// Version returns the connection's protocol version.
func (t *FireTower) Version() protocol.Version { return t.version }

// Gateway returns the gateway the tower belongs to.
func (t *FireTower) Gateway() *Gateway { return t.gw }

// SetOnConnectHandler sets the callback Run calls first; returning false
// closes the connection.
func (t *FireTower) SetOnConnectHandler(fn func() bool) { t.onConnectHandler = fn }

// SetOnOfflineHandler sets the callback called once when the connection has
// ended, after its topics were unsubscribed.
func (t *FireTower) SetOnOfflineHandler(fn func()) { t.onOfflineHandler = fn }

// SetReadHandler sets the callback for client frames other than subscribe
// and unSubscribe (normally "publish"); it usually calls Publish. Returning
// false closes the connection.
func (t *FireTower) SetReadHandler(fn func(*FireInfo) bool) { t.readHandler = fn }

// SetReadTimeoutHandler sets the callback for a client frame that waited
// longer than Config.ReadTimeout for room in the inbound queue (the client
// produces faster than the handlers consume). The frame is then dropped.
func (t *FireTower) SetReadTimeoutHandler(fn func(*FireInfo)) { t.readTimeoutHandler = fn }

// SetBeforeSubscribeHandler sets the callback asked before the client
// subscribes to topics; returning false refuses the whole subscription.
func (t *FireTower) SetBeforeSubscribeHandler(fn func(context *FireLife, topic []string) bool) {
	t.beforeSubscribeHandler = fn
}

// SetSubscribeHandler sets the callback called after a client subscription,
// with the topics that were newly added. Its result is ignored.
func (t *FireTower) SetSubscribeHandler(fn func(context *FireLife, topic []string) bool) {
	t.subscribeHandler = fn
}

// SetUnSubscribeHandler sets the callback called after topics were removed:
// on a client unSubscribe, and once with every remaining topic when the
// connection ends. Its result is ignored.
func (t *FireTower) SetUnSubscribeHandler(fn func(context *FireLife, topic []string) bool) {
	t.unSubscribeHandler = fn
}

// SetOnSystemRemove sets the callback called when the system, not the
// client, removes the connection from a topic (Gateway.CloseTopic).
func (t *FireTower) SetOnSystemRemove(fn func(topic string)) { t.onSystemRemove = fn }

func (t *FireTower) newLife() *FireLife {
	return &FireLife{clientID: t.ClientId, userID: t.UserId, remoteAddr: t.remoteAddr, startTime: t.startTime}
}

// Run serves the connection until it ends: it calls the OnConnect handler,
// dispatches client frames to the handlers, and on the way out unsubscribes
// every topic (UnSubscribeHandler fires once with them) and calls the
// OnOffline handler. Run may be called once.
func (t *FireTower) Run() {
	if t == nil {
		return
	}
	t.open(true)
}

// Start serves the connection in the background and returns once the
// OnConnect handler has run: the same as Run without keeping the caller's
// goroutine. On the netpoll transport (Config.Transport) no goroutine is
// kept at all and the handlers run on the gateway's workers; on the
// goroutine transport a goroutine takes Run's place. Start and Run
// together may be called once.
func (t *FireTower) Start() {
	if t == nil {
		return
	}
	t.open(false)
}

// open joins the gateway, runs OnConnect on the caller's goroutine and
// hands the connection to its transport.
func (t *FireTower) open(wait bool) {
	if t.ran {
		panic("firetower: Run or Start called twice on one tower")
	}
	t.ran = true
	t.syncIdentity()
	if err := t.gw.register(t); err != nil {
		t.gw.log.Info("connection refused", "client", t.ClientId, "err", err)
		t.tr.refuse(protocol.CloseFrame(protocol.CloseGoingAway, "server shutting down"))
		return
	}
	t.setExpiry()
	if t.onConnectHandler != nil {
		if !t.call("OnConnectHandler", func() bool { return t.onConnectHandler() }) {
			t.closeWith(protocol.CloseRejected, "connection refused", true)
		}
		t.syncIdentity()
	}
	t.tr.serve(wait)
}

// setExpiry (re)arms the close at the end of the credentials, or disarms
// it when they do not end. Only the goroutine that dispatches the tower's
// frames calls it (and Run or the poller before and after).
func (t *FireTower) setExpiry() {
	if t.auth == nil || t.auth.Expires.IsZero() {
		t.stopExpiry()
		return
	}
	d := time.Until(t.auth.Expires)
	if t.expiry == nil {
		t.expiry = time.AfterFunc(d, t.expire)
		return
	}
	t.expiry.Reset(d)
}

func (t *FireTower) stopExpiry() {
	if t.expiry != nil {
		t.expiry.Stop()
	}
}

// refresh replaces the connection's credentials with those of a v2
// refresh frame's token (TokenAuthenticator): same user, new grants and
// expiry. Topics the new grants no longer cover are unsubscribed
// (UnSubscribeHandler fires with them).
func (t *FireTower) refresh(fire *FireInfo) {
	ta, ok := t.gw.cfg.Authenticator.(TokenAuthenticator)
	if !ok || t.auth == nil {
		t.replyError(fire, protocol.CodeBadRequest, "this connection has no credentials to refresh")
		return
	}
	id, err := ta.AuthenticateToken(fire.token)
	if err != nil || id == nil {
		t.gw.stats.authFailures.Add(1)
		msg := "no identity"
		if err != nil {
			msg = err.Error()
		}
		t.replyError(fire, protocol.CodeUnauthorized, "token refused: "+msg)
		return
	}
	if id.UserID != t.auth.UserID {
		t.gw.stats.authFailures.Add(1)
		t.replyError(fire, protocol.CodeForbidden, "the token is for another user")
		return
	}
	t.auth = id
	t.setExpiry()
	var lost []string
	for _, topic := range t.Topics() {
		if !Granted(id.Subscribe, topic) {
			lost = append(lost, topic)
		}
	}
	if removed := t.Unsubscribe(lost...); len(removed) > 0 && t.unSubscribeHandler != nil {
		t.call("UnSubscribeHandler", func() bool { return t.unSubscribeHandler(fire.Context, removed) })
	}
	t.replyAck(fire)
}

// expire closes a connection whose credentials ran out.
func (t *FireTower) expire() {
	if !t.isClosing() {
		t.gw.stats.tokenExpired.Add(1)
	}
	t.closeWith(protocol.CloseTokenExpired, "token expired", true)
}

// forbid counts and answers a frame outside the connection's grants; v1
// clients get no reply.
func (t *FireTower) forbid(fire *FireInfo, msg string) {
	t.gw.stats.forbidden.Add(1)
	t.replyError(fire, protocol.CodeForbidden, msg)
}

// finish removes every subscription and runs the end-of-connection handlers.
func (t *FireTower) finish() {
	t.stopExpiry()
	t.subMu.Lock()
	t.subClosed = true
	topics := make([]string, 0, len(t.topics))
	for topic := range t.topics {
		topics = append(topics, topic)
		t.gw.hub.Unsubscribe(topic, t)
	}
	clear(t.topics)
	t.subMu.Unlock()
	if len(topics) > 0 && t.unSubscribeHandler != nil {
		life := t.newLife()
		t.call("UnSubscribeHandler", func() bool { return t.unSubscribeHandler(life, topics) })
	}
	if t.onOfflineHandler != nil {
		t.call("OnOfflineHandler", func() bool { t.onOfflineHandler(); return true })
	}
}

// call runs a user callback, recovering a panic (which closes this
// connection with 1011) and reporting false in that case.
func (t *FireTower) call(name string, fn func() bool) (ok bool) {
	defer t.gw.recoverPanic(name, t)
	return fn()
}

// dispatch handles one client frame, on the connection's executor.
func (t *FireTower) dispatch(fire *FireInfo) {
	if fire.rejectCode != 0 {
		t.replyError(fire, fire.rejectCode, fire.rejectMsg)
		return
	}
	frame := protocol.ClientFrame{ID: fire.reqID, Type: fire.Message.Type, Topic: fire.Message.Topic}
	switch frame.Kind(t.version) {
	case protocol.KindPong:
		return
	case protocol.KindSubscribe, protocol.KindUnsubscribe:
		t.dispatchSubscription(fire, frame.Kind(t.version))
		return
	case protocol.KindRefresh:
		t.refresh(fire)
		return
	}
	if t.auth != nil && !Granted(t.auth.Publish, fire.Message.Topic) {
		t.forbid(fire, "publish on "+strconv.Quote(fire.Message.Topic)+" not granted")
		return
	}
	if t.limiter != nil && !t.limiter.Allow() {
		t.gw.stats.rateLimited.Add(1)
		t.replyError(fire, protocol.CodeLimitExceeded, "publish rate limit exceeded: message dropped")
		return
	}
	if t.readHandler == nil {
		t.replyError(fire, protocol.CodeForbidden, "this server does not accept client messages")
		return
	}
	var r *reply
	if t.version == protocol.V2 && fire.reqID != nil {
		r = &reply{t: t, id: fire.reqID}
		r.hold() // until the handler returns
		fire.reply = r
	}
	if !t.call("ReadHandler", func() bool { return t.readHandler(fire) }) {
		t.closeWith(protocol.CloseRejected, "message refused", true)
		return // no answer: the connection closes
	}
	if r != nil {
		r.release(nil) // the ack or error once the publishes are answered
	}
}

func (t *FireTower) dispatchSubscription(fire *FireInfo, kind protocol.Kind) {
	topics := fire.topics
	if kind == protocol.KindUnsubscribe {
		removed := t.Unsubscribe(topics...)
		if len(removed) > 0 && t.unSubscribeHandler != nil {
			t.call("UnSubscribeHandler", func() bool { return t.unSubscribeHandler(fire.Context, removed) })
		}
		t.replyAck(fire)
		return
	}
	if t.auth != nil {
		for _, topic := range topics {
			if !Granted(t.auth.Subscribe, topic) {
				t.forbid(fire, "subscription to "+strconv.Quote(topic)+" not granted")
				return
			}
		}
	}
	if t.beforeSubscribeHandler != nil &&
		!t.call("BeforeSubscribeHandler", func() bool { return t.beforeSubscribeHandler(fire.Context, topics) }) {
		t.gw.stats.protocolErrors.Add(1)
		t.replyError(fire, protocol.CodeForbidden, "subscription refused")
		return
	}
	added, err := t.Subscribe(topics...)
	if err != nil {
		t.gw.stats.protocolErrors.Add(1)
		t.replyError(fire, codeOf(err), err.Error())
		return
	}
	if len(added) > 0 && t.subscribeHandler != nil {
		t.call("SubscribeHandler", func() bool { return t.subscribeHandler(fire.Context, added) })
	}
	t.replyAck(fire)
}

// Subscribe adds the connection to topics (already validated names; use
// this for server-side subscriptions) and returns those that were new. It
// calls no handler. It fails without change if the subscription limit would
// be passed or a topic is invalid.
func (t *FireTower) Subscribe(topics ...string) ([]string, error) {
	for _, topic := range topics {
		if err := protocol.ValidateTopic(topic, t.gw.cfg.MaxTopicLength); err != nil {
			return nil, err
		}
	}
	t.subMu.Lock()
	defer t.subMu.Unlock()
	if t.subClosed {
		return nil, ErrClosed
	}
	var added []string
	for _, topic := range topics {
		if _, ok := t.topics[topic]; !ok && !contains(added, topic) {
			added = append(added, topic)
		}
	}
	if max := t.gw.cfg.MaxSubscriptions; max > 0 && len(t.topics)+len(added) > max {
		return nil, fmt.Errorf("%w: %d topics held, %d more asked, limit %d", ErrTooManyTopics, len(t.topics), len(added), max)
	}
	for _, topic := range added {
		t.topics[topic] = struct{}{}
		t.gw.hub.Subscribe(topic, t)
	}
	return added, nil
}

// Unsubscribe removes the connection from topics and returns those it held.
// It calls no handler.
func (t *FireTower) Unsubscribe(topics ...string) []string {
	t.subMu.Lock()
	defer t.subMu.Unlock()
	var removed []string
	for _, topic := range topics {
		if _, ok := t.topics[topic]; ok {
			delete(t.topics, topic)
			t.gw.hub.Unsubscribe(topic, t)
			removed = append(removed, topic)
		}
	}
	return removed
}

// Topics returns the topics the connection holds.
func (t *FireTower) Topics() []string {
	t.subMu.Lock()
	defer t.subMu.Unlock()
	out := make([]string, 0, len(t.topics))
	for topic := range t.topics {
		out = append(out, topic)
	}
	return out
}

// systemRemove is CloseTopic's removal of this connection from topic. The
// callbacks it owes (OnSystemRemove, UnSubscribeHandler) run later, in
// order with the connection's frames.
func (t *FireTower) systemRemove(topic string) bool {
	if len(t.Unsubscribe(topic)) == 0 {
		return false
	}
	if t.onSystemRemove != nil || t.unSubscribeHandler != nil {
		t.enqueue(task{kind: taskSystemRemove, topic: topic})
	}
	return true
}

func (t *FireTower) runSystemRemove(topic string) {
	if t.onSystemRemove != nil {
		t.call("OnSystemRemove", func() bool { t.onSystemRemove(topic); return true })
	}
	if t.unSubscribeHandler != nil {
		life := t.newLife()
		t.call("UnSubscribeHandler", func() bool { return t.unSubscribeHandler(life, []string{topic}) })
	}
}

// ToSelf sends b to this connection only. v1 clients receive b as it is;
// v2 clients receive {"type":"direct","data":b}, so b must then be JSON.
// b must be UTF-8 (it is sent as a text frame).
func (t *FireTower) ToSelf(b []byte) error {
	if !utf8.Valid(b) {
		return ErrInvalidData // a text frame must be UTF-8
	}
	var frame []byte
	if t.version == protocol.V2 {
		if !json.Valid(b) {
			return ErrInvalidData
		}
		frame = protocol.TextFrame(protocol.AppendDirectV2(nil, b))
	} else {
		frame = protocol.TextFrame(b)
	}
	return t.out.push(frame, false)
}

// GetConnectNum returns the number of subscribers of topic in the cluster,
// as this node knows it without waiting on the network: exact for this
// node, at most about a second old for the others (counts.go). Use
// Gateway.ConnectNum to ask the broker.
func (t *FireTower) GetConnectNum(topic string) int64 {
	return t.gw.knownCount(topic)
}

// CheckTopicExist reports whether topic has a subscriber anywhere in the
// cluster.
func (t *FireTower) CheckTopicExist(topic string) bool {
	return t.GetConnectNum(topic) > 0
}

// Close closes the connection normally (1000). Run then returns after the
// end-of-connection handlers ran. It is safe to call more than once and from
// any goroutine.
func (t *FireTower) Close() {
	t.closeWith(protocol.CloseNormal, "", true)
}

// CloseWithCode closes the connection with a websocket close code and reason.
func (t *FireTower) CloseWithCode(code int, reason string) {
	t.closeWith(code, reason, true)
}

func (t *FireTower) isClosing() bool {
	select {
	case <-t.closing:
		return true
	default:
		return false
	}
}

func (t *FireTower) replyAck(fire *FireInfo) {
	if t.version == protocol.V2 && fire.reqID != nil {
		t.sendAck(fire.reqID)
	}
}

// replyError answers a v2 client with an error frame; v1 clients get no
// reply, as with the original.
func (t *FireTower) replyError(fire *FireInfo, code int, msg string) {
	if t.version == protocol.V2 {
		t.sendError(fire.reqID, code, msg)
	}
}

func (t *FireTower) sendAck(id json.RawMessage) {
	_ = t.out.push(protocol.TextFrame(protocol.AppendAckV2(nil, id)), true)
}

func (t *FireTower) sendError(id json.RawMessage, code int, msg string) {
	_ = t.out.push(protocol.TextFrame(protocol.AppendErrorV2(nil, id, code, msg)), true)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
