package pushapi_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/internal/apitest"
	"github.com/firetower-go/firetower/internal/clustertest"
	"github.com/firetower-go/firetower/pushapi"
	"github.com/firetower-go/firetower/pushapi/pb"
	"github.com/firetower-go/firetower/server"
	"github.com/gorilla/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// startCluster runs two servers joined through the broker at url. Started
// after the broker, they stop before it (cleanups run last-in first-out).
func startCluster(t *testing.T, url string) (a, b *apitest.Server) {
	t.Helper()
	node := func(id string) server.Config {
		token := ""
		if strings.HasPrefix(url, "tm://") {
			token = "secret"
		}
		return server.Config{
			Broker: url, ClusterToken: token, QuietCounts: true,
			Gateway: gateway.Config{NodeID: id, Logger: slog.New(slog.DiscardHandler), NodeInfoInterval: 100 * time.Millisecond},
		}
	}
	return apitest.Start(t, node("gw-a")), apitest.Start(t, node("gw-b"))
}

// waitCount waits until s counts want subscribers of topic in the cluster.
func waitCount(t *testing.T, s *apitest.Server, topic string, want int64) {
	t.Helper()
	apitest.CheckFor(t, 5*time.Second, func() error {
		if n := s.Gateway().ConnectNum(context.Background(), topic); n != want {
			return fmt.Errorf("%s counts %d subscribers of %s, want %d", s.Gateway().NodeID(), n, topic, want)
		}
		return nil
	})
}

// The API of either node reaches the connections of both, with each
// broker: the topic manager (in process), Redis and NATS (the servers
// scripts/test.sh starts; skipped without them unless
// FIRETOWER_REQUIRE_SERVICES is set).
func TestCluster(t *testing.T) {
	t.Run("tm", func(t *testing.T) { testCluster(t, clustertest.StartTopicManager(t, "secret")) })
	t.Run("redis", func(t *testing.T) {
		clustertest.Require(t, "redis", clustertest.RedisAddr)
		testCluster(t, "redis://"+clustertest.RedisAddr+"?prefix="+clustertest.UniquePrefix(t))
	})
	t.Run("nats", func(t *testing.T) {
		clustertest.Require(t, "nats", clustertest.NATSAddr)
		testCluster(t, "nats://"+clustertest.NATSAddr+"?prefix="+clustertest.UniquePrefix(t))
	})
}

