package grpcapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/internal/apitest"
	"github.com/firetower-go/firetower/pushapi"
	"github.com/firetower-go/firetower/pushapi/pb"
	"github.com/firetower-go/firetower/server"
	"github.com/gorilla/websocket"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Drain over gRPC is POST /api/drain: the key is checked, a window out of
// range is refused with the HTTP API's message and leaves the node as it
// was; a drain closes the websocket clients with 1001, new upgrades get
// 503 with Retry-After and /readyz 503, the node still publishes, a second
// drain changes nothing, and the server still shuts down cleanly.
func TestDrain(t *testing.T) {
	s, c := start(t, server.Config{})
	ctx := authed(t, s.Key)
	clients := []*websocket.Conn{apitest.Dial(t, s.WS, false), apitest.Dial(t, s.WS, true)}
	apitest.Subscribe(t, s, clients[0], false, "/g/drain", 1)
	apitest.Subscribe(t, s, clients[1], true, "/g/drain", 2)

	bare, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Drain(bare, &pb.DrainRequest{})
	wantCode(t, err, codes.Unauthenticated, pushapi.CodeUnauthenticated)
	_, err = c.Drain(authed(t, "guess"), &pb.DrainRequest{Window: durationpb.New(time.Second)})
	wantCode(t, err, codes.Unauthenticated, pushapi.CodeUnauthenticated)

	for _, tc := range []struct {
		name   string
		window *durationpb.Duration
	}{
		{"negative", durationpb.New(-time.Second)},
		{"zero", durationpb.New(0)},
		{"over 1h", durationpb.New(time.Hour + time.Nanosecond)},
		{"signs differ", &durationpb.Duration{Seconds: 1, Nanos: -1}},
		{"beyond time.Duration", &durationpb.Duration{Seconds: 1 << 40}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Drain(ctx, &pb.DrainRequest{Window: tc.window})
			wantCode(t, err, codes.InvalidArgument, pushapi.CodeBadRequest)
		})
	}
	// One check for both APIs: the same window gets the same message.
	for _, w := range []time.Duration{2 * time.Hour, -time.Second, 0} {
		_, err := c.Drain(ctx, &pb.DrainRequest{Window: durationpb.New(w)})
		code, body := apitest.Request(t, http.MethodPost, s.Base+"/api/drain", s.Key, `{"window":"`+w.String()+`"}`)
		var e pushapi.ErrorBody
		if jerr := json.Unmarshal([]byte(body), &e); jerr != nil || code != http.StatusBadRequest || e.Error == nil {
			t.Fatalf("POST /api/drain window %v: %d %s", w, code, body)
		}
		if got := status.Convert(err).Message(); got != e.Error.Message {
			t.Errorf("window %v: gRPC says %q, HTTP %q", w, got, e.Error.Message)
		}
	}
	if s.Gateway().Info().Draining {
		t.Fatal("a refused Drain drained the node")
	}

	closed := make(chan error, len(clients))
	for _, ws := range clients {
		go func() {
			for {
				if _, err := apitest.NextErr(ws, 10*time.Second); err != nil {
					closed <- err
					return
				}
			}
		}()
	}
	info, err := c.Drain(ctx, &pb.DrainRequest{Window: durationpb.New(200 * time.Millisecond)})
	if err != nil || !info.Draining || !info.Self {
		t.Fatalf("Drain: %v, %v; want this node, draining", info, err)
	}
	for range clients {
		var ce *websocket.CloseError
		if err := <-closed; !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
			t.Errorf("client ended with %v, want close 1001", err)
		}
	}
	_, resp, err := (&websocket.Dialer{HandshakeTimeout: 5 * time.Second}).Dial(s.WS, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("upgrade while draining: %v, %v; want 503 with Retry-After", err, resp)
	}
	if resp != nil {
		_ = resp.Body.Close()
	}
	if code, body := apitest.Request(t, http.MethodGet, s.Base+"/readyz", "", ""); code != http.StatusServiceUnavailable || !strings.Contains(body, "draining") {
		t.Errorf("/readyz while draining: %d %q", code, body)
	}
	if info, err := c.Info(ctx, &pb.InfoRequest{}); err != nil || !info.Draining {
		t.Errorf("Info while draining: %v, %v", info, err)
	}

	// The node still publishes, and draining again, with or without a
	// window, changes nothing.
	if _, err := c.Publish(ctx, &pb.PublishRequest{Topic: "/g/drain", Payload: &pb.PublishRequest_Json{Json: "1"}}); err != nil {
		t.Errorf("Publish while draining: %v", err)
	}
	for _, req := range []*pb.DrainRequest{{}, {Window: durationpb.New(time.Hour)}} {
		if info, err := c.Drain(ctx, req); err != nil || !info.Draining {
			t.Errorf("Drain(%v) again: %v, %v", req, info, err)
		}
	}
	if err := s.Stop(); err != nil {
		t.Errorf("shutdown after a gRPC drain: %v", err)
	}
}
