// Package grpcapi serves the push API (package pushapi) over gRPC: the
// firetower.v1.PushService of proto/firetower/v1/push.proto, with the same
// operations, limits and errors as the HTTP API, the same API key (in the
// metadata), server reflection (so grpcurl works), and a server-streaming
// Subscribe for backend consumers of a topic.
package grpcapi

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/pushapi"
	"github.com/firetower-go/firetower/pushapi/pb"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// ErrorDomain is the domain of the ErrorInfo detail attached to every
// error status; its Reason is the pushapi.Code ("invalid_topic", ...).
const ErrorDomain = "firetower"

// SubscribedHeader is the response header a Subscribe stream sends once
// its subscription is in place; its value is the topic.
const SubscribedHeader = "firetower-subscribed"

// New returns a gRPC server with the PushService of svc behind auth, and
// server reflection (served without a key: the schema is public). Requests
// larger than svc.Config().MaxBodyBytes get RESOURCE_EXHAUSTED. opts are
// added to the server's options (TLS credentials, keepalive, ...).
func New(svc *pushapi.Service, auth pushapi.Auth, opts ...grpc.ServerOption) *grpc.Server {
	opts = append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(int(svc.Config().MaxBodyBytes)),
		grpc.ChainUnaryInterceptor(unaryAuth(auth)),
		grpc.ChainStreamInterceptor(streamAuth(auth)),
	}, opts...)
	s := grpc.NewServer(opts...)
	pb.RegisterPushServiceServer(s, &server{svc: svc})
	reflection.Register(s)
	return s
}

// public reports whether a method is served without a key.
func public(method string) bool {
	return strings.HasPrefix(method, "/grpc.reflection.")
}

func authorized(ctx context.Context, auth pushapi.Auth) error {
	md, _ := metadata.FromIncomingContext(ctx)
	get := func(name string) string {
		if v := md.Get(strings.ToLower(name)); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	if auth.CheckHeader(get) {
		return nil
	}
	return statusOf(&pushapi.Error{Code: pushapi.CodeUnauthenticated,
		Message: "missing or wrong API key (send authorization: Bearer KEY or x-api-key: KEY)"})
}

func unaryAuth(auth pushapi.Auth) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if !public(info.FullMethod) {
			if err := authorized(ctx, auth); err != nil {
				return nil, err
			}
		}
		return h(ctx, req)
	}
}

func streamAuth(auth pushapi.Auth) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if !public(info.FullMethod) {
			if err := authorized(ss.Context(), auth); err != nil {
				return err
			}
		}
		return h(srv, ss)
	}
}

// statusOf converts an API error to a gRPC status with an ErrorInfo detail.
func statusOf(err error) error {
	e := pushapi.ErrorOf(err)
	code := codes.Internal
	switch e.Code {
	case pushapi.CodeBadRequest, pushapi.CodeInvalidTopic, pushapi.CodeUnsupportedMediaType:
		code = codes.InvalidArgument
	case pushapi.CodeUnauthenticated:
		code = codes.Unauthenticated
	case pushapi.CodeNotFound:
		code = codes.NotFound
	case pushapi.CodeMethodNotAllowed:
		code = codes.Unimplemented
	case pushapi.CodeTooLarge:
		code = codes.ResourceExhausted
	case pushapi.CodeUnavailable:
		code = codes.Unavailable
	case pushapi.CodeUnknownOutcome:
		code = codes.DeadlineExceeded // "may have completed", as gRPC defines it
	}
	st := status.New(code, e.Message)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: string(e.Code), Domain: ErrorDomain}); err == nil {
		st = d
	}
	return st.Err()
}

type server struct {
	pb.UnimplementedPushServiceServer
	svc *pushapi.Service
}

var _ pb.PushServiceServer = (*server)(nil)

// payload returns the data of a request's oneof: a JSON text as it is, a
// binary payload as its base64 JSON string, nil when neither is set.
func payload(isJSON bool, text string, isBinary bool, bin []byte) []byte {
	switch {
	case isJSON:
		return []byte(text)
	case isBinary:
		return pushapi.BinaryData(bin)
	}
	return nil
}

