//go:build unix

package baseline

import (
	"bytes"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/firetower-go/firetower/protocol"
)

// benchPayload is the ~100-byte JSON message of the gateway's benchmarks: a
// frame of 102 bytes.
var benchPayload = []byte(`{"from":"user-1234","room":"lobby","text":"hello, this is a hundred byte payload for benchmarks..."}`)

// benchCPU returns the CPU time (user + system) the process has used, as
// gateway/bench_test.go measures it: writers and readers together.
func benchCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFloorFanout is the machine floor without a websocket server: one
// op is one pre-encoded frame delivered to every subscriber, written as
// batch frames per write system call to each of subs loopback TCP
// connections whose peers drain them in reader goroutines. cpu-ns/delivery is
// the process CPU (both ends) per frame delivered to one subscriber.
func BenchmarkFloorFanout(b *testing.B) {
	for _, subs := range []int{1000} {
		for _, batch := range []int{1, 8} {
			b.Run(fmt.Sprintf("subs=%d/batch=%d", subs, batch), func(b *testing.B) {
				benchFloorFanout(b, subs, batch)
			})
		}
	}
}

func benchFloorFanout(b *testing.B, subs, batch int) {
	frame := protocol.AppendFrame(nil, opText, benchPayload)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	conns := make([]net.Conn, 0, subs)
	peers := make([]net.Conn, 0, subs)
	defer func() {
		for _, c := range append(conns, peers...) {
			c.Close()
		}
	}()
	for range subs {
		p, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		peers = append(peers, p)
		c, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
	}

	writes := (b.N + batch - 1) / batch
	target := writes * batch * len(frame)
	var received, readers sync.WaitGroup
	var reads atomic.Int64
	received.Add(subs)
	for _, p := range peers {
		readers.Go(func() {
			buf := make([]byte, 64<<10)
			got := 0
			for {
				n, err := p.Read(buf)
				if err != nil {
					return
				}
				reads.Add(1)
				if got += n; got == target {
					received.Done()
				}
			}
		})
	}
	out := bytes.Repeat(frame, batch)

	runtime.GC()
	b.ResetTimer()
	cpu0 := benchCPU()
	for range writes {
		for _, c := range conns {
			if _, err := c.Write(out); err != nil {
				b.Fatal(err)
			}
		}
	}
	received.Wait()
	cpu := benchCPU() - cpu0
	b.StopTimer()

	for _, c := range append(conns, peers...) {
		c.Close()
	}
	readers.Wait()
	deliveries := float64(writes * batch * subs)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/deliveries, "ns/delivery")
	b.ReportMetric(float64(cpu.Nanoseconds())/deliveries, "cpu-ns/delivery")
	b.ReportMetric(deliveries/float64(reads.Load()), "frames/read")
	b.ReportMetric(float64(len(frame)), "frame-bytes")
}
