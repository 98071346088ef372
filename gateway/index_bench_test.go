//go:build unix

package gateway_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/firetower-go/firetower/gateway"
)

// benchPushSizes are the numbers of registered connections of the push
// benchmarks: ns/op must not grow with them.
var benchPushSizes = []int{1_000, 10_000, 100_000}

// benchPush registers n socketless towers, client i with client id "c<i>"
// and user id "u<i>", and times push aimed at the one in the middle.
func benchPush(b *testing.B, push func(gw *gateway.Gateway, client, user string) (int, error)) {
	for _, n := range benchPushSizes {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			gw, err := gateway.New(benchConfig())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = gw.Close() })
			ids := make([][2]string, n)
			for i := range ids {
				ids[i] = [2]string{fmt.Sprintf("c%d", i), fmt.Sprintf("u%d", i)}
			}
			towers, remove, err := gw.AddBareTowers(ids)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(remove)
			target := towers[n/2]
			client, user := ids[n/2][0], ids[n/2][1]
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if got, err := push(gw, client, user); got != 1 || err != nil {
					b.Fatalf("push reached %d connections, %v; want 1", got, err)
				}
				if i%128 == 127 {
					target.DiscardQueued() // stay below the queue limit
				}
			}
		})
	}
}

// BenchmarkPushUser is Gateway.PushUser of a ~100-byte message to one
// user among n registered connections (no socket behind them: the figure
// is finding the connections and queueing the frame).
func BenchmarkPushUser(b *testing.B) {
	ctx := context.Background()
	benchPush(b, func(gw *gateway.Gateway, _, user string) (int, error) { return gw.PushUser(ctx, user, benchPayload) })
}

// BenchmarkPushClient is BenchmarkPushUser by client id.
func BenchmarkPushClient(b *testing.B) {
	ctx := context.Background()
	benchPush(b, func(gw *gateway.Gateway, client, _ string) (int, error) {
		return gw.PushClient(ctx, client, benchPayload)
	})
}
