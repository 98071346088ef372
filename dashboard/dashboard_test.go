package dashboard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/dashboard"
	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/internal/wait"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const key = "test-key-0123456789"

var quiet = slog.New(slog.DiscardHandler)

// node is a gateway on a shared bus, behind a real HTTP server with /ws
// (client id from ?id=, user id from ?user=) and, when dash is set, the
// dashboard.
type node struct {
	gw   *gateway.Gateway
	dash *dashboard.Dashboard
	srv  *httptest.Server
}

func newNode(t *testing.T, bus *broker.Bus, id string, dash *dashboard.Config, configure func(*http.Server)) *node {
	t.Helper()
	gw, err := gateway.New(gateway.Config{
		NodeID: id, Broker: bus.Node(), Logger: quiet, Version: "v-test",
		NodeInfoInterval: 50 * time.Millisecond, CloseGrace: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{gw: gw}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		ws, err := gw.Upgrade(w, r)
		if err != nil {
			return
		}
		tower := gw.BuildTower(ws, r.URL.Query().Get("id"))
		tower.UserId = r.URL.Query().Get("user")
		tower.SetReadHandler(func(fire *gateway.FireInfo) bool {
			_ = tower.Publish(fire)
			return true
		})
		tower.Run()
	})
	if dash != nil {
		cfg := *dash
		cfg.Gateway, cfg.Logger = gw, quiet
		if cfg.Interval == 0 {
			cfg.Interval = 50 * time.Millisecond
		}
		if n.dash, err = dashboard.New(cfg); err != nil {
			t.Fatal(err)
		}
		n.dash.Register(mux)
		n.dash.Start()
	}
	n.srv = httptest.NewUnstartedServer(mux)
	if configure != nil {
		configure(n.srv.Config)
	}
	n.srv.Start()
	t.Cleanup(func() {
		if n.dash != nil {
			n.dash.Close() // ends the event streams, which never go idle
		}
		n.srv.Close()
		_ = gw.Close()
	})
	return n
}

func (n *node) dial(t *testing.T, query string) *websocket.Conn {
	t.Helper()
	u := "ws" + strings.TrimPrefix(n.srv.URL, "http") + "/ws?" + query
	c, resp, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func subscribe(t *testing.T, c *websocket.Conn, topics string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","topic":"`+topics+`","data":""}`)); err != nil {
		t.Fatal(err)
	}
}

// request sends a request to the node with the given headers.
func (n *node) request(t *testing.T, method, path string, body io.Reader, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, n.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func decode[T any](t *testing.T, resp *http.Response) T {
	t.Helper()
	var v T
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("decode %T: %v", v, err)
	}
	return v
}

func checkFor(t *testing.T, total time.Duration, fn func() error) {
	t.Helper()
	wait.For(t, total, 20*time.Millisecond, fn)
}

// stream is an open /dashboard/events stream.
type stream struct {
	resp   *http.Response
	r      *bufio.Reader
	cancel context.CancelFunc
}

type event struct{ name, data string }

func openStream(t *testing.T, n *node, header ...string) *stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	req, err := http.NewRequestWithContext(ctx, "GET", n.srv.URL+"/dashboard/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &stream{resp: resp, r: bufio.NewReader(resp.Body), cancel: cancel}
	t.Cleanup(func() { cancel(); _ = resp.Body.Close() })
	return s
}

// next returns the next event, or io.EOF when the stream ended.
func (s *stream) next() (event, error) {
	var ev event
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return ev, err
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if ev.name != "" || ev.data != "" {
				return ev, nil
			}
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data += strings.TrimPrefix(line, "data: ")
		}
	}
}

func (s *stream) hello(t *testing.T) dashboard.Hello {
	t.Helper()
	ev, err := s.next()
	if err != nil || ev.name != "hello" {
		t.Fatalf("first event %q (%v), want hello", ev.name, err)
	}
	var h dashboard.Hello
	if err := json.Unmarshal([]byte(ev.data), &h); err != nil {
		t.Fatal(err)
	}
	return h
}

// until reads snapshots until fn accepts one.
func (s *stream) until(t *testing.T, what string, fn func(*dashboard.Snapshot) bool) *dashboard.Snapshot {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ev, err := s.next()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ev.name != "snapshot" {
			t.Fatalf("event %q while waiting for %s", ev.name, what)
		}
		var snap dashboard.Snapshot
		if err := json.Unmarshal([]byte(ev.data), &snap); err != nil {
			t.Fatal(err)
		}
		if fn(&snap) {
			return &snap
		}
	}
	t.Fatalf("no snapshot with %s in 10s", what)
	return nil
}

