package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/firetower-go/firetower/broker/tm"
	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/topicmgr"
)

// Optional broker interfaces the gateway collector reports when present.
type (
	// reconnecter counts the times the broker got a lost connection back
	// (tm.Broker; a Redis or NATS broker can implement it too).
	reconnecter interface{ Reconnects() int64 }
	// managerLister lists the topic managers of a tm.Broker.
	managerLister interface{ Managers() []tm.ManagerState }
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil)
}

// stat is one figure of gateway.Stats as a metric.
type stat struct {
	desc   *prometheus.Desc
	kind   prometheus.ValueType
	value  func(*gateway.Stats) int64
	labels []string // the values of the metric's labels
}

var droppedDesc = desc("dropped_total", "Messages dropped, by reason: slow_consumer (a client's outbound queue was full), read_timeout (a client frame waited too long for room in its inbound queue), rate_limit (a client publish above the publish rate).", "reason")

var refusedDesc = desc("connections_refused_total", "Websocket upgrades refused, by reason: auth (401, no valid token), node_limit (503, max connections), ip_limit (429, max connections per IP), connect_rate (429, new connections per second per IP).", "reason")

// gatewayStats are read from gateway.Stats at every scrape.
var gatewayStats = []stat{
	{desc("connections", "Open client connections."), prometheus.GaugeValue, func(s *gateway.Stats) int64 { return s.Connections }, nil},
	{desc("topics", "Topics with at least one local subscriber."), prometheus.GaugeValue, func(s *gateway.Stats) int64 { return s.Topics }, nil},
	{desc("connects_total", "Client connections accepted."), prometheus.CounterValue, func(s *gateway.Stats) int64 { return s.ConnectsTotal }, nil},
	{desc("disconnects_total", "Client connections ended."), prometheus.CounterValue, func(s *gateway.Stats) int64 { return s.DisconnectsTotal }, nil},
	{desc("messages_in_total", "Data frames read from clients."), prometheus.CounterValue, func(s *gateway.Stats) int64 { return s.FramesIn }, nil},
	{desc("messages_out_total", "Frames written to clients (deliveries, replies, heartbeats)."), prometheus.CounterValue, func(s *gateway.Stats) int64 { return s.FramesOut }, nil},
	{desc("bytes_in_total", "Bytes of client data frames read."), prometheus.CounterValue, func(s *gateway.Stats) int64 { return s.BytesIn }, nil},
	{desc("bytes_out_total", "Bytes written to clients."), prometheus.CounterValue, func(s *gateway.Stats) int64 { return s.BytesOut }, nil},
	{desc("published_total", "Messages published on this node (by its clients or its push API)."), prometheus.CounterValue, func(s *gateway.Stats) int64 { return s.Published }, nil},
	{desc("remote_messages_total", "Messages received from other nodes through the broker."), prometheus.CounterValue, func(s *gateway.Stats) int64 { return s.RemoteIn }, nil},
	{desc("publish_errors_total", "Publishes the broker refused (the local subscribers still got them)."), prometheus.CounterValue, func(s *gateway.Stats) int64 { return s.PublishErrors }, nil},
	{droppedDesc, prometheus.CounterValue, func(s *gateway.Stats) int64 { return s.Dropped }, []string{"slow_consumer"}},
	{droppedDesc, prometheus.CounterValue, func(s *gateway.Stats) int64 { return s.ReadTimeouts }, []string{"read_timeout"}},
	{desc("slow_consumer_disconnects_total", "Connections closed with 4008 for not reading their messages."), prometheus.CounterValue, func(s *gateway.Stats) int64 { return s.SlowDisconnects }, nil},
	{desc("read_timeouts_total", `Client frames dropped after waiting for room in their inbound queue (the events of dropped_total{reason="read_timeout"}).`), prometheus.CounterValue, func(s *gateway.Stats) int64 { return s.ReadTimeouts }, nil},
	{desc("protocol_errors_total", "Malformed or refused client frames."), prometheus.CounterValue, func(s *gateway.Stats) int64 { return s.ProtocolErrors }, nil},
	{droppedDesc, prometheus.CounterValue, func(s *gateway.Stats) int64 { return s.RateLimited }, []string{"rate_limit"}},
	{refusedDesc, prometheus.CounterValue, func(s *gateway.Stats) int64 { return s.AuthFailures }, []string{"auth"}},
	{refusedDesc, prometheus.CounterValue, func(s *gateway.Stats) int64 { return s.ConnLimited }, []string{"node_limit"}},
	{refusedDesc, prometheus.CounterValue, func(s *gateway.Stats) int64 { return s.IPLimited }, []string{"ip_limit"}},
	{refusedDesc, prometheus.CounterValue, func(s *gateway.Stats) int64 { return s.ConnRateLimited }, []string{"connect_rate"}},
	{desc("forbidden_total", "Client subscribes and publishes refused because the topic is outside the token's grants."), prometheus.CounterValue, func(s *gateway.Stats) int64 { return s.Forbidden }, nil},
	{desc("token_expired_total", "Connections closed with 4403 because their token expired."), prometheus.CounterValue, func(s *gateway.Stats) int64 { return s.TokenExpired }, nil},
	{desc("panics_total", "Panics recovered in callbacks and the gateway's goroutines."), prometheus.CounterValue, func(s *gateway.Stats) int64 { return s.Panics }, nil},
}