func (s *server) Publish(ctx context.Context, req *pb.PublishRequest) (*pb.PublishResponse, error) {
	_, isJSON := req.Payload.(*pb.PublishRequest_Json)
	_, isBin := req.Payload.(*pb.PublishRequest_Binary)
	p, err := s.svc.Publish(ctx, req.Topic, payload(isJSON, req.GetJson(), isBin, req.GetBinary()))
	if err != nil {
		return nil, statusOf(err)
	}
	return published(p), nil
}

func published(p pushapi.Published) *pb.PublishResponse {
	id, _ := strconv.ParseUint(p.ID, 10, 64)
	return &pb.PublishResponse{Topic: p.Topic, Id: id}
}

func (s *server) Broadcast(ctx context.Context, req *pb.BroadcastRequest) (*pb.BroadcastResponse, error) {
	if len(req.Topics) == 0 {
		return nil, statusOf(&pushapi.Error{Code: pushapi.CodeBadRequest, Message: "topics is required"})
	}
	_, isJSON := req.Payload.(*pb.BroadcastRequest_Json)
	_, isBin := req.Payload.(*pb.BroadcastRequest_Binary)
	msgs, err := s.svc.Broadcast(ctx, req.Topics, payload(isJSON, req.GetJson(), isBin, req.GetBinary()))
	if err != nil {
		return nil, statusOf(err)
	}
	out := &pb.BroadcastResponse{Messages: make([]*pb.PublishResponse, len(msgs))}
	for i, m := range msgs {
		out.Messages[i] = published(m)
	}
	return out, nil
}

func (s *server) PushClient(ctx context.Context, req *pb.PushClientRequest) (*pb.AffectedResponse, error) {
	_, isJSON := req.Payload.(*pb.PushClientRequest_Json)
	_, isBin := req.Payload.(*pb.PushClientRequest_Binary)
	return affected(s.svc.PushClient(ctx, req.ClientId, payload(isJSON, req.GetJson(), isBin, req.GetBinary())))
}

func (s *server) PushUser(ctx context.Context, req *pb.PushUserRequest) (*pb.AffectedResponse, error) {
	_, isJSON := req.Payload.(*pb.PushUserRequest_Json)
	_, isBin := req.Payload.(*pb.PushUserRequest_Binary)
	return affected(s.svc.PushUser(ctx, req.UserId, payload(isJSON, req.GetJson(), isBin, req.GetBinary())))
}

func (s *server) DisconnectClient(ctx context.Context, req *pb.DisconnectClientRequest) (*pb.AffectedResponse, error) {
	return affected(s.svc.DisconnectClient(ctx, req.ClientId))
}

func (s *server) DisconnectUser(ctx context.Context, req *pb.DisconnectUserRequest) (*pb.AffectedResponse, error) {
	return affected(s.svc.DisconnectUser(ctx, req.UserId))
}

func (s *server) RemoveUserFromTopic(ctx context.Context, req *pb.RemoveUserFromTopicRequest) (*pb.AffectedResponse, error) {
	return affected(s.svc.RemoveUserFromTopic(ctx, req.UserId, req.Topic))
}

func (s *server) CloseTopic(ctx context.Context, req *pb.CloseTopicRequest) (*pb.AffectedResponse, error) {
	return affected(s.svc.CloseTopic(ctx, req.Topic))
}

func affected(a pushapi.Affected, err error) (*pb.AffectedResponse, error) {
	if err != nil {
		return nil, statusOf(err)
	}
	return &pb.AffectedResponse{Local: int64(a.Local)}, nil
}

func (s *server) Count(ctx context.Context, req *pb.CountRequest) (*pb.TopicCount, error) {
	c, err := s.svc.Count(ctx, req.Topic)
	if err != nil {
		return nil, statusOf(err)
	}
	return &pb.TopicCount{Topic: c.Topic, Count: c.Count, Local: c.Local}, nil
}

