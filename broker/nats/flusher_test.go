package nats_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/internal/clustertest"
)

// Concurrent publishes share flush round trips, and every one that
// returned nil is delivered.
func TestPublishesShareFlushes(t *testing.T) {
	const publishers, each = 16, 100
	cfg := sharedConfig(t)
	a, b := newBroker(t, cfg), newBroker(t, cfg)
	started(t, a, "a")
	got := started(t, b, "b")
	b.SetInterest("t", 1)
	probe := &broker.Message{Topic: "t", Origin: "a", Data: []byte(`"probe"`)}
	clustertest.PublishUntilReceived(t, a, probe, got, 10*time.Second)
	before := a.Stats()

	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				m := &broker.Message{Topic: "t", Origin: "a", Data: fmt.Appendf(nil, `"%d-%d"`, p, i)}
				if err := a.Publish(context.Background(), m); err != nil {
					t.Errorf("publish: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	for n := 0; n < publishers*each; {
		select {
		case m := <-got:
			if string(m.Data) != string(probe.Data) {
				n++
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of %d acknowledged publishes delivered", n, publishers*each)
		}
	}
	st := a.Stats()
	pubs, flushes := st.Published-before.Published, st.Flushes-before.Flushes
	t.Logf("%d concurrent publishes confirmed by %d flushes", pubs, flushes)
	if flushes >= pubs {
		t.Errorf("%d flushes for %d concurrent publishes: none shared", flushes, pubs)
	}
}
