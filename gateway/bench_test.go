//go:build unix

package gateway_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/protocol"
	"github.com/gorilla/websocket"
)

// The end-to-end benchmarks run the real gateway, real FireTowers and real
// sockets on 127.0.0.1. Server and clients share the process and the
// machine's CPUs: ns/delivery is wall time of the whole pipeline, clients
// included, and cpu-ns/delivery the CPU time of both ends. docs/PERFORMANCE.md
// explains the figures.

// benchWindows are the numbers of messages a client may be behind the
// publisher. Publish never blocks and the outbound queue holds 256 frames by
// default: without a window the publisher would outrun the writers and the
// benchmark would measure the drop path. When the slowest client is a window
// behind, the publisher waits until it is half a window behind. 8 keeps the
// writers' batches small (many system calls per frame); 128 lets them batch.
var benchWindows = []int64{8, 128}

// benchDeliveryTimeout fails a benchmark whose clients stop receiving.
const benchDeliveryTimeout = 60 * time.Second

// benchPayload is a typical ~100-byte JSON message.
var benchPayload = []byte(`{"from":"user-1234","room":"lobby","text":"hello, this is a hundred byte payload for benchmarks..."}`)

// benchConfig turns the heartbeat off (it would add frames to count) and
// keeps the log quiet.
func benchConfig() gateway.Config {
	return gateway.Config{
		Logger:            slog.New(slog.DiscardHandler),
		HeartbeatInterval: time.Hour,
	}
}

func benchMallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// benchCPU returns the CPU time (user + system) the process has used: the
// server and the clients together, so an upper bound of the server's CPU.
// Unlike wall time it does not grow when other processes take the CPUs.
func benchCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchClient is one websocket client and the count of data messages its
// drain goroutine received. The padding keeps counters of different clients
// off one cache line.
type benchClient struct {
	ws    *websocket.Conn
	gate  *benchGate
	msgs  atomic.Int64
	acked atomic.Int64 // the last gate target this client counted itself in for
	reads atomic.Int64 // socket reads that returned data (raw reader only)
	_     [32]byte
}

// received counts one data message and tells the gate if that reached its
// target.
func (c *benchClient) received() {
	n := c.msgs.Add(1)
	if n >= c.gate.target.Load() {
		c.gate.arrive(c, n)
	}
}

// benchGate lets the publisher sleep until every client has received a
// target number of messages, and be woken by the last one to get there.
// Polling would either burn one of the two CPUs the clients need or, with
// time.Sleep, oversleep (sub-millisecond sleeps are not precise when the
// process is otherwise idle).
type benchGate struct {
	target    atomic.Int64
	remaining atomic.Int64
	done      chan struct{}
	clients   []*benchClient
}

func newBenchGate() *benchGate {
	g := &benchGate{done: make(chan struct{}, 1)}
	g.target.Store(1 << 62)
	return g
}

// arrive counts c in for the current target once, if it holds n >= target
// messages; the client and the waiter may both try, only one succeeds.
func (g *benchGate) arrive(c *benchClient, n int64) {
	t := g.target.Load()
	for {
		a := c.acked.Load()
		if n < t || a >= t {
			return
		}
		if c.acked.CompareAndSwap(a, t) {
			break
		}
	}
	if g.remaining.Add(-1) == 0 {
		g.done <- struct{}{}
	}
}

// wait blocks until every client has received want messages. Targets must
// grow from one call to the next.
func (g *benchGate) wait(b *testing.B, want int64, stats func() gateway.Stats) {
	g.remaining.Store(int64(len(g.clients)))
	g.target.Store(want)
	for _, c := range g.clients {
		g.arrive(c, c.msgs.Load())
	}
	select {
	case <-g.done:
	case <-time.After(benchDeliveryTimeout):
		slowest := want
		for _, c := range g.clients {
			slowest = min(slowest, c.msgs.Load())
		}
		b.Fatalf("slowest client has %d of %d messages after %v; gateway stats %+v",
			slowest, want, benchDeliveryTimeout, stats())
	}
}

// benchReader says how a client reads: through gorilla's reader, as an
// application would, or by parsing frames straight off the socket, which
// costs the client almost nothing and no allocation, so that CPU and
// allocations left are the server's.
type benchReader int

const (
	benchReadGorilla benchReader = iota
	benchReadRaw
)

