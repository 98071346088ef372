package pushapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/firetower-go/firetower/internal/apitest"
	"github.com/firetower-go/firetower/pushapi/pb"
	"github.com/firetower-go/firetower/server"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// The benchmarks of the push API: publishes per second through HTTP and
// gRPC, one message per call and 100 per call (broadcast), and the time
// from the call to the delivery on a websocket client. One server, its
// clients and the benchmark share the machine; see docs/PERFORMANCE.md.

const batch = 100 // topics per broadcast in the batched benchmarks

// benchServer starts a quiet server with one v1 websocket subscriber of
// "/bench" and returns it with a channel of the subscriber's receive times.
func benchServer(b *testing.B) (*apitest.Server, <-chan time.Time) {
	b.Helper()
	s := apitest.Start(b, server.Config{QuietCounts: true})
	ws := apitest.Dial(b, s.WS, false)
	apitest.Subscribe(b, s, ws, false, "/bench", 1)
	arrivals := make(chan time.Time, 1024)
	go func() {
		defer close(arrivals)
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
			select {
			case arrivals <- time.Now():
			default: // throughput runs do not wait for the reader
			}
		}
	}()
	return s, arrivals
}

// httpPoster posts JSON bodies over one kept-alive connection.
type httpPoster struct {
	s  *apitest.Server
	hc *http.Client
}

func newHTTPPoster(b *testing.B, s *apitest.Server) *httpPoster {
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	b.Cleanup(tr.CloseIdleConnections)
	return &httpPoster{s: s, hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

func (p *httpPoster) post(b *testing.B, path string, body []byte) {
	req, _ := http.NewRequest(http.MethodPost, p.s.Base+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+p.s.Key)
	resp, err := p.hc.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("status %d", resp.StatusCode)
	}
}

func grpcClient(b *testing.B, s *apitest.Server) (pb.PushServiceClient, context.Context) {
	cc, err := grpc.NewClient(s.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cc.Close() })
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+s.Key)
	return pb.NewPushServiceClient(cc), ctx
}

// payload is a 100-byte JSON value, as in the gateway benchmarks.
var payload = `{"from":"bench","text":"` + string(bytes.Repeat([]byte("x"), 100-len(`{"from":"bench","text":""}`))) + `"}`

func broadcastTopics() []string {
	topics := make([]string, batch)
	topics[0] = "/bench"
	for i := 1; i < batch; i++ {
		topics[i] = fmt.Sprintf("/bench/%d", i)
	}
	return topics
}

func BenchmarkHTTPPublish(b *testing.B) {
	s, _ := benchServer(b)
	p := newHTTPPoster(b, s)
	body := []byte(`{"topic":"/bench","data":` + payload + `}`)
	b.ResetTimer()
	for b.Loop() {
		p.post(b, "/api/publish", body)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkHTTPPublishParallel(b *testing.B) {
	s, _ := benchServer(b)
	p := newHTTPPoster(b, s)
	body := []byte(`{"topic":"/bench","data":` + payload + `}`)
	b.SetParallelism(4) // 8 concurrent callers on 2 CPUs
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p.post(b, "/api/publish", body)
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

func BenchmarkHTTPBroadcast100(b *testing.B) {
	s, _ := benchServer(b)
	p := newHTTPPoster(b, s)
	topics, _ := json.Marshal(broadcastTopics())
	body := fmt.Appendf(nil, `{"topics":%s,"data":%s}`, topics, payload)
	b.ResetTimer()
	for b.Loop() {
		p.post(b, "/api/broadcast", body)
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkGRPCPublish(b *testing.B) {
	s, _ := benchServer(b)
	c, ctx := grpcClient(b, s)
	req := &pb.PublishRequest{Topic: "/bench", Payload: &pb.PublishRequest_Json{Json: payload}}
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Publish(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkGRPCPublishParallel(b *testing.B) {
	s, _ := benchServer(b)
	c, ctx := grpcClient(b, s)
	req := &pb.PublishRequest{Topic: "/bench", Payload: &pb.PublishRequest_Json{Json: payload}}
	b.SetParallelism(4)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(p *testing.PB) {
		for p.Next() {
			if _, err := c.Publish(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

func BenchmarkGRPCBroadcast100(b *testing.B) {
	s, _ := benchServer(b)
	c, ctx := grpcClient(b, s)
	req := &pb.BroadcastRequest{Topics: broadcastTopics(), Payload: &pb.BroadcastRequest_Json{Json: payload}}
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Broadcast(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkLatency measures, one message at a time, the time from the
// start of the API call to the websocket client's read of the message.
func BenchmarkLatency(b *testing.B) {
	for _, via := range []string{"http", "grpc"} {
		b.Run(via, func(b *testing.B) {
			s, arrivals := benchServer(b)
			var publish func()
			if via == "http" {
				p := newHTTPPoster(b, s)
				body := []byte(`{"topic":"/bench","data":` + payload + `}`)
				publish = func() { p.post(b, "/api/publish", body) }
			} else {
				c, ctx := grpcClient(b, s)
				req := &pb.PublishRequest{Topic: "/bench", Payload: &pb.PublishRequest_Json{Json: payload}}
				publish = func() {
					if _, err := c.Publish(ctx, req); err != nil {
						b.Fatal(err)
					}
				}
			}
			lat := make([]time.Duration, 0, 1024)
			b.ResetTimer()
			for b.Loop() {
				start := time.Now()
				publish()
				select {
				case at := <-arrivals:
					lat = append(lat, at.Sub(start))
				case <-time.After(5 * time.Second):
					b.Fatal("the message did not arrive")
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}
