package auth_test

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/auth"
	"github.com/firetower-go/firetower/protocol"
	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
)

// reply sends a frame with request id id and returns the reply to it (an
// ack or an error), skipping pings and deliveries.
func reply(t *testing.T, ws *websocket.Conn, id int, frame string) string {
	t.Helper()
	frame = `{"id":` + strconv.Itoa(id) + `,` + frame[1:]
	if err := ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("after %s: %v", frame, err)
		}
		if strings.Contains(string(b), `"id":`+strconv.Itoa(id)+`}`) || strings.Contains(string(b), `"id":`+strconv.Itoa(id)+`,`) {
			return string(b)
		}
	}
}

// TestRefresh: a v2 client renews its token on the open connection before
// it expires: the connection outlives the first token; a refused token
// (forged, expired, another user's) changes nothing; grants that shrink
// unsubscribe what they no longer cover; a short refreshed token still ends
// the connection with 4403 when it runs out.
func TestRefresh(t *testing.T) {
	s := newServer(t, auth.Config{Secret: secret, Leeway: -1})
	withExp := func(user string, d time.Duration) auth.Claims {
		c := claims(user)
		c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(d))
		return c
	}
	first := withExp("hana", 1500*time.Millisecond)
	status, body, ws := s.dial(t, sign(t, jwt.SigningMethodHS256, first, secret), false)
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("dial: %d %s", status, body)
	}
	s.expectUser(t, "hana")
	if got := reply(t, ws, 1, `{"type":"subscribe","topics":["room.1","room.2"]}`); got != `{"type":"ack","id":1}` {
		t.Fatalf("subscribe: %s", got)
	}

	forged := sign(t, jwt.SigningMethodHS256, withExp("hana", time.Hour), []byte("another-secret-of-at-least-32-bytes"))
	expired := sign(t, jwt.SigningMethodHS256, withExp("hana", -time.Minute), secret)
	other := sign(t, jwt.SigningMethodHS256, withExp("ivan", time.Hour), secret)
	for i, tc := range []struct {
		token string
		code  int
	}{{forged, protocol.CodeUnauthorized}, {expired, protocol.CodeUnauthorized}, {other, protocol.CodeForbidden}, {"", protocol.CodeUnauthorized}} {
		got := reply(t, ws, 2+i, `{"type":"refresh","token":"`+tc.token+`"}`)
		if !strings.Contains(got, `"code":`+strconv.Itoa(tc.code)) {
			t.Fatalf("refresh %d: %s, want code %d", i, got, tc.code)
		}
	}

	// A good token, an hour long, granting room.1 only.
	good := withExp("hana", time.Hour)
	good.Subs = []string{"room.1"}
	if got := reply(t, ws, 10, `{"type":"refresh","token":"`+sign(t, jwt.SigningMethodHS256, good, secret)+`"}`); got != `{"type":"ack","id":10}` {
		t.Fatalf("refresh: %s", got)
	}
	if n := s.gw.LocalConnectNum("room.2"); n != 0 {
		t.Fatalf("room.2 still has %d subscribers after the grants shrank", n)
	}
	if n := s.gw.LocalConnectNum("room.1"); n != 1 {
		t.Fatalf("room.1 has %d subscribers, want 1", n)
	}
	// Past the first token's end the connection still works.
	// The first token's end must pass (a point in time, not a condition to
	// poll for): the connection would have closed with 4403 there.
	time.Sleep(time.Until(first.ExpiresAt.Time) + 200*time.Millisecond)
	if got := reply(t, ws, 11, `{"type":"publish","topic":"room.1","data":"still here"}`); got != `{"type":"ack","id":11}` {
		t.Fatalf("publish after the first token's end: %s", got)
	}

	// A short refreshed token closes the connection with 4403 again.
	if got := reply(t, ws, 12, `{"type":"refresh","token":"`+sign(t, jwt.SigningMethodHS256, withExp("hana", 1500*time.Millisecond), secret)+`"}`); got != `{"type":"ack","id":12}` {
		t.Fatalf("short refresh: %s", got)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := ws.ReadMessage()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			if ce.Code != protocol.CloseTokenExpired {
				t.Fatalf("close code %d, want %d", ce.Code, protocol.CloseTokenExpired)
			}
			return
		}
		if err != nil {
			t.Fatalf("connection ended without a close frame: %v", err)
		}
	}
}