func benchDial(url string) (*websocket.Conn, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	ws, resp, err := d.Dial(url, nil)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	return ws, nil
}

// drain counts the client's text messages until the connection ends.
func (c *benchClient) drain(mode benchReader) {
	if mode == benchReadRaw {
		// After the handshake the server has sent nothing yet, so gorilla's
		// buffered reader holds no bytes and the socket can be read directly.
		c.drainRaw(bufio.NewReaderSize(&benchCountingReader{r: c.ws.NetConn(), reads: &c.reads}, 64<<10))
		return
	}
	buf := make([]byte, 4096)
	for {
		mt, r, err := c.ws.NextReader()
		if err != nil {
			return
		}
		n := 0
		for {
			k, err := r.Read(buf)
			n += k
			if err == io.EOF {
				break
			}
			if err != nil {
				return
			}
		}
		if mt == websocket.TextMessage && n != len(protocol.HeartbeatV1) {
			c.received()
		}
	}
}

// drainRaw parses unmasked server frames; it stops at a close frame or an
// error.
func (c *benchClient) drainRaw(r *bufio.Reader) {
	var ext [8]byte
	for {
		b0, err := r.ReadByte()
		if err != nil {
			return
		}
		b1, err := r.ReadByte()
		if err != nil {
			return
		}
		n := uint64(b1 & 0x7f)
		switch n {
		case 126:
			if _, err := io.ReadFull(r, ext[:2]); err != nil {
				return
			}
			n = uint64(binary.BigEndian.Uint16(ext[:2]))
		case 127:
			if _, err := io.ReadFull(r, ext[:]); err != nil {
				return
			}
			n = binary.BigEndian.Uint64(ext[:])
		}
		if _, err := r.Discard(int(n)); err != nil {
			return
		}
		switch b0 & 0x0f {
		case protocol.OpClose:
			return
		case protocol.OpText:
			if n != uint64(len(protocol.HeartbeatV1)) {
				c.received()
			}
		}
	}
}

// benchCountingReader counts the reads that returned data: with a fast
// client, about one per writev of the server.
type benchCountingReader struct {
	r     io.Reader
	reads *atomic.Int64
}

func (r *benchCountingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.reads.Add(1)
	}
	return n, err
}

// benchFanout is a gateway with n clients subscribed to one topic.
type benchFanout struct {
	ts      *testServer
	topic   string
	gate    *benchGate
	clients []*benchClient
	sent    int64 // messages published so far; each client must count them all
	wg      sync.WaitGroup
}

// newBenchFanout connects n v1 clients, subscribes them to one topic and
// starts their drain goroutines. Its cleanup, registered on b, closes the
// clients and waits for the drains before the test server's cleanup closes
// the gateway.
func newBenchFanout(b *testing.B, n int, mode benchReader) *benchFanout {
	f := &benchFanout{ts: newTestServer(b, benchConfig(), nil), topic: "bench", gate: newBenchGate()}
	b.Cleanup(func() {
		for _, c := range f.clients {
			c.ws.Close()
		}
		f.wg.Wait()
	})
	sub := []byte(`{"type":"subscribe","topic":"` + f.topic + `","data":""}`)
	for range n {
		ws, err := benchDial(f.ts.url)
		if err != nil {
			b.Fatalf("dial client %d: %v", len(f.clients), err)
		}
		c := &benchClient{ws: ws, gate: f.gate}
		f.clients = append(f.clients, c)
		f.gate.clients = f.clients
		if err := ws.WriteMessage(websocket.TextMessage, sub); err != nil {
			b.Fatalf("subscribe: %v", err)
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			c.drain(mode)
		}()
	}
	deadline := time.Now().Add(benchDeliveryTimeout)
	for f.ts.gw.LocalConnectNum(f.topic) != int64(n) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d clients subscribed", f.ts.gw.LocalConnectNum(f.topic), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return f
}

func (f *benchFanout) waitReceived(b *testing.B, want int64) {
	f.gate.wait(b, want, f.ts.gw.Stats)
}

