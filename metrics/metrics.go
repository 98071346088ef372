// Package metrics exposes a firetower node's figures to Prometheus (the text
// exposition format, served at /metrics), on a registry of its own rather
// than the process-wide default one.
//
// The counters of a gateway (gateway.Stats), its broker and a topic manager
// (topicmgr.Stats) are read by collectors at scrape time: they cost nothing
// on the hot path. Only the two latency histograms are fed as messages flow,
// through gateway.Observer: one observation per message, never per delivery.
// Every metric is described in docs/operations.md.
package metrics

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/topicmgr"
)

// Namespace prefixes every metric name.
const Namespace = "firetower"

// Metrics is one process's registry. Build it with New, pass it to the
// gateway as its Config.Observer, then attach what it should report with
// WatchGateway or WatchManager.
type Metrics struct {
	reg           *prometheus.Registry
	log           *slog.Logger
	fanout        prometheus.Histogram
	brokerPublish prometheus.Histogram
}

var _ gateway.Observer = (*Metrics)(nil)

// New returns a registry holding the Go runtime and process collectors and
// the publish-path histograms. log receives scrape errors (nil: discarded).
func New(log *slog.Logger) *Metrics {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		log: log,
		// Handing a message to local subscribers only queues frames: from
		// a microsecond for a few subscribers to tens of milliseconds for
		// a hundred thousand.
		fanout: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace,
			Name:      "fanout_duration_seconds",
			Help:      "Time to hand one message to its local subscribers' queues (messages with at least one local subscriber).",
			Buckets:   prometheus.ExponentialBuckets(1e-6, 4, 11), // 1µs .. ~1s
		}),
		// A publish to the broker is a queue append for the topic
		// managers, a network round trip for Redis or NATS.
		brokerPublish: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace,
			Name:      "broker_publish_duration_seconds",
			Help:      "Time to hand one published message to the broker (to the other nodes), failures included.",
			Buckets:   prometheus.ExponentialBuckets(1e-5, 4, 10), // 10µs .. ~2.6s
		}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.fanout, m.brokerPublish,
	)
	return m
}

// Registry returns the registry, to add an application's own collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Fanout implements gateway.Observer.
func (m *Metrics) Fanout(d time.Duration, _ int) { m.fanout.Observe(d.Seconds()) }

// BrokerPublish implements gateway.Observer.
func (m *Metrics) BrokerPublish(d time.Duration, _ error) { m.brokerPublish.Observe(d.Seconds()) }

// WatchGateway reports g's figures (and its broker's, where the broker
// exposes them) at every scrape.
func (m *Metrics) WatchGateway(g *gateway.Gateway) error {
	return m.reg.Register(newGatewayCollector(g))
}

// WatchManager reports a topic manager's figures at every scrape.
func (m *Metrics) WatchManager(s *topicmgr.Server) error {
	return m.reg.Register(newManagerCollector(s))
}

// Handler serves the registry in the Prometheus text format (or
// OpenMetrics, when the scraper asks for it).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:          slogPrinter{m.log},
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	})
}

// slogPrinter adapts a slog.Logger to promhttp's Logger.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Warn("metrics scrape", "err", slogArgs(v)) }

func slogArgs(v []any) any {
	if len(v) == 1 {
		return v[0]
	}
	return v
}
