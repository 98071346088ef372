package grpcapi_test

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/internal/apitest"
	"github.com/firetower-go/firetower/protocol"
	"github.com/firetower-go/firetower/pushapi"
	"github.com/firetower-go/firetower/pushapi/grpcapi"
	"github.com/firetower-go/firetower/pushapi/pb"
	"github.com/firetower-go/firetower/server"
	"github.com/gorilla/websocket"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
)

// dial connects a gRPC client to s; it is closed at the end of the test.
func dial(t *testing.T, s *apitest.Server) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(s.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// authed returns a context carrying key as "authorization: Bearer KEY".
func authed(t *testing.T, key string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
}

// wantCode checks a status code and the ErrorInfo reason.
func wantCode(t *testing.T, err error, code codes.Code, reason pushapi.Code) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != code {
		t.Fatalf("error %v, want %v", err, code)
	}
	if reason == "" {
		return
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == grpcapi.ErrorDomain && info.Reason == string(reason) {
			return
		}
	}
	t.Fatalf("error %v has no ErrorInfo with reason %s: %v", err, reason, st.Details())
}

func start(t *testing.T, cfg server.Config) (*apitest.Server, pb.PushServiceClient) {
	cfg.QuietCounts = true
	s := apitest.Start(t, cfg)
	return s, pb.NewPushServiceClient(dial(t, s))
}

