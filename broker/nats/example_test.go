package nats_test

import (
	"log"
	"log/slog"

	"github.com/firetower-go/firetower/broker/nats"
	"github.com/firetower-go/firetower/gateway"
)

// A gateway node of a cluster whose nodes share topics through NATS: every
// node uses the same URL (servers and prefix) and its own stable node id.
// (Not run: it needs a NATS server.)
func ExampleNewURL() {
	b, err := nats.NewURL("nats://127.0.0.1:4222,127.0.0.2:4222?prefix=chat", slog.Default())
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