func (s *server) Topics(ctx context.Context, req *pb.TopicsRequest) (*pb.TopicsResponse, error) {
	page, err := s.svc.Topics(ctx, req.Cursor, int(req.Limit))
	if err != nil {
		return nil, statusOf(err)
	}
	out := &pb.TopicsResponse{NextCursor: page.NextCursor, Partial: page.Partial, Topics: make([]*pb.TopicCount, len(page.Topics))}
	for i, c := range page.Topics {
		out.Topics[i] = &pb.TopicCount{Topic: c.Topic, Count: c.Count, Local: c.Local}
	}
	return out, nil
}

func (s *server) Info(context.Context, *pb.InfoRequest) (*pb.NodeInfo, error) {
	return nodeInfo(s.svc.Info()), nil
}

func (s *server) Nodes(context.Context, *pb.NodesRequest) (*pb.NodesResponse, error) {
	nodes := s.svc.Nodes().Nodes
	out := &pb.NodesResponse{Nodes: make([]*pb.NodeInfo, len(nodes))}
	for i, n := range nodes {
		out.Nodes[i] = nodeInfo(n)
	}
	return out, nil
}

// Drain is POST /api/drain: an unset window means the server's
// --drain-window, a set one is checked as HTTP checks its "window" (so
// "0s" is refused, not taken for the default).
func (s *server) Drain(ctx context.Context, req *pb.DrainRequest) (*pb.NodeInfo, error) {
	var window time.Duration
	if w := req.GetWindow(); w != nil {
		if err := w.CheckValid(); err != nil {
			return nil, statusOf(&pushapi.Error{Code: pushapi.CodeBadRequest, Message: "window: " + err.Error()})
		}
		window = w.AsDuration()
		if err := pushapi.CheckDrainWindow(window); err != nil {
			return nil, statusOf(err)
		}
	}
	n, err := s.svc.Drain(ctx, window)
	if err != nil {
		return nil, statusOf(err)
	}
	return nodeInfo(n), nil
}

func nodeInfo(n gateway.NodeInfo) *pb.NodeInfo {
	st := n.Stats
	return &pb.NodeInfo{
		Id: n.ID, Version: n.Version, Broker: n.Broker,
		StartedAt: timestamppb.New(n.StartedAt), UpdatedAt: timestamppb.New(n.UpdatedAt),
		Draining: n.Draining, Interval: durationpb.New(n.Interval), Self: n.Self,
		Stats: &pb.Stats{
			Connections: st.Connections, Topics: st.Topics, ConnectsTotal: st.ConnectsTotal,
			DisconnectsTotal: st.DisconnectsTotal, FramesIn: st.FramesIn, BytesIn: st.BytesIn,
			FramesOut: st.FramesOut, BytesOut: st.BytesOut, Published: st.Published,
			RemoteIn: st.RemoteIn, PublishErrors: st.PublishErrors, Dropped: st.Dropped,
			SlowDisconnects: st.SlowDisconnects, ReadTimeouts: st.ReadTimeouts,
			ProtocolErrors: st.ProtocolErrors, Panics: st.Panics,
		},
	}
}

// Subscribe sends the SubscribedHeader header once the subscription is in
// place, then one Message per delivery, until the client ends the call or
// the server shuts down (UNAVAILABLE).
func (s *server) Subscribe(req *pb.SubscribeRequest, stream grpc.ServerStreamingServer[pb.Message]) error {
	var sendErr error
	ready := func() {
		sendErr = stream.SendHeader(metadata.Pairs(SubscribedHeader, req.Topic))
	}
	err := s.svc.Subscribe(stream.Context(), req.Topic, ready, func(d gateway.Delivery) error {
		if sendErr != nil {
			return sendErr
		}
		return stream.Send(&pb.Message{Topic: d.Topic, Id: d.ID, Json: string(d.Data), Dropped: d.Dropped})
	})
	var apiErr *pushapi.Error
	switch {
	case err == nil:
		return stream.Context().Err() // the client went away
	case errors.As(err, &apiErr):
		return statusOf(err)
	}
	return err // from the stream itself: already a status
}
