package main

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// TestBenchSpawn runs the load generator as a user would: it spawns a
// server from the same binary, two worker processes, and prints JSON.
func TestBenchSpawn(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := build(t)
	cmd := command(t, bin, nil, "bench", "--spawn", "serve", "--scenario", "fanout", "--subs", "100",
		"--duration", "1s", "--warmup", "0.5s", "--procs", "2", "--json", "-")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("bench: %v\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("bench did not end within 60s; stderr:\n%s", stderr.String())
	}
	var res struct {
		Scenario        string                     `json:"scenario"`
		Conns           int                        `json:"conns"`
		Published       int64                      `json:"published"`
		Deliveries      int64                      `json:"deliveries"`
		Lost            int64                      `json:"lost"`
		Duplicates      int64                      `json:"duplicates"`
		Wrong           int64                      `json:"wrong"`
		CPUPerDelivery  float64                    `json:"server_cpu_us_per_delivery"`
		ServerRSS       int64                      `json:"server_rss_bytes"`
		ServerThreads   int                        `json:"server_threads"`
		ClientCPU       float64                    `json:"client_cpu_seconds"`
		LatencyUS       struct{ P50, P99 float64 } `json:"latency_us"`
		Errors          []string                   `json:"errors"`
		ConnectFailures int                        `json:"connect_failures"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, stdout.String())
	}
	t.Logf("%+v", res)
	if res.Scenario != "fanout" || res.Conns != 100 || res.ConnectFailures != 0 {
		t.Errorf("scenario %q, conns %d, failed %d", res.Scenario, res.Conns, res.ConnectFailures)
	}
	if res.Deliveries <= 0 || res.Deliveries != res.Published*100 {
		t.Errorf("deliveries %d, published %d: want published*100 > 0", res.Deliveries, res.Published)
	}
	if res.Lost != 0 || res.Duplicates != 0 || res.Wrong != 0 {
		t.Errorf("lost %d, duplicates %d, wrong %d", res.Lost, res.Duplicates, res.Wrong)
	}
	if res.LatencyUS.P50 <= 0 || res.CPUPerDelivery <= 0 || res.ServerRSS <= 0 || res.ServerThreads <= 0 || res.ClientCPU <= 0 {
		t.Errorf("figures missing: %+v", res)
	}
}
