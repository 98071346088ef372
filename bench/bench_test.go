package bench

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/server"
)

const testAPIKey = "bench-test-key"

// startServer runs a firetower server on 127.0.0.1:0 in this process and
// returns its websocket URL; it is stopped at the end of the test.
func startServer(t *testing.T) string {
	t.Helper()
	cfg := server.Config{QuietCounts: true, APIKey: testAPIKey, DrainWindow: 50 * time.Millisecond}
	cfg.Gateway.Logger = slog.New(slog.DiscardHandler)
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Serve did not return within 15s")
		}
	})
	return "ws://" + l.Addr().String() + "/ws"
}

// run runs o against a fresh in-process server, observing this process.
func run(t *testing.T, o Options) *Result {
	t.Helper()
	o.URL = startServer(t)
	o.PID = os.Getpid()
	if o.StartWorker == nil {
		o.InProcess = true
	}
	if o.Warmup == 0 {
		o.Warmup = 200 * time.Millisecond
	}
	if o.Duration == 0 {
		o.Duration = time.Second
	}
	if o.Drain == 0 {
		o.Drain = 3 * time.Second
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 20 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d deliveries (%.0f/s), p50 %.0fµs p99 %.0fµs, lost %d dup %d wrong %d other %d, cpu %.2fµs/delivery, rss %d, errors %q",
		res.Scenario, res.Deliveries, res.DeliveriesPerS, res.LatencyUS.P50, res.LatencyUS.P99,
		res.Lost, res.Duplicates, res.Wrong, res.OtherFrames, res.ServerCPUUSPerDelivery, res.ServerRSSBytes, res.Errors)
	if f := res.Failures(); f != "" {
		t.Fatalf("run failed: %s; errors %q", f, res.Errors)
	}
	if res.ServerRSSBytes <= 0 || res.ServerThreads <= 0 || res.ServerFDs <= 0 || res.ClientCPUSeconds <= 0 {
		t.Errorf("server figures missing: rss %d threads %d fds %d client cpu %v",
			res.ServerRSSBytes, res.ServerThreads, res.ServerFDs, res.ClientCPUSeconds)
	}
	return res
}

func checkDeliveries(t *testing.T, res *Result) {
	t.Helper()
	if res.Deliveries <= 0 || res.Published <= 0 {
		t.Fatalf("deliveries %d, published %d: want both > 0", res.Deliveries, res.Published)
	}
	l := res.LatencyUS
	if l.P50 <= 0 || l.P99 < l.P50 || l.P999 < l.P99 || l.Max < l.P999 {
		t.Errorf("latency percentiles not filled in order: %+v", l)
	}
	if res.ServerCPUUSPerDelivery < 0 || res.MeasuredSeconds <= 0 {
		t.Errorf("cpu per delivery %v, measured %vs", res.ServerCPUUSPerDelivery, res.MeasuredSeconds)
	}
}

func TestFanout(t *testing.T) {
	res := run(t, Options{Scenario: ScenarioFanout, Subs: 50})
	checkDeliveries(t, res)
	if res.Conns != 50 {
		t.Errorf("conns %d, want 50", res.Conns)
	}
	// Every subscriber gets every message sent in the measured interval.
	if want := res.Published * 50; res.Deliveries != want {
		t.Errorf("deliveries %d, want %d", res.Deliveries, want)
	}
}

// TestFanoutBurst publishes the window as one burst and waits for all of it.
func TestFanoutBurst(t *testing.T) {
	res := run(t, Options{Scenario: ScenarioFanout, Subs: 40, Burst: true})
	checkDeliveries(t, res)
	if want := res.Published * 40; res.Deliveries != want {
		t.Errorf("deliveries %d, want %d", res.Deliveries, want)
	}
}

// TestFanoutWorkers runs three workers (on goroutines, through the same
// pipes as processes) so the window waits for the slowest of them.
func TestFanoutWorkers(t *testing.T) {
	res := run(t, Options{Scenario: ScenarioFanout, Subs: 31, Procs: 3, StartWorker: startWorkerInProcess})
	checkDeliveries(t, res)
	if res.Conns != 31 {
		t.Errorf("conns %d, want 31", res.Conns)
	}
}

