// Command topic_service is the topic manager of the original firetower
// README (its example/topicService), ported to this module: the one process
// that lets gateways on many machines share topics without Redis. Start it,
// then start gateways that point at it:
//
//	go run ./examples/topic_service -addr 127.0.0.1:6666
//	go run ./cmd/firetower gateway --addr 127.0.0.1:9999 --grpc-addr 127.0.0.1:9997 --broker tm://127.0.0.1:6666 --node-id gw-1
//	go run ./cmd/firetower gateway --addr 127.0.0.1:9998 --grpc-addr off --broker tm://127.0.0.1:6666 --node-id gw-2
//
// A message published on either gateway reaches the subscribers of both.
// (The gateways' gRPC push API defaults to port 9998: two on one host need
// --grpc-addr.)
// `firetower topicmanager` is the same server with every setting as a flag.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/firetower-go/firetower/topicmgr"
)

func main() {
	addr := flag.String("addr", topicmgr.DefaultAddr, "listen address HOST:PORT")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintln(os.Stderr, "topic service start:", l.Addr())
	if err := run(ctx, l); err != nil {
		log.Fatal(err)
	}
}

// run serves the topic manager on l until ctx ends, then tells every
// gateway it is going away.
func run(ctx context.Context, l net.Listener) error {
	srv, err := topicmgr.New(topicmgr.Config{})
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case err := <-done:
		_ = srv.Close()
		return err
	case <-ctx.Done():
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		return err
	}
	if err := <-done; !errors.Is(err, topicmgr.ErrServerClosed) {
		return err
	}
	return nil
}
