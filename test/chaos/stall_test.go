package chaos

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/internal/clustertest"
)

// echoWithin bounds the wait for a client's own echo while the broker is
// stalled: far below the publish timeout (5 s) that a poller waiting on
// the broker would cost, far above a local delivery under -race.
const echoWithin = 2 * time.Second

// With the Redis process stopped (SIGSTOP: open sockets, no answers), every
// client of the gateway still gets its own messages back at once: local
// delivery never waits for the broker, nor do the pollers. The v2 acks
// wait for Redis and come once it continues.
func TestRedisStalledLocalEchoes(t *testing.T) {
	redis := clustertest.StartRedis(t)
	n := startNode(t, "stall", "redis://"+redis.Addr)
	wait := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(settleWithin)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("not within %v: %s", settleWithin, what)
			}
			time.Sleep(pollEvery)
		}
	}
	wait("the broker is ready", func() bool { return n.gw().Ready() == nil })

	const clients = 20
	frames := make([]chan string, clients)
	conns := make([]*client, clients)
	for i := range conns {
		ch := make(chan string, 64)
		frames[i] = ch
		c, err := dial(n.ws, true, func(b []byte) { ch <- string(b) })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.close)
		conns[i] = c
		if err := c.send(fmt.Sprintf(`{"id":"s","type":"subscribe","topics":["/own/%d"]}`, i)); err != nil {
			t.Fatal(err)
		}
		expectFrame(t, ch, settleWithin, `"id":"s"`, `"type":"ack"`)
	}

	redis.Pause()
	t.Cleanup(redis.Resume)
	for round := range 3 {
		for i, c := range conns {
			if err := c.send(fmt.Sprintf(`{"id":"p%d","type":"publish","topic":"/own/%d","data":%d}`, round, i, round)); err != nil {
				t.Fatal(err)
			}
		}
		for i := range conns {
			expectFrame(t, frames[i], echoWithin, `"type":"message"`, fmt.Sprintf(`"data":%d`, round))
		}
	}
	redis.Resume()
	for i := range conns {
		for round := range 3 {
			// Acknowledged once Redis answers, or refused if the wait
			// outlived the publish timeout: never silently.
			expectFrame(t, frames[i], settleWithin, fmt.Sprintf(`"id":"p%d"`, round))
		}
	}
}

// expectFrame waits up to d for a frame on ch that contains every part.
func expectFrame(t *testing.T, ch <-chan string, d time.Duration, parts ...string) string {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case f := <-ch:
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(f, p)
			}
			if ok {
				return f
			}
		case <-timer.C:
			t.Fatalf("no frame with %q within %v", parts, d)
		}
	}
}
