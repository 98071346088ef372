package client

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/firetower-go/firetower/pushapi"
)

// DefaultServer is the --server of the commands: the node that `firetower
// serve` runs by default.
const DefaultServer = "http://127.0.0.1:9999"

// Usage lists the API commands, for the usage text of cmd/firetower.
const Usage = `  publish        publish JSON to a topic (--topic T --data JSON)
  broadcast      publish JSON to several topics (--topics A,B --data JSON)
  push           send JSON to a client or a user (--client ID | --user ID, --data JSON)
  count          subscribers of a topic in the cluster (--topic T)
  topics         the topics of the node, with counts (--limit N --cursor C | --all)
  disconnect     close a client's or a user's connections (--client ID | --user ID)
  kick           remove a user from a topic (--user ID --topic T)
  close-topic    remove every subscriber from a topic (--topic T)
  info           describe the node
  nodes          describe the cluster
  drain          move the node's clients to other nodes; it takes no new ones (--window D)
`

var commands = []string{"publish", "broadcast", "push", "count", "topics", "disconnect", "kick", "close-topic", "info", "nodes", "drain"}

// IsCommand reports whether name is one of the API commands Run knows.
func IsCommand(name string) bool { return slices.Contains(commands, name) }

// maxPages bounds `topics --all`.
const maxPages = 10000

// Run runs one API command against --server (FIRETOWER_SERVER) with
// --api-key (FIRETOWER_API_KEY) and prints the JSON answer on stdout. It
// returns the exit code: 0 on success, 1 when the call failed (the error
// goes to stderr), 2 for a usage error.
func Run(name string, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	if !IsCommand(name) {
		fmt.Fprintf(stderr, "firetower: unknown API command %q\n", name)
		return 2
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", envOr(getenv, "FIRETOWER_SERVER", DefaultServer), "base URL of a firetower node (FIRETOWER_SERVER)")
	key := fs.String("api-key", getenv("FIRETOWER_API_KEY"), "API key (FIRETOWER_API_KEY; preferred: flags show in ps)")
	timeout := fs.Duration("timeout", 10*time.Second, "time limit of the call")
	var topic, topics, data, dataFile, clientID, userID, cursor string
	var limit int
	var all bool
	var window time.Duration
	usesData := func() {
		fs.StringVar(&data, "data", "", "the payload: one JSON value (a string needs its quotes: '\"hi\"')")
		fs.StringVar(&dataFile, "data-file", "", "read the payload from this file (- for stdin)")
	}
	switch name {
	case "publish":
		fs.StringVar(&topic, "topic", "", "topic")
		usesData()
	case "broadcast":
		fs.StringVar(&topics, "topics", "", "comma-separated topics")
		usesData()
	case "push", "disconnect":
		fs.StringVar(&clientID, "client", "", "client id")
		fs.StringVar(&userID, "user", "", "user id")
		if name == "push" {
			usesData()
		}
	case "count", "close-topic":
		fs.StringVar(&topic, "topic", "", "topic")
	case "kick":
		fs.StringVar(&userID, "user", "", "user id")
		fs.StringVar(&topic, "topic", "", "topic")
	case "topics":
		fs.IntVar(&limit, "limit", 0, "page size (default: the server's, 100)")
		fs.StringVar(&cursor, "cursor", "", "nextCursor of the previous page")
		fs.BoolVar(&all, "all", false, "fetch every page")
	case "drain":
		fs.DurationVar(&window, "window", 0, "spread the client closes over this long (default: the server's --drain-window; at most 1h)")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "firetower %s: %s\n", name, fmt.Sprintf(format, a...))
		return 2
	}
	if fs.NArg() > 0 {
		return usage("unexpected argument %q", fs.Arg(0))
	}
	var payload json.RawMessage
	if fs.Lookup("data") != nil {
		switch {
		case data != "" && dataFile != "":
			return usage("give --data or --data-file, not both")
		case dataFile == "-":
			b, err := io.ReadAll(io.LimitReader(stdin, 64<<20))
			if err != nil {
				return usage("reading stdin: %v", err)
			}
			payload = b
		case dataFile != "":
			b, err := os.ReadFile(dataFile)
			if err != nil {
				return usage("%v", err)
			}
			payload = b
		case data != "":
			payload = json.RawMessage(data)
		default:
			return usage("--data or --data-file is required")
		}
		payload = json.RawMessage(strings.TrimSpace(string(payload)))
		if !json.Valid(payload) {
			return usage("the payload is not one JSON value (a string needs its quotes: --data '\"hi\"')")
		}
	}
	if (name == "push" || name == "disconnect") && (clientID == "") == (userID == "") {
		return usage("give exactly one of --client and --user")
	}
	if window < 0 {
		return usage("--window must not be negative")
	}

	c := &Client{Server: *server, APIKey: *key, HTTP: &http.Client{Timeout: *timeout}}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var out any
	var err error
	switch name {
	case "publish":
		out, err = c.Publish(ctx, topic, payload)
	case "broadcast":
		var list []string
		for _, t := range strings.Split(topics, ",") {
			if t = strings.TrimSpace(t); t != "" {
				list = append(list, t)
			}
		}
		var msgs []pushapi.Published
		msgs, err = c.Broadcast(ctx, list, payload)
		out = pushapi.BroadcastResponse{Messages: msgs}
	case "push":
		if clientID != "" {
			out, err = c.PushClient(ctx, clientID, payload)
		} else {
			out, err = c.PushUser(ctx, userID, payload)
		}
	case "disconnect":
		if clientID != "" {
			out, err = c.DisconnectClient(ctx, clientID)
		} else {
			out, err = c.DisconnectUser(ctx, userID)
		}
	case "kick":
		out, err = c.RemoveUserFromTopic(ctx, userID, topic)
	case "close-topic":
		out, err = c.CloseTopic(ctx, topic)
	case "count":
		out, err = c.Count(ctx, topic)
	case "topics":
		if !all {
			out, err = c.Topics(ctx, cursor, limit)
			break
		}
		merged := pushapi.TopicPage{Topics: []pushapi.TopicCount{}}
		for range maxPages {
			var page pushapi.TopicPage
			if page, err = c.Topics(ctx, cursor, limit); err != nil {
				break
			}
			merged.Topics = append(merged.Topics, page.Topics...)
			merged.Partial = merged.Partial || page.Partial
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
		out = merged
	case "info":
		out, err = c.Info(ctx)
	case "nodes":
		out, err = c.Nodes(ctx)
	case "drain":
		out, err = c.Drain(ctx, window)
	}
	if err != nil {
		fmt.Fprintf(stderr, "firetower %s: %v\n", name, err)
		return 1
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	fmt.Fprintf(stdout, "%s\n", b)
	return 0
}

func envOr(getenv func(string) string, name, def string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return def
}
