package cluster

import (
	"fmt"
	"time"

	"github.com/firetower-go/firetower/broker"
)

// Role is what a client of a manager is.
type Role uint8

// Roles.
const (
	// RoleGateway is a gateway node: it reports interest, publishes, and
	// receives the publishes of its topics and every command.
	RoleGateway Role = 1
	// RolePublisher is an external publisher: it publishes, sends commands
	// and asks counts, and never receives messages. It has no lease.
	RolePublisher Role = 2
)

// String returns "gateway" or "publisher".
func (r Role) String() string {
	switch r {
	case RoleGateway:
		return "gateway"
	case RolePublisher:
		return "publisher"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// Hello opens a session. NodeID is the client's stable id (a gateway's node
// id, never its address); Session is random per process run, so that the
// manager can tell a reconnect of the same run from a restart; Token is the
// shared cluster secret, empty when none is configured.
type Hello struct {
	Role     Role
	NodeID   string
	Session  uint64
	Token    string
	MaxFrame uint32 // the longest frame the client accepts
}

// AppendHello appends a HELLO frame.
func AppendHello(b []byte, h Hello) []byte {
	b, s := begin(b, TypeHello)
	b = append(b, byte(h.Role))
	b = appendStr16(b, h.NodeID)
	b = binary64(b, h.Session)
	b = appendStr16(b, h.Token)
	b = binary32(b, h.MaxFrame)
	return finish(b, s)
}

// ParseHello parses a HELLO body.
func ParseHello(body []byte) (Hello, error) {
	p := parser{b: body}
	h := Hello{
		Role:     Role(p.u8("role")),
		NodeID:   p.str16("node id"),
		Session:  p.u64("session"),
		Token:    p.str16("token"),
		MaxFrame: p.u32("max frame"),
	}
	return h, p.end()
}

// Welcome accepts a session. Epoch is random per manager run: a client that
// sees it change knows the manager restarted. Lease is how long the manager
// keeps a gateway's counts after its connection drops; Heartbeat is the ping
// interval the manager expects (it closes a session silent for three).
type Welcome struct {
	ManagerID string
	Epoch     uint64
	Lease     time.Duration // carried in milliseconds
	Heartbeat time.Duration // carried in milliseconds
	MaxFrame  uint32        // the longest frame the manager accepts
}

// AppendWelcome appends a WELCOME frame.
func AppendWelcome(b []byte, w Welcome) []byte {
	b, s := begin(b, TypeWelcome)
	b = appendStr16(b, w.ManagerID)
	b = binary64(b, w.Epoch)
	b = binary32(b, millis(w.Lease))
	b = binary32(b, millis(w.Heartbeat))
	b = binary32(b, w.MaxFrame)
	return finish(b, s)
}

// ParseWelcome parses a WELCOME body.
func ParseWelcome(body []byte) (Welcome, error) {
	p := parser{b: body}
	w := Welcome{
		ManagerID: p.str16("manager id"),
		Epoch:     p.u64("epoch"),
		Lease:     time.Duration(p.u32("lease")) * time.Millisecond,
		Heartbeat: time.Duration(p.u32("heartbeat")) * time.Millisecond,
		MaxFrame:  p.u32("max frame"),
	}
	return w, p.end()
}

func millis(d time.Duration) uint32 {
	ms := d.Milliseconds()
	switch {
	case ms < 0:
		return 0
	case ms > 1<<32-1:
		return 1<<32 - 1
	}
	return uint32(ms)
}

// AppendPing appends a PING frame; the peer answers with a PONG carrying
// nonce.
func AppendPing(b []byte, nonce uint64) []byte { return appendU64Frame(b, TypePing, nonce) }

// AppendPong appends a PONG frame.
func AppendPong(b []byte, nonce uint64) []byte { return appendU64Frame(b, TypePong, nonce) }

// ParseNonce parses a PING or PONG body.
func ParseNonce(body []byte) (uint64, error) { return parseU64Body(body, "nonce") }

// appendU64Frame appends a frame of type t whose body is v.
func appendU64Frame(b []byte, t Type, v uint64) []byte {
	b, s := begin(b, t)
	return finish(binary64(b, v), s)
}

// parseU64Body parses a body that is one u64.
func parseU64Body(body []byte, what string) (uint64, error) {
	p := parser{b: body}
	v := p.u64(what)
	return v, p.end()
}

// Interest is one entry of an INTEREST frame: the sender's absolute number
// of local subscribers of Topic (0 withdraws it).
type Interest struct {
	Topic string
	Count int64
}

// InterestLen is the encoded size of one entry.
func InterestLen(topic string) int { return 2 + len(topic) + 8 }

// AppendInterest appends an INTEREST frame with the entries. The caller keeps
// the frame under the peer's limit (HeaderLen-LengthLen plus the sum of
// InterestLen).
func AppendInterest(b []byte, entries []Interest) []byte {
	b, s := begin(b, TypeInterest)
	for _, e := range entries {
		b = appendStr16(b, e.Topic)
		b = binary64(b, uint64(e.Count))
	}
	return finish(b, s)
}

// ParseInterest parses an INTEREST body: its entries, in order. Topics are
// not empty; a topic may appear twice (the last entry wins).
func ParseInterest(body []byte) ([]Interest, error) {
	p := parser{b: body}
	var out []Interest
	for p.err == nil && len(p.b) > 0 {
		e := Interest{Topic: p.str16("topic"), Count: p.count("count")}
		if p.err == nil && e.Topic == "" {
			p.fail("empty topic")
		}
		out = append(out, e)
	}
	if err := p.end(); err != nil {
		return nil, err
	}
	return out, nil
}

// AppendSync appends a SYNC frame.
func AppendSync(b []byte) []byte {
	b, s := begin(b, TypeSync)
	return finish(b, s)
}

// MessageLen is the body length of m's
// PUBLISH or COMMAND frame.
func MessageLen(m *broker.Message) int {
	return 2 + len(m.Topic) + 8 + 2 + len(m.Origin) + 4 + len(m.Data)
}

// AppendMessage appends m as a PUBLISH frame, or a COMMAND frame if it is a
// command. The caller checks the lengths against the limits first
// (MessageLen, MaxStr16).
func AppendMessage(b []byte, m *broker.Message) []byte {
	t := TypePublish
	if m.Kind == broker.KindCommand {
		t = TypeCommand
	}
	b = growFor(b, HeaderLen+MessageLen(m))
	b, s := begin(b, t)
	b = appendStr16(b, m.Topic)
	b = binary64(b, m.ID)
	b = appendStr16(b, m.Origin)
	b = appendBytes32(b, m.Data)
	return finish(b, s)
}

// ParseMessage parses the body of a PUBLISH or COMMAND frame f. The
// message's Data is a slice of f.Raw, not a copy.
func ParseMessage(f Frame) (*broker.Message, error) {
	kind := broker.KindPublish
	switch f.Type {
	case TypePublish:
	case TypeCommand:
		kind = broker.KindCommand
	default:
		return nil, fmt.Errorf("%w: %v is not a message", ErrMalformed, f.Type)
	}
	p := parser{b: f.Body()}
	m := &broker.Message{Kind: kind}
	m.Topic = p.str16("topic")
	m.ID = p.u64("id")
	m.Origin = p.str16("origin")
	m.Data = p.bytes32("data")
	if err := p.end(); err != nil {
		return nil, err
	}
	if kind == broker.KindPublish && m.Topic == "" {
		return nil, fmt.Errorf("%w: empty topic", ErrMalformed)
	}
	if m.Data == nil {
		m.Data = []byte{}
	}
	return m, nil
}

// AppendConfirm appends a CONFIRM frame: the manager has received and
// routed the first n PUBLISH and COMMAND frames of the session (n counts
// from the session's first such frame, so it only grows). A manager sends
// one per batch of frames read together, not one per message.
func AppendConfirm(b []byte, n uint64) []byte { return appendU64Frame(b, TypeConfirm, n) }

// ParseConfirm parses a CONFIRM body.
func ParseConfirm(body []byte) (uint64, error) { return parseU64Body(body, "confirmed") }

// CountRequest asks the manager for the number of subscribers of Topic on
// every gateway but the asker's.
type CountRequest struct {
	ReqID uint64
	Topic string
}

// AppendCount appends a COUNT frame.
func AppendCount(b []byte, r CountRequest) []byte {
	b, s := begin(b, TypeCount)
	b = binary64(b, r.ReqID)
	b = appendStr16(b, r.Topic)
	return finish(b, s)
}

// ParseCount parses a COUNT body.
func ParseCount(body []byte) (CountRequest, error) {
	p := parser{b: body}
	r := CountRequest{ReqID: p.u64("request id"), Topic: p.str16("topic")}
	return r, p.end()
}

// CountReply answers the COUNT with the same ReqID.
type CountReply struct {
	ReqID uint64
	Count int64
}

// AppendCountReply appends a COUNT_REPLY frame.
func AppendCountReply(b []byte, r CountReply) []byte {
	b, s := begin(b, TypeCountReply)
	b = binary64(b, r.ReqID)
	b = binary64(b, uint64(r.Count))
	return finish(b, s)
}

// ParseCountReply parses a COUNT_REPLY body.
func ParseCountReply(body []byte) (CountReply, error) {
	p := parser{b: body}
	r := CountReply{ReqID: p.u64("request id"), Count: p.count("count")}
	return r, p.end()
}

// Code says why a session ends.
type Code uint16

// Close codes. Every code but CodeBye leaves a gateway's counts to its lease.
const (
	// CodeBye: a gateway leaves for good (its broker was closed); the
	// manager drops its counts at once.
	CodeBye Code = 0
	// CodeGoingAway: the sender is shutting down; reconnect with backoff.
	CodeGoingAway Code = 1
	// CodeProtocolError: a malformed or unexpected frame.
	CodeProtocolError Code = 2
	// CodeFrameTooLarge: a frame was over the receiver's limit.
	CodeFrameTooLarge Code = 3
	// CodeUnsupportedVersion: the frame version is not spoken here.
	CodeUnsupportedVersion Code = 4
	// CodeSlowConsumer: the session's outbound queue overflowed; reconnect
	// and resync.
	CodeSlowConsumer Code = 5
	// CodeReplaced: a newer session with the same node id took over.
	CodeReplaced Code = 6
	// CodeTimeout: nothing was heard within the heartbeat deadline.
	CodeTimeout Code = 7
	// CodeUnauthorized: the HELLO's token is wrong.
	CodeUnauthorized Code = 8
)

var codeNames = map[Code]string{
	CodeBye: "bye", CodeGoingAway: "going away", CodeProtocolError: "protocol error",
	CodeFrameTooLarge: "frame too large", CodeUnsupportedVersion: "unsupported version",
	CodeSlowConsumer: "slow consumer", CodeReplaced: "replaced by a new session",
	CodeTimeout: "heartbeat timeout", CodeUnauthorized: "unauthorized",
}

// String returns the code's meaning.
func (c Code) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("code %d", uint16(c))
}

// Close is the last frame of a session.
type Close struct {
	Code   Code
	Reason string
}

// AppendClose appends a CLOSE frame; a reason longer than MaxStr16 is cut.
func AppendClose(b []byte, c Close) []byte {
	b, s := begin(b, TypeClose)
	b = binary16(b, uint16(c.Code))
	reason := c.Reason
	if len(reason) > MaxStr16 {
		reason = reason[:MaxStr16]
	}
	b = appendStr16(b, reason)
	return finish(b, s)
}

// ParseClose parses a CLOSE body.
func ParseClose(body []byte) (Close, error) {
	p := parser{b: body}
	c := Close{Code: Code(p.u16("code")), Reason: p.str16("reason")}
	return c, p.end()
}

// CodeOf maps a read error to the close code that reports it.
func CodeOf(err error) Code {
	switch {
	case isErr(err, ErrFrameTooLarge):
		return CodeFrameTooLarge
	case isErr(err, ErrVersion):
		return CodeUnsupportedVersion
	}
	return CodeProtocolError
}