var (
	subscriptionsDesc = desc("subscriptions", "Local subscriptions (one per connection and topic).")
	readyDesc         = desc("ready", "1 when the node takes new clients (/readyz): not draining, broker connected.")
	drainingDesc      = desc("draining", "1 while the node drains its connections on shutdown.")
	brokerReadyDesc   = desc("broker_ready", "1 when the broker reaches the other nodes.")
	clusterNodesDesc  = desc("cluster_nodes", "Gateway nodes in this node's cluster view, itself included.")
	startTimeDesc     = desc("start_time_seconds", "When the gateway started, in seconds since the Unix epoch.")
	infoDesc          = desc("node_info", "Always 1; the node's id, version and broker as labels.", "node", "version", "broker")
	reconnectsDesc    = desc("broker_reconnects_total", "Connections of the broker re-established after a loss.")
	managerUpDesc     = desc("broker_manager_up", "1 while the broker is connected to the topic manager.", "manager")
)

// gatewayCollector reads a gateway at scrape time.
type gatewayCollector struct {
	g        *gateway.Gateway
	reconn   reconnecter   // nil if the broker does not count reconnects
	managers managerLister // nil unless the broker is a tm.Broker
}

func newGatewayCollector(g *gateway.Gateway) *gatewayCollector {
	c := &gatewayCollector{g: g}
	c.reconn, _ = g.Broker().(reconnecter)
	c.managers, _ = g.Broker().(managerLister)
	return c
}

// Describe implements prometheus.Collector.
func (c *gatewayCollector) Describe(ch chan<- *prometheus.Desc) {
	seen := map[*prometheus.Desc]bool{}
	for _, s := range gatewayStats {
		if !seen[s.desc] {
			seen[s.desc] = true
			ch <- s.desc
		}
	}
	for _, d := range []*prometheus.Desc{subscriptionsDesc, readyDesc, drainingDesc, brokerReadyDesc, clusterNodesDesc, startTimeDesc, infoDesc} {
		ch <- d
	}
	if c.reconn != nil {
		ch <- reconnectsDesc
	}
	if c.managers != nil {
		ch <- managerUpDesc
	}
}

