package pushapi

import (
	"container/heap"
	"context"
	"encoding/base64"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/protocol"
)

// Defaults applied to zero Config fields.
const (
	// DefaultPageSize is the number of topics a Topics page holds when the
	// caller names no limit.
	DefaultPageSize = 100
	// MaxPageSize bounds a Topics page: each topic of a page costs one
	// count request to the broker.
	MaxPageSize = 1000
	// DefaultBodySlack is added to the gateway's MaxMessageSize to make the
	// default HTTP body limit: room for the topic, the field names and a
	// broadcast's topic list around a payload of the largest size.
	DefaultBodySlack = 64 << 10
	// DefaultMaxBroadcastTopics bounds the topics of one broadcast, as
	// protocol.MaxTopicsPerFrame bounds one client subscription.
	DefaultMaxBroadcastTopics = protocol.MaxTopicsPerFrame
	// DefaultDrainWindow is the window of a Drain that names none, the
	// default --drain-window of SIGTERM.
	DefaultDrainWindow = 5 * time.Second
	// MaxDrainWindow bounds the window a Drain may ask for.
	MaxDrainWindow = time.Hour
)

// Config configures a Service. The zero value means the documented
// defaults.
type Config struct {
	// MaxBodyBytes bounds an HTTP request body and a gRPC request (default:
	// the gateway's MaxMessageSize + DefaultBodySlack). A larger one gets
	// 413 / ResourceExhausted.
	MaxBodyBytes int64
	// MaxBroadcastTopics bounds the topics of one broadcast (default
	// DefaultMaxBroadcastTopics).
	MaxBroadcastTopics int
	// SubscribeQueue bounds the messages waiting for one Subscribe stream
	// (default gateway.DefaultListenerQueue); past it messages are dropped
	// and counted.
	SubscribeQueue int
	// DrainWindow spreads the client closes of a Drain that names no
	// window (default DefaultDrainWindow).
	DrainWindow time.Duration
	// Logger receives the API's logs (default: slog.Default()).
	Logger *slog.Logger
}

// Service is the push API of one gateway node: the operations a business
// backend uses to push to websocket clients without holding a websocket.
// The HTTP handler (Handler), the gRPC server (package pushapi/grpcapi), the
// command line (package pushapi/client) and the dashboard all call these
// methods; each works the same on every node and with every broker: a call
// on any node reaches the connections of every node.
//
// Every error returned is an *Error (see ErrorOf). Methods are safe for
// concurrent use. Service does no authentication: its callers do (Auth).
type Service struct {
	gw  *gateway.Gateway
	cfg Config

	mu      sync.Mutex
	closing chan struct{} // closed by Close: ends the Subscribe calls
	closed  bool
}

// New returns the push API of gw.
func New(gw *gateway.Gateway, cfg Config) *Service {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = int64(gw.Config().MaxMessageSize) + DefaultBodySlack
	}
	if cfg.MaxBroadcastTopics <= 0 {
		cfg.MaxBroadcastTopics = DefaultMaxBroadcastTopics
	}
	if cfg.SubscribeQueue <= 0 {
		cfg.SubscribeQueue = gateway.DefaultListenerQueue
	}
	if cfg.DrainWindow <= 0 {
		cfg.DrainWindow = DefaultDrainWindow
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{gw: gw, cfg: cfg, closing: make(chan struct{})}
}

// Gateway returns the gateway the service drives.
func (s *Service) Gateway() *gateway.Gateway { return s.gw }

// Config returns the effective configuration, defaults applied.
func (s *Service) Config() Config { return s.cfg }

// Close ends every Subscribe call (they return an unavailable error) and
// refuses new ones. The other operations keep working until the gateway
// closes. Safe to call more than once.
func (s *Service) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.closing)
	}
}

// Published is the result of a publish: the topic and the id of the
// message, a decimal string as v2 clients receive it.
type Published struct {
	Topic string `json:"topic"`
	ID    string `json:"id"`
}

// Affected is the result of a command that every node applies to its own
// connections: Local is the number of connections of this node it
// reached. The other nodes apply it as it reaches them and report nothing,
// so 0 does not mean that no connection anywhere was affected.
type Affected struct {
	Local int `json:"local"`
}