func TestPublishAndBroadcast(t *testing.T) {
	s, c := start(t, server.Config{})
	ctx := authed(t, s.Key)
	v1 := apitest.Dial(t, s.WS, false)
	v2 := apitest.Dial(t, s.WS, true)
	apitest.Subscribe(t, s, v1, false, "/g/a", 1)
	apitest.Subscribe(t, s, v2, true, "/g/a", 2)

	res, err := c.Publish(ctx, &pb.PublishRequest{Topic: "/g/a", Payload: &pb.PublishRequest_Json{Json: `{"x":[1,2]}`}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Topic != "/g/a" || res.Id == 0 {
		t.Errorf("answer %v", res)
	}
	if got := apitest.Next(t, v1); got != `{"x":[1,2]}` {
		t.Errorf("v1 got %s", got)
	}
	id := strconv.FormatUint(res.Id, 10)
	if got, want := apitest.Next(t, v2), `{"type":"message","topic":"/g/a","id":"`+id+`","data":{"x":[1,2]}}`; got != want {
		t.Errorf("v2 got %s, want %s", got, want)
	}

	// A binary payload travels as the JSON string of its base64.
	if _, err := c.Publish(ctx, &pb.PublishRequest{Topic: "/g/a", Payload: &pb.PublishRequest_Binary{Binary: []byte{0, 1, 2, 0xff}}}); err != nil {
		t.Fatal(err)
	}
	if got := apitest.Next(t, v1); got != `"AAEC/w=="` {
		t.Errorf("v1 got %s for a binary payload", got)
	}
	if got := apitest.Next(t, v2); !strings.HasSuffix(got, `,"data":"AAEC/w=="}`) {
		t.Errorf("v2 got %s for a binary payload", got)
	}

	b, err := c.Broadcast(ctx, &pb.BroadcastRequest{Topics: []string{"/g/b", "/g/a"}, Payload: &pb.BroadcastRequest_Json{Json: `7`}})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Messages) != 2 || b.Messages[1].Topic != "/g/a" {
		t.Errorf("broadcast answer %v", b)
	}
	if got := apitest.Next(t, v1); got != `7` {
		t.Errorf("v1 got %s", got)
	}
}

func TestCommands(t *testing.T) {
	s, c := start(t, server.Config{Gateway: gateway.Config{NodeID: "g-node"}})
	ctx := authed(t, s.Key)
	c1 := apitest.Dial(t, s.WS+"?client=c1&user=u1", false)
	c2 := apitest.Dial(t, s.WS+"?client=c2&user=u2", true)
	apitest.Subscribe(t, s, c1, false, "/g/t", 1)
	apitest.Subscribe(t, s, c2, true, "/g/t", 2)
	apitest.Subscribe(t, s, c1, false, "/g/u", 1)

	a, err := c.PushClient(ctx, &pb.PushClientRequest{ClientId: "c1", Payload: &pb.PushClientRequest_Json{Json: `"to c1"`}})
	if err != nil || a.Local != 1 {
		t.Fatalf("PushClient: %v, %v", a, err)
	}
	if got := apitest.Next(t, c1); got != `"to c1"` {
		t.Errorf("c1 got %s", got)
	}
	a, err = c.PushUser(ctx, &pb.PushUserRequest{UserId: "u2", Payload: &pb.PushUserRequest_Binary{Binary: []byte("hi")}})
	if err != nil || a.Local != 1 {
		t.Fatalf("PushUser: %v, %v", a, err)
	}
	if got := apitest.Next(t, c2); got != `{"type":"direct","data":"aGk="}` {
		t.Errorf("c2 got %s", got)
	}
	if a, err = c.PushClient(ctx, &pb.PushClientRequest{ClientId: "nobody", Payload: &pb.PushClientRequest_Json{Json: `1`}}); err != nil || a.Local != 0 {
		t.Errorf("push to an unknown client: %v, %v", a, err)
	}

	n, err := c.Count(ctx, &pb.CountRequest{Topic: "/g/t"})
	if err != nil || n.Count != 2 || n.Local != 2 {
		t.Fatalf("Count: %v, %v", n, err)
	}
	page, err := c.Topics(ctx, &pb.TopicsRequest{Limit: 1})
	if err != nil || len(page.Topics) != 1 || page.Topics[0].Topic != "/g/t" || page.NextCursor == "" {
		t.Fatalf("Topics page 1: %v, %v", page, err)
	}
	page, err = c.Topics(ctx, &pb.TopicsRequest{Limit: 1, Cursor: page.NextCursor})
	if err != nil || len(page.Topics) != 1 || page.Topics[0].Topic != "/g/u" || page.NextCursor != "" {
		t.Fatalf("Topics page 2: %v, %v", page, err)
	}

	if a, err = c.RemoveUserFromTopic(ctx, &pb.RemoveUserFromTopicRequest{UserId: "u1", Topic: "/g/t"}); err != nil || a.Local != 1 {
		t.Fatalf("RemoveUserFromTopic: %v, %v", a, err)
	}
	if a, err = c.CloseTopic(ctx, &pb.CloseTopicRequest{Topic: "/g/t"}); err != nil || a.Local != 1 {
		t.Fatalf("CloseTopic: %v, %v", a, err)
	}
	if n, err = c.Count(ctx, &pb.CountRequest{Topic: "/g/t"}); err != nil || n.Count != 0 {
		t.Fatalf("Count after CloseTopic: %v, %v", n, err)
	}

	info, err := c.Info(ctx, &pb.InfoRequest{})
	if err != nil || info.Id != "g-node" || !info.Self || info.Stats.GetConnections() != 2 || info.StartedAt.AsTime().IsZero() {
		t.Fatalf("Info: %v, %v", info, err)
	}
	nodes, err := c.Nodes(ctx, &pb.NodesRequest{})
	if err != nil || len(nodes.Nodes) != 1 || nodes.Nodes[0].Id != "g-node" {
		t.Fatalf("Nodes: %v, %v", nodes, err)
	}

	if a, err = c.DisconnectClient(ctx, &pb.DisconnectClientRequest{ClientId: "c1"}); err != nil || a.Local != 1 {
		t.Fatalf("DisconnectClient: %v, %v", a, err)
	}
	wantClosed(t, c1)
	if a, err = c.DisconnectUser(ctx, &pb.DisconnectUserRequest{UserId: "u2"}); err != nil || a.Local != 1 {
		t.Fatalf("DisconnectUser: %v, %v", a, err)
	}
	wantClosed(t, c2)
}

func wantClosed(t *testing.T, c *websocket.Conn) {
	t.Helper()
	_, err := apitest.NextErr(c, 5*time.Second)
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != protocol.CloseKicked {
		t.Fatalf("read: %v, want close %d", err, protocol.CloseKicked)
	}
}

func TestErrors(t *testing.T) {
	s, c := start(t, server.Config{Gateway: gateway.Config{MaxMessageSize: 1000}})
	ctx := authed(t, s.Key)
	js := func(j string) *pb.PublishRequest_Json { return &pb.PublishRequest_Json{Json: j} }

	bare, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Publish(bare, &pb.PublishRequest{Topic: "a", Payload: js("1")})
	wantCode(t, err, codes.Unauthenticated, pushapi.CodeUnauthenticated)
	_, err = c.Info(authed(t, "guess"), &pb.InfoRequest{})
	wantCode(t, err, codes.Unauthenticated, pushapi.CodeUnauthenticated)
	stream, err := c.Subscribe(bare, &pb.SubscribeRequest{Topic: "a"})
	if err == nil {
		_, err = stream.Recv()
	}
	wantCode(t, err, codes.Unauthenticated, pushapi.CodeUnauthenticated)
	// x-api-key is the alternative to the Bearer token.
	if _, err := c.Info(metadata.AppendToOutgoingContext(bare, "x-api-key", s.Key), &pb.InfoRequest{}); err != nil {
		t.Errorf("x-api-key: %v", err)
	}

	for _, tc := range []struct {
		name   string
		call   func() error
		code   codes.Code
		reason pushapi.Code
	}{
		{"invalid topic", func() error {
			_, err := c.Publish(ctx, &pb.PublishRequest{Topic: "a,b", Payload: js("1")})
			return err
		}, codes.InvalidArgument, pushapi.CodeInvalidTopic},
		{"empty topic", func() error {
			_, err := c.Count(ctx, &pb.CountRequest{})
			return err
		}, codes.InvalidArgument, pushapi.CodeInvalidTopic},
		{"no payload", func() error {
			_, err := c.Publish(ctx, &pb.PublishRequest{Topic: "a"})
			return err
		}, codes.InvalidArgument, pushapi.CodeBadRequest},
		{"not JSON", func() error {
			_, err := c.Publish(ctx, &pb.PublishRequest{Topic: "a", Payload: js("{nope")})
			return err
		}, codes.InvalidArgument, pushapi.CodeBadRequest},
		{"empty JSON", func() error {
			_, err := c.Publish(ctx, &pb.PublishRequest{Topic: "a", Payload: js("")})
			return err
		}, codes.InvalidArgument, pushapi.CodeBadRequest},
		{"data over the limit", func() error {
			_, err := c.Publish(ctx, &pb.PublishRequest{Topic: "a", Payload: js(`"` + strings.Repeat("x", 1000) + `"`)})
			return err
		}, codes.ResourceExhausted, pushapi.CodeTooLarge},
		{"binary over the limit once in base64", func() error {
			_, err := c.Publish(ctx, &pb.PublishRequest{Topic: "a", Payload: &pb.PublishRequest_Binary{Binary: make([]byte, 800)}})
			return err
		}, codes.ResourceExhausted, pushapi.CodeTooLarge},
		{"request over the body limit", func() error {
			_, err := c.Publish(ctx, &pb.PublishRequest{Topic: "a", Payload: js(`"` + strings.Repeat("x", 1000+pushapi.DefaultBodySlack) + `"`)})
			return err
		}, codes.ResourceExhausted, ""},
		{"broadcast without topics", func() error {
			_, err := c.Broadcast(ctx, &pb.BroadcastRequest{Payload: &pb.BroadcastRequest_Json{Json: "1"}})
			return err
		}, codes.InvalidArgument, pushapi.CodeBadRequest},
		{"push without a client id", func() error {
			_, err := c.PushClient(ctx, &pb.PushClientRequest{Payload: &pb.PushClientRequest_Json{Json: "1"}})
			return err
		}, codes.InvalidArgument, pushapi.CodeBadRequest},
		{"disconnect without a user id", func() error {
			_, err := c.DisconnectUser(ctx, &pb.DisconnectUserRequest{})
			return err
		}, codes.InvalidArgument, pushapi.CodeBadRequest},
		{"bad cursor", func() error {
			_, err := c.Topics(ctx, &pb.TopicsRequest{Cursor: "%%"})
			return err
		}, codes.InvalidArgument, pushapi.CodeBadRequest},
		{"limit too high", func() error {
			_, err := c.Topics(ctx, &pb.TopicsRequest{Limit: 5000})
			return err
		}, codes.InvalidArgument, pushapi.CodeBadRequest},
		{"subscribe to an invalid topic", func() error {
			st, err := c.Subscribe(ctx, &pb.SubscribeRequest{Topic: ""})
			if err == nil {
				_, err = st.Recv()
			}
			return err
		}, codes.InvalidArgument, pushapi.CodeInvalidTopic},
	} {
		t.Run(tc.name, func(t *testing.T) { wantCode(t, tc.call(), tc.code, tc.reason) })
	}
}

// Server reflection answers without a key, so that grpcurl can list and
// describe the service.
func TestReflection(t *testing.T) {
	s := apitest.Start(t, server.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := rpb.NewServerReflectionClient(dial(t, s)).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, svc := range resp.GetListServicesResponse().GetService() {
		names = append(names, svc.Name)
	}
	if !strings.Contains(strings.Join(names, " "), "firetower.v1.PushService") {
		t.Errorf("services %v", names)
	}
	_ = stream.CloseSend()
}

// Subscribe receives what websocket clients receive, counts as a
// subscriber while it runs, and goes away with the stream.
func TestSubscribe(t *testing.T) {
	s, c := start(t, server.Config{})
	ctx, cancel := context.WithCancel(authed(t, s.Key))
	defer cancel()
	const topic = "/g/sub"
	ws := apitest.Dial(t, s.WS, true)
	apitest.Subscribe(t, s, ws, true, topic, 1)

	stream, err := c.Subscribe(ctx, &pb.SubscribeRequest{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	// The header says the subscription is in place.
	md, err := stream.Header()
	if err != nil || len(md.Get(grpcapi.SubscribedHeader)) != 1 || md.Get(grpcapi.SubscribedHeader)[0] != topic {
		t.Fatalf("header %v, %v", md, err)
	}
	if n := s.Gateway().LocalConnectNum(topic); n != 2 {
		t.Errorf("%d local subscribers with the stream, want 2", n)
	}

	// A websocket client publishes, the API publishes JSON and binary: the
	// stream gets each, in order, as the v2 client does.
	apitest.Send(t, ws, `{"id":"p","type":"publish","topic":"/g/sub","data":{"from":"ws"}}`)
	// Two publishers' messages have no order between them: the API
	// publishes once the websocket's own message is back (its fan-out to
	// every local subscriber is done).
	frames := []string{apitest.Next(t, ws)}
	if _, err := c.Publish(ctx, &pb.PublishRequest{Topic: topic, Payload: &pb.PublishRequest_Json{Json: `[true]`}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctx, &pb.PublishRequest{Topic: topic, Payload: &pb.PublishRequest_Binary{Binary: []byte{9}}}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		m, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if len(frames) <= i {
			frames = append(frames, apitest.Next(t, ws))
		}
		frame := frames[i]
		want := `{"type":"message","topic":"` + m.Topic + `","id":"` + strconv.FormatUint(m.Id, 10) + `","data":` + m.Json + `}`
		if frame != want || m.Dropped != 0 {
			t.Errorf("message %d: stream %v, websocket %s", i, m, frame)
		}
	}

	cancel()
	if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
		t.Errorf("after cancel: %v", err)
	}
	apitest.CheckFor(t, 5*time.Second, func() error {
		if n := s.Gateway().LocalConnectNum(topic); n != 1 {
			return errors.New("the stream's subscription is still there")
		}
		return nil
	})
}

// A server shutdown ends the Subscribe streams with UNAVAILABLE.
func TestSubscribeShutdown(t *testing.T) {
	s, c := start(t, server.Config{})
	stream, err := c.Subscribe(authed(t, s.Key), &pb.SubscribeRequest{Topic: "/g/x"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Header(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := stream.Recv()
		done <- err
	}()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == io.EOF || status.Code(err) != codes.Unavailable {
			t.Errorf("stream ended with %v, want UNAVAILABLE", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end with the server")
	}
}