func findNode(s *dashboard.Snapshot, id string) *dashboard.NodeView {
	for i := range s.Nodes {
		if s.Nodes[i].ID == id {
			return &s.Nodes[i]
		}
	}
	return nil
}

// Without the key: 401 and the login form for the page, 401 for the API
// and the stream; with the key in a header: the page.
func TestKeyRequired(t *testing.T) {
	n := newNode(t, broker.NewBus(), "a", &dashboard.Config{APIKey: key}, nil)

	resp := n.request(t, "GET", "/dashboard", nil)
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `<form id="login" method="post" action="/dashboard/login">`) {
		t.Fatalf("page without key: %d %q", resp.StatusCode, body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self'") || !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("login page CSP %q", csp)
	}
	for _, path := range []string{"/dashboard/events", "/dashboard/api/snapshot", "/dashboard/api/topics?q=x", "/dashboard/api/topic?name=x", "/dashboard/api/connections?client=x"} {
		if resp := n.request(t, "GET", path, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without key: %d", path, resp.StatusCode)
		}
	}
	if resp := n.request(t, "POST", "/dashboard/api/disconnect", strings.NewReader(`{"clientId":"x"}`), "Content-Type", "application/json"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("disconnect without key: %d", resp.StatusCode)
	}
	for _, h := range [][]string{{"Authorization", "Bearer wrong"}, {"X-API-Key", key + "x"}, {"Authorization", "Basic " + key}} {
		if resp := n.request(t, "GET", "/dashboard", nil, h...); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("page with %v: %d", h, resp.StatusCode)
		}
	}
	for _, h := range [][]string{{"Authorization", "Bearer " + key}, {"X-API-Key", key}} {
		resp := n.request(t, "GET", "/dashboard", nil, h...)
		body := readBody(t, resp)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="nodes"`) {
			t.Errorf("page with %v: %d", h, resp.StatusCode)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); csp != dashboard.ContentSecurityPolicy {
			t.Errorf("page CSP %q", csp)
		}
	}
	// The script and style are public (no data in them); the login page is
	// not served as a file.
	for path, want := range map[string]int{
		"/dashboard/static/dashboard.js":  200,
		"/dashboard/static/chart.js":      200,
		"/dashboard/static/dashboard.css": 200,
		"/dashboard/static/login.html":    404,
		"/dashboard/static/nothing.js":    404,
	} {
		if resp := n.request(t, "GET", path, nil); resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

// The login form sets a session cookie (not the key) that opens
// everything; a wrong key or a cross-site post does not; logout clears it.
func TestLoginCookie(t *testing.T) {
	n := newNode(t, broker.NewBus(), "a", &dashboard.Config{APIKey: key}, nil)
	form := "application/x-www-form-urlencoded"

	resp := n.request(t, "POST", "/dashboard/login", strings.NewReader("key=wrong"), "Content-Type", form)
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 || strings.Contains(body, `id="error" hidden`) {
		t.Fatalf("wrong key: %d, cookies %v, error shown: %v", resp.StatusCode, resp.Cookies(), !strings.Contains(body, `id="error" hidden`))
	}
	resp = n.request(t, "POST", "/dashboard/login", strings.NewReader("key="+url.QueryEscape(key)), "Content-Type", form, "Origin", "http://evil.example")
	if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
		t.Fatalf("cross-site login: %d", resp.StatusCode)
	}

	resp = n.request(t, "POST", "/dashboard/login", strings.NewReader("key="+url.QueryEscape(key)), "Content-Type", form, "Origin", n.srv.URL)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/dashboard" {
		t.Fatalf("login: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == dashboard.CookieName {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/" || session.MaxAge <= 0 {
		t.Fatalf("session cookie %+v", session)
	}
	if strings.Contains(session.Value, key) {
		t.Fatalf("the cookie holds the key: %q", session.Value)
	}
	cookie := session.Name + "=" + session.Value
	if resp := n.request(t, "GET", "/dashboard", nil, "Cookie", cookie); resp.StatusCode != http.StatusOK {
		t.Errorf("page with the session: %d", resp.StatusCode)
	}
	if resp := n.request(t, "GET", "/dashboard/api/connections?client=x", nil, "Cookie", cookie); resp.StatusCode != http.StatusOK {
		t.Errorf("lookup with the session: %d", resp.StatusCode)
	}
	if resp := n.request(t, "GET", "/dashboard/login", nil, "Cookie", cookie); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("login form with a session: %d, want a redirect", resp.StatusCode)
	}
	tampered := cookie[:len(cookie)-2] + "xx"
	if resp := n.request(t, "GET", "/dashboard", nil, "Cookie", tampered); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("page with a tampered session: %d", resp.StatusCode)
	}
	// Another node with another key does not take the cookie.
	other := newNode(t, broker.NewBus(), "b", &dashboard.Config{APIKey: key + "-other"}, nil)
	if resp := other.request(t, "GET", "/dashboard", nil, "Cookie", cookie); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("node with another key took the session: %d", resp.StatusCode)
	}

	resp = n.request(t, "POST", "/dashboard/logout", nil, "Cookie", cookie)
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 || resp.Cookies()[0].MaxAge >= 0 {
		t.Errorf("logout: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
}

// Open: the views without a key, never the connections.
func TestOpen(t *testing.T) {
	n := newNode(t, broker.NewBus(), "a", &dashboard.Config{APIKey: key, Open: true}, nil)
	if resp := n.request(t, "GET", "/dashboard", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("page: %d", resp.StatusCode)
	}
	snap := decode[dashboard.SnapshotResponse](t, n.request(t, "GET", "/dashboard/api/snapshot", nil))
	if snap.CanAct || snap.Self != "a" {
		t.Errorf("snapshot: canAct %v, self %q", snap.CanAct, snap.Self)
	}
	if resp := n.request(t, "GET", "/dashboard/api/connections?client=x", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("lookup without key on an open dashboard: %d", resp.StatusCode)
	}
	if resp := n.request(t, "POST", "/dashboard/api/disconnect", strings.NewReader(`{"clientId":"x"}`), "Content-Type", "application/json"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("disconnect without key on an open dashboard: %d", resp.StatusCode)
	}
	s := openStream(t, n)
	if h := s.hello(t); h.CanAct || !h.Open {
		t.Errorf("hello %+v", h)
	}
	if resp := n.request(t, "GET", "/dashboard/api/connections?client=x", nil, "X-API-Key", key); resp.StatusCode != http.StatusOK {
		t.Errorf("lookup with key: %d", resp.StatusCode)
	}

	insecure := newNode(t, broker.NewBus(), "b", &dashboard.Config{Insecure: true}, nil)
	if resp := insecure.request(t, "GET", "/dashboard/api/connections?client=x", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("lookup on an insecure dashboard: %d", resp.StatusCode)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, cfg := range []dashboard.Config{
		{APIKey: key},
		{Gateway: &gateway.Gateway{}},
		{Gateway: &gateway.Gateway{}, APIKey: key, MaxStreams: -1},
	} {
		if _, err := dashboard.New(cfg); err == nil || !strings.HasPrefix(err.Error(), "dashboard: ") {
			t.Errorf("New(%+v) = %v", cfg, err)
		}
	}
}

// The stream shows the cluster: this node's and the other node's figures
// change as clients come, topics merge across nodes, the charts get
// samples; Close ends the stream with a "bye".
func TestStreamClusterView(t *testing.T) {
	bus := broker.NewBus()
	a := newNode(t, bus, "a", &dashboard.Config{APIKey: key}, nil)
	b := newNode(t, bus, "b", nil, nil)

	s := openStream(t, a, "Authorization", "Bearer "+key)
	h := s.hello(t)
	if h.Self != "a" || !h.CanAct || h.Open || h.Interval != 50 || h.Snapshot == nil {
		t.Fatalf("hello %+v", h)
	}

	ca := a.dial(t, "id=c1")
	subscribe(t, ca, "room,a-only")
	for i := range 2 {
		subscribe(t, b.dial(t, fmt.Sprintf("id=b%d", i)), "room")
	}
	snap := s.until(t, "both nodes' connections and the merged topic", func(s *dashboard.Snapshot) bool {
		na, nb := findNode(s, "a"), findNode(s, "b")
		if na == nil || nb == nil || na.Stats.Connections != 1 || nb.Stats.Connections != 2 || na.Stats.Topics != 2 || nb.Stats.Topics != 1 {
			return false
		}
		return len(s.BySubscribers) > 0 && s.BySubscribers[0].Topic == "room" && s.BySubscribers[0].Subscribers == 3
	})
	na, nb := findNode(snap, "a"), findNode(snap, "b")
	if !na.Self || nb.Self || na.State != "ready" || nb.State != "ready" || na.Version != "v-test" || na.Broker != "memory" {
		t.Errorf("nodes: %+v / %+v", na, nb)
	}
	if snap.Sample.Cluster.Connections != 3 || snap.Sample.Node.Connections != 1 {
		t.Errorf("sample %+v", snap.Sample)
	}
	if got := snap.BySubscribers[0].Nodes; len(got) != 2 {
		t.Errorf("room listed by %v, want both nodes", got)
	}

	// Messages flow: some sample of the history has a rate.
	for i := range 10 {
		if err := ca.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"type":"publish","topic":"room","data":%d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, 5*time.Second, func() error {
		h := openStream(t, a, "X-API-Key", key).hello(t)
		var in, out float64
		for _, smp := range h.History {
			in += smp.Node.MessagesIn
			out += smp.Cluster.MessagesOut
		}
		if in == 0 || out == 0 {
			return fmt.Errorf("no message rate in %d samples", len(h.History))
		}
		return nil
	})

	a.dash.Close()
	for {
		ev, err := s.next()
		if err == io.EOF {
			t.Fatal("stream ended without a bye")
		}
		if err != nil {
			t.Fatal(err)
		}
		if ev.name == "bye" {
			break
		}
	}
	if _, err := s.next(); err != io.EOF {
		t.Fatalf("after bye: %v, want EOF", err)
	}
	if resp := a.request(t, "GET", "/dashboard/events", nil, "X-API-Key", key); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a stream after Close: %d", resp.StatusCode)
	}
}

// The number of streams is bounded; the history keeps the last History
// samples, in order.
func TestStreamLimitAndHistory(t *testing.T) {
	n := newNode(t, broker.NewBus(), "a", &dashboard.Config{APIKey: key, MaxStreams: 1, History: 5}, nil)
	s := openStream(t, n, "X-API-Key", key)
	s.hello(t)
	resp := n.request(t, "GET", "/dashboard/events", nil, "X-API-Key", key)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("second stream: %d", resp.StatusCode)
	}
	for range 7 { // more than History samples
		s.until(t, "a sample", func(*dashboard.Snapshot) bool { return true })
	}
	s.cancel()
	_ = s.resp.Body.Close()
	var h dashboard.Hello
	checkFor(t, 5*time.Second, func() error {
		resp, err := http.DefaultClient.Do(func() *http.Request {
			r, _ := http.NewRequest("GET", n.srv.URL+"/dashboard/events", nil)
			r.Header.Set("X-API-Key", key)
			return r
		}())
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("stream after the first closed: %d", resp.StatusCode)
		}
		s := &stream{r: bufio.NewReader(resp.Body)}
		h = s.hello(t)
		return nil
	})
	if len(h.History) != 5 || h.Keep != 5 {
		t.Fatalf("%d samples in the history, want 5", len(h.History))
	}
	for i := 1; i < len(h.History); i++ {
		if h.History[i].Time <= h.History[i-1].Time {
			t.Fatalf("history out of order: %+v", h.History)
		}
	}
}

// A stream outlives the server's ReadTimeout (net/http clears the read
// deadline once the request is read; this guards that).
func TestStreamOutlivesReadTimeout(t *testing.T) {
	n := newNode(t, broker.NewBus(), "a", &dashboard.Config{APIKey: key}, func(s *http.Server) {
		s.ReadTimeout = 200 * time.Millisecond
	})
	s := openStream(t, n, "X-API-Key", key)
	s.hello(t)
	start := time.Now()
	for time.Since(start) < time.Second {
		ev, err := s.next()
		if err != nil {
			t.Fatalf("stream ended after %v: %v", time.Since(start), err)
		}
		if ev.name != "snapshot" {
			t.Fatalf("event %q", ev.name)
		}
	}
}

// Topic search and detail, connection lookup and the cluster-wide
// disconnect.
func TestAPI(t *testing.T) {
	bus := broker.NewBus()
	a := newNode(t, bus, "a", &dashboard.Config{APIKey: key}, nil)
	b := newNode(t, bus, "b", nil, nil)
	auth := []string{"X-API-Key", key}

	ca := a.dial(t, "id=dup&user=u1")
	subscribe(t, ca, "news/sport,news/tech")
	subscribe(t, a.dial(t, "id=solo&user=u2"), "news/sport")
	cb := b.dial(t, "id=dup&user=u1")
	subscribe(t, cb, "news/sport")
	checkFor(t, 5*time.Second, func() error {
		if n := a.gw.ConnectNum(context.Background(), "news/sport"); n != 3 {
			return fmt.Errorf("cluster count %d", n)
		}
		for _, nd := range a.gw.Nodes() {
			if nd.ID == "b" && len(nd.Topics) == 1 {
				return nil
			}
		}
		return fmt.Errorf("b's topics not yet broadcast")
	})

	res := decode[dashboard.TopicsResult](t, a.request(t, "GET", "/dashboard/api/topics?q=news/", nil, auth...))
	if res.LocalMatched != 2 || len(res.Local) != 2 || res.Local[0].Topic != "news/sport" || res.Local[0].Subscribers != 2 {
		t.Errorf("local search: %+v", res)
	}
	if len(res.Cluster) != 2 || res.Cluster[0].Topic != "news/sport" || res.Cluster[0].Subscribers != 3 {
		t.Errorf("cluster search: %+v", res.Cluster)
	}
	res = decode[dashboard.TopicsResult](t, a.request(t, "GET", "/dashboard/api/topics?q=news/&limit=1", nil, auth...))
	if res.LocalMatched != 2 || len(res.Local) != 1 || len(res.Cluster) != 1 {
		t.Errorf("limited search: %+v", res)
	}
	if resp := a.request(t, "GET", "/dashboard/api/topics?limit=x", nil, auth...); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad limit: %d", resp.StatusCode)
	}

	det := decode[dashboard.TopicDetail](t, a.request(t, "GET", "/dashboard/api/topic?name=news/sport", nil, auth...))
	if det.Total != 3 || det.TotalError != "" || det.Unlisted != 0 || len(det.Nodes) != 2 {
		t.Fatalf("detail: %+v", det)
	}
	if n := det.Nodes[0]; n.Node != "a" || !n.Exact || n.Subscribers != 2 {
		t.Errorf("detail of a: %+v", n)
	}
	if n := det.Nodes[1]; n.Node != "b" || n.Exact || !n.Listed || n.Subscribers != 1 {
		t.Errorf("detail of b: %+v", n)
	}
	if resp := a.request(t, "GET", "/dashboard/api/topic?name=", nil, auth...); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("detail without a name: %d", resp.StatusCode)
	}

	conns := decode[dashboard.ConnectionsResult](t, a.request(t, "GET", "/dashboard/api/connections?user=u1", nil, auth...))
	if conns.Matched != 1 || len(conns.Connections) != 1 || conns.Connections[0].ClientID != "dup" || len(conns.Connections[0].Topics) != 2 {
		t.Errorf("lookup by user: %+v", conns)
	}
	if resp := a.request(t, "GET", "/dashboard/api/connections?user=u1&client=dup", nil, auth...); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("lookup by both: %d", resp.StatusCode)
	}

	post := func(body, ctype string, extra ...string) *http.Response {
		return a.request(t, "POST", "/dashboard/api/disconnect", strings.NewReader(body), append([]string{"Content-Type", ctype}, append(auth, extra...)...)...)
	}
	if resp := post(`{"clientId":"dup"}`, "application/x-www-form-urlencoded"); resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("form body: %d", resp.StatusCode)
	}
	if resp := post(`{"clientId":"dup"}`, "application/json", "Sec-Fetch-Site", "cross-site"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site: %d", resp.StatusCode)
	}
	for _, bad := range []string{`{}`, `{"clientId":"a","userId":"b"}`, `{"clientId":1}`, `{"other":"x"}`, `nope`} {
		if resp := post(bad, "application/json"); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("body %s: %d", bad, resp.StatusCode)
		}
	}
	out := decode[dashboard.DisconnectResult](t, post(`{"clientId":"dup"}`, "application/json; charset=utf-8"))
	if out.Local != 1 || out.Error != "" || out.Node != "a" {
		t.Fatalf("disconnect: %+v", out)
	}
	for name, c := range map[string]*websocket.Conn{"a": ca, "b": cb} {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			_, _, err := c.ReadMessage()
			if err == nil {
				continue
			}
			if !websocket.IsCloseError(err, 4501) {
				t.Errorf("client dup on %s: %v, want close 4501", name, err)
			}
			break
		}
	}
	checkFor(t, 5*time.Second, func() error {
		if n := b.gw.Stats().Connections; n != 0 {
			return fmt.Errorf("b still has %d connections", n)
		}
		return nil
	})
}
