package bench_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/firetower-go/firetower/bench"
)

// A fan-out run against a server that is already running, observing its
// process, with the client connections in this process.
func ExampleRun() {
	res, err := bench.Run(context.Background(), bench.Options{
		Scenario:  bench.ScenarioFanout,
		URL:       "ws://127.0.0.1:9999/ws",
		PID:       1234,
		Subs:      500,
		Duration:  5 * time.Second,
		InProcess: true,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	res.WriteTable(os.Stdout)
	if f := res.Failures(); f != "" {
		fmt.Println("failed:", f)
	}
}
