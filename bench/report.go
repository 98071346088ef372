package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Result holds every figure of a run. Server figures are 0 when no server
// pid is known.
type Result struct {
	Scenario   string         `json:"scenario"`
	Parameters map[string]any `json:"parameters"`

	Conns           int     `json:"conns"`
	ConnectFailures int     `json:"connect_failures"`
	Published       int64   `json:"published"` // real messages, in the measured interval
	Deliveries      int64   `json:"deliveries"`
	DeliveriesPerS  float64 `json:"deliveries_per_s"`
	MeasuredSeconds float64 `json:"measured_seconds"`

	Lost        int64 `json:"lost"`      // gaps, plus LostTail
	LostTail    int64 `json:"lost_tail"` // still missing after the drain
	Duplicates  int64 `json:"duplicates"`
	Wrong       int64 `json:"wrong"`
	OtherFrames int64 `json:"other_frames"`
	Dropped     int64 `json:"dropped"` // connections the server closed

	LatencyUS Latency `json:"latency_us"`

	ServerCPUSeconds       float64 `json:"server_cpu_seconds"`
	ServerCPUUSPerDelivery float64 `json:"server_cpu_us_per_delivery"`
	ServerRSSBytes         int64   `json:"server_rss_bytes"`
	RSSBeforeBytes         int64   `json:"rss_before_bytes"`
	RSSPerConnBytes        float64 `json:"rss_per_conn_bytes"`       // (RSS - RSS before) / conns
	RSSTotalPerConnBytes   float64 `json:"rss_total_per_conn_bytes"` // RSS / conns
	ServerThreads          int     `json:"server_threads"`
	ServerFDs              int     `json:"server_fds"`
	ClientCPUSeconds       float64 `json:"client_cpu_seconds"`

	Connects      int64   `json:"connects"` // churn: completed cycles
	ConnectsPerS  float64 `json:"connects_per_s"`
	ChurnFailures int64   `json:"churn_failures"`

	Errors []string `json:"errors"`

	serverCPU  float64
	incomplete bool
}

// Latency are publish-to-delivery percentiles in microseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

func newResult(o *Options) *Result {
	p := map[string]any{
		"url": o.URL, "pub_url": o.PubURL, "size": o.Size, "publish": o.Publish,
		"duration": o.Duration.String(), "warmup": o.Warmup.String(), "drain": o.Drain.String(),
		"pid": o.PID, "spawn": o.Spawn, "procs": o.Procs, "in_process": o.InProcess,
	}
	switch o.Scenario {
	case ScenarioFanout:
		p["subs"], p["window"], p["burst"] = o.Subs, o.Window, o.Burst
	case ScenarioRate:
		p["subs"], p["rate"] = o.Subs, o.Rate
	case ScenarioTopics:
		p["conns"], p["groups"], p["rate"] = o.Conns, o.Groups, o.Rate
	case ScenarioIdle:
		p["conns"], p["settle"] = o.Conns, o.Settle.String()
	case ScenarioChurn:
		p["conns"] = o.Conns
	}
	if len(o.ServerArgs) > 0 {
		p["server_args"] = strings.Join(o.ServerArgs, " ")
	}
	return &Result{Scenario: o.Scenario, Parameters: p, Errors: []string{}}
}

// Failures says why the run failed, "" when it did not.
func (r *Result) Failures() string {
	var why []string
	if r.Lost > 0 {
		why = append(why, fmt.Sprintf("%d lost (%d after the drain)", r.Lost, r.LostTail))
	}
	if r.Duplicates > 0 {
		why = append(why, fmt.Sprintf("%d duplicates", r.Duplicates))
	}
	if r.Wrong > 0 {
		why = append(why, fmt.Sprintf("%d on a wrong topic", r.Wrong))
	}
	if r.ConnectFailures > 0 {
		why = append(why, fmt.Sprintf("%d connections failed", r.ConnectFailures))
	}
	if r.ChurnFailures > 0 {
		why = append(why, fmt.Sprintf("%d churn cycles failed", r.ChurnFailures))
	}
	if r.Dropped > 0 {
		why = append(why, fmt.Sprintf("%d connections closed by the server", r.Dropped))
	}
	if r.incomplete {
		why = append(why, "a worker sent no final report")
	}
	return strings.Join(why, ", ")
}

// WriteTable prints the human summary.
func (r *Result) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, args...)...) }
	row("scenario", "%s", r.Scenario)
	for _, k := range []string{"subs", "conns", "groups", "window", "rate", "size", "publish", "spawn"} {
		if v, ok := r.Parameters[k]; ok && v != "" {
			row("  "+k, "%v", v)
		}
	}
	row("connections", "%d (failed %d)", r.Conns, r.ConnectFailures)
	row("measured", "%.2f s", r.MeasuredSeconds)
	row("published", "%d", r.Published)
	row("deliveries", "%d (%.0f/s)", r.Deliveries, r.DeliveriesPerS)
	row("lost / dup / wrong", "%d / %d / %d (lost after drain %d)", r.Lost, r.Duplicates, r.Wrong, r.LostTail)
	row("other frames", "%d", r.OtherFrames)
	row("latency p50/p99/p999/max", "%s / %s / %s / %s", fmtUS(r.LatencyUS.P50), fmtUS(r.LatencyUS.P99), fmtUS(r.LatencyUS.P999), fmtUS(r.LatencyUS.Max))
	if r.Scenario == ScenarioChurn {
		row("connects", "%d (%.0f/s), failed %d", r.Connects, r.ConnectsPerS, r.ChurnFailures)
	}
	if r.ServerRSSBytes > 0 {
		row("server cpu", "%.2f s, %.2f µs/delivery", r.ServerCPUSeconds, r.ServerCPUUSPerDelivery)
		row("server rss", "%s (before %s)", fmtBytes(float64(r.ServerRSSBytes)), fmtBytes(float64(r.RSSBeforeBytes)))
		if r.Scenario != ScenarioChurn {
			row("rss per conn", "%s (total/conns %s)", fmtBytes(r.RSSPerConnBytes), fmtBytes(r.RSSTotalPerConnBytes))
		}
		row("server threads / fds", "%d / %d", r.ServerThreads, r.ServerFDs)
	} else {
		row("server", "n/a (no --pid, no --spawn)")
	}
	row("client cpu", "%.2f s", r.ClientCPUSeconds)
	if r.Dropped > 0 {
		row("dropped by server", "%d", r.Dropped)
	}
	for i, e := range r.Errors {
		if i == 10 {
			row("", "... %d more", len(r.Errors)-10)
			break
		}
		row("error", "%s", e)
	}
	if f := r.Failures(); f != "" {
		row("FAILED", "%s", f)
	}
	_ = tw.Flush()
}

func fmtUS(v float64) string { return fmtLatency(int64(v * 1000)) }

func fmtLatency(ns int64) string {
	return time.Duration(ns).Round(time.Microsecond).String()
}

func fmtBytes(b float64) string {
	switch {
	case b >= 1<<30 || b <= -(1<<30):
		return fmt.Sprintf("%.2f GiB", b/(1<<30))
	case b >= 1<<20 || b <= -(1<<20):
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case b >= 1<<10 || b <= -(1<<10):
		return fmt.Sprintf("%.2f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}
