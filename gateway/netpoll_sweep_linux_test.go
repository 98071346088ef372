//go:build linux

package gateway

import (
	"log/slog"
	"testing"
	"time"
)

// BenchmarkNetpollSweep is a poller's once-a-second walk over 10,000 idle
// connections (heartbeat and idle-timeout checks, nothing due); ns/conn is
// the figure docs/PERFORMANCE.md's model of a million connections uses.
func BenchmarkNetpollSweep(b *testing.B) {
	g, err := New(Config{Logger: slog.New(slog.DiscardHandler), NodeInfoInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = g.Close() })
	p := &poller{g: g, efd: -1, conns: map[int32]*FireTower{}, watch: map[*FireTower]struct{}{}}
	const n = 10000
	now := time.Now()
	for i := range n {
		t := &FireTower{gw: g, closing: make(chan struct{})}
		t.out.init(t)
		t.np = &npConn{p: p, fd: -1, registered: true, lastRead: now.UnixNano(), lastBeat: now.UnixNano()}
		p.conns[int32(i)] = t
	}
	b.ResetTimer()
	for b.Loop() {
		p.sweepAll(now)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/conn")
}
