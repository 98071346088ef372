package topicmgr_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/broker/tm"
	"github.com/firetower-go/firetower/topicmgr"
)

// A topic manager, a gateway's broker with one subscriber of /chat/world,
// and an external publisher: the publisher's message reaches the gateway.
func Example() {
	quiet := slog.New(slog.DiscardHandler)
	srv, err := topicmgr.New(topicmgr.Config{NodeID: "tm-1", Logger: quiet})
	if err != nil {
		panic(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()

	cfg := tm.Config{Managers: []tm.Manager{{Addr: l.Addr().String(), Key: "tm-1"}}, Logger: quiet}
	gw, err := tm.New(cfg)
	if err != nil {
		panic(err)
	}
	got := make(chan *broker.Message, 1)
	if err := gw.Start(context.Background(), "gw-1", func(m *broker.Message) { got <- m }); err != nil {
		panic(err)
	}
	defer gw.Close()
	gw.SetInterest("/chat/world", 1) // the gateway's first local subscriber

	pub, err := tm.NewPublisher(context.Background(), cfg, "backend")
	if err != nil {
		panic(err)
	}
	defer pub.Close()
	for deadline := time.Now().Add(5 * time.Second); srv.Count("/chat/world") != 1 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond) // the interest travels in the background
	}
	if _, err := pub.Publish(context.Background(), "/chat/world", []byte(`{"data":"hi"}`)); err != nil {
		panic(err)
	}
	m := <-got
	fmt.Printf("%s from %s on %s\n", m.Data, m.Origin, m.Topic)
	// Output: {"data":"hi"} from backend on /chat/world
}