func testCluster(t *testing.T, url string) {
	a, b := startCluster(t, url)
	const topic = "/cluster/room"
	onA := apitest.Dial(t, a.WS+"?client=ca&user=alice", false)
	onB1 := apitest.Dial(t, b.WS+"?client=cb1&user=bob", false)
	onB2 := apitest.Dial(t, b.WS+"?client=cb2&user=bob", true)
	apitest.Subscribe(t, a, onA, false, topic, 1)
	apitest.Subscribe(t, b, onB1, false, topic, 1)
	apitest.Subscribe(t, b, onB2, true, topic, 2)
	waitCount(t, a, topic, 3)
	waitCount(t, b, topic, 3)

	t.Run("counts agree", func(t *testing.T) {
		ca := getOK[pushapi.TopicCount](t, a, "/api/count?topic="+topic)
		cb := getOK[pushapi.TopicCount](t, b, "/api/count?topic="+topic)
		if ca.Count != 3 || cb.Count != 3 || ca.Local != 1 || cb.Local != 2 {
			t.Errorf("counts: a %+v, b %+v", ca, cb)
		}
		pa := getOK[pushapi.TopicPage](t, a, "/api/topics")
		if len(pa.Topics) != 1 || pa.Topics[0] != ca {
			t.Errorf("a's topics %+v, want [%+v]", pa, ca)
		}
	})

	t.Run("publish on A reaches B", func(t *testing.T) {
		p := postOK[pushapi.Published](t, a, "/api/publish", `{"topic":"`+topic+`","data":{"via":"a"}}`)
		for _, c := range []struct {
			name, got, want string
		}{
			{"a", apitest.Next(t, onA), `{"via":"a"}`},
			{"b1", apitest.Next(t, onB1), `{"via":"a"}`},
			{"b2", apitest.Next(t, onB2), `{"type":"message","topic":"` + topic + `","id":"` + p.ID + `","data":{"via":"a"}}`},
		} {
			if c.got != c.want {
				t.Errorf("%s got %s, want %s", c.name, c.got, c.want)
			}
		}
	})

	t.Run("push to a user on B through A", func(t *testing.T) {
		res := postOK[pushapi.Affected](t, a, "/api/push/user", `{"userId":"bob","data":"hi bob"}`)
		if res.Local != 0 {
			t.Errorf("a reached %d of bob's connections, want 0 (they are on b)", res.Local)
		}
		if got := apitest.Next(t, onB1); got != `"hi bob"` {
			t.Errorf("b1 got %s", got)
		}
		if got := apitest.Next(t, onB2); got != `{"type":"direct","data":"hi bob"}` {
			t.Errorf("b2 got %s", got)
		}
		postOK[pushapi.Affected](t, a, "/api/push/client", `{"clientId":"cb1","data":2}`)
		if got := apitest.Next(t, onB1); got != `2` {
			t.Errorf("b1 got %s", got)
		}
		expectQuiet(t, a, onA, topic) // alice got no push; the marker reaches b too:
		for _, c := range []*websocket.Conn{onB1, onB2} {
			if got := apitest.Next(t, c); !strings.Contains(got, `"marker"`) {
				t.Errorf("got %s, want the marker", got)
			}
		}
	})

	t.Run("subscribe on B gets what websockets get", func(t *testing.T) {
		cc, err := grpc.NewClient(b.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cc.Close() }()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ctx = metadata.AppendToOutgoingContext(ctx, "x-api-key", b.Key)
		stream, err := pb.NewPushServiceClient(cc).Subscribe(ctx, &pb.SubscribeRequest{Topic: topic})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Header(); err != nil {
			t.Fatal(err)
		}
		waitCount(t, a, topic, 4) // the stream counts, on every node
		p := postOK[pushapi.Published](t, a, "/api/publish", `{"topic":"`+topic+`","data":[4]}`)
		m, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if strconv.FormatUint(m.Id, 10) != p.ID || m.Json != `[4]` || m.Topic != topic {
			t.Errorf("stream got %v, want id %s and [4]", m, p.ID)
		}
		want := `{"type":"message","topic":"` + topic + `","id":"` + p.ID + `","data":[4]}`
		if got := apitest.Next(t, onB2); got != want {
			t.Errorf("b2 got %s, want %s", got, want)
		}
		for _, c := range []*struct{ name, got string }{{"a", apitest.Next(t, onA)}, {"b1", apitest.Next(t, onB1)}} {
			if c.got != `[4]` {
				t.Errorf("%s got %s", c.name, c.got)
			}
		}
		cancel()
		waitCount(t, a, topic, 3)
	})

	t.Run("nodes", func(t *testing.T) {
		apitest.CheckFor(t, 5*time.Second, func() error {
			n := getOK[pushapi.Cluster](t, a, "/api/nodes")
			if len(n.Nodes) != 2 || n.Nodes[0].ID != "gw-a" || !n.Nodes[0].Self || n.Nodes[1].ID != "gw-b" || n.Nodes[1].Self {
				return fmt.Errorf("a's nodes: %+v", n)
			}
			return nil
		})
	})

	t.Run("disconnect a user on B through A", func(t *testing.T) {
		postOK[pushapi.Affected](t, a, "/api/disconnect/user", `{"userId":"bob"}`)
		wantClosed(t, onB1, 4501)
		wantClosed(t, onB2, 4501)
		waitCount(t, a, topic, 1)
		waitCount(t, b, topic, 1)
	})
}
