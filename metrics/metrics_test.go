package metrics_test

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/firetower-go/firetower/broker/tm"
	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/internal/wait"
	"github.com/firetower-go/firetower/metrics"
	"github.com/firetower-go/firetower/topicmgr"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

// node is a gateway with its metrics behind a real HTTP server: /ws
// republishes what clients send, /metrics scrapes.
type node struct {
	gw   *gateway.Gateway
	srv  *httptest.Server
	ws   string
	scr  string
	reg  *metrics.Metrics
	open []*websocket.Conn
}

func newNode(t *testing.T, cfg gateway.Config) *node {
	t.Helper()
	m := metrics.New(quiet)
	cfg.Logger, cfg.Observer = quiet, m
	gw, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.WatchGateway(gw); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		ws, err := gw.Upgrade(w, r)
		if err != nil {
			return
		}
		tower := gw.BuildTower(ws, "c")
		tower.SetReadHandler(func(fire *gateway.FireInfo) bool {
			_ = tower.Publish(fire)
			return true
		})
		tower.Run()
	})
	n := &node{gw: gw, srv: httptest.NewServer(mux), reg: m}
	n.ws = "ws" + strings.TrimPrefix(n.srv.URL, "http") + "/ws"
	n.scr = n.srv.URL + "/metrics"
	t.Cleanup(func() {
		for _, c := range n.open {
			_ = c.Close()
		}
		_ = gw.Close()
		n.srv.Close()
	})
	return n
}

func (n *node) dial(t *testing.T) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(n.ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	n.open = append(n.open, c)
	return c
}

// scrape fetches /metrics and parses it as the Prometheus text format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("Content-Type %q", ct)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics is not the Prometheus text format: %v", err)
	}
	return fams
}

// value returns the value of the sample of name whose labels include
// labels ("k=v" pairs), or an error.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, error) {
	f := fams[name]
	if f == nil {
		return 0, fmt.Errorf("no metric %s", name)
	}
next:
	for _, m := range f.Metric {
		for _, kv := range labels {
			k, v, _ := strings.Cut(kv, "=")
			found := false
			for _, l := range m.Label {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.Counter.GetValue(), nil
		case dto.MetricType_GAUGE:
			return m.Gauge.GetValue(), nil
		case dto.MetricType_HISTOGRAM:
			return float64(m.Histogram.GetSampleCount()), nil
		}
		return 0, fmt.Errorf("%s has type %v", name, f.GetType())
	}
	return 0, fmt.Errorf("no sample of %s with %v", name, labels)
}

func mustValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	v, err := value(fams, name, labels...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// checkFor polls fn until it returns nil or total elapses.
func checkFor(t *testing.T, total time.Duration, fn func() error) {
	t.Helper()
	wait.For(t, total, 20*time.Millisecond, fn)
}

// Every metric is there with its type, and the counters move when
// messages flow.
func TestMetricsMoveWithTraffic(t *testing.T) {
	n := newNode(t, gateway.Config{NodeID: "gw-m", Version: "v9", NodeInfoInterval: -1})
	before := scrape(t, n.scr)
	types := map[string]dto.MetricType{
		"firetower_connections":                     dto.MetricType_GAUGE,
		"firetower_topics":                          dto.MetricType_GAUGE,
		"firetower_subscriptions":                   dto.MetricType_GAUGE,
		"firetower_connects_total":                  dto.MetricType_COUNTER,
		"firetower_disconnects_total":               dto.MetricType_COUNTER,
		"firetower_messages_in_total":               dto.MetricType_COUNTER,
		"firetower_messages_out_total":              dto.MetricType_COUNTER,
		"firetower_bytes_in_total":                  dto.MetricType_COUNTER,
		"firetower_bytes_out_total":                 dto.MetricType_COUNTER,
		"firetower_published_total":                 dto.MetricType_COUNTER,
		"firetower_remote_messages_total":           dto.MetricType_COUNTER,
		"firetower_publish_errors_total":            dto.MetricType_COUNTER,
		"firetower_dropped_total":                   dto.MetricType_COUNTER,
		"firetower_slow_consumer_disconnects_total": dto.MetricType_COUNTER,
		"firetower_read_timeouts_total":             dto.MetricType_COUNTER,
		"firetower_protocol_errors_total":           dto.MetricType_COUNTER,
		"firetower_panics_total":                    dto.MetricType_COUNTER,
		"firetower_connections_refused_total":       dto.MetricType_COUNTER,
		"firetower_forbidden_total":                 dto.MetricType_COUNTER,
		"firetower_token_expired_total":             dto.MetricType_COUNTER,
		"firetower_ready":                           dto.MetricType_GAUGE,
		"firetower_draining":                        dto.MetricType_GAUGE,
		"firetower_broker_ready":                    dto.MetricType_GAUGE,
		"firetower_cluster_nodes":                   dto.MetricType_GAUGE,
		"firetower_start_time_seconds":              dto.MetricType_GAUGE,
		"firetower_node_info":                       dto.MetricType_GAUGE,
		"firetower_fanout_duration_seconds":         dto.MetricType_HISTOGRAM,
		"firetower_broker_publish_duration_seconds": dto.MetricType_HISTOGRAM,
		"go_goroutines":                             dto.MetricType_GAUGE,
		"process_start_time_seconds":                dto.MetricType_GAUGE,
	}
	for name, typ := range types {
		if f := before[name]; f == nil {
			t.Errorf("missing %s", name)
		} else if f.GetType() != typ {
			t.Errorf("%s is a %v, want %v", name, f.GetType(), typ)
		}
	}
	for _, reason := range []string{"slow_consumer", "read_timeout", "rate_limit"} {
		mustValue(t, before, "firetower_dropped_total", "reason="+reason)
	}
	for _, reason := range []string{"auth", "node_limit", "ip_limit", "connect_rate"} {
		mustValue(t, before, "firetower_connections_refused_total", "reason="+reason)
	}
	if v := mustValue(t, before, "firetower_node_info", "node=gw-m", "version=v9", "broker=memory"); v != 1 {
		t.Errorf("node_info = %v", v)
	}
	if v := mustValue(t, before, "firetower_ready"); v != 1 {
		t.Errorf("ready = %v", v)
	}
	if _, err := value(before, "firetower_broker_reconnects_total"); err == nil {
		t.Errorf("the in-process broker has no reconnects to report")
	}

	a, b := n.dial(t), n.dial(t)
	for _, c := range []*websocket.Conn{a, b} {
		if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","topic":"room","data":""}`)); err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, 5*time.Second, func() error {
		if c := n.gw.LocalConnectNum("room"); c != 2 {
			return fmt.Errorf("%d subscribers", c)
		}
		return nil
	})
	const msgs = 5
	for i := range msgs {
		if err := a.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"type":"publish","topic":"room","data":%d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*websocket.Conn{a, b} {
		for got := 0; got < msgs; {
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, p, err := c.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			if string(p) != "heartbeat" {
				got++
			}
		}
	}
	// The counters of writes are updated after the write returns: poll.
	checkFor(t, 5*time.Second, func() error {
		after := scrape(t, n.scr)
		want := map[string]float64{
			"firetower_connections":                     2,
			"firetower_topics":                          1,
			"firetower_subscriptions":                   2,
			"firetower_connects_total":                  2,
			"firetower_published_total":                 msgs,
			"firetower_messages_in_total":               msgs + 2, // and two subscribes
			"firetower_fanout_duration_seconds":         msgs,     // observations
			"firetower_broker_publish_duration_seconds": msgs,
		}
		for name, w := range want {
			if v, err := value(after, name); err != nil || v != w {
				return fmt.Errorf("%s = %v (%v), want %v", name, v, err, w)
			}
		}
		for name, atLeast := range map[string]float64{
			"firetower_messages_out_total": 2 * msgs,
			"firetower_bytes_out_total":    2 * msgs,
			"firetower_bytes_in_total":     mustValue(t, before, "firetower_bytes_in_total") + 100,
		} {
			if v, err := value(after, name); err != nil || v < atLeast {
				return fmt.Errorf("%s = %v (%v), want at least %v", name, v, err, atLeast)
			}
		}
		return nil
	})
}

// With the topic-manager broker, the manager connections and reconnects are
// reported, and the broker's readiness follows the manager.
func TestMetricsTopicManagerBroker(t *testing.T) {
	mgr, err := topicmgr.New(topicmgr.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	served := make(chan error, 1)
	go func() { served <- mgr.Serve(l) }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = mgr.Close()
			<-served
		}
	})

	b, err := tm.NewURL("tm://tm-1@"+addr, quiet)
	if err != nil {
		t.Fatal(err)
	}
	n := newNode(t, gateway.Config{NodeID: "gw-tm", Broker: b, NodeInfoInterval: -1})
	if err := n.reg.WatchManager(mgr); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, func() error {
		fams := scrape(t, n.scr)
		for _, c := range []struct {
			name   string
			labels []string
			want   float64
		}{
			{"firetower_broker_manager_up", []string{"manager=tm-1"}, 1},
			{"firetower_broker_ready", nil, 1},
			{"firetower_ready", nil, 1},
			{"firetower_broker_reconnects_total", nil, 0},
			{"firetower_topicmanager_sessions", nil, 1},
			{"firetower_topicmanager_gateways", nil, 1},
			{"firetower_node_info", []string{"broker=tm://tm-1@" + addr}, 1},
		} {
			if v, err := value(fams, c.name, c.labels...); err != nil || v != c.want {
				return fmt.Errorf("%s%v = %v (%v), want %v", c.name, c.labels, v, err, c.want)
			}
		}
		return nil
	})

	checkGrafanaNames(t, scrape(t, n.scr))

	// The manager goes away: the broker is not ready. It comes back on the
	// same port: one reconnect.
	_ = mgr.Close()
	<-served
	stopped = true
	checkFor(t, 5*time.Second, func() error {
		fams := scrape(t, n.scr)
		if v, _ := value(fams, "firetower_broker_ready"); v != 0 {
			return fmt.Errorf("broker_ready = %v with the manager down", v)
		}
		if v, _ := value(fams, "firetower_ready"); v != 0 {
			return fmt.Errorf("ready = %v with the manager down", v)
		}
		if v, _ := value(fams, "firetower_broker_manager_up", "manager=tm-1"); v != 0 {
			return fmt.Errorf("manager_up = %v with the manager down", v)
		}
		return nil
	})
	mgr2, err := topicmgr.New(topicmgr.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	var l2 net.Listener
	checkFor(t, 5*time.Second, func() error {
		l2, err = net.Listen("tcp", addr)
		return err
	})
	served2 := make(chan error, 1)
	go func() { served2 <- mgr2.Serve(l2) }()
	t.Cleanup(func() { _ = mgr2.Close(); <-served2 })
	checkFor(t, 10*time.Second, func() error {
		fams := scrape(t, n.scr)
		if v, _ := value(fams, "firetower_broker_reconnects_total"); v != 1 {
			return fmt.Errorf("broker_reconnects_total = %v, want 1", v)
		}
		if v, _ := value(fams, "firetower_broker_ready"); v != 1 {
			return fmt.Errorf("broker_ready = %v after the manager came back", v)
		}
		return nil
	})
}

// checkGrafanaNames fails if deploy/grafana/firetower.json queries a metric
// that fams (a gateway with the topic-manager broker and a manager) lacks.
func checkGrafanaNames(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	b, err := os.ReadFile("../deploy/grafana/firetower.json")
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`\b(?:firetower|go|process)_[a-z_]+`).FindAllString(string(b), -1)
	if len(names) < 20 {
		t.Fatalf("only %d metric names in the Grafana dashboard", len(names))
	}
	for _, name := range names {
		base := strings.TrimSuffix(name, "_bucket")
		if fams[base] == nil && fams[name] == nil {
			t.Errorf("the Grafana dashboard queries %s, which /metrics does not have", name)
		}
	}
}