// run is one timed round: b.N publishes with Gateway.Publish, at most window
// messages ahead of the slowest client, then the wait until every client has
// them all.
func (f *benchFanout) run(b *testing.B, window int64) {
	ctx := context.Background()
	n := len(f.clients)
	reads0 := f.totalReads()
	b.ReportAllocs()
	m0 := benchMallocs()
	cpu0 := benchCPU()
	b.ResetTimer()
	base := f.sent
	low := base // every client has at least this many
	for i := range int64(b.N) {
		if low < base+i-window {
			low = base + i - window/2
			f.waitReceived(b, low)
		}
		if err := f.ts.gw.Publish(ctx, f.topic, benchPayload); err != nil {
			b.Fatal(err)
		}
	}
	f.sent += int64(b.N)
	f.waitReceived(b, f.sent)
	b.StopTimer()
	cpu := benchCPU() - cpu0
	allocs := benchMallocs() - m0
	if d := f.ts.gw.Stats().Dropped; d != 0 {
		b.Fatalf("%d frames dropped: the figures would not be deliveries", d)
	}
	deliveries := float64(b.N) * float64(n)
	elapsed := b.Elapsed()
	b.ReportMetric(float64(elapsed.Nanoseconds())/deliveries, "ns/delivery")
	b.ReportMetric(deliveries/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/deliveries, "cpu-ns/delivery")
	b.ReportMetric(float64(allocs)/deliveries, "allocs/delivery")
	if reads := f.totalReads() - reads0; reads > 0 {
		b.ReportMetric(deliveries/float64(reads), "frames/read")
	}
}

func (f *benchFanout) totalReads() int64 {
	var n int64
	for _, c := range f.clients {
		n += c.reads.Load()
	}
	return n
}

// benchFanoutSizes sets up each client count once (it is the slow part) and
// runs its rounds in a sub-benchmark; the clients are closed before the next
// count is set up, so at most 1,000 clients (2,000 sockets) are open.
func benchFanoutSizes(b *testing.B, mode benchReader) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			f := newBenchFanout(b, n, mode)
			for _, w := range benchWindows {
				b.Run(fmt.Sprintf("window=%d", w), func(b *testing.B) { f.run(b, w) })
			}
		})
	}
}

// BenchmarkGatewayFanout publishes one ~100-byte message per op with
// Gateway.Publish to N gorilla websocket clients on 127.0.0.1 and includes
// the wait for every client to have read it.
func BenchmarkGatewayFanout(b *testing.B) { benchFanoutSizes(b, benchReadGorilla) }

// BenchmarkGatewayFanoutRawClients is BenchmarkGatewayFanout with clients
// that parse frames off the socket without allocating: allocs/delivery is
// then the server's alone, and frames/read shows the writer's batching.
func BenchmarkGatewayFanoutRawClients(b *testing.B) { benchFanoutSizes(b, benchReadRaw) }

// BenchmarkGatewayEnqueue is the per-connection path alone: FireTower.Enqueue
// of one prepared ~100-byte frame, written by the tower's writer to one
// client that reads as fast as it can. The publisher stays at most 128
// frames ahead, so ns/op is the pipeline's cost per frame
// (enqueue, writev, client read) and allocs/op must be 0 amortized.
func BenchmarkGatewayEnqueue(b *testing.B) {
	towers := make(chan *gateway.FireTower, 1)
	ts := newTestServer(b, benchConfig(), func(t *gateway.FireTower) { towers <- t })
	ws, err := benchDial(ts.url)
	if err != nil {
		b.Fatal(err)
	}
	gate := newBenchGate()
	c := &benchClient{ws: ws, gate: gate}
	gate.clients = []*benchClient{c}
	var wg sync.WaitGroup
	b.Cleanup(func() {
		ws.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.drain(benchReadRaw)
	}()
	var tower *gateway.FireTower
	select {
	case tower = <-towers:
	case <-time.After(10 * time.Second):
		b.Fatal("no connection reached the server")
	}
	frame := protocol.TextFrame(benchPayload)

	const window = 128
	b.ReportAllocs()
	cpu0 := benchCPU()
	b.ResetTimer()
	low := int64(0)
	for i := range int64(b.N) {
		if low < i-window {
			low = i - window/2
			gate.wait(b, low, ts.gw.Stats)
		}
		tower.Enqueue(frame)
	}
	gate.wait(b, int64(b.N), ts.gw.Stats)
	b.StopTimer()
	cpu := benchCPU() - cpu0
	if d := ts.gw.Stats().Dropped; d != 0 {
		b.Fatalf("%d frames dropped", d)
	}
	b.ReportMetric(float64(b.N)/float64(c.reads.Load()), "frames/read")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}