// TopicCount is the number of subscribers of a topic in the cluster (Count)
// and on this node (Local).
type TopicCount struct {
	Topic string `json:"topic"`
	Count int64  `json:"count"`
	Local int64  `json:"local"`
}

// TopicPage is one page of Topics.
type TopicPage struct {
	// Topics are sorted by name.
	Topics []TopicCount `json:"topics"`
	// NextCursor asks for the next page; empty on the last page.
	NextCursor string `json:"nextCursor,omitempty"`
	// Partial is true when the broker could not be asked: the counts of
	// this page are then this node's only.
	Partial bool `json:"partial,omitempty"`
}

// Cluster lists the nodes of the cluster (gateway.Gateway.Nodes).
type Cluster struct {
	Nodes []gateway.NodeInfo `json:"nodes"`
}

// Publish sends data (one JSON value) to every subscriber of topic in the
// cluster. An error with CodeUnavailable after the message got its id
// means that this node's subscribers got it but the other nodes could not
// be reached.
func (s *Service) Publish(ctx context.Context, topic string, data []byte) (Published, error) {
	if data == nil {
		return Published{}, errorf(CodeBadRequest, "data is required")
	}
	id, err := s.gw.PublishID(ctx, topic, data)
	if err != nil {
		return Published{}, ErrorOf(err)
	}
	return Published{Topic: topic, ID: strconv.FormatUint(id, 10)}, nil
}

// Broadcast publishes the same data to each of topics (a separate message
// for each, as Publish would). Topics are trimmed and de-duplicated; one
// invalid topic or invalid data refuses the whole call before anything is
// sent. If some topics could not reach the other nodes, every topic was
// still published locally and the error (CodeUnavailable) says how many
// failed.
func (s *Service) Broadcast(ctx context.Context, topics []string, data []byte) ([]Published, error) {
	if data == nil {
		return nil, errorf(CodeBadRequest, "data is required")
	}
	if len(topics) > s.cfg.MaxBroadcastTopics {
		return nil, errorf(CodeBadRequest, "%d topics, limit %d", len(topics), s.cfg.MaxBroadcastTopics)
	}
	clean, err := protocol.CleanTopics(topics, s.gw.Config().MaxTopicLength)
	if err != nil {
		return nil, ErrorOf(err)
	}
	out := make([]Published, 0, len(clean))
	var failed int
	var last error
	for _, topic := range clean {
		id, err := s.gw.PublishID(ctx, topic, data)
		if id == 0 {
			return nil, ErrorOf(err) // refused before sending: bad data, closed gateway
		}
		if err != nil {
			failed++
			last = err
		}
		out = append(out, Published{Topic: topic, ID: strconv.FormatUint(id, 10)})
	}
	if failed > 0 {
		e := ErrorOf(last)
		return out, &Error{Code: e.Code, Message: strconv.Itoa(failed) + " of " + strconv.Itoa(len(clean)) +
			" topics could not reach the other nodes (delivered on this node): " + e.Message, err: last}
	}
	return out, nil
}

// PushClient sends data (one JSON value) to every connection with client
// id clientID on every node, as FireTower.ToSelf does: a v1 connection
// receives data as it is, a v2 connection {"type":"direct","data":data}.
// An unknown client id is not an error (Local is 0).
func (s *Service) PushClient(ctx context.Context, clientID string, data []byte) (Affected, error) {
	if clientID == "" {
		return Affected{}, errorf(CodeBadRequest, "clientId is required")
	}
	if data == nil {
		return Affected{}, errorf(CodeBadRequest, "data is required")
	}
	return affected(s.gw.PushClient(ctx, clientID, data))
}

// PushUser sends data to every connection whose UserId is userID, on every
// node, as PushClient does.
func (s *Service) PushUser(ctx context.Context, userID string, data []byte) (Affected, error) {
	if userID == "" {
		return Affected{}, errorf(CodeBadRequest, "userId is required")
	}
	if data == nil {
		return Affected{}, errorf(CodeBadRequest, "data is required")
	}
	return affected(s.gw.PushUser(ctx, userID, data))
}

