package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/firetower-go/firetower/internal/clustertest"
	"github.com/firetower-go/firetower/server"
)

// --broker takes redis:// and nats:// URLs from the flag, the environment
// and the config file, and refuses malformed ones.
func TestParseGatewayExternalBrokers(t *testing.T) {
	for _, url := range []string{
		"redis://127.0.0.1:6379", "redis://:pw@10.0.0.1:6380/2?prefix=chat&lease=10s", "rediss://h:6379?sharded=true",
		"nats://127.0.0.1:4222", "nats://a:4222,b:4222?prefix=chat.prod", "tls://u:p@h",
	} {
		emptyDir(t)
		o, err := server.ParseGateway([]string{"--broker", url}, fakeEnv(nil), &bytes.Buffer{})
		if err != nil || o.Server.Broker != url {
			t.Errorf("--broker %q: %v, Broker %q", url, err, o.Server.Broker)
		}
		o, err = server.ParseGateway(nil, fakeEnv(map[string]string{"FIRETOWER_BROKER": url}), &bytes.Buffer{})
		if err != nil || o.Server.Broker != url {
			t.Errorf("FIRETOWER_BROKER=%q: %v, Broker %q", url, err, o.Server.Broker)
		}
		dir := emptyDir(t)
		writeConfig(t, dir, server.DefaultConfigFile, fmt.Sprintf("broker = %q", url))
		o, err = server.ParseGateway(nil, fakeEnv(nil), &bytes.Buffer{})
		if err != nil || o.Server.Broker != url {
			t.Errorf("broker = %q in the file: %v, Broker %q", url, err, o.Server.Broker)
		}
	}
	for _, bad := range []string{"redis://h:1/x", "redis://h:1?prefix={x}", "redis://h:1?nope=1", "nats://", "nats://h?prefix=a..b"} {
		emptyDir(t)
		if _, err := server.ParseGateway([]string{"--broker", bad}, fakeEnv(nil), &bytes.Buffer{}); err == nil {
			t.Errorf("--broker %q accepted", bad)
		}
	}
}

// Two servers in gateway mode on one Redis: a chat message reaches the room
// on both, the announced online counts are cluster-wide, and a server that
// stops leaves the counts at once.
func TestGatewayModeWithRedis(t *testing.T) {
	clustertest.Require(t, "redis", clustertest.RedisAddr)
	gatewayModeChat(t, "redis://"+clustertest.RedisAddr+"?prefix="+clustertest.UniquePrefix(t))
}

// The same on one NATS server.
func TestGatewayModeWithNATS(t *testing.T) {
	clustertest.Require(t, "nats", clustertest.NATSAddr)
	gatewayModeChat(t, "nats://"+clustertest.NATSAddr+"?prefix="+clustertest.UniquePrefix(t))
}

func gatewayModeChat(t *testing.T, url string) {
	log := slog.New(slog.DiscardHandler)
	a := startServer(t, server.Config{Broker: url, Gateway: gatewayConfig("gw-a", log)})
	b := startServer(t, server.Config{Broker: url, Gateway: gatewayConfig("gw-b", log)})
	remoteCount := func(ts *testServer, want int64) {
		t.Helper()
		checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
			if n := ts.srv.Gateway().ConnectNum(context.Background(), "/chat/world"); n != want {
				return fmt.Errorf("the gateway counts %d subscribers, want %d", n, want)
			}
			return nil
		})
	}

	ca := dial(t, a.ws, nil)
	send(t, ca, subscribeWorld)
	expect(t, ca, "a", `{"type":"onSubscribe","data":1}`)
	remoteCount(b, 1)
	cb := dial(t, b.ws, nil)
	send(t, cb, subscribeWorld)
	// a's announcement (count 1) may still reach b if b's subscription
	// overtook it (at-most-once says nothing against that).
	expectSkipping(t, cb, "b", `{"type":"onSubscribe","data":2}`, `{"type":"onSubscribe","data":1}`)
	expect(t, ca, "a", `{"type":"onSubscribe","data":2}`)
	send(t, ca, publishChat)
	expect(t, ca, "a", chatData)
	// a's stale count may also come after b's own announcement of 2: b
	// delivers its own publishes locally at once.
	expectSkipping(t, cb, "b", chatData, `{"type":"onSubscribe","data":1}`)
	send(t, cb, publishChat)
	expect(t, ca, "a", chatData)
	expect(t, cb, "b", chatData)

	// A cleanly stopped gateway leaves the counts at once.
	if err := b.stop(t); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	remoteCount(a, 1)
}
