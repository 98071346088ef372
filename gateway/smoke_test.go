package gateway_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/firetower-go/firetower/gateway"
)

func TestSmokeV1AndV2(t *testing.T) {
	ts := newTestServer(t, gateway.Config{}, nil)
	a := dial(t, ts.url, false)
	b := dial(t, ts.url, true)
	send(t, a, `{"type":"subscribe","topic":"room, other","data":""}`)
	send(t, b, `{"id":1,"type":"subscribe","topics":["room"]}`)
	if got := next(t, b); got != `{"type":"ack","id":1}` {
		t.Fatalf("v2 ack: %s", got)
	}
	checkFor(t, 2*time.Second, 10*time.Millisecond, func() error {
		if n := ts.gw.LocalConnectNum("room"); n != 2 {
			return fmt.Errorf("count %d", n)
		}
		return nil
	})
	send(t, a, `{"type":"publish","topic":"room","data":{"from":"a","data":"hi"}}`)
	if got := next(t, a); got != `{"from":"a","data":"hi"}` {
		t.Fatalf("v1 got %s", got)
	}
	got := next(t, b)
	want := `{"type":"message","topic":"room","id":"`
	if len(got) < len(want) || got[:len(want)] != want {
		t.Fatalf("v2 got %s", got)
	}
}