// DisconnectClient closes the connections with client id clientID on every
// node (close code 4501: do not reconnect).
func (s *Service) DisconnectClient(ctx context.Context, clientID string) (Affected, error) {
	if clientID == "" {
		return Affected{}, errorf(CodeBadRequest, "clientId is required")
	}
	return affected(s.gw.DisconnectClient(ctx, clientID))
}

// DisconnectUser closes the connections of user userID on every node (close
// code 4501).
func (s *Service) DisconnectUser(ctx context.Context, userID string) (Affected, error) {
	if userID == "" {
		return Affected{}, errorf(CodeBadRequest, "userId is required")
	}
	return affected(s.gw.DisconnectUser(ctx, userID))
}

// RemoveUserFromTopic unsubscribes the connections of user userID from
// topic on every node; they stay open and get the OnSystemRemove callback.
func (s *Service) RemoveUserFromTopic(ctx context.Context, userID, topic string) (Affected, error) {
	if userID == "" {
		return Affected{}, errorf(CodeBadRequest, "userId is required")
	}
	if err := s.validTopic(topic); err != nil {
		return Affected{}, err
	}
	return affected(s.gw.RemoveUserFromTopic(ctx, userID, topic))
}

// CloseTopic unsubscribes every subscriber of topic on every node.
// Subscribe streams of the topic are not websocket connections and are
// not affected.
func (s *Service) CloseTopic(ctx context.Context, topic string) (Affected, error) {
	if err := s.validTopic(topic); err != nil {
		return Affected{}, err
	}
	return affected(s.gw.CloseTopicEverywhere(ctx, topic))
}

func (s *Service) validTopic(topic string) error {
	if err := protocol.ValidateTopic(topic, s.gw.Config().MaxTopicLength); err != nil {
		return ErrorOf(err)
	}
	return nil
}

func affected(n int, err error) (Affected, error) {
	if err != nil {
		return Affected{Local: n}, ErrorOf(err)
	}
	return Affected{Local: n}, nil
}

// Count returns the number of subscribers of topic in the cluster and on
// this node. It fails with CodeUnavailable if the other nodes cannot be
// asked.
func (s *Service) Count(ctx context.Context, topic string) (TopicCount, error) {
	if err := s.validTopic(topic); err != nil {
		return TopicCount{}, err
	}
	total, local, err := s.gw.ClusterCount(ctx, topic)
	if err != nil {
		return TopicCount{Topic: topic, Count: total, Local: local}, ErrorOf(err)
	}
	return TopicCount{Topic: topic, Count: total, Local: local}, nil
}

// Topics returns a page of the topics that have subscribers on this node,
// sorted by name, with their cluster-wide and local counts. The listing is
// local: a topic whose subscribers are all on other nodes is not in it
// (ask those nodes, or Count it by name). cursor is the NextCursor of the
// previous page ("" for the first); limit is the page size (0:
// DefaultPageSize; at most MaxPageSize).
func (s *Service) Topics(ctx context.Context, cursor string, limit int) (TopicPage, error) {
	switch {
	case limit == 0:
		limit = DefaultPageSize
	case limit < 0 || limit > MaxPageSize:
		return TopicPage{}, errorf(CodeBadRequest, "limit %d out of range 1..%d", limit, MaxPageSize)
	}
	after := ""
	if cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || len(b) == 0 {
			return TopicPage{}, errorf(CodeBadRequest, "bad cursor")
		}
		after = string(b)
	}
	// The smallest limit+1 names after the cursor, kept in a max-heap:
	// memory is bounded by the page, not by the number of topics.
	h := &topicHeap{}
	s.gw.RangeTopics(func(topic string, _ int64) bool {
		if topic <= after {
			return true
		}
		if h.Len() <= limit {
			heap.Push(h, topic)
		} else if topic < (*h)[0] {
			(*h)[0] = topic
			heap.Fix(h, 0)
		}
		return true
	})
	names := make([]string, h.Len())
	for i := len(names) - 1; i >= 0; i-- {
		names[i] = heap.Pop(h).(string)
	}
	page := TopicPage{Topics: []TopicCount{}}
	if len(names) > limit {
		names = names[:limit]
		page.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(names[limit-1]))
	}
	for _, topic := range names {
		total, local, err := s.gw.ClusterCount(ctx, topic)
		if err != nil {
			page.Partial = true
		}
		page.Topics = append(page.Topics, TopicCount{Topic: topic, Count: total, Local: local})
	}
	return page, nil
}

