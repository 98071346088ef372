package gateway

import (
	"runtime"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// An identity put by Upgrade for a connection that never becomes a tower
// is dropped once the connection is garbage: nothing accumulates.
func TestIdentitiesDoNotOutliveTheirConnection(t *testing.T) {
	var ids identities
	for range 100 {
		ids.put(new(websocket.Conn), &Identity{UserID: "u"})
	}
	kept := new(websocket.Conn)
	ids.put(kept, &Identity{UserID: "kept"})
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.GC()
		n := 0
		ids.m.Range(func(any, any) bool { n++; return true })
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d identities left, want 1", n)
		}
		time.Sleep(10 * time.Millisecond) // cleanups run on their own goroutine after a GC
	}
	if id := ids.take(kept); id == nil || id.UserID != "kept" {
		t.Fatalf("take(kept) = %+v", id)
	}
	runtime.KeepAlive(kept)
}
