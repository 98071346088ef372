package server_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/firetower-go/firetower/server"
	"github.com/firetower-go/firetower/topicmgr"
)

const testKey = "observe-test-key"

// get fetches base+path with optional header pairs and returns the status
// and body.
func get(t *testing.T, base, path string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metricValue scrapes /metrics, parses it as the Prometheus text format,
// and returns the value (or histogram sample count) of an unlabelled metric.
func metricValue(t *testing.T, base, name string) float64 {
	t.Helper()
	status, body := get(t, base, "/metrics")
	if status != http.StatusOK {
		t.Fatalf("/metrics: %d", status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	f := fams[name]
	if f == nil || len(f.Metric) == 0 {
		t.Fatalf("no %s in /metrics", name)
	}
	m := f.Metric[0]
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	t.Fatalf("%s: unexpected type %v", name, f.GetType())
	return 0
}

// /healthz and /readyz answer; /readyz turns 503 while the server drains.
func TestHealthAndReadyDuringDrain(t *testing.T) {
	ts := startServer(t, server.Config{APIKey: testKey, DrainWindow: 3 * time.Second})
	if status, body := get(t, ts.base, "/healthz"); status != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", status, body)
	}
	if status, body := get(t, ts.base, "/readyz"); status != 200 || body != "ready\n" {
		t.Fatalf("/readyz: %d %q", status, body)
	}
	// Two clients make the drain last (the second close waits half the
	// window).
	dial(t, ts.ws, nil)
	dial(t, ts.ws, nil)
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := ts.srv.Gateway().Stats().Connections; n != 2 {
			return fmt.Errorf("%d connections", n)
		}
		return nil
	})
	ts.cancel()
	// The listener is closed at once; ask the handler.
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		rec := httptest.NewRecorder()
		ts.srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "draining") {
			return fmt.Errorf("/readyz while draining: %d %q", rec.Code, rec.Body.String())
		}
		return nil
	})
	if err := ts.stop(t); err != nil {
		t.Fatal(err)
	}
}

// /readyz follows the topic manager: 503 while it is down, 200 when the
// gateway is connected to it again.
func TestReadyFollowsTopicManager(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	startTM := func(addr string) (*topicmgr.Server, string, chan error) {
		tm, err := topicmgr.New(topicmgr.Config{Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		var l net.Listener
		checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
			l, err = net.Listen("tcp", addr)
			return err
		})
		done := make(chan error, 1)
		go func() { done <- tm.Serve(l) }()
		return tm, l.Addr().String(), done
	}
	tm, addr, done := startTM("127.0.0.1:0")
	ts := startServer(t, server.Config{APIKey: testKey, Broker: "tm://" + addr, Gateway: gatewayConfig("gw-ready", log)})
	ready := func(want int) {
		t.Helper()
		checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
			if status, body := get(t, ts.base, "/readyz"); status != want {
				return fmt.Errorf("/readyz: %d %q, want %d", status, body, want)
			}
			return nil
		})
	}
	ready(200)
	_ = tm.Close()
	<-done
	ready(503)
	if _, body := get(t, ts.base, "/readyz"); !strings.Contains(body, "topic manager") {
		t.Errorf("/readyz does not say why: %q", body)
	}
	if status, _ := get(t, ts.base, "/healthz"); status != 200 {
		t.Errorf("/healthz with the manager down: %d (the process is alive)", status)
	}
	tm, _, done = startTM(addr)
	defer func() { _ = tm.Close(); <-done }()
	ready(200)
}

// /metrics is served in the Prometheus text format and moves with the
// traffic of the chat handler (the gateway's Observer is wired).
func TestMetricsEndpoint(t *testing.T) {
	ts := startServer(t, server.Config{APIKey: testKey, QuietCounts: true})
	if v := metricValue(t, ts.base, "firetower_connections"); v != 0 {
		t.Fatalf("connections %v", v)
	}
	c := dial(t, ts.ws, nil)
	send(t, c, subscribeWorld)
	waitSubscribers(t, ts, "/chat/world", 1)
	send(t, c, publishChat)
	expect(t, c, "client", chatData)
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		for name, want := range map[string]float64{
			"firetower_connections":                     1,
			"firetower_published_total":                 1,
			"firetower_messages_in_total":               2,
			"firetower_fanout_duration_seconds":         1,
			"firetower_broker_publish_duration_seconds": 1,
			"firetower_ready":                           1,
		} {
			if v := metricValue(t, ts.base, name); v != want {
				return fmt.Errorf("%s = %v, want %v", name, v, want)
			}
		}
		return nil
	})
}

