package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/internal/apitest"
	"github.com/firetower-go/firetower/pushapi/client"
	"github.com/firetower-go/firetower/server"
	"github.com/gorilla/websocket"
)

// TestCLIDrain: `firetower drain --window` drains the node over HTTP: the
// answer says "draining", the websocket client is closed with 1001, a new
// one gets 503; draining again through the Go client changes nothing; a
// window out of range is refused by the server (exit 1) or the command
// line (exit 2).
func TestCLIDrain(t *testing.T) {
	s := apitest.Start(t, server.Config{QuietCounts: true})
	env := map[string]string{"FIRETOWER_SERVER": s.Base, "FIRETOWER_API_KEY": s.Key}
	ws := apitest.Dial(t, s.WS, false)
	apitest.Subscribe(t, s, ws, false, "/drain", 1)

	if code, _, errs := run(t, env, "", "drain", "--window", "-1s"); code != 2 || !strings.Contains(errs, "--window must not be negative") {
		t.Fatalf("drain --window -1s: exit %d, %q", code, errs)
	}
	if code, _, errs := run(t, env, "", "drain", "--window", "2h"); code != 1 || !strings.Contains(errs, "bad_request") {
		t.Fatalf("drain --window 2h: exit %d, %q", code, errs)
	}
	if s.Gateway().Info().Draining {
		t.Fatal("a refused drain drained the node")
	}

	code, out, errs := run(t, env, "", "drain", "--window", "100ms")
	if code != 0 {
		t.Fatalf("drain: exit %d, stderr %s", code, errs)
	}
	var info gateway.NodeInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil || !info.Draining {
		t.Fatalf("drain output %s (%v), want the node with \"draining\": true", out, err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := ws.ReadMessage()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			if ce.Code != websocket.CloseGoingAway {
				t.Fatalf("closed with %d, want 1001", ce.Code)
			}
			break
		}
		if err != nil {
			t.Fatalf("waiting for the close: %v", err)
		}
	}
	_, resp, err := (&websocket.Dialer{HandshakeTimeout: 5 * time.Second}).Dial(s.WS, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("new client while draining: %v, %v; want 503", err, resp)
	}
	resp.Body.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := &client.Client{Server: s.Base, APIKey: s.Key}
	if info, err := c.Drain(ctx, 0); err != nil || !info.Draining {
		t.Fatalf("Client.Drain again: %+v, %v", info, err)
	}
	if _, err := (&client.Client{Server: s.Base, APIKey: "wrong"}).Drain(ctx, time.Second); !client.IsCode(err, "unauthenticated") {
		t.Fatalf("Drain with a wrong key: %v, want unauthenticated", err)
	}
}
