package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/broker/tm"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The example serves a working topic manager: a publisher's message reaches
// a gateway with a subscriber, and the service stops when its context ends.
func TestTopicService(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, l) }()

	cfg := tm.Config{
		Managers: []tm.Manager{{Addr: l.Addr().String(), Key: "topic-service"}},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	got := make(chan *broker.Message, 1)
	gw, err := tm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(context.Background(), "gw-1", func(m *broker.Message) { got <- m }); err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	gw.SetInterest("/chat/world", 1)

	pub, err := tm.NewPublisher(context.Background(), cfg, "example")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if n, err := pub.Count(context.Background(), "/chat/world"); err == nil && n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the gateway's subscriber never reached the topic service")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := pub.Publish(context.Background(), "/chat/world", []byte(`{"data":"hello"}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if string(m.Data) != `{"data":"hello"}` {
			t.Fatalf("got %s", m.Data)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the message did not arrive")
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
}
