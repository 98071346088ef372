package server_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/internal/clustertest"
	"github.com/firetower-go/firetower/server"
)

// Two gateways with the default --cluster-id (auto) on one external broker
// claim different node numbers, so that their message ids never collide
// (the README's cluster recipe, where both had number 1, shared ids); two
// with the same explicit number cannot both start.
func TestClusterIDOnBrokers(t *testing.T) {
	for _, b := range []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"redis", func(t *testing.T) string {
			clustertest.Require(t, "redis", clustertest.RedisAddr)
			return "redis://" + clustertest.RedisAddr + "?prefix=" + clustertest.UniquePrefix(t)
		}},
		{"nats", func(t *testing.T) string {
			clustertest.Require(t, "nats", clustertest.NATSAddr)
			return "nats://" + clustertest.NATSAddr + "?prefix=" + clustertest.UniquePrefix(t)
		}},
		{"tm", func(t *testing.T) string { return clustertest.StartTopicManager(t, "secret") }},
	} {
		t.Run(b.name, func(t *testing.T) {
			url := b.url(t)
			log := slog.New(slog.DiscardHandler)
			cfg := func(node string, clusterID int64) server.Config {
				gw := gatewayConfig(node, log)
				gw.ClusterID = clusterID
				return server.Config{Broker: url, ClusterToken: "secret", QuietCounts: true, Gateway: gw}
			}
			a := startServer(t, cfg("gw-a", 0)).srv.Gateway()
			b := startServer(t, cfg("gw-b", 0)).srv.Gateway()
			if a.ClusterID() == b.ClusterID() {
				t.Fatalf("both gateways have node number %d", a.ClusterID())
			}
			const perNode = 2000
			ids := make([][]uint64, 2)
			var wg sync.WaitGroup
			for i, g := range []*gateway.Gateway{a, b} {
				wg.Go(func() {
					for range perNode {
						id, err := g.PublishID(context.Background(), "/ids", []byte(`1`))
						if err != nil {
							t.Error(err)
							return
						}
						ids[i] = append(ids[i], id)
					}
				})
			}
			wg.Wait()
			seen := make(map[uint64]bool, 2*perNode)
			for _, list := range ids {
				for _, id := range list {
					if seen[id] {
						t.Fatalf("id %d published by both gateways", id)
					}
					seen[id] = true
				}
			}

			fixed := startServer(t, cfg("gw-fixed", 7)).srv.Gateway()
			if fixed.ClusterID() != 7 {
				t.Fatalf("gateway with --cluster-id 7 has number %d", fixed.ClusterID())
			}
			_, err := server.New(cfg("gw-clash", 7))
			if !errors.Is(err, gateway.ErrClusterIDTaken) || !strings.Contains(err.Error(), " 7 ") {
				t.Fatalf("second gateway with --cluster-id 7: %v, want ErrClusterIDTaken naming 7", err)
			}

			// Started at the same instant, two gateways with one number
			// never both get it: each waits for its claim to reach the
			// broker before it looks for the other's.
			for _, n := range []int64{9, 10, 11} {
				var started []*server.Server
				var mu sync.Mutex
				for _, node := range []string{"gw-x", "gw-y"} {
					wg.Go(func() {
						srv, err := server.New(cfg(node, n))
						if err != nil && !errors.Is(err, gateway.ErrClusterIDTaken) {
							t.Error(err)
						}
						if err == nil {
							mu.Lock()
							started = append(started, srv)
							mu.Unlock()
						}
					})
				}
				wg.Wait()
				for _, srv := range started {
					stopUnserved(t, srv)
				}
				if len(started) == 2 {
					t.Fatalf("two gateways started together both claimed number %d", n)
				}
			}
		})
	}
}

// stopUnserved stops a server that New returned: Serve with an ended
// context shuts everything down at once.
func stopUnserved(t *testing.T, srv *server.Server) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := srv.Serve(ctx, l); err != nil {
		t.Error(err)
	}
}