func TestRate(t *testing.T) {
	res := run(t, Options{Scenario: ScenarioRate, Subs: 20, Rate: 50})
	checkDeliveries(t, res)
	if res.Published < 25 || res.Published > 75 {
		t.Errorf("published %d in about 1s at 50/s", res.Published)
	}
	if want := res.Published * 20; res.Deliveries != want {
		t.Errorf("deliveries %d, want %d", res.Deliveries, want)
	}
}

func TestTopics(t *testing.T) {
	res := run(t, Options{Scenario: ScenarioTopics, Conns: 100, Groups: 5, Rate: 100})
	checkDeliveries(t, res)
	if want := res.Published * 20; res.Deliveries != want {
		t.Errorf("deliveries %d, want %d (20 subscribers per group)", res.Deliveries, want)
	}
}

func TestPublishAPI(t *testing.T) {
	res := run(t, Options{Scenario: ScenarioRate, Subs: 10, Rate: 40, Publish: "api", APIKey: testAPIKey})
	checkDeliveries(t, res)
}

func TestIdle(t *testing.T) {
	res := run(t, Options{Scenario: ScenarioIdle, Conns: 200, Settle: 200 * time.Millisecond})
	checkDeliveries(t, res)
	if res.Deliveries != 200 || res.Published != 200 {
		t.Errorf("deliveries %d, published %d, want 200 each", res.Deliveries, res.Published)
	}
	if res.RSSBeforeBytes <= 0 || res.RSSTotalPerConnBytes <= 0 {
		t.Errorf("rss before %d, total per conn %v", res.RSSBeforeBytes, res.RSSTotalPerConnBytes)
	}
}

func TestChurn(t *testing.T) {
	res := run(t, Options{Scenario: ScenarioChurn, Conns: 4})
	if res.Connects <= 0 || res.ConnectsPerS <= 0 || res.ChurnFailures != 0 {
		t.Fatalf("connects %d (%.0f/s), failures %d", res.Connects, res.ConnectsPerS, res.ChurnFailures)
	}
	// A cycle begun before the interval may have sent its message in it,
	// and a cycle cut short by the end may have had its message.
	if res.Deliveries < res.Connects || res.Deliveries > res.Connects+8 {
		t.Errorf("deliveries %d, want one per connect (%d)", res.Deliveries, res.Connects)
	}
}

// TestConnectFailure points the bench at a port nobody listens on.
func TestConnectFailure(t *testing.T) {
	addr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), Options{Scenario: ScenarioFanout, Subs: 3, InProcess: true,
		URL: "ws://" + addr + "/ws", ConnectTimeout: 2 * time.Second})
	if err == nil {
		t.Fatal("Run succeeded without a server")
	}
}

func TestMainUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main([]string{"--scenario", "nope"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "unknown scenario") {
		t.Errorf("bad scenario: exit %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	if code := Main([]string{"-h"}, &out, &errb); code != 0 || !strings.Contains(errb.String(), "-window") {
		t.Errorf("-h: exit %d, stderr %q", code, errb.String())
	}
	for _, args := range [][]string{
		{"--protocol", "nope"},
		{"--protocol", "centrifugo", "--spawn", "serve"},
		{"--protocol", "centrifugo", "--scenario", "churn"},
	} {
		errb.Reset()
		if code := Main(args, &out, &errb); code != 2 || !strings.Contains(errb.String(), "--protocol") {
			t.Errorf("%q: exit %d, stderr %q", args, code, errb.String())
		}
	}
	o, _, err := parseFlags([]string{"--procs", "0", "--server-args", "--heartbeat 5s  --max-subscriptions 4"}, &errb)
	if err != nil || !o.InProcess || len(o.ServerArgs) != 4 {
		t.Errorf("parseFlags: %+v, %v", o, err)
	}
}
