package gateway_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/firetower-go/firetower/broker"
	"github.com/firetower-go/firetower/gateway"
	"github.com/firetower-go/firetower/protocol"
	"github.com/gorilla/websocket"
)

// twoNodes starts two gateways joined by an in-process bus. Their towers
// record callbacks in log and set their UserId in OnConnect, on Run's
// goroutine, as applications do after authentication: the user of client
// id "c1-alice" is "alice".
func twoNodes(t *testing.T, log *eventLog) (a, b *testServer) {
	t.Helper()
	bus := broker.NewBus()
	setup := func(tower *gateway.FireTower) {
		recordingSetup(log, nil)(tower)
		tower.SetOnConnectHandler(func() bool {
			_, tower.UserId, _ = strings.Cut(tower.ClientId, "-")
			log.add("connect %s", tower.ClientId)
			return true
		})
	}
	mk := func(name string) *testServer {
		cfg := quietConfig()
		cfg.NodeID, cfg.Broker = name, bus.Node()
		return newTestServer(t, cfg, setup)
	}
	return mk("node-a"), mk("node-b")
}

// dialUser connects a client with a client id and a user id, subscribes it
// to topics, and waits until that was handled.
func dialUser(t *testing.T, ts *testServer, id, user string, topics string) *websocket.Conn {
	t.Helper()
	c := dial(t, ts.url+"?id="+id+"-"+user, false)
	if topics != "" {
		send(t, c, `{"type":"subscribe","topic":"`+topics+`","data":""}`)
	}
	barrier(t, c, false)
	return c
}

func TestKickOutCommands(t *testing.T) {
	t.Run("DisconnectClient", func(t *testing.T) {
		var log eventLog
		a, b := twoNodes(t, &log)
		victims := []*websocket.Conn{dialUser(t, a, "c1", "u1", ""), dialUser(t, b, "c1", "u1", "")}
		other := dialUser(t, b, "c2", "u1", "")
		n, err := a.gw.DisconnectClient(context.Background(), "c1-u1")
		if err != nil || n != 1 {
			t.Fatalf("DisconnectClient = %d, %v; want 1 local, nil", n, err)
		}
		for i, c := range victims {
			if code := closeCode(t, c); code != protocol.CloseKicked {
				t.Errorf("victim %d closed with %d, want %d", i, code, protocol.CloseKicked)
			}
		}
		barrier(t, other, false) // still served
	})

	t.Run("DisconnectUser", func(t *testing.T) {
		var log eventLog
		a, b := twoNodes(t, &log)
		victims := []*websocket.Conn{dialUser(t, a, "c1", "alice", ""), dialUser(t, b, "c2", "alice", ""), dialUser(t, b, "c3", "alice", "")}
		other := dialUser(t, a, "c4", "bob", "")
		n, err := b.gw.DisconnectUser(context.Background(), "alice")
		if err != nil || n != 2 {
			t.Fatalf("DisconnectUser = %d, %v; want 2 local, nil", n, err)
		}
		for i, c := range victims {
			if code := closeCode(t, c); code != protocol.CloseKicked {
				t.Errorf("victim %d closed with %d, want %d", i, code, protocol.CloseKicked)
			}
		}
		log.waitEvent(t, "offline c", 3)
		barrier(t, other, false)
	})

	t.Run("RemoveUserFromTopic", func(t *testing.T) {
		var log eventLog
		a, b := twoNodes(t, &log)
		alice1 := dialUser(t, a, "c1", "alice", "room,lobby")
		alice2 := dialUser(t, b, "c2", "alice", "room")
		bob := dialUser(t, b, "c3", "bob", "room")
		n, err := a.gw.RemoveUserFromTopic(context.Background(), "alice", "room")
		if err != nil || n != 1 {
			t.Fatalf("RemoveUserFromTopic = %d, %v; want 1 local, nil", n, err)
		}
		for _, id := range []string{"c1-alice", "c2-alice"} {
			log.waitEvent(t, "systemremove "+id+" room", 1)
			log.waitEvent(t, "unsubscribe "+id+" room", 1)
		}
		if log.count("systemremove c3-bob") != 0 {
			t.Fatalf("bob was removed too: %q", log.list())
		}
		waitCount(t, b.gw, "room", 1)
		if err := a.gw.Publish(context.Background(), "room", []byte(`"to the room"`)); err != nil {
			t.Fatal(err)
		}
		if err := a.gw.Publish(context.Background(), "lobby", []byte(`"to the lobby"`)); err != nil {
			t.Fatal(err)
		}
		if got := next(t, bob); got != `"to the room"` {
			t.Fatalf("bob got %s", got)
		}
		if got := next(t, alice1); got != `"to the lobby"` {
			t.Fatalf("alice on node a got %s, want only the lobby message", got)
		}
		if got := barrier(t, alice2, false); len(got) != 0 {
			t.Fatalf("alice on node b still got %q", got)
		}
	})

	t.Run("CloseTopicEverywhere", func(t *testing.T) {
		var log eventLog
		a, b := twoNodes(t, &log)
		dialUser(t, a, "c1", "u", "news")
		dialUser(t, b, "c2", "u", "news")
		dialUser(t, b, "c3", "v", "news,other")
		n, err := b.gw.CloseTopicEverywhere(context.Background(), "news")
		if err != nil || n != 2 {
			t.Fatalf("CloseTopicEverywhere = %d, %v; want 2 local, nil", n, err)
		}
		for _, id := range []string{"c1-u", "c2-u", "c3-v"} {
			log.waitEvent(t, "systemremove "+id+" news", 1)
		}
		waitCount(t, a.gw, "news", 0)
		waitCount(t, b.gw, "other", 1)
	})

	t.Run("ApplyCommandIsLocal", func(t *testing.T) {
		var log eventLog
		a, b := twoNodes(t, &log)
		local := dialUser(t, a, "c1", "u", "")
		remote := dialUser(t, b, "c1", "u", "")
		n, err := a.gw.ApplyCommand(broker.Command{Op: broker.OpDisconnectClient, ClientID: "c1-u"})
		if err != nil || n != 1 {
			t.Fatalf("ApplyCommand = %d, %v", n, err)
		}
		if code := closeCode(t, local); code != protocol.CloseKicked {
			t.Fatalf("closed with %d", code)
		}
		barrier(t, remote, false)
	})

	t.Run("Invalid", func(t *testing.T) {
		var log eventLog
		a, _ := twoNodes(t, &log)
		for _, tc := range []struct {
			name string
			call func() (int, error)
			want error
		}{
			{"empty client", func() (int, error) { return a.gw.DisconnectClient(context.Background(), "") }, broker.ErrBadCommand},
			{"empty user", func() (int, error) { return a.gw.DisconnectUser(context.Background(), "") }, broker.ErrBadCommand},
			{"bad topic", func() (int, error) { return a.gw.CloseTopicEverywhere(context.Background(), "a,b") }, protocol.ErrTopicInvalid},
			{"unknown op", func() (int, error) { return a.gw.SendCommand(context.Background(), broker.Command{Op: "reboot"}) }, broker.ErrBadCommand},
		} {
			if _, err := tc.call(); !errors.Is(err, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			}
		}
	})
}

