package redis_test

import (
	"log"
	"log/slog"

	"github.com/firetower-go/firetower/broker/redis"
	"github.com/firetower-go/firetower/gateway"
)

// A gateway node of a cluster whose nodes share topics through Redis: every
// node uses the same URL (server and prefix) and its own stable node id.
// (Not run: it needs a Redis server.)
func ExampleNewURL() {
	b, err := redis.NewURL("redis://127.0.0.1:6379/0?prefix=chat", slog.Default())
	if err != nil {
		log.Fatal(err)
	}
	g, err := gateway.New(gateway.Config{NodeID: "gw-1", Broker: b})
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close() // closes the broker too
	// Serve websockets with g.Upgrade and g.BuildTower, as with any broker.
}
