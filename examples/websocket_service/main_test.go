package main

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/firetower-go/firetower/gateway"
	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func dial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	c, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() {
		// Close properly, so the towers end and the package leaves no
		// goroutine behind.
		msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
		_ = c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				break
			}
		}
		_ = c.Close()
	})
	return c
}

func send(t *testing.T, c *websocket.Conn, frame string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func expect(t *testing.T, c *websocket.Conn, who, want string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, b, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("%s: read: %v", who, err)
		}
		if string(b) == "heartbeat" {
			continue
		}
		if string(b) != want {
			t.Fatalf("%s got %s, want %s", who, b, want)
		}
		return
	}
}

// TestChatRoundTrip drives the example's handler the way the original chat
// page does: subscribe to /chat/world, see the online count, publish, and
// receive the raw message.
func TestChatRoundTrip(t *testing.T) {
	srv := httptest.NewServer(newMux()) // 127.0.0.1:0
	t.Cleanup(func() {
		srv.Close()
		deadline := time.Now().Add(5 * time.Second)
		for gateway.Default().Stats().Connections != 0 {
			if time.Now().After(deadline) {
				t.Errorf("%d connections still open", gateway.Default().Stats().Connections)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	url := "ws" + srv.URL[len("http"):] + "/ws"
	const subscribe = `{"type":"subscribe","topic":"/chat/world","data":""}`
	const data = `{"from":"1234567","data":"hi","type":"publish"}`

	a := dial(t, url)
	b := dial(t, url)
	send(t, a, subscribe)
	expect(t, a, "a", `{"type":"onSubscribe","data":1}`)
	send(t, b, subscribe)
	expect(t, a, "a", `{"type":"onSubscribe","data":2}`)
	expect(t, b, "b", `{"type":"onSubscribe","data":2}`)

	send(t, b, fmt.Sprintf(`{"type":"publish","topic":"/chat/world","data":%s}`, data))
	expect(t, a, "a", data)
	expect(t, b, "b", data)

	send(t, b, `{"type":"unSubscribe","topic":"/chat/world","data":""}`)
	expect(t, a, "a", `{"type":"onUnsubscribe","data":1}`)
}