// A push reaches every node's clients as the bytes pushed, white space,
// <, >, & and U+2028 included: the command is not re-encoded on its way.
func TestPushKeepsBytesAcrossNodes(t *testing.T) {
	var log eventLog
	a, b := twoNodes(t, &log)
	local := dialUser(t, a, "c1", "alice", "")
	v1 := dialUser(t, b, "c2", "alice", "")
	v2 := dial(t, b.url+"?id=c3-alice", true)
	barrier(t, v2, true)
	ctx := context.Background()
	for _, data := range []string{
		`{ "html": "<b>&" }`,
		"{\n  \"s\": \"a\u2028b\",\t\"n\" : [1, 2]\n}",
		` "spaced" `,
	} {
		if n, err := a.gw.PushUser(ctx, "alice", []byte(data)); err != nil || n != 1 {
			t.Fatalf("PushUser(%q) = %d, %v; want 1 local", data, n, err)
		}
		for name, c := range map[string]*websocket.Conn{"local v1": local, "remote v1": v1} {
			if got := next(t, c); got != data {
				t.Errorf("%s got %q, want %q", name, got, data)
			}
		}
		if got, want := next(t, v2), `{"type":"direct","data":`+data+`}`; got != want {
			t.Errorf("remote v2 got %q, want %q", got, want)
		}
		if n, err := a.gw.PushClient(ctx, "c2-alice", []byte(data)); err != nil || n != 0 {
			t.Fatalf("PushClient(%q) = %d, %v; want 0 local", data, n, err)
		}
		if got := next(t, v1); got != data {
			t.Errorf("PushClient: remote v1 got %q, want %q", got, data)
		}
	}
}
