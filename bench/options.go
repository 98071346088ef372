package bench

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"time"
)

// Scenarios.
const (
	ScenarioIdle   = "idle"
	ScenarioFanout = "fanout"
	ScenarioRate   = "rate"
	ScenarioTopics = "topics"
	ScenarioChurn  = "churn"
)

// Options configure a run. The zero value of a field means its default,
// which may depend on the scenario (see Defaults).
type Options struct {
	Scenario string // idle, fanout, rate, topics or churn (default fanout)
	URL      string // websocket URL of the subscribers' server (default ws://127.0.0.1:9999/ws)
	PubURL   string // websocket URL of the publisher's server (default URL)
	Conns    int    // idle 10000, topics 5000, churn 100 (parallel loops)
	Subs     int    // fanout and rate: subscribers (default 2000)
	Groups   int    // topics: group topics (default 50)
	Window   int    // fanout: messages outstanding (default 8)
	Burst    bool   // fanout: publish the window at once, then wait for all of it
	Rate     float64
	Size     int // bytes of each published data value (default 100)

	Duration       time.Duration // measured interval (default 10s)
	Warmup         time.Duration // before the measured interval (default 2s)
	Settle         time.Duration // idle: wait before reading RSS (default 2s)
	ConnectTimeout time.Duration // connect and subscribe phase (default 60s)
	Drain          time.Duration // wait for messages in flight at the end (default 5s)

	Protocol string // ProtocolFiretower (default) or ProtocolCentrifugo
	Publish  string // "ws" (default) or "api"
	APIKey   string // push API key for Publish "api"

	PID        int      // server process to observe (0: none, unless spawned)
	Spawn      string   // "", "serve", "floor", "gorilla" or "nbio"
	ServerArgs []string // extra arguments of the spawned server
	ServerLog  bool     // pass the spawned server's stderr through

	// Procs is the number of worker processes (0: one per 10,000
	// connections); InProcess runs all connections in this process instead
	// (the flag --procs 0).
	Procs     int
	InProcess bool

	// StartWorker starts worker process i (default: this executable with
	// "bench --worker"); tests inject their own.
	StartWorker func(i int) (WorkerProc, error)
	// Executable is the firetower binary to spawn servers and workers
	// from (default os.Executable()).
	Executable string
	// Progress receives the once-a-second progress line (nil: none).
	Progress io.Writer
	// ServerOutput receives the spawned server's stderr when ServerLog is set.
	ServerOutput io.Writer
}

// WorkerProc is a running worker: its input, its output and a way to wait
// for its end (and to kill it if it does not end).
type WorkerProc struct {
	In   io.WriteCloser
	Out  io.ReadCloser
	Wait func() error
	Kill func()
}

// withDefaults returns o with every zero field set to its default.
func (o Options) withDefaults() Options {
	if o.Scenario == "" {
		o.Scenario = ScenarioFanout
	}
	if o.URL == "" {
		o.URL = "ws://127.0.0.1:9999/ws"
	}
	if o.PubURL == "" {
		o.PubURL = o.URL
	}
	if o.Conns == 0 {
		switch o.Scenario {
		case ScenarioTopics:
			o.Conns = 5000
		case ScenarioChurn:
			o.Conns = 100
		default:
			o.Conns = 10000
		}
	}
	if o.Subs == 0 {
		o.Subs = 2000
	}
	if o.Groups == 0 {
		o.Groups = 50
	}
	if o.Window == 0 {
		o.Window = 8
	}
	if o.Rate == 0 {
		o.Rate = 10
		if o.Scenario == ScenarioTopics {
			o.Rate = 250
		}
	}
	if o.Size == 0 {
		o.Size = 100
	}
	if o.Duration == 0 {
		o.Duration = 10 * time.Second
	}
	if o.Warmup == 0 {
		o.Warmup = 2 * time.Second
	}
	if o.Settle == 0 {
		o.Settle = 2 * time.Second
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 60 * time.Second
	}
	if o.Drain == 0 {
		o.Drain = 5 * time.Second
	}
	if o.Protocol == "" {
		o.Protocol = ProtocolFiretower
	}
	if o.Publish == "" {
		o.Publish = "ws"
	}
	return o
}

// clients is the number of subscriber (or churn) connections.
func (o *Options) clients() int {
	if o.Scenario == ScenarioFanout || o.Scenario == ScenarioRate {
		return o.Subs
	}
	return o.Conns
}

// Validate rejects nonsense; call it on withDefaults' result.
func (o *Options) Validate() error {
	switch o.Scenario {
	case ScenarioIdle, ScenarioFanout, ScenarioRate, ScenarioTopics, ScenarioChurn:
	default:
		return fmt.Errorf("bench: unknown scenario %q (idle, fanout, rate, topics, churn)", o.Scenario)
	}
	if o.Conns < 0 || o.Subs < 0 || o.Groups < 0 || o.Window < 0 || o.Rate < 0 || o.Size < 0 || o.Procs < 0 {
		return errors.New("bench: counts must not be negative")
	}
	if o.Scenario == ScenarioTopics && o.Groups > o.Conns {
		return fmt.Errorf("bench: --groups %d is more than --conns %d", o.Groups, o.Conns)
	}
	if o.Window >= windowRing/2 {
		return fmt.Errorf("bench: --window must be below %d", windowRing/2)
	}
	if o.Duration < 0 || o.Warmup < 0 || o.Settle < 0 || o.ConnectTimeout < 0 || o.Drain < 0 {
		return errors.New("bench: durations must not be negative")
	}
	if o.Publish != "ws" && o.Publish != "api" {
		return fmt.Errorf("bench: --publish must be ws or api, not %q", o.Publish)
	}
	switch o.Protocol {
	case ProtocolFiretower:
	case ProtocolCentrifugo:
		if o.Spawn != "" || o.Publish != "ws" || o.Scenario == ScenarioChurn {
			return errors.New("bench: --protocol centrifugo needs --url (no --spawn), --publish ws and a scenario other than churn")
		}
	default:
		return fmt.Errorf("bench: --protocol must be firetower or centrifugo, not %q", o.Protocol)
	}
	switch o.Spawn {
	case "", "serve", "floor", "gorilla", "nbio":
	default:
		return fmt.Errorf("bench: --spawn must be serve, floor, gorilla or nbio, not %q", o.Spawn)
	}
	if o.Spawn == "" {
		for _, u := range []string{o.URL, o.PubURL} {
			if _, err := url.Parse(u); err != nil {
				return fmt.Errorf("bench: bad URL %q: %w", u, err)
			}
		}
	}
	return nil
}

// sourceAddr is the loopback address worker i binds its connections to
// when the target is on loopback, "" otherwise.
func sourceAddr(target string, i int) string {
	u, err := url.Parse(target)
	if err != nil {
		return ""
	}
	h := u.Hostname()
	if h == "localhost" {
		h = "127.0.0.1"
	}
	ip := net.ParseIP(h)
	if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		return ""
	}
	return fmt.Sprintf("127.0.0.%d", 2+i%250)
}