// The dashboard on the server: 401 and the login form without the key, the
// login cookie opens it, a wrong key does not; --dashboard-open opens the
// views; pprof only with --pprof, and only with the key.
func TestDashboardAccess(t *testing.T) {
	ts := startServer(t, server.Config{APIKey: testKey})
	if status, body := get(t, ts.base, "/dashboard"); status != 401 || !strings.Contains(body, `action="/dashboard/login"`) {
		t.Fatalf("/dashboard without key: %d", status)
	}
	if status, _ := get(t, ts.base, "/dashboard/api/snapshot"); status != 401 {
		t.Errorf("snapshot without key: %d", status)
	}
	login := func(k string) *http.Response {
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).
			PostForm(ts.base+"/dashboard/login", url.Values{"key": {k}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := login("wrong"); resp.StatusCode != 401 || len(resp.Cookies()) != 0 {
		t.Errorf("wrong key: %d %v", resp.StatusCode, resp.Cookies())
	}
	resp := login(testKey)
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 {
		t.Fatalf("login: %d %v", resp.StatusCode, resp.Cookies())
	}
	cookie := resp.Cookies()[0]
	if status, body := get(t, ts.base, "/dashboard", "Cookie", cookie.Name+"="+cookie.Value); status != 200 || !strings.Contains(body, "dashboard.js") {
		t.Errorf("/dashboard with the session: %d", status)
	}
	if status, _ := get(t, ts.base, "/debug/pprof/", "X-API-Key", testKey); status != 404 {
		t.Errorf("pprof without --pprof: %d", status)
	}

	open := startServer(t, server.Config{APIKey: testKey, DashboardOpen: true, Pprof: true})
	if status, _ := get(t, open.base, "/dashboard"); status != 200 {
		t.Errorf("open dashboard: %d", status)
	}
	if status, _ := get(t, open.base, "/dashboard/api/connections?client=1"); status != 401 {
		t.Errorf("lookup on the open dashboard without key: %d", status)
	}
	if status, _ := get(t, open.base, "/debug/pprof/"); status != 401 {
		t.Errorf("pprof without key: %d", status)
	}
	if status, body := get(t, open.base, "/debug/pprof/", "Authorization", "Bearer "+testKey); status != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("pprof with key: %d", status)
	}
	if status, body := get(t, open.base, "/debug/pprof/goroutine?debug=1", "X-API-Key", testKey); status != 200 || !strings.Contains(body, "goroutine profile") {
		t.Errorf("goroutine profile: %d %.80q", status, body)
	}
}

// An open event stream ends with "bye" when the server shuts down, and does
// not hold the shutdown up.
func TestDashboardStreamEndsOnShutdown(t *testing.T) {
	ts := startServer(t, server.Config{APIKey: testKey})
	req, err := http.NewRequest("GET", ts.base+"/dashboard/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-API-Key", testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	r := bufio.NewReader(resp.Body)
	events := func(until string) []string {
		var names []string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return append(names, "EOF")
			}
			if name, ok := strings.CutPrefix(strings.TrimSpace(line), "event: "); ok {
				names = append(names, name)
				if name == until {
					return names
				}
			}
		}
	}
	if got := events("snapshot"); got[0] != "hello" || got[len(got)-1] != "snapshot" {
		t.Fatalf("events %v, want hello then snapshots", got)
	}
	start := time.Now()
	ts.cancel()
	got := events("bye")
	if got[len(got)-1] != "bye" {
		t.Fatalf("events at shutdown %v, want a bye", got)
	}
	if rest := events(""); len(rest) != 1 || rest[0] != "EOF" {
		t.Errorf("after bye: %v", rest)
	}
	if err := ts.stop(t); err != nil {
		t.Fatal(err)
	}
	// Serve waited neither for the stream nor for its ShutdownTimeout.
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %v with a stream open", d)
	}
}

// The flags of the dashboard, pprof and the node-info interval.
func TestObservabilityFlags(t *testing.T) {
	emptyDir(t)
	o, err := server.ParseServe([]string{"--dashboard-open", "--pprof", "--node-info-interval", "1s"}, fakeEnv(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !o.Server.DashboardOpen || !o.Server.Pprof || o.Server.Gateway.NodeInfoInterval != time.Second {
		t.Errorf("%+v", o.Server)
	}
	o, err = server.ParseServe([]string{"--node-info-interval", "-1s"}, fakeEnv(map[string]string{"FIRETOWER_DASHBOARD_OPEN": "true"}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !o.Server.DashboardOpen || o.Server.Pprof || o.Server.Gateway.NodeInfoInterval != -1 {
		t.Errorf("%+v", o.Server)
	}
}

// `firetower topicmanager --http-addr`: /healthz and the manager's metrics.
func TestManagerHandler(t *testing.T) {
	emptyDir(t)
	o, err := server.ParseTopicManager([]string{"--http-addr", "127.0.0.1:0"}, fakeEnv(nil), &bytes.Buffer{})
	if err != nil || o.HTTPAddr != "127.0.0.1:0" {
		t.Fatalf("--http-addr: %v %+v", err, o)
	}
	if _, err := server.ParseTopicManager([]string{"--http-addr", "nohost"}, fakeEnv(nil), &bytes.Buffer{}); err == nil {
		t.Error("--http-addr nohost accepted")
	}
	tm, err := topicmgr.New(topicmgr.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer tm.Close()
	h, err := server.ManagerHandler(tm, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	if status, body := get(t, srv.URL, "/healthz"); status != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", status, body)
	}
	if v := metricValue(t, srv.URL, "firetower_topicmanager_sessions"); v != 0 {
		t.Errorf("sessions %v", v)
	}
}
