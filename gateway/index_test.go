package gateway_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/protocol"
	"github.com/gorilla/websocket"
)

// renameSetup is recordingSetup whose OnConnect sets UserId from the client
// id ("c1-alice" is alice's), and whose ReadHandler also changes the ids:
// a "user" frame sets UserId to its data (a JSON string), a "client" frame
// ClientId, as an application may in any callback.
func renameSetup(log *eventLog) func(*gateway.FireTower) {
	return func(tower *gateway.FireTower) {
		recordingSetup(log, nil)(tower)
		tower.SetOnConnectHandler(func() bool {
			_, tower.UserId, _ = strings.Cut(tower.ClientId, "-")
			return true
		})
		tower.SetReadHandler(func(fire *gateway.FireInfo) bool {
			m := fire.Message
			switch m.Type {
			case "user":
				tower.UserId, _ = strconv.Unquote(string(m.Data))
			case "client":
				tower.ClientId, _ = strconv.Unquote(string(m.Data))
			case "echo":
				_ = tower.ToSelf(m.Data)
			}
			return true
		})
	}
}

// waitIndexLen polls until gw's user and client indexes hold users and
// clients towers.
func waitIndexLen(t *testing.T, gw *gateway.Gateway, users, clients int) {
	t.Helper()
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if u, c := gw.IndexLen(); u != users || c != clients {
			return fmt.Errorf("index holds %d users and %d clients, want %d and %d", u, c, users, clients)
		}
		return nil
	})
}

// TestIndexFollowsIdentity: the push and kick-out commands reach exactly
// the connections whose ids are, as of their last callback, the ones
// asked for, whatever the application changed in OnConnect or a
// ReadHandler; and the indexes are empty once every connection is gone.
func TestIndexFollowsIdentity(t *testing.T) {
	var log eventLog
	ts := newTestServer(t, quietConfig(), renameSetup(&log))
	ctx := context.Background()
	c1 := dialUser(t, ts, "c1", "alice", "room")
	c2 := dialUser(t, ts, "c2", "alice", "")
	c3 := dialUser(t, ts, "c3", "bob", "room")
	anon := dial(t, ts.url+"?id=anon", false) // no user id: in the client index only
	barrier(t, anon, false)
	waitIndexLen(t, ts.gw, 3, 4)

	push := func(what string, do func() (int, error), want int, got ...*websocket.Conn) {
		t.Helper()
		data := strconv.Quote(what)
		n, err := do()
		if err != nil || n != want {
			t.Fatalf("%s reached %d, %v; want %d", what, n, err, want)
		}
		for _, c := range got {
			if m := next(t, c); m != data {
				t.Fatalf("%s: got %s", what, m)
			}
		}
	}
	pushUser := func(user string) func() (int, error) {
		return func() (int, error) { return ts.gw.PushUser(ctx, user, []byte(strconv.Quote("to "+user))) }
	}
	pushClient := func(client string) func() (int, error) {
		return func() (int, error) { return ts.gw.PushClient(ctx, client, []byte(strconv.Quote("to "+client))) }
	}
	quiet := func(cs ...*websocket.Conn) {
		t.Helper()
		for i, c := range cs {
			if got := barrier(t, c, false); len(got) != 0 {
				t.Fatalf("connection %d got %q", i, got)
			}
		}
	}

	push("to alice", pushUser("alice"), 2, c1, c2)
	quiet(c3, anon)

	// c2 becomes bob's in its ReadHandler.
	send(t, c2, `{"type":"user","topic":"-","data":"bob"}`)
	barrier(t, c2, false)
	push("to alice", pushUser("alice"), 1, c1)
	push("to bob", pushUser("bob"), 2, c2, c3)
	quiet(anon)

	// c1 takes a new client id; its old one reaches nobody.
	send(t, c1, `{"type":"client","topic":"-","data":"c9"}`)
	barrier(t, c1, false)
	push("to c1-alice", pushClient("c1-alice"), 0)
	push("to c9", pushClient("c9"), 1, c1)
	quiet(c2, c3, anon)
	if found, matched := ts.gw.FindConnections("c9", "bob", -1); matched != 3 || len(found) != 3 {
		t.Fatalf("FindConnections(c9, bob) = %d of %d, want 3", len(found), matched)
	}

	// Bob's connection on "room" is c3 only (c2 never subscribed).
	if n, err := ts.gw.RemoveUserFromTopic(ctx, "bob", "room"); err != nil || n != 1 {
		t.Fatalf("RemoveUserFromTopic(bob, room) = %d, %v; want 1", n, err)
	}
	log.waitEvent(t, "systemremove c3-bob room", 1)
	waitCount(t, ts.gw, "room", 1)
	if log.count("systemremove c1") != 0 {
		t.Fatalf("alice was removed too: %q", log.list())
	}

	if n, err := ts.gw.DisconnectUser(ctx, "bob"); err != nil || n != 2 {
		t.Fatalf("DisconnectUser(bob) = %d, %v; want 2", n, err)
	}
	for _, c := range []*websocket.Conn{c2, c3} {
		if code := closeCode(t, c); code != protocol.CloseKicked {
			t.Fatalf("bob's connection closed with %d", code)
		}
	}
	waitIndexLen(t, ts.gw, 1, 2)
	quiet(c1, anon)

	if n, err := ts.gw.DisconnectClient(ctx, "anon"); err != nil || n != 1 {
		t.Fatalf("DisconnectClient(anon) = %d, %v; want 1", n, err)
	}
	c1.Close()
	waitIndexLen(t, ts.gw, 0, 0)
	log.waitEvent(t, "offline", 4)
}
