package metrics_test

import (
	"bufio"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/metrics"
)

// A registry of its own for a gateway: the Observer feeds the histograms,
// the collector reads the gateway's counters at every scrape.
func Example() {
	m := metrics.New(nil)
	gw, err := gateway.New(gateway.Config{NodeID: "gw-1", Observer: m, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer gw.Close()
	if err := m.WatchGateway(gw); err != nil {
		panic(err)
	}
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()

	resp, err := http.Get(srv.URL)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "firetower_connections ") || strings.HasPrefix(line, "firetower_ready ") {
			fmt.Println(line)
		}
	}
	// Output:
	// firetower_connections 0
	// firetower_ready 1
}