// Collect implements prometheus.Collector.
func (c *gatewayCollector) Collect(ch chan<- prometheus.Metric) {
	info := c.g.Info()
	st := info.Stats
	for _, s := range gatewayStats {
		ch <- prometheus.MustNewConstMetric(s.desc, s.kind, float64(s.value(&st)), s.labels...)
	}
	ch <- prometheus.MustNewConstMetric(subscriptionsDesc, prometheus.GaugeValue, float64(c.g.Subscriptions()))
	ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, bool01(c.g.Ready() == nil))
	ch <- prometheus.MustNewConstMetric(drainingDesc, prometheus.GaugeValue, bool01(info.Draining))
	ch <- prometheus.MustNewConstMetric(brokerReadyDesc, prometheus.GaugeValue, bool01(info.BrokerError == ""))
	ch <- prometheus.MustNewConstMetric(clusterNodesDesc, prometheus.GaugeValue, float64(len(c.g.Nodes())))
	ch <- prometheus.MustNewConstMetric(startTimeDesc, prometheus.GaugeValue, float64(info.StartedAt.UnixNano())/float64(time.Second))
	ch <- prometheus.MustNewConstMetric(infoDesc, prometheus.GaugeValue, 1, info.ID, info.Version, info.Broker)
	if c.reconn != nil {
		ch <- prometheus.MustNewConstMetric(reconnectsDesc, prometheus.CounterValue, float64(c.reconn.Reconnects()))
	}
	if c.managers != nil {
		for _, m := range c.managers.Managers() {
			ch <- prometheus.MustNewConstMetric(managerUpDesc, prometheus.GaugeValue, bool01(m.Up), m.Key)
		}
	}
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// managerStats are read from topicmgr.Stats at every scrape.
var managerStats = []struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(*topicmgr.Stats) int64
}{
	{desc("topicmanager_sessions", "Open sessions (gateways and publishers)."), prometheus.GaugeValue, func(s *topicmgr.Stats) int64 { return s.Sessions }},
	{desc("topicmanager_gateways", "Gateways with state: connected or within their lease."), prometheus.GaugeValue, func(s *topicmgr.Stats) int64 { return s.Gateways }},
	{desc("topicmanager_topics", "Topics with subscribers on some gateway."), prometheus.GaugeValue, func(s *topicmgr.Stats) int64 { return s.Topics }},
	{desc("topicmanager_published_total", "PUBLISH frames received."), prometheus.CounterValue, func(s *topicmgr.Stats) int64 { return s.Published }},
	{desc("topicmanager_commands_total", "COMMAND frames received."), prometheus.CounterValue, func(s *topicmgr.Stats) int64 { return s.Commands }},
	{desc("topicmanager_routed_total", "Frames queued to gateways."), prometheus.CounterValue, func(s *topicmgr.Stats) int64 { return s.Routed }},
	{desc("topicmanager_too_large_total", "Frames not routed to a gateway that announced a smaller frame limit."), prometheus.CounterValue, func(s *topicmgr.Stats) int64 { return s.TooLarge }},
	{desc("topicmanager_slow_cutoffs_total", "Sessions cut off for an overflowing queue."), prometheus.CounterValue, func(s *topicmgr.Stats) int64 { return s.SlowCutoffs }},
	{desc("topicmanager_lease_expiries_total", "Gateways dropped at the end of their lease."), prometheus.CounterValue, func(s *topicmgr.Stats) int64 { return s.LeaseExpiries }},
	{desc("topicmanager_replaced_total", "Sessions replaced by a newer one with the same node id."), prometheus.CounterValue, func(s *topicmgr.Stats) int64 { return s.Replaced }},
	{desc("topicmanager_protocol_errors_total", "Sessions ended for a malformed, oversized or unexpected frame."), prometheus.CounterValue, func(s *topicmgr.Stats) int64 { return s.ProtocolErrs }},
}

// managerCollector reads a topic manager at scrape time.
type managerCollector struct{ s *topicmgr.Server }

func newManagerCollector(s *topicmgr.Server) managerCollector { return managerCollector{s} }

// Describe implements prometheus.Collector.
func (c managerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range managerStats {
		ch <- m.desc
	}
}

// Collect implements prometheus.Collector.
func (c managerCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	for _, m := range managerStats {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, float64(m.value(&st)))
	}
}