// topicHeap is a max-heap of topic names.
type topicHeap []string

func (h topicHeap) Len() int           { return len(h) }
func (h topicHeap) Less(i, j int) bool { return h[i] > h[j] }
func (h topicHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *topicHeap) Push(x any)        { *h = append(*h, x.(string)) }
func (h *topicHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Info describes this node.
func (s *Service) Info() gateway.NodeInfo { return s.gw.Info() }

// CheckDrainWindow checks a drain window that a caller named (the "window"
// of POST /api/drain, DrainRequest.window in gRPC): more than 0 and at most
// MaxDrainWindow, else a CodeBadRequest error. Naming none means
// Config.DrainWindow: pass 0 to Drain. Every transport checks with this,
// so that they refuse the same windows with the same message.
func CheckDrainWindow(window time.Duration) error {
	if window <= 0 || window > MaxDrainWindow {
		return errorf(CodeBadRequest, "window %v out of range: more than 0, at most %v", window, MaxDrainWindow)
	}
	return nil
}

// Drain puts this node in drain, as the first phase of SIGTERM does
// (gateway.Gateway.Drain): new websocket upgrades get 503 with Retry-After,
// /readyz answers 503, and the open connections are closed with 1001 spread
// over window (0: Config.DrainWindow; else see CheckDrainWindow) so that
// they reconnect to other nodes. The process keeps running: its operator or
// orchestrator stops it. Draining a draining node changes nothing. It
// returns the node's Info.
func (s *Service) Drain(_ context.Context, window time.Duration) (gateway.NodeInfo, error) {
	if window == 0 {
		window = s.cfg.DrainWindow
	} else if err := CheckDrainWindow(window); err != nil {
		return gateway.NodeInfo{}, err
	}
	if err := s.gw.Drain(window); err != nil {
		return gateway.NodeInfo{}, ErrorOf(err)
	}
	s.cfg.Logger.Warn("drain asked through the push API", "window", window)
	return s.gw.Info(), nil
}

// Nodes describes every node of the cluster heard from recently.
func (s *Service) Nodes() Cluster { return Cluster{Nodes: s.gw.Nodes()} }

// Subscribe calls fn with every message published on topic anywhere in the
// cluster, as websocket subscribers receive them, until ctx ends (it then
// returns nil), fn returns an error (returned as it is), or the service or
// the gateway closes (CodeUnavailable). ready, if not nil, is called once
// the subscription is in place: every message published after it returns
// is delivered (unless dropped). While it runs it counts as one subscriber
// of topic on this node (see gateway.Listener): messages wait in a queue of
// Config.SubscribeQueue; past it they are dropped and counted in
// Delivery.Dropped.
func (s *Service) Subscribe(ctx context.Context, topic string, ready func(), fn func(gateway.Delivery) error) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return errorf(CodeUnavailable, "the server is shutting down")
	}
	l, err := s.gw.Listen(topic, s.cfg.SubscribeQueue)
	if err != nil {
		return ErrorOf(err)
	}
	defer l.Close()
	if ready != nil {
		ready()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // ends with this call: cancel runs on return
		select {
		case <-s.closing:
			l.Close()
		case <-ctx.Done():
		}
	}()
	for {
		d, err := l.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return errorf(CodeUnavailable, "the server is shutting down")
		}
		if err := fn(d); err != nil {
			return err
		}
	}
}

// BinaryData returns the JSON form of a binary payload: a JSON string
// holding its standard base64 (RFC 4648 with padding), which is how
// protobuf's JSON mapping writes bytes. Binary payloads of the gRPC API
// travel and are delivered in this form (see docs/api.md).
func BinaryData(b []byte) []byte {
	out := make([]byte, 0, base64.StdEncoding.EncodedLen(len(b))+2)
	out = append(out, '"')
	out = base64.StdEncoding.AppendEncode(out, b)
	return append(out, '"')
}
