package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Main runs "firetower bench" with args and returns the exit status: 0 on
// success, 1 when the run found a failure (loss, duplicates, wrong topics,
// failed connections) or could not be made, 2 on a usage error.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "--worker" || args[0] == "-worker") {
		if err := runWorker(os.Stdin, stdout); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	}
	o, jsonOut, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "firetower bench:", err)
		return 2
	}
	o.Progress, o.ServerOutput = stderr, stderr
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := Run(ctx, *o)
	if err != nil {
		fmt.Fprintln(stderr, "firetower bench:", err)
		return 1
	}
	if jsonOut != "-" {
		res.WriteTable(stdout)
	}
	if jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		b = append(b, '\n')
		if jsonOut == "-" {
			_, _ = stdout.Write(b)
		} else if err := os.WriteFile(jsonOut, b, 0o644); err != nil {
			fmt.Fprintln(stderr, "firetower bench:", err)
			return 1
		}
	}
	if f := res.Failures(); f != "" {
		fmt.Fprintln(stderr, "firetower bench: FAILED:", f)
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (*Options, string, error) {
	o := &Options{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var jsonOut, serverArgs string
	procs := -1
	fs.StringVar(&o.Scenario, "scenario", ScenarioFanout, "idle, fanout, rate, topics or churn")
	fs.StringVar(&o.URL, "url", "ws://127.0.0.1:9999/ws", "websocket URL of the server the subscribers connect to")
	fs.StringVar(&o.PubURL, "pub-url", "", "websocket URL (or API base) of the node the publisher uses (default --url)")
	fs.IntVar(&o.Conns, "conns", 0, "connections: idle 10000, topics 5000; churn: parallel loops (100)")
	fs.IntVar(&o.Subs, "subs", 2000, "fanout, rate: subscribers of the one topic")
	fs.IntVar(&o.Groups, "groups", 50, "topics: group topics")
	fs.IntVar(&o.Window, "window", 8, "fanout: messages outstanding before the publisher waits for the slowest subscriber")
	fs.BoolVar(&o.Burst, "burst", true, "fanout: publish the window's messages back to back (one websocket write), then wait until every subscriber has them all; false: a sliding window (the next message as soon as the slowest subscriber is window behind)")
	fs.Float64Var(&o.Rate, "rate", 0, "rate, topics: messages per second (default 10, topics 250)")
	fs.IntVar(&o.Size, "size", 100, "bytes of each published data value")
	fs.DurationVar(&o.Duration, "duration", 0, "measured interval (default 10s)")
	fs.DurationVar(&o.Warmup, "warmup", 0, "publishing before the measured interval (default 2s)")
	fs.DurationVar(&o.Settle, "settle", 0, "idle: wait after subscribing before reading RSS (default 2s)")
	fs.DurationVar(&o.ConnectTimeout, "connect-timeout", 0, "bound of the connect and subscribe phase (default 60s)")
	fs.DurationVar(&o.Drain, "drain", 0, "wait for messages in flight after publishing stops; missing after it = lost (default 5s)")
	fs.StringVar(&o.Protocol, "protocol", ProtocolFiretower, "what the clients speak: firetower (v1) or centrifugo (the Centrifuge JSON protocol; with --url ws://HOST:PORT/connection/websocket)")
	fs.StringVar(&o.Publish, "publish", "ws", "ws: publish over the publisher's websocket; api: POST /api/publish")
	fs.StringVar(&o.APIKey, "api-key", os.Getenv("FIRETOWER_API_KEY"), "push API key for --publish api (default $FIRETOWER_API_KEY; set for --spawn serve)")
	fs.IntVar(&o.PID, "pid", 0, "server process whose CPU, RSS, threads and fds to read")
	fs.StringVar(&o.Spawn, "spawn", "", "start the server: serve (this firetower), floor, gorilla or nbio (bench-baseline)")
	fs.StringVar(&serverArgs, "server-args", "", "extra arguments of the spawned server, split on spaces")
	fs.BoolVar(&o.ServerLog, "server-log", false, "pass the spawned server's output through to stderr")
	fs.IntVar(&procs, "procs", -1, "worker processes (default ceil(conns/10000); 0: all connections in this process)")
	fs.StringVar(&jsonOut, "json", "", "write every figure as JSON to this file (- for stdout, instead of the table)")
	if err := fs.Parse(args); err != nil {
		return nil, "", err
	}
	if fs.NArg() > 0 {
		return nil, "", fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case procs == 0:
		o.InProcess = true
	case procs > 0:
		o.Procs = procs
	}
	o.ServerArgs = strings.Fields(serverArgs)
	d := o.withDefaults()
	if err := d.Validate(); err != nil {
		return nil, "", err
	}
	return o, jsonOut, nil
}
