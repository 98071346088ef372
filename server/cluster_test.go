package server_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/internal/cluster"
	"github.com/firetower-go/firetower/internal/clustertest"
	"github.com/firetower-go/firetower/server"
	"github.com/firetower-go/firetower/topicmgr"
	"github.com/gorilla/websocket"
)

func TestParseGatewayBroker(t *testing.T) {
	parseGW := func(args []string, env map[string]string) *server.Options {
		t.Helper()
		var stderr bytes.Buffer
		o, err := server.ParseGateway(args, fakeEnv(env), &stderr)
		if err != nil {
			t.Fatalf("ParseGateway(%q): %v\n%s", args, err, stderr.String())
		}
		return o
	}
	t.Run("flag", func(t *testing.T) {
		emptyDir(t)
		o := parseGW([]string{"--broker", "tm://127.0.0.1:6666,127.0.0.1:6667", "--cluster-token", "s"}, nil)
		if o.Server.Broker != "tm://127.0.0.1:6666,127.0.0.1:6667" || o.Server.ClusterToken != "s" {
			t.Errorf("Broker %q, token %q", o.Server.Broker, o.Server.ClusterToken)
		}
	})
	t.Run("no broker is the embedded one", func(t *testing.T) {
		emptyDir(t)
		if o := parseGW(nil, nil); o.Server.Broker != "" {
			t.Errorf("Broker %q, want empty", o.Server.Broker)
		}
	})
	t.Run("environment", func(t *testing.T) {
		emptyDir(t)
		o := parseGW(nil, map[string]string{"FIRETOWER_BROKER": "tm://10.0.0.1:6666"})
		if o.Server.Broker != "tm://10.0.0.1:6666" {
			t.Errorf("Broker %q", o.Server.Broker)
		}
	})
	t.Run("file, broker wins over topicServiceAddr", func(t *testing.T) {
		dir := emptyDir(t)
		writeConfig(t, dir, server.DefaultConfigFile, `broker = "tm://a:1,b:2"`+"\n"+`topicServiceAddr = "c:3"`)
		o := parseGW(nil, nil)
		if o.Server.Broker != "tm://a:1,b:2" {
			t.Errorf("Broker %q", o.Server.Broker)
		}
	})
	t.Run("the original's topicServiceAddr", func(t *testing.T) {
		dir := emptyDir(t)
		writeConfig(t, dir, server.DefaultConfigFile, originalStyleConfig)
		o := parseGW(nil, nil)
		if o.Server.Broker != "tm://127.0.0.1:6666" || slices.Contains(o.Ignored, "topicServiceAddr") {
			t.Errorf("Broker %q, ignored %q; want tm://127.0.0.1:6666 from topicServiceAddr", o.Server.Broker, o.Ignored)
		}
		// serve stays all-in-one with the same file.
		if o := parse(t, nil, nil); o.Server.Broker != "" {
			t.Errorf("serve: Broker %q, want empty", o.Server.Broker)
		}
	})
	t.Run("flag wins over file", func(t *testing.T) {
		dir := emptyDir(t)
		writeConfig(t, dir, server.DefaultConfigFile, `topicServiceAddr = "c:3"`)
		o := parseGW([]string{"--broker="}, nil)
		if o.Server.Broker != "" {
			t.Errorf("Broker %q, want empty", o.Server.Broker)
		}
	})
	for _, bad := range []string{"amqp://x:1", "tm://", "tm://nohost", "tm://a:1,a:1", "redis://x:1/db", "nats://x:1?prefix=a.*"} {
		t.Run("bad "+bad, func(t *testing.T) {
			emptyDir(t)
			if _, err := server.ParseGateway([]string{"--broker", bad}, fakeEnv(nil), &bytes.Buffer{}); err == nil {
				t.Errorf("--broker %q accepted", bad)
			}
		})
	}
}

