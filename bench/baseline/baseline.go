// Package baseline holds the reference servers "firetower bench" measures
// firetower against in the same run, all speaking the subset of the v1
// protocol the load tool uses (subscribe, unSubscribe, publish; deliveries are
// the bare data value, one text frame each):
//
//   - floor: the machine floor. A hand-written handshake and frame parser,
//     one goroutine per connection, and fan-out done in the publisher's
//     reader goroutine as one plain write system call per subscriber per
//     socket read: the least any server must pay to deliver.
//   - gorilla: a gorilla/websocket hub in the design of gorilla's chat
//     example (a hub goroutine, a readPump and a writePump per client, a
//     send queue of 256 that drops the client when it is full), routing by
//     topic and writing one frame per message.
//   - nbio: a hub on github.com/lesismal/nbio, with the library's defaults:
//     its own epoll loop (no goroutine per connection), its handshake and
//     parser, and a publish frame encoded once and written to every
//     subscriber. It is the maintained library our netpoll transport is
//     measured against.
//
// None has liveness checks (no heartbeat, no read deadline after the
// handshake), authentication or metrics: they exist to be measured.
package baseline

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
)

const (
	// maxMessageSize is the read limit of one client message (assembled from
	// fragments), as firetower's default --read-limit. Larger ones close the
	// connection with 1009.
	maxMessageSize = 64 << 10
	// writeWait bounds one write to a client: a client that does not read
	// for that long is disconnected instead of stalling its publishers.
	writeWait = 10 * time.Second
	// handshakeWait bounds the HTTP upgrade request.
	handshakeWait = 10 * time.Second
	// shutdownWait bounds the graceful part of the gorilla server's
	// shutdown (upgrade requests in flight); after it every connection is
	// closed.
	shutdownWait = time.Second
	// maxSubscriptions and maxTopicsPerFrame are firetower's limits: a
	// connection may hold 128 topics, one frame may name 1,024.
	maxSubscriptions  = 128
	maxTopicsPerFrame = 1024
	// maxTopicLen is firetower's --max-topic-length.
	maxTopicLen = 255
)

// Kinds are the values of --kind.
const (
	KindFloor   = "floor"
	KindGorilla = "gorilla"
	KindNbio    = "nbio"
)

// errKind is returned for a --kind that is none of the kinds above.
var errKind = errors.New("baseline: --kind must be floor, gorilla or nbio")

// server is one reference server. subscribers exists for the tests: it
// reports how many connections are subscribed to topic, once every frame
// read before the call has taken effect.
type server interface {
	serve(ctx context.Context, ln net.Listener) error
	subscribers(topic string) int
}

func newServer(kind string) (server, error) {
	switch kind {
	case KindFloor:
		return newFloor(), nil
	case KindGorilla:
		return newGorilla(), nil
	case KindNbio:
		return newNbio(), nil
	}
	return nil, fmt.Errorf("%w: %q", errKind, kind)
}

// Serve runs the reference server of the given kind (KindFloor,
// KindGorilla or KindNbio) on ln, websocket path /ws, until ctx is done. It then closes
// ln and every connection, waits (a bounded time) for all of its goroutines
// and returns nil. It returns an error if kind is unknown or ln fails.
// Serve closes ln in every case.
func Serve(ctx context.Context, kind string, ln net.Listener) error {
	s, err := newServer(kind)
	if err != nil {
		ln.Close()
		return err
	}
	return s.serve(ctx, ln)
}

// Main runs "firetower bench-baseline" with args and returns the exit status.
// It serves until SIGINT or SIGTERM.
func Main(args []string, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, stderr)
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("firetower bench-baseline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kind := fs.String("kind", "", "the reference server: floor (bare writes), gorilla (chat-example hub) or nbio (nbio hub); required")
	addr := fs.String("addr", "127.0.0.1:9999", "listen address; clients connect to ws://ADDR/ws")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "firetower bench-baseline: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if _, err := newServer(*kind); err != nil {
		fmt.Fprintln(stderr, "firetower bench-baseline:", err)
		return 2
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(stderr, "firetower bench-baseline:", err)
		return 1
	}
	fmt.Fprintf(stderr, "firetower bench-baseline: %s listening on ws://%s/ws\n", *kind, ln.Addr())
	if err := Serve(ctx, *kind, ln); err != nil {
		fmt.Fprintln(stderr, "firetower bench-baseline:", err)
		return 1
	}
	return 0
}
