// Command firetower runs the firetower push server. With no command, or with
// "serve", it runs the all-in-one server: websocket gateway, embedded topic
// manager and the demo pages, listening on 0.0.0.0:9999. "topicmanager" runs
// a topic manager (0.0.0.0:6666) and "gateway --broker tm://..." a gateway
// that shares its topics through topic managers.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/firetower-go/firetower/bench"
	"github.com/firetower-go/firetower/bench/baseline"
	"github.com/firetower-go/firetower/pushapi/client"
	"github.com/firetower-go/firetower/server"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: firetower [command] [flags]

commands:
  serve          run the all-in-one server (the default)
  gateway        run a gateway; --broker tm://host:port[,...] joins topic managers
  topicmanager   run a topic manager (--addr, default 0.0.0.0:6666)
  version        print the version
  bench          the load generator (run "firetower bench -h")
  bench-baseline a reference server for bench (floor, gorilla hub, nbio hub)

push API commands (--server http://HOST:PORT, --api-key KEY or FIRETOWER_API_KEY):
` + client.Usage + `
Run "firetower <command> -h" for the flags; every flag can also be set in
fireTower.toml or as FIRETOWER_<FLAG_NAME>.
`

func main() {
	args := os.Args[1:]
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		os.Exit(serve(server.ParseServe, args))
	case "gateway":
		os.Exit(serve(server.ParseGateway, args))
	case "topicmanager":
		os.Exit(topicManager(args))
	case "bench":
		os.Exit(bench.Main(args, os.Stdout, os.Stderr))
	case "bench-baseline":
		os.Exit(baseline.Main(args, os.Stderr))
	case "version":
		fmt.Println("firetower", buildVersion())
	case "help":
		fmt.Print(usage)
	default:
		if client.IsCommand(cmd) {
			os.Exit(client.Run(cmd, args, os.Getenv, os.Stdin, os.Stdout, os.Stderr))
		}
		fmt.Fprintf(os.Stderr, "firetower: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
}

// defaultGCPercent is the binary's garbage-collector target when GOGC is
// not set: a server of mostly idle connections allocates little once they
// are up, so collecting at half the live heap (instead of Go's 100) costs
// little CPU and keeps the memory per connection a third lower (the heap
// the handshakes churned through is not kept). docs/PERFORMANCE.md.
const defaultGCPercent = 50

func serve(parse func([]string, func(string) string, io.Writer) (*server.Options, error), args []string) int {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	opts, err := parse(args, os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0 // -h: the flag set has printed the usage
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "firetower:", err)
		return 2
	}
	log := opts.NewLogger(os.Stderr)
	for _, key := range opts.Ignored {
		log.Warn("config key has no effect in serve mode", "key", key)
	}
	opts.Server.Gateway.Logger = log
	opts.Server.Gateway.Version = buildVersion()
	srv, err := server.New(opts.Server)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	defer reloadOnHangup(ctx, srv.Reload)()
	if err := srv.ListenAndServe(ctx); err != nil {
		log.Error("server stopped with an error", "err", err)
		return 1
	}
	return 0
}

func topicManager(args []string) int {
	opts, err := server.ParseTopicManager(args, os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "firetower:", err)
		return 2
	}
	log := opts.NewLogger(os.Stderr)
	for _, key := range opts.Ignored {
		log.Warn("config key has no effect for the topic manager", "key", key)
	}
	tm, err := server.NewTopicManager(opts, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	defer reloadOnHangup(ctx, tm.Reload)()
	if err := tm.Run(ctx); err != nil {
		log.Error("topic manager stopped with an error", "err", err)
		return 1
	}
	return 0
}

// reloadOnHangup calls reload on every SIGHUP (reload logs its own
// outcome) until ctx ends or the returned function is called, which waits
// for the goroutine to stop. Without it SIGHUP would end the process.
func reloadOnHangup(ctx context.Context, reload func() error) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-hup:
				_ = reload()
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		cancel()
		<-done
	}
}

func buildVersion() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}