func TestParseTopicManager(t *testing.T) {
	parseTM := func(args []string, env map[string]string) (*server.ManagerOptions, error) {
		return server.ParseTopicManager(args, fakeEnv(env), &bytes.Buffer{})
	}
	dir := emptyDir(t)
	// A gateway's fireTower.toml beside it is not read.
	writeConfig(t, dir, server.DefaultConfigFile, `announceCounts = false`)
	o, err := parseTM(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.Addr != topicmgr.DefaultAddr || o.Manager.Lease != topicmgr.DefaultLease || o.Manager.MaxFrame != cluster.DefaultMaxFrame ||
		o.Manager.QueueFrames != topicmgr.DefaultQueueFrames || o.Manager.Heartbeat != topicmgr.DefaultHeartbeat {
		t.Errorf("defaults: %+v", o)
	}
	o, err = parseTM([]string{"--addr", "127.0.0.1:7777", "--node-id", "tm-1", "--max-frame", "2000000"},
		map[string]string{"FIRETOWER_LEASE": "3s", "FIRETOWER_QUEUE_FRAMES": "10", "FIRETOWER_ADDR": "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Addr != "127.0.0.1:7777" || o.Manager.NodeID != "tm-1" || o.Manager.Lease != 3*time.Second ||
		o.Manager.QueueFrames != 10 || o.Manager.MaxFrame != 2000000 {
		t.Errorf("flags and environment: %+v", o)
	}
	path := writeConfig(t, dir, "tm.toml", "lease = 9\nqueueBytes = 1000000\nclusterToken = \"s\"")
	o, err = parseTM([]string{"--config", path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.Manager.Lease != 9*time.Second || o.Manager.QueueBytes != 1000000 || o.Manager.Token != "s" {
		t.Errorf("config file: %+v", o.Manager)
	}
	for _, bad := range [][]string{{"--addr", "nohost"}, {"--max-frame", "10"}, {"--lease", "-1s"}, {"--log-format", "xml"}, {"stray"}} {
		if _, err := parseTM(bad, nil); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Two all-in-one servers in gateway mode share one topic manager: a chat
// message reaches the room on both, and the online counts the server
// announces are cluster-wide.
func TestGatewayModeWithTopicManager(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	url := clustertest.StartTopicManager(t, "secret")
	a := startServer(t, server.Config{Broker: url, ClusterToken: "secret", Gateway: gatewayConfig("gw-a", log)})
	b := startServer(t, server.Config{Broker: url, ClusterToken: "secret", Gateway: gatewayConfig("gw-b", log)})

	ca := dial(t, a.ws, nil)
	send(t, ca, subscribeWorld)
	expect(t, ca, "a", `{"type":"onSubscribe","data":1}`)
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := b.srv.Gateway().ConnectNum(context.Background(), "/chat/world"); n != 1 {
			return errors.New("gateway b does not see a's subscriber yet")
		}
		return nil
	})
	cb := dial(t, b.ws, nil)
	send(t, cb, subscribeWorld)
	// Both hear the count of 2, announced by b. The manager reads each
	// gateway's connection on its own goroutine, so a's earlier
	// announcement (count 1) may still reach b if b's interest overtook
	// it: a message published just before a subscription may be
	// delivered to it (at-most-once says nothing against that).
	expectSkipping(t, cb, "b", `{"type":"onSubscribe","data":2}`, `{"type":"onSubscribe","data":1}`)
	expect(t, ca, "a", `{"type":"onSubscribe","data":2}`)
	send(t, ca, publishChat)
	expect(t, ca, "a", chatData)
	// a's stale count may also come after b's own announcement of 2: b
	// delivers its own publishes locally at once.
	expectSkipping(t, cb, "b", chatData, `{"type":"onSubscribe","data":1}`)

	// A wrong token is refused by the manager: the gateway starts but its
	// cluster publishes fail.
	bad := startServer(t, server.Config{Broker: url, ClusterToken: "guess", Gateway: gatewayConfig("gw-bad", log)})
	if err := bad.srv.Gateway().Publish(context.Background(), "/chat/world", []byte(`1`)); err == nil ||
		!strings.Contains(err.Error(), "unavailable") {
		t.Errorf("publish through a refused gateway: %v, want unavailable", err)
	}
}

func TestUnknownBrokerRefused(t *testing.T) {
	if _, err := server.New(server.Config{Broker: "amqp://x:1"}); err == nil {
		t.Error("server.New accepted an unknown broker")
	}
}

func gatewayConfig(node string, log *slog.Logger) gateway.Config {
	return gateway.Config{NodeID: node, Logger: log}
}

// expectSkipping is expect, allowing messages equal to skip before want.
func expectSkipping(t *testing.T, c *websocket.Conn, who, want, skip string) {
	t.Helper()
	for {
		got := next(t, c)
		if got == want {
			return
		}
		if got != skip {
			t.Fatalf("%s got %s, want %s", who, got, want)
		}
	}
}
