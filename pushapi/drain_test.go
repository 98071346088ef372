package pushapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/internal/apitest"
	"github.com/firetower-go/firetower/pushapi"
	"github.com/firetower-go/firetower/server"
	"github.com/gorilla/websocket"
)

// closeCodes reads each client until it is closed and sends the error.
func closeCodes(clients []*websocket.Conn, wait time.Duration) chan error {
	errs := make(chan error, len(clients))
	for _, c := range clients {
		_ = c.SetReadDeadline(time.Now().Add(wait))
		go func() {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	return errs
}

// POST /api/drain drains the node as SIGTERM's first phase does, and the
// process keeps serving until it is stopped.
func TestDrain(t *testing.T) {
	s := apitest.Start(t, server.Config{QuietCounts: true})
	clients := []*websocket.Conn{apitest.Dial(t, s.WS, false), apitest.Dial(t, s.WS, false)}
	for i, c := range clients {
		apitest.Subscribe(t, s, c, false, "/t", int64(i+1))
	}

	status, body := apitest.Request(t, http.MethodPost, s.Base+"/api/drain", "", "")
	wantError(t, status, body, http.StatusUnauthorized, pushapi.CodeUnauthenticated)
	for _, bad := range []string{`{"window":"soon"}`, `{"window":"-1s"}`, `{"window":"2h"}`, `{"windo":"1s"}`} {
		status, body := post(t, s, "/api/drain", bad)
		wantError(t, status, body, http.StatusBadRequest, pushapi.CodeBadRequest)
	}
	if info := getOK[gateway.NodeInfo](t, s, "/api/info"); info.Draining {
		t.Fatal("draining before /api/drain")
	}

	errs := closeCodes(clients, 10*time.Second)
	if info := postOK[gateway.NodeInfo](t, s, "/api/drain", `{"window":"200ms"}`); !info.Draining {
		t.Errorf("/api/drain answered %+v, want draining", info)
	}
	for range clients {
		if err := <-errs; !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Errorf("client ended with %v, want 1001", err)
		}
	}
	_, resp, err := (&websocket.Dialer{HandshakeTimeout: 5 * time.Second}).Dial(s.WS, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("upgrade while draining: %v, %v; want 503 with Retry-After", err, resp)
	}
	if status, body := apitest.Request(t, http.MethodGet, s.Base+"/readyz", "", ""); status != http.StatusServiceUnavailable || !strings.Contains(body, "draining") {
		t.Errorf("/readyz while draining: %d %q", status, body)
	}
	if info := getOK[gateway.NodeInfo](t, s, "/api/info"); !info.Draining {
		t.Errorf("/api/info %+v, want draining", info)
	}
	// The node still works, and a second drain (no body) changes nothing.
	postOK[pushapi.Published](t, s, "/api/publish", `{"topic":"/t","data":1}`)
	if info := postOK[gateway.NodeInfo](t, s, "/api/drain", ""); !info.Draining {
		t.Errorf("second /api/drain answered %+v", info)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("shutdown after an API drain: %v", err)
	}
}

// SIGTERM (Serve's context) during a long API drain does not wait for the
// API's window: the clients left are closed over the server's drain window.
func TestShutdownDuringAPIDrain(t *testing.T) {
	s := apitest.Start(t, server.Config{QuietCounts: true, DrainWindow: 100 * time.Millisecond})
	clients := make([]*websocket.Conn, 4)
	for i := range clients {
		clients[i] = apitest.Dial(t, s.WS, false)
		apitest.Subscribe(t, s, clients[i], false, "/t", int64(i+1))
	}
	errs := closeCodes(clients, 10*time.Second)
	postOK[gateway.NodeInfo](t, s, "/api/drain", `{"window":"1h"}`)
	start := time.Now()
	if err := s.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("shutdown during a 1h API drain took %v", took)
	}
	for range clients {
		if err := <-errs; !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Errorf("client ended with %v, want 1001", err)
		}
	}
}
